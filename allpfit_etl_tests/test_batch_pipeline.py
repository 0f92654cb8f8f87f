"""OpenAI Batch API mode through real Dagster materializations, a real PostgreSQL server and real
HTTP to the bundled server: half price, zero real-time calls, exactly once across restarts."""

from __future__ import annotations

import datetime as dt
import http.server
import json
import subprocess
import sys
import threading

import dagster as dg
import openai
import pytest
import sqlalchemy as sa

from allpfit_etl.automation.alerts import AlertWebhook
from allpfit_etl.automation.batch_sensor import openai_batch_sensor
from allpfit_etl.definitions import ASSETS
from allpfit_etl.load.checks import ASSET_CHECKS
from allpfit_etl.tenants.registry import TenantFeatures
from allpfit_etl_tests.worlds import DAY, build_world
from fake_openai.server import prompt_tokens_of

KEY = f"{DAY.isoformat()}|gym"
API_KEY = "sk-test-batch-key"
BACKFILL_TAGS = {"dagster/backfill": "bf-test", "allpfit/tenant": "gym"}


class Webhook:
    """A real HTTP endpoint that records the alerts posted to it."""

    def __init__(self):
        self.payloads = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                outer.payloads.append(json.loads(self.rfile.read(int(self.headers["content-length"]))))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.httpd = http.server.HTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/alert"


def materialize(world, server, instance, tags=None):
    result = dg.materialize(ASSETS + ASSET_CHECKS, partition_key=KEY, resources=world.resources(server, API_KEY),
                            instance=instance, tags=tags or {}, raise_on_error=False)
    assert result.success, [e.message for e in result.all_events if e.is_failure]
    meta = {
        e.asset_key.to_user_string(): {k: v.value for k, v in e.materialization.metadata.items()}
        for e in result.get_asset_materialization_events()
    }
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    return meta, checks


def tick(world, server, instance, webhook_url=None):
    resources = {**world.resources(server, API_KEY), "alert_webhook": AlertWebhook(url=webhook_url)}
    with dg.build_sensor_context(instance=instance, resources=resources) as context:
        return openai_batch_sensor(context)


def client(server):
    return openai.OpenAI(api_key=API_KEY, base_url=server.base_url, max_retries=0)


def assert_paid_once_at_batch_price(world, server, conversations: int):
    stats = server.batches.stats()
    assert server.batches.prompts_billed_twice() == []
    assert server.stats()["requests"] == 0, "a real-time call was made"
    with world.analytics.connect() as conn:
        ledger = conn.execute(sa.text(
            "SELECT COUNT(*) AS n, SUM(prompt_tokens) AS p, SUM(completion_tokens) AS o, SUM(cost_usd) AS usd,"
            " COUNT(DISTINCT conversation_id) AS convs, MIN(mode) AS lo, MAX(mode) AS hi FROM llm_usage")).one()
    assert (ledger.n, ledger.convs) == (stats["billed_lines"], conversations)
    assert (ledger.p, ledger.o) == (stats["prompt_tokens"], stats["completion_tokens"])
    assert ledger.lo == ledger.hi == "batch"
    half_price = (stats["prompt_tokens"] * 0.15 + stats["completion_tokens"] * 0.60) / 2 / 1_000_000
    assert ledger.usd == pytest.approx(half_price, rel=1e-9)
    assert world.scalar("SELECT COUNT(*) FROM conversation_analyses WHERE analyzer = 'openai'") == conversations
    assert world.scalar("SELECT COUNT(*) FROM conversations_analytics WHERE analyzer = 'openai'") == conversations
    assert world.scalar("SELECT SUM(cost_usd) FROM llm_batches") == pytest.approx(half_price, rel=1e-9)


