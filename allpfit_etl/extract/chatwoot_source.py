"""Read one (account, local day) of Chatwoot conversations, in bounded batches.

Conversations are read first (one row each), then their messages one batch of
conversations at a time, so a big day never holds all of its messages in memory.

A big day is read and compiled by forked worker processes, one batch each, while the caller
inserts what they hand back in order: reading the rows and compiling transcripts is pure
Python, one core's worth per process. A small day stays in this process, reading the next
batch in a thread while this one is compiled.
"""

from __future__ import annotations

import datetime as dt
import queue
import threading
from collections import defaultdict, deque
from collections.abc import Callable, Iterator
from typing import TypeVar
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from allpfit_etl.forking import can_fork, forked_pool
from allpfit_etl.db import sql
from allpfit_etl.extract.hashing import content_hash
from allpfit_etl.settings import worker_process_limit
from allpfit_etl.tenants.outcomes import OutcomeMapping, attribute_value, outcome_of
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
    workers: int | None = None,
    outcomes: OutcomeMapping | None = None,
) -> Iterator[list[dict]]:
    """Yield batches of rows shaped like the ``chatwoot_conversations`` table, in id order, each
    with its labels and the outcome ``outcomes`` (the tenant's label mapping) gives them.

    ``workers`` (default: the usable cores, at most 4) forked processes share a day of at least
    ``PARALLEL_MIN_BATCHES`` batches; fewer, or 1, keep it in this process."""
    extracted_at = dt.datetime.now(dt.timezone.utc)
    job = _BatchJob(source, account_id, day, timezone, batch_size, tenant_id, extracted_at,
                    outcomes or OutcomeMapping({}))
    workers = worker_process_limit() if workers is None else workers
    starts = _batch_starts(source, job) if workers > 1 and can_fork() else []
    after_id = 0
    if len(starts) >= PARALLEL_MIN_BATCHES:
        for rows in _in_forked_workers(job, starts, min(workers, len(starts))):
            after_id = rows[-1]["conversation_id"]
            yield rows
    # The rest of the day (all of it when no worker ran; else what was created after the
    # boundaries were read), one batch ahead in a thread.
    for batch, by_conversation in _prefetched(lambda: _source_batches(job, after_id)):
        yield job.rows(batch, by_conversation)


# A day of one batch (DEFAULT_BATCH_SIZE conversations) is not worth the workers; from two on,
# they take a third or more off the extract (5,000 conversations: 0.6 s → 0.4 s).
PARALLEL_MIN_BATCHES = 2


class _BatchJob:
    """What every batch of one extraction shares; inherited by forked workers, never pickled."""

    def __init__(self, source: sa.Engine, account_id: int, day: dt.date, timezone: str, batch_size: int,
                 tenant_id: int, extracted_at: dt.datetime, outcomes: OutcomeMapping) -> None:
        self.source, self.account_id, self.day, self.timezone = source, account_id, day, timezone
        self.batch_size, self.tenant_id, self.extracted_at = batch_size, tenant_id, extracted_at
        self.outcomes = outcomes
        self.start_utc, self.end_utc = day_bounds_utc(day, timezone)

    def params(self, **extra) -> dict:
        return {"account_id": self.account_id, "start_utc": self.start_utc, "end_utc": self.end_utc, **extra}

    def rows(self, batch, by_conversation: dict[int, list[SourceMessage]]) -> list[dict]:
        return [
            _conversation_row(c, by_conversation.get(c["conversation_id"], []), self.tenant_id, self.day,
                              self.timezone, self.extracted_at, self.outcomes)
            for c in batch
        ]


def _batch_starts(source: sa.Engine, job: _BatchJob) -> list[int]:
    """The ``after_id`` of each keyset batch of the day: 0, then every ``batch_size``-th id."""
    with source.connect() as conn:
        ends = conn.execute(sql("chatwoot/batch_boundaries_for_day"), job.params(batch_size=job.batch_size)).scalars()
        return [0, *ends]


