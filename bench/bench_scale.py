"""Benchmark: today's design (one partition per tenant and day, one run per tenant per trigger) at
100 and 1,000 tenants. Prints the figures docs/scaling.md quotes.

    python bench/bench_scale.py [--tenants 100,1000] [--years 2] [--materialized-days 3]
                                [--tick-timeout 600] [--run-window 90] [--traffic 1.0]

Per tenant count, on throwaway PostgreSQL databases and a DAGSTER_HOME holding the repo's
dagster.yaml (PostgreSQL storage, the run queue's limits):

1. Setup: N Chatwoot accounts and N tenants (regex), the N ``tenant`` partitions registered, the
   last ``--materialized-days`` of every tenant recorded as materialized, and
   ALLPFIT_START_DATE ``--years`` back, so each asset has N × 365 × years partitions.
2. Definitions load: ``import allpfit_etl.definitions`` and the repository built, in a fresh
   process (what the code server pays at start and at every reload).
3. The sensor and schedule evaluations in this process (the code server's share of a tick): the
   activity sensor when every tenant has one new message (→ N run requests), and the two-hourly
   schedule (→ N run requests).
4. The deployment: ``dagster code-server start`` (gRPC), ``dagster-daemon`` and
   ``dagster-webserver`` loading it through a grpc_server workspace (the container topology),
   a new message for every tenant, then
   - the activity sensor's tick that requests the N runs, as the daemon records it (start → end,
     run creation included); past ``--tick-timeout`` seconds, extrapolated from its pace so far;
   - the UI's GraphQL latency, with those N runs queued: an asset's partition status (what the
     asset page and the backfill dialog colour) and the backfill dialog's partition key lists;
   - for ``--run-window`` seconds the queue runs them (``max_concurrent_runs`` at a time): runs
     finished, and the CPU seconds of the daemon, code server and run processes per finished run.
5. Runs requested per hour at ``--traffic`` (the fraction of tenants with a new message in every
   run-spacing window, 1.0 = every tenant busy all day; bench_live's replay is such a tenant):
   the sensor's rules give at most one run per tenant per 1.5 sensor intervals, plus the
   schedule's run per tenant every 2 hours. With the CPU per run, the cores the run workers need.

``--tenants 100,1000 --tick-timeout 240 --run-window 60`` takes about 15 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import logging
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))

import requests  # noqa: E402
import sqlalchemy as sa  # noqa: E402
from allpfit_devtools.bench import throwaway_databases  # noqa: E402
from allpfit_devtools.deployment import (  # noqa: E402
    dagster_processes, dagster_storage_env, descendants, free_port, instance_environment, stop_processes, wait_for,
)
from bench_live import tree_cpu_seconds  # noqa: E402

TIMEZONE = "America/Sao_Paulo"
SENSOR_INTERVAL_S = 30  # the default ALLPFIT_ACTIVITY_SENSOR_INTERVAL
RUN_SPACING_S = 1.5 * SENSOR_INTERVAL_S  # sensors.live_run_spacing()
SCHEDULE_RUNS_PER_TENANT_HOUR = 0.5  # every_two_hours_schedule: one run per tenant every 2 hours
GRAPHQL_TIMEOUT_S = 180
DAILY_ASSET = "tenant_daily_kpis"


# --- setup ----------------------------------------------------------------------------------------

def seed_chatwoot(engine: sa.Engine, tenants: int) -> list[int]:
    """N accounts, each with an inbox, a contact and one conversation of yesterday; their ids."""
    from allpfit_etl.demo.seed import create_chatwoot_schema

    create_chatwoot_schema(engine)
    base = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None, microsecond=0) - dt.timedelta(days=1)
    ids = list(range(1, tenants + 1))
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO accounts (id, name, created_at, updated_at) VALUES (:id, :name, :t, :t)"),
                     [{"id": i, "name": f"Gym {i}", "t": base} for i in ids])
        conn.execute(sa.text(
            "INSERT INTO inboxes (id, channel_id, account_id, name, created_at, updated_at, channel_type)"
            " VALUES (:id, 1, :id, :name, :t, :t, 'Channel::Whatsapp')"), [{"id": i, "name": f"WhatsApp {i}", "t": base} for i in ids])
        conn.execute(sa.text("INSERT INTO contacts (id, name, account_id, created_at, updated_at) VALUES (:id, 'Ana', :id, :t, :t)"),
                     [{"id": i, "t": base} for i in ids])
        conn.execute(sa.text(
            "INSERT INTO conversations (id, account_id, inbox_id, status, created_at, updated_at, contact_id, display_id,"
            " last_activity_at) VALUES (:id, :id, :id, 0, :t, :t, :id, 1, :t)"), [{"id": i, "t": base} for i in ids])
        conn.execute(sa.text("ANALYZE"))
    write_messages(engine, ids, first_id=1, at=base)
    return ids


def write_messages(engine: sa.Engine, account_ids: list[int], first_id: int, at: dt.datetime | None = None) -> int:
    """One contact message in each account's conversation (the activity of one tick); the next id."""
    at = at or dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    rows = [{"id": first_id + n, "c": i, "t": at} for n, i in enumerate(account_ids)]
    with engine.begin() as conn:
        conn.execute(sa.text(
            "INSERT INTO messages (id, content, account_id, inbox_id, conversation_id, message_type, created_at, updated_at,"
            " private, sender_type, content_attributes) VALUES (:id, 'quero agendar uma aula experimental amanhã às 19h',"
            " :c, :c, :c, 0, :t, :t, false, 'Contact', '{}')"), rows)
        conn.execute(sa.text("UPDATE conversations SET updated_at = :t, last_activity_at = :t WHERE id = ANY(:ids)"),
                     {"t": at, "ids": account_ids})
        conn.execute(sa.text("ANALYZE messages"))
    return first_id + len(rows)


