"""Load: analyzed conversations into ``conversations_analytics``, then per-day KPIs."""

import datetime as dt

import dagster as dg

from allpfit_etl.db import sql
from allpfit_etl.partitions import BACKFILL_POLICY, tenant_day_partitions, tenant_days
from allpfit_etl.resources import AnalyticsDatabase


@dg.asset(
    partitions_def=tenant_day_partitions,
    backfill_policy=BACKFILL_POLICY,
    deps=["conversation_analyses"],
    group_name="load",
    kinds={"postgres", "table"},
)
def conversations_analytics(context: dg.AssetExecutionContext, analytics: AnalyticsDatabase) -> dg.MaterializeResult:
    """One row per (tenant, conversation) with its transcript and current lead analysis —
    the table the dashboards read. An idempotent upsert of the partition's analysed
    pending conversations; loaded ones leave the pending list."""
    engine = analytics.engine()
    loaded = 0
    now = dt.datetime.now(dt.timezone.utc)
    for tenant, days in tenant_days(engine, context.partition_keys):
        identity = tenant.identity()
        params = {"tenant_id": tenant.tenant_id, "analyzer": identity.analyzer, "model": identity.model,
                  "prompt_version": identity.prompt_version}
        for day in days:
            with engine.begin() as conn:
                loaded += conn.execute(sql("analytics/load_conversations_analytics"), {**params, "day": day, "loaded_at": now}).rowcount
                conn.execute(sql("analytics/delete_loaded_pending"), {**params, "day": day})
    return dg.MaterializeResult(metadata={"loaded": loaded, "partitions_in_run": len(context.partition_keys)})


@dg.asset(
    partitions_def=tenant_day_partitions,
    backfill_policy=BACKFILL_POLICY,
    deps=[conversations_analytics],
    group_name="load",
    kinds={"postgres", "table"},
)
def tenant_daily_kpis(context: dg.AssetExecutionContext, analytics: AnalyticsDatabase) -> dg.MaterializeResult:
    """Per tenant and day: conversations, leads, lead rate, visits scheduled, high
    probability (4–5) and named contacts."""
    engine = analytics.engine()
    totals = {"conversations": 0, "leads": 0, "visits_scheduled": 0, "high_probability": 0, "named_contacts": 0}
    now = dt.datetime.now(dt.timezone.utc)
    for tenant, days in tenant_days(engine, context.partition_keys):
        for day in days:
            params = {"tenant_id": tenant.tenant_id, "day": day}
            with engine.begin() as conn:
                conn.execute(sql("analytics/refresh_tenant_daily_kpis"), {**params, "updated_at": now})
                row = conn.execute(sql("analytics/kpis_for_partition"), params).one()
            for key in totals:
                totals[key] += int(getattr(row, key))
    lead_rate = totals["leads"] / totals["conversations"] if totals["conversations"] else 0.0
    return dg.MaterializeResult(metadata={**totals, "lead_rate": round(lead_rate, 4)})
