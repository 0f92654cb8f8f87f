"""The production setup on loopback: dagster-webserver and dagster-daemon on a PostgreSQL-backed
DAGSTER_HOME using the repo's dagster.yaml and workspace.yaml, driven through the GraphQL API,
with the bundled OpenAI-compatible server, a local alert webhook and headless Chromium."""

from __future__ import annotations

import contextlib
import datetime as dt
import http.server
import json
import math
import os
import subprocess
import threading
import time
import uuid
from zoneinfo import ZoneInfo

import dagster as dg
import pytest
import requests
import sqlalchemy as sa

from allpfit_etl.db import get_engine
from fake_openai import FakeOpenAIServer, FakeServerConfig
from allpfit_etl.schema import apply_migrations
from allpfit_etl.tenants.registry import TenantFeatures, add_tenant
from allpfit_etl_tests.chatwoot_builder import ChatwootBuilder
from allpfit_etl_tests.conftest import TEST_DATABASE_URL
from allpfit_devtools.deployment import (
    REPO, postgres_databases, production_deployment, wait_for,
)
from allpfit_etl_tests.headless_chromium import HeadlessChromium

# Backfill statuses that end a backfill (by value: Dagster does not export the enum).
BACKFILL_DONE = {"COMPLETED_SUCCESS", "COMPLETED_FAILED", "FAILED", "COMPLETED"}
FINISHED = {dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED}
ARTIFACTS = REPO / "test-artifacts"
UTC = dt.datetime
# The tenant's chunk size: one analyze_chunk step for each backfill run, two (a real DynamicOut
# fan-out) for the single-day run, whose day has one conversation more than a chunk holds.
CHUNK_SIZE = 6
SINGLE_DAY = dt.date(2025, 11, 10)
SINGLE_DAY_CONVERSATIONS = CHUNK_SIZE + 1
# Recent days, so they are among the newest partitions the UI plots; not yesterday nor today,
# which the two-hourly schedule materializes on its own. Backfilled two days per run: two runs.
TODAY = dt.datetime.now(ZoneInfo("America/Sao_Paulo")).date()
RECENT = {TODAY - dt.timedelta(days=4): 2, TODAY - dt.timedelta(days=3): 4, TODAY - dt.timedelta(days=2): 3}
DAYS_PER_RUN = 2
WEBHOOK_SECRET = "hook-" + uuid.uuid4().hex


class WebhookReceiver(http.server.BaseHTTPRequestHandler):
    received: list = []

    def do_POST(self):  # noqa: N802
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        WebhookReceiver.received.append({"path": self.path, "payload": json.loads(body)})
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


# One worker runs these against one deployment (daemon, webserver, databases): each test's runs
# are its own tenant's, day's or backfill's.
pytestmark = pytest.mark.xdist_group("deployment")


@pytest.fixture(scope="module")
def deployment(tmp_path_factory, pg_admin):
    tmp = tmp_path_factory.mktemp("deployment")
    with contextlib.ExitStack() as stack:
        urls = stack.enter_context(postgres_databases(pg_admin, TEST_DATABASE_URL, "dagster", "chatwoot", "analytics"))
        source = get_engine(urls["chatwoot"])
        cw = ChatwootBuilder(source)
        gym = cw.account("AllpFit")
        for i in range(SINGLE_DAY_CONVERSATIONS):
            at = UTC(SINGLE_DAY.year, SINGLE_DAY.month, SINGLE_DAY.day, 13, 0) + dt.timedelta(minutes=20 * i)
            conv = cw.conversation(gym, at, "Juliana Souza")
            cw.message(gym, conv, at, "Oi! Qual o valor da mensalidade?")
            cw.message(gym, conv, at + dt.timedelta(minutes=1), "R$ 99,90 no plano mensal", message_type=1, sender_type="User")
        for day, count in RECENT.items():  # written before the daemon starts: history, not sensor activity
            for i in range(count):
                at = UTC(day.year, day.month, day.day, 13, 0) + dt.timedelta(minutes=5 * i)
                conv = cw.conversation(gym, at, ("Juliana Souza", None, "Pedro")[i % 3])
                text = ("Quero agendar uma aula experimental amanhã às 19h", "qual o valor da mensalidade?", "ok, obrigado")[i % 3]
                cw.message(gym, conv, at, text)
                cw.message(gym, conv, at + dt.timedelta(minutes=1), "Agendado! Te esperamos amanhã às 19h", message_type=1, sender_type="User")
        analytics = get_engine(urls["analytics"])
        apply_migrations(analytics)
        add_tenant(analytics, "allpfit", "AllpFit", gym, TenantFeatures(use_openai=True, chunk_size=CHUNK_SIZE, max_concurrency=4))

        server = stack.enter_context(FakeOpenAIServer(FakeServerConfig(latency_s=0.01)))
        hook = http.server.ThreadingHTTPServer(("127.0.0.1", 0), WebhookReceiver)
        threading.Thread(target=hook.serve_forever, daemon=True).start()
        stack.callback(hook.shutdown)

        env = {
            **os.environ,
            "OPENAI_API_KEY": "sk-test-" + uuid.uuid4().hex,
            "OPENAI_BASE_URL": server.base_url,
            "ALERT_WEBHOOK_URL": f"http://127.0.0.1:{hook.server_address[1]}/{WEBHOOK_SECRET}",
            "ALLPFIT_START_DATE": "2025-11-01",
            "ALLPFIT_ACTIVITY_SENSOR_INTERVAL": "5",
            "ALLPFIT_BACKFILL_DAYS_PER_RUN": str(DAYS_PER_RUN),
            "ALLPFIT_REPORT_PATH": str(tmp / "lead_report.html"),
        }
        deployed = stack.enter_context(production_deployment(urls, tmp, env))
        yield {
            "port": deployed.port, "env": deployed.env, "instance": deployed.instance, "server": server, "cw": cw, "gym": gym,
            "analytics": analytics, "logs": deployed.processes.logs, "home": deployed.home, "client": deployed.client(),
        }


