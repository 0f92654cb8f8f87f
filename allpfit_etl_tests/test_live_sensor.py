"""The activity sensor under live traffic (issue 24): at most one queued run per tenant, several days in
one range run, changes never lost while a run is queued or under way, and settled provisional answers
waking their tenant's pipeline.

The decisions are plain functions, tested first without Dagster; then the sensor itself through
build_sensor_context on a persistent test instance holding runs in the states at stake (queued,
started at a given time, finished), against real PostgreSQL and SQLite databases. A real
``dagster-daemon`` launching the range run the sensor requests is test_daemon_on_sqlite's."""

from __future__ import annotations

import datetime as dt
import json
import time

import dagster as dg
import pytest
import sqlalchemy as sa

from allpfit_etl.automation.activity import (
    FINISHED, MAX_DAYS_PER_RUN, PENDING, RUNNING, SETTLE_HOLD_BACK_LIMIT, SETTLE_LOOKBACK, ActivityCursor,
    SettledDay, StreamPosition, TenantRun, Waiting, describe_run, plan_tenant_runs, settle_checked_until,
)
from allpfit_etl.automation.sensors import INCREMENTAL_RUN_CONFIG, LIVE_ASSETS, LIVE_CHECKS, chatwoot_activity_sensor
from allpfit_etl.db import get_engine
from allpfit_etl.jobs import LEAD_ANALYSIS_JOB_NAME
from allpfit_etl.resources import AnalyticsDatabase, ChatwootDatabase
from allpfit_etl.schema import apply_migrations
from allpfit_etl.tenants.registry import TenantFeatures, add_tenant, update_features
from allpfit_etl_tests.chatwoot_builder import ChatwootBuilder
from allpfit_etl_tests.run_requests import RANGE_END, RANGE_START, make_run, request_keys, requested_keys, start_run

UTC = dt.timezone.utc
D = dt.date
NOW = dt.datetime(2025, 11, 20, 15, 0, tzinfo=UTC)


def run(state, first=None, last=None, *, tenant="gym", started_at=None, backfill=False, reads=True) -> TenantRun:
    return TenantRun(tenant, first, last if last else first, state, started_at, backfill, reads)


# --- the decisions, without Dagster ------------------------------------------------------------

def test_changes_to_several_days_become_one_range_run():
    plan = plan_tenant_runs("gym", {}, {D(2025, 11, 18): "m1", D(2025, 11, 20): "m2"}, [], [], now=NOW)
    assert (plan.request.first_day, plan.request.last_day) == (D(2025, 11, 18), D(2025, 11, 20))
    assert plan.request.changes == ((D(2025, 11, 18), "m1"), (D(2025, 11, 20), "m2"))
    assert plan.waiting == {} and not plan.queued_run


def test_while_a_queued_run_covers_a_change_nothing_more_is_requested_and_nothing_is_lost():
    queued = run(PENDING, D(2025, 11, 19), D(2025, 11, 20))
    earlier = Waiting("m0", NOW - dt.timedelta(minutes=1))
    plan = plan_tenant_runs("gym", {D(2025, 11, 10): earlier}, {D(2025, 11, 20): "m1", D(2025, 11, 12): "m2"}, [],
                            [queued], now=NOW)
    assert plan.request is None and plan.queued_run  # at most one queued run per tenant
    assert plan.covered == [D(2025, 11, 20)]  # the queued run reads day 20 when it starts
    assert plan.waiting == {D(2025, 11, 10): earlier, D(2025, 11, 12): Waiting("m2", NOW), D(2025, 11, 20): Waiting("m1", NOW)}

    # the queued run starts: day 20 is read by it; the other days get the next run
    later = NOW + dt.timedelta(seconds=30)
    started = run(RUNNING, D(2025, 11, 19), D(2025, 11, 20), started_at=NOW + dt.timedelta(seconds=5))
    after = plan_tenant_runs("gym", plan.waiting, {}, [], [started], now=later)
    assert (after.request.first_day, after.request.last_day) == (D(2025, 11, 10), D(2025, 11, 12))
    assert after.request.changes == ((D(2025, 11, 10), "m0"), (D(2025, 11, 12), "m2"))
    assert after.waiting == {}


