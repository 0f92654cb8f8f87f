"""The command line's remaining promises: ``status --watch`` refreshes in a terminal until Ctrl-C,
``tenants enable`` undoes ``disable``, ``tenants add`` takes every feature the README lists."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import signal
import struct
import subprocess
import sys
import termios
import time

import pytest
import sqlalchemy as sa

from allpfit_etl.db import get_engine
from allpfit_etl.schema import apply_migrations
from allpfit_etl.tenants.registry import add_tenant, parse_features
from allpfit_etl_tests.test_cli import home, run_cli  # noqa: F401  (home is a fixture)

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def tenant_row(home, slug: str):
    engine = get_engine(f"sqlite:///{home / 'analytics.db'}")
    with engine.connect() as conn:
        return conn.execute(sa.text("SELECT enabled, features FROM tenant_configs WHERE slug = :s"), {"s": slug}).one()


def test_tenants_add_takes_model_budget_chunk_size_and_concurrency(home, capsys):
    run_cli(capsys, "init")
    code, out, _ = run_cli(capsys, "tenants", "add", "cdt_natal", "--name", "CDT Natal", "--account-id", "7", "--openai",
                           "--model", "gpt-4o", "--budget-brl", "12.5", "--chunk-size", "10", "--max-concurrency", "5")
    assert code == 0 and "added tenant cdt_natal" in out
    features = parse_features(tenant_row(home, "cdt_natal").features)
    assert (features.use_openai, features.model, features.monthly_budget_brl, features.chunk_size, features.max_concurrency) \
        == (True, "gpt-4o", 12.5, 10, 5)
    line = next(line for line in run_cli(capsys, "tenants", "list")[1].splitlines() if line.startswith("cdt_natal"))
    assert "openai:gpt-4o " in line and "budget_brl=12.5" in line and "chunk_size=10" in line

    code, _, _ = run_cli(capsys, "tenants", "add", "plain", "--name", "Plain", "--account-id", "8")
    assert code == 0 and parse_features(tenant_row(home, "plain").features).monthly_budget_brl is None


@pytest.mark.parametrize("option, value, message", [
    ("--budget-brl", "-1", "monthly_budget_brl must be a non-negative number"),
    ("--chunk-size", "0", "chunk_size must be a positive integer"),
    ("--max-concurrency", "0", "max_concurrency must be a positive integer"),
    ("--model", " ", "model must be a non-empty string"),
])
def test_tenants_add_refuses_bad_features_in_one_line(home, capsys, option, value, message):
    run_cli(capsys, "init")
    code, _, err = run_cli(capsys, "tenants", "add", "gym", "--name", "Gym", "--account-id", "1", option, value)
    assert code == 2 and err.count("\n") == 1 and message in err
    assert "gym" not in run_cli(capsys, "tenants", "list")[1]


def test_tenants_enable_undoes_disable(home, capsys):
    run_cli(capsys, "init")
    run_cli(capsys, "tenants", "add", "allpfit", "--name", "AllpFit", "--account-id", "1")
    assert run_cli(capsys, "tenants", "disable", "allpfit")[0] == 0 and not tenant_row(home, "allpfit").enabled
    code, _, err = run_cli(capsys, "run", "--tenant", "allpfit")
    assert code == 2 and "tenant 'allpfit' is disabled (enable it with `allpfit-etl tenants enable`)" in err

    code, out, _ = run_cli(capsys, "tenants", "enable", "allpfit")
    assert code == 0 and out == "enabled tenant allpfit\n" and tenant_row(home, "allpfit").enabled
    assert re.search(r"^allpfit\s.*\benabled\b", run_cli(capsys, "tenants", "list")[1], re.M)
    code, _, err = run_cli(capsys, "tenants", "enable", "ghost")
    assert code == 2 and "unknown tenant 'ghost'" in err


def read_until(fd: int, buffer: list[str], text: str, timeout: float = 60) -> str:
    """Terminal output (escape codes removed) read from ``fd`` until ``text`` appears."""
    deadline = time.monotonic() + timeout
    while text not in "".join(buffer):
        assert time.monotonic() < deadline, f"{text!r} never appeared in:\n{''.join(buffer)[-3000:]}"
        ready, _, _ = select.select([fd], [], [], 0.5)
        if ready:
            try:
                chunk = os.read(fd, 65536)
            except OSError:  # the child closed the terminal
                chunk = b""
            assert chunk, f"the terminal closed before {text!r} appeared:\n{''.join(buffer)[-3000:]}"
            buffer.append(ANSI.sub("", chunk.decode(errors="replace")))
    return "".join(buffer)


def test_status_watch_refreshes_in_a_terminal_until_ctrl_c(make_pg_database, tmp_path):
    url = make_pg_database("status")
    engine = get_engine(url)
    apply_migrations(engine)
    add_tenant(engine, "allpfit", "AllpFit", 1)
    terminal, child_side = pty.openpty()
    fcntl.ioctl(child_side, termios.TIOCSWINSZ, struct.pack("HHHH", 60, 220, 0, 0))
    env = {**os.environ, "ANALYTICS_DATABASE_URL": url, "ALLPFIT_HOME": str(tmp_path), "TERM": "xterm-256color"}
    env.pop("COLUMNS", None)
    process = subprocess.Popen([sys.executable, "-m", "allpfit_etl.cli.main", "status", "--watch", "0.5"],
                               stdin=child_side, stdout=child_side, stderr=child_side, env=env, start_new_session=True)
    os.close(child_side)
    output: list[str] = []
    try:
        first = read_until(terminal, output, "allpfit ")
        assert "investbem" not in first
        add_tenant(engine, "investbem", "InvestBem", 3)  # the next refresh must show it
        read_until(terminal, output, "investbem", timeout=20)
        frames = "".join(output).count("allpfit-etl ·")
        assert frames >= 2
        process.send_signal(signal.SIGINT)  # Ctrl-C
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        os.close(terminal)
    assert "Traceback" not in "".join(output)
