"""``allpfit-etl compare``: the agreement table, the projected cost and the clearest
disagreements of a tenant run through Dagster; one clear line and exit 2 for each bad input;
a clear line and exit 0 when there is nothing to compare."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import sqlalchemy as sa

from allpfit_etl.cli.main import main
from allpfit_etl.tenants.registry import TenantFeatures, add_tenant
from allpfit_etl_tests.test_monitoring_pipeline import (  # noqa: F401  (fixtures)
    analytics_world, materialize, report_path, seeded_chatwoot,
)


@pytest.fixture
def compared(make_pg_database, server, instance, monkeypatch):
    world = analytics_world(make_pg_database, server, seeded_chatwoot(make_pg_database, 80),
                            TenantFeatures(shadow_openai_sample=0.5, chunk_size=40, monthly_budget_brl=3.0))
    materialize(world, instance)
    add_tenant(world["analytics"], "quiet", "Quiet Gym", 9, TenantFeatures())
    monkeypatch.setenv("ANALYTICS_DATABASE_URL", world["resources"]["analytics"].url)
    return world


def run_cli(capsys, *args) -> tuple[int, str, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_compare_prints_the_table_the_cost_and_the_clearest_disagreements(compared, capsys):
    with compared["analytics"].connect() as conn:
        pairs = conn.exec_driver_sql("SELECT COUNT(*) FROM conversation_analyses WHERE analyzer = 'openai'").scalar_one()
        disagreements = conn.exec_driver_sql("SELECT COUNT(*) FROM analyzer_disagreements").scalar_one()
    code, out, err = run_cli(capsys, "compare", "gym", "--month", "2025-11")
    assert code == 0, err
    assert "Gym (gym) · 2025-11 · regex, OpenAI shadow sample 50%" in out
    assert "| agreement |" in out and "| Cohen's kappa |" in out and f"compared: {pairs} " in out
    assert "R$" in out and "of R$ 3.00 budget" in out and "month-end projection" in out
    assert f"projected monthly cost of switching to OpenAI (gpt-4o-mini)" in out and "× 80 conversations in 2025-11" in out
    shown = [line for line in out.splitlines() if line.startswith("  #")]
    assert len(shown) == min(5, disagreements) and "regex: lead=" in shown[0] and "OpenAI: lead=" in shown[0]
    # the default month is the latest one with something compared
    assert run_cli(capsys, "compare", "gym")[1].splitlines()[0] == out.splitlines()[0]


def test_compare_with_nothing_to_compare_says_so_and_exits_0(compared, capsys):
    code, out, _ = run_cli(capsys, "compare", "quiet")
    assert code == 0 and "nothing to compare yet" in out and "shadow_openai_sample=0.1" in out
    code, out, _ = run_cli(capsys, "compare", "gym", "--month", "2025-03")
    assert code == 0 and "nothing to compare yet: no conversation of 2025-03" in out


BAD_INPUT = [
    (["compare", "nope"], "unknown tenant 'nope'"),
    (["compare", "gym", "--month", "2025-13"], "bad --month '2025-13'"),
    (["compare", "gym", "--month", "nov"], "bad --month 'nov'"),
    (["compare", "gym", "--month", "2025-11-01"], "bad --month '2025-11-01'"),
]


def test_compare_bad_input_is_one_line_and_exit_2(compared, capsys):
    for args, message in BAD_INPUT:  # one materialized world for all of them
        code, out, err = run_cli(capsys, *args)
        assert code == 2 and out == "", args
        assert err.count("\n") == 1 and message in err, (args, err)


def test_compare_in_a_subprocess_on_a_schema_from_before_monitoring(tmp_path):
    env = {**os.environ, "ALLPFIT_HOME": str(tmp_path)}
    env.pop("ANALYTICS_DATABASE_URL", None)
    command = [sys.executable, "-m", "allpfit_etl.cli.main"]
    assert subprocess.run([*command, "init"], env=env, capture_output=True, timeout=120).returncode == 0
    with sa.create_engine(f"sqlite:///{tmp_path / 'analytics.db'}").begin() as conn:
        conn.execute(sa.text("DROP TABLE analyzer_agreement"))
    result = subprocess.run([*command, "compare", "gym"], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and result.stderr.strip() == (
        "error: analytics schema predates monitoring: run `allpfit-etl init` to upgrade it")
