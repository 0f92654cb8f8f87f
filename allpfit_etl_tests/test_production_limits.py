"""The limits in the repo's dagster.yaml hold on a real deployment: dagster-daemon and
dagster-webserver on a PostgreSQL-backed DAGSTER_HOME, seven runs submitted through GraphQL while
every OpenAI request hangs on the bundled server, so the runs that started stay started.

At that steady state: one run per tenant, at most two backfill runs, and at most
``default_limit`` analyze_chunk steps holding an ``openai`` pool slot while another waits for one."""

from __future__ import annotations

import datetime as dt
import os
import time
import uuid

import dagster as dg
import pytest
import yaml

from allpfit_etl.analysis.assets import OPENAI_POOL
from allpfit_etl.db import get_engine
from fake_openai import FakeOpenAIServer, FakeServerConfig
from allpfit_etl.schema import apply_migrations
from allpfit_etl.tenants.registry import TenantFeatures, add_tenant
from allpfit_etl_tests.chatwoot_builder import ChatwootBuilder
from allpfit_etl_tests.conftest import TEST_DATABASE_URL
from allpfit_devtools.deployment import (
    REPO, postgres_databases, production_deployment, wait_for,
)
DAY = dt.date(2025, 11, 10)
SOLO, BACKFILLED, OTHERS = "solo", ("bf_a", "bf_b", "bf_c"), ("other_a", "other_b")
PROMISED = {"tenant": 1, "backfill": 2, "pool": 4}  # the README's limits
IN_PROGRESS = {dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED}
# One process per run keeps nine runs affordable on a small machine; pools hold for this executor too.
# Requests hang for the whole test: no client timeout (and retry) may add a second one per step.
IN_PROCESS = {"execution": {"config": {"in_process": {}}},
              "resources": {"openai": {"config": {"api_key": {"env": "OPENAI_API_KEY"},
                                                  "base_url": {"env": "OPENAI_BASE_URL"}, "timeout_s": 900.0}}}}


def production_limits() -> dict:
    config = yaml.safe_load((REPO / "dagster.yaml").read_text())
    runs = config["concurrency"]["runs"]
    by_key = {limit["key"]: limit for limit in runs["tag_concurrency_limits"]}
    assert by_key["allpfit/tenant"]["value"] == {"applyLimitPerUniqueValue": True}
    return {
        "runs": runs["max_concurrent_runs"],
        "backfill": by_key["dagster/backfill"]["limit"],
        "tenant": by_key["allpfit/tenant"]["limit"],
        "pool": config["concurrency"]["pools"]["default_limit"],
    }


@pytest.fixture
def deployment(tmp_path, pg_admin):
    server = FakeOpenAIServer(FakeServerConfig(latency_s=600)).start()  # every request hangs
    submitted: list[str] = []
    try:
        with postgres_databases(pg_admin, TEST_DATABASE_URL, "dagster", "chatwoot", "analytics") as urls:
            env = {**os.environ, "OPENAI_API_KEY": "sk-test-" + uuid.uuid4().hex, "OPENAI_BASE_URL": server.base_url,
                   "ALLPFIT_START_DATE": "2025-11-01"}
            with production_deployment(urls, tmp_path, env, wait=False) as deployed:
                cw = ChatwootBuilder(get_engine(urls["chatwoot"]))  # while the processes start
                analytics = get_engine(urls["analytics"])
                apply_migrations(analytics)
                at = dt.datetime(DAY.year, DAY.month, DAY.day, 14, 0)
                for slug in (SOLO, *BACKFILLED, *OTHERS):  # one conversation each: one chunk step per run
                    account = cw.account(slug)
                    conversation = cw.conversation(account, at, "Juliana")
                    cw.message(account, conversation, at, "Oi! Qual o valor da mensalidade?")
                    # Real time everywhere: backfill runs must hold pool slots, not hand their work to the Batch API.
                    add_tenant(analytics, slug, slug, account,
                               TenantFeatures(use_openai=True, chunk_size=1, max_concurrency=1, batch_api="never"))
                instance = deployed.instance
                instance.add_dynamic_partitions("tenant", [SOLO, *BACKFILLED, *OTHERS])  # the tenant sensor's job, done now
                deployed.processes.wait_until_up()
                yield {"instance": instance, "client": deployed.client(), "server": server, "runs": submitted}
                # Leaving the block stops the daemon and webserver, then the runs still waiting on the server.
    finally:
        server.stop()


def submit(deployment, slug: str, backfill: bool = False) -> str:
    tags = {"dagster/partition": f"{DAY.isoformat()}|{slug}", "allpfit/tenant": slug}
    if backfill:
        tags["dagster/backfill"] = "limits-test"  # what the daemon puts on every run of a backfill
    run_id = deployment["client"].submit_job_execution("lead_analysis", run_config=IN_PROCESS, tags=tags)
    deployment["runs"].append(run_id)
    return run_id


def test_queue_and_pool_limits_of_dagster_yaml_hold(deployment):
    limits = PROMISED
    assert {k: v for k, v in production_limits().items() if k in PROMISED} == PROMISED
    instance = deployment["instance"]
    solo = [submit(deployment, SOLO) for _ in range(2)]
    backfill = [submit(deployment, slug, backfill=True) for slug in BACKFILLED]
    others = [submit(deployment, slug) for slug in OTHERS]
    # the queue takes runs in order, skipping those a limit blocks: five runs, five chunk steps for four slots
    expected_started = {solo[0], *backfill[:2], *others}
    assert len(expected_started) < production_limits()["runs"]  # so only the tag limits hold runs back
    seen = {"solo": 0, "backfill": 0, "pool": 0}

    def observe():
        runs = instance.get_runs(dg.RunsFilter(run_ids=deployment["runs"]))
        assert not [r for r in runs if r.status == dg.DagsterRunStatus.FAILURE], "a run failed"
        started = {r.run_id for r in runs if r.status in IN_PROGRESS}
        pool = instance.event_log_storage.get_concurrency_info(OPENAI_POOL)
        for key, count in (("solo", len(started & set(solo))), ("backfill", len(started & set(backfill))),
                           ("pool", pool.active_slot_count)):
            seen[key] = max(seen[key], count)
        assert seen["solo"] <= limits["tenant"] and seen["backfill"] <= limits["backfill"] and seen["pool"] <= limits["pool"]
        return started, pool

    def steady():
        started, pool = observe()
        return started == expected_started and pool.active_slot_count == limits["pool"] and pool.pending_step_count == 1

    wait_for(steady, 150, "five started runs with their chunk steps at the pool", 0.5)
    for _ in range(4):  # and it stays so: the queue keeps the rest waiting, the pool the fifth step
        time.sleep(1)  # a steady state is one that lasts: this observation window is the behaviour under test
        assert steady()
    assert seen == {"solo": limits["tenant"], "backfill": limits["backfill"], "pool": limits["pool"]}
    queued = {r.run_id for r in instance.get_runs(dg.RunsFilter(run_ids=deployment["runs"], statuses=[dg.DagsterRunStatus.QUEUED]))}
    assert queued == {solo[1], backfill[2]}

    _, pool = observe()
    assert pool.slot_count == limits["pool"]
    assert {slot.step_key.split("[")[0] for slot in pool.claimed_slots} == {"conversation_analyses.analyze_chunk"}
    assert pool.active_run_ids | pool.pending_run_ids == expected_started
    assert deployment["server"].stats()["max_in_flight"] == limits["pool"]  # a step without a slot sends nothing