def test_backfill_of_1000_conversations_goes_through_the_batch_api_at_half_price(make_pg_database, server, instance):
    n = 1000
    world = build_world(make_pg_database, n, TenantFeatures(use_openai=True, chunk_size=250))
    meta, checks = materialize(world, server, instance, BACKFILL_TAGS)
    analyses = meta["conversation_analyses"]
    assert analyses["in_batch"] == n and analyses["analyzed"] == 0 and analyses["openai.calls"] == 0
    assert len(analyses["openai.batch_ids"].split(", ")) == 4 == server.batches.stats()["batches_created"]
    assert checks["every_conversation_analyzed_or_failed"]  # in batch counts as on its way
    assert server.stats()["requests"] == 0

    result = tick(world, server, instance)
    assert [r.partition_key for r in result.run_requests] == [KEY]  # one run for the partition's 4 batches
    assert {r.tags["allpfit/trigger"] for r in result.run_requests} == {"openai_batch_sensor"}
    meta, checks = materialize(world, server, instance, result.run_requests[0].tags)
    assert meta["conversation_analyses"]["reused_answers"] == n and meta["conversation_analyses"]["openai.calls"] == 0
    assert meta["conversations_analytics"]["loaded"] == n and all(checks.values()), checks
    assert_paid_once_at_batch_price(world, server, n)
    assert isinstance(tick(world, server, instance), dg.SkipReason)


def test_no_second_batch_while_one_is_open_and_real_time_leaves_it_alone(make_pg_database, server, instance):
    server.batches.configure(processing_s=3600)
    world = build_world(make_pg_database, 60, TenantFeatures(use_openai=True, chunk_size=60))
    materialize(world, server, instance, BACKFILL_TAGS)
    meta, _ = materialize(world, server, instance, BACKFILL_TAGS)
    assert meta["conversation_analyses"]["in_batch"] == 60 and meta["conversation_analyses"]["openai.batch_ids"] == "none"
    meta, _ = materialize(world, server, instance)  # a real-time run (sensor, schedule) meanwhile
    assert meta["conversation_analyses"]["in_batch"] == 60 and server.stats()["requests"] == 0
    assert isinstance(tick(world, server, instance), dg.SkipReason)
    assert server.batches.stats()["batches_created"] == 1
    server.batches.configure(processing_s=0)
    result = tick(world, server, instance)
    materialize(world, server, instance, result.run_requests[0].tags)
    assert_paid_once_at_batch_price(world, server, 60)


def test_expired_batch_keeps_its_answers_and_resubmits_the_rest_once(make_pg_database, server, instance):
    n = 200
    server.batches.configure(p_expire=0.10, seed=5)
    world = build_world(make_pg_database, n, TenantFeatures(use_openai=True, chunk_size=n))
    materialize(world, server, instance, BACKFILL_TAGS)
    server.batches.configure(p_expire=0.0)
    first = tick(world, server, instance)
    kept = world.scalar("SELECT COUNT(*) FROM conversation_analyses WHERE analyzer = 'openai'")
    assert 150 < kept < n
    assert world.scalar("SELECT COUNT(*) FROM llm_batches WHERE parent_key IS NOT NULL") == 1
    assert world.scalar("SELECT conversation_count FROM llm_batches WHERE parent_key IS NOT NULL") == n - kept
    second = tick(world, server, instance)
    assert server.batches.stats()["batches_created"] == 2
    assert [r.partition_key for r in first.run_requests + second.run_requests] == [KEY, KEY]
    assert first.run_requests[0].run_key != second.run_requests[0].run_key
    materialize(world, server, instance, second.run_requests[0].tags)
    assert_paid_once_at_batch_price(world, server, n)


def test_failed_validation_alerts_once_and_puts_the_conversations_back_to_pending(make_pg_database, server, instance):
    webhook = Webhook()
    server.batches.configure(fail_validation="invalid_request")
    world = build_world(make_pg_database, 20, TenantFeatures(use_openai=True))
    materialize(world, server, instance, BACKFILL_TAGS)
    server.batches.configure(fail_validation=None)
    result = tick(world, server, instance, webhook.url)
    assert isinstance(result, dg.SkipReason)
    assert len(webhook.payloads) == 1 and webhook.payloads[0]["tenant"] == "gym"
    error = webhook.payloads[0]["error"]
    assert "failed: invalid_request" in error and "20 conversation(s) are pending again" in error and "\n" not in error
    assert world.scalar("SELECT COUNT(*) FROM llm_batch_requests WHERE state = 'open'") == 0
    meta, _ = materialize(world, server, instance, BACKFILL_TAGS)  # pending again: the next backfill submits them
    assert meta["conversation_analyses"]["in_batch"] == 20 and server.batches.stats()["batches_created"] == 2


