"""Database engines (``chatwoot_engine``, ``analytics_engine``) and the SQL files under ``sql/``, loaded by name.

The same queries run on PostgreSQL and SQLite. Only DDL differs per dialect: ``load_sql``
looks for ``<name>.<dialect>.sql`` first and falls back to ``<name>.sql``.
"""

from __future__ import annotations

import functools
import os
import sqlite3
import threading
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import make_url

from allpfit_etl import settings
from allpfit_etl.errors import DatabaseUnreachableError, redact



def _sql_dir() -> Path:
    """``sql/`` ships inside the wheel as ``allpfit_etl/sql``; a checkout keeps it at the top."""
    if os.environ.get("ALLPFIT_SQL_DIR"):
        return Path(os.environ["ALLPFIT_SQL_DIR"])
    package = Path(__file__).resolve().parent
    installed = package / "sql"
    return installed if installed.is_dir() else package.parent / "sql"


SQL_DIR = _sql_dir()

# Plain postgresql:// (and the postgres:// many hosts hand out) means psycopg 3, which the
# package installs, whatever SQLAlchemy release picks as its default.
_DEFAULT_DRIVERS = {"postgresql": "postgresql+psycopg", "postgres": "postgresql+psycopg"}


@functools.cache
def load_sql(name: str, dialect: str | None = None) -> str:
    """Return the text of ``sql/<name>.sql`` (or its dialect-specific variant)."""
    candidates = [SQL_DIR / f"{name}.{dialect}.sql"] if dialect else []
    candidates.append(SQL_DIR / f"{name}.sql")
    for path in candidates:
        if path.exists():
            return path.read_text(encoding="utf-8")
    raise FileNotFoundError(f"no SQL file for {name!r} (dialect {dialect}) under {SQL_DIR}")


def sql(name: str, dialect: str | None = None) -> sa.TextClause:
    return sa.text(load_sql(name, dialect))


def split_statements(script: str) -> list[str]:
    """Split a DDL script on ``;`` at line ends (the DDL files keep one statement per block)."""
    statements, current = [], []
    for line in script.splitlines():
        if line.strip().startswith("--"):
            continue
        current.append(line)
        if line.rstrip().endswith(";"):
            statement = "\n".join(current).strip().rstrip(";").strip()
            if statement:
                statements.append(statement)
            current = []
    tail = "\n".join(current).strip()
    if tail:
        statements.append(tail)
    return statements


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def normalize_url(url: str) -> sa.URL:
    """Parse a database URL, giving plain ``postgresql://`` the installed psycopg 3 driver."""
    parsed = make_url(url)
    driver = _DEFAULT_DRIVERS.get(parsed.drivername)
    return parsed.set(drivername=driver) if driver else parsed


_engines: dict[tuple[str, bool], sa.Engine] = {}
_engines_lock = threading.Lock()


def _cached_engine(url: str, read_only: bool) -> sa.Engine:
    """One engine (one pool) per URL and mode for the whole process."""
    with _engines_lock:
        engine = _engines.get((url, read_only))
        if engine is None:
            engine = _engines[(url, read_only)] = _create_engine(url, read_only)
        return engine


def dispose_engines(*, close: bool = True) -> None:
    """Forget every engine ``get_engine`` handed out and dispose of its pool, so the next call
    connects afresh: after a database was dropped or replaced, or in a forked process, which passes
    ``close=False`` because the pooled connections it inherited belong to its parent."""
    with _engines_lock:
        engines = list(_engines.values())
        _engines.clear()
    for engine in engines:
        engine.dispose(close=close)


def _create_engine(url: str, read_only: bool) -> sa.Engine:
    parsed = normalize_url(url)
    if parsed.get_backend_name() == "sqlite":
        path = parsed.database
        if read_only and path and path != ":memory:":
            # The source is never created nor written: a missing file is an unreachable database.
            # Pooled connections move between threads (sensor ticks, the extract's prefetch).
            source_uri = f"file:{Path(path).resolve()}?mode=ro"
            engine = sa.create_engine(
                url, creator=lambda: sqlite3.connect(source_uri, uri=True, timeout=30, check_same_thread=False)
            )
            event.listen(engine, "connect", lambda c, _r: c.execute("PRAGMA query_only=ON"))
            return engine
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(parsed, connect_args={"timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    kwargs: dict = {"pool_pre_ping": True, "connect_args": {"connect_timeout": 10}}
    if read_only and parsed.get_backend_name() == "postgresql":
        # Every transaction on the Chatwoot source is read-only at the server.
        kwargs["connect_args"]["options"] = "-c default_transaction_read_only=on"
    return sa.create_engine(parsed, **kwargs)


def get_engine(url: str, *, read_only: bool = False) -> sa.Engine:
    try:
        return _cached_engine(url, read_only)
    except sa.exc.ArgumentError as exc:
        raise DatabaseUnreachableError(f"malformed database URL {redact(url)!r}: {exc}") from None
    except sa.exc.NoSuchModuleError:
        raise DatabaseUnreachableError(
            f"database URL {redact(url)!r} names a driver SQLAlchemy does not know; write postgresql://… or sqlite:///…"
        ) from None
    except ModuleNotFoundError as exc:
        raise DatabaseUnreachableError(
            f"database URL {redact(url)!r} needs the Python module {exc.name!r}, which is not installed;"
            " write postgresql://… (psycopg 3, installed with allpfit-etl) or install that driver"
        ) from None


def check_reachable(engine: sa.Engine, label: str) -> None:
    """Raise a one-line ``DatabaseUnreachableError`` if the database cannot be reached."""
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except sa.exc.OperationalError as exc:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else "connection failed"
        raise DatabaseUnreachableError(
            f"{label} database unreachable at {redact(engine.url.render_as_string(hide_password=True))}: {redact(reason)}"
        ) from None


def chatwoot_engine(url: str | None = None, *, read_only: bool = True) -> sa.Engine:
    """The Chatwoot engine, checked reachable; read-only unless the demo writes its data.

    The one way to build an engine: the Dagster resources and the CLI both call these two."""
    engine = get_engine(url or settings.chatwoot_database_url(), read_only=read_only)
    check_reachable(engine, "Chatwoot")
    return engine


def analytics_engine(url: str | None = None) -> sa.Engine:
    """The analytics engine, checked reachable."""
    engine = get_engine(url or settings.analytics_database_url())
    check_reachable(engine, "analytics")
    return engine
