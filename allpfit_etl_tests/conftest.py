"""Shared fixtures: throwaway databases on the real PostgreSQL server (TEST_DATABASE_URL)."""

from __future__ import annotations

import os
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

# Throwaway files (Dagster's SQLite run and event storage of test instances, SQLite analytics
# databases, the daemon's home) go to memory when the machine has /dev/shm: Dagster's SQLite
# storage syncs every event to disk, a third of the suite's time on a slow disk, and nothing
# under test depends on it. The real PostgreSQL server keeps its own disk. TMPDIR set by the
# caller wins; subprocesses inherit the choice.
if "TMPDIR" not in os.environ and os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK):
    os.environ["TMPDIR"] = "/dev/shm"
    tempfile.tempdir = None  # forget a directory chosen before this line

# Bytecode caching on, as on users' machines, also where the caller turned it off
# (PYTHONDONTWRITEBYTECODE): every worker and subprocess would compile the project and
# rewrite the test modules' asserts again.
sys.dont_write_bytecode = False
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)

TEST_DATABASE_URL = os.environ.get("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def _admin_engine() -> sa.Engine:
    return sa.create_engine(TEST_DATABASE_URL, isolation_level="AUTOCOMMIT")


# The suite runs on several workers (pyproject's addopts) and ends when its longest tests do,
# so they start first. Tests sharing a module fixture stay on one worker (xdist_group).
LONGEST_FIRST = (
    "test_live_operation.py", "test_deployment_end_to_end.py", "test_docs_examples.py", "test_install.py", "test_cli_runs_in_ui.py", "test_batch_pipeline.py", "test_openai_account_errors.py",
    "test_daemon_on_sqlite.py", "test_openai_pipeline.py", "test_openai_shared_limit.py",
    "test_production_limits.py", "test_secrets_redaction.py", "test_live_sensor.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {name: position for position, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))


def pytest_collection_finish(session: pytest.Session) -> None:
    """xdist keeps a group on one worker by suffixing its tests' node ids with ``@group``; a pytest
    that ignores the suffix (9.2) spreads them, and each worker would start its own deployment."""
    if os.environ.get("PYTEST_XDIST_WORKER") and session.config.getoption("dist", None) == "loadgroup":
        loose = [i.nodeid for i in session.items if i.get_closest_marker("xdist_group") and "@" not in i.nodeid]
        if loose:
            raise pytest.UsageError(f"xdist groups are ignored by this pytest ({pytest.__version__}): {loose[0]} has no "
                                    "@group suffix; install the versions pyproject.toml's dev extra allows")


@pytest.fixture(scope="session")
def pg_admin() -> Iterator[sa.Engine]:
    engine = _admin_engine()
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except sa.exc.OperationalError as exc:  # a missing service is a failure, never a skip
        pytest.fail(f"PostgreSQL not reachable at {make_url(TEST_DATABASE_URL).render_as_string(hide_password=True)}: {exc.orig}")
    yield engine
    engine.dispose()


@pytest.fixture
def make_pg_database(pg_admin: sa.Engine) -> Iterator[Callable[[str], str]]:
    """Create uniquely named databases for one test; drop them afterwards. Returns their URLs."""
    created: list[str] = []

    def factory(label: str = "db") -> str:
        name = f"allpfit_test_{label}_{uuid.uuid4().hex[:10]}"
        with pg_admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        created.append(name)
        return make_url(TEST_DATABASE_URL).set(database=name).render_as_string(hide_password=False)

    yield factory
    from allpfit_etl.db import dispose_engines

    dispose_engines()
    with pg_admin.connect() as conn:
        for name in created:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def server():
    """The bundled OpenAI-compatible server, over real HTTP, with its default behaviour."""
    from fake_openai import FakeOpenAIServer, FakeServerConfig

    with FakeOpenAIServer(FakeServerConfig()) as fake:
        yield fake


@pytest.fixture
def instance():
    """A persistent test instance with the ``gym`` tenant partition the pipeline tests use."""
    import dagster as dg

    from allpfit_etl.partitions import TENANT_PARTITIONS_NAME

    with dg.instance_for_test() as inst:
        inst.add_dynamic_partitions(TENANT_PARTITIONS_NAME, ["gym"])
        yield inst
