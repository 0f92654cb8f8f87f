"""Test helpers for the run-triggering sensors: the partition keys a RunRequest covers, and runs of the
lead_analysis job on a test instance in a given state (queued, started at a given time, finished)."""

from __future__ import annotations

import datetime as dt

import dagster as dg
# A QUEUED run must name the code location it will be launched from; these tests never launch it.
from dagster._core.remote_origin import InProcessCodeLocationOrigin, RemoteJobOrigin, RemoteRepositoryOrigin
from dagster._core.types.loadable_target_origin import LoadableTargetOrigin

from allpfit_etl.definitions import defs
from allpfit_etl.jobs import LEAD_ANALYSIS_JOB_NAME
from allpfit_etl.partitions import TENANT_PARTITIONS_NAME, parse_partition_key, partition_key, run_tags

RANGE_START, RANGE_END = "dagster/asset_partition_range_start", "dagster/asset_partition_range_end"
ORIGIN = RemoteJobOrigin(
    RemoteRepositoryOrigin(
        InProcessCodeLocationOrigin(LoadableTargetOrigin(module_name="allpfit_etl.definitions", attribute="defs")),
        "__repository__",
    ),
    LEAD_ANALYSIS_JOB_NAME,
)


def request_keys(request: dg.RunRequest) -> list[str]:
    """Every partition key a run request covers: its partition, or each day of its range."""
    if request.partition_key:
        return [str(request.partition_key)]
    first, slug = parse_partition_key(request.tags[RANGE_START])
    last, end_slug = parse_partition_key(request.tags[RANGE_END])
    assert slug == end_slug, request.tags
    return [f"{(first + dt.timedelta(days=n)).isoformat()}|{slug}" for n in range((last - first).days + 1)]


def requested_keys(result) -> set[str]:
    return {key for request in result.run_requests for key in request_keys(request)}


def _report(instance: dg.DagsterInstance, run: dg.DagsterRun, event_type: dg.DagsterEventType, at: dt.datetime | None):
    instance.report_dagster_event(
        dg.DagsterEvent(event_type_value=event_type.value, job_name=run.job_name), run.run_id,
        timestamp=at.timestamp() if at else None,
    )


def make_run(
    instance: dg.DagsterInstance, slug: str, first: dt.date, last: dt.date | None = None, *,
    status: str = "QUEUED", started_at: dt.datetime | None = None, trigger: str = "activity_sensor",
    extra_tags: dict | None = None,
) -> dg.DagsterRun:
    """A lead_analysis run of ``slug`` over ``first``..``last`` (a single partition without ``last``) in
    ``status``: QUEUED, STARTING, STARTED (at ``started_at``) or SUCCESS (started at ``started_at``)."""
    tags = {**run_tags(slug, trigger), **(extra_tags or {})}
    if last is None or last == first:
        tags["dagster/partition"] = str(partition_key(first, slug))
    else:
        tags[RANGE_START], tags[RANGE_END] = str(partition_key(first, slug)), str(partition_key(last, slug))
    if not instance.has_dynamic_partition(TENANT_PARTITIONS_NAME, slug):
        instance.add_dynamic_partitions(TENANT_PARTITIONS_NAME, [slug])
    job = defs.resolve_job_def(LEAD_ANALYSIS_JOB_NAME)
    if status == "QUEUED":
        return instance.create_run_for_job(job, tags=tags, status=dg.DagsterRunStatus.QUEUED, remote_job_origin=ORIGIN)
    run = instance.create_run_for_job(job, tags=tags)
    if status == "STARTING":
        _report(instance, run, dg.DagsterEventType.RUN_STARTING, None)
    elif status in ("STARTED", "SUCCESS"):
        _report(instance, run, dg.DagsterEventType.RUN_START, started_at or dt.datetime.now(dt.timezone.utc))
        if status == "SUCCESS":
            _report(instance, run, dg.DagsterEventType.RUN_SUCCESS, None)
    else:
        raise ValueError(status)
    return instance.get_run_by_id(run.run_id)


def start_run(instance: dg.DagsterInstance, run: dg.DagsterRun, at: dt.datetime | None = None) -> None:
    """The queued ``run`` starts (its worker reports RUN_START)."""
    _report(instance, run, dg.DagsterEventType.RUN_START, at or dt.datetime.now(dt.timezone.utc))


def finish_run(instance: dg.DagsterInstance, run: dg.DagsterRun) -> None:
    _report(instance, run, dg.DagsterEventType.RUN_SUCCESS, None)
