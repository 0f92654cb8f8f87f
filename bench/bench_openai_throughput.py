"""Benchmark: OpenAI analysis at the rate limit, through real Dagster materializations, against
the bundled OpenAI-compatible server over real HTTP.

    python bench/bench_openai_throughput.py [--rate-limited 3000] [--unlimited 5000] [--old-design 100]

1. Server latency 3 s ± 1 s with 3,000 RPM enforced; N pending conversations in one tenant-day.
   Prints conversations/s and the percentage of the limit (target ≥ 90 %, i.e. ≥ 45/s), and the old
   design (ThreadPoolExecutor(5) over the sync client, 30 s timeout) on 100 conversations, with the
   ratio.
2. Server latency 0.2 s, no limit; 5,000 conversations. Target ≥ 200 conversations/s end to end.
3. Peak RSS of the whole benchmark process (target ≤ 1 GiB).
"""

from __future__ import annotations

import argparse
import datetime as dt
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import openai  # noqa: E402
import requests  # noqa: E402
import sqlalchemy as sa  # noqa: E402

from _common import materialize_partition, peak_rss_mib, seed_in_subprocess, throwaway_databases  # noqa: E402
from allpfit_etl.analysis.openai_analyzer import LeadAnswer  # noqa: E402
from allpfit_etl.analysis.openai_resource import LeadAnalysisOpenAI  # noqa: E402
from allpfit_etl.analysis.prompts import system_prompt  # noqa: E402
from allpfit_etl.db import get_engine  # noqa: E402
from allpfit_etl.schema import apply_migrations  # noqa: E402
from allpfit_etl.tenants.registry import TenantFeatures, add_tenant  # noqa: E402

DAY = dt.date(2025, 11, 10)
API_KEY = "sk-bench"


def run_pipeline(conversations: int, server: "ServerProcess", rpm: int, max_concurrency: int) -> dict:
    with throwaway_databases("chatwoot", "analytics") as (chatwoot_url, analytics_url):
        seed_in_subprocess(chatwoot_url, account_id=1, day=DAY.isoformat(), conversations=conversations, messages=8)
        source = get_engine(chatwoot_url)
        analytics = get_engine(analytics_url)
        apply_migrations(analytics)
        add_tenant(analytics, "bench", "Bench Gym", 1,
                   TenantFeatures(use_openai=True, chunk_size=conversations, max_concurrency=max_concurrency))
        overrides = {"gpt-4o-mini": {"rpm": rpm, "tpm": 0}} if rpm else {"gpt-4o-mini": {"rpm": 0, "tpm": 0}}
        wall, meta = materialize_partition(
            f"{DAY.isoformat()}|bench", chatwoot_url, analytics_url,
            LeadAnalysisOpenAI(api_key=API_KEY, base_url=server.base_url, rate_limit_overrides=overrides),
        )
        with analytics.connect() as conn:
            loaded = conn.execute(sa.text("SELECT COUNT(*) FROM conversations_analytics")).scalar_one()
        analytics.dispose()
        source.dispose()
    analysis = meta["conversation_analyses"]
    return {"wall": wall, "loaded": loaded, "analysis_rate": analysis["conversations_per_second"],
            "failures": analysis["failures"], "calls": analysis["openai.calls"]}


def old_design(server: "ServerProcess", conversations: int) -> float:
    """The previous ETL: 5 threads over the synchronous client, 30 s timeout."""
    client = openai.OpenAI(api_key=API_KEY, base_url=server.base_url, timeout=30.0)

    def analyse(i: int):
        return client.chat.completions.parse(
            model="gpt-4o-mini",
            messages=[{"role": "system", "content": system_prompt()},
                      {"role": "user", "content": f"[10/11 10:00] Contato: qual o valor do plano? ({i})"}],
            response_format=LeadAnswer,
        )

    started = time.perf_counter()
    with ThreadPoolExecutor(5) as pool:
        list(pool.map(analyse, range(conversations)))
    return conversations / (time.perf_counter() - started)


class ServerProcess:
    """The bundled server in its own process, as a real endpoint would be: the client's CPU is
    the pipeline's alone."""

    def __init__(self, *args: str):
        self.process = subprocess.Popen([sys.executable, "-m", "allpfit_etl.fake_openai", "--port", "0", *args],
                                        stdout=subprocess.PIPE, text=True)
        self.base_url = self.process.stdout.readline().strip().removeprefix("listening on ")
        self.root = self.base_url.removesuffix("/v1")

    def stats(self) -> dict:
        return requests.get(f"{self.root}/_stats", timeout=10).json()

    def configure(self, **changes) -> None:
        requests.post(f"{self.root}/_config", json=changes, timeout=10).raise_for_status()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate-limited", type=int, default=3000)
    parser.add_argument("--unlimited", type=int, default=5000)
    parser.add_argument("--old-design", type=int, default=100)
    parser.add_argument("--rpm", type=int, default=3000)
    args = parser.parse_args()
    limit_per_s = args.rpm / 60

    with ServerProcess("--latency", "3", "--latency-jitter", "1", "--rpm", str(args.rpm)) as server:
        limited = run_pipeline(args.rate_limited, server, args.rpm, max_concurrency=260)
        rate_limited_429 = server.stats()["rate_limited"]
        server.configure(rpm=0)
        old_rate = old_design(server, args.old_design)

    with ServerProcess("--latency", "0.2") as server:
        unlimited = run_pipeline(args.unlimited, server, 0, max_concurrency=200)

    print(f"1. rate-limited: {args.rate_limited} conversations, server 3 s ± 1 s latency, {args.rpm} RPM enforced")
    print(f"   analysis step:     {limited['analysis_rate']:.1f} conversations/s = "
          f"{100 * limited['analysis_rate'] / limit_per_s:.0f} % of the limit ({limit_per_s:.0f}/s); target ≥ 90 %")
    print(f"   end to end:        {limited['loaded'] / limited['wall']:.1f} conversations/s "
          f"({limited['wall']:.1f} s wall, {limited['loaded']} loaded, {limited['failures']} failed, "
          f"{rate_limited_429} answered 429)")
    print(f"   old design:        {old_rate:.2f} conversations/s (ThreadPoolExecutor(5), {args.old_design} conversations)")
    print(f"   speed-up:          {limited['analysis_rate'] / old_rate:.0f}×")
    print(f"2. unlimited: {args.unlimited} conversations, server 0.2 s latency")
    print(f"   end to end:        {unlimited['loaded'] / unlimited['wall']:.0f} conversations/s "
          f"({unlimited['wall']:.1f} s wall; analysis step {unlimited['analysis_rate']:.0f}/s); target ≥ 200/s")
    print(f"3. peak RSS:          {peak_rss_mib():.0f} MiB (target ≤ 1024 MiB)")


if __name__ == "__main__":
    main()
