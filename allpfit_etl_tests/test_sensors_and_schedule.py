"""Sensors and the schedule, evaluated with build_sensor_context on a persistent test instance
against real databases."""

from __future__ import annotations

import datetime as dt

import dagster as dg
import pytest

from allpfit_etl.automation.activity import STREAMS, ActivityCursor, read_stream
from allpfit_etl.automation.schedules import every_two_hours_schedule
from allpfit_etl.automation.sensors import INCREMENTAL_RUN_CONFIG, chatwoot_activity_sensor, tenant_partitions_sensor
from allpfit_etl.db import get_engine
from allpfit_etl.partitions import TENANT_PARTITIONS_NAME
from allpfit_etl.resources import AnalyticsDatabase, ChatwootDatabase
from allpfit_etl.schema import apply_migrations
from allpfit_etl.tenants.registry import add_tenant, set_enabled
from allpfit_etl_tests.chatwoot_builder import ChatwootBuilder
from allpfit_etl_tests.run_requests import RANGE_END, RANGE_START, make_run, request_keys, start_run

UTC = dt.datetime


@pytest.fixture
def world(make_pg_database):
    chatwoot_url, analytics_url = make_pg_database("chatwoot"), make_pg_database("analytics")
    source, analytics = get_engine(chatwoot_url), get_engine(analytics_url)
    cw = ChatwootBuilder(source)
    gym, other = cw.account("AllpFit"), cw.account("InvestBem")
    conv_day10 = cw.conversation(gym, UTC(2025, 11, 10, 13, 0), "Ana")
    conv_day11 = cw.conversation(gym, UTC(2025, 11, 11, 2, 50), "Bia")  # 23:50 local on the 10th
    conv_other = cw.conversation(other, UTC(2025, 11, 10, 15, 0), "Caio")
    for conv, account in ((conv_day10, gym), (conv_day11, gym), (conv_other, other)):
        cw.message(account, conv, UTC(2025, 11, 11, 12, 0), "oi")
    apply_migrations(analytics)
    add_tenant(analytics, "allpfit", "AllpFit", gym)
    add_tenant(analytics, "investbem", "InvestBem", other)
    resources = {"chatwoot": ChatwootDatabase(url=chatwoot_url), "analytics": AnalyticsDatabase(url=analytics_url)}
    with dg.instance_for_test() as instance:
        yield {"instance": instance, "cw": cw, "source": source, "analytics": analytics, "resources": resources,
               "gym": gym, "other": other, "conv_day10": conv_day10, "conv_day11": conv_day11, "conv_other": conv_other}


def evaluate(sensor, world, cursor=None):
    with dg.build_sensor_context(instance=world["instance"], cursor=cursor, resources=world["resources"]) as context:
        return sensor(context), context


def test_tenant_sensor_adds_new_and_removes_disabled_tenants(world):
    result, _ = evaluate(tenant_partitions_sensor, world)
    adds = [r for r in result.dynamic_partitions_requests if isinstance(r, dg.AddDynamicPartitionsRequest)]
    assert [sorted(r.partition_keys) for r in adds] == [["allpfit", "investbem"]]
    world["instance"].add_dynamic_partitions(TENANT_PARTITIONS_NAME, ["allpfit", "investbem"])

    result, _ = evaluate(tenant_partitions_sensor, world)
    assert isinstance(result, dg.SkipReason)

    set_enabled(world["analytics"], "investbem", False)
    result, _ = evaluate(tenant_partitions_sensor, world)
    deletes = [r for r in result.dynamic_partitions_requests if isinstance(r, dg.DeleteDynamicPartitionsRequest)]
    assert [list(r.partition_keys) for r in deletes] == [["investbem"]]


def test_activity_sensor_requests_exactly_the_changed_partition_once(world):
    first, context = evaluate(chatwoot_activity_sensor, world)
    assert isinstance(first, dg.SkipReason)  # the cursor starts at the newest activity
    cursor = context.cursor
    assert cursor

    world["cw"].message(world["gym"], world["conv_day10"], UTC(2025, 11, 12, 9, 0), "quero agendar uma visita")
    result, _ = evaluate(chatwoot_activity_sensor, world, cursor)
    assert [r.partition_key for r in result.run_requests] == ["2025-11-10|allpfit"]
    assert result.run_requests[0].tags["allpfit/tenant"] == "allpfit"
    assert result.run_requests[0].run_key

    again, _ = evaluate(chatwoot_activity_sensor, world, result.cursor)
    assert again.run_requests == []

    # the same tick evaluated twice (a daemon restart before the cursor was saved) gives the same run_key
    replay, _ = evaluate(chatwoot_activity_sensor, world, cursor)
    assert [r.run_key for r in replay.run_requests] == [r.run_key for r in result.run_requests]