def add_tenants(engine: sa.Engine, account_ids: list[int]) -> list[str]:
    from allpfit_etl.schema import apply_migrations
    from allpfit_etl.tenants.registry import add_tenant

    apply_migrations(engine)
    slugs = []
    for i in account_ids:
        slugs.append(add_tenant(engine, f"gym_{i:04d}", f"Gym {i}", i).slug)
    with engine.begin() as conn:
        conn.execute(sa.text("ANALYZE"))
    return slugs


def record_history(instance, slugs: list[str], days: int) -> int:
    """Materializations of the daily asset for every tenant's last ``days`` days, so that the
    partition status the UI asks for has per-tenant ranges to compute (runless events: no run
    costs, the same rows a run's materializations write)."""
    import dagster as dg

    today = dt.date.today()
    count = 0
    for slug in slugs:
        for back in range(1, days + 1):
            key = dg.MultiPartitionKey({"day": (today - dt.timedelta(days=back)).isoformat(), "tenant": slug})
            instance.report_runless_asset_event(dg.AssetMaterialization(DAILY_ASSET, partition=key))
            count += 1
    return count


def timed(fn, *args, **kwargs):
    started = time.perf_counter()
    value = fn(*args, **kwargs)
    return time.perf_counter() - started, value


# --- measurements -----------------------------------------------------------------------------------

def definitions_load_seconds(env: dict, repeats: int = 3) -> float:
    code = ("import time; t = time.perf_counter(); from allpfit_etl.definitions import defs; "
            "defs.get_repository_def(); print(time.perf_counter() - t)")
    values = []
    for _ in range(repeats):
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True,
                             cwd=tempfile.gettempdir())
        values.append(float(out.stdout.strip().splitlines()[-1]))
    return statistics.median(values)