def graphql(deployment, query: str, variables: dict | None = None) -> dict:
    response = requests.post(
        f"http://127.0.0.1:{deployment['port']}/graphql", json={"query": query, "variables": variables or {}}, timeout=60
    )
    assert response.ok, f"GraphQL answered {response.status_code}: {response.text[:2000]}"
    body = response.json()
    assert "errors" not in body, body["errors"]
    return body["data"]


REPOSITORY_QUERY = """
{
  repositoriesOrError {
    ... on RepositoryConnection {
      nodes {
        name
        location { name }
        sensors { name sensorState { status } }
        schedules { name cronSchedule executionTimezone scheduleState { status } }
        assetNodes {
          assetKey { path }
          isPartitioned
          partitionDefinition { type dimensionTypes { name type } }
          assetChecksOrError { ... on AssetChecks { checks { name } } }
        }
      }
    }
  }
}
"""


# One file over all tenants and days; tenant × month tables recomputed whole.
UNPARTITIONED = {"analyzer_agreement", "analyzer_disagreements", "lead_report", "lead_funnel", "analyzer_quality",
                 "analyzer_calibration"}


def test_graphql_loads_assets_partitions_checks_sensors_and_schedule(deployment):
    data = graphql(deployment, REPOSITORY_QUERY)
    (repository,) = [r for r in data["repositoriesOrError"]["nodes"] if r["location"]["name"] == "allpfit_etl"]
    assets = {"/".join(n["assetKey"]["path"]): n for n in repository["assetNodes"]}
    assert set(assets) == {
        "chatwoot_conversations", "pending_conversations", "conversation_analyses",
        "conversations_analytics", "tenant_daily_kpis",
        "analyzer_agreement", "analyzer_disagreements", "analyzer_daily_kpis", "llm_spend_daily", "lead_report",
        "lead_funnel", "analyzer_quality", "analyzer_calibration",
    }
    for name, node in assets.items():
        if name in UNPARTITIONED:
            assert not node["isPartitioned"]
            continue
        assert node["isPartitioned"]
        assert {d["name"] for d in node["partitionDefinition"]["dimensionTypes"]} == {"day", "tenant"}
    checks = {c["name"] for c in assets["conversations_analytics"]["assetChecksOrError"]["checks"]}
    assert checks == {
        "no_nul_bytes_stored", "every_conversation_analyzed_or_failed",
        "probabilidade_conversao_in_range", "spend_within_monthly_budget",
    }
    sensors = {s["name"]: s["sensorState"]["status"] for s in repository["sensors"]}
    assert sensors == {
        "tenant_partitions_sensor": "RUNNING", "chatwoot_activity_sensor": "RUNNING", "run_failure_alert_sensor": "RUNNING",
        "openai_batch_sensor": "RUNNING",
        # the global monitoring's automation condition, evaluated by the daemon from the start
        "monitoring_refresh_sensor": "RUNNING",
    }
    (schedule,) = repository["schedules"]
    assert schedule["cronSchedule"] == "0 */2 * * *" and schedule["executionTimezone"] == "America/Sao_Paulo"
    assert schedule["scheduleState"]["status"] == "RUNNING"