def test_activity_sensor_maps_a_late_night_conversation_to_its_local_day(world):
    _, context = evaluate(chatwoot_activity_sensor, world)
    world["cw"].message(world["gym"], world["conv_day11"], UTC(2025, 11, 12, 9, 0), "boa noite")
    result, _ = evaluate(chatwoot_activity_sensor, world, context.cursor)
    assert [r.partition_key for r in result.run_requests] == ["2025-11-10|allpfit"]  # 02:50 UTC = 23:50 on the 10th


def test_disabled_tenant_requests_nothing(world):
    _, context = evaluate(chatwoot_activity_sensor, world)
    set_enabled(world["analytics"], "investbem", False)
    world["cw"].message(world["other"], world["conv_other"], UTC(2025, 11, 12, 9, 0), "oi de novo")
    result, _ = evaluate(chatwoot_activity_sensor, world, context.cursor)
    assert result.run_requests == []


@pytest.mark.parametrize("stream", STREAMS)
def test_equal_timestamps_are_neither_skipped_nor_repeated(world, stream):
    same = UTC(2025, 11, 13, 10, 0, 0)
    _, context = evaluate(chatwoot_activity_sensor, world)
    position = getattr(ActivityCursor.parse(context.cursor), stream)
    world["cw"].message(world["gym"], world["conv_day10"], same, "um")
    world["cw"].message(world["other"], world["conv_other"], same, "dois")
    world["cw"].message(world["gym"], world["conv_day11"], same, "três")
    seen = []
    for _ in range(5):  # one row per tick
        changes, position = read_stream(
            world["source"], stream, position, [world["gym"], world["other"]], "America/Sao_Paulo", limit=1
        )
        seen += [(c.row_id, c.ts) for c in changes]
    assert len(seen) == 3 and len(set(seen)) == 3
    assert {ts for _, ts in seen} == {same.isoformat()}
    assert [row_id for row_id, _ in seen] == sorted(row_id for row_id, _ in seen)


def schedule_at(world, when: dt.datetime):
    context = dg.build_schedule_context(
        instance=world["instance"], resources={"analytics": world["resources"]["analytics"]}, scheduled_execution_time=when,
    )
    return every_two_hours_schedule(context)


SCHEDULED = dt.datetime(2025, 11, 20, 10, 0, tzinfo=dt.timezone(dt.timedelta(hours=-3)))


def test_schedule_requests_one_run_over_today_and_yesterday_for_every_enabled_tenant(world):
    set_enabled(world["analytics"], "investbem", False)
    (request,) = schedule_at(world, SCHEDULED)
    assert request.partition_key is None
    assert request.tags[RANGE_START] == "2025-11-19|allpfit" and request.tags[RANGE_END] == "2025-11-20|allpfit"
    assert request.tags["allpfit/tenant"] == "allpfit" and request.tags["allpfit/trigger"] == "schedule"
    assert request.run_config == INCREMENTAL_RUN_CONFIG
    assert request_keys(request) == ["2025-11-19|allpfit", "2025-11-20|allpfit"]
    assert request.run_key


def test_schedule_adds_no_second_queued_run_for_days_a_queued_run_covers(world):
    instance = world["instance"]
    make_run(instance, "allpfit", dt.date(2025, 11, 18), dt.date(2025, 11, 20))  # queued: covers both days
    make_run(instance, "investbem", dt.date(2025, 11, 20))  # queued: covers today only
    requests = schedule_at(world, SCHEDULED)
    assert [(r.tags["allpfit/tenant"], request_keys(r)) for r in requests] == [("investbem", ["2025-11-19|investbem"])]
    assert requests[0].partition_key == "2025-11-19|investbem"

    # once the queued runs have started they may have read Chatwoot already: the schedule runs again
    for run in instance.get_runs(dg.RunsFilter(statuses=[dg.DagsterRunStatus.QUEUED])):
        start_run(instance, run)
    later = schedule_at(world, SCHEDULED + dt.timedelta(hours=2))
    assert sorted(key for r in later for key in request_keys(r)) == [
        "2025-11-19|allpfit", "2025-11-19|investbem", "2025-11-20|allpfit", "2025-11-20|investbem"]

    for slug in ("allpfit", "investbem"):  # both tenants queued again over both days: nothing to add
        make_run(instance, slug, dt.date(2025, 11, 19), dt.date(2025, 11, 20))
    assert isinstance(schedule_at(world, SCHEDULED + dt.timedelta(hours=4)), dg.SkipReason)


def test_a_backfills_queued_run_does_not_stand_in_for_the_schedules(world):
    set_enabled(world["analytics"], "investbem", False)
    make_run(world["instance"], "allpfit", dt.date(2025, 11, 7), dt.date(2025, 11, 20), trigger="backfill",
             extra_tags={"dagster/backfill": "abcdefgh"})  # may start hours from now
    (request,) = schedule_at(world, SCHEDULED)
    assert request_keys(request) == ["2025-11-19|allpfit", "2025-11-20|allpfit"]
