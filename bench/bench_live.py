"""Benchmark: live operation replayed through the daemon — conversations written message by message
in real time (`allpfit-etl seed-demo --live`) while `dagster-daemon` runs with the repo's
`dagster.yaml` (PostgreSQL storage, QueuedRunCoordinator, one run per tenant) and its default
sensor intervals; tenants added as the README says with `--openai` and otherwise default features
(settle_minutes 10), against the bundled OpenAI-compatible server in its own process (1 s ± 0.5 s).
Everything runs from the installed package (the daemon's working directory is a fresh
DAGSTER_HOME, not the checkout).

    python bench/bench_live.py [--tenants 4] [--every 45] [--gap 25] [--messages 11] [--minutes 6]
                               [--timeout 1200]

Per tenant, a new conversation every --every seconds for --minutes minutes, each of --messages
messages --gap seconds apart (the contact first and last, the bot in between). After the traffic
it waits for every conversation's final answer (or --timeout seconds) and for the run queue to
drain, then prints:

- paid OpenAI calls per conversation (target ≤ 1.2) and prompt tokens paid ÷ the prompt tokens
  of one final analysis per conversation (target ≤ 1.2×);
- p50/p95 of the first answer (provisional or final) after a conversation's first message
  (target p95 ≤ 120 s), and of the final answer after its last message minus settle_minutes
  (target p95 ≤ 3 min);
- runs launched; the most runs QUEUED at once, per tenant (target ≤ 1) and overall;
- machine CPU seconds per conversation, from /proc/stat over the whole window from the first
  message to the drained queue, every process on the machine (target ≤ 13 s); the daemon's
  process tree (code server, run workers, steps) on its own beside it.

The full run at the defaults takes ~25 minutes: ~10 minutes of traffic (6 of new conversations,
then their last messages), 10 of settling, then the last runs.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

import sqlalchemy as sa

from allpfit_devtools.bench import ALLPFIT_ETL, run_cli, throwaway_databases
from allpfit_devtools.openai_process import ServerProcess, user_environment

from allpfit_devtools.deployment import DAGSTER_STORAGE_VARIABLES, dagster_storage_env

TIMEZONE = "America/Sao_Paulo"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


# --- CPU accounting -------------------------------------------------------------------------------

def machine_cpu_seconds() -> float:
    """Busy CPU time of the whole machine so far (user, nice, system, irq, softirq, steal)."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in fields[:8])
    return (user + nice + system + irq + softirq + steal) / CLOCK_TICKS


def _children() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    return children


