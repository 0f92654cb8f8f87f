"""The analyzers against the labels: ``lead_funnel``, ``analyzer_quality`` and ``analyzer_calibration``.

Unpartitioned, at their real grain (one row per tenant and month, recomputed whole from the
tables): a label change updates a month whatever day partition re-read it, and a tenant's label
mapping changed since applies to every month at once. Refreshed with the rest of the global
monitoring (``jobs.MONITORING_REFRESH``).
"""

import datetime as dt

import dagster as dg

from allpfit_etl.jobs import GLOBAL_TAG, MONITORING_REFRESH
from allpfit_etl.resources import AnalyticsDatabase
from allpfit_etl.tenants.registry import list_tenants

GROUP = "monitoring"


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _latest(frame, slug: str, columns: dict[str, str], multi: bool) -> dict:
    """The latest month's figures of one tenant, named ``slug.figure`` when there are several tenants
    (numbers the UI plots over materializations)."""
    if frame.empty:
        return {}
    row = frame.iloc[-1]
    prefix = f"{slug}." if multi else ""
    return {prefix + name: float(row[column]) for name, column in columns.items() if row[column] is not None
            and row[column] == row[column]}


@dg.asset(
    deps=["conversations_analytics"],
    group_name=GROUP,
    kinds={"pandas", "postgres"},
    automation_condition=MONITORING_REFRESH, tags=GLOBAL_TAG,
)
def lead_funnel(context: dg.AssetExecutionContext, analytics: AnalyticsDatabase) -> dg.MaterializeResult:
    """Per tenant and month: conversations, leads and visits scheduled (as the analyzer says), visited
    and converted (as the Chatwoot labels say), the lead conversion rate (converted ÷ leads) and the
    share of conversations with an outcome label. Metadata: each tenant's latest month."""
    from allpfit_etl.monitoring.ground_truth_store import refresh_funnel
    from allpfit_etl.monitoring.ground_truth_text import funnel_markdown

    engine, now = analytics.engine(), _now()
    tenants = list_tenants(engine)
    metadata, tables, rows = {}, [], 0
    for tenant in tenants:
        funnel = refresh_funnel(engine, tenant, now)
        rows += len(funnel)
        metadata.update(_latest(funnel, tenant.slug, {
            "conversion_rate": "conversion_rate", "labelled_share": "labelled_share", "leads": "leads",
            "converted": "converted"}, len(tenants) > 1))
        if not funnel.empty:
            tables.append(f"**{tenant.slug}**\n\n{funnel_markdown(funnel)}")
    return dg.MaterializeResult(metadata={
        **metadata, "dagster/row_count": rows, "funnel": dg.MetadataValue.md("\n\n".join(tables) or "nothing loaded")})


@dg.multi_asset(
    specs=[
        dg.AssetSpec("analyzer_quality", deps=["conversation_analyses", "chatwoot_conversations"], group_name=GROUP,
                     kinds={"pandas", "postgres"}, automation_condition=MONITORING_REFRESH, tags=GLOBAL_TAG,
                     description="Per tenant, month, analyzer and prompt version, over the labelled conversations: "
                                 "precision, recall and F1 of is_lead, precision and recall of visita_agendada "
                                 "against visited, AUC of probabilidade_conversao for converted. Scope 'paired': "
                                 "the conversations both analyzers answered, so they are compared on the same ones."),
        dg.AssetSpec("analyzer_calibration", deps=["conversation_analyses", "chatwoot_conversations"], group_name=GROUP,
                     kinds={"pandas", "postgres"}, automation_condition=MONITORING_REFRESH, tags=GLOBAL_TAG,
                     description="Per tenant, month, analyzer, prompt version and probabilidade_conversao 0–5: "
                                 "labelled conversations and how many converted."),
    ],
)
def analyzer_ground_truth(context: dg.AssetExecutionContext, analytics: AnalyticsDatabase):
    """One pass over the stored answers of the labelled conversations feeds both tables."""
    from allpfit_etl.monitoring.ground_truth import fair_rows
    from allpfit_etl.monitoring.ground_truth_store import refresh_quality
    from allpfit_etl.monitoring.ground_truth_text import calibration_markdown, quality_markdown

    engine, now = analytics.engine(), _now()
    tenants = list_tenants(engine)
    quality_meta, quality_tables, calibration_tables, quality_count, calibration_count = {}, [], [], 0, 0
    for tenant in tenants:
        quality, calibration = refresh_quality(engine, tenant, now)
        quality_count, calibration_count = quality_count + len(quality), calibration_count + len(calibration)
        if quality.empty:
            continue
        fair = fair_rows(quality)
        latest = fair[fair["month"] == fair["month"].max()]
        for analyzer, rows in latest.groupby("analyzer"):
            slug = f"{tenant.slug}.{analyzer}" if len(tenants) > 1 else analyzer
            quality_meta.update(_latest(rows, slug, {"is_lead_f1": "is_lead_f1", "is_lead_precision": "is_lead_precision",
                                                     "is_lead_recall": "is_lead_recall", "auc_converted": "auc_converted",
                                                     "labelled": "labelled"}, True))
        quality_tables.append(f"**{tenant.slug}**\n\n{quality_markdown(quality)}")
        calibration_tables.append(f"**{tenant.slug}**\n\n{calibration_markdown(calibration)}")
    yield dg.MaterializeResult(asset_key="analyzer_quality", metadata={
        **quality_meta, "dagster/row_count": quality_count,
        "quality": dg.MetadataValue.md("\n\n".join(quality_tables) or "no labelled conversation analysed yet")})
    yield dg.MaterializeResult(asset_key="analyzer_calibration", metadata={
        "dagster/row_count": calibration_count,
        "calibration": dg.MetadataValue.md("\n\n".join(calibration_tables) or "no labelled conversation analysed yet")})


GROUND_TRUTH_ASSETS = [lead_funnel, analyzer_ground_truth]
