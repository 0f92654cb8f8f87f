"""Submitting conversations to the Batch API exactly once.

Order of writes, so that a process killed at any point never leads to a second batch:
1. the intent (``llm_batches`` row with a client-generated ``batch_key``) and the in-batch
   reservations, in one transaction, before any API call;
2. the upload, named after the key (``allpfit-batch-<key>.jsonl``), then its file id;
3. the batch, created with ``metadata.allpfit_batch_key = <key>``, then its id.
A restart (``resume_unsubmitted``) finds a file by its name and a batch by its metadata before
uploading or creating anything again.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

import sqlalchemy as sa

from allpfit_etl.analysis.answer_store import chunk_inputs
from allpfit_etl.analysis.batch import store
from allpfit_etl.analysis.batch.requests import (
    COMPLETION_WINDOW,
    ENDPOINT,
    build_request_line,
    file_content,
    split_into_files,
)
from allpfit_etl.analysis.budget import estimate_chunk_cost_brl
from allpfit_etl.analysis.interface import AnalyzerIdentity, ConversationInput
from allpfit_etl.analysis.pricing import DEFAULT_USD_BRL, ModelPrice, batch_price, price_for
from allpfit_etl.errors import ConfigError
from allpfit_etl.timeutil import as_utc

if TYPE_CHECKING:  # imported by the client's maker (``structured_output.response_format`` says why)
    import openai

METADATA_KEY = "allpfit_batch_key"
# A SQLite deployment has no advisory locks: an intent younger than this may still be in flight.
SQLITE_RESUME_AFTER_S = 300


def batch_client(api_key: str | None, base_url: str | None) -> openai.OpenAI:
    if not api_key:
        raise ConfigError("OPENAI_API_KEY is not set: the Batch API needs it")
    import openai

    return openai.OpenAI(api_key=api_key, base_url=base_url or None, max_retries=2, timeout=300)


def file_name(batch_key: str) -> str:
    return f"allpfit-batch-{batch_key}.jsonl"


@dataclass(frozen=True)
class Submission:
    batch_key: str
    batch_id: str | None
    conversations: int


@dataclass(frozen=True)
class SubmitOptions:
    """What the Batch API path takes from the ``openai`` resource (``step.submit_options``)."""

    max_prompt_tokens: int = 6000
    usd_brl: float = DEFAULT_USD_BRL
    price_overrides: dict | None = None  # the resource's price table (OPENAI_PRICES under price_overrides)
    run_id: str | None = None
    base_url: str | None = None

    def price(self, model: str, features=None) -> ModelPrice:
        """The batch (half) price, by the same lookup as real time."""
        tenant_price = features.tenant_price() if features is not None else None
        return batch_price(price_for(model, self.price_overrides, base_url=self.base_url, tenant_price=tenant_price))


def derived_key(parent_key: str, part: str) -> str:
    """A resubmission's key is a function of its parent: a killed ingestion that runs again
    finds the same intent instead of writing a second one."""
    return hashlib.sha256(f"{parent_key}:{part}".encode()).hexdigest()[:32]


def submit(
    engine: sa.Engine,
    client: openai.OpenAI,
    identity: AnalyzerIdentity,
    conversations: Sequence[ConversationInput],
    options: SubmitOptions,
    *,
    parent_key: str | None = None,
    attempts: dict[int, int] | None = None,
    part: str = "retry",
    features=None,
) -> list[Submission]:
    """Submit these conversations (one request each) in as many batches as the limits need.
    Conversations already in an open batch are skipped. ``features``: the tenant's (its price)."""
    if not conversations:
        return []
    tenant_id = conversations[0].tenant_id
    by_id = {c.conversation_id: c for c in conversations}
    lines = [build_request_line(c, identity.model, identity.prompt_version, options.max_prompt_tokens)
             for c in conversations]
    price = options.price(identity.model, features)
    submissions = []
    for index, group in enumerate(split_into_files(lines)):
        batch_key = derived_key(parent_key, f"{part}:{index}") if parent_key else uuid.uuid4().hex
        group_inputs = [by_id[line.key.conversation_id] for line in group]
        estimate_brl = estimate_chunk_cost_brl(group_inputs, price=price, usd_brl=options.usd_brl,
                                               max_prompt_tokens=options.max_prompt_tokens,
                                               prompt_version=identity.prompt_version)
        intent = store.BatchIntent(batch_key, tenant_id, identity.model, identity.prompt_version,
                                   estimate_brl / options.usd_brl, estimate_brl, parent_key, options.run_id)
        planned = [store.PlannedRequest(line.custom_id, line.key.conversation_id, line.key.content_hash,
                                        (attempts or {}).get(line.key.conversation_id, 1)) for line in group]
        with store.submission_lock(engine, batch_key) as got:
            if not got:
                continue
            reserved = store.reserve(engine, intent, planned, supersede=[p.custom_id for p in planned] if parent_key else ())
            if not reserved:
                continue
            keep = {r.custom_id for r in reserved}
            content = file_content([line for line in group if line.custom_id in keep])
            batch_id = _guarded(engine, batch_key, lambda: _upload_and_create(
                engine, client, batch_key, content, resuming=bool(parent_key)))
        if batch_id:
            submissions.append(Submission(batch_key, batch_id, len(reserved)))
    return submissions


