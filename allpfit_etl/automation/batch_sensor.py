"""``openai_batch_sensor``: polls open OpenAI batches, ingests the ended ones, then requests a
run for every partition that got answers (the normal path loads them with no API call)."""

from __future__ import annotations

import hashlib

import dagster as dg
import sqlalchemy as sa

from allpfit_etl import settings
from allpfit_etl.analysis.batch import store
from allpfit_etl.analysis.batch.ingest import IngestReport, poll_and_ingest
from allpfit_etl.analysis.batch.step import submit_options
from allpfit_etl.analysis.batch.submit import batch_client
from allpfit_etl.analysis.openai_resource import LeadAnalysisOpenAI
from allpfit_etl.automation.alerts import AlertWebhook
from allpfit_etl.jobs import lead_analysis_job
from allpfit_etl.partitions import partition_key, run_tags
from allpfit_etl.resources import AnalyticsDatabase

TRIGGER = "openai_batch_sensor"
# Well inside the 60 s a sensor tick may take; a large batch is ingested over several ticks.
INGEST_SECONDS_PER_TICK = 40.0


def has_batch_work(engine: sa.Engine) -> bool:
    return bool(store.rows(engine, "unsubmitted") or store.rows(engine, "not_ingested") or store.partitions_to_run(engine))


def follow_up_partitions(engine: sa.Engine) -> tuple[dict[str, tuple[str, list[str]]], list[str]]:
    """``{partition key: (tenant slug, batch keys)}`` of ingested answers not loaded by a run yet,
    and all those batch keys: one run per partition however many of its batches ended."""
    partitions: dict[str, tuple[str, list[str]]] = {}
    for r in store.partitions_to_run(engine):
        key = str(partition_key(str(r.day)[:10], r.slug))
        partitions.setdefault(key, (r.slug, []))[1].append(r.batch_key)
    return partitions, sorted({k for _slug, keys in partitions.values() for k in keys})


def alert_problems(report: IngestReport, log, alert_webhook: AlertWebhook | None) -> None:
    for slug, line in report.problems:
        log.error(line)
        if alert_webhook is not None:
            outcome = alert_webhook.post({"run_id": None, "job": TRIGGER, "partition": None, "tenant": slug, "error": line})
            log.info(f"alert for {slug}: {outcome}")


@dg.sensor(
    job=lead_analysis_job,
    minimum_interval_seconds=settings.batch_sensor_interval_seconds(),
    default_status=dg.DefaultSensorStatus.RUNNING,
)
def openai_batch_sensor(
    context: dg.SensorEvaluationContext,
    analytics: AnalyticsDatabase,
    alert_webhook: AlertWebhook,
    openai: LeadAnalysisOpenAI,
):
    engine = analytics.engine()
    if not has_batch_work(engine):
        return dg.SkipReason("no open OpenAI batch")
    report = poll_and_ingest(engine, batch_client(openai.api_key, openai.base_url), submit_options(openai),
                             time_budget_s=INGEST_SECONDS_PER_TICK)
    alert_problems(report, context.log, alert_webhook)
    partitions, batch_keys = follow_up_partitions(engine)
    run_requests = [
        dg.RunRequest(run_key=f"openai_batch:{key}:{hashlib.sha256(' '.join(keys).encode()).hexdigest()[:16]}",
                      partition_key=key, tags=run_tags(slug, TRIGGER))
        for key, (slug, keys) in sorted(partitions.items())
    ]
    store.mark_runs_requested(engine, batch_keys)
    context.log.info(
        f"{len(report.ingested)} batch(es) ingested ({report.answers} answers, {report.resubmitted} resubmitted, "
        f"{report.released} back to pending, {report.failed_lines} failed), {report.still_open} still open, "
        f"{len(run_requests)} run(s) requested")
    if not run_requests:
        return dg.SkipReason(f"{report.still_open} batch(es) still open; nothing to load yet")
    return dg.SensorResult(run_requests=run_requests)