def test_a_queued_run_canceled_before_it_started_leaves_its_days_to_another_run():
    plan = plan_tenant_runs("gym", {}, {D(2025, 11, 20): "m1"}, [], [run(PENDING, D(2025, 11, 20))], now=NOW)
    assert plan.request is None and list(plan.waiting) == [D(2025, 11, 20)]
    canceled = run(FINISHED, D(2025, 11, 20))  # never started: it read nothing
    again = plan_tenant_runs("gym", plan.waiting, {}, [], [canceled], now=NOW + dt.timedelta(seconds=30))
    assert again.request.changes == ((D(2025, 11, 20), "m1"),)


def test_a_change_seen_after_the_tenants_run_started_gets_a_new_run():
    for state in (RUNNING, FINISHED):
        under_way = run(state, D(2025, 11, 20), started_at=NOW - dt.timedelta(seconds=10))
        plan = plan_tenant_runs("gym", {}, {D(2025, 11, 20): "m1"}, [], [under_way], now=NOW)
        assert plan.request and (plan.request.first_day, plan.request.last_day) == (D(2025, 11, 20), D(2025, 11, 20))


def test_a_tenants_runs_start_at_least_the_spacing_apart_and_the_changes_wait_meanwhile():
    spacing = dt.timedelta(seconds=45)
    recent = run(FINISHED, D(2025, 11, 20), started_at=NOW - dt.timedelta(seconds=30))
    plan = plan_tenant_runs("gym", {}, {D(2025, 11, 20): "m1"}, [], [recent], now=NOW, spacing=spacing)
    assert plan.request is None and plan.waiting == {D(2025, 11, 20): Waiting("m1", NOW)} and not plan.queued_run
    later = NOW + dt.timedelta(seconds=30)  # the next tick: 60 s after the last run started
    again = plan_tenant_runs("gym", plan.waiting, {}, [], [recent], now=later, spacing=spacing)
    assert again.request.changes == ((D(2025, 11, 20), "m1"),) and again.waiting == {}
    # another tenant's run, or a backfill run of this one, does not hold it back
    for other in (run(RUNNING, D(2025, 11, 20), tenant="other", started_at=NOW),
                  run(RUNNING, D(2025, 11, 1), D(2025, 11, 14), backfill=True, started_at=NOW)):
        assert plan_tenant_runs("gym", {}, {D(2025, 11, 20): "m"}, [], [other], now=NOW, spacing=spacing).request


def test_only_the_tenants_own_runs_count_and_a_backfill_does_not_hold_the_live_runs_back():
    other = run(PENDING, D(2025, 11, 20), tenant="other")
    assert plan_tenant_runs("gym", {}, {D(2025, 11, 20): "m"}, [], [other], now=NOW).request is not None
    backfill = run(PENDING, D(2025, 11, 7), D(2025, 11, 20), backfill=True)  # may start hours from now
    plan = plan_tenant_runs("gym", {}, {D(2025, 11, 20): "m"}, [], [backfill], now=NOW)
    assert plan.request is not None and not plan.queued_run
    # a queued run that does not read Chatwoot (a UI run of the load assets only) covers nothing
    load_only = run(PENDING, D(2025, 11, 20), reads=False)
    assert plan_tenant_runs("gym", {}, {D(2025, 11, 20): "m"}, [], [load_only], now=NOW).request is not None


def test_the_oldest_waiting_days_go_first_and_nothing_is_dropped():
    days = {D(2025, 10, 1) + dt.timedelta(days=n): f"m{n}" for n in range(0, 40, 3)}
    plan = plan_tenant_runs("gym", {}, days, [], [], now=NOW)
    served = []
    while plan.request:
        assert (plan.request.last_day - plan.request.first_day).days < MAX_DAYS_PER_RUN
        served += [day for day, _ in plan.request.changes]
        plan = plan_tenant_runs("gym", plan.waiting, {}, [], [], now=NOW)
    assert served == sorted(days) and plan.waiting == {}


def test_a_settled_answer_is_read_by_a_run_that_started_after_it_settled():
    day, settled_at = D(2025, 11, 20), NOW - dt.timedelta(minutes=1)
    settled = [SettledDay(day, settled_at, 3)]
    for covering_run in (
        run(RUNNING, day, started_at=settled_at),
        run(FINISHED, day, started_at=settled_at + dt.timedelta(seconds=5)),  # found it settled (or failed: no loop)
    ):
        plan = plan_tenant_runs("gym", {}, {}, settled, [covering_run], now=NOW)
        assert plan.request is None and plan.waiting == {}
    queued = plan_tenant_runs("gym", {}, {}, settled, [run(PENDING, day)], now=NOW)  # finds it settled when it starts
    assert queued.request is None and queued.covered == [day]
    for other_run in (
        run(RUNNING, day, started_at=settled_at - dt.timedelta(seconds=1)),  # may have decided before it settled
        run(FINISHED, day, started_at=settled_at - dt.timedelta(minutes=5)),
        run(RUNNING, D(2025, 11, 19), started_at=NOW),  # another day
    ):
        plan = plan_tenant_runs("gym", {}, {}, settled, [other_run], now=NOW)
        assert plan.request.changes == ((day, settled[0].token),)