def evaluate_sensor_and_schedule(instance, chatwoot_url: str, analytics_url: str, chatwoot, account_ids, next_id) -> dict:
    """In this process: the activity sensor's tick with one new message per tenant, and the schedule's."""
    import dagster as dg

    from allpfit_etl.automation.schedules import every_two_hours_schedule
    from allpfit_etl.automation.sensors import chatwoot_activity_sensor
    from allpfit_etl.resources import AnalyticsDatabase, ChatwootDatabase

    resources = {"chatwoot": ChatwootDatabase(url=chatwoot_url), "analytics": AnalyticsDatabase(url=analytics_url)}
    logging.disable(logging.INFO)  # the sensor logs a line naming every tenant's run
    with dg.build_sensor_context(instance=instance, resources=resources) as context:
        first = chatwoot_activity_sensor(context)  # initialises the cursor at the newest activity
    cursor = first.cursor if isinstance(first, dg.SensorResult) else None
    if cursor is None:  # a SkipReason after update_cursor: read it back from the context
        cursor = context.cursor
    next_id = write_messages(chatwoot, account_ids, next_id)
    with dg.build_sensor_context(instance=instance, resources=resources, cursor=cursor) as context:
        seconds, result = timed(chatwoot_activity_sensor, context)
    with dg.build_schedule_context(instance=instance, resources=resources,
                                   scheduled_execution_time=dt.datetime.now(dt.timezone.utc)) as context:
        schedule_seconds, requests_ = timed(every_two_hours_schedule, context)
    return {"sensor_s": seconds, "sensor_requests": len(result.run_requests or []), "schedule_s": schedule_seconds,
            "schedule_requests": len(requests_) if isinstance(requests_, list) else 0, "next_id": next_id}


PARTITION_STATUS = """
query($key: AssetKeyInput!) {
  assetNodeOrError(assetKey: $key) {
    ... on AssetNode {
      assetPartitionStatuses {
        __typename
        ... on MultiPartitionStatuses { primaryDimensionName ranges { primaryDimStartKey primaryDimEndKey } }
      }
    }
  }
}
"""
PARTITION_KEYS = """
query($key: AssetKeyInput!) {
  assetNodeOrError(assetKey: $key) {
    ... on AssetNode { partitionKeysByDimension { name partitionKeys } }
  }
}
"""


def graphql_seconds(url: str, query: str, asset: str) -> tuple[float | None, int]:
    """Latency of one query (None: over GRAPHQL_TIMEOUT_S) and the response's size in bytes."""
    started = time.perf_counter()
    try:
        response = requests.post(f"{url}/graphql", json={"query": query, "variables": {"key": {"path": [asset]}}},
                                 timeout=GRAPHQL_TIMEOUT_S)
    except requests.Timeout:
        return None, 0
    elapsed = time.perf_counter() - started
    body = response.json()
    if "errors" in body:
        raise SystemExit(f"GraphQL error: {str(body['errors'])[:500]}")
    return elapsed, len(response.content)


def activity_tick(instance, after: float, min_runs: int):
    """The activity sensor's first tick after ``after`` that requested runs (the daemon's record)."""
    from dagster._core.scheduler.instigation import InstigatorType

    for state in instance.all_instigator_state(instigator_type=InstigatorType.SENSOR):
        if state.name == "chatwoot_activity_sensor":
            ticks = instance.get_ticks(state.instigator_origin_id, state.selector_id, limit=20)
            for tick in ticks:
                if tick.timestamp >= after and len(tick.run_ids) >= min_runs and tick.end_timestamp:
                    return tick
    return None


