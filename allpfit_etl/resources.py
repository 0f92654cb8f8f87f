"""Dagster resources. Connection strings may hold passwords: they come from environment
variables through ``dg.EnvVar`` and are never logged or put in metadata."""

import os

import dagster as dg
import sqlalchemy as sa

from allpfit_etl import settings
from allpfit_etl.db import check_reachable, get_engine


class ChatwootDatabase(dg.ConfigurableResource):
    """The Chatwoot PostgreSQL database, opened read-only."""

    url: str | None = None

    def engine(self) -> sa.Engine:
        engine = get_engine(self.url or settings.chatwoot_database_url(), read_only=True)
        check_reachable(engine, "Chatwoot")
        return engine


class AnalyticsDatabase(dg.ConfigurableResource):
    """The project's own analytics database (PostgreSQL in production, SQLite for the demo)."""

    url: str | None = None

    def engine(self) -> sa.Engine:
        engine = get_engine(self.url or settings.analytics_database_url())
        check_reachable(engine, "analytics")
        return engine


def env_var_or_none(name: str) -> dg.EnvVar | None:
    """``dg.EnvVar(name)`` when it is set, so unset variables fall back to the embedded defaults."""
    return dg.EnvVar(name) if os.environ.get(name) else None
