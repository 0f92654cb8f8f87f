"""``llm_batches`` and ``llm_batch_requests``: the intent recorded before any API call, then the
file and batch ids, and which conversations are *in batch* (no other run submits them)."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
from dataclasses import dataclass
from typing import Iterator, Sequence

import sqlalchemy as sa

from allpfit_etl.db import load_sql, sql

BATCH_REQUEST_COLUMNS = ("batch_key", "custom_id", "tenant_id", "conversation_id", "content_hash", "day", "attempt", "state")
batch_requests_table = sa.table("llm_batch_requests", *(sa.column(c) for c in BATCH_REQUEST_COLUMNS))


def now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _expanding(name: str, param: str = "conversation_ids") -> sa.TextClause:
    return sa.text(load_sql(name)).bindparams(sa.bindparam(param, expanding=True))


@dataclass(frozen=True)
class PlannedRequest:
    custom_id: str
    conversation_id: int
    content_hash: str
    attempt: int = 1


@dataclass(frozen=True)
class BatchIntent:
    batch_key: str
    tenant_id: int
    model: str
    prompt_version: str
    estimated_cost_usd: float = 0.0
    estimated_cost_brl: float = 0.0
    parent_key: str | None = None
    run_id: str | None = None


def in_batch(conn_or_engine, tenant_id: int, conversation_ids: Sequence[int]) -> set[int]:
    """The conversations among these that are in an open batch."""
    if not conversation_ids:
        return set()
    with _connection(conn_or_engine) as conn:
        rows = conn.execute(_expanding("analytics/batch/open_conversations"),
                            {"tenant_id": tenant_id, "conversation_ids": list(conversation_ids)})
        return {int(r.conversation_id) for r in rows}


@contextlib.contextmanager
def _connection(conn_or_engine) -> Iterator[sa.Connection]:
    if isinstance(conn_or_engine, sa.Connection):
        yield conn_or_engine
    else:
        with conn_or_engine.connect() as conn:
            yield conn


def reserve(engine: sa.Engine, intent: BatchIntent, requests: Sequence[PlannedRequest],
            supersede: Sequence[str] = ()) -> list[PlannedRequest]:
    """Record the intent and put its conversations in batch, in one transaction, before any
    upload. Conversations already in another open batch are left out. With the same key again
    (a resubmission that was killed), the stored reservation is returned unchanged.
    ``supersede``: custom_ids of ``intent.parent_key`` settled as retried in the same transaction."""
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":  # two runs of one tenant reserve one after the other
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(hashtextextended('allpfit_batch:' || :t, 0))"),
                         {"t": str(intent.tenant_id)})
        existing = conn.execute(sa.text("SELECT 1 FROM llm_batches WHERE batch_key = :k"), {"k": intent.batch_key}).first()
        if existing:
            return [PlannedRequest(r.custom_id, int(r.conversation_id), r.content_hash, int(r.attempt))
                    for r in conn.execute(sql("analytics/batch/open_requests"), {"batch_key": intent.batch_key})]
        for custom_id in supersede:
            conn.execute(sql("analytics/batch/settle_request"), {
                "state": "retried", "error_kind": None, "batch_key": intent.parent_key, "custom_id": custom_id})
        busy = in_batch(conn, intent.tenant_id, [r.conversation_id for r in requests])
        wanted = [r for r in requests if r.conversation_id not in busy]
        if not wanted:
            return []
        days = {
            int(r.conversation_id): r.day
            for r in conn.execute(_expanding("analytics/batch/conversation_days"),
                                  {"tenant_id": intent.tenant_id, "conversation_ids": [r.conversation_id for r in wanted]})
        }
        wanted = [r for r in wanted if r.conversation_id in days]
        partitions = sorted({str(days[r.conversation_id]) for r in wanted})
        conn.execute(sql("analytics/batch/insert_batch"), {
            "batch_key": intent.batch_key, "tenant_id": intent.tenant_id, "model": intent.model,
            "prompt_version": intent.prompt_version, "partitions": json.dumps(partitions),
            "conversation_count": len(wanted), "estimated_cost_usd": intent.estimated_cost_usd,
            "estimated_cost_brl": intent.estimated_cost_brl, "parent_key": intent.parent_key,
            "run_id": intent.run_id, "now": now(),
        })
        conn.execute(batch_requests_table.insert(), [
            {"batch_key": intent.batch_key, "custom_id": r.custom_id, "tenant_id": intent.tenant_id,
             "conversation_id": r.conversation_id, "content_hash": r.content_hash, "day": days[r.conversation_id],
             "attempt": r.attempt, "state": "open"}
            for r in wanted
        ])
    return wanted


def record_upload(engine: sa.Engine, batch_key: str, file_id: str) -> None:
    with engine.begin() as conn:
        conn.execute(sql("analytics/batch/record_upload"), {"batch_key": batch_key, "file_id": file_id, "now": now()})


def record_created(engine: sa.Engine, batch_key: str, file_id: str, batch_id: str, status: str) -> None:
    with engine.begin() as conn:
        conn.execute(sql("analytics/batch/record_created"),
                     {"batch_key": batch_key, "file_id": file_id, "batch_id": batch_id, "status": status, "now": now()})


def record_status(engine: sa.Engine, batch_key: str, batch, ended: bool, error: str | None = None) -> None:
    counts = batch.request_counts
    with engine.begin() as conn:
        conn.execute(sql("analytics/batch/record_status"), {
            "batch_key": batch_key, "status": batch.status, "total": counts.total if counts else 0,
            "completed": counts.completed if counts else 0, "failed": counts.failed if counts else 0,
            "output_file_id": batch.output_file_id, "error_file_id": batch.error_file_id, "error": error,
            "ended": ended, "now": now(),
        })


def release(engine: sa.Engine, batch_key: str, custom_ids: Sequence[str], error_kind: str | None = None) -> None:
    """Back to pending: the next run may submit these conversations again."""
    with engine.begin() as conn:
        for custom_id in custom_ids:
            conn.execute(sql("analytics/batch/settle_request"),
                         {"state": "released", "error_kind": error_kind, "batch_key": batch_key, "custom_id": custom_id})


def rows(engine: sa.Engine, name: str, **params) -> list:
    with engine.connect() as conn:
        return conn.execute(sql(f"analytics/batch/{name}"), params).all()


def mark_ingested(engine: sa.Engine, batch_key: str, batch_id: str | None, status: str, error: str | None = None) -> None:
    with engine.begin() as conn:
        conn.execute(sql("analytics/batch/mark_ingested"),
                     {"batch_key": batch_key, "batch_id": batch_id, "status": status, "error": error, "now": now()})


def partitions_to_run(engine: sa.Engine) -> list:
    return rows(engine, "partitions_to_run")


def mark_runs_requested(engine: sa.Engine, batch_keys: Sequence[str]) -> None:
    if batch_keys:
        with engine.begin() as conn:
            conn.execute(_expanding("analytics/batch/mark_runs_requested", "batch_keys"),
                         {"batch_keys": list(batch_keys), "now": now()})


@contextlib.contextmanager
def submission_lock(engine: sa.Engine, batch_key: str) -> Iterator[bool]:
    """Held by whoever is uploading/creating this batch, so a sensor resuming killed
    submissions never races a live one. A killed process's session ends and frees it.
    (SQLite, single-process, needs none.)"""
    if engine.dialect.name != "postgresql":
        yield True
        return
    with engine.connect() as conn:
        key = {"k": "allpfit_submit:" + batch_key}
        got = bool(conn.execute(sa.text("SELECT pg_try_advisory_lock(hashtextextended(:k, 0))"), key).scalar_one())
        conn.commit()
        try:
            yield got
        finally:
            if got:
                conn.execute(sa.text("SELECT pg_advisory_unlock(hashtextextended(:k, 0))"), key)
                conn.commit()
