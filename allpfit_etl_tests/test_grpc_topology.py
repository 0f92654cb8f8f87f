"""The container deployment's topology with processes instead of containers (this machine has no
container engine): the code location served over gRPC by ``dagster code-server start`` from the
installed wheel, ``dagster-webserver`` and ``dagster-daemon`` loading it through
``deploy/workspace.yaml`` (``grpc_server``), Dagster's storage on PostgreSQL through
``deploy/dagster.yaml`` — the files the image ships. As in docker-compose.yml, only the code
location gets the project's settings and secrets; the webserver and the daemon get Dagster's storage
and the code server's address. An activity-sensor run and a backfill succeed; the UI's GraphQL
shows them, with the figures the tables hold."""

from __future__ import annotations

import contextlib
import datetime as dt
import shutil
import subprocess
from pathlib import Path

import dagster as dg
import pytest
import requests
import sqlalchemy as sa

from allpfit_devtools.deployment import (
    REPO, dagster_processes, dagster_storage_env, descendants, free_port, instance_environment, postgres_databases,
    stop_processes, user_env, wait_for,
)
from allpfit_etl.db import get_engine
from allpfit_etl_tests.chatwoot_builder import ChatwootBuilder
from allpfit_etl_tests.conftest import TEST_DATABASE_URL

# Same worker as test_install.py: the wheel is built and installed once (conftest's `installed`).
pytestmark = pytest.mark.xdist_group("installed_wheel")

DEPLOY = REPO / "deploy"
HISTORY = {dt.date(2025, 11, 10): 3, dt.date(2025, 11, 11): 2, dt.date(2025, 11, 12): 4}
SENSOR_DAY = dt.date(2025, 11, 12)
DAYS_PER_RUN = 3  # one backfill run: the run split itself is test_deployment_end_to_end's
DONE = {"SUCCESS", "FAILURE", "CANCELED"}
BACKFILL_DONE = {"COMPLETED", "COMPLETED_SUCCESS", "COMPLETED_FAILED", "FAILED", "CANCELED"}


def grpc_healthy(bin_dir: Path, port: int, env: dict) -> bool:
    """The image's HEALTHCHECK, run against the code server."""
    check = subprocess.run([str(bin_dir / "dagster"), "api", "grpc-health-check", "-p", str(port)],
                           env=env, capture_output=True, text=True, timeout=60)
    return check.returncode == 0


