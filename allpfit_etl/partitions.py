"""Partitions: tenant × local day, and the Dagster objects every step shares with them:
the backfill policy, the (tenant, days) iterator over a run's partitions and the run tags.

Keys look like ``2025-11-10|allpfit`` (Dagster joins dimensions in name order: day, tenant).
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict

import dagster as dg

from allpfit_etl import settings
from allpfit_etl.errors import ConfigError
from allpfit_etl.tenants.registry import Tenant

TENANT_PARTITIONS_NAME = "tenant"
# Run tags: which tenant a run is for, and what started it (cli, schedule, activity_sensor, backfill).
TENANT_TAG = "allpfit/tenant"
TRIGGER_TAG = "allpfit/trigger"
# Dagster's own tags on a run (set by Dagster, read by the sensors, the alerts and the CLI).
PARTITION_TAG = "dagster/partition"
PARTITION_TENANT_TAG = "dagster/partition/tenant"
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"
BACKFILL_TAG = "dagster/backfill"

BACKFILL_POLICY = dg.BackfillPolicy.multi_run(max_partitions_per_run=settings.backfill_days_per_run())

tenant_partitions = dg.DynamicPartitionsDefinition(name=TENANT_PARTITIONS_NAME)
day_partitions = dg.DailyPartitionsDefinition(
    start_date=settings.partitions_start_date(), timezone=settings.timezone_name(), end_offset=1
)
tenant_day_partitions = dg.MultiPartitionsDefinition({"day": day_partitions, "tenant": tenant_partitions})


def partition_key(day: dt.date | str, tenant_slug: str) -> str:
    day_text = day.isoformat() if isinstance(day, dt.date) else day
    return dg.MultiPartitionKey({"day": day_text, "tenant": tenant_slug})


def parse_partition_key(key: str | dg.MultiPartitionKey) -> tuple[dt.date, str]:
    """``2025-11-10|allpfit`` → (date(2025, 11, 10), "allpfit"), with a clear error otherwise."""
    if not isinstance(key, dg.MultiPartitionKey):
        try:
            key = tenant_day_partitions.get_partition_key_from_str(str(key))
        except Exception:  # Dagster raises its internal CheckError on a key without two dimensions
            raise ConfigError(f"bad partition key {key!r}: expected 'YYYY-MM-DD|tenant_slug'") from None
    dimensions = key.keys_by_dimension
    try:
        return dt.date.fromisoformat(dimensions["day"]), dimensions["tenant"]
    except ValueError:
        raise ConfigError(f"bad partition key {str(key)!r}: {dimensions['day']!r} is not a date") from None


def days_by_tenant(keys) -> dict[str, list[dt.date]]:
    """Group a run's partition keys by tenant slug."""
    grouped: dict[str, set[dt.date]] = defaultdict(set)
    for key in keys:
        day, slug = parse_partition_key(key)
        grouped[slug].add(day)
    return {slug: sorted(days) for slug, days in sorted(grouped.items())}


def range_tags(first: dt.date, last: dt.date, tenant_slug: str) -> dict[str, str]:
    """The tags that make a run cover one tenant's days ``first``..``last`` (a partition-range run)."""
    return {
        RANGE_START_TAG: str(partition_key(first, tenant_slug)),
        RANGE_END_TAG: str(partition_key(last, tenant_slug)),
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


def add_partition_metadata(context: dg.AssetExecutionContext, day: dt.date, tenant_slug: str, metadata: dict,
                           asset_key: str | None = None) -> None:
    """Give one (day, tenant) partition of a run its own materialization metadata.

    A run over a range of partitions (the CLI's, a backfill's) records one materialization per
    partition, and a ``MaterializeResult``'s metadata is copied onto each of them; metadata added
    with ``add_asset_metadata(partition_key=...)`` lands on that partition's event alone.
    """
    context.add_asset_metadata(metadata, partition_key=partition_key(day, tenant_slug), asset_key=asset_key)
