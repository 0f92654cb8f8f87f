"""Account errors through `allpfit-etl run` (a real CLI process, real Dagster, real PostgreSQL,
real HTTP to the bundled server): the run stops at once, says why in one line and exits
non-zero; the answers received stay stored; the next run with the account fixed analyses the
rest and pays nothing twice."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys

import dagster as dg
import pytest

from allpfit_etl.analysis.worker_processes import worker_count
from allpfit_etl.tenants.registry import TenantFeatures
from allpfit_etl_tests.worlds import DAY, build_world
from fake_openai import FakeOpenAIServer, FakeServerConfig

GOOD_KEY = "sk-good-key"
CONVERSATIONS = 150



@contextlib.contextmanager
def cli_world(make_pg_database, tmp_path, conversations: int, rpm: int, max_concurrency: int | None = None):
    """Tenant ``gym`` on the world of every pipeline test, reached by ``allpfit-etl run`` processes,
    and a server that states its limits, as OpenAI does."""
    world = build_world(make_pg_database, conversations, TenantFeatures(use_openai=True, max_concurrency=max_concurrency))
    with FakeOpenAIServer(FakeServerConfig(latency_s=0.05, rpm=rpm, api_keys=(GOOD_KEY,))) as server:
        yield {"world": world, "server": server, "env": world.cli_env(server, tmp_path, GOOD_KEY), "home": tmp_path}


@pytest.fixture
def world(make_pg_database, tmp_path):
    with cli_world(make_pg_database, tmp_path, CONVERSATIONS, rpm=6000) as built:
        yield built


def run(world, *, key: str = GOOD_KEY) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "allpfit_etl.cli.main", "run", "--tenant", "gym", "--from", DAY.isoformat()]
    return subprocess.run(command, env={**world["env"], "OPENAI_API_KEY": key}, capture_output=True, text=True,
                          timeout=300)


def count(world, query: str) -> int:
    return world["world"].scalar(query)


# Through the CLI, a run stopped after some answers were paid for, and one stopped before any. Each
# account error's own line (403, 404, a rejected schema…) is the analyser's, tested in
# test_openai_analyzer: the CLI adds nothing per kind.
CASES = {
    "quota": ({"quota_calls": 40}, {"quota_calls": None}, {},
              "OpenAI quota exhausted for this API key: add credit or raise the limit, then re-run"),
    "bad_key": ({}, {}, {"key": "sk-revoked"}, "OpenAI rejected the API key (401)"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_an_account_error_stops_the_run_in_one_line_and_the_next_run_pays_nothing_twice(world, case):
    broken, fixed, how, line = CASES[case]
    server = world["server"]
    server.configure(**broken)

    failed = run(world, **how)

    assert failed.returncode == 1, failed.stdout + failed.stderr[-3000:]
    assert failed.stderr.strip().splitlines()[-1].startswith(f"run failed: gym: {line}"), failed.stderr[-3000:]
    assert len(failed.stderr.strip().splitlines()) == 1, failed.stderr[-3000:]  # that line alone
    assert how.get("key", GOOD_KEY) not in failed.stderr + failed.stdout  # the key the run used
    stats = server.stats()
    answered = count(world, "SELECT COUNT(*) FROM conversation_analyses WHERE analyzer = 'openai'")
    assert answered == stats["billed_calls"]  # every paid answer is stored
    assert answered >= 40 if case == "quota" else answered == 0
    assert stats["requests_after_account_error"] <= 36, stats  # a few dozen after the first error, not 150 × 4
    assert count(world, "SELECT COUNT(*) FROM analysis_failures") == 0  # the rest stays pending, untouched
    assert count(world, "SELECT COUNT(*) FROM openai_run_stops") == 1

    server.configure(**fixed)
    rerun = run(world)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert count(world, "SELECT COUNT(*) FROM conversations_analytics WHERE analyzer = 'openai'") == CONVERSATIONS
    assert server.stats()["billed_calls"] == CONVERSATIONS  # the answers of the failed run were reused
    assert server.prompts_billed_twice() == []


WORKER_CONVERSATIONS = 2_000
# The chunk's bound on requests in flight, over all its workers: what can be on its way when the
# first account error comes back, whatever the machine's speed (Little's law alone would let a
# slow machine's longer latency put more in flight).
WORKER_MAX_CONCURRENCY = 32


def test_worker_count_follows_the_chunk_the_cores_and_the_database():
    assert worker_count(WORKER_CONVERSATIONS, "sqlite") == 1  # SQLite has one writer
    assert worker_count(999, "postgresql") == 1  # too small to be worth a process
    assert worker_count(WORKER_CONVERSATIONS, "postgresql") == min(2, len(os.sched_getaffinity(0)))
    assert worker_count(1_000_000, "postgresql") == min(4, len(os.sched_getaffinity(0)))


def test_worker_processes_of_a_big_chunk_stop_together_on_an_account_error_and_pay_nothing_twice(
        make_pg_database, tmp_path):
    """A chunk big enough for several worker processes: all of them stop at the quota error, the
    run fails in one line, every paid answer is stored, and the next run finishes the rest."""
    with cli_world(make_pg_database, tmp_path, WORKER_CONVERSATIONS, rpm=60_000,
                   max_concurrency=WORKER_MAX_CONCURRENCY) as big:
        server = big["server"]
        server.configure(quota_calls=400)
        failed = run(big)
        assert failed.returncode == 1, failed.stderr[-3000:]
        assert failed.stderr.strip().splitlines() == [
            "run failed: gym: OpenAI quota exhausted for this API key: add credit or raise the limit, then re-run "
            "(step conversation_analyses.analyze_chunk[gym_00000])"], failed.stderr[-3000:]
        stats = server.stats()
        answered = count(big, "SELECT COUNT(*) FROM conversation_analyses WHERE analyzer = 'openai'")
        assert answered == stats["billed_calls"] >= 400  # every paid answer is stored
        assert count(big, "SELECT COUNT(*) FROM llm_usage WHERE status = 'ok'") == answered
        # Only what was already on its way when the first error came back: the first worker to stop
        # closes the shared queue, so its siblings send nothing new; the in-flight of them all is
        # bounded by the tenant's max_concurrency (split between the workers).
        assert stats["requests_after_account_error"] <= WORKER_MAX_CONCURRENCY, stats
        with dg.DagsterInstance.from_config(str(big["home"] / "dagster_home")) as instance:
            (failed_run,) = instance.get_runs()
            messages = [str(e.user_message) for e in instance.all_logs(failed_run.run_id)]
        workers = worker_count(WORKER_CONVERSATIONS, "postgresql")
        assert f"gym: {WORKER_CONVERSATIONS} conversations over {workers} worker processes" in messages

        server.configure(quota_calls=None)
        rerun = run(big)
        assert rerun.returncode == 0, rerun.stderr[-3000:]
        assert count(big, "SELECT COUNT(*) FROM conversations_analytics WHERE analyzer = 'openai'") == WORKER_CONVERSATIONS
        assert server.stats()["billed_calls"] == WORKER_CONVERSATIONS
        assert server.prompts_billed_twice() == []
        assert count(big, "SELECT COUNT(*) FROM llm_usage WHERE status = 'ok'") == WORKER_CONVERSATIONS
