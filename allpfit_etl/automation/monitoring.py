"""The sensor that refreshes the global monitoring (``jobs.GLOBAL_MONITORING``) after the runs that
updated what it reads: Dagster's automation conditions (``jobs.MONITORING_REFRESH``), evaluated by
the daemon, on by default (Dagster's own default automation sensor starts stopped)."""

import dagster as dg

from allpfit_etl.jobs import GLOBAL_SELECTION, MONITORING_TAG

monitoring_refresh_sensor = dg.AutomationConditionSensorDefinition(
    "monitoring_refresh_sensor",
    target=GLOBAL_SELECTION,
    run_tags={MONITORING_TAG: "refresh"},
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=60,
    description="Refreshes the agreement, the funnel, the quality against the labels and the report after "
                "the runs that updated what they read, at most once per ALLPFIT_MONITORING_REFRESH_CRON tick.",
)
