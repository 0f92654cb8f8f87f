"""The monitoring tables on hand-built data in a real PostgreSQL database, materialized through
Dagster: agreement and kappa on known confusion matrices (and the edge cases: all agree, none
agree, one class only), llm_spend_daily against a hand-made ledger, the month-end projection."""

from __future__ import annotations

import datetime as dt
import hashlib

import dagster as dg
import pytest
import sqlalchemy as sa

from allpfit_etl.db import get_engine
from allpfit_etl.monitoring import spend, store
from allpfit_etl.monitoring.agreement import cohen_kappa
from allpfit_etl.monitoring.assets import analyzer_agreement, analyzer_daily_kpis, llm_spend_daily
from allpfit_etl.analysis.openai_resource import LeadAnalysisOpenAI
from allpfit_etl.resources import AnalyticsDatabase
from allpfit_etl.schema import apply_migrations
from allpfit_etl.tables import insert_rows, llm_usage
from allpfit_etl.tenants.registry import TenantFeatures, add_tenant, get_tenant

TZ = "America/Sao_Paulo"


@pytest.fixture
def analytics(make_pg_database):
    url = make_pg_database("analytics")
    engine = get_engine(url)
    apply_migrations(engine)
    add_tenant(engine, "gym", "Gym", 1, TenantFeatures(monthly_budget_brl=10.0))
    return {"engine": engine, "url": url}


def materialize(assets, analytics, instance, day: dt.date | None) -> dict:
    result = dg.materialize(
        assets, partition_key=f"{day.isoformat()}|gym" if day else None, instance=instance, raise_on_error=False,
        resources={"analytics": AnalyticsDatabase(url=analytics["url"]), "openai": LeadAnalysisOpenAI(api_key="sk-unused")},
    )
    assert result.success, [e.message for e in result.all_events if e.is_failure]
    return {e.asset_key.to_user_string(): {k: v.value for k, v in e.materialization.metadata.items()}
            for e in result.get_asset_materialization_events()}


class Answers:
    """Writes conversations with a regex and an OpenAI answer each, like the pipeline stores them."""

    def __init__(self, engine):
        self.engine, self.next_id = engine, 1

    def add(self, day: dt.date, pairs, *, probabilities=None, names=None, openai_hash_differs=False):
        """``pairs``: [(regex is_lead, openai is_lead, regex visita, openai visita)]."""
        now = dt.datetime(2025, 12, 1, tzinfo=dt.timezone.utc)
        with self.engine.begin() as conn:
            for index, (rl, ol, rv, ov) in enumerate(pairs):
                cid, self.next_id = self.next_id, self.next_id + 1
                content_hash = hashlib.sha256(str(cid).encode()).hexdigest()
                rp, op = probabilities[index] if probabilities else (3, 3)
                rn, on = names[index] if names else (None, None)
                conn.execute(sa.text(
                    "INSERT INTO chatwoot_conversations (tenant_id, conversation_id, day, display_id, conversation_created_at,"
                    " contact_messages_count, message_compiled, content_hash, extracted_at)"
                    " VALUES (1, :cid, :day, :cid, :now, 1, :text, :hash, :now)"),
                    {"cid": cid, "day": day, "now": now, "text": f"[01/01 10:00] Contato: conversa {cid}", "hash": content_hash})
                for analyzer, model, version, lead, visit, prob, name, answer_hash in (
                    ("regex", "", "regex-v1", rl, rv, rp, rn, content_hash),
                    ("openai", "gpt-4o-mini", "lead-v1", ol, ov, op, on, "old" if openai_hash_differs else content_hash),
                ):
                    conn.execute(sa.text(
                        "INSERT INTO conversation_analyses (tenant_id, conversation_id, content_hash, analyzer, model,"
                        " prompt_version, is_lead, visita_agendada, probabilidade_conversao, nome_mapeado_bot, analise_ia,"
                        " analyzed_at) VALUES (1, :cid, :hash, :analyzer, :model, :version, :lead, :visit, :prob, :name,"
                        " 'resumo', :now)"),
                        {"cid": cid, "hash": answer_hash, "analyzer": analyzer, "model": model, "version": version,
                         "lead": lead, "visit": visit, "prob": prob, "name": name, "now": now})