def test_error_lines_are_retried_up_to_the_limit_then_recorded_as_failures(make_pg_database, server, instance):
    server.batches.configure(p_line_error=1.0)
    world = build_world(make_pg_database, 10, TenantFeatures(use_openai=True))
    materialize(world, server, instance, BACKFILL_TAGS)
    for _ in range(3):
        tick(world, server, instance)
    assert server.batches.stats()["batches_created"] == 3 and server.batches.stats()["billed_lines"] == 0
    assert world.scalar("SELECT COUNT(*) FROM analysis_failures WHERE error_kind = 'batch_http_500'") == 10
    assert world.scalar("SELECT COUNT(*) FROM llm_batch_requests WHERE state = 'open'") == 0
    assert isinstance(tick(world, server, instance), dg.SkipReason)


def test_cancelled_batch_goes_back_to_pending(make_pg_database, server, instance):
    server.batches.configure(processing_s=3600)
    world = build_world(make_pg_database, 10, TenantFeatures(use_openai=True))
    meta, _ = materialize(world, server, instance, BACKFILL_TAGS)
    client(server).batches.cancel(meta["conversation_analyses"]["openai.batch_ids"])
    tick(world, server, instance)
    assert world.scalar("SELECT COUNT(*) FROM llm_batch_requests WHERE state = 'released'") == 10
    assert world.scalar("SELECT status FROM llm_batches") == "cancelled"
    server.batches.configure(processing_s=0)
    meta, _ = materialize(world, server, instance)  # a real-time run now takes them
    assert meta["conversation_analyses"]["analyzed"] == 10 and server.stats()["billed_calls"] == 10


def test_token_limit_exceeded_splits_the_batch_and_never_fails_the_run(make_pg_database, server, instance):
    server.batches.configure(validating_s=3600)
    world = build_world(make_pg_database, 40, TenantFeatures(use_openai=True, chunk_size=40))
    materialize(world, server, instance, BACKFILL_TAGS)
    c = client(server)
    (batch,) = c.batches.list()
    lines = [json.loads(row) for row in c.files.content(batch.input_file_id).text.splitlines()]
    total = sum(prompt_tokens_of(line["body"]["messages"]) for line in lines)
    server.batches.configure(validating_s=0, enqueued_token_limit=int(total * 0.7))
    tick(world, server, instance)  # fails on the limit: split in two halves
    assert world.scalar("SELECT COUNT(*) FROM llm_batches WHERE parent_key IS NOT NULL") == 2
    tick(world, server, instance)
    assert world.scalar("SELECT COUNT(*) FROM conversation_analyses WHERE analyzer = 'openai'") == 40
    assert server.batches.stats()["batches_created"] == 3 and server.batches.prompts_billed_twice() == []


