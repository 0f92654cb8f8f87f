"""Secrets end to end: database URLs carry a real role's password, the OpenAI key and the alert
webhook's token are set, the CLI runs a day range through Dagster on the production dagster.yaml
(PostgreSQL storage) with a tenant that fails, then with an unreachable database; none of the
secrets appears in the CLI's output, any event, metadata, run record, compute log or alert.
The same range run also shows the per-partition metadata the README describes."""

from __future__ import annotations

import contextlib
import datetime as dt
import http.server
import json
import os
import subprocess
import sys
import threading
import uuid

import dagster as dg
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from allpfit_etl.automation.alerts import AlertWebhook, run_failure_alert_sensor
from allpfit_etl.db import get_engine
from allpfit_etl.demo.seed import create_chatwoot_schema, seed_bulk
from fake_openai import FakeOpenAIServer, FakeServerConfig
from allpfit_etl.schema import apply_migrations
from allpfit_etl.tenants.registry import TenantFeatures, add_tenant
from allpfit_etl_tests.conftest import TEST_DATABASE_URL
from allpfit_devtools.deployment import postgres_databases, production_deployment
DAYS = [dt.date(2025, 11, 10), dt.date(2025, 11, 11), dt.date(2025, 11, 12)]
ASSET_METADATA = {  # what the README promises on every partition's materialization
    "chatwoot_conversations": {"extracted"},
    "pending_conversations": {"pending", "skipped"},
    "conversation_analyses": {  # what the run did to the partition (the state is on the load assets)
        "analyzed", "reused_answers", "failures", "deferred_by_budget", "in_batch", "openai.calls",
        "openai.prompt_tokens", "openai.cached_tokens", "openai.completion_tokens", "openai.total_tokens", "cost_usd",
        "cost_brl", "retries", "conversations_per_second", "model",
    },
    "conversations_analytics": {"loaded", "conversations", "leads", "visits", "high_probability", "named"},
    "tenant_daily_kpis": {"conversations", "leads", "visits", "high_probability", "named"},
}


class Hook(http.server.BaseHTTPRequestHandler):
    bodies: list[str] = []

    def do_POST(self):  # noqa: N802
        Hook.bodies.append(self.rfile.read(int(self.headers.get("Content-Length", 0))).decode())
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


def drop_role(admin: sa.Engine, role: str) -> None:
    with admin.connect() as conn:
        conn.execute(sa.text(f"DROP ROLE IF EXISTS {role}"))


pytestmark = pytest.mark.xdist_group("secret_run")  # one run shared by both tests


@pytest.fixture(scope="module")
def secret_run(pg_admin, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("secrets")
    role, password = f"allpfit_role_{uuid.uuid4().hex[:8]}", "pw-" + uuid.uuid4().hex
    with pg_admin.connect() as conn:
        conn.execute(sa.text(f"CREATE ROLE {role} LOGIN PASSWORD '{password}'"))
    base = make_url(TEST_DATABASE_URL).set(username=role, password=password)
    with contextlib.ExitStack() as stack:
        stack.callback(drop_role, pg_admin, role)  # last, once its databases are gone
        urls = stack.enter_context(postgres_databases(
            pg_admin, base.render_as_string(hide_password=False), "dagster", "chatwoot", "analytics", owner=role))
        assert password in urls["analytics"]

        source = get_engine(urls["chatwoot"])
        create_chatwoot_schema(source)
        for i, day in enumerate(DAYS):
            seed_bulk(source, account_id=1, day=day, conversations=4, messages_per_conversation=4, first_id=1000 + 10 * i)
        analytics = get_engine(urls["analytics"])
        apply_migrations(analytics)
        add_tenant(analytics, "gym", "Gym", 1, TenantFeatures(use_openai=True, chunk_size=2))
        add_tenant(analytics, "ghost", "Ghost Gym", 999)  # no such Chatwoot account: its run fails

        server = stack.enter_context(FakeOpenAIServer(FakeServerConfig(p_500=0.3, fault_seed=3)))
        hook = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hook)
        threading.Thread(target=hook.serve_forever, daemon=True).start()
        stack.callback(hook.shutdown)
        secrets = {"password": password, "api_key": "sk-" + uuid.uuid4().hex, "hook_token": "hook-" + uuid.uuid4().hex}
        deployed = stack.enter_context(production_deployment(urls, tmp, {
            **os.environ, "ALLPFIT_HOME": str(tmp),
            "OPENAI_API_KEY": secrets["api_key"], "OPENAI_BASE_URL": server.base_url,
            "ALERT_WEBHOOK_URL": f"http://127.0.0.1:{hook.server_address[1]}/{secrets['hook_token']}",
            "ALLPFIT_LOG_LEVEL": "DEBUG",  # every Dagster event and log line on the console
        }, daemon=False))
        env = deployed.env
        command = [sys.executable, "-m", "allpfit_etl.cli.main"]
        run = subprocess.run([*command, "run", "--tenant", "gym", "--tenant", "ghost", "--from", DAYS[0].isoformat(),
                              "--to", DAYS[-1].isoformat()], env=env, capture_output=True, text=True, timeout=300)
        unreachable = subprocess.run(
            [*command, "run", "--tenant", "gym"], capture_output=True, text=True, timeout=120,
            env={**env, "CHATWOOT_DATABASE_URL": base.set(port=1, database="chatwoot").render_as_string(hide_password=False)},
        )
        yield {"run": run, "unreachable": unreachable, "instance": deployed.instance, "secrets": secrets,
               "home": deployed.home, "tmp": tmp, "server": server, "webhook": env["ALERT_WEBHOOK_URL"]}


