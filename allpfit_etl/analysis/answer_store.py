"""Reading chunk inputs and writing answers and failures in the analytics database.

Answers are committed as they arrive (``AnswerSink``), each with the ledger row of the call that
paid for it, so nothing already paid for can be lost by a later crash, retry or kill.
"""

from __future__ import annotations

import datetime as dt
import queue
import threading
from concurrent.futures import Future

import sqlalchemy as sa

from allpfit_etl.analysis.interface import (
    AnalysisFailure,
    AnalysisResult,
    AnalyzerIdentity,
    ConversationInput,
    LeadAnalysis,
)
from allpfit_etl.db import load_sql
from allpfit_etl.pending.rules import is_settled
from allpfit_etl.text import sanitize_text
from allpfit_etl.timeutil import as_utc
from allpfit_etl.tables import conversation_analyses, insert_ignore_duplicates, insert_rows, ledger_row, llm_usage

ANALYSIS_KEY = ("tenant_id", "conversation_id", "content_hash", "analyzer", "model", "prompt_version")


def _expanding(name: str) -> sa.TextClause:
    # Ids inlined as integer literals: a chunk's 20,000 bound parameters cost psycopg more to parse than the query.
    return sa.text(load_sql(name)).bindparams(
        sa.bindparam("conversation_ids", expanding=True, literal_execute=True, type_=sa.Integer)
    )


def chunk_inputs(engine: sa.Engine, tenant_id: int, conversation_ids) -> list[ConversationInput]:
    with engine.connect() as conn:
        rows = conn.execute(
            _expanding("analytics/chunk_inputs"), {"tenant_id": tenant_id, "conversation_ids": list(conversation_ids)}
        ).all()
    return [
        ConversationInput(tenant_id, int(r.conversation_id), r.content_hash, r.message_compiled, r.contact_name)
        for r in rows
    ]


def settled_conversation_ids(engine: sa.Engine, tenant_id: int, conversation_ids, now: dt.datetime,
                             settle_minutes: float) -> set[int]:
    """Those of the conversations that have settled (``pending.rules.is_settled``) as extracted."""
    if not conversation_ids:
        return set()
    with engine.connect() as conn:
        rows = conn.execute(
            _expanding("analytics/conversation_activity"), {"tenant_id": tenant_id, "conversation_ids": list(conversation_ids)}
        ).all()
    return {int(r.conversation_id) for r in rows if is_settled(as_utc(r.last_activity_at), r.status, now, settle_minutes)}


def stored_answers(
    engine: sa.Engine, tenant_id: int, identity: AnalyzerIdentity, conversations: list[ConversationInput]
) -> dict[int, AnalysisResult]:
    """Answers already stored for exactly these (conversation, content hash) pairs."""
    if not conversations:
        return {}
    wanted = {c.conversation_id: c.content_hash for c in conversations}
    with engine.connect() as conn:
        rows = conn.execute(
            _expanding("analytics/stored_answers"),
            {"tenant_id": tenant_id, "analyzer": identity.analyzer, "model": identity.model,
             "prompt_version": identity.prompt_version, "conversation_ids": list(wanted)},
        ).all()
    return {
        int(r.conversation_id): AnalysisResult(
            int(r.conversation_id), r.content_hash,
            LeadAnalysis(bool(r.is_lead), bool(r.visita_agendada), int(r.probabilidade_conversao),
                         r.nome_mapeado_bot, r.analise_ia),
        )
        for r in rows
        if wanted.get(int(r.conversation_id)) == r.content_hash
    }


def _analysis_row(tenant_id: int, identity: AnalyzerIdentity, result: AnalysisResult, tokens: dict | None = None) -> dict:
    a = result.analysis
    tokens = tokens or {}
    return {
        "tenant_id": tenant_id, "conversation_id": result.conversation_id, "content_hash": result.content_hash,
        "analyzer": identity.analyzer, "model": identity.model, "prompt_version": identity.prompt_version,
        "is_lead": bool(a.is_lead), "visita_agendada": bool(a.visita_agendada),
        "probabilidade_conversao": int(a.probabilidade_conversao),
        "nome_mapeado_bot": sanitize_text(a.nome_mapeado_bot), "analise_ia": sanitize_text(a.analise_ia) or "",
        "prompt_tokens": int(tokens.get("prompt_tokens", 0)), "cached_tokens": int(tokens.get("cached_tokens", 0)),
        "completion_tokens": int(tokens.get("completion_tokens", 0)), "cost_usd": float(tokens.get("cost_usd", 0.0)),
        "analyzed_at": dt.datetime.now(dt.timezone.utc),
    }


