"""The allpfit-etl code location: assets, checks, jobs, sensors, schedules and resources."""

import dagster as dg

from allpfit_etl.analysis.assets import conversation_analyses
from allpfit_etl.analysis.openai_resource import LeadAnalysisOpenAI
from allpfit_etl.automation.alerts import AlertWebhook, run_failure_alert_sensor
from allpfit_etl.automation.batch_sensor import openai_batch_sensor
from allpfit_etl.automation.monitoring import monitoring_refresh_sensor
from allpfit_etl.automation.schedules import every_two_hours_schedule
from allpfit_etl.automation.sensors import chatwoot_activity_sensor, tenant_partitions_sensor
from allpfit_etl.extract.assets import chatwoot_conversations
from allpfit_etl.jobs import lead_analysis_job, monitoring_job
from allpfit_etl.load.assets import conversations_analytics, tenant_daily_kpis
from allpfit_etl.load.checks import ASSET_CHECKS
from allpfit_etl.monitoring.assets import MONITORING_ASSETS
from allpfit_etl.pending.assets import pending_conversations
from allpfit_etl.resources import AnalyticsDatabase, ChatwootDatabase, env_var_or_none

ASSETS = [
    chatwoot_conversations,
    pending_conversations,
    conversation_analyses,
    conversations_analytics,
    tenant_daily_kpis,
]


# Each step of a daemon-launched run is its own process. Forked from a server that has imported
# this code location once per run, a step starts in a fraction of a second instead of paying
# Python, Dagster, pandas and openai imports again (seconds on a small machine) — a run has
# over a dozen steps. The CLI without a daemon and the sensor's incremental runs choose the
# in_process executor in their run config: a run of a few conversations is then one process.
# Dagster's default executor with only its default changed: run config can still choose
# `in_process`, another start_method or max_concurrent (a configured dict would ignore them all).
# The monitoring steps' pandas and the chunk steps' openai SDK too: the code location itself
# imports them only in those steps (and a backfill has a chunk step per chunk).
FORKSERVER = {"forkserver": {"preload_modules": ["allpfit_etl.definitions", "allpfit_etl.monitoring.store", "openai"]}}


def _forkserver_unless_configured(config: dict) -> dict:
    if "multiprocess" in config and "start_method" not in config["multiprocess"]:
        return {"multiprocess": {**config["multiprocess"], "start_method": FORKSERVER}}
    return config


STEP_EXECUTOR = dg.multi_or_in_process_executor.configured(
    _forkserver_unless_configured, config_schema=dg.multi_or_in_process_executor.config_schema.as_field()
)


def build_resources() -> dict:
    """Resources from the environment; unset database URLs fall back to the embedded SQLite demo."""
    return {
        "chatwoot": ChatwootDatabase(url=env_var_or_none("CHATWOOT_DATABASE_URL")),
        "analytics": AnalyticsDatabase(url=env_var_or_none("ANALYTICS_DATABASE_URL")),
        "openai": LeadAnalysisOpenAI(api_key=env_var_or_none("OPENAI_API_KEY"), base_url=env_var_or_none("OPENAI_BASE_URL")),
        "alert_webhook": AlertWebhook(url=env_var_or_none("ALERT_WEBHOOK_URL")),
    }


defs = dg.Definitions(
    assets=ASSETS + MONITORING_ASSETS,
    asset_checks=ASSET_CHECKS,
    jobs=[lead_analysis_job, monitoring_job],
    sensors=[tenant_partitions_sensor, chatwoot_activity_sensor, run_failure_alert_sensor, openai_batch_sensor,
             monitoring_refresh_sensor],
    schedules=[every_two_hours_schedule],
    resources=build_resources(),
    executor=STEP_EXECUTOR,
)
