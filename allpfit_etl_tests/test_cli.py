"""The ``allpfit-etl`` command line: one clear line with exit status 2 for every kind of bad input,
with nothing already stored changed. (The demo end to end in a subprocess, run twice, is in
test_install.py, from the installed wheel.)"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys

import pytest
import sqlalchemy as sa

from allpfit_etl.cli.main import main
from allpfit_etl.db import get_engine
from allpfit_etl.demo.seed import create_chatwoot_schema
from allpfit_etl.tenants.registry import add_tenant
from allpfit_etl_tests.chatwoot_builder import ChatwootBuilder


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


def test_init_is_safe_to_rerun_and_tenants_commands_work(home, capsys):
    code, out, _ = run_cli(capsys, "init")
    # the Dagster instance's storage is created by init, not by the first run
    assert code == 0 and f"Dagster instance ready in {home / 'dagster_home'}" in out
    assert (home / "dagster_home" / "history" / "runs.db").exists()
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


@pytest.fixture
def chatwoot(home):
    """A reachable Chatwoot (SQLite, in the home) with accounts 1 and 2, one conversation on 2025-11-10."""
    engine = sa.create_engine(f"sqlite:///{home / 'chatwoot.db'}")
    create_chatwoot_schema(engine)
    cw = ChatwootBuilder(engine)
    gym, other = cw.account("AllpFit"), cw.account("InvestBem")
    conv = cw.conversation(gym, dt.datetime(2025, 11, 10, 13, 0), "Ana")
    cw.message(gym, conv, dt.datetime(2025, 11, 10, 13, 0), "qual o valor da mensalidade?")
    engine.dispose()
    return gym, other


@pytest.mark.parametrize(
    "args, message",
    [
        (["tenants", "add", "ghost", "--name", "Ghost", "--account-id", "999"], "Chatwoot account 999 does not exist"),
        (["tenants", "add", "copy", "--name", "Copy", "--account-id", "{gym}"], "Chatwoot account {gym} is already used by enabled tenant 'allpfit'"),
        (["tenants", "set", "investbem", "account={gym}"], "Chatwoot account {gym} is already used by enabled tenant 'allpfit'"),
        (["tenants", "set", "investbem", "account=999"], "Chatwoot account 999 does not exist"),
        (["tenants", "set", "investbem", "account=two"], "account takes a Chatwoot account id"),
    ],
)
def test_a_missing_or_taken_chatwoot_account_is_one_line_and_changes_nothing(home, chatwoot, capsys, args, message):
    gym, other = chatwoot
    run_cli(capsys, "init")
    assert run_cli(capsys, "tenants", "add", "allpfit", "--name", "AllpFit", "--account-id", str(gym))[0] == 0
    assert run_cli(capsys, "tenants", "add", "investbem", "--name", "InvestBem", "--account-id", str(other))[0] == 0
    before = tenant_snapshot(home)
    code, out, err = run_cli(capsys, *(a.format(gym=gym) for a in args))
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("error: ") and message.format(gym=gym) in err
    assert tenant_snapshot(home) == before


def test_a_disabled_tenants_account_can_be_reused_and_enabling_a_duplicate_is_refused(home, chatwoot, capsys):
    gym, _ = chatwoot
    run_cli(capsys, "init")
    run_cli(capsys, "tenants", "add", "old", "--name", "Old", "--account-id", str(gym))
    run_cli(capsys, "tenants", "disable", "old")
    assert run_cli(capsys, "tenants", "add", "allpfit", "--name", "AllpFit", "--account-id", str(gym))[0] == 0
    code, _, err = run_cli(capsys, "tenants", "enable", "old")
    assert code == 2 and "already used by enabled tenant 'allpfit'" in err


def test_a_failing_run_prints_one_line_naming_the_step_and_the_cause(home, chatwoot, capsys):
    run_cli(capsys, "init")
    engine = get_engine(f"sqlite:///{home / 'analytics.db'}")
    add_tenant(engine, "ghost", "Ghost Gym", 999)  # written around the CLI's validation, as an old row could be
    env = {k: v for k, v in os.environ.items() if k not in ("CHATWOOT_DATABASE_URL", "ANALYTICS_DATABASE_URL", "DAGSTER_HOME")}
    result = subprocess.run(
        [sys.executable, "-m", "allpfit_etl.cli.main", "run", "--tenant", "ghost", "--from", "2025-11-10", "--to", "2025-11-10"],
        env=env, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith("run failed: ghost: ConfigError: tenant 'ghost' points at Chatwoot account 999")
    assert result.stderr.rstrip().endswith("(step chatwoot_conversations)")
    assert "Traceback" not in result.stdout + result.stderr and "Stack Trace" not in result.stdout + result.stderr


def test_a_tenant_partition_without_a_tenant_configs_row_fails_its_first_step_with_one_line(home, chatwoot, capsys):
    import dagster as dg

    from allpfit_etl.definitions import defs
    from allpfit_etl.partitions import TENANT_PARTITIONS_NAME

    run_cli(capsys, "init")
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(TENANT_PARTITIONS_NAME, ["added_in_the_ui"])  # as the UI's "Add a partition"
        result = defs.resolve_job_def("lead_analysis").execute_in_process(
            partition_key="2025-11-10|added_in_the_ui", instance=instance, raise_on_error=False)
    assert not result.success
    failures = [e for e in result.all_events if e.is_step_failure]
    assert [e.step_key for e in failures] == ["chatwoot_conversations"]  # the first step; nothing else ran
    error = failures[0].step_failure_data.error
    assert "tenant partition 'added_in_the_ui' has no row in tenant_configs" in error.message
    assert error.message.count("\n") <= 1


def test_init_names_a_dagster_instance_it_cannot_open_in_one_line(home, capsys):
    (home / "dagster_home").mkdir()
    (home / "dagster_home" / "dagster.yaml").write_text("storage:\n  sqlite:\n    base_dir: /proc/no-such-dir\n")
    code, out, err = run_cli(capsys, "init")
    assert code == 2 and "analytics schema up to date" in out
    assert err.strip().splitlines() == [
        f"error: cannot open the Dagster instance in {home / 'dagster_home'}: "
        "FileNotFoundError: [Errno 2] No such file or directory: '/proc/no-such-dir'"]
