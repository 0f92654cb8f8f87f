"""`allpfit-etl run` makes ordinary Dagster runs of the code location: they carry its origin (the UI
lists them in its timeline and re-executes them), the run queue's one-run-per-tenant limit holds
them with a dagster-daemon running, and without one the CLI executes them itself, one run of a
tenant at a time. End to end: real processes, PostgreSQL, the daemon and webserver, the bundled
OpenAI-compatible server."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import signal
import subprocess
import uuid

import dagster as dg
import pytest
import requests
import sqlalchemy as sa

from allpfit_etl.automation.sensors import INCREMENTAL_RUN_CONFIG
from allpfit_etl.db import get_engine
from allpfit_etl.demo.seed import create_chatwoot_schema
from fake_openai import FakeOpenAIServer, FakeServerConfig
from allpfit_etl.partitions import run_tags
from allpfit_etl.runner import IN_PROCESS_EXECUTION, daemon_serves_queue
from allpfit_etl.schema import apply_migrations
from allpfit_etl.tenants.registry import TenantFeatures, add_tenant
from allpfit_etl_tests.chatwoot_builder import ChatwootBuilder
from allpfit_etl_tests.conftest import TEST_DATABASE_URL
from allpfit_devtools.deployment import (
    REPO, postgres_databases, production_deployment, wait_for,
)

LOCATION, REPOSITORY, JOB = "allpfit_etl", "__repository__", "lead_analysis"
FINISHED = {dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED}
# Each test its own days (and the overlap test its own tenant), so no test meets another's runs.
REEXECUTED_DAY, OVERLAP_DAY, NO_DAEMON_DAY = dt.date(2025, 11, 10), dt.date(2025, 11, 11), dt.date(2025, 11, 12)
CONVERSATIONS = 3
SECRET_KEY = "sk-test-" + uuid.uuid4().hex


def seed_day(cw: ChatwootBuilder, account: int, day: dt.date, count: int = CONVERSATIONS) -> None:
    for i in range(count):
        at = dt.datetime(day.year, day.month, day.day, 13, 0) + dt.timedelta(minutes=10 * i)
        conv = cw.conversation(account, at, ("Juliana Souza", "Pedro", None)[i % 3])
        cw.message(account, conv, at, ("Quero agendar uma aula experimental amanhã às 19h", "qual o valor da mensalidade?", "ok")[i % 3])
        cw.message(account, conv, at + dt.timedelta(minutes=1), "Agendado! Te esperamos", message_type=1, sender_type="User")


def cli(env: dict, *args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run(["allpfit-etl", *args], env=env, cwd=REPO, capture_output=True, text=True, timeout=timeout)


def day_args(day: dt.date) -> list[str]:
    return ["--from", day.isoformat(), "--to", day.isoformat()]


def cli_run_of(instance: dg.DagsterInstance, slug: str, day: dt.date) -> list[dg.DagsterRun]:
    return instance.get_runs(dg.RunsFilter(tags={
        "allpfit/trigger": "cli", "dagster/asset_partition_range_start": f"{day.isoformat()}|{slug}"}))


def assert_code_location_origin(instance: dg.DagsterInstance, run: dg.DagsterRun) -> None:
    origin = run.remote_job_origin
    assert origin is not None, "the run has no code location origin: the UI cannot re-execute it"
    assert (origin.location_name, origin.repository_origin.repository_name, origin.job_name) == (LOCATION, REPOSITORY, JOB)
    assert run.job_code_origin is not None
    # the hidden tag the UI's per-repository run lists filter on
    assert instance.get_runs(dg.RunsFilter(run_ids=[run.run_id], tags={".dagster/repository": f"{REPOSITORY}@{LOCATION}"}))


def assert_one_at_a_time(records: list) -> None:
    spans = sorted((r.start_time, r.end_time, r.dagster_run.run_id) for r in records)
    assert all(start and end for start, end, _ in spans), spans
    for (_, end, first), (start, _, second) in zip(spans, spans[1:]):
        assert end <= start, f"runs {first} and {second} of one tenant overlapped ({end} > {start})"


def assert_contended(records: list) -> None:
    """The later run was created while the earlier was in progress: without the limit they would have overlapped."""
    first, second = sorted(records, key=lambda r: r.start_time)
    created = second.create_timestamp
    created = created if created.tzinfo else created.replace(tzinfo=dt.timezone.utc)
    assert created.timestamp() < first.end_time, "the runs did not contend: the test proves nothing"


# --- with a dagster-daemon: the deployment of test_deployment_end_to_end.py, its own databases ---


@pytest.fixture(scope="module")
def deployment(tmp_path_factory, pg_admin):
    tmp = tmp_path_factory.mktemp("cli_runs_in_ui")
    with contextlib.ExitStack() as stack:
        urls = stack.enter_context(postgres_databases(pg_admin, TEST_DATABASE_URL, "dagster", "chatwoot", "analytics"))
        cw = ChatwootBuilder(get_engine(urls["chatwoot"]))
        gym, other = cw.account("AllpFit"), cw.account("Outra")
        seed_day(cw, gym, REEXECUTED_DAY)  # written before the daemon starts: history, not sensor activity
        seed_day(cw, other, OVERLAP_DAY)
        analytics = get_engine(urls["analytics"])
        apply_migrations(analytics)
        for slug, account in (("allpfit", gym), ("outra", other)):
            add_tenant(analytics, slug, slug.title(), account, TenantFeatures(use_openai=True, max_concurrency=4))
        # Half a second per answer: a run lasts long enough for the other run of its tenant to be
        # created while it is in progress.
        server = stack.enter_context(FakeOpenAIServer(FakeServerConfig(latency_s=0.5)))
        env = {
            **{k: v for k, v in os.environ.items() if k != "ALLPFIT_LOG_LEVEL"},
            "OPENAI_API_KEY": SECRET_KEY,
            "OPENAI_BASE_URL": server.base_url,
            "ALLPFIT_START_DATE": "2025-11-01",
            "ALLPFIT_REPORT_PATH": str(tmp / "lead_report.html"),
        }
        deployed = stack.enter_context(production_deployment(urls, tmp, env))
        wait_for(lambda: daemon_serves_queue(deployed.instance), 120, "the daemon's run queue heartbeat")
        yield {"env": deployed.env, "instance": deployed.instance, "port": deployed.port, "client": deployed.client(),
               "logs": deployed.processes.logs}


def graphql(deployment, query: str, variables: dict | None = None) -> dict:
    response = requests.post(f"http://127.0.0.1:{deployment['port']}/graphql",
                             json={"query": query, "variables": variables or {}}, timeout=60)
    assert response.ok, f"GraphQL answered {response.status_code}: {response.text[:2000]}"
    body = response.json()
    assert "errors" not in body, body["errors"]
    return body["data"]


def wait_for_run(instance: dg.DagsterInstance, run_id: str, timeout: float = 180) -> dg.DagsterRun:
    return wait_for(lambda: (r := instance.get_run_by_id(run_id)) and r.status in FINISHED and r, timeout, f"run {run_id}", 0.5)


# The fields the UI's run timeline reads (RunTimelineFragment): a run without repositoryOrigin is left out.
TIMELINE_RUNS = """
query($runIds: [String!]) {
  runsOrError(filter: {runIds: $runIds}) {
    ... on Runs { results { runId pipelineName status creationTime startTime endTime
                            repositoryOrigin { repositoryName repositoryLocationName } } }
  }
}
"""
REEXECUTE = """
mutation($parentRunId: String!) {
  launchRunReexecution(reexecutionParams: {parentRunId: $parentRunId, strategy: ALL_STEPS}) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on PythonError { message stack }
    ... on RunConfigValidationInvalid { errors { message } }
  }
}
"""


@pytest.mark.xdist_group("cli_runs_in_ui")
def test_a_cli_run_goes_through_the_queue_shows_in_the_timeline_and_re_executes_from_the_ui(deployment):
    instance = deployment["instance"]
    result = cli(deployment["env"], "run", "--tenant", "allpfit", *day_args(REEXECUTED_DAY))
    assert result.returncode == 0, result.stderr
    assert (f"this run:  {CONVERSATIONS} conversations extracted, {CONVERSATIONS} analyzed, 0 reused, 0 skipped, 0 failed"
            in result.stdout), result.stdout  # the summary, read from the event log of a run the daemon executed
    (run,) = cli_run_of(instance, "allpfit", REEXECUTED_DAY)
    assert run.status == dg.DagsterRunStatus.SUCCESS
    assert_code_location_origin(instance, run)
    # submitted to the queue and launched by the daemon, every step in its run worker's one process
    # (the CLI's runs are in_process wherever they execute); nothing secret in its config
    assert instance.all_logs(run.run_id, of_type=dg.DagsterEventType.RUN_ENQUEUED)
    assert len({e.dagster_event.pid for e in instance.all_logs(run.run_id, of_type=dg.DagsterEventType.STEP_START)}) == 1
    assert run.run_config == IN_PROCESS_EXECUTION and SECRET_KEY not in str(run.tags)

    (listed,) = graphql(deployment, TIMELINE_RUNS, {"runIds": [run.run_id]})["runsOrError"]["results"]
    assert listed["repositoryOrigin"] == {"repositoryName": REPOSITORY, "repositoryLocationName": LOCATION}
    assert listed["status"] == "SUCCESS" and listed["startTime"] and listed["endTime"]

    launched = graphql(deployment, REEXECUTE, {"parentRunId": run.run_id})["launchRunReexecution"]
    assert launched["__typename"] == "LaunchRunSuccess", launched
    again = wait_for_run(instance, launched["run"]["runId"])
    assert again.status == dg.DagsterRunStatus.SUCCESS
    assert (again.parent_run_id, again.root_run_id) == (run.run_id, run.run_id)
    assert again.tags["allpfit/tenant"] == "allpfit"
    assert again.tags["dagster/asset_partition_range_start"] == f"{REEXECUTED_DAY.isoformat()}|allpfit"
    assert_code_location_origin(instance, again)


@pytest.mark.xdist_group("cli_runs_in_ui")
def test_a_cli_run_and_a_sensor_style_run_of_one_tenant_submitted_at_once_never_overlap(deployment):
    instance, day = deployment["instance"], OVERLAP_DAY
    process = subprocess.Popen(["allpfit-etl", "run", "--tenant", "outra", *day_args(day)], env=deployment["env"],
                               cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # meanwhile a run of the same tenant with the tags and config the sensors give their runs
        other_id = deployment["client"].submit_job_execution("lead_analysis", run_config=INCREMENTAL_RUN_CONFIG, tags={
            "dagster/partition": f"{day.isoformat()}|outra", "dagster/partition/day": day.isoformat(),
            "dagster/partition/tenant": "outra", **run_tags("outra", "activity_sensor")})
        out, err = process.communicate(timeout=240)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, err
    assert wait_for_run(instance, other_id).status == dg.DagsterRunStatus.SUCCESS
    (cli_run,) = cli_run_of(instance, "outra", day)
    assert cli_run.status == dg.DagsterRunStatus.SUCCESS
    records = [instance.get_run_record_by_id(run_id) for run_id in (cli_run.run_id, other_id)]
    assert_one_at_a_time(records)
    assert_contended(records)
    # every run of the tenant (a schedule tick may have added one) one at a time too
    tenant_runs = {r.dagster_run.run_id: r for tag in ("allpfit/tenant", "dagster/partition/tenant")
                   for r in instance.get_run_records(dg.RunsFilter(tags={tag: "outra"})) if r.dagster_run.status in FINISHED}
    assert_one_at_a_time(list(tenant_runs.values()))


# --- without a daemon: the CLI executes its runs itself ---


def user_env(home, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("ALLPFIT_", "CHATWOOT_", "ANALYTICS_", "DAGSTER_", "OPENAI_"))}
    return {**env, "ALLPFIT_HOME": str(home), **extra}


def test_without_a_daemon_the_cli_executes_its_run_itself_with_the_code_location_origin(tmp_path):
    """The embedded defaults: SQLite everywhere, the local instance the CLI creates, no daemon."""
    source = sa.create_engine(f"sqlite:///{tmp_path / 'chatwoot.db'}")
    create_chatwoot_schema(source)
    cw = ChatwootBuilder(source)
    gym = cw.account("AllpFit")
    seed_day(cw, gym, NO_DAEMON_DAY)
    source.dispose()
    env = user_env(tmp_path)
    for args in (("init",), ("tenants", "add", "allpfit", "--name", "AllpFit", "--account-id", str(gym))):
        assert cli(env, *args).returncode == 0
    result = cli(env, "run", "--tenant", "allpfit", *day_args(NO_DAEMON_DAY))
    assert result.returncode == 0, result.stderr
    assert f"this run:  {CONVERSATIONS} conversations extracted, {CONVERSATIONS} analyzed" in result.stdout
    assert result.stderr == ""

    with dg.DagsterInstance.from_config(str(tmp_path / "dagster_home")) as instance:
        assert not daemon_serves_queue(instance)
        (run,) = instance.get_runs(dg.RunsFilter(job_name="lead_analysis"))
        assert run.status == dg.DagsterRunStatus.SUCCESS
        (refresh,) = instance.get_runs(dg.RunsFilter(job_name="monitoring_refresh"))  # once, after the tenant's run
        assert refresh.status == dg.DagsterRunStatus.SUCCESS and refresh.tags["allpfit/monitoring"] == "refresh"
        assert_code_location_origin(instance, run)
        assert run.run_config["execution"] == IN_PROCESS_EXECUTION["execution"]
        assert not instance.all_logs(run.run_id, of_type=dg.DagsterEventType.RUN_ENQUEUED)
        pids = {e.dagster_event.pid for e in instance.all_logs(run.run_id, of_type=dg.DagsterEventType.STEP_START)}
        assert len(pids) == 1  # every step in the CLI's own process


@contextlib.contextmanager
def production_instance_without_daemon(pg_admin, tmp_path, latency_s: float):
    """The production dagster.yaml (QueuedRunCoordinator, PostgreSQL storage) with no daemon
    running; one OpenAI tenant whose answers take ``latency_s``. Yields the CLI's environment, the
    instance and the OpenAI-compatible server."""
    with contextlib.ExitStack() as stack:
        urls = stack.enter_context(postgres_databases(pg_admin, TEST_DATABASE_URL, "dagster", "chatwoot", "analytics"))
        cw = ChatwootBuilder(get_engine(urls["chatwoot"]))
        gym = cw.account("AllpFit")
        seed_day(cw, gym, NO_DAEMON_DAY)
        analytics = get_engine(urls["analytics"])
        apply_migrations(analytics)
        add_tenant(analytics, "allpfit", "AllpFit", gym, TenantFeatures(use_openai=True, max_concurrency=4))
        server = stack.enter_context(FakeOpenAIServer(FakeServerConfig(latency_s=latency_s)))
        env = user_env(tmp_path / "allpfit", OPENAI_API_KEY=SECRET_KEY, OPENAI_BASE_URL=server.base_url,
                       ALLPFIT_START_DATE="2025-11-01")
        deployed = stack.enter_context(production_deployment(urls, tmp_path, env, daemon=False))
        yield deployed.env, deployed.instance, server


RUN_COMMAND = ["allpfit-etl", "run", "--tenant", "allpfit", *day_args(NO_DAEMON_DAY)]


def test_without_a_daemon_two_cli_runs_of_one_tenant_started_at_once_run_one_after_the_other(tmp_path, pg_admin):
    """Each CLI executes its own run, the later one after the earlier has ended."""
    # Three seconds an answer: the first run is still analysing when the second is created.
    with production_instance_without_daemon(pg_admin, tmp_path, latency_s=3.0) as (env, instance, _):
        processes = [subprocess.Popen(RUN_COMMAND, env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                     for _ in range(2)]
        outputs = []
        try:
            outputs = [p.communicate(timeout=180) for p in processes]
        finally:
            for p in processes:
                if p.poll() is None:
                    p.kill()
                    p.wait()
        assert [p.returncode for p in processes] == [0, 0], outputs
        # one waited for the other, and said so on stderr; the analysis was done once
        assert sum("waiting for run" in err for _, err in outputs) == 1, outputs
        assert sorted(f"extracted, {CONVERSATIONS} analyzed" in out for out, _ in outputs) == [False, True], outputs

        assert not daemon_serves_queue(instance)
        records = instance.get_run_records(dg.RunsFilter(tags={"allpfit/tenant": "allpfit"}))
        assert len(records) == 2 and all(r.dagster_run.status == dg.DagsterRunStatus.SUCCESS for r in records)
        for record in records:
            assert_code_location_origin(instance, record.dagster_run)
        assert_one_at_a_time(records)
        assert_contended(records)


def test_without_a_daemon_a_run_left_by_a_killed_cli_does_not_hold_the_tenant_forever(tmp_path, pg_admin):
    """kill -9 leaves the run STARTED (nothing monitors it without a daemon): the next CLI run of
    the tenant sees that its process is gone, marks the run failed and goes on."""
    with production_instance_without_daemon(pg_admin, tmp_path, latency_s=30.0) as (env, instance, server):
        process = subprocess.Popen(RUN_COMMAND, env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                   start_new_session=True)
        try:
            killed = wait_for(lambda: next(iter(instance.get_runs(dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED]))), None),
                              60, "the first CLI run to start", 0.2)
        finally:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        assert instance.get_run_by_id(killed.run_id).status == dg.DagsterRunStatus.STARTED

        server.configure(latency_s=0.0)
        rerun = subprocess.run(RUN_COMMAND, env=env, cwd=REPO, capture_output=True, text=True, timeout=120)
        assert rerun.returncode == 0, rerun.stderr
        assert f"run {killed.run_id} of allpfit was left STARTED by an allpfit-etl process that is gone" in rerun.stderr
        assert f"extracted, {CONVERSATIONS} analyzed" in rerun.stdout
        assert instance.get_run_by_id(killed.run_id).status == dg.DagsterRunStatus.FAILURE
        (rerun_run,) = [r for r in instance.get_runs(dg.RunsFilter(job_name="lead_analysis")) if r.run_id != killed.run_id]
        assert rerun_run.status == dg.DagsterRunStatus.SUCCESS
