"""Dagster resources. Connection strings may hold passwords: they come from environment
variables through ``dg.EnvVar`` and are never logged or put in metadata."""

import os

import dagster as dg
import sqlalchemy as sa

from allpfit_etl.db import analytics_engine, chatwoot_engine


class ChatwootDatabase(dg.ConfigurableResource):
    """The Chatwoot PostgreSQL database, opened read-only."""

    url: str | None = None

    def engine(self) -> sa.Engine:
        return chatwoot_engine(self.url)


class AnalyticsDatabase(dg.ConfigurableResource):
    """The project's own analytics database (PostgreSQL in production, SQLite for the demo)."""

    url: str | None = None

    def engine(self) -> sa.Engine:
        return analytics_engine(self.url)


def env_var_or_none(name: str) -> dg.EnvVar | None:
    """``dg.EnvVar(name)`` when it is set, so unset variables fall back to the embedded defaults."""
    return dg.EnvVar(name) if os.environ.get(name) else None