def matrix_pairs(tt: int, tf: int, ft: int, ff: int) -> list[tuple[bool, bool]]:
    return [(True, True)] * tt + [(True, False)] * tf + [(False, True)] * ft + [(False, False)] * ff


def agreement_row(engine, month: dt.date):
    with engine.connect() as conn:
        return conn.execute(sa.text("SELECT * FROM analyzer_agreement WHERE month = :m"), {"m": month}).one()._mapping


def test_cohen_kappa_by_hand():
    assert cohen_kappa(40, 10, 5, 45) == pytest.approx(0.7)  # po 0.85, pe 0.5
    assert cohen_kappa(20, 0, 30, 50) == pytest.approx(0.4)  # po 0.7, pe 0.5
    assert cohen_kappa(0, 30, 20, 0) == pytest.approx(-12 / 13)
    assert cohen_kappa(7, 0, 0, 3) == 1.0
    assert cohen_kappa(9, 0, 0, 0) is None and cohen_kappa(0, 0, 0, 9) is None and cohen_kappa(0, 0, 0, 0) is None
    assert cohen_kappa(0, 9, 0, 0) == 0.0  # each analyzer one class, but different ones: defined


def test_agreement_equals_hand_built_confusion_matrices_and_edge_cases(analytics, instance):
    engine = analytics["engine"]
    answers = Answers(engine)
    lead = matrix_pairs(40, 10, 5, 45)
    visit = matrix_pairs(20, 0, 30, 50)
    july = dt.date(2025, 7, 14)
    probabilities = [(4, 1)] * 10 + [(2, 3)] * 30 + [(3, 3)] * 60  # MAE = (10·3 + 30·1) / 100 = 0.6
    names = [("João Silva", "joão  SILVA")] * 50 + [("Ana", None)] * 25 + [(None, None)] * 25  # 75 % match
    answers.add(july, [(rl, ol, rv, ov) for (rl, ol), (rv, ov) in zip(lead, visit)], probabilities=probabilities, names=names)
    answers.add(dt.date(2025, 7, 20), [(True, False, True, False)] * 3, openai_hash_differs=True)  # not the same content
    answers.add(dt.date(2025, 8, 3), [(True, True, False, False)] * 6 + [(False, False, True, True)] * 4)  # all agree
    answers.add(dt.date(2025, 9, 9), [(True, False, True, False)] * 30 + [(False, True, False, True)] * 20)  # none agree
    answers.add(dt.date(2025, 10, 2), [(True, True, False, False)] * 12)  # one class only

    # the first refresh recomputes every month of the tenant
    meta = materialize([analyzer_agreement], analytics, instance, None)["analyzer_agreement"]
    assert meta["refreshed"] == "gym 2025-07, gym 2025-08, gym 2025-09, gym 2025-10"
    materialize([analyzer_daily_kpis], analytics, instance, july)

    row = agreement_row(engine, dt.date(2025, 7, 1))
    assert row["compared"] == 100
    assert (row["is_lead_true_true"], row["is_lead_true_false"], row["is_lead_false_true"], row["is_lead_false_false"]) == (40, 10, 5, 45)
    assert (row["visita_true_true"], row["visita_true_false"], row["visita_false_true"], row["visita_false_false"]) == (20, 0, 30, 50)
    assert row["is_lead_agreement"] == pytest.approx(0.85) and row["is_lead_kappa"] == pytest.approx(0.7)
    assert row["visita_agreement"] == pytest.approx(0.70) and row["visita_kappa"] == pytest.approx(0.4)
    assert row["regex_lead_rate"] == pytest.approx(0.50) and row["openai_lead_rate"] == pytest.approx(0.45)
    assert row["probabilidade_mae"] == pytest.approx(0.6) and row["names_match_share"] == pytest.approx(0.75)
    # disagreements: 15 on is_lead, 30 on visita, 10 by ≥ 2 in probability — counted once per conversation
    disagreeing = {i for i, ((rl, ol), (rv, ov), (rp, op)) in enumerate(zip(lead, visit, probabilities))
                   if rl != ol or rv != ov or abs(rp - op) >= 2}
    assert row["disagreements"] == len(disagreeing)
    with engine.connect() as conn:
        stored = conn.execute(sa.text(
            "SELECT display_id, severity, transcript_start FROM analyzer_disagreements WHERE month = '2025-07-01'"
            " ORDER BY severity DESC, display_id")).all()
    assert len(stored) == len(disagreeing) and stored[0].transcript_start.startswith("[01/01 10:00] Contato")
    assert "**gym 2025-07**" in meta["agreement"] and "| agreement | 85.0% | 70.0% |" in meta["agreement"]

    august = agreement_row(engine, dt.date(2025, 8, 1))
    assert (august["is_lead_agreement"], august["is_lead_kappa"], august["visita_kappa"]) == (1.0, 1.0, 1.0)
    assert august["disagreements"] == 0

    september = agreement_row(engine, dt.date(2025, 9, 1))
    assert september["is_lead_agreement"] == 0.0 and september["is_lead_kappa"] == pytest.approx(-12 / 13)
    assert september["disagreements"] == 50

    october = agreement_row(engine, dt.date(2025, 10, 1))
    assert october["compared"] == 12 and october["is_lead_agreement"] == 1.0
    assert october["is_lead_kappa"] is None and october["visita_kappa"] is None  # undefined, stored as NULL
    # the metadata's figures are the latest month's (October: kappas undefined, so absent)
    assert meta["month"] == "2025-10" and meta["compared"] == 12 and "is_lead_kappa" not in meta

    # quality per analyzer for a day, from the same answers
    with engine.connect() as conn:
        quality = {r.analyzer: r for r in conn.execute(sa.text(
            "SELECT * FROM analyzer_daily_kpis WHERE day = '2025-07-14'"))}
    assert (quality["regex"].conversations, quality["regex"].leads, quality["regex"].visits_scheduled) == (100, 50, 20)
    assert (quality["openai"].leads, quality["openai"].visits_scheduled) == (45, 50)
    assert quality["regex"].high_probability_share == pytest.approx(0.10)

    # a re-run replaces the months, it does not add to them (a new instance: every month again)
    with dg.instance_for_test() as fresh:
        assert materialize([analyzer_agreement], analytics, fresh, None)["analyzer_agreement"]["months_refreshed"] == 4
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT COUNT(*) FROM analyzer_agreement")).scalar_one() == 4
        assert conn.execute(sa.text(
            "SELECT COUNT(*) FROM analyzer_disagreements WHERE month = '2025-07-01'")).scalar_one() == len(disagreeing)