def wait_for_run(instance: dg.DagsterInstance, run_id: str, timeout: float = 240) -> dg.DagsterRun:
    terminal = {dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED}
    return wait_for(lambda: (r := instance.get_run_by_id(run_id)) and r.status in terminal and r, timeout, f"run {run_id}")


def partition_tags(day: dt.date, slug: str) -> dict:
    return {
        "dagster/partition": f"{day.isoformat()}|{slug}",
        "dagster/partition/day": day.isoformat(),
        "dagster/partition/tenant": slug,
        "allpfit/tenant": slug,
    }


def test_one_tenant_day_run_fans_out_into_chunk_steps_and_records_tokens_and_cost(deployment):
    instance = deployment["instance"]
    wait_for(lambda: "allpfit" in instance.get_dynamic_partitions("tenant"), 120, "the tenant sensor to add 'allpfit'")
    stats_before = deployment["server"].stats()
    run_id = deployment["client"].submit_job_execution("lead_analysis", tags=partition_tags(SINGLE_DAY, "allpfit"))
    run = wait_for_run(instance, run_id)
    assert run.status == dg.DagsterRunStatus.SUCCESS
    # the daemon's executor ran each chunk (a DynamicOut mapping) as its own step, each in its own process
    chunk_steps = [s for s in instance.get_run_step_stats(run_id) if s.step_key.startswith("conversation_analyses.analyze_chunk[")]
    assert len(chunk_steps) == math.ceil(SINGLE_DAY_CONVERSATIONS / CHUNK_SIZE) == 2
    assert all(s.status.value == "SUCCESS" for s in chunk_steps)
    assert len({e.dagster_event.pid for e in instance.all_logs(run_id, of_type=dg.DagsterEventType.STEP_START)}) > 1

    stats = deployment["server"].stats()
    record = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey("conversation_analyses"), asset_partitions=[f"{SINGLE_DAY}|allpfit"]),
        limit=1,
    ).records[0]
    meta = {k: v.value for k, v in record.asset_materialization.metadata.items()}
    assert meta["analyzed"] == SINGLE_DAY_CONVERSATIONS
    assert meta["openai.calls"] == stats["billed_calls"] - stats_before["billed_calls"] > 0
    assert meta["openai.prompt_tokens"] == stats["prompt_tokens"] - stats_before["prompt_tokens"]
    assert meta["openai.completion_tokens"] == stats["completion_tokens"] - stats_before["completion_tokens"]
    assert meta["cost_usd"] > 0 and meta["cost_brl"] > meta["cost_usd"]
    assert meta["model"] == "gpt-4o-mini"


SENSOR_TICKS = """
query($selector: SensorSelector!) {
  sensorOrError(sensorSelector: $selector) {
    ... on Sensor { sensorState { ticks(limit: 5) { status cursor } } }
  }
}
"""


def test_a_failed_run_posts_the_alert_webhook_without_leaking_its_url(deployment):
    instance = deployment["instance"]
    add_tenant(deployment["analytics"], "ghost", "Ghost Gym", 999_999)  # a Chatwoot account that does not exist
    wait_for(lambda: "ghost" in instance.get_dynamic_partitions("tenant"), 60, "the tenant sensor to add 'ghost'")
    run_id = deployment["client"].submit_job_execution("lead_analysis", tags=partition_tags(SINGLE_DAY, "ghost"))
    assert wait_for_run(instance, run_id).status == dg.DagsterRunStatus.FAILURE
    alert = wait_for(
        lambda: next((a for a in WebhookReceiver.received if a["payload"]["run_id"] == run_id), None), 120, "the alert webhook", 2
    )
    assert alert["path"] == f"/{WEBHOOK_SECRET}"
    payload = alert["payload"]
    assert payload["job"] == "lead_analysis" and payload["tenant"] == "ghost"
    assert payload["partition"] == f"{SINGLE_DAY}|ghost"
    assert "ConfigError" in payload["error"] and "Chatwoot account 999999, which does not exist" in payload["error"]

    wait_for(lambda: latest_tick_ended(instance, "run_failure_alert_sensor"), 60, "the alert's sensor tick to end")
    texts = [p.read_text(errors="replace") for p in deployment["logs"].values()]
    texts += [str(e.message) + json.dumps(str(e.dagster_event)) for e in instance.all_logs(run_id)]
    texts += [p.read_text(errors="replace") for p in deployment["home"].rglob("*") if p.is_file() and p.suffix in (".out", ".err", ".log")]
    leaking = [t for t in texts if WEBHOOK_SECRET in t or deployment["env"]["OPENAI_API_KEY"] in t]
    assert not leaking