def deployment_pass(env: dict, home: Path, log_dir: Path, chatwoot, account_ids, next_id: int, run_window: float,
                    tick_timeout: float) -> dict:
    import dagster as dg
    from dagster._core.scheduler.instigation import InstigatorType

    bin_dir = Path(sys.executable).parent
    port = free_port()
    figures: dict = {}
    with open(log_dir / "code_server.log", "w") as out:
        server = subprocess.Popen(
            [str(bin_dir / "dagster"), "code-server", "start", "-h", "127.0.0.1", "-p", str(port), "-m",
             "allpfit_etl.definitions", "--location-name", "allpfit_etl"],
            env=env, cwd=log_dir, stdout=out, stderr=subprocess.STDOUT)
    ops_env = {**env, "DAGSTER_CODE_SERVER_HOST": "127.0.0.1", "DAGSTER_CODE_SERVER_PORT": str(port),
               "PATH": f"{bin_dir}{os.pathsep}{env['PATH']}"}
    try:
        started = time.perf_counter()
        wait_for(lambda: subprocess.run([str(bin_dir / "dagster"), "api", "grpc-health-check", "-p", str(port)],
                                        capture_output=True).returncode == 0, 300, "the code server", 1)
        figures["code_server_start_s"] = time.perf_counter() - started
        with dagster_processes(ops_env, log_dir, cwd=log_dir, workspace=str(home / "workspace.yaml")) as processes, \
                instance_environment(env), dg.DagsterInstance.get() as instance:
            # The sensor's first tick sets its cursor; then every tenant gets a message.
            wait_for(lambda: any(s.name == "chatwoot_activity_sensor" and s.instigator_data and s.instigator_data.cursor
                                 for s in instance.all_instigator_state(instigator_type=InstigatorType.SENSOR)),
                     300, "the activity sensor's first tick", 2)
            written_at = time.time()
            write_messages(chatwoot, account_ids, next_id)
            # The tick that requests a run per tenant, as the daemon records it; after --tick-timeout
            # seconds, the rate at which it has created runs so far (it goes on meanwhile).
            sensor_runs = dg.RunsFilter(tags={"allpfit/trigger": "activity_sensor"})
            deadline = time.monotonic() + tick_timeout
            tick = None
            while tick is None and time.monotonic() < deadline:
                tick = activity_tick(instance, written_at, len(account_ids))
                time.sleep(2)  # polling the instance for the tick record
            if tick is not None:
                figures.update(daemon_tick_s=tick.end_timestamp - tick.timestamp, daemon_tick_runs=len(tick.run_ids),
                               daemon_tick_done=True)
            else:
                figures.update(daemon_tick_s=None, daemon_tick_done=False)
            stamps = sorted(r.create_timestamp.timestamp() for r in instance.get_run_records(sensor_runs, limit=len(account_ids)))
            figures["daemon_tick_runs"] = len(stamps)
            # Seconds per run created: the tick's pace (extrapolated when it had not finished).
            figures["run_creation_s"] = (stamps[-1] - stamps[0]) / (len(stamps) - 1) if len(stamps) > 1 else None
            if tick is None and figures["run_creation_s"]:
                figures["daemon_tick_s"] = figures["run_creation_s"] * len(account_ids)
            queued = instance.get_runs_count(dg.RunsFilter(statuses=[dg.DagsterRunStatus.QUEUED]))
            figures["queued"] = queued
            for label, query in (("partition_status", PARTITION_STATUS), ("partition_keys", PARTITION_KEYS)):
                samples = [graphql_seconds(processes.url, query, DAILY_ASSET) for _ in range(3)]
                seconds = [s for s, _ in samples if s is not None]
                figures[f"graphql_{label}_s"] = statistics.median(seconds) if len(seconds) == 3 else None
                figures[f"graphql_{label}_bytes"] = max(size for _, size in samples)
            # The queue runs them for a bounded window: CPU of every Dagster process per finished run.
            roots = [server.pid, *(p.pid for p in processes.processes.values())]
            cpu_before = sum(tree_cpu_seconds(pid) for pid in roots)
            done_before = instance.get_runs_count(dg.RunsFilter(statuses=[dg.DagsterRunStatus.SUCCESS]))
            window_start = time.perf_counter()
            deadline = window_start + run_window
            while time.perf_counter() < deadline:
                time.sleep(5)  # a sampling interval, not synchronisation: the window is fixed
            done = instance.get_runs_count(dg.RunsFilter(statuses=[dg.DagsterRunStatus.SUCCESS])) - done_before
            failed = instance.get_runs_count(dg.RunsFilter(statuses=[dg.DagsterRunStatus.FAILURE]))
            cpu = sum(tree_cpu_seconds(pid) for pid in roots) - cpu_before
            figures.update(window_s=time.perf_counter() - window_start, runs_done=done, runs_failed=failed,
                           cpu_per_run_s=cpu / done if done else None)
            # Not drained: stop what the queue is still doing (the databases are dropped next).
            for run in instance.get_runs(dg.RunsFilter(statuses=[dg.DagsterRunStatus.QUEUED])):
                instance.report_run_canceled(run)
    finally:
        stop_processes([*descendants(server.pid), server.pid], timeout=20)
        server.wait()
    return figures


