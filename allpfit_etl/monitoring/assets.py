"""Monitoring assets, recomputed from the tables, delete-then-insert.

Per day (``analyzer_daily_kpis``, ``llm_spend_daily``): in the lead_analysis job, on its day × tenant
partitions — quality over the run's days, spend over the months touched and the current one (calls
are dated when they are made). Per tenant-month or global (``analyzer_agreement``,
``analyzer_disagreements``, ``lead_report``, and the ground truth in ``quality_assets``):
unpartitioned, refreshed once after the runs that updated what they read (the
``monitoring_refresh`` job, the CLI after its runs, the automation sensor under live traffic).
"""

import datetime as dt

import dagster as dg

from allpfit_etl import settings
from allpfit_etl.analysis.openai_resource import LeadAnalysisOpenAI
from allpfit_etl.jobs import GLOBAL_TAG, MONITORING_REFRESH
from allpfit_etl.monitoring.quality_assets import GROUND_TRUTH_ASSETS
from allpfit_etl.partitions import BACKFILL_POLICY, add_partition_metadata, parse_partition_key, tenant_day_partitions
from allpfit_etl.resources import AnalyticsDatabase
from allpfit_etl.tenants.registry import list_tenants

# The tables are built with pandas (`allpfit_etl.monitoring.store`), imported in the steps that use
# it: loading the code location (every CLI command, the daemon's sensors) does not pay for it.
GROUP = "monitoring"
NUMERIC_FIGURES = (
    "compared", "is_lead_agreement", "is_lead_kappa", "visita_agreement", "visita_kappa", "probabilidade_mae",
    "regex_lead_rate", "openai_lead_rate", "names_match_share", "disagreements",
)




def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


@dg.asset(
    deps=["conversation_analyses"],
    partitions_def=tenant_day_partitions,
    backfill_policy=BACKFILL_POLICY,
    group_name=GROUP,
    kinds={"postgres"},
)
def analyzer_daily_kpis(context: dg.AssetExecutionContext, analytics: AnalyticsDatabase) -> dg.MaterializeResult:
    """Per tenant, day and analyzer: lead rate, visits scheduled, high-probability (4–5) share."""
    from allpfit_etl.monitoring import store

    for tenant, days in analytics.tenant_days(context.partition_keys):
        rows = store.refresh_quality(analytics.engine(), tenant, days[0], days[-1], _now())
        for day in days:
            add_partition_metadata(context, day, tenant.slug, {"rows": rows})
    return dg.MaterializeResult()


# What the previous refresh had read: the storage id of the newest conversation_analyses
# materialization it saw. The next refresh recomputes only the tenant-months materialized since.
SEEN_UNTIL = "analyses_seen_until"


def _months_to_refresh(context: dg.AssetExecutionContext) -> tuple[dict[str, set[dt.date]] | None, int]:
    """The tenant-months whose answers were materialized since the last refresh (``None``: every
    month, on the first refresh), and the newest materialization read."""
    from allpfit_etl.monitoring.store import month_start

    instance, analyses = context.instance, dg.AssetKey("conversation_analyses")
    newest = instance.fetch_materializations(dg.AssetRecordsFilter(asset_key=analyses), limit=1).records
    seen_until = newest[0].storage_id if newest else 0
    previous = instance.fetch_materializations(dg.AssetRecordsFilter(asset_key=dg.AssetKey("analyzer_agreement")),
                                              limit=1).records
    since = previous[0].asset_materialization.metadata.get(SEEN_UNTIL) if previous else None
    if since is None:
        return None, seen_until
    months: dict[str, set[dt.date]] = {}
    cursor = None
    while True:
        page = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=analyses, after_storage_id=int(since.value),
                                  before_storage_id=seen_until + 1), limit=1000, cursor=cursor)
        for record in page.records:
            if record.partition_key:
                day, slug = parse_partition_key(record.partition_key)
                months.setdefault(slug, set()).add(month_start(day))
        if not page.has_more:
            return months, seen_until
        cursor = page.cursor


@dg.multi_asset(
    specs=[
        dg.AssetSpec("analyzer_agreement", deps=["conversation_analyses"], group_name=GROUP, kinds={"pandas", "postgres"},
                     automation_condition=MONITORING_REFRESH, tags=GLOBAL_TAG,
                     description="Per tenant and month: regex vs OpenAI on the conversations both answered for the "
                                 "same content (agreement, Cohen's kappa, 2×2 matrices, probability MAE, names)."),
        dg.AssetSpec("analyzer_disagreements", deps=["conversation_analyses"], group_name=GROUP, kinds={"pandas", "postgres"},
                     automation_condition=MONITORING_REFRESH, tags=GLOBAL_TAG,
                     description="The conversations where regex and OpenAI disagree on is_lead or visita_agendada, "
                                 "or differ by ≥ 2 in probability, with both answers and the start of the transcript."),
    ],
)
def analyzer_agreement(context: dg.AssetExecutionContext, analytics: AnalyticsDatabase):
    """Recomputes the tenant-months whose answers changed since the last refresh (every month the
    first time): a month's agreement is always over all its days. Metadata: each tenant's latest
    month, and the months this refresh recomputed."""
    from allpfit_etl.monitoring import store
    from allpfit_etl.monitoring.agreement import markdown_table

    engine, now = analytics.engine(), _now()
    months, seen_until = _months_to_refresh(context)
    tenants = list_tenants(engine)
    metadata, tables, refreshed = {}, [], []
    for tenant in tenants:
        todo = store.conversation_months(engine, tenant.tenant_id) if months is None else months.get(tenant.slug, set())
        for month in sorted(todo):
            comparison = store.refresh_month(engine, tenant, month, now)
            refreshed.append(f"{tenant.slug} {month:%Y-%m}")
            if comparison.figures.get("compared"):
                tables.append(f"**{tenant.slug} {month:%Y-%m}**\n\n{markdown_table(comparison.figures)}")
        latest = store.latest_agreement(engine, tenant.tenant_id)
        if latest:
            prefix = f"{tenant.slug}." if len(tenants) > 1 else ""
            metadata.update({prefix + k: float(latest[k]) for k in NUMERIC_FIGURES if latest.get(k) is not None})
            metadata[prefix + "month"] = f"{latest['month']:%Y-%m}"
    refreshed_md = dg.MetadataValue.md("\n\n".join(tables) or "nothing compared in the months refreshed")
    yield dg.MaterializeResult(asset_key="analyzer_agreement", metadata={
        **metadata, "months_refreshed": len(refreshed), "refreshed": ", ".join(refreshed) or "none",
        "agreement": refreshed_md, SEEN_UNTIL: seen_until})
    yield dg.MaterializeResult(asset_key="analyzer_disagreements", metadata={
        "dagster/row_count": store.disagreement_count(engine), SEEN_UNTIL: seen_until})


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


# Unpartitioned: one file over all tenants and days, rewritten with the rest of the global monitoring.
@dg.asset(
    deps=["tenant_daily_kpis", "analyzer_agreement", "analyzer_disagreements", "analyzer_daily_kpis", llm_spend_daily,
          "lead_funnel", "analyzer_quality", "analyzer_calibration"],
    group_name=GROUP,
    kinds={"html"},
    automation_condition=MONITORING_REFRESH, tags=GLOBAL_TAG,
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


MONITORING_ASSETS = [analyzer_daily_kpis, analyzer_agreement, llm_spend_daily, lead_report, *GROUND_TRUTH_ASSETS]
