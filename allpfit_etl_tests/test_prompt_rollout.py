"""A tenant switched to a new prompt version through real Dagster runs, real PostgreSQL and the fake
server over real HTTP: new conversations use it, history is not re-paid, and ``reanalyze`` sends
the history through the Batch API at half price, after printing its estimate."""

from __future__ import annotations

import dagster as dg
import pytest
import sqlalchemy as sa

from allpfit_etl.analysis.reanalyze import estimate_cost, history_to_reanalyze
from allpfit_etl.cli.main import main
from allpfit_etl.db import get_engine
from allpfit_etl.demo.seed import seed_bulk
from allpfit_etl.identities import openai_identity
from allpfit_etl.tenants.registry import TenantFeatures
from allpfit_etl_tests.test_batch_pipeline import API_KEY, materialize, tick
from allpfit_etl_tests.worlds import DAY, build_world


def versions(world, table: str) -> dict[str, int]:
    with world.analytics.connect() as conn:
        rows = conn.execute(sa.text(f"SELECT prompt_version, COUNT(*) AS n FROM {table} WHERE analyzer = 'openai'"
                                    " GROUP BY prompt_version")).all()
    return {r.prompt_version: r.n for r in rows}


def test_prompt_switch_keeps_history_and_reanalyze_pays_it_once_at_batch_price(
        make_pg_database, server, instance, monkeypatch, capsys):
    world = build_world(make_pg_database, 10, TenantFeatures(use_openai=True, batch_api="never"))
    monkeypatch.setenv("ANALYTICS_DATABASE_URL", world.analytics_url)
    monkeypatch.setenv("OPENAI_API_KEY", API_KEY)
    monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
    materialize(world, server, instance)
    assert server.stats()["billed_calls"] == 10 and versions(world, "conversations_analytics") == {"lead-v1": 10}

    assert main(["tenants", "set", "gym", "prompt_version=lead-v3"]) == 2
    assert "feature prompt_version must be one of lead-v1, lead-v2, got 'lead-v3'" in capsys.readouterr().err
    assert main(["tenants", "set", "gym", "prompt_version=lead-v2"]) == 0
    meta, checks = materialize(world, server, instance)  # the same day again: its history is not re-paid
    assert server.stats()["billed_calls"] == 10 and meta["pending_conversations"]["pending"] == 0
    assert versions(world, "conversations_analytics") == {"lead-v1": 10} and all(checks.values()), checks

    seed_bulk(get_engine(world.chatwoot_url), account_id=1, day=DAY, conversations=2, messages_per_conversation=4,
              seed=3, first_id=50_000)
    materialize(world, server, instance)  # new conversations use the new version
    assert server.stats()["billed_calls"] == 12
    assert versions(world, "conversation_analyses") == {"lead-v1": 10, "lead-v2": 2}
    assert versions(world, "conversations_analytics") == {"lead-v1": 10, "lead-v2": 2}
    assert world.scalar("SELECT SUM(cached_tokens) FROM llm_usage") > 0  # the second v2 request read the cache

    identity = openai_identity("gpt-4o-mini", "lead-v2")
    history = history_to_reanalyze(world.analytics, 1, identity, DAY, DAY)
    assert len(history) == 10
    estimate = estimate_cost(history, identity, 6000)
    assert estimate.batch_usd == pytest.approx(estimate.realtime_usd / 2)
    capsys.readouterr()
    assert main(["reanalyze", "gym", "--from", DAY.isoformat(), "--to", DAY.isoformat(), "--dry-run"]) == 0
    assert server.batches.stats()["batches_created"] == 0
    assert main(["reanalyze", "gym", "--from", DAY.isoformat(), "--to", DAY.isoformat()]) == 0
    out = capsys.readouterr().out.splitlines()
    estimate_line = (f"10 conversation(s) of gym, {DAY} → {DAY}, gpt-4o-mini prompt lead-v2: ~{estimate.prompt_tokens} "
                     f"prompt + ~{estimate.completion_tokens} completion tokens; estimated US$ {estimate.batch_usd:.4f}")
    assert out[0].startswith(estimate_line) and out[1] == "dry run: nothing sent"
    assert out[2] == out[0] and out[3].startswith("submitted 10 conversation(s) in 1 batch(es)")  # estimate first
    assert server.batches.stats()["batches_created"] == 1 and server.stats()["requests"] == 12  # no real-time call

    result = tick(world, server, instance)  # the batch sensor ingests the answers and asks for the day's run
    assert [r.partition_key for r in result.run_requests] == [f"{DAY.isoformat()}|gym"]
    meta, checks = materialize(world, server, instance, result.run_requests[0].tags)
    assert meta["conversation_analyses"]["reused_answers"] == 10 and meta["conversation_analyses"]["openai.calls"] == 0
    assert versions(world, "conversations_analytics") == {"lead-v2": 12} and all(checks.values()), checks
    batch = server.batches.stats()
    assert server.batches.prompts_billed_twice() == [] and batch["billed_lines"] == 10
    with world.analytics.connect() as conn:
        ledger = conn.execute(sa.text("SELECT COUNT(*) AS n, SUM(prompt_tokens) AS p, SUM(completion_tokens) AS o,"
                                      " SUM(cost_usd) AS usd FROM llm_usage WHERE mode = 'batch'")).one()
    assert (ledger.n, ledger.p, ledger.o) == (10, batch["prompt_tokens"], batch["completion_tokens"])
    assert ledger.usd == pytest.approx((batch["prompt_tokens"] * 0.15 + batch["completion_tokens"] * 0.60) / 2 / 1e6, rel=1e-9)

    assert main(["reanalyze", "gym", "--from", DAY.isoformat(), "--to", DAY.isoformat()]) == 0  # nothing twice
    assert capsys.readouterr().out.startswith("nothing to re-analyse")
    assert isinstance(tick(world, server, instance), dg.SkipReason)


