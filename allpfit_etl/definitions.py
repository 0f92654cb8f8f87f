"""The allpfit-etl code location: assets, checks, jobs, sensors, schedules and resources."""

from __future__ import annotations

import dagster as dg

from allpfit_etl.analysis.assets import conversation_analyses
from allpfit_etl.analysis.openai_resource import OpenAIResource
from allpfit_etl.extract.assets import chatwoot_conversations
from allpfit_etl.jobs import lead_analysis_job
from allpfit_etl.load.assets import conversations_analytics, tenant_daily_kpis
from allpfit_etl.pending.assets import pending_conversations
from allpfit_etl.resources import AnalyticsDatabase, ChatwootDatabase, env_var_or_none

ASSETS = [
    chatwoot_conversations,
    pending_conversations,
    conversation_analyses,
    conversations_analytics,
    tenant_daily_kpis,
]


def build_resources() -> dict:
    return {
        "chatwoot": ChatwootDatabase(url=env_var_or_none("CHATWOOT_DATABASE_URL")),
        "analytics": AnalyticsDatabase(url=env_var_or_none("ANALYTICS_DATABASE_URL")),
        "openai": OpenAIResource(api_key=env_var_or_none("OPENAI_API_KEY"), base_url=env_var_or_none("OPENAI_BASE_URL")),
    }


defs = dg.Definitions(
    assets=ASSETS,
    jobs=[lead_analysis_job],
    resources=build_resources(),
)
