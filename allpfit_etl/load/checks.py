"""Asset checks on the loaded data, evaluated per (tenant, day) partition."""

import dagster as dg

from allpfit_etl import settings
from allpfit_etl.analysis.budget import month_to_date_spend_brl
from allpfit_etl.db import sql
from allpfit_etl.load.assets import conversations_analytics
from allpfit_etl.partitions import tenant_day_partitions, tenant_days
from allpfit_etl.resources import AnalyticsDatabase


def _partition_params(context, engine):
    """(connection, query parameters) for each (tenant, day) partition of the check."""
    for tenant, days in tenant_days(engine, context.partition_keys):
        with engine.connect() as conn:
            for day in days:
                yield conn, {"tenant_id": tenant.tenant_id, "day": day}


@dg.asset_check(asset=conversations_analytics, partitions_def=tenant_day_partitions, blocking=False)
def no_nul_bytes_stored(context: dg.AssetCheckExecutionContext, analytics: AnalyticsDatabase) -> dg.AssetCheckResult:
    """No text column of the partition's rows holds a NUL byte (or its escaped form)."""
    offending = 0
    query = sql("analytics/text_columns_for_partition")
    for conn, params in _partition_params(context, analytics.engine()):
        offending += sum(
            1 for row in conn.execute(query, params) if any(v and ("\x00" in v or "\\u0000" in v) for v in row)
        )
    return dg.AssetCheckResult(passed=offending == 0, metadata={"rows_with_nul": offending})


@dg.asset_check(asset=conversations_analytics, partitions_def=tenant_day_partitions, blocking=False)
def every_conversation_analyzed_or_failed(
    context: dg.AssetCheckExecutionContext, analytics: AnalyticsDatabase
) -> dg.AssetCheckResult:
    """Every extracted conversation has a current analysis or a recorded failure."""
    missing: list[int] = []
    for conn, params in _partition_params(context, analytics.engine()):
        missing += [r[0] for r in conn.execute(sql("analytics/coverage_for_partition"), params)]
    return dg.AssetCheckResult(
        passed=not missing,
        metadata={"missing": len(missing), "sample_conversation_ids": str(missing[:20])},
    )


@dg.asset_check(asset=conversations_analytics, partitions_def=tenant_day_partitions, blocking=False)
def probabilidade_conversao_in_range(
    context: dg.AssetCheckExecutionContext, analytics: AnalyticsDatabase
) -> dg.AssetCheckResult:
    """``probabilidade_conversao`` is always within 0–5."""
    bad = 0
    query = sql("analytics/out_of_range_probability_for_partition")
    for conn, params in _partition_params(context, analytics.engine()):
        bad += conn.execute(query, params).scalar_one()
    return dg.AssetCheckResult(passed=bad == 0, metadata={"out_of_range": bad})


@dg.asset_check(asset=conversations_analytics, partitions_def=tenant_day_partitions, blocking=False)
def spend_within_monthly_budget(
    context: dg.AssetCheckExecutionContext, analytics: AnalyticsDatabase
) -> dg.AssetCheckResult:
    """Month-to-date OpenAI spend is within the tenant's budget, and no conversation of the
    partition is waiting because the budget ran out."""
    engine = analytics.engine()
    passed, metadata = True, {}
    for tenant, days in tenant_days(engine, context.partition_keys):
        slug = tenant.slug
        spent = month_to_date_spend_brl(engine, tenant.tenant_id, settings.timezone_name())
        budget = tenant.features.monthly_budget_brl
        with engine.connect() as conn:
            deferred = sum(
                conn.execute(sql("analytics/budget_deferrals_for_partition"), {"tenant_id": tenant.tenant_id, "day": d}).scalar_one()
                for d in days
            )
        over = budget is not None and spent > budget
        passed = passed and not over and deferred == 0
        metadata.update({
            f"{slug}.spent_brl_month": round(spent, 6),
            f"{slug}.budget_brl": budget if budget is not None else -1,
            f"{slug}.deferred_by_budget": deferred,
        })
    return dg.AssetCheckResult(passed=passed, metadata=metadata)


ASSET_CHECKS = [
    no_nul_bytes_stored,
    every_conversation_analyzed_or_failed,
    probabilidade_conversao_in_range,
    spend_within_monthly_budget,
]
