"""Sensors: tenant partitions follow ``tenant_configs``; Chatwoot activity triggers runs."""

import dagster as dg

from allpfit_etl import settings
from allpfit_etl.automation.activity import ActivityCursor, changed_partitions, high_water_mark
from allpfit_etl.jobs import lead_analysis_job
from allpfit_etl.partitions import TENANT_PARTITIONS_NAME, partition_key, run_tags, tenant_partitions
from allpfit_etl.resources import AnalyticsDatabase, ChatwootDatabase
from allpfit_etl.tenants.registry import list_tenants

MAX_ROWS_PER_TICK = 5_000


def tenant_partition_requests(instance: dg.DagsterInstance, enabled_slugs: set[str]) -> list:
    existing = set(instance.get_dynamic_partitions(TENANT_PARTITIONS_NAME))
    requests = []
    if enabled_slugs - existing:
        requests.append(tenant_partitions.build_add_request(sorted(enabled_slugs - existing)))
    if existing - enabled_slugs:
        requests.append(tenant_partitions.build_delete_request(sorted(existing - enabled_slugs)))
    return requests


@dg.sensor(minimum_interval_seconds=settings.activity_sensor_interval_seconds(), default_status=dg.DefaultSensorStatus.RUNNING)
def tenant_partitions_sensor(context: dg.SensorEvaluationContext, analytics: AnalyticsDatabase):
    """Keeps the ``tenant`` partitions equal to the enabled rows of ``tenant_configs``."""
    enabled = {t.slug for t in list_tenants(analytics.engine(), enabled_only=True)}
    requests = tenant_partition_requests(context.instance, enabled)
    if not requests:
        return dg.SkipReason(f"tenant partitions already match {len(enabled)} enabled tenant(s)")
    return dg.SensorResult(dynamic_partitions_requests=requests)


@dg.sensor(
    job=lead_analysis_job,
    minimum_interval_seconds=settings.activity_sensor_interval_seconds(),
    default_status=dg.DefaultSensorStatus.RUNNING,
)
def chatwoot_activity_sensor(context: dg.SensorEvaluationContext, chatwoot: ChatwootDatabase, analytics: AnalyticsDatabase):
    """The incremental trigger: one run per (tenant, day) partition whose Chatwoot
    conversations changed since the cursor. A tick reads at most a bounded number of rows,
    so it stays far below the 60 s sensor limit on any source size."""
    source = chatwoot.engine()
    cursor = ActivityCursor.parse(context.cursor)
    if cursor is None:
        context.update_cursor(high_water_mark(source).serialize())
        return dg.SkipReason("activity cursor initialised at the newest Chatwoot activity; history is a backfill")

    tenants = list_tenants(analytics.engine(), enabled_only=True)
    by_account = {t.chatwoot_account_id: t for t in tenants}
    first_day = settings.partitions_start_date()
    changed, new_cursor = changed_partitions(
        source, cursor, sorted(by_account), settings.timezone_name(), limit=MAX_ROWS_PER_TICK
    )
    run_requests = []
    for partition, position in sorted(changed.items(), key=lambda item: (item[0].day, item[0].account_id)):
        tenant = by_account[partition.account_id]
        if partition.day.isoformat() < first_day:
            continue
        key = partition_key(partition.day, tenant.slug)
        run_requests.append(
            dg.RunRequest(
                run_key=f"activity:{key}:{position}",
                partition_key=key,
                tags=run_tags(tenant.slug, "activity_sensor"),
            )
        )
    partition_requests = tenant_partition_requests(context.instance, {t.slug for t in tenants})
    partition_requests = [r for r in partition_requests if isinstance(r, dg.AddDynamicPartitionsRequest)]
    return dg.SensorResult(
        run_requests=run_requests, cursor=new_cursor.serialize(), dynamic_partitions_requests=partition_requests
    )
