"""Materialize (tenant, day) partitions through Dagster from the command line.

Runs go to the instance in ``DAGSTER_HOME`` (the one ``dagster dev`` and the daemon use); without
``DAGSTER_HOME`` an instance under ``ALLPFIT_HOME/dagster_home`` is used. Each CLI run is an
ordinary run of the ``allpfit_etl`` code location's ``lead_analysis`` job: it carries the code
location's origin, so the UI lists it in its timeline and can re-execute it.

* With a dagster-daemon serving the instance's run queue (QueuedRunCoordinator and a recent
  heartbeat), the run is submitted to the queue, where the ``dagster.yaml`` tag limits (one run
  per tenant) hold it as they hold sensor runs, and the CLI waits for it to end.
* Without one (the embedded defaults), the CLI executes the run itself, in this process with the
  in_process executor, once no other run of the same tenant is in progress.

Either way the summary is read from the run's events in the instance's event log.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import re
import socket
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo

import dagster as dg
import sqlalchemy as sa

from allpfit_etl import dagster_compat, settings
from allpfit_etl.db import sql
from allpfit_etl.errors import AllpfitError, ConfigError, DatabaseUnreachableError, redact, root_cause_line
from allpfit_etl.jobs import LEAD_ANALYSIS_JOB_NAME, MONITORING_JOB_NAME, MONITORING_TAG
from allpfit_etl.partitions import PARTITION_TENANT_TAG, TENANT_TAG, TRIGGER_TAG, parse_partition_key, range_tags, register_tenant_partitions, run_tags
from allpfit_etl.tenants.registry import Tenant

# What a run changed, summed over the per-partition materializations it recorded.
SUMMARY_KEYS = {
    "chatwoot_conversations": {"extracted": "extracted"},
    "pending_conversations": {"pending": "pending", "skipped": "skipped"},
    "conversation_analyses": {
        "analyzed": "analyzed", "reused_answers": "reused_answers", "failures": "failures",
        "deferred_by_budget": "deferred_by_budget", "in_batch": "in_batch",
        "openai.total_tokens": "tokens", "cost_usd": "cost_usd", "cost_brl": "cost_brl",
        "openai.unpriced_calls": "unpriced_calls",
    },
    "conversations_analytics": {"loaded": "loaded"},
}


LOCAL_INSTANCE_YAML = """# Local instance for the CLI and `dagster dev` on embedded defaults (SQLite storage).
telemetry:
  enabled: false