def ledger_row(created_at: dt.datetime, model: str = "gpt-4o-mini", status: str = "ok", cost_brl: float = 0.0,
               prompt: int = 0, cached: int = 0, completion: int = 0, latency: int | None = 100, **extra) -> dict:
    return {"tenant_id": 1, "conversation_id": 1, "model": model, "prompt_tokens": prompt, "cached_tokens": cached,
            "completion_tokens": completion, "total_tokens": prompt + completion, "cost_usd": cost_brl / 5.4,
            "cost_brl": cost_brl, "latency_ms": latency, "attempt": 1, "status": status, "error_kind": None,
            "run_id": "hand-made", "created_at": created_at, **extra}


UTC = dt.timezone.utc
HAND_MADE_LEDGER = [
    ledger_row(dt.datetime(2025, 11, 1, 2, 0, tzinfo=UTC), cost_brl=0.75, prompt=900, completion=90),   # 31/10 23:00 local
    ledger_row(dt.datetime(2025, 11, 10, 2, 30, tzinfo=UTC), cost_brl=0.5, prompt=1000, cached=200, completion=100,
               latency=300),                                                                                # 09/11 local
    ledger_row(dt.datetime(2025, 11, 10, 3, 30, tzinfo=UTC), cost_brl=0.25, prompt=500, completion=50, latency=100),
    ledger_row(dt.datetime(2025, 11, 10, 15, 0, tzinfo=UTC), status="rate_limited", latency=None),
    ledger_row(dt.datetime(2025, 11, 10, 16, 0, tzinfo=UTC), status="ok", cost_brl=0.25, prompt=400, completion=40,
               latency=500),
    ledger_row(dt.datetime(2025, 11, 10, 17, 0, tzinfo=UTC), model="gpt-4o", cost_brl=1.0, prompt=300, completion=30,
               latency=900),
]


def spend_rows(engine) -> dict:
    with engine.connect() as conn:
        return {(str(r.day), r.model, r.mode): r for r in conn.execute(sa.text("SELECT * FROM llm_spend_daily"))}


