"""Non-secret settings read from the environment, with embedded defaults for the demo.

Database URLs may carry passwords, so they are only ever shown through ``errors.redact``.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

DEFAULT_TIMEZONE = "America/Sao_Paulo"
DEFAULT_START_DATE = "2025-01-01"


# A step forks at most this many processes for its CPU-bound work (extract, regex, OpenAI client).
MAX_WORKER_PROCESSES = 4


def worker_process_limit() -> int:
    """How many processes a step may fork: the cores this process may run on (its CPU affinity,
    as a container limits it), at most ``MAX_WORKER_PROCESSES``."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return min(cores, MAX_WORKER_PROCESSES)


def allpfit_home() -> Path:
    return Path(os.environ.get("ALLPFIT_HOME", "./.allpfit")).resolve()


def _sqlite_url(name: str) -> str:
    return f"sqlite:///{allpfit_home() / name}"


def chatwoot_database_url() -> str:
    return os.environ.get("CHATWOOT_DATABASE_URL") or _sqlite_url("chatwoot.db")


def analytics_database_url() -> str:
    return os.environ.get("ANALYTICS_DATABASE_URL") or _sqlite_url("analytics.db")


def timezone_name() -> str:
    return os.environ.get("ALLPFIT_TIMEZONE", DEFAULT_TIMEZONE)


def partitions_start_date() -> str:
    value = os.environ.get("ALLPFIT_START_DATE", DEFAULT_START_DATE)
    dt.date.fromisoformat(value)  # fail at load time on a malformed date
    return value


def _positive_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise ValueError(f"{name} must be a positive integer, got {raw!r}")
    return value


def backfill_days_per_run() -> int:
    """Partitions (days of one tenant) per backfill run: a year is ~26 runs at the default."""
    return _positive_int("ALLPFIT_BACKFILL_DAYS_PER_RUN", 14)


def activity_sensor_interval_seconds() -> int:
    return _positive_int("ALLPFIT_ACTIVITY_SENSOR_INTERVAL", 30)


def batch_sensor_interval_seconds() -> int:
    return _positive_int("ALLPFIT_BATCH_SENSOR_INTERVAL", 60)


def monitoring_refresh_cron() -> str:
    """How often, at most, the monitoring computed over all tenants is refreshed after updates."""
    return os.environ.get("ALLPFIT_MONITORING_REFRESH_CRON", "*/10 * * * *")
