"""Demo and benchmark data in the Chatwoot schema, on PostgreSQL and SQLite."""

from __future__ import annotations

import datetime as dt
import hashlib
import json

import pytest
import sqlalchemy as sa

from allpfit_etl.db import get_engine
from allpfit_etl.demo.seed import DEMO_TENANTS, add_message, create_chatwoot_schema, seed_bulk, seed_demo


@pytest.fixture(params=["postgresql", "sqlite"])
def engine(request, make_pg_database, tmp_path):
    url = make_pg_database("seed") if request.param == "postgresql" else f"sqlite:///{tmp_path / 'chatwoot.db'}"
    engine = get_engine(url)
    create_chatwoot_schema(engine)
    create_chatwoot_schema(engine)  # idempotent
    return engine


def digest(engine) -> str:
    h = hashlib.sha256()
    with engine.connect() as conn:
        for table in ("conversations", "messages", "contacts", "attachments"):
            for row in conn.execute(sa.text(f"SELECT * FROM {table} ORDER BY id")):
                h.update(repr(tuple(row)).encode())
    return h.hexdigest()


def count(engine, query: str, **params) -> int:
    with engine.connect() as conn:
        return conn.execute(sa.text(query), params).scalar_one()


def test_seed_demo_is_deterministic_idempotent_and_has_every_edge_case(engine, tmp_path):
    counts = seed_demo(engine)
    assert counts["accounts"] == 4 and counts["conversations"] == sum(t.conversations for t in DEMO_TENANTS)
    first = digest(engine)
    assert seed_demo(engine) == counts and digest(engine) == first  # a second call changes nothing

    other = get_engine(f"sqlite:///{tmp_path / 'again.db'}") if engine.dialect.name == "sqlite" else None
    if other is not None:
        create_chatwoot_schema(other)
        seed_demo(other)
        assert digest(other) == first

    for tenant in DEMO_TENANTS:
        a = {"a": tenant.account_id}
        assert count(engine, "SELECT COUNT(*) FROM conversations WHERE account_id = :a", **a) == tenant.conversations
        assert count(engine, "SELECT COUNT(*) FROM (SELECT conversation_id FROM messages WHERE account_id = :a"
                             " GROUP BY conversation_id HAVING COUNT(*) >= 200) x", **a) >= 3
        assert count(engine, "SELECT COUNT(*) FROM messages WHERE account_id = :a AND private = TRUE", **a) > 0
        assert count(engine, "SELECT COUNT(*) FROM messages WHERE account_id = :a AND message_type = 2", **a) > 0
        assert count(engine, "SELECT COUNT(*) FROM messages WHERE account_id = :a AND message_type = 3", **a) > 0
        assert count(engine, "SELECT COUNT(*) FROM messages WHERE account_id = :a AND sender_type = 'AgentBot'", **a) > 0
        assert count(engine, "SELECT COUNT(*) FROM messages m JOIN attachments t ON t.message_id = m.id"
                             " WHERE m.account_id = :a AND m.content IS NULL", **a) > 0
        assert count(engine, "SELECT COUNT(*) FROM contacts WHERE account_id = :a AND name IS NULL", **a) > 0
        assert count(engine, "SELECT COUNT(*) FROM contacts WHERE account_id = :a AND name = ''", **a) > 0
        assert count(engine, "SELECT COUNT(DISTINCT status) FROM conversations WHERE account_id = :a", **a) == 4
        with engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT content, CAST(content_attributes AS TEXT) AS attrs FROM messages"
                                        " WHERE account_id = :a"), a).all()
        contents = [r.content or "" for r in rows]
        attributes = [json.loads(r.attrs or "{}") for r in rows]
        assert any("🏋️‍♀️" in c or "👍🏽" in c for c in contents)
        assert any("\\u0000" in c for c in contents)  # a double-escaping writer
        assert any(a.get("deleted") for a in attributes)
        if engine.dialect.name == "sqlite":
            assert any("\x00" in c for c in contents)
        else:  # PostgreSQL: the NUL can only travel escaped in the json column
            assert not any("\x00" in c for c in contents)
            assert any("\\u0000" in (r.attrs or "") for r in rows)  # escaped in the stored json text
            assert any("\x00" in a.get("email", {}).get("text_content", {}).get("full", "") for a in attributes)


def test_seed_bulk_and_add_message(engine):
    day = dt.date(2025, 11, 10)
    assert seed_bulk(engine, account_id=9, day=day, conversations=500, messages_per_conversation=4) == 500
    assert count(engine, "SELECT COUNT(*) FROM conversations WHERE account_id = 9") == 500
    assert count(engine, "SELECT COUNT(*) FROM messages WHERE account_id = 9") == 2000
    with engine.connect() as conn:
        first, last = conn.execute(sa.text("SELECT MIN(created_at), MAX(created_at) FROM conversations WHERE account_id = 9")).one()
    to_dt = lambda v: dt.datetime.fromisoformat(v) if isinstance(v, str) else v  # noqa: E731
    assert to_dt(first) >= dt.datetime(2025, 11, 10, 3, 0) and to_dt(last) < dt.datetime(2025, 11, 11, 3, 0)

    conversation = count(engine, "SELECT MIN(id) FROM conversations WHERE account_id = 9")
    at = dt.datetime(2025, 11, 12, 10, 0)
    message_id = add_message(engine, account_id=9, conversation_id=conversation, content="nova mensagem", at=at)
    with engine.connect() as conn:
        row = conn.execute(sa.text("SELECT updated_at FROM conversations WHERE id = :c"), {"c": conversation}).one()
        content = conn.execute(sa.text("SELECT content FROM messages WHERE id = :m"), {"m": message_id}).scalar_one()
    assert to_dt(row.updated_at) == at and content == "nova mensagem"
