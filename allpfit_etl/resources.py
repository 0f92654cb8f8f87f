"""Dagster resources. Connection strings may hold passwords: they come from environment
variables through ``dg.EnvVar`` and are never logged or put in metadata."""

import datetime as dt
import os
from collections.abc import Iterator

import dagster as dg
import sqlalchemy as sa

from allpfit_etl.db import analytics_engine, chatwoot_engine
from allpfit_etl.errors import UnknownTenantError
from allpfit_etl.partitions import days_by_tenant
from allpfit_etl.tenants.registry import Tenant, get_tenant


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

    def tenant_days(self, partition_keys) -> Iterator[tuple[Tenant, list[dt.date]]]:
        """(tenant, its days) for every tenant among a run's (or a check's) partition keys.

        A ``tenant`` partition added by hand in the UI may have no ``tenant_configs`` row: the run's
        first step then fails with one line saying so (no step retry can fix it)."""
        grouped = days_by_tenant(partition_keys)
        tenants = {}
        for slug in grouped:
            try:
                tenants[slug] = get_tenant(self.engine(), slug)
            except UnknownTenantError:
                raise dg.Failure(
                    description=(f"tenant partition {slug!r} has no row in tenant_configs: add it with "
                                 f"`allpfit-etl tenants add {slug} --name NAME --account-id ID`, or delete the partition"),
                    allow_retries=False,
                ) from None
        for slug, days in grouped.items():
            yield tenants[slug], days


def env_var_or_none(name: str) -> dg.EnvVar | None:
    """``dg.EnvVar(name)`` when it is set, so unset variables fall back to the embedded defaults."""
    return dg.EnvVar(name) if os.environ.get(name) else None