def one_pass(tenants: int, years: float, run_window: float, traffic: float, tick_timeout: float,
             materialized_days: int) -> dict:
    import dagster as dg

    from allpfit_etl.db import get_engine
    from allpfit_etl.partitions import TENANT_PARTITIONS_NAME

    start_date = (dt.date.today() - dt.timedelta(days=round(365 * years))).isoformat()
    figures: dict = {"tenants": tenants, "start_date": start_date}
    with throwaway_databases("dagster", "chatwoot", "analytics") as (dagster_url, chatwoot_url, analytics_url), \
            tempfile.TemporaryDirectory(prefix="bench_scale_") as tmp:
        chatwoot, analytics = get_engine(chatwoot_url), get_engine(analytics_url)
        figures["seed_s"], account_ids = timed(seed_chatwoot, chatwoot, tenants)
        figures["tenants_s"], slugs = timed(add_tenants, analytics, account_ids)
        home = Path(tmp) / "dagster_home"
        home.mkdir()
        shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
        (home / "workspace.yaml").write_text(
            "load_from:\n  - grpc_server:\n      host: {env: DAGSTER_CODE_SERVER_HOST}\n"
            "      port: {env: DAGSTER_CODE_SERVER_PORT}\n      location_name: allpfit_etl\n")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("ALLPFIT_", "CHATWOOT_", "ANALYTICS_", "DAGSTER_", "OPENAI_"))}
        env.update({"DAGSTER_HOME": str(home), **dagster_storage_env(dagster_url), "CHATWOOT_DATABASE_URL": chatwoot_url,
                    "ANALYTICS_DATABASE_URL": analytics_url, "ALLPFIT_START_DATE": start_date, "ALLPFIT_TIMEZONE": TIMEZONE,
                    "ALLPFIT_HOME": str(Path(tmp) / "allpfit")})
        figures["definitions_load_s"] = definitions_load_seconds(env)

        with instance_environment(env), dg.DagsterInstance.get() as instance:
            figures["register_s"], _ = timed(instance.add_dynamic_partitions, TENANT_PARTITIONS_NAME, slugs)
            figures["history_s"], figures["history_events"] = timed(record_history, instance, slugs, materialized_days)
            days = (dt.date.today() - dt.date.fromisoformat(start_date)).days + 2  # end_offset=1
            figures["partitions_per_asset"] = days * tenants
            os.environ.update({k: env[k] for k in ("ALLPFIT_START_DATE", "ALLPFIT_TIMEZONE")})
            figures.update(evaluate_sensor_and_schedule(instance, chatwoot_url, analytics_url, chatwoot, account_ids, 10_000_000))
        next_id = figures.pop("next_id")
        print(f"in-process figures: {figures}", file=sys.stderr, flush=True)
        figures.update(deployment_pass(env, home, Path(tmp), chatwoot, account_ids, next_id, run_window, tick_timeout))

    runs_per_hour = tenants * (traffic * 3600 / RUN_SPACING_S + SCHEDULE_RUNS_PER_TENANT_HOUR)
    figures["runs_per_hour"] = runs_per_hour
    if figures.get("cpu_per_run_s"):
        figures["cores_for_runs"] = runs_per_hour * figures["cpu_per_run_s"] / 3600
    return figures