class AnswerSink:
    """Thread-safe writer used by analysers while a chunk is still running.

    ``submit_answer`` queues an answer with the ledger row of the call that paid for it and
    returns a future that settles once both are committed. One writer thread commits whatever
    has queued up in one transaction (group commit): an answer never lands without its ledger
    row or the other way round, and at hundreds of answers per second the database sees a
    few transactions per second instead of one per answer.
    """

    MAX_GROUP = 1000
    IDLE_EXIT_S = 0.5  # the writer thread ends when idle; the next submit starts another

    def __init__(self, engine: sa.Engine, tenant_id: int, identity: AnalyzerIdentity, run_id: str | None = None):
        self.engine, self.tenant_id, self.identity, self.run_id = engine, tenant_id, identity, run_id
        self._lock = threading.Lock()  # one writing transaction at a time (SQLite has a single writer)
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._writer_lock = threading.Lock()
        self._writer: threading.Thread | None = None

    def submit_answer(self, result: AnalysisResult, record=None) -> Future:
        """Queue the answer (and the API call that paid for it) for the next group commit."""
        tokens = vars(record) if record is not None else None
        row = _analysis_row(self.tenant_id, self.identity, result, tokens)
        return self._submit(row, self._call_row(record) if record is not None else None)

    def submit_call(self, record) -> Future:
        """Queue a ledger row of an attempt that brought no answer (a 429, a timeout…)."""
        return self._submit(None, self._call_row(record))

    def _submit(self, answer_row: dict | None, call_row: dict | None) -> Future:
        future: Future = Future()
        with self._writer_lock:
            self._queue.put((answer_row, call_row, future))
            # is_alive: a thread that died, or one inherited through fork (it does not run in
            # the child), must not leave the queue without a writer.
            if self._writer is None or not self._writer.is_alive():
                self._writer = threading.Thread(target=self._write_groups, name="answer-sink", daemon=True)
                self._writer.start()
        return future

    def _write_groups(self) -> None:
        try:
            self._write_until_idle()
        finally:
            with self._writer_lock:
                if self._writer is threading.current_thread():
                    self._writer = None

    def _write_until_idle(self) -> None:
        while True:
            try:
                group = [self._queue.get(timeout=self.IDLE_EXIT_S)]
            except queue.Empty:
                with self._writer_lock:
                    if self._queue.empty():
                        return
                continue
            while len(group) < self.MAX_GROUP:
                try:
                    group.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            try:
                with self._lock, self.engine.begin() as conn:
                    answers = [answer for answer, _, _ in group if answer is not None]
                    calls = [call for _, call, _ in group if call is not None]
                    insert_ignore_duplicates(conn, conversation_analyses, answers, ANALYSIS_KEY)
                    insert_rows(conn, llm_usage, calls)
            except BaseException as exc:  # every waiter learns it; nothing of the group was stored
                for _, _, future in group:
                    _settle(future, exc)
            else:
                for _, _, future in group:
                    _settle(future, None)

    def _call_row(self, record) -> dict:
        return ledger_row(record, self.run_id)

    def save_answers(self, results: list[AnalysisResult]) -> None:
        rows = [_analysis_row(self.tenant_id, self.identity, r) for r in results]
        with self._lock, self.engine.begin() as conn:
            insert_ignore_duplicates(conn, conversation_analyses, rows, ANALYSIS_KEY)

    def save_failures(self, failures: list[AnalysisFailure]) -> None:
        if not failures:
            return
        now = dt.datetime.now(dt.timezone.utc)
        with self._lock, self.engine.begin() as conn:
            for f in failures:
                params = {
                    "tenant_id": self.tenant_id, "conversation_id": f.conversation_id, "content_hash": f.content_hash,
                    "analyzer": self.identity.analyzer, "model": self.identity.model,
                    "prompt_version": self.identity.prompt_version, "error_kind": f.error_kind,
                    "attempts": f.attempts, "message": sanitize_text(f.message)[:500] if f.message else None,
                    "failed_at": now,
                }
                conn.execute(sa.text(load_sql("analytics/record_failure")), params)


def _settle(future: Future, error: BaseException | None) -> None:
    # A waiter that gave up (its asyncio task was cancelled: asyncio.wrap_future cancels the
    # future too) still had its answer committed; settling it must not kill the writer.
    if not future.set_running_or_notify_cancel():
        return
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(error)


def insert_answer(conn: sa.Connection, tenant_id: int, identity: AnalyzerIdentity, result: AnalysisResult,
                  tokens: dict | None = None) -> None:
    """One answer inside the caller's transaction (the Batch API ingestion settles its request
    line in the same one); an answer already stored is kept as it is."""
    insert_ignore_duplicates(conn, conversation_analyses, [_analysis_row(tenant_id, identity, result, tokens)], ANALYSIS_KEY)
