"""Read one (account, local day) of Chatwoot conversations, in bounded batches.

Conversations are read first (one row each), then their messages one batch of
conversations at a time, so a big day never holds all of its messages in memory.
"""

from __future__ import annotations

import datetime as dt
import queue
import threading
from collections import defaultdict
from collections.abc import Callable, Iterator
from typing import TypeVar
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from allpfit_etl.db import load_sql
from allpfit_etl.extract.hashing import content_hash
from allpfit_etl.text import sanitize_text
from allpfit_etl.timeutil import as_utc
from allpfit_etl.extract.transcript import SourceMessage, compile_transcript, count_contact_messages

CONVERSATION_STATUS = {0: "open", 1: "resolved", 2: "pending", 3: "snoozed"}
DEFAULT_BATCH_SIZE = 2_000
T = TypeVar("T")


def day_bounds_utc(day: dt.date, timezone: str) -> tuple[dt.datetime, dt.datetime]:
    """Naive UTC bounds [start, end) of a local calendar day, as Chatwoot stores timestamps."""
    tz = ZoneInfo(timezone)
    start = dt.datetime.combine(day, dt.time.min, tzinfo=tz)
    end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time.min, tzinfo=tz)
    to_utc = lambda t: t.astimezone(dt.timezone.utc).replace(tzinfo=None)  # noqa: E731
    return to_utc(start), to_utc(end)


def extract_day(
    source: sa.Engine,
    *,
    tenant_id: int,
    account_id: int,
    day: dt.date,
    timezone: str,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> Iterator[list[dict]]:
    """Yield batches of rows shaped like the ``chatwoot_conversations`` table.

    The next batch is read while this one is compiled, so the database and Python work at
    the same time (one batch ahead: memory stays bounded)."""
    extracted_at = dt.datetime.now(dt.timezone.utc)
    batches = _prefetched(lambda: _source_batches(source, account_id, day, timezone, batch_size))
    for batch, by_conversation in batches:
        yield [
            _conversation_row(c, by_conversation.get(c["conversation_id"], []), tenant_id, day, timezone, extracted_at)
            for c in batch
        ]


def _source_batches(
    source: sa.Engine, account_id: int, day: dt.date, timezone: str, batch_size: int
) -> Iterator[tuple[list, dict[int, list[SourceMessage]]]]:
    """(conversations, their messages by conversation id), one keyset batch at a time."""
    start_utc, end_utc = day_bounds_utc(day, timezone)
    messages_query = sa.text(load_sql("chatwoot/messages_for_conversations"))
    conversations_query = sa.text(load_sql("chatwoot/conversations_for_day"))
    after_id = 0
    with source.connect() as conn:
        while True:
            batch = conn.execute(
                conversations_query,
                {"account_id": account_id, "start_utc": start_utc, "end_utc": end_utc, "after_id": after_id,
                 "batch_size": batch_size},
            ).mappings().all()
            if not batch:
                return
            last_id = batch[-1]["conversation_id"]
            by_conversation: dict[int, list[SourceMessage]] = defaultdict(list)
            rows = conn.execute(
                messages_query,
                {"account_id": account_id, "start_utc": start_utc, "end_utc": end_utc, "after_id": after_id,
                 "last_id": last_id},
            )
            for conversation_id, *columns in rows.all():
                by_conversation[conversation_id].append(SourceMessage(*columns))
            after_id = last_id
            yield batch, by_conversation


class _Failed:
    def __init__(self, error: BaseException) -> None:
        self.error = error


_DONE = object()


def _prefetched(produce: Callable[[], Iterator[T]], depth: int = 1) -> Iterator[T]:
    """Iterate ``produce()`` in a worker thread, up to ``depth`` items ahead of the consumer.

    The worker owns its database connection from start to end; errors are re-raised here, and
    a consumer that stops early stops the worker."""
    items: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item) -> bool:
        while not stop.is_set():
            try:
                items.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def work() -> None:
        try:
            for item in produce():
                if not put(item):
                    return
            put(_DONE)
        except BaseException as error:  # handed to the consumer, which raises it
            put(_Failed(error))

    worker = threading.Thread(target=work, name="chatwoot-prefetch", daemon=True)
    worker.start()
    try:
        while True:
            item = items.get()
            if item is _DONE:
                return
            if isinstance(item, _Failed):
                raise item.error
            yield item
    finally:
        stop.set()
        worker.join()


def _conversation_row(conv, messages: list[SourceMessage], tenant_id, day, timezone, extracted_at) -> dict:
    transcript = compile_transcript(messages, timezone)
    contact_name = sanitize_text(conv["contact_name"])
    contact_name = contact_name.strip() if contact_name else None
    return {
        "tenant_id": tenant_id,
        "conversation_id": int(conv["conversation_id"]),
        "day": day,
        "display_id": int(conv["display_id"]),
        "inbox_id": conv["inbox_id"],
        "inbox_name": sanitize_text(conv["inbox_name"]),
        "status": CONVERSATION_STATUS.get(conv["status"], str(conv["status"])),
        "conversation_created_at": as_utc(conv["created_at"]),
        "conversation_updated_at": as_utc(conv["updated_at"]),
        "last_activity_at": as_utc(conv["last_activity_at"]),
        "contact_name": contact_name or None,
        "contact_messages_count": count_contact_messages(messages),
        "message_compiled": transcript,
        "content_hash": content_hash(transcript, contact_name),
        "extracted_at": extracted_at,
    }