def test_no_secret_in_output_events_metadata_logs_or_alerts(secret_run, capfd):
    run, unreachable, instance = secret_run["run"], secret_run["unreachable"], secret_run["instance"]
    assert run.returncode == 1 and "run failed: ghost:" in run.stderr and "999" in run.stderr, run.stderr[-3000:]
    assert "DEBUG" in run.stderr  # the console logger really wrote every event
    assert unreachable.returncode == 2 and "Chatwoot database unreachable at" in unreachable.stderr

    tenant_runs = instance.get_runs(dg.RunsFilter(job_name="lead_analysis"))
    assert len(tenant_runs) == 2 and {r.status for r in tenant_runs} == {dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE}
    (refresh,) = instance.get_runs(dg.RunsFilter(job_name="monitoring_refresh"))  # after gym's run succeeded
    runs = [*tenant_runs, refresh]  # every run's events and logs are searched for secrets
    texts = {"cli": run.stdout + run.stderr + unreachable.stdout + unreachable.stderr}
    for r in runs:
        texts[f"run {r.run_id}"] = dg.serialize_value(r)
        texts[f"events {r.run_id}"] = "\n".join(dg.serialize_value(record) for record in instance.all_logs(r.run_id))
    for path in list(secret_run["home"].rglob("*")) + list(secret_run["tmp"].glob("*.log")):
        if path.is_file() and path.suffix in (".out", ".err", ".log", ".complete", ".json"):
            texts[str(path)] = path.read_text(errors="replace")
    assert "openai.total_tokens" in texts[f"events {[r for r in tenant_runs if r.status == dg.DagsterRunStatus.SUCCESS][0].run_id}"]
    assert secret_run["server"].stats()["errors_500"] > 0  # failed attempts were logged too

    failed = next(r for r in tenant_runs if r.status == dg.DagsterRunStatus.FAILURE)
    (failure,) = instance.all_logs(failed.run_id, of_type=dg.DagsterEventType.RUN_FAILURE)
    Hook.bodies.clear()
    capfd.readouterr()
    context = dg.build_run_status_sensor_context(
        sensor_name="run_failure_alert_sensor", dagster_event=failure.dagster_event, dagster_instance=instance,
        dagster_run=failed, resources={"alert_webhook": AlertWebhook(url=secret_run["webhook"])},
    ).for_run_failure()
    run_failure_alert_sensor(context)
    sensor_log = "".join(capfd.readouterr())
    (alert,) = Hook.bodies
    assert json.loads(alert)["tenant"] == "ghost" and "999" in json.loads(alert)["error"]
    texts["alert"] = alert
    texts["alert sensor log"] = sensor_log
    assert "webhook answered HTTP 204" in sensor_log

    for name, secret in secret_run["secrets"].items():
        leaks = [where for where, text in texts.items() if secret in text]
        assert not leaks, f"the {name} leaked into {leaks}"


def test_a_range_run_records_the_readme_metadata_on_every_partition(secret_run):
    instance = secret_run["instance"]
    (run,) = [r for r in instance.get_runs() if r.tags.get("allpfit/tenant") == "gym"]
    assert run.tags["dagster/asset_partition_range_start"] == f"{DAYS[0]}|gym"
    assert run.tags["dagster/asset_partition_range_end"] == f"{DAYS[-1]}|gym"
    for asset, keys in ASSET_METADATA.items():
        records = instance.fetch_materializations(dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset)), limit=10).records
        by_partition = {r.partition_key: r for r in records}
        assert set(by_partition) == {f"{day}|gym" for day in DAYS}, asset  # one materialization per partition
        for partition, record in by_partition.items():
            assert record.run_id == run.run_id
            missing = keys - set(record.asset_materialization.metadata)
            assert not missing, f"{asset} {partition} lacks {sorted(missing)}"