def test_a_candidate_prompt_on_a_sample_is_never_loaded_never_paid_twice_and_compared(
        make_pg_database, server, instance, monkeypatch, capsys):
    from allpfit_etl.analysis.shadow import in_shadow_sample

    features = TenantFeatures(use_openai=True, batch_api="never", candidate_prompt_version="lead-v2", candidate_sample=0.5)
    world = build_world(make_pg_database, 20, features)
    monkeypatch.setenv("ANALYTICS_DATABASE_URL", world.analytics_url)
    materialize(world, server, instance)
    with world.analytics.connect() as conn:
        ids = conn.execute(sa.text("SELECT conversation_id FROM chatwoot_conversations")).scalars().all()
    sampled = {c for c in ids if in_shadow_sample(1, c, 0.5)}
    assert 0 < len(sampled) < 20
    stats = server.stats()
    assert stats["billed_calls"] == 20 + len(sampled)
    assert versions(world, "conversation_analyses") == {"lead-v1": 20, "lead-v2": len(sampled)}
    assert versions(world, "conversations_analytics") == {"lead-v1": 20}  # the candidate's answers are never loaded
    assert world.scalar("SELECT COUNT(*) FROM llm_usage") == stats["billed_calls"]
    cost = ((stats["prompt_tokens"] - stats["cached_tokens"]) * 0.15 + stats["cached_tokens"] * 0.075
            + stats["completion_tokens"] * 0.60) / 1e6
    assert world.scalar("SELECT SUM(cost_usd) FROM llm_usage") == pytest.approx(cost, rel=1e-9)

    with world.analytics.begin() as conn:  # every conversation pending again: both answers are reused
        conn.execute(sa.text("DELETE FROM conversations_analytics"))
    meta, _ = materialize(world, server, instance)
    assert meta["conversation_analyses"]["reused_answers"] == 20
    assert server.stats()["billed_calls"] == stats["billed_calls"] and server.prompts_billed_twice() == []
    assert versions(world, "conversations_analytics") == {"lead-v1": 20}

    capsys.readouterr()
    assert main(["compare", "gym", "--candidate"]) == 0
    out = capsys.readouterr().out
    with world.analytics.connect() as conn:
        agree = conn.execute(sa.text(
            "SELECT COUNT(*) FROM conversation_analyses a JOIN conversation_analyses b"
            " ON a.conversation_id = b.conversation_id AND a.content_hash = b.content_hash"
            " WHERE a.prompt_version = 'lead-v1' AND b.prompt_version = 'lead-v2' AND a.is_lead = b.is_lead")).scalar_one()
        candidate_cost = conn.execute(sa.text(
            "SELECT AVG(cost_usd) FROM conversation_analyses WHERE prompt_version = 'lead-v2'")).scalar_one()
    assert "current prompt lead-v1 vs candidate lead-v2 (sample 50%)" in out
    assert f"compared conversations: {len(sampled)}" in out
    assert f"is_lead          agreement {agree / len(sampled):.1%}" in out
    assert f"US$ {candidate_cost:.6f}" in out

    # Outcome labels on the conversations (as the extract copies them from Chatwoot): both prompts are
    # scored against them on the same sampled conversations.
    with world.analytics.begin() as conn:
        conn.execute(sa.text("UPDATE chatwoot_conversations SET outcome = CASE WHEN conversation_id % 2 = 0"
                             " THEN 'converted' ELSE 'not_lead' END"))
    assert main(["compare", "gym", "--candidate"]) == 0
    out = capsys.readouterr().out
    assert f"quality against labels, on the {len(sampled)} compared conversations with an outcome" in out
    with world.analytics.connect() as conn:
        rows = conn.execute(sa.text(
            "SELECT cur.is_lead AS cur, cand.is_lead AS cand, cur.conversation_id % 2 = 0 AS positive"
            " FROM conversation_analyses cur JOIN conversation_analyses cand"
            " ON cand.conversation_id = cur.conversation_id AND cand.content_hash = cur.content_hash"
            " WHERE cur.prompt_version = 'lead-v1' AND cand.prompt_version = 'lead-v2'")).all()
    assert len(rows) == len(sampled)
    for side in ("cur", "cand"):
        tp = sum(1 for r in rows if getattr(r, side) and r.positive)
        flagged, real = sum(1 for r in rows if getattr(r, side)), sum(1 for r in rows if r.positive)
        precision = "—" if not flagged else f"{tp / flagged:.1%}"
        recall = "—" if not real else f"{tp / real:.1%}"
        label = "current  " if side == "cur" else "candidate"
        assert f"  {label} is_lead precision {precision}, recall {recall}" in out, out
