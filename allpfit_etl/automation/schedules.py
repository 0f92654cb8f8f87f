"""The safety net behind the activity sensor: today's and yesterday's partitions every 2 hours."""

import datetime as dt

import dagster as dg

from allpfit_etl import settings
from allpfit_etl.jobs import lead_analysis_job
from allpfit_etl.partitions import partition_key, run_tags
from allpfit_etl.resources import AnalyticsDatabase
from allpfit_etl.tenants.registry import list_tenants


@dg.schedule(
    job=lead_analysis_job,
    cron_schedule="0 */2 * * *",
    execution_timezone=settings.timezone_name(),
    default_status=dg.DefaultScheduleStatus.RUNNING,
)
def every_two_hours_schedule(context: dg.ScheduleEvaluationContext, analytics: AnalyticsDatabase):
    """Materializes today's and yesterday's partitions of every enabled tenant."""
    today = context.scheduled_execution_time.date()
    tenants = list_tenants(analytics.engine(), enabled_only=True)
    if not tenants:
        return dg.SkipReason("no enabled tenants")
    stamp = context.scheduled_execution_time.isoformat()
    return [
        dg.RunRequest(
            run_key=f"schedule:{stamp}:{tenant.slug}:{day.isoformat()}",
            partition_key=partition_key(day, tenant.slug),
            tags=run_tags(tenant.slug, "schedule"),
        )
        for tenant in tenants
        for day in (today - dt.timedelta(days=1), today)
    ]
