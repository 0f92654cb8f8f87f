"""The ``allpfit-etl`` command line: the demo end to end in a subprocess, and one clear line
with exit status 2 for every kind of bad input, with nothing already stored changed."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import sqlalchemy as sa

from allpfit_etl.cli.main import main
from allpfit_etl.db import get_engine


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("ALLPFIT_HOME", str(tmp_path))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    monkeypatch.delenv("CHATWOOT_DATABASE_URL", raising=False)
    monkeypatch.delenv("ANALYTICS_DATABASE_URL", raising=False)
    return tmp_path


def run_cli(capsys, *args) -> tuple[int, str, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_demo_runs_end_to_end_in_a_subprocess_and_a_rerun_skips_everything(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("CHATWOOT_DATABASE_URL", "ANALYTICS_DATABASE_URL", "DAGSTER_HOME")}
    env["ALLPFIT_HOME"] = str(tmp_path)
    command = [sys.executable, "-m", "allpfit_etl.cli.main", "demo"]
    first = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stderr[-3000:]
    assert "4 run(s)" in first.stdout and "dagster dev" in first.stdout

    analytics = sa.create_engine(f"sqlite:///{tmp_path / 'analytics.db'}")
    with analytics.connect() as conn:
        loaded = conn.execute(sa.text("SELECT COUNT(*) FROM conversations_analytics")).scalar_one()
        per_tenant = dict(conn.execute(sa.text(
            "SELECT t.slug, COUNT(*) FROM conversations_analytics a JOIN tenant_configs t USING (tenant_id) GROUP BY t.slug"
        )).all())
        nul_rows = conn.execute(sa.text("SELECT COUNT(*) FROM conversations_analytics WHERE instr(message_compiled, char(0)) > 0")).scalar_one()
    assert loaded > 2000 and set(per_tenant) == {"allpfit", "cdt_mossoro", "investbem", "cdt_jp_sul"}
    assert f"{loaded} conversations, {loaded} analysed" in first.stdout
    assert nul_rows == 0

    second = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert second.returncode == 0, second.stderr[-3000:]
    assert f"{loaded} conversations, 0 analysed, {loaded} skipped" in second.stdout


def test_init_is_safe_to_rerun_and_tenants_commands_work(home, capsys):
    assert run_cli(capsys, "init")[0] == 0
    code, out, _ = run_cli(capsys, "init")
    assert code == 0 and "nothing to apply" in out
    assert run_cli(capsys, "tenants", "add", "allpfit", "--name", "AllpFit", "--account-id", "1")[0] == 0
    code, out, _ = run_cli(capsys, "tenants", "set", "allpfit", "use_openai=true", "chunk_size=25", "monthly_budget_brl=50")
    assert code == 0 and "use_openai=True" in out and "chunk_size=25" in out
    code, out, _ = run_cli(capsys, "tenants", "list")
    assert "allpfit" in out and "openai:gpt-4o-mini" in out and "budget_brl=50.0" in out
    assert run_cli(capsys, "tenants", "disable", "allpfit")[0] == 0
    assert "disabled" in run_cli(capsys, "tenants", "list")[1]


def tenant_snapshot(home):
    engine = get_engine(f"sqlite:///{home / 'analytics.db'}")
    with engine.connect() as conn:
        return conn.execute(sa.text("SELECT * FROM tenant_configs ORDER BY tenant_id")).all()


@pytest.mark.parametrize(
    "args, message",
    [
        (["run", "--tenant", "nope"], "unknown tenant 'nope'"),
        (["run", "--from", "2025-13-01"], "bad --from date '2025-13-01'"),
        (["run", "--from", "2025-11-10", "--to", "2025-11-01"], "bad date range"),
        (["run", "--from", "1999-01-01"], "partitions start on"),
        (["run", "--from", "2999-01-01"], "in the future"),
        (["tenants", "add", "All|Fit", "--name", "x", "--account-id", "9"], "bad tenant slug 'All|Fit'"),
        (["tenants", "add", "allpfit", "--name", "x", "--account-id", "9"], "already exists"),
        (["tenants", "set", "allpfit", "chunk_size=many"], "feature chunk_size takes an integer"),
        (["tenants", "set", "allpfit", "colour=blue"], "unknown tenant feature 'colour'"),
        (["tenants", "set", "allpfit", "chunk_size"], "expected KEY=VALUE"),
        (["tenants", "set", "ghost", "chunk_size=5"], "unknown tenant 'ghost'"),
        (["backfill", "ghost", "--from", "2025-11-01", "--to", "2025-11-02"], "unknown tenant 'ghost'"),
    ],
)
def test_bad_input_is_one_clear_line_and_changes_nothing(home, capsys, args, message):
    run_cli(capsys, "init")
    run_cli(capsys, "tenants", "add", "allpfit", "--name", "AllpFit", "--account-id", "1")
    before = tenant_snapshot(home)
    code, out, err = run_cli(capsys, *args)
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("error: ") and message in err
    assert tenant_snapshot(home) == before


def test_unreachable_database_is_one_line_without_the_password(home, capsys, monkeypatch):
    monkeypatch.setenv("ANALYTICS_DATABASE_URL", "postgresql://etl:s3cr3t@127.0.0.1:1/analytics")
    code, _, err = run_cli(capsys, "tenants", "list")
    assert code == 2 and err.count("\n") == 1
    assert "analytics database unreachable" in err and "s3cr3t" not in err


def test_malformed_database_url_is_one_line(home, capsys, monkeypatch):
    monkeypatch.setenv("CHATWOOT_DATABASE_URL", "not a url")
    run_cli(capsys, "init")
    run_cli(capsys, "tenants", "add", "allpfit", "--name", "AllpFit", "--account-id", "1")
    code, _, err = run_cli(capsys, "run", "--tenant", "allpfit")
    assert code == 2 and err.count("\n") == 1 and "malformed database URL" in err


def test_uninitialised_schema_is_reported(home, capsys):
    code, _, err = run_cli(capsys, "tenants", "list")
    assert code == 2 and "not initialised" in err and "allpfit-etl init" in err
