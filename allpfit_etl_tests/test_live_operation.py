"""Live operation through the daemon (issue 24): conversations written message by message while
``dagster-daemon`` runs with the repo's dagster.yaml (PostgreSQL storage, QueuedRunCoordinator,
one run per tenant), the activity sensor every 5 s, OpenAI tenants that pay for a conversation
once it has settled (``settle_minutes`` 0.5) and the bundled OpenAI-compatible server.

One deployment serves the module, and its three scenarios run at the same time (the file stays
within ~5 minutes): the fixture starts them, each test waits for its own outcome.

- live traffic: two tenants, a conversation every 30 s per tenant for a minute, 7 messages
  10 s apart (demo/live.py). Each gets its free provisional (regex) answer while it goes on and
  its final OpenAI answer, on its whole transcript, once settled — paid about once.
- a conversation that resumes after it settled is paid exactly twice (on a traffic tenant).
- a resolved conversation (Chatwoot status 1) of a tenant that settles after the default 10
  minutes is analysed at once.

Meanwhile a watcher polls ``conversations_analytics`` (the kinds of answer each conversation
showed, in order) and the instance's QUEUED runs (never more than one per tenant).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import random
import threading
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

import dagster as dg
import pytest
import sqlalchemy as sa

from allpfit_etl.db import get_engine
from allpfit_etl.demo.live import (
    LiveSchedule, LiveTraffic, ensure_account, live_script, open_conversation, resolve_conversation, write_message,
    write_step,
)
from allpfit_etl.demo.seed import create_chatwoot_schema
from allpfit_etl.errors import root_cause_line
from allpfit_etl.extract.chatwoot_source import extract_day
from fake_openai import FakeOpenAIServer, FakeServerConfig
from allpfit_etl.schema import apply_migrations
from allpfit_etl.tenants.registry import TenantFeatures, add_tenant
from allpfit_etl_tests.conftest import TEST_DATABASE_URL
from allpfit_devtools.deployment import (
    postgres_databases, production_deployment, sensor_ticks_since, wait_for,
)

pytestmark = pytest.mark.xdist_group("live")

TIMEZONE = "America/Sao_Paulo"
SETTLE_MINUTES = 0.5
SENSOR_INTERVAL = 5
TRAFFIC_TENANTS = {"north": 1, "south": 2}
RESOLVED_TENANT = ("resolved", 4)  # default settle_minutes (10): only the resolution settles it at once
TRAFFIC = LiveSchedule(duration_min=1.0, every_s=30, gap_s=10, messages=7, seed=24)
CONTACT_MESSAGES = 4  # of 7: contact, bot, contact, bot, contact, bot, contact
SLACK_S = 150  # after settling: the sensor's tick, the queue, the run


@dataclass
class Watch:
    """What the watcher saw, updated about every second."""

    kinds: dict[tuple[int, int], list[tuple[str, str, float]]] = field(default_factory=lambda: defaultdict(list))
    max_queued: Counter = field(default_factory=Counter)  # tenant slug → most QUEUED runs seen at once
    max_queued_total: int = 0
    runs: dict[str, str] = field(default_factory=dict)  # run id → tenant
    polls: int = 0
    error: BaseException | None = None

    def answers(self, tenant_id: int, conversation_id: int) -> list[tuple[str, str, float]]:
        """(answer_kind, content_hash, monotonic time first seen), in order, for one conversation."""
        return list(self.kinds.get((tenant_id, conversation_id), []))


def watch(stop: threading.Event, analytics: sa.Engine, seen: Watch) -> None:
    instance = dg.DagsterInstance.get()  # this thread's own
    try:
        while not stop.is_set():
            with analytics.connect() as conn:
                rows = conn.execute(sa.text(
                    "SELECT tenant_id, conversation_id, answer_kind, content_hash FROM conversations_analytics")).all()
            now = time.monotonic()
            for row in rows:
                history = seen.kinds[(row.tenant_id, row.conversation_id)]
                if not history or history[-1][:2] != (row.answer_kind, row.content_hash):
                    history.append((row.answer_kind, row.content_hash, now))
            queued = Counter(r.tags.get("allpfit/tenant") for r in instance.get_runs(
                dg.RunsFilter(statuses=[dg.DagsterRunStatus.QUEUED])))
            for tenant, count in queued.items():
                seen.max_queued[tenant] = max(seen.max_queued[tenant], count)
            seen.max_queued_total = max(seen.max_queued_total, sum(queued.values()))
            for run in instance.get_runs(dg.RunsFilter(job_name="lead_analysis")):
                seen.runs.setdefault(run.run_id, run.tags.get("allpfit/tenant"))
            seen.polls += 1
            stop.wait(1.0)
    except BaseException as exc:  # reported by the tests
        seen.error = exc
    finally:
        instance.dispose()


def final_hashes(source: sa.Engine, account_id: int, days) -> dict[int, tuple[str, int]]:
    """conversation id → (content hash, contact messages) of its transcript as Chatwoot holds it now,
    compiled by the pipeline's own extract."""
    found = {}
    for day in days:
        for batch in extract_day(source, tenant_id=0, account_id=account_id, day=day, timezone=TIMEZONE, workers=1):
            found.update({r["conversation_id"]: (r["content_hash"], r["contact_messages_count"]) for r in batch})
    return found


