"""The asset job every trigger (CLI, sensors, schedule, backfills) materializes."""

import dagster as dg

from allpfit_etl.partitions import tenant_day_partitions

LEAD_ANALYSIS_JOB_NAME = "lead_analysis"

lead_analysis_job = dg.define_asset_job(
    LEAD_ANALYSIS_JOB_NAME,
    selection=dg.AssetSelection.groups("extract", "analysis", "load", "monitoring"),
    partitions_def=tenant_day_partitions,
    description="Extract → pending filter → analysis → load → monitoring for (day, tenant) partitions.",
)
