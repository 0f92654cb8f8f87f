"""The live traffic writer (allpfit_etl/demo/live.py) on a fast schedule, against SQLite and
PostgreSQL: conversations written message by message in real time, in the rows Chatwoot writes,
recorded per conversation, and readable by the pipeline's extract."""

from __future__ import annotations

import datetime as dt
import json
import random
import time
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from allpfit_etl.cli.main import main
from allpfit_etl.db import get_engine
from allpfit_etl.demo.live import (
    LiveSchedule, LiveTraffic, ensure_account, live_script, open_conversation, resolve_conversation, write_message,
)
from allpfit_etl.demo.seed import DEMO_TENANTS, create_chatwoot_schema
from allpfit_etl.extract.chatwoot_source import extract_day
from allpfit_etl.extract.hashing import content_hash

GAP = 0.1
TIMEZONE = "America/Sao_Paulo"


@pytest.fixture(params=["postgresql", "sqlite"])
def engine(request, make_pg_database, tmp_path):
    url = make_pg_database("live") if request.param == "postgresql" else f"sqlite:///{tmp_path / 'chatwoot.db'}"
    engine = get_engine(url)
    create_chatwoot_schema(engine)
    return engine


def speakers(steps) -> str:
    return "".join("C" if s.sender_type == "Contact" else "B" for s in steps)


@pytest.mark.parametrize("messages, shape", [(1, "C"), (2, "CC"), (3, "CBC"), (4, "CBCC"), (11, "CBCBCBCBCBC")])
def test_a_script_has_the_contact_first_and_last_and_the_bot_in_between(messages, shape):
    for seed in range(20):
        steps = live_script(random.Random(seed), "AllpFit", messages)
        assert speakers(steps) == shape
        assert all(s.text and not s.private for s in steps)
        assert all((s.message_type, s.sender_type) in ((0, "Contact"), (1, "AgentBot")) for s in steps)
    texts = {tuple(s.text for s in live_script(random.Random(seed), "AllpFit", 11)) for seed in range(20)}
    assert len(texts) > 15  # varied, not one canned chat


def rows(engine, query: str, **params):
    with engine.connect() as conn:
        return conn.execute(sa.text(query), params).all()


def as_datetime(value) -> dt.datetime:
    return dt.datetime.fromisoformat(value) if isinstance(value, str) else value


def test_live_traffic_writes_each_message_when_due_and_records_what_it_wrote(engine):
    schedule = LiveSchedule(duration_min=0.9 / 60, every_s=0.3, gap_s=GAP, messages=5, resolve_fraction=0.5, seed=3)
    traffic = LiveTraffic(engine, [7, 8], schedule)
    assert schedule.conversations_per_account() == 3 and traffic.planned() == 6
    seen_partial = False
    started = time.monotonic()
    traffic.start()
    while traffic.is_alive():  # while it runs, conversations are visibly in progress
        seen_partial |= any(0 < r.messages < r.planned_messages for r in traffic.records())
        time.sleep(0.02)  # sampling the records while the traffic runs
    records = traffic.join()
    elapsed = time.monotonic() - started
    assert seen_partial
    # real time: the last conversation starts 0.75 s in and lasts 4 gaps, plus its resolution
    assert schedule.seconds(2) == pytest.approx(0.75 + 4 * GAP)
    assert elapsed >= schedule.seconds(2)  # it waited for each message's time (late under load is fine)

    assert len(records) == 6 and all(r.finished for r in records)
    assert sorted(r.account_id for r in records) == [7, 7, 7, 8, 8, 8]
    assert sum(r.resolve for r in records) == 3
    for r in records:
        assert r.messages == r.planned_messages == 5
        assert (r.resolved_at is not None) == r.resolve and (not r.resolve or r.resolved_at >= r.last_message_at)
        json.dumps(r.as_json())

        conversation = rows(engine, "SELECT account_id, status, created_at, updated_at, last_activity_at, inbox_id"
                                    " FROM conversations WHERE id = :c", c=r.conversation_id)[0]
        messages = rows(engine, "SELECT message_type, sender_type, created_at, account_id, inbox_id FROM messages"
                                " WHERE conversation_id = :c ORDER BY created_at, id", c=r.conversation_id)
        public = [m for m in messages if m.message_type != 2]
        assert [("C" if m.sender_type == "Contact" else "B") for m in public] == list("CBCBC")
        assert [m.message_type for m in public] == [0, 1, 0, 1, 0]
        assert {(m.account_id, m.inbox_id) for m in messages} == {(r.account_id, conversation.inbox_id)}
        times = [as_datetime(m.created_at) for m in public]
        assert times[0] == r.first_message_at == as_datetime(conversation.created_at)
        assert times[-1] == r.last_message_at
        assert all(a < b for a, b in zip(times, times[1:]))  # one at a time, in order
        last = r.resolved_at or r.last_message_at  # every message moves the conversation, as Chatwoot does
        assert as_datetime(conversation.updated_at) == as_datetime(conversation.last_activity_at) == last
        assert conversation.status == (1 if r.resolve else 0)
        assert len(messages) - len(public) == (1 if r.resolve else 0)  # the resolution's activity message
    displays = rows(engine, "SELECT account_id, display_id FROM conversations ORDER BY account_id, display_id")
    assert [tuple(d) for d in displays] == [(7, 1), (7, 2), (7, 3), (8, 1), (8, 2), (8, 3)]

    # what the pipeline's extract reads: every conversation, its five messages in the transcript
    by_id = {r.conversation_id: r for r in records}
    today = dt.datetime.now(ZoneInfo(TIMEZONE)).date()
    extracted = {}
    for account in (7, 8):
        for day in (today - dt.timedelta(days=1), today):
            for batch in extract_day(engine, tenant_id=1, account_id=account, day=day, timezone=TIMEZONE, workers=1):
                extracted.update({row["conversation_id"]: row for row in batch})
    assert set(extracted) == set(by_id)
    for conversation_id, row in extracted.items():
        assert row["contact_messages_count"] == 3 and len(row["message_compiled"].splitlines()) >= 5
        assert row["content_hash"] == content_hash(row["message_compiled"], row["contact_name"])
        assert row["contact_name"] == by_id[conversation_id].contact_name