"""


def dagster_home() -> Path:
    home = os.environ.get("DAGSTER_HOME")
    if not home:
        home = str(settings.allpfit_home() / "dagster_home")
        os.environ["DAGSTER_HOME"] = home
        config = Path(home) / "dagster.yaml"
        if not config.exists():
            config.parent.mkdir(parents=True, exist_ok=True)
            config.write_text(LOCAL_INSTANCE_YAML)
    Path(home).mkdir(parents=True, exist_ok=True)
    return Path(home)


def get_instance() -> dg.DagsterInstance:
    """The instance in ``DAGSTER_HOME``, its storage reached (and created or upgraded) now rather
    than in the middle of a command; one that cannot be opened is one line naming the cause."""
    home = dagster_home()
    logging.disable(logging.WARNING)  # dagster-postgres logs each of its connection retries
    try:
        instance = dg.DagsterInstance.get()
        instance.get_runs(limit=1)
    except Exception as exc:  # the storage's own errors: a driver, a server, a permission
        while exc.__cause__ is not None or exc.__context__ is not None:
            exc = exc.__cause__ or exc.__context__
        first_line = (str(exc).strip().splitlines() or [""])[0]
        raise DatabaseUnreachableError(
            f"cannot open the Dagster instance in {home}: {type(exc).__name__}: {first_line}") from None
    finally:
        logging.disable(logging.NOTSET)
    return instance


DAY_FORMS = "YYYY-MM-DD, today, yesterday or N-days-ago"
_DAYS_AGO = re.compile(r"(\d+)-days?-ago")


def parse_day(text: str, label: str, today: dt.date) -> dt.date:
    """A local day: a date, or one relative to ``today`` (so scripts and docs need no fixed dates)."""
    word = text.strip().lower()
    if word in ("today", "yesterday"):
        return today - dt.timedelta(days=word == "yesterday")
    if days_ago := _DAYS_AGO.fullmatch(word):
        return today - dt.timedelta(days=int(days_ago.group(1)))
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise ConfigError(f"bad {label} date {text!r}: expected {DAY_FORMS}") from None


def resolve_day_range(start: str | None, end: str | None) -> tuple[dt.date, dt.date]:
    today = dt.datetime.now(ZoneInfo(settings.timezone_name())).date()
    first = parse_day(start, "--from", today) if start else today - dt.timedelta(days=1)
    last = parse_day(end, "--to", today) if end else (first if start else today)
    earliest = dt.date.fromisoformat(settings.partitions_start_date())
    if first > last:
        raise ConfigError(f"bad date range: --from {first} is after --to {last}")
    if first < earliest:
        raise ConfigError(f"bad --from date {first}: partitions start on {earliest} (ALLPFIT_START_DATE)")
    if last > today:
        raise ConfigError(f"bad --to date {last}: it is in the future (today is {today})")
    return first, last


@dataclass
class RunSummary:
    runs: list[str] = field(default_factory=list)  # the tenants' runs
    monitoring_runs: list[str] = field(default_factory=list)  # the refresh after them
    monitoring_queued: bool = False  # submitted to the daemon's queue, not waited for
    failed_runs: list[str] = field(default_factory=list)
    totals: dict[str, float] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    def add(self, key: str, value: float) -> None:
        self.totals[key] = self.totals.get(key, 0) + value


# Where the code location's runs come from, as workspace.yaml and pyproject's [tool.dagster] name it.
DEFINITIONS_MODULE, DEFINITIONS_ATTRIBUTE = "allpfit_etl.definitions", "defs"
CODE_LOCATION_NAME = "allpfit_etl"
REPOSITORY_NAME = "__repository__"  # the repository a Definitions object makes
# The code location's executor is multi_or_in_process_executor. The CLI's runs choose in_process,
# whether this process or the daemon's run worker executes them, as the sensors' runs do: one
# process per run instead of one per step costs ~3.4 CPU-s for a day's run instead of ~17
# (docs/live_operation.md), and the work that gains from more cores is already spread inside
# the steps (forked extract and regex workers, concurrent requests, worker processes of a big
# chunk). Backfills and runs launched from the UI keep the code location's process per step.
IN_PROCESS_EXECUTION = {"execution": {"config": {"in_process": {}}}}
# The daemon writes a heartbeat every 30 s; one older than this means no daemon serves the queue.
# (QueuedRunCoordinatorDaemon.daemon_type(), named here: importing dagster._daemon costs 0.4 s.)
QUEUE_DAEMON_TYPE = "QUEUED_RUN_COORDINATOR"
DAEMON_HEARTBEAT_MAX_AGE_S = 90.0
POLL_INTERVAL_S = 0.5
PROCESS_CHECK_INTERVAL_S = 5.0
QUEUED_NOTICE_AFTER_S = 15.0
# Runs of one tenant: the CLI's, the sensors' and backfills' carry allpfit/tenant; a single-partition
# run launched from the UI carries only Dagster's own partition tag (as in dagster.yaml's limits).
TENANT_TAGS = (TENANT_TAG, PARTITION_TENANT_TAG)


@dataclass(frozen=True)
class Turn:
    """Runs that must not overlap: a tenant's (they race on its pending list), or the global
    monitoring refreshes (delete-then-insert of the same tables). ``tags``: any of them marks one."""

    label: str
    tags: tuple[tuple[str, str], ...]

    @classmethod
    def of_tenant(cls, slug: str) -> "Turn":
        return cls(slug, tuple((tag, slug) for tag in TENANT_TAGS))


MONITORING_TURN = Turn("the monitoring refresh", ((MONITORING_TAG, "refresh"),))


def recon_job(job_name: str = LEAD_ANALYSIS_JOB_NAME):
    """A job of the code location as a code pointer (module and attribute), not an object."""
    return dagster_compat.reconstructable_job(DEFINITIONS_MODULE, DEFINITIONS_ATTRIBUTE, job_name)


def remote_origin(job_name: str = LEAD_ANALYSIS_JOB_NAME):
    """The origin the webserver and the daemon give the job: workspace.yaml's python_module entry."""
    return dagster_compat.python_module_job_origin(DEFINITIONS_MODULE, CODE_LOCATION_NAME, REPOSITORY_NAME, job_name)


def daemon_serves_queue(instance: dg.DagsterInstance) -> bool:
    """True when the instance queues runs and a dagster-daemon dequeues them now (recent heartbeat)."""
    if not dagster_compat.queues_runs(instance):
        return False
    heartbeat = instance.get_daemon_heartbeats().get(QUEUE_DAEMON_TYPE)
    return heartbeat is not None and time.time() - heartbeat.timestamp <= DAEMON_HEARTBEAT_MAX_AGE_S


def _console_log_level() -> str:
    return os.environ.get("ALLPFIT_LOG_LEVEL", "CRITICAL").upper()


