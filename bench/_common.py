"""Shared helpers for the benchmark scripts: throwaway PostgreSQL databases and peak RSS."""

from __future__ import annotations

import contextlib
import os
import resource
import uuid

import sqlalchemy as sa
from sqlalchemy.engine import make_url

ADMIN_URL = os.environ.get("TEST_DATABASE_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres")


@contextlib.contextmanager
def throwaway_databases(*labels: str):
    admin = sa.create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    names = [f"allpfit_bench_{label}_{uuid.uuid4().hex[:8]}" for label in labels]
    with admin.connect() as conn:
        for name in names:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield [make_url(ADMIN_URL).set(database=n).render_as_string(hide_password=False) for n in names]
    finally:
        from allpfit_etl.db import _cached_engine

        _cached_engine.cache_clear()
        with admin.connect() as conn:
            for name in names:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def peak_rss_mib() -> float:
    """Peak resident set size of this process and its finished children, in MiB."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, children) / 1024