def local_day(at: dt.datetime) -> dt.date:
    return at.replace(tzinfo=dt.timezone.utc).astimezone(ZoneInfo(TIMEZONE)).date()


def loaded(analytics: sa.Engine, tenant_id: int, conversation_id: int):
    with analytics.connect() as conn:
        return conn.execute(sa.text(
            "SELECT answer_kind, analyzer, content_hash, contact_messages_count, message_compiled"
            " FROM conversations_analytics WHERE tenant_id = :t AND conversation_id = :c"),
            {"t": tenant_id, "c": conversation_id}).one_or_none()


def paid_calls(analytics: sa.Engine) -> dict[tuple[int, int], int]:
    """(tenant, conversation) → OpenAI calls billed (the ledger keeps one row per call)."""
    with analytics.connect() as conn:
        rows = conn.execute(sa.text(
            "SELECT tenant_id, conversation_id, COUNT(*) AS calls FROM llm_usage WHERE prompt_tokens > 0"
            " GROUP BY tenant_id, conversation_id")).all()
    return {(r.tenant_id, r.conversation_id): r.calls for r in rows}


class Scenario(threading.Thread):
    """A scenario driven in the background; ``result()`` waits for it and re-raises its error."""

    def __init__(self, name: str, body):
        super().__init__(name=name, daemon=True)
        self.body, self.value, self.error = body, None, None

    def run(self) -> None:
        try:
            self.value = self.body()
        except BaseException as exc:
            self.error = exc

    def result(self, timeout: float):
        self.join(timeout)
        assert not self.is_alive(), f"scenario {self.name} still running after {timeout:.0f}s"
        if self.error is not None:
            raise self.error
        return self.value


def diagnostics(live) -> str:
    """Failed sensor ticks, failed runs and the daemon log's end, for an assertion message."""
    instance = live["instance"]
    lines = []
    for state in instance.all_instigator_state():
        for tick in instance.get_ticks(state.instigator_origin_id, state.selector_id, limit=200):
            if tick.status.value == "FAILURE":
                lines.append(f"tick {state.instigator_name}: {root_cause_line(tick.error) if tick.error else '?'}")
    for run in instance.get_runs(dg.RunsFilter(statuses=[dg.DagsterRunStatus.FAILURE])):
        failures = [e for e in instance.all_logs(run.run_id) if e.dagster_event and e.dagster_event.is_failure]
        lines.append(f"run {run.run_id} {run.tags.get('dagster/partition', run.tags.get('allpfit/tenant'))}: "
                     + (str(failures[-1].message)[:500] if failures else "?"))
    lines.append(live["processes"].log_text("daemon")[-3000:])
    return "\n".join(lines[-40:])


def tenant_ids(analytics: sa.Engine) -> dict[str, int]:
    with analytics.connect() as conn:
        return dict(conn.execute(sa.text("SELECT slug, tenant_id FROM tenant_configs")).all())


@pytest.fixture(scope="module")
def live(tmp_path_factory, pg_admin):
    tmp = tmp_path_factory.mktemp("live")
    with contextlib.ExitStack() as stack:
        urls = stack.enter_context(postgres_databases(pg_admin, TEST_DATABASE_URL, "dagster", "chatwoot", "analytics"))
        source, analytics = get_engine(urls["chatwoot"]), get_engine(urls["analytics"])
        create_chatwoot_schema(source)
        apply_migrations(analytics)
        inboxes = {}
        for slug, account in [*TRAFFIC_TENANTS.items(), RESOLVED_TENANT]:
            inboxes[account] = ensure_account(source, account, f"Academia {slug.title()}")
            settle = SETTLE_MINUTES if slug in TRAFFIC_TENANTS else TenantFeatures().settle_minutes
            add_tenant(analytics, slug, f"Academia {slug.title()}", account,
                       TenantFeatures(use_openai=True, settle_minutes=settle))
        server = stack.enter_context(FakeOpenAIServer(FakeServerConfig(latency_s=0.05)))
        env = {
            **os.environ,
            "OPENAI_API_KEY": "sk-test-" + uuid.uuid4().hex,
            "OPENAI_BASE_URL": server.base_url,
            "ALLPFIT_ACTIVITY_SENSOR_INTERVAL": str(SENSOR_INTERVAL),
        }
        deployed = stack.enter_context(production_deployment(urls, tmp, env, webserver=False))
        instance, processes = deployed.instance, deployed.processes

        # The activity sensor starts at the newest Chatwoot activity: traffic begins after its first tick.
        def sensor_started():
            return any(s.instigator_name == "chatwoot_activity_sensor" and s.instigator_data
                       and s.instigator_data.cursor for s in instance.all_instigator_state())

        wait_for(sensor_started, 180, "the activity sensor's first tick")
        ids = tenant_ids(analytics)
        live = {"source": source, "analytics": analytics, "server": server, "instance": instance,
                "processes": processes, "ids": ids, "inboxes": inboxes, "started": time.monotonic()}

        seen, stop = Watch(), threading.Event()
        watcher = threading.Thread(target=watch, args=(stop, analytics, seen), name="watcher", daemon=True)
        watcher.start()
        stack.callback(watcher.join, 10)
        stack.callback(stop.set)
        traffic = LiveTraffic(source, list(TRAFFIC_TENANTS.values()), TRAFFIC).start()
        stack.callback(traffic.stop)
        live.update(seen=seen, traffic=traffic)
        live["resume"] = Scenario("resume", lambda: resume_scenario(live))
        live["resolve"] = Scenario("resolve", lambda: resolve_scenario(live))
        live["resume"].start()
        live["resolve"].start()
        yield live


