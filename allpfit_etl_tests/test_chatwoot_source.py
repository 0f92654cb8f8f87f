"""Reading a Chatwoot day (real PostgreSQL): forked workers hand back exactly the rows one process
reads, in id order, and conversations created after the batch boundaries were read are not lost."""

from __future__ import annotations

import datetime as dt

import psutil
import pytest

from allpfit_etl.db import get_engine
from allpfit_etl.demo.seed import create_chatwoot_schema, seed_bulk
from allpfit_etl.extract.chatwoot_source import extract_day

DAY = dt.date(2025, 11, 10)
TIMEZONE = "America/Sao_Paulo"
CONVERSATIONS = 230
BATCH = 20  # 12 batches, the last one partial


@pytest.fixture
def source(make_pg_database):
    engine = get_engine(make_pg_database("chatwoot"), read_only=False)
    create_chatwoot_schema(engine)
    seed_bulk(engine, account_id=1, day=DAY, conversations=CONVERSATIONS, messages_per_conversation=6)
    seed_bulk(engine, account_id=2, day=DAY, conversations=15, messages_per_conversation=3, seed=2,
              first_id=10_000)  # another account's conversations of the same day stay out
    return engine


def extract(source, workers: int, batch_size: int = BATCH):
    return extract_day(source, tenant_id=7, account_id=1, day=DAY, timezone=TIMEZONE, batch_size=batch_size, workers=workers)


def rows_of(source, workers: int, batch_size: int = BATCH) -> list[list[dict]]:
    batches = list(extract(source, workers, batch_size))
    for batch in batches:
        for row in batch:
            row.pop("extracted_at")
    return batches


def test_forked_workers_hand_back_the_rows_one_process_reads_in_id_order(source):
    alone = rows_of(source, workers=1)
    batches = extract(source, workers=2)
    forked = [next(batches)]
    assert psutil.Process().children(), "no worker process was forked"
    forked += list(batches)
    flat = [row for batch in forked for row in batch]
    for row in flat:
        row.pop("extracted_at")
    assert flat == [row for batch in alone for row in batch]
    assert len(flat) == CONVERSATIONS and [r["conversation_id"] for r in flat] == sorted(r["conversation_id"] for r in flat)
    assert all(0 < len(batch) <= BATCH for batch in forked)
    assert all(r["message_compiled"] and r["tenant_id"] == 7 for r in flat)


def test_a_day_of_whole_batches_yields_no_empty_batch(source):
    forked = rows_of(source, workers=2, batch_size=23)  # 230 = 10 × 23
    assert [len(batch) for batch in forked] == [23] * 10


def test_conversations_created_after_the_boundaries_were_read_are_still_extracted(source):
    """The boundaries are read first; conversations that arrive while the workers read land after
    the last boundary, beyond one batch: the tail is read to its end."""
    batches = extract(source, workers=2)
    first = next(batches)  # the boundaries are read by now
    seed_bulk(source, account_id=1, day=DAY, conversations=2 * BATCH + 5, messages_per_conversation=2, seed=3)
    ids = [r["conversation_id"] for batch in [first, *batches] for r in batch]
    assert len(ids) == CONVERSATIONS + 2 * BATCH + 5
    assert ids == [r["conversation_id"] for b in rows_of(source, workers=1) for r in b]


def test_a_small_day_is_not_worth_the_workers(source):
    batches = extract(source, workers=2, batch_size=CONVERSATIONS + 1)  # one batch < PARALLEL_MIN_BATCHES
    first = next(batches)
    assert psutil.Process().children() == []  # read in this process
    assert len(first) + sum(len(b) for b in batches) == CONVERSATIONS
