"""Database plumbing: the Chatwoot source is read-only; SQL files load by name and dialect."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from allpfit_etl.db import check_reachable, get_engine, load_sql, split_statements
from allpfit_etl.demo.seed import create_chatwoot_schema
from allpfit_etl.errors import DatabaseUnreachableError


def test_postgresql_source_is_opened_in_read_only_transactions(make_pg_database):
    url = make_pg_database("ro")
    create_chatwoot_schema(get_engine(url))
    source = get_engine(url, read_only=True)
    with source.connect() as conn:
        assert conn.execute(sa.text("SHOW default_transaction_read_only")).scalar_one() == "on"
        with pytest.raises(sa.exc.InternalError, match="read-only transaction"):
            conn.execute(sa.text("INSERT INTO accounts (name, created_at, updated_at) VALUES ('x', now(), now())"))


def test_sqlite_source_is_read_only_and_never_created(tmp_path):
    path = tmp_path / "chatwoot.db"
    missing = get_engine(f"sqlite:///{path}", read_only=True)
    with pytest.raises(DatabaseUnreachableError, match="Chatwoot database unreachable"):
        check_reachable(missing, "Chatwoot")
    assert not path.exists()
    create_chatwoot_schema(get_engine(f"sqlite:///{path}"))
    source = get_engine(f"sqlite:///{path}", read_only=True)
    with source.connect() as conn, pytest.raises(sa.exc.OperationalError, match="readonly|read-only|query_only"):
        conn.execute(sa.text("INSERT INTO accounts (name, created_at, updated_at) VALUES ('x', '2025-01-01', '2025-01-01')"))


def test_sql_files_load_by_name_with_dialect_variants():
    assert "CREATE TABLE IF NOT EXISTS messages" in load_sql("chatwoot/schema", "postgresql")
    assert "JSON DEFAULT" in load_sql("chatwoot/schema", "postgresql")
    assert "JSON DEFAULT" not in load_sql("chatwoot/schema", "sqlite")
    assert load_sql("chatwoot/conversations_for_day", "sqlite") == load_sql("chatwoot/conversations_for_day")
    with pytest.raises(FileNotFoundError):
        load_sql("no/such/query")


def test_split_statements_skips_comments_and_keeps_multiline_statements():
    script = "-- a comment\nCREATE TABLE a (\n  x INT\n);\n\nCREATE INDEX i ON a (x);\n"
    assert split_statements(script) == ["CREATE TABLE a (\n  x INT\n)", "CREATE INDEX i ON a (x)"]