def descendants(root: int) -> list[int]:
    children, found, todo = _children(), [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def tree_cpu_seconds(root: int) -> float:
    """CPU time of ``root`` and every process below it, the reaped ones included (their time is
    in their parent's cutime/cstime)."""
    total = 0
    for pid in descendants(root):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += sum(int(v) for v in fields[11:15])  # utime, stime, cutime, cstime
    return total / CLOCK_TICKS


def own_cpu_seconds(pid: int) -> float:
    """CPU time of one process alone (utime, stime)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def postgres_roots() -> list[int]:
    """The PostgreSQL postmasters on this machine (their backends, when they end, are in their cutime)."""
    roots = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and (entry / "comm").read_text().strip() == "postgres":
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                if Path(f"/proc/{ppid}/comm").read_text().strip() != "postgres":
                    roots.append(int(entry.name))
        except (OSError, ValueError, IndexError):
            continue
    return roots


def bench_cpu_seconds() -> float:
    """This process and its reaped children (the traffic writer, the CLI commands)."""
    import resource

    me, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + children.ru_utime + children.ru_stime


class CpuMeter:
    """CPU seconds since it was made: the machine, and the processes that are part of the bench."""

    def __init__(self, daemon_pid: int, server_pid: int):
        self.daemon_pid, self.server_pid = daemon_pid, server_pid
        self.start = self.sample()

    def sample(self) -> dict[str, float]:
        return {
            "machine": machine_cpu_seconds(),
            "daemon tree": tree_cpu_seconds(self.daemon_pid),
            "daemon process": own_cpu_seconds(self.daemon_pid),
            "PostgreSQL (all its databases)": sum(tree_cpu_seconds(pid) for pid in postgres_roots()),
            "OpenAI server": own_cpu_seconds(self.server_pid),
            "bench and traffic writer": bench_cpu_seconds(),
        }

    def since_start(self) -> dict[str, float]:
        now = self.sample()
        return {k: now[k] - self.start[k] for k in now}


# --- the daemon -----------------------------------------------------------------------------------

@contextlib.contextmanager
def daemon(env: dict, dagster_home: Path, log: Path):
    """`dagster-daemon run` in ``dagster_home`` (holding workspace.yaml); on exit it, then the code
    servers and run workers it started (they outlive it), are stopped."""
    with open(log, "w") as out:
        process = subprocess.Popen([str(Path(sys.executable).parent / "dagster-daemon"), "run", "-w", "workspace.yaml"], cwd=dagster_home, env=env,
                                   stdout=out, stderr=subprocess.STDOUT)
        try:
            yield process
        finally:
            started = [pid for pid in descendants(process.pid) if pid != process.pid]
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            for pid in started:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and any(Path(f"/proc/{pid}").exists() for pid in started):
                time.sleep(0.2)
            for pid in started:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)


def sensor_started(instance) -> bool:
    return any(s.instigator_name == "chatwoot_activity_sensor" and s.instigator_data and s.instigator_data.cursor
               for s in instance.all_instigator_state())


# --- watching -------------------------------------------------------------------------------------

def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


class Watcher:
    """Polled about every second: when each conversation's answers appeared, and the run queue."""

    def __init__(self, analytics: sa.Engine, instance):
        self.analytics, self.instance = analytics, instance
        self.first_answer: dict[tuple[int, int], dt.datetime] = {}
        self.answer_seen: dict[tuple[int, int, str, str], dt.datetime] = {}  # (tenant, conv, kind, hash) → when
        self.max_queued: Counter = Counter()
        self.max_queued_total = 0

    def poll(self) -> int:
        """Returns the runs not finished yet (queued, starting or started)."""
        import dagster as dg

        now = utc_now()
        with self.analytics.connect() as conn:
            rows = conn.execute(sa.text(
                "SELECT tenant_id, conversation_id, answer_kind, content_hash FROM conversations_analytics")).all()
        for r in rows:
            self.first_answer.setdefault((r.tenant_id, r.conversation_id), now)
            self.answer_seen.setdefault((r.tenant_id, r.conversation_id, r.answer_kind, r.content_hash), now)
        active = self.instance.get_runs(dg.RunsFilter(statuses=[
            dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING,
            dg.DagsterRunStatus.STARTED]))
        queued = Counter(r.tags.get("allpfit/tenant", "(monitoring refresh)") for r in active
                         if r.status == dg.DagsterRunStatus.QUEUED)
        for tenant, count in queued.items():
            self.max_queued[tenant] = max(self.max_queued[tenant], count)
        self.max_queued_total = max(self.max_queued_total, sum(queued.values()))
        return len(active)


def final_transcripts(chatwoot: sa.Engine, account_id: int, days) -> dict[int, str]:
    """conversation id → content hash of its whole transcript, compiled by the pipeline's extract."""
    from allpfit_etl.extract.chatwoot_source import extract_day

    found = {}
    for day in days:
        for batch in extract_day(chatwoot, tenant_id=0, account_id=account_id, day=day, timezone=TIMEZONE, workers=1):
            found.update({r["conversation_id"]: r["content_hash"] for r in batch})
    return found


def local_day(at: dt.datetime) -> dt.date:
    from zoneinfo import ZoneInfo

    return at.replace(tzinfo=dt.timezone.utc).astimezone(ZoneInfo(TIMEZONE)).date()


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    position = (len(ordered) - 1) * q
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def verdict(ok: bool) -> str:
    return "ok" if ok else "MISSED"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tenants", type=int, default=4)
    parser.add_argument("--every", type=float, default=45.0, help="seconds between new conversations of a tenant")
    parser.add_argument("--gap", type=float, default=25.0, help="seconds between two messages")
    parser.add_argument("--messages", type=int, default=11)
    parser.add_argument("--minutes", type=float, default=6.0, help="minutes of new conversations")
    parser.add_argument("--timeout", type=float, default=1200.0,
                        help="after the traffic, give up waiting for final answers and the queue after this long")
    args = parser.parse_args()
    accounts = list(range(1, args.tenants + 1))

    import dagster as dg

    from allpfit_etl.db import get_engine
    from allpfit_etl.demo.live import ensure_account
    from allpfit_etl.demo.seed import DEMO_TENANTS, create_chatwoot_schema
    from allpfit_etl.tenants.registry import list_tenants

    names = {t.account_id: t.name for t in DEMO_TENANTS}
    with ServerProcess("--latency", "1", "--latency-jitter", "0.5") as server, \
            throwaway_databases("dagster", "chatwoot", "analytics") as (dagster_url, chatwoot_url, analytics_url), \
            tempfile.TemporaryDirectory() as home:
        chatwoot, analytics = get_engine(chatwoot_url), get_engine(analytics_url)
        create_chatwoot_schema(chatwoot)
        for account in accounts:
            ensure_account(chatwoot, account, names.get(account, f"Academia {account}"))
        dagster_home = Path(home) / "dagster_home"
        dagster_home.mkdir()
        shutil.copy(REPO / "dagster.yaml", dagster_home / "dagster.yaml")
        shutil.copy(REPO / "workspace.yaml", dagster_home / "workspace.yaml")
        env = user_environment(chatwoot_url, analytics_url, server.base_url, home)
        env.update(DAGSTER_HOME=str(dagster_home), **dagster_storage_env(dagster_url))
        run_cli(env, "init")
        for account in accounts:
            run_cli(env, "tenants", "add", f"gym{account}", "--name", names.get(account, f"Academia {account}"),
                    "--account-id", str(account), "--openai")
        tenants = {t.tenant_id: t for t in list_tenants(analytics)}
        account_of = {t.tenant_id: t.chatwoot_account_id for t in tenants.values()}
        settle = {t.tenant_id: t.features.settle_minutes for t in tenants.values()}
        os.environ.update({k: env[k] for k in ("DAGSTER_HOME", *DAGSTER_STORAGE_VARIABLES)})
        record_path = Path(home) / "live.jsonl"
        log = Path(home) / "daemon.log"

        with daemon(env, dagster_home, log) as process, dg.DagsterInstance.get() as instance:
            deadline = time.monotonic() + 300
            while not sensor_started(instance):
                if time.monotonic() > deadline:
                    raise SystemExit("the activity sensor did not tick within 5 minutes:\n" + log.read_text()[-3000:])
                time.sleep(1)
            watcher = Watcher(analytics, instance)
            meter, wall0 = CpuMeter(process.pid, server.process.pid), time.monotonic()
            live = subprocess.Popen(
                [ALLPFIT_ETL, "seed-demo", "--live", str(args.minutes), "--every", str(args.every), "--gap", str(args.gap),
                 "--messages", str(args.messages), "--record", str(record_path),
                 *[a for account in accounts for a in ("--account", str(account))]],
                env=env, stdout=subprocess.DEVNULL, stderr=open(Path(home) / "live.err", "w"))
            while live.poll() is None:
                watcher.poll()
                time.sleep(1)
            if live.returncode != 0:
                raise SystemExit(f"seed-demo --live exited {live.returncode}: {(Path(home) / 'live.err').read_text()[-2000:]}")
            traffic_end = time.monotonic()
            records = [json.loads(line) for line in record_path.read_text().splitlines()]
            tenant_of = {account_of[t]: t for t in account_of}
            finals = {}
            for account in accounts:
                days = {local_day(dt.datetime.fromisoformat(r["first_message_at"])) for r in records if r["account_id"] == account}
                for conversation, content_hash in final_transcripts(chatwoot, account, days).items():
                    finals[(tenant_of[account], conversation)] = content_hash
            keys = [(tenant_of[r["account_id"]], r["conversation_id"]) for r in records]

            give_up = traffic_end + args.timeout
            active = watcher.poll()
            while time.monotonic() < give_up:
                missing = [k for k in keys if (*k, "final", finals[k]) not in watcher.answer_seen]
                if not missing and active == 0:
                    break
                time.sleep(1)
                active = watcher.poll()
            wall = time.monotonic() - wall0
            used = meter.since_start()
            cpu = used["machine"]
            runs = instance.get_runs(dg.RunsFilter(job_name="lead_analysis"))
            refreshes = instance.get_runs(dg.RunsFilter(tags={"allpfit/monitoring": "refresh"}))
            failed = [r for r in runs + refreshes if r.status == dg.DagsterRunStatus.FAILURE]

        with analytics.connect() as conn:
            paid = conn.execute(sa.text(
                "SELECT tenant_id, conversation_id, COUNT(*) AS calls, SUM(prompt_tokens) AS tokens FROM llm_usage"
                " WHERE prompt_tokens > 0 GROUP BY tenant_id, conversation_id")).all()
            final_tokens = conn.execute(sa.text(
                "SELECT tenant_id, conversation_id, content_hash, prompt_tokens FROM conversation_analyses"
                " WHERE analyzer = 'openai'")).all()
        stats = server.stats()

    conversations = len(records)
    missing = [k for k in keys if (*k, "final", finals[k]) not in watcher.answer_seen]
    calls = {(r.tenant_id, r.conversation_id): r.calls for r in paid}
    tokens = {(r.tenant_id, r.conversation_id): r.tokens for r in paid}
    one_final = {(r.tenant_id, r.conversation_id): r.prompt_tokens for r in final_tokens
                 if finals.get((r.tenant_id, r.conversation_id)) == r.content_hash}
    paid_calls = sum(calls.get(k, 0) for k in keys)
    token_ratio = sum(tokens.get(k, 0) for k in keys) / max(1, sum(one_final.get(k, 0) for k in keys))
    first_latency, final_latency = [], []
    for r, key in zip(records, keys):
        first_at, last_at = (dt.datetime.fromisoformat(r[k]) for k in ("first_message_at", "last_message_at"))
        if key in watcher.first_answer:
            first_latency.append((watcher.first_answer[key] - first_at).total_seconds())
        seen = watcher.answer_seen.get((*key, "final", finals[key]))
        if seen is not None:
            final_latency.append((seen - last_at).total_seconds() - settle[key[0]] * 60)
    settle_text = "/".join(sorted({f"{v:g}" for v in settle.values()}))
    triggers = Counter(r.tags.get("allpfit/trigger", "?") for r in runs)

    print(f"live replay through the daemon: {args.tenants} OpenAI tenants (default features, settle_minutes "
          f"{settle_text}), a conversation every {args.every:g} s per tenant for {args.minutes:g} min, "
          f"{args.messages} messages {args.gap:g} s apart; server 1 s ± 0.5 s")
    print(f"   traffic:     {conversations} conversations in {traffic_end - wall0:.0f} s; "
          f"{conversations - len(missing)} with their final answer, {wall:.0f} s from the first message to the drained queue")
    print(f"   paid calls:  {paid_calls / max(1, conversations):.2f} per conversation ({paid_calls} in the ledger, "
          f"{stats['billed_calls']} billed by the server); target ≤ 1.2 [{verdict(paid_calls <= 1.2 * conversations)}]")
    print(f"   tokens:      {token_ratio:.2f}× the prompt tokens of one final analysis per conversation; target ≤ 1.2× "
          f"[{verdict(token_ratio <= 1.2)}]")
    print(f"   first answer after the first message: p50 {percentile(first_latency, 0.5):.0f} s, "
          f"p95 {percentile(first_latency, 0.95):.0f} s ({len(first_latency)} answered); target p95 ≤ 120 s "
          f"[{verdict(len(first_latency) == conversations and percentile(first_latency, 0.95) <= 120)}]")
    print(f"   final answer after the last message − settle_minutes: p50 {percentile(final_latency, 0.5):.0f} s, "
          f"p95 {percentile(final_latency, 0.95):.0f} s; target p95 ≤ 180 s "
          f"[{verdict(not missing and percentile(final_latency, 0.95) <= 180)}]")
    print(f"   monitoring:  {len(refreshes)} refresh run(s) of the global monitoring (monitoring_refresh_sensor)")
    print(f"   runs:        {len(runs)} launched ({', '.join(f'{k} {v}' for k, v in sorted(triggers.items()))}), "
          f"{len(failed)} failed")
    per_tenant = ", ".join(f"{slug} {n}" for slug, n in sorted(watcher.max_queued.items()))
    print(f"   queued:      at most {max(watcher.max_queued.values(), default=0)} per tenant ({per_tenant or 'none seen'}), "
          f"{watcher.max_queued_total} overall; target ≤ 1 per tenant "
          f"[{verdict(max(watcher.max_queued.values(), default=0) <= 1)}]")
    print(f"   CPU:         {cpu / max(1, conversations):.1f} s per conversation, the whole machine over {wall:.0f} s "
          f"({cpu:.0f} s, {100 * cpu / wall / (os.cpu_count() or 1):.0f} % of {os.cpu_count()} cores); target ≤ 13 s "
          f"[{verdict(cpu <= 13 * conversations)}]")
    parts = dict(used)
    parts.pop("machine")
    daemon_only = parts.pop("daemon process")
    rest = cpu - sum(parts.values())
    print("                of which " + ", ".join(
        f"{name} {seconds:.0f} s ({seconds / max(1, conversations):.1f}/conversation)" for name, seconds in parts.items())
        + f"; the rest of the machine {rest:.0f} s. The daemon process itself {daemon_only:.0f} s; "
        f"{len(runs) / max(1, conversations):.1f} runs per conversation, "
        f"{(parts['daemon tree'] - daemon_only) / max(1, len(runs)):.1f} s of code server and run workers per run")
    if missing:
        print(f"   without their final answer: {missing[:10]}", file=sys.stderr)
    if failed:
        print(f"   failed runs: {[r.run_id for r in failed][:10]}", file=sys.stderr)


if __name__ == "__main__":
    main()