def wait_for_answer(live, tenant_id: int, conversation_id: int, kind: str, content_hash: str | None, timeout: float):
    """The moment (monotonic) the watcher first saw this kind of answer (on this content), else fail."""
    def found():
        for seen_kind, seen_hash, at in live["seen"].answers(tenant_id, conversation_id):
            if seen_kind == kind and content_hash in (None, seen_hash):
                return at
        return None

    try:
        return wait_for(found, timeout, f"a {kind} answer of conversation {conversation_id}", 0.5)
    except AssertionError as exc:
        raise AssertionError(f"{exc}; seen {live['seen'].answers(tenant_id, conversation_id)}\n{diagnostics(live)}") from None


def resume_scenario(live) -> dict:
    """On a traffic tenant: three messages, settle, final; two more messages, settle, final."""
    account = TRAFFIC_TENANTS["north"]
    tenant_id, source = live["ids"]["north"], live["source"]
    steps = live_script(random.Random(7), "Academia North", 5, "Renata")
    conversation, first_at = open_conversation(source, account, live["inboxes"][account], "Renata Lima", steps[0])
    for step in steps[1:3]:
        time.sleep(5)  # the contact's typing pace: the traffic under test, not synchronisation
        write_step(source, conversation, step)
    days = {local_day(first_at)}
    first_hash, _ = final_hashes(source, account, days)[conversation]
    first_final = wait_for_answer(live, tenant_id, conversation, "final", first_hash, SETTLE_MINUTES * 60 + SLACK_S)
    paid_before_resuming = paid_calls(live["analytics"]).get((tenant_id, conversation), 0)
    resumed = time.monotonic()
    write_message(source, conversation, "oi, voltei! ainda dá pra remarcar a aula pra sexta?")
    time.sleep(5)  # the bot's answer comes a few seconds later, as in a real chat
    write_message(source, conversation, "Claro! Remarcado para sexta às 19h. 😉", message_type=1, sender_type="AgentBot")
    second_hash, contacts = final_hashes(source, account, days)[conversation]
    assert second_hash != first_hash
    second_final = wait_for_answer(live, tenant_id, conversation, "final", second_hash, SETTLE_MINUTES * 60 + SLACK_S)
    settled = time.time()  # nothing more is paid for it afterwards, however often the sensor looks again
    wait_for(lambda: sensor_ticks_since(live["instance"], "chatwoot_activity_sensor", settled) >= 3,
             SENSOR_INTERVAL * 30, "three activity-sensor ticks after the final answer")
    return {"conversation": conversation, "tenant_id": tenant_id, "hashes": (first_hash, second_hash), "contacts": contacts,
            "paid_before_resuming": paid_before_resuming, "first_final": first_final, "resumed": resumed,
            "second_final": second_final}


def resolve_scenario(live) -> dict:
    """A conversation of the 10-minute tenant: provisional while open, final as soon as resolved."""
    slug, account = RESOLVED_TENANT
    tenant_id, source = live["ids"][slug], live["source"]
    steps = live_script(random.Random(8), "Academia Resolved", 3, "Igor")
    conversation, first_at = open_conversation(source, account, live["inboxes"][account], "Igor", steps[0])
    for step in steps[1:]:
        time.sleep(3)  # the contact's typing pace: the traffic under test, not synchronisation
        write_step(source, conversation, step)
    content_hash, _ = final_hashes(source, account, {local_day(first_at)})[conversation]
    provisional = wait_for_answer(live, tenant_id, conversation, "provisional", content_hash, SLACK_S)
    paid_while_open = paid_calls(live["analytics"]).get((tenant_id, conversation), 0)
    resolve_conversation(source, conversation, "Kelly")
    resolved = time.monotonic()
    final = wait_for_answer(live, tenant_id, conversation, "final", content_hash, SLACK_S)
    return {"conversation": conversation, "tenant_id": tenant_id, "hash": content_hash, "provisional": provisional,
            "paid_while_open": paid_while_open, "resolved": resolved, "final": final}


