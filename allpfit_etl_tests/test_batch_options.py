"""``allpfit-etl batches --wait`` prices what it ingests with the ``openai`` resource's prices and
exchange rate (real CLI process, real PostgreSQL, real HTTP to the bundled server's Batch API);
the real-time budget estimate counts each transcript at most ``max_prompt_tokens``."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from allpfit_etl.analysis.budget import estimate_chunk_cost_brl
from allpfit_etl.analysis.interface import ConversationInput
from allpfit_etl.analysis.pricing import DEFAULT_PRICES
from allpfit_etl.tenants.registry import TenantFeatures
from allpfit_etl_tests.worlds import API_KEY, DAY, build_world

PRICES = {"gpt-4o-mini": {"input": 2.0, "output": 4.0}}
WAIT_WITH_RESOURCE = (
    "import json, sys; from allpfit_etl.analysis.openai_resource import LeadAnalysisOpenAI; "
    "from allpfit_etl.cli.batches import wait_and_ingest; from allpfit_etl.cli.main import analytics_engine; "
    "openai = LeadAnalysisOpenAI(api_key=sys.argv[1], base_url=sys.argv[2], price_overrides=json.loads(sys.argv[3]), "
    "usd_brl=float(sys.argv[4])); "
    "sys.exit(wait_and_ingest(analytics_engine(), openai=openai, interval_s=0.2, timeout_s=120))"
)


def env_of(world, server, tmp_path) -> dict:
    env = world.cli_env(server, tmp_path)
    env.pop("OPENAI_PRICES", None)
    return env


def submit_batch(world, server, tmp_path) -> None:
    """``allpfit-etl run --batch``: the conversations go to one batch (and the CLI's instance knows the tenant)."""
    run = subprocess.run([sys.executable, "-m", "allpfit_etl.cli.main", "run", "--tenant", "gym", "--from", DAY.isoformat(),
                          "--batch"], env=env_of(world, server, tmp_path), capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    assert world.scalar("SELECT COUNT(*) FROM llm_batches") == 1


def ledger_cost(world, server) -> tuple[float, float, float]:
    stats = server.batches.stats()
    half = (stats["prompt_tokens"] * PRICES["gpt-4o-mini"]["input"]
            + stats["completion_tokens"] * PRICES["gpt-4o-mini"]["output"]) / 2 / 1_000_000
    usd = world.scalar("SELECT SUM(cost_usd) FROM llm_usage WHERE mode = 'batch'")
    brl = world.scalar("SELECT SUM(cost_brl) FROM llm_usage WHERE mode = 'batch'")
    return half, usd, brl


def test_batches_wait_uses_the_resources_price_overrides_and_exchange_rate(make_pg_database, server, tmp_path):
    world = build_world(make_pg_database, 12, TenantFeatures(use_openai=True))
    submit_batch(world, server, tmp_path)
    done = subprocess.run([sys.executable, "-c", WAIT_WITH_RESOURCE, API_KEY, server.base_url, json.dumps(PRICES), "6.25"],
                          env=env_of(world, server, tmp_path), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "loaded 1 partition(s)" in done.stdout
    half, usd, brl = ledger_cost(world, server)
    assert usd == pytest.approx(half, rel=1e-9) and half > 0
    assert brl == pytest.approx(half * 6.25, rel=1e-9)
    assert world.scalar("SELECT COUNT(*) FROM conversations_analytics WHERE analyzer = 'openai'") == 12


def test_the_cli_batches_wait_takes_prices_from_the_code_locations_resource(make_pg_database, server, tmp_path):
    """The CLI's own resource: OPENAI_PRICES reaches it as it reaches the runs' (it used fixed options)."""
    world = build_world(make_pg_database, 12, TenantFeatures(use_openai=True))
    submit_batch(world, server, tmp_path)
    env = {**env_of(world, server, tmp_path), "OPENAI_PRICES": json.dumps(PRICES)}
    done = subprocess.run([sys.executable, "-m", "allpfit_etl.cli.main", "batches", "--wait", "--interval", "0.2",
                           "--timeout", "120"], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    half, usd, brl = ledger_cost(world, server)
    assert usd == pytest.approx(half, rel=1e-9) and brl == pytest.approx(half * 5.40, rel=1e-9)


def test_the_real_time_estimate_counts_a_transcript_at_most_max_prompt_tokens():
    long = [ConversationInput(1, 1, "h", "[10/11 10:00] Contato: " + "quero saber o valor do plano " * 4000, "Ana")]
    price = DEFAULT_PRICES["gpt-4o-mini"]
    capped = estimate_chunk_cost_brl(long, price=price, usd_brl=5.40, max_prompt_tokens=1000)
    uncapped = estimate_chunk_cost_brl(long, price=price, usd_brl=5.40, max_prompt_tokens=100_000)
    assert capped < uncapped / 10
