"""Asset checks on the loaded data, evaluated and recorded per (tenant, day) partition.

Dagster 1.13 records an ``AssetCheckResult`` under the run's partition only when the run has
exactly one; a range run (the CLI's, a backfill's) would record it once, without a partition,
and every partition would show the check as skipped. So each check yields one
``AssetCheckEvaluation`` per partition, pointing at that partition's latest materialization —
the pointer Dagster uses to show the result as current — and a bad day of one tenant fails
that partition alone. The four checks share one step: a step of its own each would cost a
process each in every daemon-launched run.
"""

from collections.abc import Callable, Iterator

import dagster as dg
import sqlalchemy as sa

from allpfit_etl import dagster_compat, settings
from allpfit_etl.analysis.budget import month_to_date
from allpfit_etl.db import sql
from allpfit_etl.load.assets import conversations_analytics
from allpfit_etl.partitions import partition_key, tenant_day_partitions
from allpfit_etl.resources import AnalyticsDatabase
from allpfit_etl.tenants.registry import Tenant

CHECKED_ASSET = conversations_analytics.key

Evaluate = Callable[[sa.Connection, Tenant, object], tuple[bool, dict]]


def latest_materialization_pointer(instance: dg.DagsterInstance, asset_key: dg.AssetKey, partition: str):
    """Dagster's pointer to the partition's latest materialization (None before the first)."""
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=asset_key, asset_partitions=[partition]), limit=1
    ).records
    return dagster_compat.check_target(records[0]) if records else None


def _nul_bytes(conn: sa.Connection, tenant: Tenant, day) -> tuple[bool, dict]:
    rows = conn.execute(sql("analytics/text_columns_for_partition"), {"tenant_id": tenant.tenant_id, "day": day})
    offending = sum(1 for row in rows if any(v and ("\x00" in v or "\\u0000" in v) for v in row))
    return offending == 0, {"rows_with_nul": offending}


def _coverage(conn: sa.Connection, tenant: Tenant, day) -> tuple[bool, dict]:
    missing = [r[0] for r in conn.execute(sql("analytics/coverage_for_partition"), {"tenant_id": tenant.tenant_id, "day": day})]
    return not missing, {"missing": len(missing), "sample_conversation_ids": str(missing[:20])}


def _probability_range(conn: sa.Connection, tenant: Tenant, day) -> tuple[bool, dict]:
    bad = conn.execute(sql("analytics/out_of_range_probability_for_partition"), {"tenant_id": tenant.tenant_id, "day": day}).scalar_one()
    return bad == 0, {"out_of_range": bad}


def _budget(conn: sa.Connection, tenant: Tenant, day) -> tuple[bool, dict]:
    month = month_to_date(conn.engine, tenant.tenant_id, settings.timezone_name())
    budget = tenant.features.monthly_budget_brl
    deferred = conn.execute(sql("analytics/budget_deferrals_for_partition"), {"tenant_id": tenant.tenant_id, "day": day}).scalar_one()
    over = budget is not None and month.spent_brl > budget
    # Calls of an unpriced model have an unknown cost: the month's spend is not a number then.
    spent = f"unknown: {month.describe()}" if month.unpriced_calls else round(month.spent_brl, 6)
    return not over and deferred == 0, {
        "spent_brl_month": spent,
        "unpriced_calls_month": month.unpriced_calls,
        "budget_brl": budget if budget is not None else -1,
        "deferred_by_budget": deferred,
    }


# name → (evaluation, description): the checks the UI lists on conversations_analytics.
CHECKS: dict[str, tuple[Evaluate, str]] = {
    "no_nul_bytes_stored": (
        _nul_bytes, "No text column of the partition's rows holds a NUL byte (or its escaped form)."),
    "every_conversation_analyzed_or_failed": (
        _coverage, "Every extracted conversation has a current analysis or a recorded failure."),
    "probabilidade_conversao_in_range": (
        _probability_range, "``probabilidade_conversao`` is always within 0–5."),
    "spend_within_monthly_budget": (
        _budget, "Month-to-date OpenAI spend is within the tenant's budget, and no conversation of the partition "
                 "is waiting because the budget ran out."),
}
CHECK_SPECS = [
    dg.AssetCheckSpec(name, asset=CHECKED_ASSET, description=description, blocking=False,
                      partitions_def=tenant_day_partitions)
    for name, (_, description) in CHECKS.items()
]


@dg.multi_asset_check(specs=CHECK_SPECS)
def conversations_analytics_checks(context: dg.AssetCheckExecutionContext, analytics: AnalyticsDatabase) -> Iterator:
    """The data checks of the run's (tenant, day) partitions, in one step: one evaluation per
    check and partition, then the step's outputs."""
    engine = analytics.engine()
    failed: dict[str, list[str]] = {name: [] for name in CHECKS}
    for tenant, days in analytics.tenant_days(context.partition_keys):
        with engine.connect() as conn:
            for day in days:
                key = str(partition_key(day, tenant.slug))
                target = latest_materialization_pointer(context.instance, CHECKED_ASSET, key)
                for name, (evaluate, _) in CHECKS.items():
                    passed, metadata = evaluate(conn, tenant, day)
                    if not passed:
                        failed[name].append(key)
                    yield dg.AssetCheckEvaluation(
                        asset_key=CHECKED_ASSET, check_name=name, passed=passed, metadata=metadata, partition=key,
                        target_materialization_data=target, blocking=False,
                    )
    for name, keys in failed.items():
        if keys:
            context.log.warning(f"{name} failed on {len(keys)} partition(s): {', '.join(keys[:20])}")
    for spec in CHECK_SPECS:
        yield dg.Output(None, output_name=spec.get_python_identifier())


ASSET_CHECKS = [conversations_analytics_checks]
