"""The steps of one chunk (allpfit_etl/analysis/chunk_steps.py), without Dagster, on a real
analytics database (SQLite here: the steps only read and write through SQL)."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa

from allpfit_etl.analysis import chunk_steps
from allpfit_etl.analysis.chunks import ChunkSpec
from allpfit_etl.analysis.pricing import price_for
from allpfit_etl.analysis.interface import AnalysisFailure, AnalysisResult, ChunkOutcome, LeadAnalysis
from allpfit_etl.analysis.regex_analyzer import RegexAnalyzer
from allpfit_etl.analysis.summary import ANALYZED, DEFERRED, FAILED, REUSED
from allpfit_etl.db import get_engine
from allpfit_etl.schema import apply_migrations
from allpfit_etl.tenants.registry import TenantFeatures, add_tenant

DAY = dt.date(2025, 11, 10)
TEXTS = ("Quero agendar uma aula experimental amanhã às 19h", "Oi, qual o valor da mensalidade?", "ok, obrigado")


def world(tmp_path, features: TenantFeatures, conversations: int = 6):
    engine = get_engine(f"sqlite:///{tmp_path / 'analytics.db'}")
    apply_migrations(engine)
    tenant = add_tenant(engine, "gym", "Gym", 1, features)
    now = dt.datetime(2025, 11, 10, 15, 0).isoformat()
    with engine.begin() as conn:
        for i in range(1, conversations + 1):
            row = {"t": tenant.tenant_id, "c": i, "d": DAY.isoformat(), "h": f"hash-{i}", "m": f"contato: {TEXTS[i % 3]}", "now": now}
            conn.execute(sa.text(
                "INSERT INTO chatwoot_conversations (tenant_id, conversation_id, day, display_id, conversation_created_at,"
                " contact_messages_count, message_compiled, content_hash, extracted_at)"
                " VALUES (:t, :c, :d, :c, :now, 1, :m, :h, :now)"), row)
            conn.execute(sa.text(
                "INSERT INTO pending_conversations (tenant_id, conversation_id, day, content_hash, reason, queued_at)"
                " VALUES (:t, :c, :d, :h, 'new', :now)"), row)
    chunk = ChunkSpec(tenant.tenant_id, tenant.slug, 0, tuple(range(1, conversations + 1)))
    return engine, chunk


def answer(conversation_id: int, lead: bool) -> AnalysisResult:
    return AnalysisResult(conversation_id, f"hash-{conversation_id}", LeadAnalysis(lead, False, 3 if lead else 0, "", "x"))


def test_a_chunk_reuses_stored_answers_and_analyses_only_the_rest(tmp_path):
    engine, chunk = world(tmp_path, TenantFeatures())
    first = chunk_steps.load_chunk(engine, chunk, "run-1")
    assert [c.conversation_id for c in first.todo] == [1, 2, 3, 4, 5, 6] and not first.pays
    first.sink.save_answers([answer(1, True), answer(2, False)])  # a retry finds these stored

    work = chunk_steps.load_chunk(engine, chunk, "run-2")
    chunk_steps.reuse_stored_answers(engine, work)
    assert [c.conversation_id for c in work.todo] == [3, 4, 5, 6]
    assert (work.summary.reused_answers, work.summary.leads) == (2, 1)

    warnings = chunk_steps.record_outcome(work, RegexAnalyzer().analyze_chunk(work.todo))
    summary = chunk_steps.finish(work)
    assert warnings == [] and summary.analyzed == 4 and summary.conversations == 6
    assert summary.outcomes == {(chunk.tenant_id, 1): REUSED, (chunk.tenant_id, 2): REUSED,
                                **{(chunk.tenant_id, i): ANALYZED for i in (3, 4, 5, 6)}}
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT COUNT(*) FROM conversation_analyses")).scalar_one() == 6


def test_failures_are_stored_counted_and_the_first_ones_logged(tmp_path):
    engine, chunk = world(tmp_path, TenantFeatures(), conversations=8)
    work = chunk_steps.load_chunk(engine, chunk, "run-1")
    failures = [AnalysisFailure(i, f"hash-{i}", "timeout", 4, "timed out") for i in range(2, 9)]
    warnings = chunk_steps.record_outcome(work, ChunkOutcome(results=[answer(1, True)], failures=failures))
    assert len(warnings) == chunk_steps.FAILURES_LOGGED and "conversation 2 failed after 4 attempt(s): timeout" in warnings[0]
    assert (work.summary.analyzed, work.summary.failures) == (1, 7)
    assert work.summary.outcomes[(chunk.tenant_id, 8)] == FAILED
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT COUNT(*) FROM analysis_failures")).scalar_one() == 7


class Log:
    def __init__(self):
        self.warnings: list[str] = []

    def warning(self, line: str) -> None:
        self.warnings.append(line)


def keep_budget(engine, work, log) -> None:
    chunk_steps.keep_budget(engine, work, price=price_for("gpt-4o-mini"), usd_brl=5.0, max_prompt_tokens=6000, log=log)


@pytest.mark.parametrize("budget, deferred", [(0.0, True), (1000.0, False), (None, False)])
def test_an_openai_chunk_that_would_pass_the_monthly_budget_stays_pending(tmp_path, budget, deferred):
    engine, chunk = world(tmp_path, TenantFeatures(use_openai=True, monthly_budget_brl=budget))
    work, log = chunk_steps.load_chunk(engine, chunk, "run-1"), Log()
    keep_budget(engine, work, log)
    assert work.pays and bool(log.warnings) == deferred
    if deferred:
        (warning,) = log.warnings
        assert work.todo == [] and work.summary.deferred_by_budget == 6
        assert set(work.summary.outcomes.values()) == {DEFERRED}
        assert "gym has spent R$ 0.00 of R$ 0.00 this month" in warning
        with engine.connect() as conn:
            kinds = conn.execute(sa.text("SELECT DISTINCT error_kind FROM analysis_failures")).scalars().all()
        assert kinds == ["budget_exhausted"]
    else:
        assert len(work.todo) == 6 and work.summary.deferred_by_budget == 0


def test_a_regex_tenant_has_no_budget_to_keep(tmp_path):
    engine, chunk = world(tmp_path, TenantFeatures(monthly_budget_brl=0.0))
    work, log = chunk_steps.load_chunk(engine, chunk, "run-1"), Log()
    keep_budget(engine, work, log)
    assert log.warnings == [] and len(work.todo) == 6