def test_llm_spend_daily_is_the_ledger_per_local_day_model_and_mode(analytics, instance):
    engine = analytics["engine"]
    with engine.begin() as conn:
        insert_rows(conn, llm_usage, HAND_MADE_LEDGER)
    materialize([llm_spend_daily], analytics, instance, dt.date(2025, 11, 10))
    rows = spend_rows(engine)
    assert set(rows) == {("2025-11-09", "gpt-4o-mini", "realtime"), ("2025-11-10", "gpt-4o-mini", "realtime"),
                         ("2025-11-10", "gpt-4o", "realtime")}  # October's call is not November's
    nov10 = rows[("2025-11-10", "gpt-4o-mini", "realtime")]
    assert (nov10.calls, nov10.failed_calls, nov10.prompt_tokens, nov10.completion_tokens, nov10.total_tokens) == (3, 1, 900, 90, 990)
    assert nov10.cost_brl == pytest.approx(0.5) and nov10.avg_latency_ms == pytest.approx(300.0)
    nov9 = rows[("2025-11-09", "gpt-4o-mini", "realtime")]
    assert (nov9.calls, nov9.cached_tokens, nov9.cost_brl, nov9.avg_latency_ms) == (1, 200, 0.5, 300.0)

    materialize([llm_spend_daily], analytics, instance, dt.date(2025, 10, 20))
    rows = spend_rows(engine)
    assert rows[("2025-10-31", "gpt-4o-mini", "realtime")].cost_brl == pytest.approx(0.75)
    with engine.connect() as conn:
        table = conn.execute(sa.text("SELECT SUM(calls), SUM(failed_calls), SUM(prompt_tokens), SUM(cached_tokens),"
                                     " SUM(completion_tokens), SUM(total_tokens), SUM(cost_brl), SUM(cost_usd) FROM llm_spend_daily")).one()
        ledger = conn.execute(sa.text("SELECT COUNT(*), SUM(CASE WHEN status <> 'ok' THEN 1 ELSE 0 END), SUM(prompt_tokens),"
                                      " SUM(cached_tokens), SUM(completion_tokens), SUM(total_tokens), SUM(cost_brl),"
                                      " SUM(cost_usd) FROM llm_usage")).one()
    assert tuple(table[:6]) == tuple(ledger[:6])
    assert table[6] == pytest.approx(ledger[6], rel=1e-12) and table[7] == pytest.approx(ledger[7], rel=1e-12)


def test_batch_calls_get_their_own_rows(analytics, instance):
    engine = analytics["engine"]
    with engine.begin() as conn:
        insert_rows(conn, llm_usage, HAND_MADE_LEDGER[1:3])
        conn.execute(sa.text("INSERT INTO llm_usage (tenant_id, conversation_id, model, prompt_tokens, total_tokens, cost_usd,"
                             " cost_brl, attempt, status, created_at, mode) VALUES (1, 2, 'gpt-4o-mini', 1000, 1000, 0.05,"
                             " 0.27, 1, 'ok', '2025-11-10 12:00+00', 'batch')"))
    materialize([llm_spend_daily], analytics, instance, dt.date(2025, 11, 10))
    rows = spend_rows(engine)
    assert rows[("2025-11-10", "gpt-4o-mini", "batch")].cost_brl == pytest.approx(0.27)
    assert rows[("2025-11-10", "gpt-4o-mini", "realtime")].calls == 1


def test_month_end_projection_on_a_hand_made_ledger(analytics):
    engine = analytics["engine"]
    with engine.begin() as conn:
        insert_rows(conn, llm_usage, HAND_MADE_LEDGER)
    tenant = get_tenant(engine, "gym")
    outlook = store.cost_outlook(engine, tenant, dt.date(2025, 11, 1), TZ, today=dt.date(2025, 11, 10))
    # November (local): 0.5 + 0.25 + 0 + 0.25 + 1.0 = 2.0 in 10 days → 2.0 / 10 × 30 = 6.0
    assert outlook.budget.month_to_date_brl == pytest.approx(2.0)
    assert outlook.budget.projected_brl == pytest.approx(6.0)
    assert outlook.budget.budget_used == pytest.approx(0.2) and not outlook.budget.projected_over_budget
    assert outlook.switching_brl is None  # an OpenAI-less regex tenant without a sample has nothing to project
    past = store.cost_outlook(engine, tenant, dt.date(2025, 10, 1), TZ, today=dt.date(2025, 11, 10))
    assert past.budget.month_to_date_brl == pytest.approx(0.75) and past.budget.projected_brl == pytest.approx(0.75)


