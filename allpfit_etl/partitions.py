"""Partitions: tenant × local day.

Keys look like ``2025-11-10|allpfit`` (Dagster joins dimensions in name order: day, tenant).
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict

import dagster as dg

from allpfit_etl import settings
from allpfit_etl.errors import ConfigError

TENANT_PARTITIONS_NAME = "tenant"

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