def latest_tick_ended(instance: dg.DagsterInstance, sensor_name: str) -> bool:
    """The sensor's latest tick has ended, and written what it logs (the tick posting an alert is
    the latest once the alert has arrived)."""
    (state,) = [s for s in instance.all_instigator_state() if s.instigator_name == sensor_name]
    ticks = instance.get_ticks(state.instigator_origin_id, state.selector_id, limit=1)
    return bool(ticks) and ticks[0].status.value != "STARTED"


def test_asset_graph_page_renders_in_headless_chromium(deployment):
    ARTIFACTS.mkdir(exist_ok=True)
    browser = HeadlessChromium(deployment["home"] / "chromium")
    try:
        browser.open(f"http://127.0.0.1:{deployment['port']}/locations/allpfit_etl/asset-groups/analysis")
        browser.wait_for_text(["pending_conversations", "conversation_analyses"])
        browser.dismiss("Skip")  # the UI's first-visit community dialog
        body = browser.wait_for_text(["chatwoot_conversations", "conversations_analytics"])
        screenshot = ARTIFACTS / "asset_graph.png"
        browser.screenshot(screenshot)
    finally:
        browser.close()
    assert screenshot.stat().st_size > 10_000
    for error in ("Something went wrong", "Unexpected GraphQL error", "PythonError", "Error loading", "Page not found"):
        assert error not in body


PLOT_PARTITIONS = """
query($assetKey: AssetKeyInput!) {
  assetNodeOrError(assetKey: $assetKey) {
    ... on AssetNode { partitionKeyConnection(limit: 120, ascending: false) { results } }
  }
}
"""
PLOT_MATERIALIZATIONS = """
query($assetKey: AssetKeyInput!, $partitions: [String!]!) {
  assetNodeOrError(assetKey: $assetKey) {
    ... on AssetNode {
      latestMaterializationByPartition(partitions: $partitions) {
        partition runId
        metadataEntries {
          label
          ... on IntMetadataEntry { intValue }
          ... on FloatMetadataEntry { floatValue }
        }
      }
    }
  }
}
"""
STATE = ("conversations", "leads", "visits", "high_probability", "named")


def plotted_figures(deployment, asset: str) -> dict[str, dict]:
    """What the asset's Plots → Partitions view draws: the latest materialization of each of the
    newest 120 partition keys, as the UI queries it."""
    key = {"path": [asset]}
    partitions = graphql(deployment, PLOT_PARTITIONS, {"assetKey": key})["assetNodeOrError"]["partitionKeyConnection"]["results"]
    events = graphql(deployment, PLOT_MATERIALIZATIONS, {"assetKey": key, "partitions": partitions})
    return {
        e["partition"]: {"run_id": e["runId"], **{m["label"]: m.get("intValue", m.get("floatValue")) for m in e["metadataEntries"]}}
        for e in events["assetNodeOrError"]["latestMaterializationByPartition"] if e
    }