def test_projection_and_switching_arithmetic():
    assert spend.month_end_projection(2.8, dt.date(2026, 2, 7)) == pytest.approx(11.2)  # 0.4/day × 28
    assert spend.month_end_projection(0.0, dt.date(2025, 12, 31)) == 0.0
    assert spend.projected_volume(100, dt.date(2025, 11, 1), dt.date(2025, 11, 10)) == pytest.approx(300)
    assert spend.projected_volume(100, dt.date(2025, 10, 1), dt.date(2025, 11, 10)) == 100
    from allpfit_etl.analysis.pricing import ModelPrice

    tokens = spend.TokensPerConversation(prompt=1000, cached=400, completion=100, sample_size=10)
    price = ModelPrice(input_per_m=0.15, cached_input_per_m=0.075, output_per_m=0.60)
    per_conversation = (600 * 0.15 + 400 * 0.075 + 100 * 0.60) / 1e6
    assert spend.switching_cost_brl(tokens, 3000, price, 5.4) == pytest.approx(per_conversation * 3000 * 5.4)


@pytest.mark.parametrize("dialect", ["postgresql", "sqlite"])
def test_daily_quality_counts_each_conversations_newest_answer_per_analyzer(dialect, make_pg_database, tmp_path):
    """A model change leaves two OpenAI answers for the same content: only the newer one counts."""
    url = make_pg_database("analytics") if dialect == "postgresql" else f"sqlite:///{tmp_path / 'analytics.db'}"
    engine = get_engine(url)
    apply_migrations(engine)
    add_tenant(engine, "gym", "Gym", 1, TenantFeatures())
    day, at = dt.date(2025, 7, 14), dt.datetime(2025, 7, 14, 12, tzinfo=dt.timezone.utc)
    answers = [  # (conversation, analyzer, model, is_lead, visita, probability, analyzed_at)
        (1, "regex", "", True, False, 4, at),
        (1, "openai", "gpt-4o-mini", False, False, 1, at),
        (1, "openai", "gpt-4.1-mini", True, True, 5, at + dt.timedelta(hours=1)),  # the newer answer
        (2, "regex", "", False, False, 0, at),
        (2, "openai", "gpt-4o-mini", True, False, 3, at),
    ]
    with engine.begin() as conn:
        for cid in (1, 2):
            conn.execute(sa.text(
                "INSERT INTO chatwoot_conversations (tenant_id, conversation_id, day, display_id, conversation_created_at,"
                " contact_messages_count, message_compiled, content_hash, extracted_at)"
                " VALUES (1, :cid, :day, :cid, :at, 1, 'x', :hash, :at)"), {"cid": cid, "day": day, "at": at, "hash": f"h{cid}"})
        for cid, analyzer, model, lead, visit, prob, analyzed_at in answers:
            conn.execute(sa.text(
                "INSERT INTO conversation_analyses (tenant_id, conversation_id, content_hash, analyzer, model, prompt_version,"
                " is_lead, visita_agendada, probabilidade_conversao, nome_mapeado_bot, analise_ia, analyzed_at)"
                " VALUES (1, :cid, :hash, :analyzer, :model, 'v1', :lead, :visit, :prob, NULL, 'resumo', :at)"),
                {"cid": cid, "hash": f"h{cid}", "analyzer": analyzer, "model": model, "lead": lead, "visit": visit,
                 "prob": prob, "at": analyzed_at})
    tenant = get_tenant(engine, "gym")
    assert store.refresh_quality(engine, tenant, day, day, at) == 2
    assert store.refresh_quality(engine, tenant, day, day, at) == 2  # replaced, not added to
    with engine.connect() as conn:
        rows = {r.analyzer: r for r in conn.execute(sa.text("SELECT * FROM analyzer_daily_kpis"))}
    openai, regex = rows["openai"], rows["regex"]
    assert (openai.conversations, openai.leads, openai.visits_scheduled, openai.high_probability) == (2, 2, 1, 1)
    assert (regex.conversations, regex.leads, regex.high_probability) == (2, 1, 1)
    assert openai.lead_rate == pytest.approx(1.0) and regex.high_probability_share == pytest.approx(0.5)