def fmt(value, unit: str = "", digits: int = 2) -> str:
    if value is None:
        return f"> {GRAPHQL_TIMEOUT_S} s (timed out)" if unit == " s" else "n/a"
    if isinstance(value, float):
        return f"{value:,.{digits}f}{unit}"
    return f"{value:,}{unit}"


def report(f: dict, traffic: float) -> None:
    print(f"\n=== {f['tenants']:,} tenants, partitions since {f['start_date']} ===")
    rows = [
        ("partitions per asset (× 9 partitioned assets)", fmt(f["partitions_per_asset"])),
        ("setup: Chatwoot seed / tenants added / partitions registered",
         f"{fmt(f['seed_s'], ' s')} / {fmt(f['tenants_s'], ' s')} / {fmt(f['register_s'], ' s')}"),
        (f"materialized partitions recorded ({DAILY_ASSET})", f"{f['history_events']:,} in {fmt(f['history_s'], ' s')}"),
        ("definitions load (fresh process, median of 3)", fmt(f["definitions_load_s"], " s")),
        ("code server start (to a healthy gRPC check)", fmt(f["code_server_start_s"], " s")),
        ("activity sensor evaluation, every tenant active", f"{fmt(f['sensor_s'], ' s')} → {f['sensor_requests']:,} run requests"),
        ("schedule evaluation", f"{fmt(f['schedule_s'], ' s')} → {f['schedule_requests']:,} run requests"),
        ("activity sensor tick in the daemon" + ("" if f["daemon_tick_done"] else " (extrapolated)"),
         f"{fmt(f['daemon_tick_s'], ' s', 0)} for {f['tenants']:,} runs ({f['daemon_tick_runs']:,} created when measured)"),
        ("daemon seconds per run created", fmt(f["run_creation_s"], " s")),
        ("runs queued after that tick", fmt(f["queued"])),
        ("GraphQL: asset partition status", f"{fmt(f['graphql_partition_status_s'], ' s')} ({fmt(f['graphql_partition_status_bytes'])} bytes)"),
        ("GraphQL: backfill dialog partition keys", f"{fmt(f['graphql_partition_keys_s'], ' s')} ({fmt(f['graphql_partition_keys_bytes'])} bytes)"),
        (f"runs finished in {fmt(f['window_s'], ' s', 0)} (failed)", f"{f['runs_done']} ({f['runs_failed']})"),
        ("Dagster CPU per run (daemon, webserver, code server, run workers)", fmt(f["cpu_per_run_s"], " CPU-s")),
        (f"runs requested per hour at traffic {traffic:g}", fmt(f["runs_per_hour"], "", 0)),
        ("cores the run workers need at that rate", fmt(f.get("cores_for_runs"), "", 1)),
    ]
    width = max(len(label) for label, _ in rows)
    for label, value in rows:
        print(f"  {label:<{width}}  {value}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tenants", default="100,1000", help="comma-separated tenant counts (default 100,1000)")
    parser.add_argument("--years", type=float, default=2.0, help="history length: partitions start this many years back")
    parser.add_argument("--run-window", type=float, default=90.0, help="seconds the queue runs for the CPU-per-run figure")
    parser.add_argument("--traffic", type=float, default=1.0,
                        help="fraction of tenants with a new message in every run-spacing window (45 s)")
    parser.add_argument("--materialized-days", type=int, default=3,
                        help="days of every tenant recorded as materialized (of %s) before the GraphQL queries" % DAILY_ASSET)
    parser.add_argument("--tick-timeout", type=float, default=600.0,
                        help="seconds to wait for the daemon's tick; past them its pace is extrapolated")
    args = parser.parse_args()
    for count in (int(n) for n in args.tenants.split(",")):
        report(one_pass(count, args.years, args.run_window, args.traffic, args.tick_timeout, args.materialized_days),
               args.traffic)


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main()
