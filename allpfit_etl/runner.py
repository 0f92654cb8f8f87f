"""Materialize (tenant, day) partitions through Dagster from the command line.

Runs go to the instance in ``DAGSTER_HOME`` (the one ``dagster dev`` and the daemon use),
so every CLI run also shows up in the UI. Without ``DAGSTER_HOME`` an instance under
``ALLPFIT_HOME/dagster_home`` is used.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo

import dagster as dg
import sqlalchemy as sa

from allpfit_etl import settings
from allpfit_etl.db import sql
from allpfit_etl.errors import AllpfitError, ConfigError, DatabaseUnreachableError, redact, root_cause_line
from allpfit_etl.jobs import LEAD_ANALYSIS_JOB_NAME
from allpfit_etl.partitions import partition_key, register_tenant_partitions, run_tags
from allpfit_etl.tenants.registry import Tenant

# What a run changed, summed over the per-partition materializations it recorded.
SUMMARY_KEYS = {
    "chatwoot_conversations": {"extracted": "extracted"},
    "pending_conversations": {"pending": "pending", "skipped": "skipped"},
    "conversation_analyses": {
        "analyzed": "analyzed", "reused_answers": "reused_answers", "failures": "failures",
        "deferred_by_budget": "deferred_by_budget", "in_batch": "in_batch",
        "openai.total_tokens": "tokens", "cost_usd": "cost_usd", "cost_brl": "cost_brl",
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


def parse_day(text: str, label: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise ConfigError(f"bad {label} date {text!r}: expected YYYY-MM-DD") from None


def resolve_day_range(start: str | None, end: str | None) -> tuple[dt.date, dt.date]:
    today = dt.datetime.now(ZoneInfo(settings.timezone_name())).date()
    first = parse_day(start, "--from") if start else today - dt.timedelta(days=1)
    last = parse_day(end, "--to") if end else (first if start else today)
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
    runs: list[str] = field(default_factory=list)
    failed_runs: list[str] = field(default_factory=list)
    totals: dict[str, float] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    def add(self, key: str, value: float) -> None:
        self.totals[key] = self.totals.get(key, 0) + value


def _first_error(result) -> str:
    for event in result.all_events:
        if event.is_step_failure and event.step_failure_data and event.step_failure_data.error:
            error = event.step_failure_data.error
            if error.cause is None and error.cls_name == "Failure":  # the step's own one-line verdict
                cause = error.message.strip().splitlines()[0].split("Failure: ", 1)[-1]
            else:
                cause = root_cause_line(error)
            return f"{redact(cause)} (step {event.step_key})"
    return "the run failed before any step"


def run_partitions(tenants: list[Tenant], first: dt.date, last: dt.date, instance: dg.DagsterInstance | None = None,
                   extra_tags: dict | None = None) -> RunSummary:
    """One Dagster run per tenant covering the day range (a partition-range run)."""
    from allpfit_etl.definitions import defs

    instance = instance or get_instance()
    register_tenant_partitions(instance, tenants)
    job = defs.resolve_job_def(LEAD_ANALYSIS_JOB_NAME)
    summary = RunSummary()
    for tenant in tenants:
        tags = {
            "dagster/asset_partition_range_start": partition_key(first, tenant.slug),
            "dagster/asset_partition_range_end": partition_key(last, tenant.slug),
            **run_tags(tenant.slug, "cli"),
            **(extra_tags or {}),
        }
        # Dagster's console log would print a failing step's stack trace: the CLI prints one line
        # per failed run instead (ALLPFIT_LOG_LEVEL=INFO shows Dagster's log; the UI always has it).
        result = job.execute_in_process(
            instance=instance, tags=tags, raise_on_error=False,
            run_config={"loggers": {"console": {"config": {"log_level": os.environ.get("ALLPFIT_LOG_LEVEL", "CRITICAL")}}}},
        )
        summary.runs.append(result.run_id)
        if not result.success:
            summary.failed_runs.append(result.run_id)
            summary.errors.append(f"{tenant.slug}: {_first_error(result)}")
        for event in result.get_asset_materialization_events():  # one per partition, each with its own figures
            materialization = event.materialization
            asset = materialization.asset_key.to_user_string()
            for meta_key, summary_key in SUMMARY_KEYS.get(asset, {}).items():
                value = materialization.metadata.get(meta_key)
                if value is not None:
                    summary.add(summary_key, value.value)
    return summary


@dataclass(frozen=True)
class RangeTotals:
    """What the range's partitions hold now, whichever runs filled them."""

    conversations: int
    analyzed: int
    leads: int
    visits: int
    cost_usd: float
    cost_brl: float


def range_totals(engine: sa.Engine, tenants: list[Tenant], first: dt.date, last: dt.date) -> RangeTotals:
    query = sql("analytics/range_totals").bindparams(sa.bindparam("tenant_ids", expanding=True))
    with engine.connect() as conn:
        row = conn.execute(query, {"tenant_ids": [t.tenant_id for t in tenants], "first": first, "last": last}).one()
    return RangeTotals(int(row.conversations), int(row.analyzed), int(row.leads), int(row.visits),
                       float(row.cost_usd), float(row.cost_brl))


def run_partition_keys(keys: list[str], trigger: str, instance: dg.DagsterInstance | None = None) -> RunSummary:
    """One single-partition run per key, as a sensor's run requests would launch them."""
    from allpfit_etl.definitions import defs

    instance = instance or get_instance()
    job = defs.resolve_job_def(LEAD_ANALYSIS_JOB_NAME)
    summary = RunSummary()
    for key in keys:
        result = job.execute_in_process(
            instance=instance, partition_key=key, tags=run_tags(str(key).split("|")[-1], trigger),
            raise_on_error=False,
            run_config={"loggers": {"console": {"config": {"log_level": os.environ.get("ALLPFIT_LOG_LEVEL", "CRITICAL")}}}},
        )
        summary.runs.append(result.run_id)
        if not result.success:
            summary.failed_runs.append(result.run_id)
            summary.errors.append(f"{key}: {_first_error(result)}")
        for event in result.get_asset_materialization_events():
            asset = event.materialization.asset_key.to_user_string()
            for meta_key, summary_key in SUMMARY_KEYS.get(asset, {}).items():
                value = event.materialization.metadata.get(meta_key)
                if value is not None:
                    summary.add(summary_key, value.value)
    return summary


__all__ = ["AllpfitError", "RangeTotals", "RunSummary", "get_instance", "range_totals", "register_tenant_partitions",
           "resolve_day_range", "run_partition_keys", "run_partitions"]
