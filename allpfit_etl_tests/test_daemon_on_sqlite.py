"""The embedded defaults under a real ``dagster-daemon``: every sensor ticks cleanly on the
SQLite demo home (Dagster's own SQLite storage, SQLite analytics and Chatwoot databases),
including the activity sensor's tick that turns a new Chatwoot message into a run."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from pathlib import Path

import dagster as dg
import sqlalchemy as sa

from allpfit_etl.demo.seed import DEMO_TENANTS
from allpfit_etl.errors import root_cause_line
from allpfit_etl.runner import LOCAL_INSTANCE_YAML
from allpfit_devtools.deployment import wait_for
from allpfit_etl_tests.deployments import demo_home_daemon

INTERVAL_SECONDS = 5
ACTIVITY_TICKS = 5  # ticks of the activity sensor seen through (not counted by a clock: the load sets their pace)


def add_chatwoot_message(chatwoot_db: Path, account_id: int) -> None:
    """A contact writes again in an existing demo conversation, now."""
    engine = sa.create_engine(f"sqlite:///{chatwoot_db}")
    now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None).isoformat(sep=" ")
    with engine.begin() as conn:
        conv = conn.execute(
            sa.text("SELECT id, inbox_id FROM conversations WHERE account_id = :a ORDER BY id DESC LIMIT 1"), {"a": account_id}
        ).one()
        conn.execute(
            sa.text(
                "INSERT INTO messages (content, account_id, inbox_id, conversation_id, message_type, created_at, updated_at, sender_type)"
                " VALUES ('Ainda tem vaga na turma das 19h?', :a, :i, :c, 0, :t, :t, 'Contact')"
            ),
            {"a": account_id, "i": conv.inbox_id, "c": conv.id, "t": now},
        )
        conn.execute(sa.text("UPDATE conversations SET updated_at = :t, last_activity_at = :t WHERE id = :c"), {"t": now, "c": conv.id})
    engine.dispose()


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


def test_every_sensor_ticks_cleanly_for_a_minute_on_the_sqlite_demo_home(tmp_path, monkeypatch):
    with demo_home_daemon(tmp_path, monkeypatch, LOCAL_INSTANCE_YAML, DEMO_TENANTS, INTERVAL_SECONDS) as instance:
        wait_for(lambda: tick_statuses(instance).get("chatwoot_activity_sensor", Counter()).total() >= 2, 60,
                 "the activity sensor's first two ticks")
        add_chatwoot_message(tmp_path / "chatwoot.db", DEMO_TENANTS[1].account_id)
        run = wait_for(lambda: next(iter(instance.get_runs(dg.RunsFilter(tags={"allpfit/trigger": "activity_sensor"}))), None),
                       60, "the run requested by the activity sensor")
        finished = {dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED}
        run = wait_for(lambda: (r := instance.get_run_by_id(run.run_id)) and r.status in finished and r, 240, "that run to finish", 2)
        # The daemon goes on ticking after the run, every sensor.
        wait_for(lambda: enough_ticks(tick_statuses(instance)), 120, f"{ACTIVITY_TICKS} activity-sensor ticks")

    statuses = tick_statuses(instance)
    assert failed_tick_errors(instance) == []
    activity = statuses["chatwoot_activity_sensor"]
    assert enough_ticks(statuses), statuses
    assert activity["SUCCESS"] >= 1, statuses  # the tick that requested the run
    assert run.status == dg.DagsterRunStatus.SUCCESS
    assert "same thread" not in (tmp_path / "daemon.log").read_text(errors="replace")
