"""The activity cursor and the live sensor's decisions: which (tenant, day) partitions changed in
Chatwoot since last time, which provisional answers settled, and which run each tenant needs.

Two streams, each ordered by a timestamp with the row id as tie-breaker, so rows sharing a
timestamp are never skipped nor read twice: new messages by ``(created_at, id)`` and
conversation updates by ``(updated_at, id)``. Each tick reads at most ``limit`` rows per
stream; the cursor only advances past rows whose days it holds (requested or waiting).

The decisions (``plan_tenant_runs``, ``settle_checked_until``, ``describe_run``) are plain
functions of the cursor, the new changes and the runs on the instance; the sensor wraps them.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, replace
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from allpfit_etl.db import load_sql, sql
from allpfit_etl.errors import ConfigError
from allpfit_etl.partitions import (
    BACKFILL_TAG, PARTITION_TAG, PARTITION_TENANT_TAG, RANGE_END_TAG, RANGE_START_TAG, TENANT_TAG, parse_partition_key,
)
from allpfit_etl.timeutil import as_date, as_utc

SETTLE_TOKEN_PREFIX = "s"  # a waiting day's change that is a settled provisional answer, not a Chatwoot row
EPOCH = "1970-01-01T00:00:00"
UTC_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)

# One run covers at most this many consecutive days of a tenant: changes to a conversation created
# weeks ago and to today's go into two runs (oldest first), not one run re-reading every day between.
MAX_DAYS_PER_RUN = 7
# How far back the settle check looks again at every tick: a run's status reaches the instance a moment
# after its worker stamped it (and the daemon's clock and the run worker's may differ by as much).
SETTLE_LOOKBACK = dt.timedelta(seconds=60)
# A run still STARTED after this long holds the settle check back no longer (a hung worker would
# otherwise make every tick look at hours of provisional answers).
SETTLE_HOLD_BACK_LIMIT = dt.timedelta(hours=6)
# A run created but neither queued nor launched after this long was orphaned by a crash between the
# two: it does not count as the tenant's queued run.
STALE_NOT_STARTED = dt.timedelta(minutes=10)


@dataclass
class StreamPosition:
    ts: str = EPOCH  # naive UTC ISO timestamp, as Chatwoot stores it
    id: int = 0

    def as_params(self) -> dict:
        return {"ts": dt.datetime.fromisoformat(self.ts), "id": self.id}


@dataclass(frozen=True)
class Waiting:
    """A day of a tenant with a change no run has read yet."""

    change: str  # the newest change: its stream position ("m…#id", "c…#id") or settle ("s…")
    # When the sensor saw it (a settled answer: when it settled), aware UTC: a run over the day that
    # started at or after this instant has read it.
    seen: dt.datetime

    def as_json(self) -> dict:
        return {"change": self.change, "seen": self.seen.isoformat()}

    @classmethod
    def from_json(cls, data: dict) -> "Waiting":
        return cls(data["change"], dt.datetime.fromisoformat(data["seen"]))


@dataclass
class ActivityCursor:
    messages: StreamPosition = field(default_factory=StreamPosition)
    conversations: StreamPosition = field(default_factory=StreamPosition)
    # Per tenant slug, the days whose changes no run has read yet and no run was requested for:
    # {day: {"change": ..., "seen": ...}} (see ``Waiting``).
    waiting: dict[str, dict[str, dict]] = field(default_factory=dict)
    # Per tenant slug, an aware UTC ISO instant: the provisional answers whose conversation's last
    # activity is at or before it were already looked at for settling. Absent: never looked at.
    settle_checked: dict[str, str] = field(default_factory=dict)

    def serialize(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def parse(cls, text: str | None) -> "ActivityCursor | None":
        """A cursor from its JSON; one written before ``waiting`` and ``settle_checked`` existed parses
        with neither (nothing waiting, every tenant's settled answers still to look at)."""
        if not text:
            return None
        data = json.loads(text)
        return cls(
            StreamPosition(**data["messages"]), StreamPosition(**data["conversations"]),
            {slug: dict(days) for slug, days in (data.get("waiting") or {}).items()},
            dict(data.get("settle_checked") or {}),
        )

    def waiting_days(self, slug: str) -> dict[dt.date, Waiting]:
        return {dt.date.fromisoformat(day): Waiting.from_json(entry) for day, entry in self.waiting.get(slug, {}).items()}

    def set_waiting(self, slug: str, days: Mapping[dt.date, Waiting]) -> None:
        if days:
            self.waiting[slug] = {day.isoformat(): entry.as_json() for day, entry in sorted(days.items())}
        else:
            self.waiting.pop(slug, None)

    def settle_checked_at(self, slug: str) -> dt.datetime | None:
        value = self.settle_checked.get(slug)
        return dt.datetime.fromisoformat(value) if value else None

    def oldest_instant(self) -> dt.datetime | None:
        """The earliest instant a finished run must have started after to matter to this cursor."""
        instants = [dt.datetime.fromisoformat(v) for v in self.settle_checked.values()]
        instants += [dt.datetime.fromisoformat(e["seen"]) for days in self.waiting.values() for e in days.values()]
        return min(instants, default=None)


def _naive_iso(value) -> str:
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    if value.tzinfo is not None:
        value = value.astimezone(dt.timezone.utc).replace(tzinfo=None)
    return value.isoformat()


def high_water_mark(source: sa.Engine) -> ActivityCursor:
    """A cursor at the newest activity: a fresh sensor starts from now, history is a backfill."""
    with source.connect() as conn:
        row = conn.execute(sa.text(load_sql("chatwoot/activity_high_water_mark"))).one()
    return ActivityCursor(
        StreamPosition(_naive_iso(row.messages_ts) if row.messages_ts else EPOCH, int(row.messages_id or 0)),
        StreamPosition(_naive_iso(row.conversations_ts) if row.conversations_ts else EPOCH, int(row.conversations_id or 0)),
    )


@dataclass(frozen=True)
class ChangedPartition:
    account_id: int
    day: dt.date


@dataclass(frozen=True)
class Change:
    stream: str
    row_id: int
    ts: str
    partition: ChangedPartition


STREAMS = ("messages", "conversations")


def read_stream(
    source: sa.Engine, stream: str, position: StreamPosition, account_ids: list[int], timezone: str, limit: int
) -> tuple[list[Change], StreamPosition]:
    """At most ``limit`` changes of one stream after ``position``, and the position after them."""
    tz = ZoneInfo(timezone)
    query = sa.text(load_sql(f"chatwoot/activity_{stream}_since")).bindparams(sa.bindparam("account_ids", expanding=True))
    with source.connect() as conn:
        rows = conn.execute(query, {**position.as_params(), "account_ids": account_ids, "limit": limit}).all()
    changes = [
        Change(stream, int(r.id), _naive_iso(r.ts),
               ChangedPartition(int(r.account_id), as_utc(r.conversation_created_at).astimezone(tz).date()))
        for r in rows
    ]
    new_position = StreamPosition(changes[-1].ts, changes[-1].row_id) if changes else position
    return changes, new_position


def changed_partitions(
    source: sa.Engine, cursor: ActivityCursor, account_ids: list[int], timezone: str, limit: int = 5_000
) -> tuple[dict[ChangedPartition, str], ActivityCursor]:
    """Partitions touched after ``cursor``, each with the position of its last change, and the
    cursor just past the rows read (its other fields unchanged)."""
    changed: dict[ChangedPartition, str] = {}
    positions = {}
    for stream in STREAMS:
        position = getattr(cursor, stream)
        if account_ids:
            changes, position = read_stream(source, stream, position, account_ids, timezone, limit)
            for change in changes:
                changed[change.partition] = f"{stream[0]}{change.ts}#{change.row_id}"
        positions[stream] = position
    return changed, replace(cursor, **positions)


# --- settled provisional answers --------------------------------------------------------------

@dataclass(frozen=True)
class SettledDay:
    """A day with provisional answers whose conversation settled in the window looked at."""

    day: dt.date
    settled_at: dt.datetime  # the latest settle time among them (last activity + settle_minutes), aware UTC
    conversations: int

    @property
    def token(self) -> str:
        return f"{SETTLE_TOKEN_PREFIX}{self.settled_at.isoformat()}#{self.conversations}"


def settled_provisional_days(
    engine: sa.Engine, tenant_id: int, settle_minutes: float, after: dt.datetime | None, now: dt.datetime
) -> list[SettledDay]:
    """Days of the tenant's provisional answers whose conversation has been quiet for ``settle_minutes``
    at ``now`` and whose last activity is after ``after`` (None: any). One grouped read of the
    provisional index."""
    settle = dt.timedelta(minutes=settle_minutes)
    until = now.astimezone(dt.timezone.utc) - settle
    lower = (after or UTC_EPOCH).astimezone(dt.timezone.utc)
    if lower >= until:
        return []
    with engine.connect() as conn:
        rows = conn.execute(sql("analytics/settled_provisional_days", conn.dialect.name),
                            {"tenant_id": tenant_id, "after": lower, "until": until}).all()
    return [
        SettledDay(as_date(row.day),
                   as_utc(row.last_activity_at) + settle, int(row.conversations))
        for row in rows
    ]


# --- runs on the instance -----------------------------------------------------------------------

PENDING, RUNNING, FINISHED = "pending", "running", "finished"
# What a run's status says about a change seen now: not started yet (it reads Chatwoot later, so it
# covers the change), under way (it may have read before the change), or over.
STATUS_STATES = {
    "NOT_STARTED": PENDING, "QUEUED": PENDING, "STARTING": PENDING,
    "STARTED": RUNNING, "CANCELING": RUNNING,
    "SUCCESS": FINISHED, "FAILURE": FINISHED, "CANCELED": FINISHED,
}
EXTRACT_ASSET = "chatwoot_conversations"


@dataclass(frozen=True)
class TenantRun:
    """What the sensor needs to know of one run: whose days it covers and whether it started."""

    tenant: str | None  # None: a run over several tenants (or none the tags name)
    first_day: dt.date | None
    last_day: dt.date | None
    state: str  # PENDING, RUNNING or FINISHED
    started_at: dt.datetime | None = None  # aware UTC, once started
    backfill: bool = False
    reads_chatwoot: bool = True  # its asset selection includes the extract

    def covers(self, day: dt.date) -> bool:
        return self.reads_chatwoot and self.first_day is not None and self.first_day <= day <= self.last_day


def _split_key(key: str | None) -> tuple[dt.date, str] | None:
    try:
        return parse_partition_key(key or "")
    except ConfigError:
        return None


def describe_run(
    tags: Mapping[str, str], status: str, *, now: dt.datetime, start_time: float | None = None,
    created_at: dt.datetime | None = None, asset_keys: Iterable[str] | None = None,
) -> TenantRun | None:
    """A run's tenant, days and state from its tags and status (a ``DagsterRunStatus`` value); None
    for a run of no tenant's days (another job's)."""
    state = STATUS_STATES.get(status)
    if state is None:
        return None
    single = _split_key(tags.get(PARTITION_TAG))
    start, end = _split_key(tags.get(RANGE_START_TAG)), _split_key(tags.get(RANGE_END_TAG))
    if single:
        first, last, tenant = single[0], single[0], single[1]
    elif start and end:
        first, last = start[0], end[0]
        tenant = start[1] if start[1] == end[1] else None
    else:
        first = last = None
        tenant = tags.get(TENANT_TAG) or tags.get(PARTITION_TENANT_TAG)
        if tenant is None:
            return None
    if state == PENDING and status == "NOT_STARTED" and created_at is not None and now - created_at > STALE_NOT_STARTED:
        state = FINISHED  # orphaned: never queued, never launched
    started_at = dt.datetime.fromtimestamp(start_time, dt.timezone.utc) if start_time else None
    reads = asset_keys is None or EXTRACT_ASSET in set(asset_keys)
    return TenantRun(tenant, first, last, state, started_at, BACKFILL_TAG in tags, reads)


def runs_of(runs: Iterable[TenantRun], slug: str) -> list[TenantRun]:
    """The tenant's runs, and the runs over several tenants (which may write its rows too)."""
    return [r for r in runs if r.tenant in (slug, None)]


# --- the plan ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class RunPlan:
    """One run to request: a tenant's days from ``first_day`` to ``last_day``."""

    tenant: str
    first_day: dt.date
    last_day: dt.date
    changes: tuple[tuple[dt.date, str], ...]  # the waiting days it serves, with their newest change's token

    @property
    def settles(self) -> bool:
        """Whether a day it serves has a settled provisional answer: the run pays for final answers."""
        return any(token.startswith(SETTLE_TOKEN_PREFIX) for _, token in self.changes)

    def run_key(self, trigger: str) -> str:
        """Stable for the same changes (a tick evaluated again gives the same key), new for new ones."""
        digest = hashlib.sha256(";".join(f"{d.isoformat()}={t}" for d, t in self.changes).encode()).hexdigest()[:16]
        return f"{trigger}:{self.tenant}:{self.first_day.isoformat()}..{self.last_day.isoformat()}:{digest}"


@dataclass
class TenantPlan:
    request: RunPlan | None
    waiting: dict[dt.date, Waiting]  # days still waiting for a run to read them
    covered: list[dt.date]  # waiting days a queued run of the tenant covers (it reads them when it starts)
    queued_run: bool  # the tenant already has a queued run (so nothing more is requested)


def _later(a: Waiting | None, b: Waiting) -> Waiting:
    return b if a is None or b.seen >= a.seen else a


def plan_tenant_runs(
    tenant: str,
    waiting: Mapping[dt.date, Waiting],
    changed: Mapping[dt.date, str],
    settled: Iterable[SettledDay],
    runs: Iterable[TenantRun],
    *,
    now: dt.datetime,
    max_days: int = MAX_DAYS_PER_RUN,
    spacing: dt.timedelta = dt.timedelta(0),
) -> TenantPlan:
    """What the sensor does for one tenant this tick.

    - Every day with a change no run has read waits: the days ``waiting`` from earlier ticks, the
      days ``changed`` in Chatwoot (seen ``now``) and the days of newly ``settled`` provisional
      answers (seen when they settled).
    - A run reads Chatwoot when it starts: a waiting day is done once a run over it started at or
      after the change was seen (a settled answer: that run found it settled). Done days are dropped.
    - At most one run per tenant is queued. While the tenant has a run that has not started (a
      backfill's aside), nothing is requested: the days it covers are read when it starts, the
      others wait for it to start. Otherwise one run is requested for the oldest waiting day and
      the waiting days up to ``max_days`` after it; the rest waits for the next tick.
    - A tenant's runs start at least ``spacing`` apart: a chat writes every few seconds, and a run
      per tick would mostly re-read the same conversations; the changes wait meanwhile.
    """
    runs = [r for r in runs if r.tenant == tenant and r.reads_chatwoot]
    entries: dict[dt.date, Waiting] = dict(waiting)
    for day, change in changed.items():
        entries[day] = _later(entries.get(day), Waiting(change, now))
    for day in settled:
        entries[day.day] = _later(entries.get(day.day), Waiting(day.token, day.settled_at))
    entries = {
        day: entry for day, entry in entries.items()
        if not any(r.covers(day) and r.started_at and r.started_at >= entry.seen for r in runs)
    }
    queued = [r for r in runs if r.state == PENDING and not r.backfill]
    if queued or not entries:
        covered = sorted(d for d in entries if any(r.covers(d) for r in queued))
        return TenantPlan(None, entries, covered, bool(queued))
    if any(r.started_at and r.started_at > now - spacing and not r.backfill for r in runs):
        return TenantPlan(None, entries, [], False)
    days = sorted(entries)
    included = [d for d in days if (d - days[0]).days < max_days]
    plan = RunPlan(tenant, days[0], included[-1], tuple((d, entries[d].change) for d in included))
    return TenantPlan(plan, {d: e for d, e in entries.items() if d not in included}, [], False)


def settle_checked_until(now: dt.datetime, settle_minutes: float, runs: Iterable[TenantRun]) -> dt.datetime:
    """How far the next settle check may start: provisional answers whose last activity is at or before
    the returned instant were seen settled by this check, or will be looked at again.

    An answer loaded by a run under way can be committed after its conversation settled (its run
    decided it was not settled yet, then took longer than the rest of the quiet time): so the bound
    stays at the earliest start of the tenant's runs under way (a run's answer settles after that run
    started), less ``SETTLE_LOOKBACK``."""
    horizon = now
    for run in runs:
        if run.state == RUNNING and run.started_at and run.started_at >= now - SETTLE_HOLD_BACK_LIMIT:
            horizon = min(horizon, run.started_at)
    return horizon - SETTLE_LOOKBACK - dt.timedelta(minutes=settle_minutes)
