"""Benchmark: the daemon path as deployed — `dagster-daemon` with the repo's `dagster.yaml` on a
PostgreSQL instance, two tenants added as the README says (default features), both histories
submitted at once with `allpfit-etl backfill --no-batch` (real time: the shared limit is what is
measured; by default backfills of OpenAI tenants go to the Batch API, see bench_batch_cost.py) — against the bundled OpenAI-compatible server in
its own process, 3 s ± 1 s latency, 3,000 RPM enforced.

    python bench/bench_openai_daemon.py [--per-tenant 3000] [--days 3] [--rpm 3000]

Targets: together ≥ 45 conversations/s (90 % of the limit), 429s ≤ 2 % of requests, peak RSS
of every process the daemon starts (run workers, step processes) ≤ 1 GiB.
"""

from __future__ import annotations

import argparse
import datetime as dt
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

import sqlalchemy as sa

from allpfit_devtools.bench import run_cli, seed_in_subprocess, throwaway_databases
from allpfit_devtools.openai_process import ServerProcess, user_environment

from allpfit_devtools.deployment import dagster_storage_env
from allpfit_devtools.deployment import dagster_processes, descendants, production_home
FIRST_DAY = dt.date(2025, 11, 3)
TENANTS = (("north", 1), ("south", 2))


def peak_rss_mib(pid: int) -> float:
    """VmHWM: the process's peak resident set so far."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--per-tenant", type=int, default=3000)
    parser.add_argument("--days", type=int, default=3)
    parser.add_argument("--rpm", type=int, default=3000)
    parser.add_argument("--timeout", type=float, default=1800)
    args = parser.parse_args()
    last_day = FIRST_DAY + dt.timedelta(days=args.days - 1)
    per_day = args.per_tenant // args.days
    total = per_day * args.days * len(TENANTS)

    with ServerProcess("--latency", "3", "--latency-jitter", "1", "--rpm", str(args.rpm)) as server, \
            throwaway_databases("dagster", "chatwoot", "analytics") as (dagster_url, chatwoot_url, analytics_url), \
            tempfile.TemporaryDirectory() as home:
        for _, account in TENANTS:
            for i in range(args.days):
                seed_in_subprocess(chatwoot_url, account_id=account, day=(FIRST_DAY + dt.timedelta(days=i)).isoformat(),
                                   conversations=per_day, messages=8)
        dagster_home = production_home(Path(home))
        # Run from outside the checkout, so the daemon loads the installed package (a wheel in a
        # fresh virtualenv, say), not the sources next to workspace.yaml.
        shutil.copy(REPO / "workspace.yaml", dagster_home / "workspace.yaml")
        env = user_environment(chatwoot_url, analytics_url, server.base_url, home)
        # The repo's dagster.yaml reads Dagster's storage from DAGSTER_PG_* fields (it names psycopg2 itself).
        env.update(DAGSTER_HOME=str(dagster_home), **dagster_storage_env(dagster_url),
                   ALLPFIT_START_DATE=FIRST_DAY.isoformat())
        run_cli(env, "init")
        for slug, account in TENANTS:
            run_cli(env, "tenants", "add", slug, "--name", slug.title(), "--account-id", str(account), "--openai")

        analytics = sa.create_engine(analytics_url)
        try:
            with dagster_processes(env, Path(home), webserver=False, cwd=dagster_home) as processes:
                daemon = processes.processes["daemon"]
                time.sleep(10)  # the daemon loads the code location
                submitted = time.monotonic()
                for slug, _ in TENANTS:
                    run_cli(env, "backfill", slug, "--from", FIRST_DAY.isoformat(), "--to", last_day.isoformat(), "--no-batch")
                peak, loaded = 0.0, 0
                deadline = submitted + args.timeout
                while loaded < total and time.monotonic() < deadline:
                    time.sleep(0.5)
                    peak = max([peak] + [peak_rss_mib(pid) for pid in descendants(daemon.pid)])
                    with analytics.connect() as conn:
                        loaded = conn.execute(sa.text("SELECT COUNT(*) FROM conversations_analytics")).scalar_one()
                wall = time.monotonic() - submitted
                if loaded < total:
                    print(processes.log_text("daemon")[-4000:], file=sys.stderr)
                with analytics.connect() as conn:
                    first = conn.execute(sa.text("SELECT MIN(created_at) FROM llm_usage")).scalar_one()
                    answers, last = conn.execute(sa.text(  # the free regex answers beside them are not counted
                        "SELECT COUNT(*), MAX(analyzed_at) FROM conversation_analyses WHERE analyzer = 'openai'")).one()
                    per_tenant = conn.execute(sa.text(
                        "SELECT tenant_id, MIN(created_at), MAX(created_at) FROM llm_usage GROUP BY tenant_id")).all()
                stats = server.stats()
        finally:
            analytics.dispose()

    limit = args.rpm / 60
    rate = answers / (last - first).total_seconds() if first and last else 0.0
    print(f"daemon path: {len(TENANTS)} tenants × {per_day * args.days} conversations ({args.days} days each), "
          f"backfilled at once, server 3 s ± 1 s, {args.rpm} RPM enforced")
    print(f"   loaded:      {loaded} of {total} in {wall:.0f} s from the backfill submissions")
    print(f"   analysis:    {rate:.1f} conversations/s together = {100 * rate / limit:.0f} % of the limit "
          f"({limit:.0f}/s); target ≥ 90 %")
    for tenant_id, start, end in per_tenant:
        print(f"   tenant {tenant_id}:    sent from {start:%H:%M:%S} to {end:%H:%M:%S}")
    share = 100 * stats["rate_limited"] / max(1, stats["requests"])
    print(f"   requests:    {stats['requests']}, {stats['rate_limited']} answered 429 ({share:.2f} %); target ≤ 2 %")
    print(f"   peak RSS:    {peak:.0f} MiB, the largest process the daemon started (target ≤ 1024 MiB)")


if __name__ == "__main__":
    main()