def test_a_backfill_completes_in_the_expected_runs_records_each_partitions_figures_and_the_plots_show_them(deployment):
    instance, analytics = deployment["instance"], deployment["analytics"]
    first, last = min(RECENT), max(RECENT)
    result = subprocess.run(
        # real-time analysis: the Batch API, the default for backfills, is tested on its own
        ["allpfit-etl", "backfill", "allpfit", "--from", first.isoformat(), "--to", last.isoformat(), "--no-batch"],
        env=deployment["env"], cwd=REPO, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    backfill_id = result.stdout.split("submitted backfill ")[1].split(":")[0]
    range_runs = math.ceil(len(RECENT) / DAYS_PER_RUN)  # ALLPFIT_BACKFILL_DAYS_PER_RUN days per run
    assert range_runs == 2
    expected_runs = range_runs  # the global monitoring follows, refreshed by monitoring_refresh_sensor

    def finished_runs():
        found = instance.get_runs(dg.RunsFilter(tags={"dagster/backfill": backfill_id}))
        done = len(found) >= expected_runs and all(r.status in FINISHED for r in found)
        return found if done else None

    # The backfill daemon marks the backfill done on its next 30-second loop: check the runs'
    # results meanwhile, then the backfill's own status at the end.
    all_runs = wait_for(finished_runs, 420, f"the runs of backfill {backfill_id}", 2)
    assert len(all_runs) == expected_runs
    assert all(r.status == dg.DagsterRunStatus.SUCCESS for r in all_runs)
    runs = [r for r in all_runs if "dagster/asset_partition_range_start" in r.tags]
    assert len(runs) == range_runs
    assert all(r.tags.get("allpfit/tenant") == "allpfit" for r in runs)
    run_of = {}  # each day → the one run whose partition range covers it
    for r in runs:
        start, end = (r.tags[f"dagster/asset_partition_range_{edge}"].split("|") for edge in ("start", "end"))
        assert start[1] == end[1] == "allpfit"
        for day in RECENT:
            if start[0] <= day.isoformat() <= end[0]:
                assert day not in run_of, f"{day} in two runs"
                run_of[day] = r.run_id
    assert set(run_of) == set(RECENT)

    kpis, analytics_plot = plotted_figures(deployment, "tenant_daily_kpis"), plotted_figures(deployment, "conversations_analytics")
    analyses = plotted_figures(deployment, "conversation_analyses")
    with analytics.connect() as conn:
        tenant_id = conn.execute(sa.text("SELECT tenant_id FROM tenant_configs WHERE slug = 'allpfit'")).scalar_one()
        for day, count in RECENT.items():
            key = f"{day.isoformat()}|allpfit"
            params = {"t": tenant_id, "d": day, "r": run_of[day]}
            table = conn.execute(sa.text(
                "SELECT conversations, leads, visits_scheduled AS visits, high_probability, named_contacts AS named"
                " FROM tenant_daily_kpis WHERE tenant_id = :t AND day = :d"), params).one()._asdict()
            ledger = conn.execute(sa.text(
                "SELECT COALESCE(SUM(u.cost_usd), 0), COALESCE(SUM(u.total_tokens), 0) FROM llm_usage u"
                " JOIN chatwoot_conversations c ON c.tenant_id = u.tenant_id AND c.conversation_id = u.conversation_id"
                " WHERE u.run_id = :r AND c.tenant_id = :t AND c.day = :d"), params).one()
            # The fake server's answers are random (seeded by the transcript, which carries the
            # date): a day may hold no lead, so the figures are checked against the rows themselves.
            loaded, leads = conn.execute(sa.text(
                "SELECT COUNT(*), COALESCE(SUM(CASE WHEN is_lead THEN 1 ELSE 0 END), 0)"
                " FROM conversations_analytics WHERE tenant_id = :t AND day = :d"), params).one()
            assert loaded == table["conversations"] == count and table["leads"] == leads
            assert {k: kpis[key][k] for k in STATE} == table and kpis[key]["run_id"] == run_of[day]
            assert {k: analytics_plot[key][k] for k in STATE} == table
            assert analyses[key]["analyzed"] == count and analyses[key]["run_id"] == run_of[day]
            assert analyses[key]["cost_usd"] == pytest.approx(float(ledger[0]), rel=1e-9) and float(ledger[0]) > 0
            assert analyses[key]["openai.total_tokens"] == int(ledger[1])

    infos = instance.event_log_storage.get_asset_check_partition_info(
        [dg.AssetCheckKey(dg.AssetKey("conversations_analytics"), "every_conversation_analyzed_or_failed")],
        partition_keys=[f"{day.isoformat()}|allpfit" for day in RECENT])
    assert sorted((i.latest_execution_status.value, i.is_current) for i in infos) == [("SUCCEEDED", True)] * 3

    ARTIFACTS.mkdir(exist_ok=True)
    browser = HeadlessChromium(deployment["home"] / "chromium-plots")
    try:
        browser.open(f"http://127.0.0.1:{deployment['port']}/assets/tenant_daily_kpis")
        browser.wait_for_text(["tenant_daily_kpis", "Metadata"])
        browser.dismiss("Skip", 10)
        wait_for(lambda: browser.click_button("Plots"), 30, "the metadata Plots button")
        body = browser.wait_for_text(["conversations", "leads", "high_probability", "When graphing values by partition"])
        time.sleep(2)  # the charts animate in: a screenshot artifact for people, nothing asserted on it
        screenshot = ARTIFACTS / "tenant_daily_kpis_plots.png"
        browser.screenshot(screenshot)
    finally:
        browser.close()
    assert "Asset plots are automatically generated by metadata" not in body
    assert screenshot.stat().st_size > 10_000

    backfill = wait_for(lambda: (b := instance.get_backfill(backfill_id)) and b.status.value in BACKFILL_DONE and b,
                        120, f"backfill {backfill_id}", 2)
    assert backfill.status.value in ("COMPLETED_SUCCESS", "COMPLETED"), backfill.status
    assert len(instance.get_runs(dg.RunsFilter(tags={"dagster/backfill": backfill_id}))) == expected_runs
