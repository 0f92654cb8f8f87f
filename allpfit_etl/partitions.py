"""Partitions: tenant × local day, and the Dagster objects every step shares with them:
the backfill policy, the (tenant, days) iterator over a run's partitions and the run tags.

Keys look like ``2025-11-10|allpfit`` (Dagster joins dimensions in name order: day, tenant).
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterator

import dagster as dg
import sqlalchemy as sa

from allpfit_etl import settings
from allpfit_etl.errors import ConfigError, UnknownTenantError
from allpfit_etl.tenants.registry import Tenant, get_tenant

TENANT_PARTITIONS_NAME = "tenant"
# Run tags: which tenant a run is for, and what started it (cli, schedule, activity_sensor, backfill).
TENANT_TAG = "allpfit/tenant"
TRIGGER_TAG = "allpfit/trigger"

BACKFILL_POLICY = dg.BackfillPolicy.multi_run(max_partitions_per_run=settings.backfill_days_per_run())

tenant_partitions = dg.DynamicPartitionsDefinition(name=TENANT_PARTITIONS_NAME)
day_partitions = dg.DailyPartitionsDefinition(
    start_date=settings.partitions_start_date(), timezone=settings.timezone_name(), end_offset=1
)
tenant_day_partitions = dg.MultiPartitionsDefinition({"day": day_partitions, "tenant": tenant_partitions})


def partition_key(day: dt.date | str, tenant_slug: str) -> str:
    day_text = day.isoformat() if isinstance(day, dt.date) else day
    return dg.MultiPartitionKey({"day": day_text, "tenant": tenant_slug})


def parse_partition_key(key: str) -> tuple[dt.date, str]:
    """``2025-11-10|allpfit`` → (date(2025, 11, 10), "allpfit"), with a clear error otherwise."""
    parts = str(key).split("|")
    if len(parts) != 2:
        raise ConfigError(f"bad partition key {key!r}: expected 'YYYY-MM-DD|tenant_slug'")
    try:
        return dt.date.fromisoformat(parts[0]), parts[1]
    except ValueError:
        raise ConfigError(f"bad partition key {key!r}: {parts[0]!r} is not a date") from None


def days_by_tenant(keys) -> dict[str, list[dt.date]]:
    """Group a run's partition keys by tenant slug."""
    grouped: dict[str, set[dt.date]] = defaultdict(set)
    for key in keys:
        day, slug = parse_partition_key(key)
        grouped[slug].add(day)
    return {slug: sorted(days) for slug, days in sorted(grouped.items())}


def tenant_days(engine: sa.Engine, partition_keys) -> Iterator[tuple[Tenant, list[dt.date]]]:
    """(tenant, its days) for every tenant among a run's (or a check's) partition keys.

    A ``tenant`` partition added by hand in the UI may have no ``tenant_configs`` row: the run's
    first step then fails with one line saying so (no step retry can fix it)."""
    grouped = days_by_tenant(partition_keys)
    tenants = {}
    for slug in grouped:
        try:
            tenants[slug] = get_tenant(engine, slug)
        except UnknownTenantError:
            raise dg.Failure(
                description=(f"tenant partition {slug!r} has no row in tenant_configs: add it with "
                             f"`allpfit-etl tenants add {slug} --name NAME --account-id ID`, or delete the partition"),
                allow_retries=False,
            ) from None
    for slug, days in grouped.items():
        yield tenants[slug], days


def range_tags(first: dt.date, last: dt.date, tenant_slug: str) -> dict[str, str]:
    """The tags that make a run cover one tenant's days ``first``..``last`` (a partition-range run)."""
    return {
        "dagster/asset_partition_range_start": str(partition_key(first, tenant_slug)),
        "dagster/asset_partition_range_end": str(partition_key(last, tenant_slug)),
    }


def run_tags(tenant_slug: str, trigger: str) -> dict[str, str]:
    return {TENANT_TAG: tenant_slug, TRIGGER_TAG: trigger}


def register_tenant_partitions(instance: dg.DagsterInstance, tenants: list[Tenant]) -> list[str]:
    """Add the tenants' slugs as ``tenant`` partitions (the tenant sensor does this in production)."""
    existing = set(instance.get_dynamic_partitions(TENANT_PARTITIONS_NAME))
    new = [t.slug for t in tenants if t.slug not in existing]
    if new:
        instance.add_dynamic_partitions(TENANT_PARTITIONS_NAME, new)
    return new


def add_partition_metadata(context: dg.AssetExecutionContext, day: dt.date, tenant_slug: str, metadata: dict) -> None:
    """Give one (day, tenant) partition of a run its own materialization metadata.

    A run over a range of partitions (the CLI's, a backfill's) records one materialization per
    partition, and a ``MaterializeResult``'s metadata is copied onto each of them; metadata added
    with ``add_asset_metadata(partition_key=...)`` lands on that partition's event alone.
    """
    context.add_asset_metadata(metadata, partition_key=partition_key(day, tenant_slug))
