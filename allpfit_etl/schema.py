"""Create or upgrade the analytics schema from the numbered files in ``sql/analytics/migrations``."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa

from allpfit_etl.db import SQL_DIR, load_sql, split_statements, sql

MIGRATIONS_DIR = SQL_DIR / "analytics" / "migrations"


def migration_names() -> list[str]:
    return sorted({path.name.split(".")[0] for path in MIGRATIONS_DIR.glob("*.sql")})


def apply_migrations(engine: sa.Engine) -> list[str]:
    """Apply every migration not yet recorded in ``schema_migrations``; safe to re-run."""
    dialect = engine.dialect.name
    applied_now = []
    with engine.begin() as conn:
        conn.execute(sql("analytics/schema/create_migrations_table"))
        done = {row[0] for row in conn.execute(sql("analytics/schema/applied_migrations"))}
        for name in migration_names():
            if name in done:
                continue
            for statement in split_statements(load_sql(f"analytics/migrations/{name}", dialect)):
                conn.execute(sa.text(statement))
            conn.execute(
                sql("analytics/schema/record_migration"),
                {"v": name, "t": dt.datetime.now(dt.timezone.utc).isoformat()},
            )
            applied_now.append(name)
    return applied_now


def schema_ready(engine: sa.Engine) -> bool:
    inspector = sa.inspect(engine)
    return inspector.has_table("schema_migrations") and inspector.has_table("tenant_configs")