@pytest.mark.parametrize("crash_at", ["after_upload", "after_create", "mid_ingest"])
def test_kill_minus_nine_then_restart_creates_one_batch_and_pays_once(make_pg_database, server, tmp_path, crash_at):
    n = 30
    world = build_world(make_pg_database, n, TenantFeatures(use_openai=True, chunk_size=n))
    env = world.cli_env(server, tmp_path, API_KEY)
    cli = [sys.executable, "-m", "allpfit_etl.cli.main"]
    run = cli + ["run", "--tenant", "gym", "--from", DAY.isoformat(), "--batch"]
    wait = cli + ["batches", "--wait", "--interval", "0.2", "--timeout", "120"]
    crashing = [sys.executable, "-m", "allpfit_etl_tests.crashing_cli", crash_at]

    if crash_at == "mid_ingest":
        assert subprocess.run(run, env=env, capture_output=True, timeout=300).returncode == 0
        killed = subprocess.run(crashing + wait[len(cli):], env=env, capture_output=True, timeout=300)
        answered = world.scalar("SELECT COUNT(*) FROM conversation_analyses WHERE analyzer = 'openai'")
        assert killed.returncode == -9 and 0 < answered < n
    else:
        killed = subprocess.run(crashing + run[len(cli):], env=env, capture_output=True, timeout=300)
        assert killed.returncode == -9
        assert world.scalar("SELECT COUNT(*) FROM llm_batches WHERE batch_id IS NULL") == 1
        restarted = subprocess.run(run, env=env, capture_output=True, text=True, timeout=300)
        assert restarted.returncode == 0, restarted.stderr[-2000:]
    done = subprocess.run(wait, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "loaded 1 partition(s)" in done.stdout

    assert server.batches.stats()["batches_created"] == 1
    assert len(server.batches.batches()) == 1
    assert len([f for f in client(server).files.list() if f.purpose == "batch"]) == 1  # not even uploaded twice
    assert world.scalar("SELECT COUNT(*) FROM llm_batches") == 1
    assert_paid_once_at_batch_price(world, server, n)


def test_budget_counts_the_estimate_at_submission_and_the_real_cost_at_ingestion(make_pg_database, server, instance):
    from allpfit_etl.analysis.answer_store import chunk_inputs
    from allpfit_etl.analysis.budget import estimate_chunk_cost_brl, month_to_date_spend_brl
    from allpfit_etl.tenants.registry import get_tenant, update_features

    server.batches.configure(processing_s=3600)
    world = build_world(make_pg_database, 40, TenantFeatures(use_openai=True, chunk_size=20))
    resources = world.resources(server, API_KEY)
    dg.materialize(ASSETS[:2], partition_key=KEY, resources=resources, instance=instance)  # extract + pending only
    tenant = get_tenant(world.analytics, "gym")
    with world.analytics.connect() as conn:
        ids = [r[0] for r in conn.execute(sa.text("SELECT conversation_id FROM pending_conversations"))]
    full = estimate_chunk_cost_brl(chunk_inputs(world.analytics, tenant.tenant_id, ids), model="gpt-4o-mini", usd_brl=5.40)
    update_features(world.analytics, "gym", monthly_budget_brl=full * 0.5 * 0.75)  # one half-price chunk fits, not two

    meta, _ = materialize(world, server, instance, BACKFILL_TAGS)
    analyses = meta["conversation_analyses"]
    assert (analyses["in_batch"], analyses["deferred_by_budget"]) == (20, 20)
    committed = month_to_date_spend_brl(world.analytics, tenant.tenant_id, "America/Sao_Paulo")
    assert committed == pytest.approx(world.scalar("SELECT estimated_cost_brl FROM llm_batches")) and committed > 0

    server.batches.configure(processing_s=0)
    tick(world, server, instance)
    spent = month_to_date_spend_brl(world.analytics, tenant.tenant_id, "America/Sao_Paulo")
    assert spent == pytest.approx(world.scalar("SELECT SUM(cost_brl) FROM llm_usage WHERE mode = 'batch'")) and spent > 0


def test_cli_lists_batches_and_rejects_a_bad_batch_api_value(make_pg_database, server, instance, monkeypatch, capsys):
    from allpfit_etl.cli.main import main

    world = build_world(make_pg_database, 12, TenantFeatures(use_openai=True))
    monkeypatch.setenv("ANALYTICS_DATABASE_URL", world.analytics_url)
    assert main(["tenants", "set", "gym", "batch_api=sometimes"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "error: feature batch_api must be one of never, backfills, always, got 'sometimes'"
    assert main(["tenants", "set", "gym", "batch_api=never"]) == 0
    capsys.readouterr()
    meta, _ = materialize(world, server, instance, BACKFILL_TAGS)  # never: the backfill stays in real time
    assert meta["conversation_analyses"]["analyzed"] == 12 and server.stats()["billed_calls"] == 12
    assert main(["batches"]) == 0 and capsys.readouterr().out.strip() == "no OpenAI batches"

    main(["tenants", "set", "gym", "batch_api=always", "reanalyze_with_regex=false"])
    with world.analytics.begin() as conn:  # forget the answers so the conversations are pending again
        conn.execute(sa.text("DELETE FROM conversation_analyses"))
        conn.execute(sa.text("DELETE FROM conversations_analytics"))
    meta, _ = materialize(world, server, instance)  # always: even a sensor/schedule run submits
    batch_id = meta["conversation_analyses"]["openai.batch_ids"]
    assert meta["conversation_analyses"]["in_batch"] == 12 and batch_id.startswith("batch_")
    assert main(["batches"]) == 0
    out = capsys.readouterr().out
    assert batch_id in out and "1 batch(es), 1 open" in out and API_KEY not in out


def test_sensor_requests_one_run_per_partition_that_got_answers(make_pg_database, server, instance):
    world = build_world(make_pg_database, 30, TenantFeatures(use_openai=True, chunk_size=20))
    next_day = DAY + dt.timedelta(days=1)
    world.seed(1, 15, day=next_day, seed=2)
    second_key = f"{next_day.isoformat()}|gym"
    resources = world.resources(server, API_KEY)
    server.batches.configure(processing_s=3600)
    for key in (KEY, second_key):
        assert dg.materialize(ASSETS, partition_key=key, resources=resources, instance=instance, tags=BACKFILL_TAGS).success
    assert server.batches.stats()["batches_created"] == 3 and isinstance(tick(world, server, instance), dg.SkipReason)
    server.batches.configure(processing_s=0)
    result = tick(world, server, instance)
    assert sorted(r.partition_key for r in result.run_requests) == [KEY, second_key]
    assert all(r.tags == {"allpfit/tenant": "gym", "allpfit/trigger": "openai_batch_sensor"} for r in result.run_requests)
    for request in result.run_requests:
        dg.materialize(ASSETS, partition_key=request.partition_key, resources=resources, instance=instance,
                       tags=request.tags)
    assert world.scalar("SELECT COUNT(*) FROM conversations_analytics WHERE analyzer = 'openai'") == 45
    assert server.stats()["requests"] == 0 and server.batches.prompts_billed_twice() == []
    assert isinstance(tick(world, server, instance), dg.SkipReason)  # nothing requested twice


@pytest.mark.parametrize("crash_at", ["after_upload", "after_create"])
def test_kill_minus_nine_while_resubmitting_an_expired_batch_resubmits_once(make_pg_database, server, tmp_path, crash_at):
    n = 40
    server.batches.configure(p_expire=0.25, seed=9)
    world = build_world(make_pg_database, n, TenantFeatures(use_openai=True, chunk_size=n))
    env = world.cli_env(server, tmp_path, API_KEY)
    cli = [sys.executable, "-m", "allpfit_etl.cli.main"]
    wait = cli + ["batches", "--wait", "--interval", "0.2", "--timeout", "120"]
    assert subprocess.run(cli + ["run", "--tenant", "gym", "--from", DAY.isoformat(), "--batch"], env=env,
                          capture_output=True, timeout=300).returncode == 0
    server.batches.configure(p_expire=0.0)
    crashing = [sys.executable, "-m", "allpfit_etl_tests.crashing_cli", crash_at]
    killed = subprocess.run(crashing + wait[len(cli):], env=env, capture_output=True, timeout=300)
    assert killed.returncode == -9  # killed inside the ingestion of the expired batch, while resubmitting its rest
    done = subprocess.run(wait, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert server.batches.stats()["batches_created"] == 2  # the expired one and exactly one resubmission
    assert world.scalar("SELECT COUNT(*) FROM llm_batches WHERE parent_key IS NOT NULL") == 1
    assert_paid_once_at_batch_price(world, server, n)


def test_token_limit_behind_other_batches_is_deferred_until_they_end(make_pg_database, server, instance):
    server.batches.configure(validating_s=3600)
    world = build_world(make_pg_database, 40, TenantFeatures(use_openai=True, chunk_size=20))
    materialize(world, server, instance, BACKFILL_TAGS)
    c = client(server)
    first, second = sorted(c.batches.list(), key=lambda b: b.created_at)
    tokens = sum(prompt_tokens_of(json.loads(row)["body"]["messages"])
                 for row in c.files.content(first.input_file_id).text.splitlines())
    server.batches.configure(validating_s=0, processing_s=3600, enqueued_token_limit=int(tokens * 1.5))
    assert isinstance(tick(world, server, instance), dg.SkipReason)  # one in progress, the other failed on the limit: deferred
    assert {b.status for b in c.batches.list()} == {"in_progress", "failed"}
    assert world.scalar("SELECT COUNT(*) FROM llm_batch_requests WHERE state = 'open'") == 40  # still in batch
    assert server.batches.stats()["batches_created"] == 2
    server.batches.configure(processing_s=0)
    tick(world, server, instance)  # the first ends; the deferred one is split and resubmitted
    tick(world, server, instance)
    assert world.scalar("SELECT COUNT(*) FROM conversation_analyses WHERE analyzer = 'openai'") == 40
    assert server.batches.stats()["batches_created"] == 4 and server.batches.prompts_billed_twice() == []