def _read_batch(conn: sa.Connection, job: _BatchJob, after_id: int) -> tuple[list, dict[int, list[SourceMessage]]]:
    """The ``batch_size`` conversations after ``after_id`` and their messages, by conversation id."""
    batch = conn.execute(sql("chatwoot/conversations_for_day"),
                         job.params(after_id=after_id, batch_size=job.batch_size,
                                    read_attributes=job.outcomes.attribute is not None)).mappings().all()
    by_conversation: dict[int, list[SourceMessage]] = defaultdict(list)
    if batch:
        rows = conn.execute(sql("chatwoot/messages_for_conversations"),
                            job.params(after_id=after_id, last_id=batch[-1]["conversation_id"]))
        for conversation_id, *columns in rows.all():
            by_conversation[conversation_id].append(SourceMessage(*columns))
    return batch, by_conversation


_worker_job: _BatchJob | None = None


def _start_worker(job: _BatchJob) -> None:
    global _worker_job
    _worker_job = job
    # The parent's pooled connections came along with the fork: leave them to the parent.
    job.source.dispose(close=False)


def _compile_in_worker(after_id: int) -> list[dict]:
    job = _worker_job
    with job.source.connect() as conn:
        batch, by_conversation = _read_batch(conn, job, after_id)
    return job.rows(batch, by_conversation)


def _in_forked_workers(job: _BatchJob, starts: list[int], workers: int) -> Iterator[list[dict]]:
    """Each batch compiled in a forked worker, yielded in id order; at most two batches per
    worker are in flight or waiting, so memory stays bounded when the caller is slower."""
    with forked_pool(workers, initializer=_start_worker, initargs=(job,)) as pool:
        waiting: deque = deque()
        remaining = iter(starts)
        try:
            for after_id in remaining:
                waiting.append(pool.submit(_compile_in_worker, after_id))
                if len(waiting) >= 2 * workers:
                    break
            while waiting:
                rows = waiting.popleft().result()
                next_start = next(remaining, None)
                if next_start is not None:
                    waiting.append(pool.submit(_compile_in_worker, next_start))
                if rows:  # the last start of a day of whole batches reads nothing
                    yield rows
        finally:
            for future in waiting:
                future.cancel()


def _source_batches(job: _BatchJob, after_id: int = 0) -> Iterator[tuple[list, dict[int, list[SourceMessage]]]]:
    """(conversations, their messages by conversation id), one keyset batch at a time."""
    with job.source.connect() as conn:
        while True:
            batch, by_conversation = _read_batch(conn, job, after_id)
            if not batch:
                return
            after_id = batch[-1]["conversation_id"]
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


def _recorded_outcome(conv, outcomes: OutcomeMapping) -> tuple[str | None, str | None]:
    """(labels, outcome): Chatwoot's label list as stored, and what the tenant's mapping makes of it
    and of its custom attribute (the conversation's, else the contact's)."""
    labels = sanitize_text(conv["labels"])
    labels = labels.strip() if labels else None
    if not outcomes.configured:
        return labels or None, None
    attribute = None
    if outcomes.attribute:
        attribute = (attribute_value(conv["conversation_attributes"], outcomes.attribute)
                     or attribute_value(conv["contact_attributes"], outcomes.attribute))
    return labels or None, outcome_of(labels, sanitize_text(attribute), outcomes)


def _conversation_row(conv, messages: list[SourceMessage], tenant_id, day, timezone, extracted_at,
                      outcomes: OutcomeMapping) -> dict:
    transcript = compile_transcript(messages, timezone)
    labels, outcome = _recorded_outcome(conv, outcomes)
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
        # labels and outcome stay out of the hash: a label change is never analysed, nor paid for, again
        "content_hash": content_hash(transcript, contact_name),
        "extracted_at": extracted_at,
        "labels": labels,
        "outcome": outcome,
    }
