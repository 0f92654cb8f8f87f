"""Sensors: tenant partitions follow ``tenant_configs``; Chatwoot activity and settled conversations
trigger runs (the decisions are ``automation.activity``'s plain functions)."""

from __future__ import annotations

import datetime as dt

import dagster as dg

from allpfit_etl import settings
from allpfit_etl.automation.activity import (
    ActivityCursor, RunPlan, TenantRun, changed_partitions, describe_run, high_water_mark, plan_tenant_runs,
    runs_of, settle_checked_until, settled_provisional_days,
)
from allpfit_etl.jobs import lead_analysis_job
from allpfit_etl.partitions import TENANT_PARTITIONS_NAME, partition_key, range_tags, run_tags, tenant_partitions
from allpfit_etl.resources import AnalyticsDatabase, ChatwootDatabase
from allpfit_etl.tenants.registry import list_tenants

MAX_ROWS_PER_TICK = 5_000
# Runs requested by the sensor and the schedule are incremental (a few conversations of a few days):
# one process runs all their steps, instead of one process per step (~9) as the code location's
# executor does for the big runs (CLI, backfills).
INCREMENTAL_RUN_CONFIG = {"execution": {"config": {"in_process": {}}}}
# A sensor run that only gives provisional answers (messages of conversations still going on) brings
# the dashboards' table up to date and stops there: the daily monitoring (quality per day, spend)
# changes only with paid answers, so runs with a settled conversation refresh it, as the schedule does.
# (The global monitoring is another job's: monitoring_refresh_sensor follows these runs.)
# Named by key: the automation layer does not import the steps' assets.
LIVE_ASSETS = [dg.AssetKey(name) for name in (
    "chatwoot_conversations", "pending_conversations", "conversation_analyses", "conversations_analytics",
    "tenant_daily_kpis")]
LIVE_CHECKS = [dg.AssetCheckKey(dg.AssetKey("conversations_analytics"), name) for name in (
    "no_nul_bytes_stored", "every_conversation_analyzed_or_failed", "probabilidade_conversao_in_range",
    "spend_within_monthly_budget")]
# A tick reads the finished runs of at most this long ago (for the settle check's lookback).
FINISHED_RUNS_LIMIT = 1_000

ACTIVE_STATUSES = [
    dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.CANCELING,
]
FINISHED_STATUSES = [dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED]


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


def live_run_spacing() -> dt.timedelta:
    """A tenant's sensor runs start at most every other tick: one and a half sensor intervals apart
    (45 s by default). Under live traffic a tenant has a new message at nearly every tick; a run per
    tick doubled the runs (and their CPU) for answers a tick sooner. The first answer still comes
    about a minute after a conversation's first message."""
    return dt.timedelta(seconds=1.5 * settings.activity_sensor_interval_seconds())


def tenant_runs(instance: dg.DagsterInstance, now: dt.datetime, finished_since: dt.datetime | None = None) -> list[TenantRun]:
    """The runs not finished (queued, starting, under way), and those finished since ``finished_since``."""
    records = list(instance.get_run_records(dg.RunsFilter(statuses=ACTIVE_STATUSES)))
    if finished_since is not None:
        records += instance.get_run_records(
            dg.RunsFilter(statuses=FINISHED_STATUSES, updated_after=finished_since), limit=FINISHED_RUNS_LIMIT)
    runs = []
    for record in records:
        run = record.dagster_run
        selection = run.asset_selection
        described = describe_run(
            run.tags, run.status.value, now=now, start_time=record.start_time, created_at=record.create_timestamp,
            asset_keys=None if selection is None else [key.to_user_string() for key in selection],
        )
        if described is not None:
            runs.append(described)
    return runs


