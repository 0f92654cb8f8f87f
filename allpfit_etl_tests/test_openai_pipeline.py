"""OpenAI analysis through real Dagster materializations, a real PostgreSQL server and real
HTTP to the bundled OpenAI-compatible server: faults, kill -9, exact token accounting, the
budget guard and analyser switches."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import dagster as dg
import pytest
import sqlalchemy as sa

from allpfit_etl.definitions import ASSETS
from allpfit_etl.load.checks import ASSET_CHECKS
from allpfit_etl.partitions import TENANT_PARTITIONS_NAME
from allpfit_etl.tenants.registry import TenantFeatures, update_features
from allpfit_devtools.deployment import wait_for
from allpfit_etl_tests.worlds import DAY, build_world
KEY = f"{DAY.isoformat()}|gym"
API_KEY = "sk-test-secret-key"


def world_of(make_pg_database, conversations: int, features: TenantFeatures):
    return build_world(make_pg_database, conversations, features, messages_per_conversation=6)


def materialize(world, server, instance, timeout_s: float = 30.0):
    result = dg.materialize(ASSETS + ASSET_CHECKS, partition_key=KEY, resources=world.resources(server, API_KEY, timeout_s=timeout_s),
                            instance=instance, raise_on_error=False)
    assert result.success, [e.message for e in result.all_events if e.is_failure]
    meta = {
        e.asset_key.to_user_string(): {k: v.value for k, v in e.materialization.metadata.items()}
        for e in result.get_asset_materialization_events()
    }
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    return meta, checks


def test_faults_are_absorbed_and_everything_is_analyzed_within_two_runs(make_pg_database, server, instance):
    server.configure(p_429=0.10, p_500=0.05, p_hang=0.01, hang_s=6.0, p_truncated=0.02, p_nul=0.05, fault_seed=11)
    world = world_of(make_pg_database, 120, TenantFeatures(use_openai=True, chunk_size=40, max_concurrency=16))
    first, _ = materialize(world, server, instance, timeout_s=1.5)
    second, checks = materialize(world, server, instance, timeout_s=1.5)

    assert first["conversation_analyses"]["analyzed"] + second["conversation_analyses"]["analyzed"] == 120
    assert world.scalar("SELECT COUNT(*) FROM conversations_analytics WHERE analyzer = 'openai'") == 120
    assert world.scalar("SELECT COUNT(*) FROM pending_conversations") == 0
    with world.analytics.connect() as conn:
        texts = conn.execute(sa.text("SELECT message_compiled, nome_mapeado_bot, analise_ia FROM conversations_analytics")).all()
    assert not any(v and "\x00" in v for row in texts for v in row)
    stats = server.stats()
    assert stats["rate_limited"] + stats["errors_500"] > 0 and stats["faulty_billed_calls"] > 0  # the faults happened
    assert server.prompts_billed_twice() == []
    assert checks["no_nul_bytes_stored"] and checks["every_conversation_analyzed_or_failed"]


def test_tokens_and_cost_in_metadata_and_ledger_equal_the_servers_counters(make_pg_database, server, instance):
    world = world_of(make_pg_database, 30, TenantFeatures(use_openai=True, chunk_size=8))
    meta, _ = materialize(world, server, instance)
    analyses = meta["conversation_analyses"]
    stats = server.stats()
    assert analyses["openai.calls"] == stats["billed_calls"] == 30
    assert analyses["openai.prompt_tokens"] == stats["prompt_tokens"]
    assert analyses["openai.cached_tokens"] == stats["cached_tokens"]
    assert analyses["openai.completion_tokens"] == stats["completion_tokens"]
    assert analyses["openai.total_tokens"] == stats["prompt_tokens"] + stats["completion_tokens"]
    assert analyses["chunks"] == 4 and analyses["model"] == "gpt-4o-mini"
    with world.analytics.connect() as conn:
        ledger = conn.execute(sa.text(
            "SELECT COUNT(*) AS calls, SUM(prompt_tokens) AS p, SUM(cached_tokens) AS c, SUM(completion_tokens) AS o,"
            " SUM(cost_usd) AS usd, SUM(cost_brl) AS brl FROM llm_usage WHERE status = 'ok'"
        )).one()
    assert (ledger.calls, ledger.p, ledger.c, ledger.o) == (30, stats["prompt_tokens"], stats["cached_tokens"], stats["completion_tokens"])
    expected_usd = ((stats["prompt_tokens"] - stats["cached_tokens"]) * 0.15 + stats["cached_tokens"] * 0.075
                    + stats["completion_tokens"] * 0.60) / 1_000_000
    assert ledger.usd == pytest.approx(expected_usd, rel=1e-9)
    assert analyses["cost_usd"] == pytest.approx(expected_usd, rel=1e-6)
    assert analyses["cost_brl"] == pytest.approx(ledger.brl, rel=1e-6)
    assert API_KEY not in str(meta)


def test_budget_guard_stops_spending_and_fails_the_check(make_pg_database, server, instance):
    world = world_of(make_pg_database, 60, TenantFeatures(use_openai=True, chunk_size=10))
    # price one conversation, then allow roughly two chunks' worth of spend
    probe, _ = materialize_probe_cost(make_pg_database, server)
    budget = probe * 10 * 2.5
    update_features(world.analytics, "gym", monthly_budget_brl=budget)
    server.reset_stats()
    meta, checks = materialize(world, server, instance)
    spent = world.scalar("SELECT COALESCE(SUM(cost_brl), 0) FROM llm_usage")
    assert 0 < spent <= budget
    assert meta["conversation_analyses"]["deferred_by_budget"] > 0
    assert meta["conversation_analyses"]["analyzed"] + meta["conversation_analyses"]["deferred_by_budget"] == 60
    assert world.scalar("SELECT COUNT(*) FROM pending_conversations") == meta["conversation_analyses"]["deferred_by_budget"]
    assert checks["spend_within_monthly_budget"] is False


def materialize_probe_cost(make_pg_database, server):
    world = world_of(make_pg_database, 1, TenantFeatures(use_openai=True))
    with dg.instance_for_test() as inst:
        inst.add_dynamic_partitions(TENANT_PARTITIONS_NAME, ["gym"])
        meta, _ = materialize(world, server, inst)
    return meta["conversation_analyses"]["cost_brl"], meta


def test_switching_analyzers(make_pg_database, server, instance):
    world = world_of(make_pg_database, 12, TenantFeatures(use_openai=False))
    meta, _ = materialize(world, server, instance)
    assert meta["conversation_analyses"]["analyzed"] == 12 and server.stats()["billed_calls"] == 0

    update_features(world.analytics, "gym", use_openai=True)
    meta, _ = materialize(world, server, instance)
    assert meta["pending_conversations"]["pending_analyzer_changed"] == 12
    assert world.scalar("SELECT COUNT(*) FROM conversations_analytics WHERE analyzer = 'openai'") == 12
    assert server.stats()["billed_calls"] == 12

    update_features(world.analytics, "gym", use_openai=False)  # back to regex: the paid answers stay
    meta, _ = materialize(world, server, instance)
    assert meta["pending_conversations"]["pending"] == 0
    assert world.scalar("SELECT COUNT(*) FROM conversations_analytics WHERE analyzer = 'openai'") == 12

    update_features(world.analytics, "gym", reanalyze_with_regex=True)  # unless asked
    meta, _ = materialize(world, server, instance)
    assert meta["pending_conversations"]["pending_analyzer_changed"] == 12
    assert world.scalar("SELECT COUNT(*) FROM conversations_analytics WHERE analyzer = 'regex'") == 12
    assert server.stats()["billed_calls"] == 12


def test_kill_minus_nine_mid_chunk_pays_again_only_for_unanswered_conversations(make_pg_database, server, tmp_path):
    n = 40
    server.configure(latency_s=0.4, latency_jitter_s=0.3)
    world = world_of(make_pg_database, n, TenantFeatures(use_openai=True, chunk_size=n, max_concurrency=3))
    env = world.cli_env(server, tmp_path, API_KEY)
    command = [sys.executable, "-m", "allpfit_etl.cli.main", "run", "--tenant", "gym", "--from", DAY.isoformat()]
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)

    def answered_enough():
        assert process.poll() is None, "the run ended before it could be killed"
        return world.scalar("SELECT COUNT(*) FROM conversation_analyses WHERE analyzer = 'openai'") >= 8

    wait_for(answered_enough, 120, "8 stored answers", 0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    server.wait_until_idle()  # the requests that were in flight are billed all the same

    answered = world.scalar("SELECT COUNT(*) FROM conversation_analyses WHERE analyzer = 'openai'")
    assert 8 <= answered < n
    billed_before = server.stats()["billed_calls"]

    rerun = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert server.stats()["billed_calls"] - billed_before == n - answered  # only the unanswered ones were paid again
    assert world.scalar("SELECT COUNT(*) FROM conversations_analytics WHERE analyzer = 'openai'") == n
