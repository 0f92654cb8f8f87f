"""Benchmark: 100,000 conversations (~8 messages each) of one tenant-day in PostgreSQL,
extract → pending → regex analysis → load, run as a user runs it: `allpfit-etl run` with a
tenant added at default features, plain postgresql:// URLs, the job with its checks.

    python bench/bench_regex_pipeline.py [--conversations 100000] [--messages 8]

Prints seeding time, the run's wall seconds, conversations/s and the run's peak RSS.
Targets: ≤ 30 s and ≤ 1 GiB for 100,000 conversations.
"""

from __future__ import annotations

import argparse
import datetime as dt
import tempfile


import sqlalchemy as sa

from allpfit_devtools.bench import cli_env, dagster_run_seconds, run_cli, seed_in_subprocess, throwaway_databases

DAY = dt.date(2025, 11, 10)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--conversations", type=int, default=100_000)
    parser.add_argument("--messages", type=int, default=8)
    args = parser.parse_args()

    with throwaway_databases("chatwoot", "analytics") as (chatwoot_url, analytics_url), \
            tempfile.TemporaryDirectory() as home:
        seed_seconds = seed_in_subprocess(chatwoot_url, account_id=1, day=DAY.isoformat(),
                                          conversations=args.conversations, messages=args.messages)
        env = cli_env(home, CHATWOOT_DATABASE_URL=chatwoot_url, ANALYTICS_DATABASE_URL=analytics_url)
        run_cli(env, "init")
        run_cli(env, "tenants", "add", "bench", "--name", "Bench Gym", "--account-id", "1")
        wall, output, rss = run_cli(env, "run", "--tenant", "bench", "--from", DAY.isoformat(), "--to", DAY.isoformat())
        with sa.create_engine(analytics_url).connect() as conn:
            loaded = conn.execute(sa.text("SELECT COUNT(*) FROM conversations_analytics")).scalar_one()
        run_seconds, steps = dagster_run_seconds(home)

    print(output.strip())
    print(f"conversations:        {args.conversations} × {args.messages} messages")
    print(f"seed (not timed):     {seed_seconds:.1f} s")
    print(f"`allpfit-etl run`:    {wall:.1f} s  (target ≤ 30 s)")
    print(f"the Dagster run:      {run_seconds:.1f} s  ({wall - run_seconds:.1f} s outside it: start-up, imports, the summary)")
    print(f"steps (s):            {steps}")
    print(f"throughput:           {loaded / wall:.0f} conversations/s")
    print(f"rows loaded:          {loaded}")
    print(f"peak RSS (the run):   {rss:.0f} MiB  (target ≤ 1024 MiB)")


if __name__ == "__main__":
    main()