def _notice(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


class _EventPrinter:
    """Dagster's log of a run the daemon executes, from the event log, at ALLPFIT_LOG_LEVEL and
    above (the level the console logger has when the CLI executes the run itself)."""

    def __init__(self, instance: dg.DagsterInstance, run_id: str):
        level = logging.getLevelName(_console_log_level())
        self.level = level if isinstance(level, int) else logging.CRITICAL
        self.instance, self.run_id, self.cursor = instance, run_id, None

    def print_new(self) -> None:
        if self.level >= logging.CRITICAL:
            return
        while True:
            connection = self.instance.get_records_for_run(self.run_id, cursor=self.cursor, limit=1000)
            for record in connection.records:
                entry = record.event_log_entry
                if entry.level >= self.level:
                    stamp = dt.datetime.fromtimestamp(entry.timestamp).strftime("%Y-%m-%d %H:%M:%S")
                    event = entry.dagster_event.event_type_value if entry.dagster_event else ""
                    parts = [stamp, "dagster", logging.getLevelName(entry.level), entry.job_name or "", self.run_id,
                             entry.step_key or "", event, entry.message or entry.user_message]
                    _notice(redact(" - ".join(p for p in parts if p)))
            self.cursor = connection.cursor
            if not connection.has_more:
                return


def _wait_for_run(instance: dg.DagsterInstance, run_id: str, turn: Turn) -> dg.DagsterRun:
    """Poll until the queued run has ended (the daemon launches it when the tag limits allow)."""
    printer, started, noticed = _EventPrinter(instance, run_id), time.monotonic(), False
    try:
        while True:
            run = instance.get_run_by_id(run_id)
            printer.print_new()
            if run.is_finished:
                return run
            if not noticed and run.status == dg.DagsterRunStatus.QUEUED and time.monotonic() - started > QUEUED_NOTICE_AFTER_S:
                if daemon_serves_queue(instance):
                    _notice(f"run {run_id} ({turn.label}) is queued: the dagster-daemon starts it when no other run of "
                            f"{turn.label} is in progress (see Runs → Queued in the UI)")
                else:
                    _notice(f"run {run_id} ({turn.label}) is queued, and no dagster-daemon serves the queue any more: "
                            "start one, or cancel the run in the UI")
                noticed = True
            time.sleep(POLL_INTERVAL_S)
    except KeyboardInterrupt:
        _notice(f"run {run_id} ({turn.label}) stays with the dagster-daemon: follow or terminate it in the UI")
        raise


def _process_start(pid: int) -> str | None:
    """When the process started (Linux's /proc), to tell it from a later process given the same pid."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


# The engine event with which a CLI marks a run it executes itself: which process, on which host.
# (An event, not a tag: a re-execution copies its parent's tags.)
PROCESS_MARK = "allpfit-etl process"


def _mark_run_as_ours(instance: dg.DagsterInstance, run: dg.DagsterRun) -> None:
    host, pid = socket.gethostname(), os.getpid()
    instance.report_engine_event(
        f"{PROCESS_MARK}: executed by allpfit-etl itself (no dagster-daemon serves the run queue), "
        f"pid {pid} on {host}", run,
        dagster_compat.engine_event_data({"host": host, "pid": pid, "process_start": _process_start(pid) or ""}))


def _left_by_a_vanished_process(instance: dg.DagsterInstance, run_id: str) -> str | None:
    """For a run an allpfit-etl process on this host executes itself, killed since (kill -9, a
    crash: nothing marked its run as ended and no daemon monitors it): that process, else None."""
    for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.ENGINE_EVENT):
        if not (entry.message or "").startswith(PROCESS_MARK):
            continue
        mark = {key: value.value for key, value in entry.dagster_event.engine_event_data.metadata.items()}
        if mark.get("host") != socket.gethostname():
            return None  # another machine's (or container's) process: not ours to judge
        pid = int(mark["pid"])
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return f"pid {pid}"
        except PermissionError:
            pass
        started = _process_start(pid)
        return f"pid {pid}" if mark.get("process_start") and started and started != mark["process_start"] else None
    return None


def _runs_in_the_way(instance: dg.DagsterInstance, run_id: str, turn: Turn, storage_id: int) -> list[dg.DagsterRun]:
    """Other runs of the turn this one must not overlap: any started (or canceling) run, and any
    run created before this one and starting. (This run is STARTING from its creation: of two
    runs created at once, the later waits for the earlier.)"""
    found = {}
    for tag, value in turn.tags:
        for record in instance.get_run_records(dg.RunsFilter(tags={tag: value}, statuses=[
                dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.CANCELING])):
            run = record.dagster_run
            if run.run_id != run_id and (run.status != dg.DagsterRunStatus.STARTING or record.storage_id < storage_id):
                found[run.run_id] = run
    return list(found.values())


def _execute_here(instance: dg.DagsterInstance, job, run_id: str, turn: Turn) -> dg.DagsterRun:
    """Execute the run in this process once no other run of its turn is in progress."""
    storage_id = instance.get_run_record_by_id(run_id).storage_id
    checked: dict[str, float] = {}  # blocking run → when its process was last checked
    try:
        _mark_run_as_ours(instance, instance.get_run_by_id(run_id))
        while blocking := _runs_in_the_way(instance, run_id, turn, storage_id):
            for other in blocking:
                if time.monotonic() - checked.get(other.run_id, -PROCESS_CHECK_INTERVAL_S) < PROCESS_CHECK_INTERVAL_S:
                    continue
                if gone := _left_by_a_vanished_process(instance, other.run_id):
                    _notice(f"run {other.run_id} of {turn.label} was left {other.status.value} by an allpfit-etl process "
                            f"that is gone ({gone}): marked failed")
                    instance.report_run_failed(other, message=f"The allpfit-etl process executing this run ({gone}) is gone.")
                elif other.run_id not in checked:
                    _notice(f"waiting for run {other.run_id} of {turn.label} ({other.status.value}) to end before "
                            f"run {run_id} starts")
                checked[other.run_id] = time.monotonic()
            time.sleep(POLL_INTERVAL_S)
        run = instance.get_run_by_id(run_id)
        if run.status == dg.DagsterRunStatus.STARTING:  # not canceled from the UI meanwhile
            dagster_compat.execute_run(job, run, instance)
    except BaseException:  # Ctrl-C while waiting, say: the run must not hold the tenant's turn
        run = instance.get_run_by_id(run_id)
        if run.status == dg.DagsterRunStatus.STARTING:
            instance.report_run_canceled(run, message="Canceled before it started: the allpfit-etl command was interrupted.")
        elif not run.is_finished:
            instance.report_run_failed(run, message="The allpfit-etl command executing this run was interrupted.")
        raise
    return instance.get_run_by_id(run_id)


def _launch(instance: dg.DagsterInstance, turn: Turn, tags: dict, *, partition: str | None = None,
            run_config: dict | None = None, job_name: str = LEAD_ANALYSIS_JOB_NAME,
            wait: bool = True) -> dg.DagsterRun:
    """Create one run of a job with the code location's origin; the daemon's queue runs it when a
    daemon serves it, this process otherwise. Returns the ended run (or, queued with ``wait``
    False, the run as submitted)."""
    pointer = recon_job(job_name)
    job = pointer.get_definition()
    queue = daemon_serves_queue(instance)
    config = {**(run_config or {}), **IN_PROCESS_EXECUTION}
    if not queue:
        # Dagster's console log would print a failing step's stack trace: the CLI prints one line
        # per failed run instead (ALLPFIT_LOG_LEVEL=INFO shows Dagster's log; the UI always has it).
        config["loggers"] = {"console": {"config": {"log_level": _console_log_level()}}}
    run = instance.create_run_for_job(
        job, run_config=config,
        tags=dagster_compat.partition_run_tags(job, partition, tags, instance, config),
        status=dg.DagsterRunStatus.NOT_STARTED if queue else dg.DagsterRunStatus.STARTING,
        remote_job_origin=remote_origin(job_name), job_code_origin=pointer.get_python_origin(),
    )
    if queue:
        instance.submit_run(run.run_id, workspace=None)
        return _wait_for_run(instance, run.run_id, turn) if wait else instance.get_run_by_id(run.run_id)
    return _execute_here(instance, pointer, run.run_id, turn)


def _first_error(instance: dg.DagsterInstance, run: dg.DagsterRun) -> str:
    """One line: the first failed step's cause, else what ended the run."""
    for entry in instance.all_logs(run.run_id, of_type=dg.DagsterEventType.STEP_FAILURE):
        event = entry.dagster_event
        if event.step_failure_data and event.step_failure_data.error:
            error = event.step_failure_data.error
            verdict = event.step_failure_data.user_failure_data
            if error.cause is None and verdict is not None and verdict.description:  # the step's own dg.Failure
                cause = verdict.description
            else:
                cause = root_cause_line(error)
            return f"{redact(cause)} (step {event.step_key})"
    if run.status == dg.DagsterRunStatus.CANCELED:
        return "the run was canceled"
    for entry in instance.all_logs(run.run_id, of_type={dg.DagsterEventType.ENGINE_EVENT, dg.DagsterEventType.RUN_FAILURE}):
        data = entry.dagster_event.event_specific_data if entry.dagster_event else None
        error = getattr(data, "error", None)
        if error is not None:  # a launch that failed, a run worker that crashed
            return f"the run failed before any step: {redact(root_cause_line(error))}"
    return "the run failed before any step"


def _add_run(summary: RunSummary, instance: dg.DagsterInstance, run: dg.DagsterRun, label: str) -> None:
    """The run's figures, summed over the per-partition materializations its event log holds."""
    summary.runs.append(run.run_id)
    if run.status != dg.DagsterRunStatus.SUCCESS:
        summary.failed_runs.append(run.run_id)
        summary.errors.append(f"{label}: {_first_error(instance, run)}")
    for entry in instance.all_logs(run.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION):
        materialization = entry.asset_materialization
        asset = materialization.asset_key.to_user_string()
        for meta_key, summary_key in SUMMARY_KEYS.get(asset, {}).items():
            value = materialization.metadata.get(meta_key)
            if value is not None:
                summary.add(summary_key, value.value)


def run_partitions(tenants: list[Tenant], first: dt.date, last: dt.date, instance: dg.DagsterInstance | None = None,
                   extra_tags: dict | None = None, run_config: dict | None = None) -> RunSummary:
    """One Dagster run per tenant covering the day range (a partition-range run). No secret goes
    in ``run_config`` (nor in tags): the resources read them from the environment (dg.EnvVar)."""
    instance = instance or get_instance()
    register_tenant_partitions(instance, tenants)
    summary = RunSummary()
    for tenant in tenants:
        tags = {
            **range_tags(first, last, tenant.slug),
            **run_tags(tenant.slug, "cli"),
            **(extra_tags or {}),
        }
        run = _launch(instance, Turn.of_tenant(tenant.slug), tags, run_config=run_config)
        _add_run(summary, instance, run, tenant.slug)
    refresh_monitoring(summary, instance, "cli")
    return summary


def refresh_monitoring(summary: RunSummary, instance: dg.DagsterInstance, trigger: str) -> None:
    """One run of ``monitoring_refresh`` after a command's tenant runs: the agreement of the months
    they touched, the funnel and quality against the labels, the report. Without a daemon this
    process executes it; with one, it is queued and the command does not wait for it (it takes
    seconds; monitoring_refresh_sensor would also do it, up to 10 minutes later)."""
    if summary.runs and len(summary.failed_runs) < len(summary.runs):
        run = _launch(instance, MONITORING_TURN, {TRIGGER_TAG: trigger}, job_name=MONITORING_JOB_NAME, wait=False)
        summary.monitoring_runs.append(run.run_id)
        if run.is_finished and run.status != dg.DagsterRunStatus.SUCCESS:
            summary.failed_runs.append(run.run_id)
            summary.errors.append(f"monitoring refresh: {_first_error(instance, run)}")
        summary.monitoring_queued = not run.is_finished


@dataclass(frozen=True)
class RangeTotals:
    """What the range's partitions hold now, whichever runs filled them."""

    conversations: int
    analyzed: int
    leads: int
    visits: int
    cost_usd: float
    cost_brl: float
    unpriced_calls: int = 0  # calls of a model with no known price: the spend is unknown, not the figures above


def range_totals(engine: sa.Engine, tenants: list[Tenant], first: dt.date, last: dt.date) -> RangeTotals:
    query = sql("analytics/range_totals").bindparams(sa.bindparam("tenant_ids", expanding=True))
    with engine.connect() as conn:
        row = conn.execute(query, {"tenant_ids": [t.tenant_id for t in tenants], "first": first, "last": last}).one()
    return RangeTotals(int(row.conversations), int(row.analyzed), int(row.leads), int(row.visits),
                       float(row.cost_usd), float(row.cost_brl), int(row.unpriced_calls))


def run_partition_keys(keys: list[str], trigger: str, instance: dg.DagsterInstance | None = None) -> RunSummary:
    """One single-partition run per key, as a sensor's run requests would launch them."""
    instance = instance or get_instance()
    summary = RunSummary()
    for key in keys:
        _, slug = parse_partition_key(key)
        run = _launch(instance, Turn.of_tenant(slug), run_tags(slug, trigger), partition=str(key))
        _add_run(summary, instance, run, str(key))
    refresh_monitoring(summary, instance, trigger)
    return summary


__all__ = ["AllpfitError", "RangeTotals", "RunSummary", "daemon_serves_queue", "get_instance", "range_totals",
           "register_tenant_partitions", "resolve_day_range", "run_partition_keys", "run_partitions"]
