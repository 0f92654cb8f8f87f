"""Benchmark: 100,000 conversations (~10 messages each) of one tenant-day in PostgreSQL,
extract → pending → regex analysis → load through a real Dagster materialization.

    python bench/bench_regex_pipeline.py [--conversations 100000]

Prints seeding time, pipeline wall seconds, conversations/s and peak RSS.
Targets: ≤ 60 s and ≤ 1 GiB for 100,000 conversations.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


from _common import materialize_partition, peak_rss_mib, seed_in_subprocess, throwaway_databases  # noqa: E402
from allpfit_etl.analysis.openai_resource import LeadAnalysisOpenAI  # noqa: E402
from allpfit_etl.db import get_engine  # noqa: E402
from allpfit_etl.schema import apply_migrations  # noqa: E402
from allpfit_etl.tenants.registry import TenantFeatures, add_tenant  # noqa: E402

DAY = dt.date(2025, 11, 10)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--conversations", type=int, default=100_000)
    parser.add_argument("--messages", type=int, default=10)
    args = parser.parse_args()

    with throwaway_databases("chatwoot", "analytics") as (chatwoot_url, analytics_url):
        seed_seconds = seed_in_subprocess(chatwoot_url, account_id=1, day=DAY.isoformat(),
                                          conversations=args.conversations, messages=args.messages)
        source = get_engine(chatwoot_url)

        analytics = get_engine(analytics_url)
        apply_migrations(analytics)
        # Regex costs nothing per call: big chunks keep the number of Dagster steps small.
        add_tenant(analytics, "bench", "Bench Gym", 1, TenantFeatures(chunk_size=10_000))

        wall, _ = materialize_partition(f"{DAY.isoformat()}|bench", chatwoot_url, analytics_url, LeadAnalysisOpenAI())
        with analytics.connect() as conn:
            loaded = conn.exec_driver_sql("SELECT COUNT(*) FROM conversations_analytics").scalar_one()
        analytics.dispose()
        source.dispose()

    print(f"conversations:        {args.conversations} × {args.messages} messages")
    print(f"seed (not timed):     {seed_seconds:.1f} s")
    print(f"pipeline wall:        {wall:.1f} s  (target ≤ 60 s)")
    print(f"throughput:           {loaded / wall:.0f} conversations/s")
    print(f"rows loaded:          {loaded}")
    print(f"peak RSS (pipeline):  {peak_rss_mib():.0f} MiB  (target ≤ 1024 MiB)")


if __name__ == "__main__":
    main()