def test_run_keys_are_stable_for_the_same_changes_and_new_for_new_ones():
    first = plan_tenant_runs("gym", {}, {D(2025, 11, 20): "m1#5"}, [], [], now=NOW).request
    again = plan_tenant_runs("gym", {}, {D(2025, 11, 20): "m1#5"}, [], [], now=NOW + dt.timedelta(seconds=30)).request
    newer = plan_tenant_runs("gym", {}, {D(2025, 11, 20): "m1#6"}, [], [], now=NOW).request
    assert first.run_key("activity") == again.run_key("activity") != newer.run_key("activity")
    assert first.run_key("activity").startswith("activity:gym:2025-11-20..2025-11-20:")


def test_the_settle_check_stays_behind_the_runs_under_way():
    settle = 10.0
    quiet = dt.timedelta(minutes=settle)
    assert settle_checked_until(NOW, settle, []) == NOW - SETTLE_LOOKBACK - quiet
    started = NOW - dt.timedelta(minutes=3)
    runs = [run(RUNNING, D(2025, 11, 20), started_at=started), run(PENDING, D(2025, 11, 20)),
            run(FINISHED, D(2025, 11, 20), started_at=NOW - dt.timedelta(hours=1))]
    assert settle_checked_until(NOW, settle, runs) == started - SETTLE_LOOKBACK - quiet
    hung = run(RUNNING, D(2025, 11, 20), started_at=NOW - SETTLE_HOLD_BACK_LIMIT - dt.timedelta(minutes=1))
    assert settle_checked_until(NOW, settle, [hung]) == NOW - SETTLE_LOOKBACK - quiet


def test_a_run_is_described_by_its_tags_and_status():
    single = {"dagster/partition": "2025-11-20|gym", "allpfit/tenant": "gym"}
    assert describe_run(single, "QUEUED", now=NOW) == run(PENDING, D(2025, 11, 20))
    ranged = {RANGE_START: "2025-11-18|gym", RANGE_END: "2025-11-20|gym", "dagster/backfill": "abc"}
    started = describe_run(ranged, "STARTED", now=NOW, start_time=NOW.timestamp())
    assert started == run(RUNNING, D(2025, 11, 18), D(2025, 11, 20), started_at=NOW, backfill=True)
    assert describe_run({RANGE_START: "2025-11-18|a", RANGE_END: "2025-11-20|b"}, "STARTED", now=NOW).tenant is None
    assert describe_run(single, "SUCCESS", now=NOW).state == FINISHED
    assert describe_run(single, "STARTING", now=NOW).state == PENDING
    # created but never queued (a crash in between): not the tenant's queued run for ever
    assert describe_run(single, "NOT_STARTED", now=NOW, created_at=NOW - dt.timedelta(seconds=5)).state == PENDING
    assert describe_run(single, "NOT_STARTED", now=NOW, created_at=NOW - dt.timedelta(hours=1)).state == FINISHED
    assert not describe_run(single, "QUEUED", now=NOW, asset_keys=["tenant_daily_kpis"]).covers(D(2025, 11, 20))
    assert describe_run({"dagster/sensor_name": "x"}, "QUEUED", now=NOW) is None  # no tenant's run


def test_a_cursor_written_before_the_live_fields_parses():
    old = json.dumps({"messages": {"id": 7, "ts": "2025-11-20T12:00:00"}, "conversations": {"id": 3, "ts": EPOCH_TEXT}})
    cursor = ActivityCursor.parse(old)
    assert cursor.messages == StreamPosition("2025-11-20T12:00:00", 7)
    assert cursor.waiting == {} and cursor.settle_checked == {}
    assert cursor.waiting_days("gym") == {} and cursor.settle_checked_at("gym") is None
    assert cursor.oldest_instant() is None
    cursor.set_waiting("gym", {D(2025, 11, 20): Waiting("m1", NOW)})
    cursor.settle_checked = {"gym": (NOW - dt.timedelta(minutes=11)).isoformat()}
    back = ActivityCursor.parse(cursor.serialize())
    assert back.waiting_days("gym") == {D(2025, 11, 20): Waiting("m1", NOW)}
    assert back.settle_checked_at("gym") == NOW - dt.timedelta(minutes=11) == back.oldest_instant()


