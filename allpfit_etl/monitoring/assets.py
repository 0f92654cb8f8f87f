"""Monitoring assets, in the lead_analysis job after the analysis and the load.

They share the job's day × tenant partitions (no partition mapping needed) and recompute from
the tables, delete-then-insert: the agreement over the whole tenant-month(s) a run touches (a
month's figures are always over all its days, whichever day ran last), quality over the run's
days, spend over the months touched and the current one (calls are dated when they are made).
"""

import datetime as dt

import dagster as dg

from allpfit_etl import settings
from allpfit_etl.analysis.openai_resource import LeadAnalysisOpenAI
from allpfit_etl.monitoring.quality_assets import GROUND_TRUTH_ASSETS
from allpfit_etl.partitions import BACKFILL_POLICY, add_partition_metadata, tenant_day_partitions
from allpfit_etl.resources import AnalyticsDatabase

# The tables are built with pandas (`allpfit_etl.monitoring.store`), imported in the steps that use
# it: loading the code location (every CLI command, the daemon's sensors) does not pay for it.
GROUP = "monitoring"
NUMERIC_FIGURES = (
    "compared", "is_lead_agreement", "is_lead_kappa", "visita_agreement", "visita_kappa", "probabilidade_mae",
    "regex_lead_rate", "openai_lead_rate", "names_match_share", "disagreements",
)




def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


@dg.multi_asset(
    specs=[
        dg.AssetSpec("analyzer_agreement", deps=["conversation_analyses"], group_name=GROUP, kinds={"pandas", "postgres"},
                     description="Per tenant and month: regex vs OpenAI on the conversations both answered for the "
                                 "same content (agreement, Cohen's kappa, 2×2 matrices, probability MAE, names)."),
        dg.AssetSpec("analyzer_disagreements", deps=["conversation_analyses"], group_name=GROUP, kinds={"pandas", "postgres"},
                     description="The conversations where regex and OpenAI disagree on is_lead or visita_agendada, "
                                 "or differ by ≥ 2 in probability, with both answers and the start of the transcript."),
        dg.AssetSpec("analyzer_daily_kpis", deps=["conversation_analyses"], group_name=GROUP, kinds={"pandas", "postgres"},
                     description="Per tenant, day and analyzer: lead rate, visits scheduled, high-probability (4–5) share."),
    ],
    partitions_def=tenant_day_partitions,
    backfill_policy=BACKFILL_POLICY,
)
def analyzer_comparison(context: dg.AssetExecutionContext, analytics: AnalyticsDatabase):
    """One pass over the stored answers of each tenant-month the run touches feeds the three tables.

    Each (day, tenant) partition gets the figures of its own tenant-month: a range run over
    several months or a backfill does not copy one month's figures onto the others."""
    from allpfit_etl.monitoring import store

    engine = analytics.engine()
    now = _now()
    for tenant, days in analytics.tenant_days(context.partition_keys):
        for month in store.months_of(days):  # a month's agreement is over all its days
            comparison = store.refresh_month(engine, tenant, month, now)
            for day in (d for d in days if store.month_start(d) == month):
                _add_comparison_metadata(context, day, tenant.slug, month, comparison)
        quality_rows = store.refresh_quality(engine, tenant, days[0], days[-1], now)
        for day in days:
            add_partition_metadata(context, day, tenant.slug, {"rows": quality_rows}, asset_key="analyzer_daily_kpis")
    yield dg.MaterializeResult(asset_key="analyzer_agreement")
    yield dg.MaterializeResult(asset_key="analyzer_disagreements")
    yield dg.MaterializeResult(asset_key="analyzer_daily_kpis")