def _upload_and_create(engine: sa.Engine, client: openai.OpenAI, batch_key: str, content: bytes | None, *,
                       resuming: bool, input_file_id: str | None = None, since: dt.datetime | None = None) -> str:
    if resuming:
        found = find_batch(client, batch_key, since)
        if found is not None:
            store.record_created(engine, batch_key, found.input_file_id, found.id, found.status)
            return found.id
        input_file_id = input_file_id or find_file(client, batch_key)
    if input_file_id is None:
        uploaded = client.files.create(file=(file_name(batch_key), content), purpose="batch")
        input_file_id = uploaded.id
        store.record_upload(engine, batch_key, input_file_id)
    # No client-side retry of the create: a lost answer is settled by looking it up, never by a second create.
    batch = client.with_options(max_retries=0).batches.create(
        input_file_id=input_file_id, endpoint=ENDPOINT, completion_window=COMPLETION_WINDOW,
        metadata={METADATA_KEY: batch_key})
    store.record_created(engine, batch_key, input_file_id, batch.id, batch.status)
    return batch.id


def _guarded(engine: sa.Engine, batch_key: str, action) -> str | None:
    """A request the API rejects (400) will be rejected again: its conversations go back to
    pending instead of being retried for ever. Network errors and 5xx propagate (retried later)."""
    import openai

    try:
        return action()
    except openai.BadRequestError as exc:
        requests = store.rows(engine, "open_requests", batch_key=batch_key)
        store.release(engine, batch_key, [r.custom_id for r in requests], "rejected")
        message = (exc.body or {}).get("message") if isinstance(exc.body, dict) else None
        store.mark_ingested(engine, batch_key, None, "rejected", f"rejected by the API: {message or exc.status_code}")
        return None


def find_file(client: openai.OpenAI, batch_key: str) -> str | None:
    name = file_name(batch_key)
    for item in client.files.list(purpose="batch"):
        if item.filename == name:
            return item.id
    return None


def find_batch(client: openai.OpenAI, batch_key: str, since: dt.datetime | None = None):
    """The batch created for this key, if any (newest first, back to an hour before the intent)."""
    oldest = (since.timestamp() - 3600) if since else None
    for batch in client.batches.list(limit=100):
        if (batch.metadata or {}).get(METADATA_KEY) == batch_key:
            return batch
        if oldest is not None and batch.created_at < oldest:
            return None
    return None


def resume_unsubmitted(engine: sa.Engine, client: openai.OpenAI, options: SubmitOptions,
                       tenant_id: int | None = None) -> list[str]:
    """Finish the submissions a killed process left: find its file and batch, or make them."""
    resumed = []
    for row in store.rows(engine, "unsubmitted"):
        if tenant_id is not None and int(row.tenant_id) != tenant_id:
            continue
        created_at = as_utc(row.created_at)
        if engine.dialect.name != "postgresql" and (store.now() - created_at).total_seconds() < SQLITE_RESUME_AFTER_S:
            continue
        with store.submission_lock(engine, row.batch_key) as got:
            if not got:
                continue  # a live process is submitting it right now
            with engine.connect() as conn:
                current = conn.execute(sa.text("SELECT batch_id, input_file_id FROM llm_batches WHERE batch_key = :k"),
                                       {"k": row.batch_key}).one()
            if current.batch_id:
                continue
            found = find_batch(client, row.batch_key, created_at)
            if found is not None:
                store.record_created(engine, row.batch_key, found.input_file_id, found.id, found.status)
                resumed.append(row.batch_key)
                continue
            file_id = current.input_file_id or find_file(client, row.batch_key)
            content = None
            if file_id is None:
                content = _rebuild_content(engine, row, options)
                if content is None:
                    store.mark_ingested(engine, row.batch_key, None, "abandoned", "nothing left to submit")
                    continue
            if _guarded(engine, row.batch_key, lambda: _upload_and_create(
                    engine, client, row.batch_key, content, resuming=False, input_file_id=file_id)):
                resumed.append(row.batch_key)
    return resumed


def _rebuild_content(engine: sa.Engine, row, options: SubmitOptions) -> bytes | None:
    """The file of an intent killed before its upload, from the conversations as they are now;
    a conversation whose content changed meanwhile goes back to pending."""
    requests = store.rows(engine, "open_requests", batch_key=row.batch_key)
    wanted = {int(r.conversation_id): r for r in requests}
    inputs = [c for c in chunk_inputs(engine, int(row.tenant_id), list(wanted))
              if c.content_hash == wanted[c.conversation_id].content_hash]
    current = {c.conversation_id for c in inputs}
    store.release(engine, row.batch_key, [r.custom_id for r in requests if int(r.conversation_id) not in current], "changed")
    if not inputs:
        return None
    return file_content([build_request_line(c, row.model, row.prompt_version, options.max_prompt_tokens) for c in inputs])