def run_request(plan: RunPlan, trigger: str, run_key: str, *, whole_job: bool = True) -> dg.RunRequest:
    """One run over a tenant's days: a partition-range run (the range tags with multi-partition keys,
    as the CLI's runs), or a single partition's. Without ``whole_job``, only the assets that bring
    the dashboards' table up to date (and its checks), not the monitoring."""
    tags = run_tags(plan.tenant, trigger)
    selection = {} if whole_job else {"asset_selection": LIVE_ASSETS, "asset_check_keys": LIVE_CHECKS}
    if plan.first_day == plan.last_day:
        return dg.RunRequest(run_key=run_key, partition_key=partition_key(plan.first_day, plan.tenant), tags=tags,
                             run_config=INCREMENTAL_RUN_CONFIG, **selection)
    tags = {**tags, **range_tags(plan.first_day, plan.last_day, plan.tenant)}
    return dg.RunRequest(run_key=run_key, tags=tags, run_config=INCREMENTAL_RUN_CONFIG, **selection)


@dg.sensor(
    job=lead_analysis_job,
    minimum_interval_seconds=settings.activity_sensor_interval_seconds(),
    default_status=dg.DefaultSensorStatus.RUNNING,
)
def chatwoot_activity_sensor(context: dg.SensorEvaluationContext, chatwoot: ChatwootDatabase, analytics: AnalyticsDatabase):
    """The incremental trigger. Each tick, per enabled tenant: the days whose Chatwoot conversations
    changed since the cursor, and the days whose provisional answers settled since the last look
    (OpenAI tenants), become at most one run of the tenant (see ``plan_tenant_runs``). A tick reads at
    most a bounded number of rows, so it stays far below the 60 s sensor limit on any source size."""
    source = chatwoot.engine()
    cursor = ActivityCursor.parse(context.cursor)
    if cursor is None:
        context.update_cursor(high_water_mark(source).serialize())
        return dg.SkipReason("activity cursor initialised at the newest Chatwoot activity; history is a backfill")

    now = dt.datetime.now(dt.timezone.utc)
    engine = analytics.engine()
    tenants = list_tenants(engine, enabled_only=True)
    by_account = {t.chatwoot_account_id: t for t in tenants}
    first_day = dt.date.fromisoformat(settings.partitions_start_date())
    changed, new_cursor = changed_partitions(
        source, cursor, sorted(by_account), settings.timezone_name(), limit=MAX_ROWS_PER_TICK
    )
    changed_days: dict[str, dict[dt.date, str]] = {}
    for partition, position in changed.items():
        if partition.day >= first_day:
            changed_days.setdefault(by_account[partition.account_id].slug, {})[partition.day] = position

    spacing = live_run_spacing()
    runs = tenant_runs(context.instance, now, finished_since=min(
        filter(None, (cursor.oldest_instant(), now - spacing))))

    run_requests, notes = [], []
    new_cursor.waiting, new_cursor.settle_checked = {}, {}
    for tenant in tenants:
        settled = []
        if tenant.features.use_openai:
            settle_minutes = tenant.features.settle_minutes
            settled = settled_provisional_days(
                engine, tenant.tenant_id, settle_minutes, cursor.settle_checked_at(tenant.slug), now)
            settled = [s for s in settled if s.day >= first_day]
            checked = settle_checked_until(now, settle_minutes, runs_of(runs, tenant.slug))
            new_cursor.settle_checked[tenant.slug] = checked.isoformat()
        plan = plan_tenant_runs(
            tenant.slug, cursor.waiting_days(tenant.slug), changed_days.get(tenant.slug, {}), settled, runs, now=now,
            spacing=spacing)
        new_cursor.set_waiting(tenant.slug, plan.waiting)
        if plan.request:
            run_requests.append(run_request(plan.request, "activity_sensor", plan.request.run_key("activity"),
                                            whole_job=plan.request.settles))
            notes.append(f"{tenant.slug}: run for {plan.request.first_day}..{plan.request.last_day}")
        if plan.waiting:
            notes.append(f"{tenant.slug}: {len(plan.waiting)} day(s) waiting for "
                         + (f"its queued run to start ({len(plan.covered)} covered by it)" if plan.queued_run
                            else "the next run"))
    if notes:
        context.log.info("; ".join(notes))

    partition_requests = tenant_partition_requests(context.instance, {t.slug for t in tenants})
    partition_requests = [r for r in partition_requests if isinstance(r, dg.AddDynamicPartitionsRequest)]
    return dg.SensorResult(
        run_requests=run_requests, cursor=new_cursor.serialize(), dynamic_partitions_requests=partition_requests
    )
