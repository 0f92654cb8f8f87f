"""The answer writer: answers queued while a chunk runs are committed in groups, each answer with
the ledger row of the call that paid for it — both or neither — on the real PostgreSQL server."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa

from allpfit_etl.analysis.answer_store import AnswerSink
from allpfit_etl.analysis.interface import AnalysisResult, LeadAnalysis
from allpfit_etl.analysis.openai_analyzer import CallRecord
from allpfit_etl.db import get_engine
from allpfit_etl.identities import AnalyzerIdentity
from allpfit_etl.schema import apply_migrations
from allpfit_devtools.deployment import wait_for

IDENTITY = AnalyzerIdentity("openai", "gpt-4o-mini", "v-test")


@pytest.fixture
def sink(make_pg_database):
    engine = get_engine(make_pg_database("analytics"))
    apply_migrations(engine)
    return AnswerSink(engine, 1, IDENTITY, run_id="run-1")


def answer(conversation_id: int) -> AnalysisResult:
    return AnalysisResult(conversation_id, f"hash-{conversation_id}", LeadAnalysis(True, False, 3, "Ana", "quer preço"))


def call(conversation_id: int, **changes) -> CallRecord:
    record = CallRecord(1, conversation_id, "gpt-4o-mini", prompt_tokens=100, completion_tokens=20, total_tokens=120,
                        cost_usd=0.0001, created_at=dt.datetime.now(dt.timezone.utc))
    for key, value in changes.items():
        setattr(record, key, value)
    return record


def counts(sink) -> tuple[int, int]:
    with sink.engine.connect() as conn:
        return (conn.execute(sa.text("SELECT COUNT(*) FROM conversation_analyses")).scalar_one(),
                conn.execute(sa.text("SELECT COUNT(*) FROM llm_usage WHERE run_id = 'run-1'")).scalar_one())


def test_answers_queued_together_are_committed_in_a_few_transactions_each_with_its_ledger_row(sink):
    commits = []
    sa.event.listen(sink.engine, "commit", lambda conn: commits.append(1))
    futures = [sink.submit_answer(answer(i), call(i)) for i in range(500)]
    for future in futures:
        future.result(timeout=30)
    assert counts(sink) == (500, 500)
    assert len(commits) < 50  # grouped, not one transaction per answer


def test_an_answer_whose_ledger_row_fails_is_not_stored_and_the_writer_goes_on(sink):
    broken = sink.submit_answer(answer(1), call(1, status=None))  # llm_usage.status is NOT NULL
    with pytest.raises(Exception, match="null value in column \"status\""):
        broken.result(timeout=30)
    assert counts(sink) == (0, 0)  # neither the answer nor its ledger row

    sink.submit_answer(answer(2), call(2)).result(timeout=30)
    sink.submit_call(call(3, status="rate_limited", prompt_tokens=0, completion_tokens=0, total_tokens=0)).result(timeout=30)
    assert counts(sink) == (1, 2)


def test_a_waiter_that_gave_up_still_gets_its_answer_stored_and_the_writer_goes_on(sink):
    # A chunk stopped by an account error cancels its tasks; asyncio.wrap_future then cancels
    # the futures of answers still being committed. Those answers were paid for: they are
    # stored, and the writer serves the answers that come after.
    with sink.engine.connect() as holder:  # the writer's transaction waits on this lock, as on a busy table
        holder.execute(sa.text("LOCK TABLE conversation_analyses IN EXCLUSIVE MODE"))
        abandoned = sink.submit_answer(answer(1), call(1))
        wait_for(lambda: lock_waiters(sink.engine), 10, "the writer to wait on the table lock", 0.01)
        assert abandoned.cancel()
        holder.rollback()
    sink.submit_answer(answer(2), call(2)).result(timeout=30)  # hung when the writer died on the cancelled one
    assert counts(sink) == (2, 2)


def lock_waiters(engine: sa.Engine) -> int:
    """Sessions of this database waiting for a lock (read afresh: a transaction keeps its first view)."""
    with engine.connect() as conn:
        return conn.execute(sa.text(
            "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'")).scalar_one()
