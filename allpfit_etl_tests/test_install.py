"""What a new user installs: the wheel (not the checkout) in a fresh virtual environment with
today's resolved dependencies, run from an empty folder — the demo end to end in a subprocess, and
a re-run — with plain ``postgresql://`` URLs."""

from __future__ import annotations

import os
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest
import sqlalchemy as sa

REPO = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.xdist_group("installed_wheel")  # one worker builds and installs the wheel once


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """``pip wheel .`` then ``pip install <wheel>`` into a new venv; returns its bin folder."""
    root = tmp_path_factory.mktemp("install")
    wheel_dir = root / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheel_dir), str(REPO)],
        check=True, capture_output=True, text=True, timeout=300,
    )
    (wheel,) = wheel_dir.glob("allpfit_etl-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "allpfit_etl/sql/analytics/migrations/001_initial.postgresql.sql" in names
    assert "allpfit_etl/analysis/prompts/lead_analysis_v1.md" in names
    assert not [n for n in names if n.startswith(("allpfit_etl_tests/", "fake_openai/", "allpfit_devtools/"))]
    assert not [n for n in names if "fake_openai" in n]  # the fake server is a dev tool of its own

    env_dir = root / "venv"
    venv.EnvBuilder(with_pip=True, clear=True).create(env_dir)
    bin_dir = env_dir / "bin"
    result = subprocess.run(
        # --no-compile: byte-compiling all of site-packages is 40 % of the install's CPU, and the
        # modules the commands import are compiled (and cached) when first imported anyway.
        [str(bin_dir / "python"), "-m", "pip", "install", "-q", "--no-compile", str(wheel)],
        capture_output=True, text=True, timeout=900,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return bin_dir


def user_env(home: Path, bin_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("ALLPFIT_", "CHATWOOT_", "ANALYTICS_", "DAGSTER_", "OPENAI_", "PYTHON"))}
    env.update(ALLPFIT_HOME=str(home), PATH=f"{bin_dir}{os.pathsep}{env['PATH']}", **extra)
    return env


def cli(bin_dir: Path, cwd: Path, env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(bin_dir / "allpfit-etl"), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)


def test_the_wheel_runs_the_demo_from_an_empty_folder_and_a_rerun_skips_everything(installed, tmp_path):
    folder = tmp_path / "empty"
    folder.mkdir()
    where = subprocess.run([str(installed / "python"), "-c", "import allpfit_etl; print(allpfit_etl.__file__)"],
                           cwd=folder, capture_output=True, text=True, env=user_env(tmp_path / "h", installed))
    assert str(REPO) not in where.stdout and "site-packages" in where.stdout

    env = user_env(folder / ".allpfit", installed)
    first = cli(installed, folder, env, "demo")
    assert first.returncode == 0, first.stderr[-3000:]
    assert "4 run(s)" in first.stdout and "dagster dev" in first.stdout

    analytics = sa.create_engine(f"sqlite:///{folder / '.allpfit' / 'analytics.db'}")
    with analytics.connect() as conn:
        loaded = conn.execute(sa.text("SELECT COUNT(*) FROM conversations_analytics")).scalar_one()
        per_tenant = dict(conn.execute(sa.text(
            "SELECT t.slug, COUNT(*) FROM conversations_analytics a JOIN tenant_configs t USING (tenant_id) GROUP BY t.slug"
        )).all())
        nul_rows = conn.execute(sa.text("SELECT COUNT(*) FROM conversations_analytics WHERE instr(message_compiled, char(0)) > 0")).scalar_one()
        leads, visits = conn.execute(sa.text(
            "SELECT SUM(CASE WHEN is_lead THEN 1 ELSE 0 END), SUM(CASE WHEN visita_agendada THEN 1 ELSE 0 END)"
            " FROM conversations_analytics")).one()
    assert loaded > 2000 and set(per_tenant) == {"allpfit", "cdt_mossoro", "investbem", "cdt_jp_sul"}
    range_now = f"range now: {loaded} conversations, {loaded} analyzed, {leads} leads, {visits} visits, US$ 0.0000"
    assert f"this run:  {loaded} conversations extracted, {loaded} analyzed, 0 reused, 0 skipped" in first.stdout
    assert range_now in first.stdout
    assert nul_rows == 0

    # A re-run of a demo day (one day of one tenant: the whole demo again costs minutes of
    # Dagster bookkeeping and proves nothing more) analyses nothing and still reports the day.
    with analytics.connect() as conn:
        day, day_count, day_leads, day_visits = conn.execute(sa.text(
            "SELECT a.day, COUNT(*), SUM(CASE WHEN is_lead THEN 1 ELSE 0 END),"
            " SUM(CASE WHEN visita_agendada THEN 1 ELSE 0 END) FROM conversations_analytics a"
            " JOIN tenant_configs t USING (tenant_id) WHERE t.slug = 'allpfit'"
            " GROUP BY a.day ORDER BY a.day DESC LIMIT 1")).one()
    analytics.dispose()
    rerun = cli(installed, folder, env, "run", "--tenant", "allpfit", "--from", str(day), "--to", str(day))
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert f"this run:  {day_count} conversations extracted, 0 analyzed, 0 reused, {day_count} skipped" in rerun.stdout
    assert (f"range now: {day_count} conversations, {day_count} analyzed, {day_leads} leads, {day_visits} visits"
            in rerun.stdout)


def test_plain_postgresql_urls_through_init_tenants_run_and_status(installed, tmp_path, make_pg_database):
    chatwoot_url, analytics_url = make_pg_database("chatwoot"), make_pg_database("analytics")
    assert chatwoot_url.startswith("postgresql://") and analytics_url.startswith("postgresql://")
    env = user_env(tmp_path, installed, CHATWOOT_DATABASE_URL=chatwoot_url, ANALYTICS_DATABASE_URL=analytics_url)

    for args in (("seed-demo",), ("init",), ("tenants", "add", "allpfit", "--name", "AllpFit", "--account-id", "1"),
                 ("run", "--tenant", "allpfit", "--from", "2025-11-10", "--to", "2025-11-12"), ("status",)):
        result = cli(installed, tmp_path, env, *args)
        assert result.returncode == 0, f"{args}: {result.stdout[-1500:]} {result.stderr[-3000:]}"
        assert "Traceback" not in result.stderr
    with sa.create_engine(analytics_url).connect() as conn:
        loaded = conn.execute(sa.text("SELECT COUNT(*) FROM conversations_analytics")).scalar_one()
    assert loaded > 0

    unknown_driver = cli(installed, tmp_path, {**env, "ANALYTICS_DATABASE_URL": analytics_url.replace(
        "postgresql://", "postgresql+pg8000://")}, "status")
    assert unknown_driver.returncode == 2
    assert "pg8000" in unknown_driver.stderr and "Traceback" not in unknown_driver.stderr
    assert len(unknown_driver.stderr.strip().splitlines()) == 1
