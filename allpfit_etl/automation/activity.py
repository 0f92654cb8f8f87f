"""The activity cursor: which (tenant, day) partitions changed in Chatwoot since last time.

Two streams, each ordered by a timestamp with the row id as tie-breaker, so rows sharing a
timestamp are never skipped nor read twice: new messages by ``(created_at, id)`` and
conversation updates by ``(updated_at, id)``. Each tick reads at most ``limit`` rows per
stream; the cursor only advances past rows that were turned into run requests.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import asdict, dataclass, field
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from allpfit_etl.db import load_sql
from allpfit_etl.timeutil import as_utc

EPOCH = "1970-01-01T00:00:00"


@dataclass
class StreamPosition:
    ts: str = EPOCH  # naive UTC ISO timestamp, as Chatwoot stores it
    id: int = 0

    def as_params(self) -> dict:
        return {"ts": dt.datetime.fromisoformat(self.ts), "id": self.id}


@dataclass
class ActivityCursor:
    messages: StreamPosition = field(default_factory=StreamPosition)
    conversations: StreamPosition = field(default_factory=StreamPosition)

    def serialize(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def parse(cls, text: str | None) -> "ActivityCursor | None":
        if not text:
            return None
        data = json.loads(text)
        return cls(StreamPosition(**data["messages"]), StreamPosition(**data["conversations"]))


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
    cursor just past the rows read."""
    changed: dict[ChangedPartition, str] = {}
    positions = {}
    for stream in STREAMS:
        position = getattr(cursor, stream)
        if account_ids:
            changes, position = read_stream(source, stream, position, account_ids, timezone, limit)
            for change in changes:
                changed[change.partition] = f"{stream[0]}{change.ts}#{change.row_id}"
        positions[stream] = position
    return changed, ActivityCursor(**positions)
