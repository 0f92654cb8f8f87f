"""Load: analyzed conversations into ``conversations_analytics``, then per-day KPIs."""

import datetime as dt

import dagster as dg

from allpfit_etl.db import sql
from allpfit_etl.identities import regex_identity
from allpfit_etl.partitions import BACKFILL_POLICY, add_partition_metadata, tenant_day_partitions
from allpfit_etl.resources import AnalyticsDatabase

# What a partition holds now, recorded on both load assets' materializations.
STATE_KEYS = ("conversations", "leads", "visits", "high_probability", "named")


def _counts(row) -> dict[str, int]:
    return {key: int(row[key]) for key in STATE_KEYS}


@dg.asset(
    partitions_def=tenant_day_partitions,
    backfill_policy=BACKFILL_POLICY,
    deps=["conversation_analyses"],
    group_name="load",
    kinds={"postgres", "table"},
)
def conversations_analytics(context: dg.AssetExecutionContext, analytics: AnalyticsDatabase) -> dg.MaterializeResult:
    """One row per (tenant, conversation) with its transcript and current lead analysis —
    the table the dashboards read. An idempotent upsert of the partition's analyzed
    pending conversations; loaded ones leave the pending list, and a conversation whose Chatwoot
    labels changed gets its new labels and outcome without a new analysis. Each partition's
    materialization records what it holds now, and how many rows this run loaded."""
    engine = analytics.engine()
    now = dt.datetime.now(dt.timezone.utc)
    for tenant, days in analytics.tenant_days(context.partition_keys):
        identity, stand_in = tenant.identity(), regex_identity()
        params = {"tenant_id": tenant.tenant_id, "analyzer": identity.analyzer, "model": identity.model,
                  "prompt_version": identity.prompt_version}
        # The regex answer stands in, provisional, while an OpenAI tenant's conversation goes on.
        stand_in_params = {"regex_analyzer": stand_in.analyzer, "regex_model": stand_in.model,
                           "regex_prompt_version": stand_in.prompt_version}
        for day in days:
            with engine.begin() as conn:
                loaded = conn.execute(sql("analytics/load_conversations_analytics"), {**params, **stand_in_params, "day": day, "loaded_at": now}).rowcount
                relabelled = conn.execute(sql("analytics/refresh_outcomes_for_partition"), {"tenant_id": tenant.tenant_id, "day": day}).rowcount
                conn.execute(sql("analytics/delete_loaded_pending"), {**params, "day": day})
                state = conn.execute(sql("analytics/partition_state"), {"tenant_id": tenant.tenant_id, "day": day}).one()
            add_partition_metadata(context, day, tenant.slug, {**_counts(state._mapping), "provisional": int(state.provisional), "loaded": loaded,
                                                          "outcomes_updated": relabelled})
    return dg.MaterializeResult()


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
    now = dt.datetime.now(dt.timezone.utc)
    for tenant, days in analytics.tenant_days(context.partition_keys):
        for day in days:
            params = {"tenant_id": tenant.tenant_id, "day": day}
            with engine.begin() as conn:
                conn.execute(sql("analytics/refresh_tenant_daily_kpis"), {**params, "updated_at": now})
                row = conn.execute(sql("analytics/kpis_for_partition"), params).one()
            figures = {"conversations": row.conversations, "leads": row.leads, "visits": row.visits_scheduled,
                       "high_probability": row.high_probability, "named": row.named_contacts}
            add_partition_metadata(context, day, tenant.slug, {**_counts(figures), "lead_rate": round(float(row.lead_rate), 4)})
    return dg.MaterializeResult()
