"""The two asset jobs: ``lead_analysis`` over (day, tenant) partitions, which every trigger runs
(CLI, sensors, schedule, backfills), and ``monitoring_refresh``, the monitoring computed per month
or over all tenants, refreshed once after them instead of by every tenant's run."""

import dagster as dg

from allpfit_etl import settings
from allpfit_etl.partitions import tenant_day_partitions

LEAD_ANALYSIS_JOB_NAME = "lead_analysis"
MONITORING_JOB_NAME = "monitoring_refresh"
# Runs that refresh the global monitoring carry this tag; dagster.yaml lets one run at a time
# (each recomputes tables delete-then-insert).
MONITORING_TAG = "allpfit/monitoring"

# Unpartitioned: their rows are per tenant and month (or one file over everything), so one run
# refreshes them for every tenant. Named by key here; the assets are in ``monitoring``.
GLOBAL_MONITORING = ("analyzer_agreement", "analyzer_disagreements", "lead_funnel", "analyzer_quality",
                     "analyzer_calibration", "lead_report")
# The assets carry this tag: a selection by tag holds in Definitions that leave some of them out.
GLOBAL_TAG = {"allpfit/grain": "global"}
GLOBAL_SELECTION = dg.AssetSelection.tag("allpfit/grain", "global")

# When something they read was updated, at most once per cron tick (every 10 minutes by default):
# under live traffic a tenant's run ends every minute or so, and recomputing the months and the
# report after each of them was most of a live day's CPU. Runs of their parents still under way do
# not hold them back (live traffic always has one); what they miss, the next tick catches.
MONITORING_REFRESH = (
    dg.AutomationCondition.cron_tick_passed(settings.monitoring_refresh_cron(), settings.timezone_name()).since_last_handled()
    & dg.AutomationCondition.any_deps_updated().since_last_handled()
    & ~dg.AutomationCondition.in_progress()
).with_label("refresh_after_updates")

lead_analysis_job = dg.define_asset_job(
    LEAD_ANALYSIS_JOB_NAME,
    selection=dg.AssetSelection.groups("extract", "analysis", "load", "monitoring") - GLOBAL_SELECTION,
    partitions_def=tenant_day_partitions,
    description="Extract → pending filter → analysis → load → daily monitoring for (day, tenant) partitions.",
)

monitoring_job = dg.define_asset_job(
    MONITORING_JOB_NAME,
    selection=GLOBAL_SELECTION,
    tags={MONITORING_TAG: "refresh"},
    description="Regex vs OpenAI per tenant-month, the funnel and quality against the labels, the HTML report.",
)
