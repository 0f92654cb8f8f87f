"""Shared helpers for the benchmark scripts: throwaway PostgreSQL databases and peak RSS."""

from __future__ import annotations

import contextlib
import os
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import make_url

ADMIN_URL = os.environ.get("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


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
        from allpfit_etl.db import dispose_engines

        dispose_engines()
        with admin.connect() as conn:
            for name in names:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def peak_rss_mib() -> float:
    """Peak resident set size of this process (the pipeline's), in MiB. Seeding runs in a child
    process so that its buffers do not count."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def seed_in_subprocess(url: str, *, account_id: int, day: str, conversations: int, messages: int) -> float:
    """Create the Chatwoot schema and bulk-seed it from a child process; returns its seconds."""
    code = (
        "import datetime as dt; from allpfit_etl.db import get_engine; "
        "from allpfit_etl.demo.seed import create_chatwoot_schema, seed_bulk; "
        f"e = get_engine({url!r}); create_chatwoot_schema(e); "
        f"seed_bulk(e, account_id={account_id}, day=dt.date.fromisoformat({day!r}), "
        f"conversations={conversations}, messages_per_conversation={messages})"
    )
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True)
    return time.perf_counter() - started


def materialize_partition(partition_key: str, chatwoot_url: str, analytics_url: str, openai_resource) -> tuple[float, dict]:
    """Materialize every asset of one partition on a throwaway instance; (wall seconds, metadata)."""
    import dagster as dg

    from allpfit_etl.definitions import ASSETS
    from allpfit_etl.resources import AnalyticsDatabase, ChatwootDatabase

    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("tenant", [partition_key.split("|")[1]])
        started = time.perf_counter()
        result = dg.materialize(
            ASSETS, partition_key=partition_key, instance=instance,
            resources={"chatwoot": ChatwootDatabase(url=chatwoot_url), "analytics": AnalyticsDatabase(url=analytics_url),
                       "openai": openai_resource},
        )
        wall = time.perf_counter() - started
    assert result.success
    metadata = {
        e.asset_key.to_user_string(): {k: v.value for k, v in e.materialization.metadata.items()}
        for e in result.get_asset_materialization_events()
    }
    return wall, metadata


def cli_env(home: str, **extra: str) -> dict[str, str]:
    """The environment a user's shell would have: embedded defaults under ``home`` plus ``extra``
    (none of this shell's project settings, rate limits included)."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("ALLPFIT_", "CHATWOOT_", "ANALYTICS_", "DAGSTER_", "OPENAI_RPM", "OPENAI_TPM"))}
    env.update(ALLPFIT_HOME=home, **extra)
    return env


# The `allpfit-etl` command of the Python running the benchmark (a virtualenv's, say).
ALLPFIT_ETL = str(Path(sys.executable).parent / "allpfit-etl")


def run_cli(env: dict[str, str], *args: str) -> tuple[float, str, float]:
    """Run ``allpfit-etl ARGS`` as a user does; (wall seconds, stdout, that process's peak RSS in
    MiB). Fails loudly on a non-zero exit."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        started = time.perf_counter()
        process = subprocess.Popen([ALLPFIT_ETL, *args], env=env, stdout=out, stderr=err, text=True)
        _, status, usage = os.wait4(process.pid, 0)  # reaped here, for this process's own peak RSS
        process.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - started
        out.seek(0), err.seek(0)
        stdout, stderr = out.read(), err.read()
    if process.returncode != 0:
        raise SystemExit(f"allpfit-etl {' '.join(args)} exited {process.returncode}: {stderr.strip()[-2000:]}")
    return wall, stdout, usage.ru_maxrss / 1024


def dagster_run_seconds(home: str) -> tuple[float, str]:
    """Wall time of the Dagster run(s) the CLI launched, from the CLI's own instance, and the
    seconds each step took (steps of the same name summed)."""
    import dagster as dg

    with dg.DagsterInstance.from_config(str(Path(home) / "dagster_home")) as instance:
        runs = instance.get_runs()
        stats = [instance.get_run_stats(run.run_id) for run in runs]
        steps: dict[str, float] = {}
        for run in runs:
            for step in instance.get_run_step_stats(run.run_id):
                name = step.step_key.split("[")[0].split(".")[-1]
                steps[name] = steps.get(name, 0.0) + (step.end_time or 0) - (step.start_time or 0)
    breakdown = ", ".join(f"{name} {seconds:.1f}" for name, seconds in steps.items())
    return max(s.end_time for s in stats) - min(s.start_time for s in stats), breakdown
