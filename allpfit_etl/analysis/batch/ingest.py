"""Polling open batches and ingesting the ended ones, idempotently.

Each answered line is stored with its ledger row (``mode='batch'``, batch price) and its request
settled, in one transaction guarded by the request's state: a killed ingestion that runs again
skips what it already stored and pays nothing twice. Lines are matched by ``custom_id``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import sqlalchemy as sa

from allpfit_etl.analysis.answer_store import AnswerSink, chunk_inputs, insert_answer
from allpfit_etl.analysis.batch import store
from allpfit_etl.analysis.batch.results import LineOutcome, parse_result_file
from allpfit_etl.analysis.batch.submit import SubmitOptions, resume_unsubmitted, submit
from allpfit_etl.analysis.interface import AnalysisFailure, AnalysisResult, AnalyzerIdentity
from allpfit_etl.analysis.openai_analyzer import CallRecord
from allpfit_etl.db import sql
from allpfit_etl.errors import redact
from allpfit_etl.tables import insert_rows, ledger_row, llm_usage
from allpfit_etl.tenants.registry import get_tenant_by_id

if TYPE_CHECKING:  # imported by the client's maker (``structured_output.response_format`` says why)
    import openai

ENDED = ("completed", "expired", "failed", "cancelled")
MAX_BATCH_ATTEMPTS = 3  # a line that keeps failing is tried in this many batches, then recorded as a failure


@dataclass
class IngestReport:
    ingested: list[str] = field(default_factory=list)  # batch keys
    answers: int = 0
    resubmitted: int = 0
    released: int = 0
    failed_lines: int = 0
    still_open: int = 0
    problems: list[tuple[str, str]] = field(default_factory=list)  # (tenant slug, one line for the log and the alert)

    def merge(self, other: "IngestReport") -> None:
        self.ingested += other.ingested
        self.problems += other.problems
        for name in ("answers", "resubmitted", "released", "failed_lines", "still_open"):
            setattr(self, name, getattr(self, name) + getattr(other, name))


def poll_and_ingest(engine: sa.Engine, client: openai.OpenAI, options: SubmitOptions,
                    time_budget_s: float | None = None) -> IngestReport:
    """Resume killed submissions, refresh every open batch, ingest those that ended. With a time
    budget (a sensor tick), ingestion stops when it is spent and the next call carries on."""
    report = IngestReport()
    deadline = time.monotonic() + time_budget_s if time_budget_s else None
    resume_unsubmitted(engine, client, options)
    for row in store.rows(engine, "not_ingested"):
        if deadline and time.monotonic() > deadline:
            report.still_open += 1
            continue
        if row.status not in ENDED:
            batch = client.batches.retrieve(row.batch_id)
            ended = batch.status in ENDED
            store.record_status(engine, row.batch_key, batch, ended, _batch_error(batch))
            if not ended:
                report.still_open += 1
                continue
        else:
            batch = client.batches.retrieve(row.batch_id)
        report.merge(ingest_batch(engine, client, row, batch, options, deadline))
    return report


def _batch_error(batch) -> str | None:
    errors = (batch.errors.data or []) if batch.errors else []
    if not errors:
        return None
    first = errors[0]
    where = f" (line {first.line})" if first.line else ""
    return f"{first.code}: {first.message}{where}"


def _read(client: openai.OpenAI, file_id: str | None) -> dict[str, LineOutcome]:
    return parse_result_file(client.files.content(file_id).text) if file_id else {}


def ingest_batch(engine: sa.Engine, client: openai.OpenAI, row, batch, options: SubmitOptions,
                 deadline: float | None = None) -> IngestReport:
    report = IngestReport()
    tenant = get_tenant_by_id(engine, int(row.tenant_id))
    identity = AnalyzerIdentity("openai", row.model, row.prompt_version)
    price = options.price(row.model, tenant.features)
    outcomes = {**_read(client, batch.error_file_id), **_read(client, batch.output_file_id)}
    requests = store.rows(engine, "open_requests", batch_key=row.batch_key)
    retry, release = [], []
    for request in requests:
        if deadline and time.monotonic() > deadline:
            report.still_open += 1  # not marked ingested: the next call resumes where this one stopped
            return report
        outcome = outcomes.get(request.custom_id)
        if outcome is not None and (outcome.analysis is not None or outcome.billed):
            if _store_line(engine, tenant.tenant_id, identity, row.batch_key, batch.id, request, outcome, price, options):
                report.answers += outcome.analysis is not None
            if outcome.analysis is None:
                retry.append((request, outcome.error_kind))
        elif outcome is not None or batch.status in ("completed", "expired"):
            retry.append((request, outcome.error_kind if outcome else "missing_line"))
        else:
            release.append(request)

    error = _batch_error(batch)
    token_limit = batch.status == "failed" and bool(error) and error.startswith("token_limit_exceeded")
    if token_limit and _others_in_progress(engine, row.batch_key):
        report.still_open += 1  # defer: kept in batch, tried again once the batches ahead of it have ended
        return report
    if batch.status == "failed":
        if token_limit and len(release) > 1:
            half = len(release) // 2  # split: each half fits more easily under the enqueued-token limit
            for part, chunk in (("split:0", release[:half]), ("split:1", release[half:])):
                report.resubmitted += _resubmit(engine, client, row.batch_key, identity, chunk, options, part, same_attempt=True)
            release = []
        else:
            report.problems.append((tenant.slug,
                f"batch {batch.id} of {tenant.slug} failed: {redact(error or 'no reason given')}; "
                f"its {len(release)} conversation(s) are pending again"))
    store.release(engine, row.batch_key, [r.custom_id for r in release], batch.status)
    report.released += len(release)

    again = [(r, kind) for r, kind in retry if int(r.attempt) < MAX_BATCH_ATTEMPTS]
    give_up = [(r, kind) for r, kind in retry if int(r.attempt) >= MAX_BATCH_ATTEMPTS]
    if again:
        report.resubmitted += _resubmit(engine, client, row.batch_key, identity, [r for r, _ in again], options, "retry")
    if give_up:
        _record_failures(engine, tenant.tenant_id, identity, row.batch_key, give_up)
        report.failed_lines += len(give_up)
    store.mark_ingested(engine, row.batch_key, batch.id, batch.status, error)
    report.ingested.append(row.batch_key)
    return report


def _store_line(engine, tenant_id: int, identity: AnalyzerIdentity, batch_key: str, batch_id: str, request,
                outcome: LineOutcome, price, options: SubmitOptions) -> bool:
    """The answer (when valid), its ledger row and the settled request, in one transaction.
    False when an earlier ingestion already stored it."""
    usd = outcome.cost_usd(price)
    ok = outcome.analysis is not None
    with engine.begin() as conn:
        if ok:
            settled = conn.execute(sql("analytics/batch/settle_request"), {
                "state": "answered", "error_kind": None, "batch_key": batch_key, "custom_id": request.custom_id}).rowcount
        else:
            settled = conn.execute(sql("analytics/batch/mark_billed_invalid"),
                                   {"batch_key": batch_key, "custom_id": request.custom_id}).rowcount
        if not settled:
            return False
        if ok:
            insert_answer(conn, tenant_id, identity,
                          AnalysisResult(int(request.conversation_id), request.content_hash, outcome.analysis),
                          {"prompt_tokens": outcome.prompt_tokens, "cached_tokens": outcome.cached_tokens,
                           "completion_tokens": outcome.completion_tokens, "cost_usd": usd})
        record = CallRecord(tenant_id, int(request.conversation_id), identity.model, outcome.prompt_tokens,
                            outcome.cached_tokens, outcome.completion_tokens,
                            outcome.prompt_tokens + outcome.completion_tokens, usd, usd * options.usd_brl,
                            latency_ms=None, attempt=int(request.attempt), status="ok" if ok else "invalid_answer",
                            error_kind=None if ok else outcome.error_kind, created_at=store.now(),
                            priced=price.priced, mode="batch", batch_id=batch_id)
        insert_rows(conn, llm_usage, [ledger_row(record, None)])
    return True


def _resubmit(engine, client, parent_key: str, identity: AnalyzerIdentity, requests: list, options: SubmitOptions,
              part: str, same_attempt: bool = False) -> int:
    if not requests:
        return 0
    wanted = {int(r.conversation_id): r for r in requests}
    tenant_id = _tenant_of(engine, parent_key)
    inputs = [c for c in chunk_inputs(engine, tenant_id, list(wanted)) if c.content_hash == wanted[c.conversation_id].content_hash]
    gone = [r.custom_id for cid, r in wanted.items() if cid not in {c.conversation_id for c in inputs}]
    store.release(engine, parent_key, gone, "changed")
    attempts = {c.conversation_id: int(wanted[c.conversation_id].attempt) + (0 if same_attempt else 1) for c in inputs}
    submitted = submit(engine, client, identity, inputs, options, parent_key=parent_key, attempts=attempts, part=part,
                       features=get_tenant_by_id(engine, tenant_id).features)
    return sum(s.conversations for s in submitted)


def _others_in_progress(engine, batch_key: str) -> bool:
    """Other batches still holding enqueued tokens (the limit is per organization and model)."""
    return any(r.batch_key != batch_key and r.status in ("validating", "in_progress", "finalizing")
               for r in store.rows(engine, "not_ingested"))


def _tenant_of(engine, batch_key: str) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.text("SELECT tenant_id FROM llm_batches WHERE batch_key = :k"), {"k": batch_key}).scalar_one())


def _record_failures(engine, tenant_id: int, identity: AnalyzerIdentity, batch_key: str, give_up: list) -> None:
    AnswerSink(engine, tenant_id, identity).save_failures([
        AnalysisFailure(int(r.conversation_id), r.content_hash, f"batch_{kind or 'error'}", int(r.attempt),
                        f"no valid answer after {int(r.attempt)} batch(es)")
        for r, kind in give_up
    ])
    with engine.begin() as conn:
        for r, kind in give_up:
            conn.execute(sql("analytics/batch/settle_request"),
                         {"state": "failed", "error_kind": kind, "batch_key": batch_key, "custom_id": r.custom_id})
