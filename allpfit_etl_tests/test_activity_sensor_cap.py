"""The activity sensor on a source with more new rows than one tick may read: each tick reads
at most MAX_ROWS_PER_TICK rows per stream, and its cursor stops exactly at the last row it turned
into a run request, so the next tick picks up the rest (the days of one tick go into one range run).
Real PostgreSQL, build_sensor_context on a persistent test instance."""

from __future__ import annotations

import datetime as dt

import dagster as dg
import pytest
import sqlalchemy as sa

from allpfit_etl.automation.activity import ActivityCursor, StreamPosition
from allpfit_etl.automation.sensors import MAX_ROWS_PER_TICK, chatwoot_activity_sensor
from allpfit_etl.db import get_engine
from allpfit_etl.resources import AnalyticsDatabase, ChatwootDatabase
from allpfit_etl.schema import apply_migrations
from allpfit_etl.tenants.registry import add_tenant
from allpfit_etl_tests.chatwoot_builder import ChatwootBuilder
from allpfit_etl_tests.run_requests import requested_keys

ROWS = MAX_ROWS_PER_TICK + MAX_ROWS_PER_TICK * 3 // 10  # 6,500: a tick and a bit
PER_DAY = MAX_ROWS_PER_TICK * 6 // 25  # 1,200: the cap falls in the middle of a day
FIRST_DAY = dt.date(2025, 6, 1)
FIRST_ID = 100_000
CHANGED_AT = dt.datetime(2025, 11, 20, 12, 0)  # naive UTC, as Chatwoot stores it


def day_of(row: int) -> dt.date:
    return FIRST_DAY + dt.timedelta(days=row // PER_DAY)


def position_of(row: int) -> StreamPosition:
    return StreamPosition((CHANGED_AT + dt.timedelta(seconds=row)).isoformat(), FIRST_ID + row)


@pytest.fixture
def world(make_pg_database):
    chatwoot_url, analytics_url = make_pg_database("chatwoot"), make_pg_database("analytics")
    source, analytics = get_engine(chatwoot_url), get_engine(analytics_url)
    cw = ChatwootBuilder(source)
    gym = cw.account("AllpFit")
    apply_migrations(analytics)
    add_tenant(analytics, "allpfit", "AllpFit", gym)
    resources = {"chatwoot": ChatwootDatabase(url=chatwoot_url), "analytics": AnalyticsDatabase(url=analytics_url)}
    with dg.instance_for_test() as instance:
        yield {"source": source, "cw": cw, "gym": gym, "instance": instance, "resources": resources}


def tick(world, cursor: str | None):
    with dg.build_sensor_context(instance=world["instance"], cursor=cursor, resources=world["resources"]) as context:
        result = chatwoot_activity_sensor(context)
        return result, result.cursor if isinstance(result, dg.SensorResult) else context.cursor


def insert_conversations(world, per_conversation_day: bool) -> None:
    """Old conversations: one per row (created on day_of(row)), or one per day."""
    count = ROWS if not per_conversation_day else ROWS // PER_DAY + 1
    step = 1 if not per_conversation_day else PER_DAY
    with world["source"].begin() as conn:
        conn.execute(sa.text(
            "INSERT INTO conversations (id, account_id, inbox_id, status, created_at, updated_at, display_id, last_activity_at)"
            " SELECT :first + n, :account, :inbox, 0, :day0 + (n * :step / :per_day) * interval '1 day' + interval '15 hours',"
            "        timestamp '2025-10-01', n + 1, timestamp '2025-10-01'"
            " FROM generate_series(0, :count - 1) AS n"),
            {"first": FIRST_ID, "account": world["gym"], "inbox": world["cw"].inboxes[world["gym"]], "day0": FIRST_DAY, "step": step,
             "per_day": PER_DAY, "count": count})


def change_rows(world, stream: str) -> None:
    """ROWS new activity rows after the cursor, row n at CHANGED_AT + n seconds with id FIRST_ID + n,
    belonging to a conversation of day_of(n)."""
    with world["source"].begin() as conn:
        if stream == "conversations":
            conn.execute(sa.text("UPDATE conversations SET updated_at = :at + (id - :first) * interval '1 second'"
                                 " WHERE id >= :first"), {"at": CHANGED_AT, "first": FIRST_ID})
        else:
            conn.execute(sa.text(
                "INSERT INTO messages (id, content, account_id, inbox_id, conversation_id, message_type, created_at, updated_at)"
                " SELECT :first + n, 'oi', :account, :inbox, :first + n / :per_day, 0,"
                "        :at + n * interval '1 second', :at + n * interval '1 second'"
                " FROM generate_series(0, :rows - 1) AS n"),
                {"first": FIRST_ID, "account": world["gym"], "inbox": world["cw"].inboxes[world["gym"]], "per_day": PER_DAY,
                 "at": CHANGED_AT, "rows": ROWS})


def requested(result) -> set[str]:
    assert len(result.run_requests) <= 1  # one tenant: at most one run per tick, over all its changed days
    return requested_keys(result)


def keys(rows: range) -> set[str]:
    return {f"{day_of(n).isoformat()}|allpfit" for n in rows}


@pytest.mark.parametrize("stream", ["messages", "conversations"])
def test_a_tick_reads_at_most_the_cap_and_the_next_tick_reads_the_rest(world, stream):
    insert_conversations(world, per_conversation_day=stream == "messages")
    skipped, start = tick(world, None)  # a new sensor starts at the newest activity
    assert isinstance(skipped, dg.SkipReason)
    other = "conversations" if stream == "messages" else "messages"
    change_rows(world, stream)

    first, cursor = tick(world, start)
    assert requested(first) == keys(range(MAX_ROWS_PER_TICK)) != keys(range(ROWS))
    position = ActivityCursor.parse(cursor)
    assert getattr(position, stream) == position_of(MAX_ROWS_PER_TICK - 1)  # exactly past the rows requested
    assert getattr(position, other) == getattr(ActivityCursor.parse(start), other)

    second, cursor = tick(world, cursor)
    assert requested(second) == keys(range(MAX_ROWS_PER_TICK, ROWS))
    assert getattr(ActivityCursor.parse(cursor), stream) == position_of(ROWS - 1)
    # the day the cap cut in two is requested again, under a new run_key, for its remaining rows
    (cut,) = requested(first) & requested(second)
    assert cut == f"{day_of(MAX_ROWS_PER_TICK).isoformat()}|allpfit"
    assert {r.run_key for r in first.run_requests}.isdisjoint(r.run_key for r in second.run_requests)

    third, _ = tick(world, cursor)
    assert third.run_requests == []
