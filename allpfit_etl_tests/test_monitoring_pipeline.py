"""Both answers through real Dagster materializations, real PostgreSQL and real HTTP to the bundled
OpenAI server: an OpenAI tenant keeps a regex answer beside each OpenAI one; a regex tenant's
shadow sample is the same ~20 % on every run, inside its budget; the monitoring tables agree
with the stored answers and the ledger."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import replace

import dagster as dg
import pytest
import sqlalchemy as sa

from allpfit_etl.analysis.openai_resource import LeadAnalysisOpenAI
from allpfit_etl.analysis.shadow import in_shadow_sample
from allpfit_etl.db import get_engine
from allpfit_etl.definitions import ASSETS
from allpfit_etl.demo.seed import create_chatwoot_schema, seed_bulk
from allpfit_etl.load.checks import ASSET_CHECKS
from allpfit_etl.monitoring.assets import MONITORING_ASSETS
from allpfit_etl.resources import AnalyticsDatabase, ChatwootDatabase
from allpfit_etl.schema import apply_migrations
from allpfit_etl.tenants.registry import TenantFeatures, add_tenant, update_features

DAY = dt.date(2025, 11, 10)
KEY = f"{DAY.isoformat()}|gym"
API_KEY = "sk-test-monitoring"


@pytest.fixture(autouse=True)
def report_path(tmp_path, monkeypatch):
    path = tmp_path / "report" / "lead_report.html"
    monkeypatch.setenv("ALLPFIT_REPORT_PATH", str(path))
    return path


def seeded_chatwoot(make_pg_database, conversations: int) -> str:
    url = make_pg_database("chatwoot")
    source = get_engine(url)
    create_chatwoot_schema(source)
    seed_bulk(source, account_id=1, day=DAY, conversations=conversations, messages_per_conversation=6)
    return url


def analytics_world(make_pg_database, server, chatwoot_url: str, features: TenantFeatures,
                    analytics_url: str | None = None) -> dict:
    analytics_url = analytics_url or make_pg_database("analytics")
    analytics = get_engine(analytics_url)
    apply_migrations(analytics)
    add_tenant(analytics, "gym", "Gym", 1, features)
    return {
        "analytics": analytics,
        "resources": {
            "chatwoot": ChatwootDatabase(url=chatwoot_url),
            "analytics": AnalyticsDatabase(url=analytics_url),
            "openai": LeadAnalysisOpenAI(api_key=API_KEY, base_url=server.base_url),
        },
    }


def materialize(world, instance) -> dict:
    result = dg.materialize(ASSETS + MONITORING_ASSETS + ASSET_CHECKS, partition_key=KEY, resources=world["resources"],
                            instance=instance, raise_on_error=False)
    assert result.success, [e.message for e in result.all_events if e.is_failure]
    return {e.asset_key.to_user_string(): {k: v.value for k, v in e.materialization.metadata.items()}
            for e in result.get_asset_materialization_events()}


def rows(world, query: str, **params):
    with world["analytics"].connect() as conn:
        return conn.execute(sa.text(query), params).all()


def answers_by_analyzer(world) -> dict[str, set[int]]:
    found: dict[str, set[int]] = {"regex": set(), "openai": set()}
    for conversation_id, analyzer in rows(world, "SELECT conversation_id, analyzer FROM conversation_analyses"):
        found[analyzer].add(int(conversation_id))
    return found


def independent_agreement(world) -> dict:
    """From the stored answers, without the monitoring code: counts, rates, kappa by the textbook formula."""
    answers = rows(world, """
        SELECT r.is_lead AS rl, o.is_lead AS ol, r.visita_agendada AS rv, o.visita_agendada AS ov,
               r.probabilidade_conversao AS rp, o.probabilidade_conversao AS op
        FROM conversation_analyses r JOIN conversation_analyses o
          ON o.conversation_id = r.conversation_id AND o.content_hash = r.content_hash AND o.analyzer = 'openai'
        WHERE r.analyzer = 'regex'""")
    n = len(answers)

    def kappa(pairs):
        po = sum(a == b for a, b in pairs) / n
        pa, pb = sum(a for a, _ in pairs) / n, sum(b for _, b in pairs) / n
        pe = pa * pb + (1 - pa) * (1 - pb)
        return None if pe == 1 else (po - pe) / (1 - pe)

    lead = [(a.rl, a.ol) for a in answers]
    visit = [(a.rv, a.ov) for a in answers]
    return {
        "compared": n,
        "is_lead_agreement": sum(a == b for a, b in lead) / n, "is_lead_kappa": kappa(lead),
        "visita_agreement": sum(a == b for a, b in visit) / n, "visita_kappa": kappa(visit),
        "probabilidade_mae": sum(abs(a.rp - a.op) for a in answers) / n,
        "matrix": Counter((a, b) for a, b in lead),
        "disagreements": sum(1 for a in answers if a.rl != a.ol or a.rv != a.ov or abs(a.rp - a.op) >= 2),
    }


def assert_spend_equals_ledger(world):
    by_table = rows(world, """
        SELECT SUM(calls), SUM(failed_calls), SUM(prompt_tokens), SUM(cached_tokens), SUM(completion_tokens),
               SUM(total_tokens), SUM(cost_usd), SUM(cost_brl) FROM llm_spend_daily""")[0]
    by_ledger = rows(world, """
        SELECT COUNT(*), SUM(CASE WHEN status <> 'ok' THEN 1 ELSE 0 END), SUM(prompt_tokens), SUM(cached_tokens),
               SUM(completion_tokens), SUM(total_tokens), SUM(cost_usd), SUM(cost_brl) FROM llm_usage""")[0]
    assert tuple(by_table[:6]) == tuple(by_ledger[:6])
    assert by_table[6] == pytest.approx(by_ledger[6], rel=1e-12) and by_table[7] == pytest.approx(by_ledger[7], rel=1e-12)


def test_openai_tenant_stores_both_answers_loads_openai_and_the_tables_match(make_pg_database, server, instance,
                                                                               report_path):
    world = analytics_world(make_pg_database, server, seeded_chatwoot(make_pg_database, 40),
                            TenantFeatures(use_openai=True, chunk_size=15))
    meta = materialize(world, instance)

    answers = answers_by_analyzer(world)
    assert len(answers["openai"]) == 40 and answers["regex"] == answers["openai"]
    assert rows(world, "SELECT analyzer, COUNT(*) FROM conversations_analytics GROUP BY analyzer") == [("openai", 40)]
    assert meta["conversation_analyses"]["openai.calls"] == server.stats()["billed_calls"] == 40  # regex costs nothing

    expected = independent_agreement(world)
    stored = rows(world, "SELECT * FROM analyzer_agreement")
    assert len(stored) == 1
    row = stored[0]._mapping
    assert row["month"] == dt.date(2025, 11, 1) and row["compared"] == 40
    for name in ("is_lead_agreement", "visita_agreement", "probabilidade_mae", "is_lead_kappa", "visita_kappa"):
        assert row[name] == pytest.approx(expected[name], abs=1e-12) if expected[name] is not None else row[name] is None
    assert (row["is_lead_true_true"], row["is_lead_true_false"], row["is_lead_false_true"], row["is_lead_false_false"]) == (
        expected["matrix"][(True, True)], expected["matrix"][(True, False)],
        expected["matrix"][(False, True)], expected["matrix"][(False, False)])
    assert row["disagreements"] == expected["disagreements"]
    assert len(rows(world, "SELECT 1 FROM analyzer_disagreements")) == expected["disagreements"]
    assert meta["analyzer_agreement"]["compared"] == 40 and "agreement" in meta["analyzer_agreement"]

    quality = {r.analyzer: r for r in rows(world, "SELECT * FROM analyzer_daily_kpis WHERE day = :d", d=DAY)}
    assert set(quality) == {"regex", "openai"} and quality["openai"].conversations == 40
    loaded = rows(world, "SELECT leads, visits_scheduled FROM tenant_daily_kpis WHERE day = :d", d=DAY)[0]
    assert (quality["openai"].leads, quality["openai"].visits_scheduled) == tuple(loaded)

    assert_spend_equals_ledger(world)
    spend = meta["llm_spend_daily"]
    ledger_brl = rows(world, "SELECT SUM(cost_brl) FROM llm_usage")[0][0]
    assert spend["month_to_date_brl"] == pytest.approx(ledger_brl, abs=1e-8)
    assert meta["lead_report"]["path"] == str(report_path) and report_path.stat().st_size > 10_000


def test_regex_tenant_shadow_sample_is_the_same_fifth_every_run_inside_the_budget(make_pg_database, server, instance):
    chatwoot_url = seeded_chatwoot(make_pg_database, 200)
    features = TenantFeatures(shadow_openai_sample=0.2, chunk_size=40, monthly_budget_brl=5.0)
    world = analytics_world(make_pg_database, server, chatwoot_url, replace(features, shadow_openai_sample=0.0))
    materialize(world, instance)
    assert server.stats()["billed_calls"] == 0
    # turned on after the history was analyzed: the sample covers those conversations too
    update_features(world["analytics"], "gym", shadow_openai_sample=0.2)
    meta = materialize(world, instance)
    assert meta["pending_conversations"]["pending_shadow_missing"] == meta["conversation_analyses"]["openai.calls"]

    answers = answers_by_analyzer(world)
    tenant_id = rows(world, "SELECT tenant_id FROM tenant_configs")[0][0]
    sampled = {c for c in answers["regex"] if in_shadow_sample(tenant_id, c, 0.2)}
    assert len(answers["regex"]) == 200
    assert answers["openai"] == sampled and 25 <= len(sampled) <= 55  # ~20 % of 200
    assert rows(world, "SELECT analyzer, COUNT(*) FROM conversations_analytics GROUP BY analyzer") == [("regex", 200)]
    assert server.stats()["billed_calls"] == len(sampled)
    spent = rows(world, "SELECT SUM(cost_brl) FROM llm_usage")[0][0]
    assert 0 < spent <= 5.0

    # a re-run pays nothing again; a fresh analytics database picks exactly the same conversations
    materialize(world, instance)
    assert server.stats()["billed_calls"] == len(sampled)
    other = analytics_world(make_pg_database, server, chatwoot_url, features)
    materialize(other, instance)
    assert answers_by_analyzer(other)["openai"] == sampled

    assert rows(world, "SELECT compared FROM analyzer_agreement")[0][0] == len(sampled)
    spend = meta["llm_spend_daily"]
    # switching: tokens per conversation of the sample × the month's 200 conversations × the price table
    per_conversation_usd = rows(world, "SELECT AVG(cost_usd) FROM conversation_analyses WHERE analyzer = 'openai'")[0][0]
    assert spend["projected_openai_switch_brl"] == pytest.approx(per_conversation_usd * 200 * 5.40, rel=1e-6)
    assert spend["shadow_sample_answers"] == len(sampled)
    assert_spend_equals_ledger(world)


def test_shadow_sample_stops_at_the_budget(make_pg_database, server, instance):
    world = analytics_world(make_pg_database, server, seeded_chatwoot(make_pg_database, 100),
                            TenantFeatures(shadow_openai_sample=1.0, chunk_size=100, monthly_budget_brl=0.02))
    materialize(world, instance)
    answers = answers_by_analyzer(world)
    spent = rows(world, "SELECT COALESCE(SUM(cost_brl), 0) FROM llm_usage")[0][0]
    assert len(answers["regex"]) == 100 and 0 < len(answers["openai"]) < 100
    assert 0 < spent <= 0.02
    assert rows(world, "SELECT analyzer, COUNT(*) FROM conversations_analytics GROUP BY analyzer") == [("regex", 100)]


def test_the_same_tables_on_the_embedded_sqlite_analytics_database(make_pg_database, server, instance, tmp_path,
                                                                   monkeypatch, capsys):
    """The demo's defaults: dates come back as text from SQLite, and everything still adds up."""
    from allpfit_etl.cli.main import main

    url = f"sqlite:///{tmp_path / 'analytics.db'}"
    world = analytics_world(make_pg_database, server, seeded_chatwoot(make_pg_database, 30),
                            TenantFeatures(shadow_openai_sample=0.5, chunk_size=10, monthly_budget_brl=2.0), url)
    materialize(world, instance)
    answers = answers_by_analyzer(world)
    assert len(answers["regex"]) == 30 and 0 < len(answers["openai"]) < 30
    expected = independent_agreement(world)
    row = rows(world, "SELECT * FROM analyzer_agreement")[0]._mapping
    assert str(row["month"]) == "2025-11-01" and row["compared"] == len(answers["openai"])
    assert row["is_lead_agreement"] == pytest.approx(expected["is_lead_agreement"])
    assert_spend_equals_ledger(world)

    monkeypatch.setenv("ANALYTICS_DATABASE_URL", url)
    assert main(["compare", "gym"]) == 0
    out = capsys.readouterr().out
    assert "Gym (gym) · 2025-11" in out and f"compared: {len(answers['openai'])} " in out
