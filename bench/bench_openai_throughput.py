"""Benchmark: OpenAI analysis at the account's limit as users run it — `allpfit-etl init`,
`tenants add … --openai` (default features), `allpfit-etl run` — against the bundled
OpenAI-compatible server in its own process over real HTTP, with no setting a user would not have.

    python bench/bench_openai_throughput.py [--rate-limited 6000] [--rpm 3000] [--old-design 100]
                                            [--fast 5000] [--fast-rpm 30000] [--only 1|2]

1. Server at 3 s ± 1 s latency enforcing 3,000 RPM; 6,000 conversations in one tenant-day.
   Target ≥ 45 conversations/s (90 % of the limit). Then the old design (ThreadPoolExecutor(5)
   over the sync client, 30 s timeout) on 100 conversations of the same server, and the ratio.
2. Server at 0.2 s stating (and enforcing) 30,000 RPM in its headers; 5,000 conversations.
   Target ≥ 300 conversations/s end to end.
3. Peak RSS of every `allpfit-etl run` process. Target ≤ 1 GiB.

"analysis" is answers stored per second between the first request and the last answer; "the
run" is conversations over the Dagster run (extract, pending filter, analysis, load, checks);
"end to end" is conversations over the whole `allpfit-etl run` process (Python and Dagster
start-up included).
"""

from __future__ import annotations

import argparse
import datetime as dt
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor


import openai
import sqlalchemy as sa

from allpfit_devtools.openai_process import API_KEY, ServerProcess, user_environment
from allpfit_devtools.bench import dagster_run_seconds, run_cli, seed_in_subprocess, throwaway_databases
from allpfit_etl.analysis.structured_output import LeadAnswer
from allpfit_etl.analysis.prompts import system_prompt

DAY = dt.date(2025, 11, 10)
def analysis_window(analytics_url: str) -> tuple[int, float]:
    """(OpenAI answers stored, seconds from the first request to the last answer stored).

    Each conversation also gets its free regex answer (the agreement figures need both): not counted."""
    engine = sa.create_engine(analytics_url)
    with engine.connect() as conn:
        first = conn.execute(sa.text("SELECT MIN(created_at) FROM llm_usage")).scalar_one()
        count, last = conn.execute(sa.text(
            "SELECT COUNT(*), MAX(analyzed_at) FROM conversation_analyses WHERE analyzer = 'openai'")).one()
    engine.dispose()
    return int(count), (last - first).total_seconds() if first and last else float("nan")


def tenant_day_run(conversations: int, server: ServerProcess) -> dict:
    """One tenant added as the README says, `conversations` in one day, one `allpfit-etl run`."""
    with throwaway_databases("chatwoot", "analytics") as (chatwoot_url, analytics_url), \
            tempfile.TemporaryDirectory() as home:
        seed_in_subprocess(chatwoot_url, account_id=1, day=DAY.isoformat(), conversations=conversations, messages=8)
        env = user_environment(chatwoot_url, analytics_url, server.base_url, home)
        run_cli(env, "init")
        run_cli(env, "tenants", "add", "bench", "--name", "Bench Gym", "--account-id", "1", "--openai")
        before = server.stats()
        wall, summary, rss = run_cli(env, "run", "--tenant", "bench", "--from", DAY.isoformat())
        summary = summary.strip()
        after = server.stats()
        answers, seconds = analysis_window(analytics_url)
        run_seconds, steps = dagster_run_seconds(home)
    return {"steps": steps,
        "wall": wall, "rss": rss, "summary": summary, "answers": answers, "analysis_rate": answers / seconds,
        "end_to_end": conversations / wall, "run_rate": conversations / run_seconds, "run_seconds": run_seconds, "requests": after["requests"] - before["requests"],
        "rate_limited": after["rate_limited"] - before["rate_limited"],
        "max_in_flight": after["max_in_flight"],
    }


def old_design(server: ServerProcess, conversations: int) -> float:
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


def report(label: str, figures: dict, limit_per_s: float, conversations: int) -> None:
    print(f"{label}")
    print(f"   analysis:    {figures['analysis_rate']:.1f} conversations/s = "
          f"{100 * figures['analysis_rate'] / limit_per_s:.0f} % of the limit ({limit_per_s:.0f}/s)")
    print(f"   the run:     {figures['run_rate']:.1f} conversations/s ({figures['run_seconds']:.1f} s from the Dagster "
          f"run's start to its end: extract, pending, analysis, load, checks)")
    print(f"   steps (s):   {figures['steps']}")
    print(f"   end to end:  {figures['end_to_end']:.1f} conversations/s ({figures['wall']:.1f} s wall of the whole "
          f"`allpfit-etl run` process for {conversations} conversations, {figures['answers']} answers stored; "
          f"{figures['wall'] - figures['run_seconds']:.1f} s of it outside the run: Python start-up, imports, "
          f"the instance, the summary, exit)")
    share = 100 * figures["rate_limited"] / max(1, figures["requests"])
    print(f"   requests:    {figures['requests']}, {figures['rate_limited']} answered 429 ({share:.2f} %), "
          f"at most {figures['max_in_flight']} in flight at the server")
    print(f"   peak RSS:    {figures['rss']:.0f} MiB (target ≤ 1024 MiB)")
    print(f"   CLI:         {figures['summary']}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate-limited", type=int, default=6000)
    parser.add_argument("--rpm", type=int, default=3000)
    parser.add_argument("--old-design", type=int, default=100)
    parser.add_argument("--fast", type=int, default=5000)
    parser.add_argument("--fast-rpm", type=int, default=30000)
    parser.add_argument("--only", type=int, choices=(1, 2), help="run only benchmark 1 or 2")
    args = parser.parse_args()
    if args.only != 2:
        rate_limited(args)
    if args.only != 1:
        fast(args)


def rate_limited(args) -> None:

    with ServerProcess("--latency", "3", "--latency-jitter", "1", "--rpm", str(args.rpm)) as server:
        limited = tenant_day_run(args.rate_limited, server)
        server.configure(rpm=0)
        old_rate = old_design(server, args.old_design) if args.old_design else None
    report(f"1. `allpfit-etl run`, default features: {args.rate_limited} conversations in one tenant-day, server "
           f"3 s ± 1 s, {args.rpm} RPM enforced (target ≥ {0.9 * args.rpm / 60:.0f}/s)",
           limited, args.rpm / 60, args.rate_limited)
    if old_rate is None:  # --old-design 0
        return
    print(f"   old design:  {old_rate:.2f} conversations/s (ThreadPoolExecutor(5), {args.old_design} conversations)")
    print(f"   speed-up:    {limited['end_to_end'] / old_rate:.0f}× end to end, "
          f"{limited['analysis_rate'] / old_rate:.0f}× analysis")


def fast(args) -> None:
    with ServerProcess("--latency", "0.2", "--rpm", str(args.fast_rpm)) as server:
        fast = tenant_day_run(args.fast, server)
    report(f"2. `allpfit-etl run`, default features: {args.fast} conversations, server 0.2 s stating "
           f"{args.fast_rpm} RPM (target ≥ 300/s end to end)", fast, args.fast_rpm / 60, args.fast)


if __name__ == "__main__":
    main()