EPOCH_TEXT = "1970-01-01T00:00:00"


# --- the sensor, on a test instance and real databases ------------------------------------------

def make_world(chatwoot_url: str, analytics_url: str):
    source, analytics = get_engine(chatwoot_url), get_engine(analytics_url)
    cw = ChatwootBuilder(source)
    gym, other = cw.account("AllpFit"), cw.account("InvestBem")
    conversations = {
        day: cw.conversation(gym, dt.datetime(2025, 11, day, 13, 0), f"Contato {day}") for day in (10, 11, 12)
    }
    regex_conversation = cw.conversation(other, dt.datetime(2025, 11, 10, 15, 0), "Caio")
    for conv in conversations.values():
        cw.message(gym, conv, dt.datetime(2025, 11, 12, 20, 0), "oi")
    apply_migrations(analytics)
    # allpfit pays OpenAI once a conversation is quiet for 10 minutes; investbem answers by regex
    add_tenant(analytics, "allpfit", "AllpFit", gym, TenantFeatures(use_openai=True, settle_minutes=10.0))
    add_tenant(analytics, "investbem", "InvestBem", other)
    resources = {"chatwoot": ChatwootDatabase(url=chatwoot_url), "analytics": AnalyticsDatabase(url=analytics_url)}
    return {"cw": cw, "source": source, "analytics": analytics, "resources": resources, "gym": gym, "other": other,
            "conversations": conversations, "regex_conversation": regex_conversation}


SENSOR_INTERVAL = 1  # the sensor tests' ticks: a tenant's runs start at least 1.5 s apart


@pytest.fixture
def world(make_pg_database, monkeypatch):
    monkeypatch.setenv("ALLPFIT_ACTIVITY_SENSOR_INTERVAL", str(SENSOR_INTERVAL))
    with dg.instance_for_test() as instance:
        yield {**make_world(make_pg_database("chatwoot"), make_pg_database("analytics")), "instance": instance}


@pytest.fixture(params=["postgresql", "sqlite"])
def settle_world(request, make_pg_database, tmp_path):
    """The settle check reads the analytics database: both dialects."""
    analytics_url = make_pg_database("analytics") if request.param == "postgresql" else f"sqlite:///{tmp_path / 'analytics.db'}"
    with dg.instance_for_test() as instance:
        yield {**make_world(make_pg_database("chatwoot"), analytics_url), "instance": instance}


def tick(world, cursor: str | None):
    with dg.build_sensor_context(instance=world["instance"], cursor=cursor, resources=world["resources"]) as context:
        result = chatwoot_activity_sensor(context)
        return result, result.cursor if isinstance(result, dg.SensorResult) else context.cursor


def started_cursor(world) -> str:
    skipped, cursor = tick(world, None)
    assert isinstance(skipped, dg.SkipReason)
    return cursor


def message(world, day: int, text: str = "ainda tem vaga?") -> None:
    world["cw"].message(world["gym"], world["conversations"][day], dt.datetime.now(UTC).replace(tzinfo=None), text)


def add_answer(world, conversation_id: int, day: dt.date, last_activity_at: dt.datetime, *, tenant: str = "allpfit",
               kind: str = "provisional") -> None:
    """A conversations_analytics row as the load step writes it (last activity as of its extract)."""
    with world["analytics"].begin() as conn:
        tenant_id = conn.execute(sa.text("SELECT tenant_id FROM tenant_configs WHERE slug = :s"), {"s": tenant}).scalar_one()
        conn.execute(sa.text(
            "INSERT INTO conversations_analytics (tenant_id, conversation_id, day, display_id, conversation_created_at,"
            " last_activity_at, contact_messages_count, message_compiled, content_hash, is_lead, visita_agendada,"
            " probabilidade_conversao, analise_ia, analyzer, model, prompt_version, analyzed_at, loaded_at, answer_kind)"
            " VALUES (:t, :c, :d, :c, :created, :last, 1, 'x', 'h', FALSE, FALSE, 0, 'regex', 'regex', 'regex', 'v1',"
            " :now, :now, :kind)"),
            {"t": tenant_id, "c": conversation_id, "d": day, "created": last_activity_at, "last": last_activity_at,
             "now": dt.datetime.now(UTC), "kind": kind})