@contextlib.contextmanager
def code_server(bin_dir: Path, env: dict, cwd: Path, log: Path):
    """The image's CMD: ``dagster code-server start`` on a free port; stopped with its runs on exit."""
    port = free_port()
    with open(log, "w") as out:
        process = subprocess.Popen(
            [str(bin_dir / "dagster"), "code-server", "start", "-h", "127.0.0.1", "-p", str(port),
             "-m", "allpfit_etl.definitions", "--location-name", "allpfit_etl"],
            cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            wait_for(lambda: process.poll() is not None or grpc_healthy(bin_dir, port, env), 180,
                     "the code server's health check", 1)
            assert process.poll() is None, log.read_text()[-3000:]
            yield port
        finally:
            stop_processes([*descendants(process.pid), process.pid], timeout=20)
            process.wait()


@pytest.fixture(scope="module")
def topology(installed, tmp_path_factory, pg_admin):
    tmp = tmp_path_factory.mktemp("grpc_topology")
    empty = tmp / "cwd"  # every process runs outside the checkout: the code is the installed wheel's
    empty.mkdir()
    with contextlib.ExitStack() as stack:
        urls = stack.enter_context(postgres_databases(pg_admin, TEST_DATABASE_URL, "dagster", "chatwoot", "analytics"))
        cw = ChatwootBuilder(get_engine(urls["chatwoot"]))
        history_account, live_account = cw.account("Gym History"), cw.account("Gym Live")
        for day, count in HISTORY.items():
            for i in range(count):
                at = dt.datetime(day.year, day.month, day.day, 14, 0) + dt.timedelta(minutes=10 * i)
                conv = cw.conversation(history_account, at, ("Ana", "Bruno", None)[i % 3])
                cw.message(history_account, conv, at, ("Quero agendar uma aula experimental amanhã às 19h",
                                                       "qual o valor da mensalidade?", "ok")[i % 3])
                cw.message(history_account, conv, at + dt.timedelta(minutes=1), "Agendado! Até amanhã",
                           message_type=1, sender_type="User")

        home = tmp / "dagster_home"
        home.mkdir()
        for name in ("dagster.yaml", "workspace.yaml"):  # what the Dockerfile copies into DAGSTER_HOME
            shutil.copy(DEPLOY / name, home / name)
        storage = {"DAGSTER_HOME": str(home), **dagster_storage_env(urls["dagster"])}
        base = user_env(tmp / "allpfit", installed)
        code_env = {
            **base, **storage,
            "CHATWOOT_DATABASE_URL": urls["chatwoot"], "ANALYTICS_DATABASE_URL": urls["analytics"],
            "ALLPFIT_START_DATE": "2025-11-01", "ALLPFIT_ACTIVITY_SENSOR_INTERVAL": "5",
            "ALLPFIT_BACKFILL_DAYS_PER_RUN": str(DAYS_PER_RUN),
            "ALLPFIT_MONITORING_REFRESH_CRON": "* * * * *",  # the refresh within the test's minutes, not 10
        }
        # The init job, then the tenants, as docs/deployment.md has the operator do them.
        for args in (("init",), ("tenants", "add", "gym_history", "--name", "Gym History", "--account-id", str(history_account)),
                     ("tenants", "add", "gym_live", "--name", "Gym Live", "--account-id", str(live_account))):
            done = subprocess.run([str(installed / "allpfit-etl"), *args], cwd=empty, env=code_env,
                                  capture_output=True, text=True, timeout=300)
            assert done.returncode == 0, f"{args}: {done.stdout[-1000:]} {done.stderr[-3000:]}"

        port = stack.enter_context(code_server(installed, code_env, empty, tmp / "code_server.log"))
        ops_env = {**base, **storage, "DAGSTER_CODE_SERVER_HOST": "127.0.0.1", "DAGSTER_CODE_SERVER_PORT": str(port)}
        processes = stack.enter_context(dagster_processes(ops_env, tmp, cwd=empty, workspace=str(home / "workspace.yaml")))
        yield {
            "url": processes.url, "code_env": code_env, "ops_env": ops_env, "port": port, "cw": cw,
            "live_account": live_account, "analytics": get_engine(urls["analytics"]), "cwd": empty, "bin": installed,
            "logs": {**processes.logs, "code_server": tmp / "code_server.log"},
        }


def graphql(topology, query: str, variables: dict | None = None) -> dict:
    response = requests.post(f"{topology['url']}/graphql", json={"query": query, "variables": variables or {}}, timeout=60)
    assert response.ok, f"GraphQL answered {response.status_code}: {response.text[:2000]}"
    body = response.json()
    assert "errors" not in body, body["errors"]
    return body["data"]


WORKSPACE = """
{
  workspaceOrError {
    ... on Workspace {
      locationEntries {
        name loadStatus
        displayMetadata { key value }
        locationOrLoadError {
          __typename
          ... on RepositoryLocation { repositories { name sensors { name sensorState { status } } } }
          ... on PythonError { message }
        }
      }
    }
  }
}
"""


def test_the_webserver_loads_the_code_location_from_its_grpc_server(topology):
    entries = graphql(topology, WORKSPACE)["workspaceOrError"]["locationEntries"]
    (entry,) = entries
    assert entry["name"] == "allpfit_etl" and entry["loadStatus"] == "LOADED"
    location = entry["locationOrLoadError"]
    assert location["__typename"] == "RepositoryLocation", location
    metadata = {m["key"]: m["value"] for m in entry["displayMetadata"]}
    assert metadata.get("port") == str(topology["port"]) and metadata.get("host") == "127.0.0.1"
    (repository,) = location["repositories"]
    sensors = {s["name"]: s["sensorState"]["status"] for s in repository["sensors"]}
    assert sensors["chatwoot_activity_sensor"] == "RUNNING"
    # The project's secrets and settings live only in the code location's environment.
    assert not [k for k in topology["ops_env"] if k.startswith(("CHATWOOT_", "ANALYTICS_", "OPENAI_", "ALLPFIT_START"))]


RUNS = """
query($tags: [ExecutionTag!]) {
  runsOrError(filter: {tags: $tags}) {
    ... on Runs { results { runId status jobName tags { key value } } }
  }
}
"""
BACKFILL = """
query($id: String!) {
  partitionBackfillOrError(backfillId: $id) {
    ... on PartitionBackfill { id status numPartitions partitionNames }
    ... on PythonError { message }
  }
}
"""
SENSOR_TICKS = """
query($selector: SensorSelector!) {
  sensorOrError(sensorSelector: $selector) {
    ... on Sensor { sensorState { ticks(limit: 5) { status cursor } } }
  }
}
"""
LATEST_BY_PARTITION = """
query($assetKey: AssetKeyInput!, $partitions: [String!]!) {
  assetNodeOrError(assetKey: $assetKey) {
    ... on AssetNode {
      latestMaterializationByPartition(partitions: $partitions) {
        partition runId
        metadataEntries { label ... on IntMetadataEntry { intValue } }
      }
    }
  }
}
"""
KPIS = ("conversations", "leads", "visits")


def runs_tagged(topology, **tags: str) -> list[dict]:
    variables = {"tags": [{"key": k.replace("__", "/"), "value": v} for k, v in tags.items()]}
    return graphql(topology, RUNS, variables)["runsOrError"]["results"]


def kpis_shown(topology, tenant: str, days) -> dict[str, dict]:
    """What the UI shows for tenant_daily_kpis' partitions: the latest materialization's figures."""
    keys = [f"{day.isoformat()}|{tenant}" for day in days]
    found = graphql(topology, LATEST_BY_PARTITION, {"assetKey": {"path": ["tenant_daily_kpis"]}, "partitions": keys})
    return {e["partition"]: {"run_id": e["runId"], **{m["label"]: m.get("intValue") for m in e["metadataEntries"]}}
            for e in found["assetNodeOrError"]["latestMaterializationByPartition"] if e}


def kpis_stored(topology, tenant: str, day: dt.date) -> dict:
    with topology["analytics"].connect() as conn:
        row = conn.execute(sa.text(
            "SELECT k.conversations, k.leads, k.visits_scheduled AS visits FROM tenant_daily_kpis k"
            " JOIN tenant_configs t USING (tenant_id) WHERE t.slug = :s AND k.day = :d"), {"s": tenant, "d": day}).one()
        loaded = conn.execute(sa.text(
            "SELECT COUNT(*) FROM conversations_analytics a JOIN tenant_configs t USING (tenant_id)"
            " WHERE t.slug = :s AND a.day = :d"), {"s": tenant, "d": day}).scalar_one()
    assert loaded == row.conversations
    return row._asdict()


def test_a_sensor_run_and_a_backfill_succeed_through_the_code_server_and_graphql_shows_them(topology):
    # The history: `allpfit-etl backfill` from the installed wheel, as the operator runs it (in
    # compose: `docker compose run --rm code-location allpfit-etl backfill ...`).
    first, last = min(HISTORY), max(HISTORY)
    submitted = subprocess.run(
        [str(topology["bin"] / "allpfit-etl"), "backfill", "gym_history", "--from", first.isoformat(), "--to", last.isoformat()],
        cwd=topology["cwd"], env=topology["code_env"], capture_output=True, text=True, timeout=300)
    assert submitted.returncode == 0, submitted.stderr[-3000:]
    backfill_id = submitted.stdout.split("submitted backfill ")[1].split(":")[0]

    # Live traffic: the activity sensor's first tick sets its cursor, then a new message arrives.
    selector = {"repositoryName": "__repository__", "repositoryLocationName": "allpfit_etl",
                "sensorName": "chatwoot_activity_sensor"}
    wait_for(lambda: any(t["cursor"] for t in graphql(topology, SENSOR_TICKS, {"selector": selector})
                         ["sensorOrError"]["sensorState"]["ticks"]), 120, "the activity sensor's first tick")
    cw, account = topology["cw"], topology["live_account"]
    conv = cw.conversation(account, dt.datetime(SENSOR_DAY.year, SENSOR_DAY.month, SENSOR_DAY.day, 15, 0), "Carla")
    now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)  # newer than any seeded activity
    cw.message(account, conv, now, "quero agendar uma aula experimental amanhã às 19h")

    def sensor_run_done():
        runs = runs_tagged(topology, allpfit__trigger="activity_sensor", allpfit__tenant="gym_live")
        return runs if runs and all(r["status"] in DONE for r in runs) else None

    sensor_runs = wait_for(sensor_run_done, 240, "the activity sensor's run, through the UI's GraphQL", 2)
    assert [r["status"] for r in sensor_runs] == ["SUCCESS"]
    (shown,) = kpis_shown(topology, "gym_live", [SENSOR_DAY]).values()
    assert shown["run_id"] == sensor_runs[0]["runId"]
    stored = kpis_stored(topology, "gym_live", SENSOR_DAY)
    assert {k: shown[k] for k in KPIS} == stored and stored["conversations"] == 1

    def backfill_done():
        backfill = graphql(topology, BACKFILL, {"id": backfill_id})["partitionBackfillOrError"]
        return backfill if backfill["status"] in BACKFILL_DONE else None

    backfill = wait_for(backfill_done, 420, f"backfill {backfill_id}, through the UI's GraphQL", 2)
    assert backfill["status"] in ("COMPLETED", "COMPLETED_SUCCESS"), backfill
    assert sorted(backfill["partitionNames"]) == [f"{d.isoformat()}|gym_history" for d in sorted(HISTORY)]
    backfill_runs = runs_tagged(topology, dagster__backfill=backfill_id)
    range_runs = [r for r in backfill_runs if "dagster/asset_partition_range_start" in {t["key"] for t in r["tags"]}]
    # ALLPFIT_BACKFILL_DAYS_PER_RUN days per run; the global monitoring is not the backfill's
    assert len(range_runs) == -(-len(HISTORY) // DAYS_PER_RUN) and len(backfill_runs) == len(range_runs)
    assert {r["status"] for r in backfill_runs} == {"SUCCESS"}
    shown = kpis_shown(topology, "gym_history", HISTORY)
    for day, count in HISTORY.items():
        figures = shown[f"{day.isoformat()}|gym_history"]
        assert figures["run_id"] in {r["runId"] for r in range_runs}
        stored = kpis_stored(topology, "gym_history", day)
        assert {k: figures[k] for k in KPIS} == stored and stored["conversations"] == count

    # The daemon's monitoring_refresh_sensor refreshes the global monitoring after those runs.
    def refreshed():
        found = runs_tagged(topology, allpfit__monitoring="refresh")
        return found if found and found[0]["status"] == "SUCCESS" else None

    refresh_runs = wait_for(refreshed, 180, "a monitoring_refresh run launched by the automation sensor", 2)
    assert {t["key"]: t["value"] for t in refresh_runs[0]["tags"]}.get("dagster/from_automation_condition") == "true"

    # The runs came from the gRPC server the workspace names (the default launcher asks it to
    # start them), not from a code location the daemon spawned itself.
    with instance_environment(topology["code_env"]), dg.DagsterInstance.get() as instance:
        for run_id in [r["runId"] for r in sensor_runs + backfill_runs + refresh_runs]:
            origin = instance.get_run_by_id(run_id).remote_job_origin.repository_origin.code_location_origin
            assert type(origin).__name__ == "GrpcServerCodeLocationOrigin"
            assert (origin.host, origin.port) == ("127.0.0.1", topology["port"])