def test_single_messages_continue_and_resolve_a_conversation(engine):
    inbox = ensure_account(engine, 5, "CDT Teste")
    assert ensure_account(engine, 5) == inbox  # idempotent
    conversation, opened = open_conversation(engine, 5, inbox, "Juliana Souza", live_script(random.Random(1), "CDT", 3)[0])
    later = write_message(engine, conversation, "ainda tem vaga pra amanhã?")
    bot = write_message(engine, conversation, "Tem sim!", message_type=1, sender_type="AgentBot")
    resolved = resolve_conversation(engine, conversation, "Ana")
    assert opened < later < bot < resolved
    (c,) = rows(engine, "SELECT status, updated_at, last_activity_at FROM conversations WHERE id = :c", c=conversation)
    assert c.status == 1 and as_datetime(c.updated_at) == as_datetime(c.last_activity_at) == resolved
    kinds = rows(engine, "SELECT message_type, sender_type FROM messages WHERE conversation_id = :c ORDER BY id", c=conversation)
    assert [tuple(k) for k in kinds] == [(0, "Contact"), (0, "Contact"), (1, "AgentBot"), (2, None)]


def test_ids_come_from_the_sequences_also_after_rows_with_explicit_ids(engine):
    with engine.begin() as conn:  # a seed or a test wrote explicit ids without moving the sequences
        conn.execute(sa.text("INSERT INTO accounts (id, name, created_at, updated_at) VALUES (9, 'X', :t, :t)"),
                     {"t": dt.datetime(2025, 1, 1)})
        conn.execute(sa.text(
            "INSERT INTO conversations (id, account_id, inbox_id, status, created_at, updated_at, display_id, last_activity_at)"
            " VALUES (500, 9, 1, 0, :t, :t, 1, :t)"), {"t": dt.datetime(2025, 1, 1)})
    records = LiveTraffic(engine, [9], LiveSchedule(duration_min=0.1 / 60, every_s=1, gap_s=0, messages=2)).run()
    assert len(records) == 1 and records[0].conversation_id > 500


def test_seed_demo_live_command_writes_traffic_and_its_record(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("ALLPFIT_HOME", str(tmp_path))
    monkeypatch.delenv("CHATWOOT_DATABASE_URL", raising=False)
    record = tmp_path / "live.jsonl"
    code = main(["seed-demo", "--live", str(0.5 / 60), "--every", "0.25", "--gap", str(GAP), "--messages", "3",
                 "--resolve", "0.5", "--record", str(record)])
    out = capsys.readouterr().out
    assert code == 0, out
    lines = [json.loads(line) for line in record.read_text().splitlines()]
    accounts = [t.account_id for t in DEMO_TENANTS]
    assert len(lines) == 2 * len(accounts) and sorted({line["account_id"] for line in lines}) == accounts
    assert all(line["messages"] == 3 and line["first_message_at"] < line["last_message_at"] for line in lines)
    assert sum(line["resolved_at"] is not None for line in lines) == len(accounts)
    assert f"wrote {len(lines)} conversations, {3 * len(lines)} messages" in out
    engine = get_engine(f"sqlite:///{tmp_path / 'chatwoot.db'}")
    names = dict(rows(engine, "SELECT id, name FROM accounts"))
    assert names == {t.account_id: t.name for t in DEMO_TENANTS}  # the demo's accounts, by name
    assert rows(engine, "SELECT COUNT(*) FROM messages WHERE message_type <> 2")[0][0] == 3 * len(lines)

    assert main(["seed-demo", "--live", "0", "--every", "1"]) == 2
    assert "seed-demo --live" in capsys.readouterr().err