def _add_comparison_metadata(context: dg.AssetExecutionContext, day: dt.date, slug: str, month: dt.date,
                             comparison) -> None:
    from allpfit_etl.monitoring.agreement import markdown_table

    figures = comparison.figures
    numbers = {k: float(figures[k]) for k in NUMERIC_FIGURES if figures.get(k) is not None}
    table = f"**{slug} {month:%Y-%m}**\n\n{markdown_table(figures)}" if figures.get("compared") else "nothing compared"
    add_partition_metadata(context, day, slug, {**numbers, "month": f"{month:%Y-%m}", "agreement": dg.MetadataValue.md(table)},
                           asset_key="analyzer_agreement")
    add_partition_metadata(context, day, slug, {"disagreements": len(comparison.disagreements), "month": f"{month:%Y-%m}"},
                           asset_key="analyzer_disagreements")


@dg.asset(
    partitions_def=tenant_day_partitions,
    backfill_policy=BACKFILL_POLICY,
    deps=["conversation_analyses"],
    group_name=GROUP,
    kinds={"pandas", "postgres"},
)
def llm_spend_daily(context: dg.AssetExecutionContext, analytics: AnalyticsDatabase,
                    openai: LeadAnalysisOpenAI) -> dg.MaterializeResult:
    """The llm_usage ledger per tenant, local day, model and mode: calls, failed calls, tokens by
    kind, cost and average latency. Metadata: month-to-date spend against monthly_budget_brl, the
    month-end projection, and for regex tenants with a shadow sample the cost of switching to OpenAI."""
    from allpfit_etl.monitoring import store

    engine = analytics.engine()
    timezone, now = settings.timezone_name(), _now()
    today = store.local_today(timezone, now)
    metadata: dict = {}
    tenants = [(tenant, store.months_of(days)) for tenant, days in analytics.tenant_days(context.partition_keys)]
    for tenant, months in tenants:
        # the calls this run made are dated today, whatever day partitions it analyzed
        for month in sorted(set(months) | {store.month_start(today)}):
            daily = store.refresh_spend_month(engine, tenant, month, timezone, now)
            if month == store.month_start(today):
                metadata[f"{tenant.slug}.calls_today" if len(tenants) > 1 else "calls_today"] = int(
                    daily[daily["day"] == today]["calls"].sum()) if not daily.empty else 0
        outlook = store.cost_outlook(engine, tenant, store.month_start(today), timezone, today=today,
                                     volume_month=max(months), usd_brl=openai.usd_brl,
                                     price_overrides=openai.price_overrides)
        prefix = f"{tenant.slug}." if len(tenants) > 1 else ""
        metadata.update({prefix + k: v for k, v in outlook.metadata().items()})
    return dg.MaterializeResult(metadata=metadata)


# Unpartitioned: it is one file over all tenants and days, rewritten by every run that refreshes
# the monitoring (in a partitioned run it follows the partitions it depends on, all of them).
@dg.asset(
    deps=["tenant_daily_kpis", "analyzer_agreement", "analyzer_disagreements", "analyzer_daily_kpis", llm_spend_daily,
          "lead_funnel", "analyzer_quality", "analyzer_calibration"],
    group_name=GROUP,
    kinds={"html"},
)
def lead_report(context: dg.AssetExecutionContext, analytics: AnalyticsDatabase,
                openai: LeadAnalysisOpenAI) -> dg.MaterializeResult:
    """The self-contained HTML dashboard (all tenants): spend against budgets, lead rate and visits,
    regex vs OpenAI agreement and disagreement examples, the funnel and each analyzer's calibration
    against the labels. Its path is in the metadata."""
    from allpfit_etl.monitoring.report import collect_report_data, default_report_path, render_report, write_report

    data = collect_report_data(analytics.engine(), usd_brl=openai.usd_brl, price_overrides=openai.price_overrides)
    path = write_report(render_report(data), default_report_path())
    context.log.info(f"report written to {path}")
    return dg.MaterializeResult(metadata={"path": dg.MetadataValue.path(str(path)), "tenants": len(data.outlooks)})


MONITORING_ASSETS = [analyzer_comparison, llm_spend_daily, lead_report, *GROUND_TRUTH_ASSETS]
