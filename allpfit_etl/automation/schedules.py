"""The safety net behind the activity sensor: today's and yesterday's partitions every 2 hours."""

import datetime as dt

import dagster as dg

from allpfit_etl import settings
from allpfit_etl.automation.activity import PENDING, RunPlan
from allpfit_etl.automation.sensors import run_request, tenant_runs
from allpfit_etl.jobs import lead_analysis_job
from allpfit_etl.resources import AnalyticsDatabase
from allpfit_etl.tenants.registry import list_tenants


def uncovered_days(slug: str, days: list[dt.date], runs) -> list[dt.date]:
    """The days no queued run of the tenant covers (it reads them when it starts); a backfill's queued
    runs may start hours later, so they cover nothing here (as for the activity sensor)."""
    return [d for d in days
            if not any(r.tenant == slug and r.state == PENDING and not r.backfill and r.covers(d) for r in runs)]


@dg.schedule(
    job=lead_analysis_job,
    cron_schedule="0 */2 * * *",
    execution_timezone=settings.timezone_name(),
    default_status=dg.DefaultScheduleStatus.RUNNING,
)
def every_two_hours_schedule(context: dg.ScheduleEvaluationContext, analytics: AnalyticsDatabase):
    """Materializes today's and yesterday's partitions of every enabled tenant: one run per tenant
    over both days, or over the one a queued run of the tenant does not cover yet (none if it covers both)."""
    today = context.scheduled_execution_time.date()
    tenants = list_tenants(analytics.engine(), enabled_only=True)
    if not tenants:
        return dg.SkipReason("no enabled tenants")
    runs = tenant_runs(context.instance, dt.datetime.now(dt.timezone.utc))
    stamp = context.scheduled_execution_time.isoformat()
    requests = []
    for tenant in tenants:
        days = uncovered_days(tenant.slug, [today - dt.timedelta(days=1), today], runs)
        if days:
            plan = RunPlan(tenant.slug, days[0], days[-1], tuple((d, "") for d in days))
            requests.append(run_request(plan, "schedule", f"schedule:{stamp}:{tenant.slug}"))
    if not requests:
        return dg.SkipReason("every tenant's queued run already covers yesterday and today")
    return requests