def test_live_traffic_gets_a_provisional_answer_then_its_final_one_paid_about_once(live):
    traffic, seen, analytics = live["traffic"], live["seen"], live["analytics"]
    records = traffic.join(TRAFFIC.seconds(len(TRAFFIC_TENANTS)) + 120)
    assert not traffic.is_alive() and len(records) == traffic.planned() == 4
    ids = {account: live["ids"][slug] for slug, account in TRAFFIC_TENANTS.items()}
    finals = {}
    for account in TRAFFIC_TENANTS.values():
        days = {local_day(r.first_message_at) for r in records if r.account_id == account}
        finals.update(final_hashes(live["source"], account, days))
    assert all(r.messages == TRAFFIC.messages and r.finished for r in records)

    # every conversation ends with its final answer, on its whole transcript
    for r in records:
        wait_for_answer(live, ids[r.account_id], r.conversation_id, "final", finals[r.conversation_id][0], SETTLE_MINUTES * 60 + SLACK_S)
    for r in records:
        row = loaded(analytics, ids[r.account_id], r.conversation_id)
        assert row.answer_kind == "final" and row.analyzer == "openai"
        assert row.content_hash == finals[r.conversation_id][0]
        assert row.contact_messages_count == finals[r.conversation_id][1] == CONTACT_MESSAGES
        assert len(row.message_compiled.splitlines()) >= TRAFFIC.messages

    # the free provisional answer came first, while the conversation went on
    for r in records:
        kinds = [kind for kind, _, _ in seen.answers(ids[r.account_id], r.conversation_id)]
        assert "provisional" in kinds and kinds.index("provisional") < kinds.index("final"), (r, kinds)

    # paid about once per conversation (at most one of them twice): the ledger, and the server's bill
    calls = paid_calls(analytics)
    traffic_calls = [calls.get((ids[r.account_id], r.conversation_id), 0) for r in records]
    assert min(traffic_calls) >= 1 and sum(traffic_calls) <= len(records) + 1, traffic_calls
    assert live["server"].stats()["billed_calls"] >= sum(traffic_calls)
    assert seen.error is None, seen.error


def test_a_conversation_that_resumes_after_it_settled_is_paid_exactly_twice(live):
    result = live["resume"].result(timeout=420)
    tenant_id, conversation = result["tenant_id"], result["conversation"]
    assert result["paid_before_resuming"] == 1
    assert paid_calls(live["analytics"])[(tenant_id, conversation)] == 2
    row = loaded(live["analytics"], tenant_id, conversation)
    assert row.answer_kind == "final" and row.content_hash == result["hashes"][1] and row.contact_messages_count == result["contacts"]
    # between the two final answers the resumed conversation was provisional again (or went straight to final)
    answers = live["seen"].answers(tenant_id, conversation)
    assert [h for kind, h, _ in answers if kind == "final"] == list(result["hashes"])


def test_a_resolved_conversation_is_analysed_at_once(live):
    result = live["resolve"].result(timeout=420)
    tenant_id, conversation = result["tenant_id"], result["conversation"]
    assert result["paid_while_open"] == 0  # open and 10 minutes from settling: only the free answer
    waited = result["final"] - result["resolved"]
    assert waited < SLACK_S < 10 * 60  # not the tenant's settle_minutes
    assert paid_calls(live["analytics"])[(tenant_id, conversation)] == 1
    row = loaded(live["analytics"], tenant_id, conversation)
    assert row.answer_kind == "final" and row.analyzer == "openai" and row.content_hash == result["hash"]


def test_never_more_than_one_queued_run_per_tenant(live):
    for name in ("resume", "resolve"):  # the whole module's traffic has been watched
        with contextlib.suppress(BaseException):
            live[name].result(timeout=420)
    seen = live["seen"]
    assert seen.error is None, seen.error
    assert seen.polls > 100
    assert max(seen.max_queued.values(), default=0) <= 1, dict(seen.max_queued)
    # the sensor woke runs for every tenant, and they all succeeded
    assert set(seen.runs.values()) >= {*TRAFFIC_TENANTS, RESOLVED_TENANT[0]}
    failed = live["instance"].get_runs(dg.RunsFilter(statuses=[dg.DagsterRunStatus.FAILURE]))
    assert not failed, diagnostics(live)