def ago(**delta) -> dt.datetime:
    return dt.datetime.now(UTC) - dt.timedelta(**delta)


def test_changes_to_several_days_of_a_tenant_become_one_in_process_range_run(world):
    cursor = started_cursor(world)
    message(world, 10)
    message(world, 12)
    result, cursor = tick(world, cursor)
    (request,) = result.run_requests
    assert request.partition_key is None
    assert request.tags[RANGE_START] == "2025-11-10|allpfit" and request.tags[RANGE_END] == "2025-11-12|allpfit"
    assert request.tags["allpfit/tenant"] == "allpfit" and request.tags["allpfit/trigger"] == "activity_sensor"
    assert request.run_config == INCREMENTAL_RUN_CONFIG
    # messages only (provisional answers): the dashboards' table and its checks, not the monitoring
    assert request.asset_selection == LIVE_ASSETS and request.asset_check_keys == LIVE_CHECKS
    from allpfit_etl.definitions import defs

    validated = dg.validate_run_config(defs.resolve_job_def(LEAD_ANALYSIS_JOB_NAME), request.run_config)
    assert list(validated["execution"].values()) == [{"in_process": {"retries": {"enabled": {}}}}]
    assert ActivityCursor.parse(cursor).waiting == {}
    again, _ = tick(world, cursor)
    assert again.run_requests == []


def waiting_days(cursor: str) -> list[str]:
    return list(ActivityCursor.parse(cursor).waiting.get("allpfit", {}))


def test_a_change_while_the_tenants_run_is_queued_requests_no_second_run_and_is_not_lost(world):
    instance = world["instance"]
    cursor = started_cursor(world)
    queued = make_run(instance, "allpfit", D(2025, 11, 10), D(2025, 11, 11))

    message(world, 10)  # the queued run reads day 10 when it starts
    result, cursor = tick(world, cursor)
    assert result.run_requests == []
    assert waiting_days(cursor) == ["2025-11-10"]  # until that run has started

    message(world, 12)  # not in the queued run's days: no second queued run, but not lost either
    result, cursor = tick(world, cursor)
    assert result.run_requests == [] and waiting_days(cursor) == ["2025-11-10", "2025-11-12"]
    still, cursor = tick(world, cursor)  # nothing new: still waiting (the cursor is all the sensor keeps)
    assert still.run_requests == [] and waiting_days(cursor) == ["2025-11-10", "2025-11-12"]

    start_run(instance, queued)  # it starts: it reads day 10; day 12 gets its own run...
    result, cursor = tick(world, cursor)
    assert result.run_requests == [] and waiting_days(cursor) == ["2025-11-12"]  # ...once the spacing has passed
    # The sensor reads the wall clock and the spacing is wall-clock time: it must pass (not
    # synchronisation; the rule itself runs on a given clock in the plan_tenant_runs tests above).
    time.sleep(1.5 * SENSOR_INTERVAL)
    result, cursor = tick(world, cursor)
    assert [r.partition_key for r in result.run_requests] == ["2025-11-12|allpfit"]
    assert waiting_days(cursor) == []


def test_a_change_a_queued_run_covered_is_requested_again_when_that_run_is_canceled_before_starting(world):
    instance = world["instance"]
    cursor = started_cursor(world)
    queued = make_run(instance, "allpfit", D(2025, 11, 10))
    message(world, 10)
    result, cursor = tick(world, cursor)
    assert result.run_requests == [] and waiting_days(cursor) == ["2025-11-10"]
    instance.report_run_canceled(queued)
    result, cursor = tick(world, cursor)
    assert [r.partition_key for r in result.run_requests] == ["2025-11-10|allpfit"]
    assert waiting_days(cursor) == []


