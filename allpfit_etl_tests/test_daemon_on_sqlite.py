"""The embedded defaults under a real ``dagster-daemon``: every sensor ticks cleanly on the SQLite
demo home (Dagster's own SQLite storage, SQLite analytics and Chatwoot databases, the instance
``allpfit-etl`` writes there), and the activity sensor turns new messages in two conversations
days apart into one range run, executed in one process, and into no second run."""

from __future__ import annotations

import datetime as dt
import time
from collections import Counter

import dagster as dg
import sqlalchemy as sa

from allpfit_etl.demo.live import write_message
from allpfit_etl.demo.seed import DEMO_TENANTS
from allpfit_etl.errors import root_cause_line
from allpfit_etl.runner import LOCAL_INSTANCE_YAML
from allpfit_devtools.deployment import sensor_ticks_since, wait_for
from allpfit_etl_tests.deployments import demo_home_daemon
from allpfit_etl_tests.run_requests import RANGE_END, RANGE_START

INTERVAL_SECONDS = 5
ACTIVITY_TICKS = 5  # ticks of the activity sensor seen through (not counted by a clock: the load sets their pace)
FINISHED = {dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED}


def two_conversations_days_apart(chatwoot: sa.Engine, account_id: int) -> list[int]:
    """The newest demo conversation and one created 2 to 6 days before it."""
    with chatwoot.connect() as conn:
        rows = conn.execute(sa.text(
            "SELECT id, created_at FROM conversations WHERE account_id = :a ORDER BY created_at DESC"),
            {"a": account_id}).all()
    newest = rows[0]
    newest_at = dt.datetime.fromisoformat(str(newest.created_at))
    older = next(r for r in rows if dt.timedelta(days=2) < newest_at - dt.datetime.fromisoformat(str(r.created_at))
                 < dt.timedelta(days=6))
    return [newest.id, older.id]


def tick_statuses(instance: dg.DagsterInstance) -> dict[str, Counter]:
    statuses: dict[str, Counter] = {}
    for state in instance.all_instigator_state():
        ticks = instance.get_ticks(state.instigator_origin_id, state.selector_id, limit=1000)
        statuses[state.instigator_name] = Counter(t.status.value for t in ticks)
    return statuses


def enough_ticks(statuses: dict[str, Counter]) -> bool:
    return (statuses.get("chatwoot_activity_sensor", Counter()).total() >= ACTIVITY_TICKS
            and statuses.get("tenant_partitions_sensor", Counter()).total() >= 2)


def failed_tick_errors(instance: dg.DagsterInstance) -> list[str]:
    errors = []
    for state in instance.all_instigator_state():
        for tick in instance.get_ticks(state.instigator_origin_id, state.selector_id, limit=1000):
            if tick.status.value == "FAILURE":
                errors.append(f"{state.instigator_name}: {root_cause_line(tick.error) if tick.error else '?'}")
    return errors


def test_every_sensor_ticks_cleanly_and_new_messages_days_apart_become_one_range_run_in_one_process(
        tmp_path, monkeypatch):
    tenant = DEMO_TENANTS[2]
    trigger = {"allpfit/trigger": "activity_sensor"}
    with demo_home_daemon(tmp_path, monkeypatch, LOCAL_INSTANCE_YAML, DEMO_TENANTS, INTERVAL_SECONDS) as instance:
        wait_for(lambda: tick_statuses(instance).get("chatwoot_activity_sensor", Counter()).total() >= 2, 60,
                 "the activity sensor's first two ticks")
        chatwoot = sa.create_engine(f"sqlite:///{tmp_path / 'chatwoot.db'}")
        for conversation in two_conversations_days_apart(chatwoot, tenant.account_id):  # a contact writes again, now
            write_message(chatwoot, conversation, "Ainda tem vaga na turma das 19h?")
        chatwoot.dispose()
        launched = wait_for(lambda: instance.get_runs(dg.RunsFilter(tags=trigger)), 90, "the sensor's run")
        done = wait_for(lambda: (r := instance.get_run_by_id(launched[0].run_id)) and r.status in FINISHED and r, 240,
                        "that run to finish", 2)
        ended = time.time()
        # A tick after the run sees the same changes (no second run for them); every sensor goes on ticking.
        wait_for(lambda: sensor_ticks_since(instance, "chatwoot_activity_sensor", ended) >= 1, 60, "a tick after the run")
        wait_for(lambda: enough_ticks(tick_statuses(instance)), 120, f"{ACTIVITY_TICKS} activity-sensor ticks")
        runs = instance.get_runs(dg.RunsFilter(tags=trigger))

    statuses = tick_statuses(instance)
    assert failed_tick_errors(instance) == []
    assert enough_ticks(statuses), statuses
    assert statuses["chatwoot_activity_sensor"]["SUCCESS"] >= 1, statuses  # the tick that requested the run
    assert "same thread" not in (tmp_path / "daemon.log").read_text(errors="replace")

    assert len(runs) == 1, [r.tags for r in runs]
    assert done.status == dg.DagsterRunStatus.SUCCESS
    tags = done.tags
    assert RANGE_START in tags and RANGE_END in tags and "dagster/partition" not in tags
    first, last = (dt.date.fromisoformat(tags[t].split("|")[0]) for t in (RANGE_START, RANGE_END))
    assert tags[RANGE_START].endswith(f"|{tenant.slug}") and 2 <= (last - first).days <= 6
    materialized = {
        e.dagster_event.partition
        for e in instance.all_logs(done.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION)
        if e.dagster_event.asset_key == dg.AssetKey("chatwoot_conversations")
    }
    assert len(materialized) == (last - first).days + 1  # every day of the range, in one run
    step_pids = {e.dagster_event.pid for e in instance.all_logs(done.run_id, of_type=dg.DagsterEventType.STEP_START)}
    assert len(step_pids) == 1  # the in_process executor: one process for every step
