"""The account's rate limit at default settings, through `allpfit-etl run` (real CLI processes,
real Dagster, real PostgreSQL, real HTTP to the bundled server enforcing the limit): learned
from the server's headers, shared by two tenants' runs at once, no 429 storm on a tier-1 account."""

from __future__ import annotations

import subprocess
import sys

import pytest
import sqlalchemy as sa

from allpfit_etl.tenants.registry import TenantFeatures
from allpfit_etl_tests.worlds import DAY, empty_world

API_KEY = "sk-shared"


@pytest.fixture
def world(make_pg_database):
    return empty_world(make_pg_database)


def start_run(world, server, home, slug: str) -> subprocess.Popen:
    """Each run on its own Dagster instance, as on two machines: only the analytics database is shared
    (and two first-time SQLite instances in one folder would race to create their schema)."""
    command = [sys.executable, "-m", "allpfit_etl.cli.main", "run", "--tenant", slug, "--from", DAY.isoformat()]
    env = world.cli_env(server, home / slug, API_KEY)
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(process: subprocess.Popen) -> None:
    out, err = process.communicate(timeout=600)
    assert process.returncode == 0, err[-3000:]


def test_two_tenants_runs_at_once_share_the_limit_without_a_429_storm(world, server, tmp_path):
    rpm, per_tenant = 1800, 300
    world.add_tenant("north", 1, per_tenant, TenantFeatures(use_openai=True))  # default features
    world.add_tenant("south", 2, per_tenant, TenantFeatures(use_openai=True))
    server.configure(rpm=rpm, latency_s=0.3, latency_jitter_s=0.1)

    runs = [start_run(world, server, tmp_path, "north"), start_run(world, server, tmp_path, "south")]
    for process in runs:
        finish(process)

    stats = server.stats()
    assert world.scalar("SELECT COUNT(*) FROM conversations_analytics WHERE analyzer = 'openai'") == 2 * per_tenant
    assert stats["billed_calls"] == 2 * per_tenant and server.prompts_billed_twice() == []
    assert stats["rate_limited"] <= 0.02 * stats["requests"], stats
    # Both runs sent at the same time (each under a live lease, so each at its share).
    with world.analytics.connect() as conn:
        spans = conn.execute(sa.text(
            "SELECT tenant_id, MIN(created_at) AS first, MAX(created_at) AS last FROM llm_usage"
            " WHERE status = 'ok' GROUP BY tenant_id ORDER BY tenant_id")).all()
    assert len(spans) == 2 and spans[0].first < spans[1].last and spans[1].first < spans[0].last
    window = (max(s.last for s in spans) - min(s.first for s in spans)).total_seconds()
    achieved = 2 * per_tenant / window
    print(f"two tenants together: {achieved:.1f} requests/s = {100 * achieved / (rpm / 60):.0f} % of the limit, {stats['rate_limited']} 429s")
    assert achieved >= 0.5 * rpm / 60  # loose: the ≥ 90 % figure is the benchmark's, on an idle machine
    assert world.scalar("SELECT COUNT(*) FROM openai_rate_leases") == 0  # every lease was given back


def test_a_tier_one_account_with_no_configured_limits_meets_no_429_storm(world, server, tmp_path):
    world.add_tenant("gym", 1, 150, TenantFeatures(use_openai=True))
    server.configure(rpm=500, latency_s=0.2)  # gpt-4o-mini at tier 1; the old per-model default said 5,000

    finish(start_run(world, server, tmp_path, "gym"))

    stats = server.stats()
    assert stats["billed_calls"] == 150
    assert stats["rate_limited"] <= 0.02 * stats["requests"], stats
    with world.analytics.connect() as conn:
        learned = conn.execute(sa.text("SELECT rpm, tpm FROM openai_account_limits")).one()
    assert (learned.rpm, learned.tpm) == (500, 0)  # stated by the server: requests only