def test_a_message_while_the_tenants_run_is_started_is_requested_again(world):
    instance = world["instance"]
    cursor = started_cursor(world)
    make_run(instance, "allpfit", D(2025, 11, 10), D(2025, 11, 12), status="STARTED", started_at=ago(seconds=20))
    message(world, 11)  # the run under way may have read day 11 already
    result, cursor = tick(world, cursor)
    assert [request_keys(r) for r in result.run_requests] == [["2025-11-11|allpfit"]]
    # that request is now the tenant's queued run: the next change of its day is covered
    requested = make_run(instance, "allpfit", D(2025, 11, 11))
    message(world, 11, "e amanhã?")
    result, cursor = tick(world, cursor)
    assert result.run_requests == [] and waiting_days(cursor) == ["2025-11-11"]
    start_run(instance, requested)
    result, cursor = tick(world, cursor)
    assert result.run_requests == [] and waiting_days(cursor) == []


def test_a_settled_provisional_answer_wakes_its_tenant_once(settle_world):
    world = settle_world
    convs = world["conversations"]
    cursor = started_cursor(world)
    add_answer(world, convs[10], D(2025, 11, 10), ago(minutes=11))  # quiet for 11 minutes: settled
    add_answer(world, convs[11], D(2025, 11, 11), ago(minutes=3))  # still going on
    add_answer(world, convs[12], D(2025, 11, 12), ago(days=2), kind="final")  # paid for already
    add_answer(world, world["regex_conversation"], D(2025, 11, 10), ago(hours=1), tenant="investbem")  # a regex tenant's

    result, cursor = tick(world, cursor)  # nothing new in Chatwoot: the settle check wakes the pipeline
    assert [(r.tags["allpfit/tenant"], request_keys(r)) for r in result.run_requests] == [("allpfit", ["2025-11-10|allpfit"])]
    # a run that pays for final answers refreshes the monitoring too: the whole job
    assert result.run_requests[0].asset_selection is None and result.run_requests[0].asset_check_keys is None
    assert set(ActivityCursor.parse(cursor).settle_checked) == {"allpfit"}

    again, cursor = tick(world, cursor)  # the same settled conversation is not requested at every tick
    assert again.run_requests == []

    # later the second conversation settles too (settle_minutes lowered to 2, as 10 minutes passing would)
    update_features(world["analytics"], "allpfit", settle_minutes=2.0)
    result, cursor = tick(world, cursor)
    assert requested_keys(result) == {"2025-11-11|allpfit"}


def test_an_answer_committed_after_it_settled_by_a_run_under_way_is_still_found(settle_world):
    world, instance = settle_world, settle_world["instance"]
    cursor = started_cursor(world)
    # a run of the tenant started 2 minutes ago and found the conversation quiet for less than 10 minutes
    make_run(instance, "allpfit", D(2025, 11, 10), status="STARTED", started_at=ago(minutes=2))
    result, cursor = tick(world, cursor)  # the conversation settles meanwhile; its answer is not committed yet
    assert result.run_requests == []
    # the run commits the provisional answer: quiet since 11.5 minutes ago, settled 1.5 minutes ago, after the
    # run started, and before the last tick (which looked at answers up to 11 minutes quiet)
    add_answer(world, world["conversations"][10], D(2025, 11, 10), ago(minutes=11, seconds=30))
    result, cursor = tick(world, cursor)
    assert requested_keys(result) == {"2025-11-10|allpfit"}


def test_a_settled_answer_is_not_requested_while_a_run_that_finds_it_settled_is_queued_or_under_way(settle_world):
    world, instance = settle_world, settle_world["instance"]
    cursor = started_cursor(world)
    add_answer(world, world["conversations"][10], D(2025, 11, 10), ago(minutes=12))  # settled 2 minutes ago
    queued = make_run(instance, "allpfit", D(2025, 11, 9), D(2025, 11, 10))
    result, _ = tick(world, cursor)
    assert result.run_requests == []
    start_run(instance, queued, ago(seconds=30))  # it started after the conversation settled
    result, _ = tick(world, cursor)
    assert result.run_requests == []


def test_a_cursor_from_before_the_live_fields_checks_every_settled_answer(settle_world):
    world = settle_world
    cursor = ActivityCursor.parse(started_cursor(world))
    old = json.dumps({"messages": vars(cursor.messages), "conversations": vars(cursor.conversations)})
    add_answer(world, world["conversations"][11], D(2025, 11, 11), ago(days=3))  # settled long ago
    message(world, 12)
    result, new_cursor = tick(world, old)
    assert requested_keys(result) == {"2025-11-11|allpfit", "2025-11-12|allpfit"}
    assert len(result.run_requests) == 1
    parsed = ActivityCursor.parse(new_cursor)
    assert parsed.messages != cursor.messages and "allpfit" in parsed.settle_checked
