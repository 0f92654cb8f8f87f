"""Batch mode inside ``analyze_chunk``: which runs use the Batch API, and the submission step.

Backfill runs (tag ``dagster/backfill``) of OpenAI tenants use it unless the tenant's
``batch_api`` feature says ``never``; ``always`` sends every run there; the run tag
``allpfit/batch=true|false`` (``allpfit-etl run --batch``, ``backfill --batch/--no-batch``)
overrides both.
"""

from __future__ import annotations

from typing import Mapping

import dagster as dg
import sqlalchemy as sa

from allpfit_etl import settings
from allpfit_etl.analysis.answer_store import AnswerSink
from allpfit_etl.analysis.batch import store
from allpfit_etl.analysis.batch.submit import SubmitOptions, batch_client, resume_unsubmitted, submit
from allpfit_etl.analysis.budget import apply_budget, check_budget
from allpfit_etl.analysis.interface import ConversationInput
from allpfit_etl.analysis.pricing import DEFAULT_USD_BRL
from allpfit_etl.analysis.summary import IN_BATCH, ChunkSummary
from allpfit_etl.partitions import BACKFILL_TAG
from allpfit_etl.tenants.registry import Tenant

BATCH_TAG = "allpfit/batch"


def use_batch_api(tenant: Tenant, tags: Mapping[str, str]) -> bool:
    if not tenant.features.use_openai:
        return False
    override = (tags.get(BATCH_TAG) or "").lower()
    if override in ("true", "false"):
        return override == "true"
    mode = tenant.features.batch_api
    return mode == "always" or (mode == "backfills" and BACKFILL_TAG in tags)


def submit_options(openai_resource, run_id: str | None = None) -> SubmitOptions:
    """The Batch API's options from the ``openai`` resource: the run's, the sensor's and
    ``allpfit-etl batches --wait``'s alike (exchange rate, prices, prompt size, endpoint)."""
    return SubmitOptions(max_prompt_tokens=openai_resource.max_prompt_tokens,
                         usd_brl=openai_resource.usd_brl or DEFAULT_USD_BRL,
                         price_overrides=openai_resource.price_table(), run_id=run_id,
                         base_url=openai_resource.base_url)


def route_chunk(context: dg.OpExecutionContext, engine: sa.Engine, tenant: Tenant, todo: list[ConversationInput],
                openai_resource, summary: ChunkSummary, sink: AnswerSink) -> list[ConversationInput]:
    """Leaves out conversations in an open batch; in batch mode submits the rest. Returns what
    is left for real time (nothing in batch mode)."""
    if not tenant.features.use_openai:
        return todo
    busy = store.in_batch(engine, tenant.tenant_id, [c.conversation_id for c in todo])
    if busy:
        context.log.info(f"{tenant.slug}: {len(busy)} conversation(s) already in an open batch are left to it")
        summary.in_batch += len(busy)
        summary.mark(tenant.tenant_id, busy, IN_BATCH)
        todo = [c for c in todo if c.conversation_id not in busy]
    if not use_batch_api(tenant, context.run.tags):
        return todo
    client = batch_client(openai_resource.api_key, openai_resource.base_url)
    options = submit_options(openai_resource, context.run_id)
    resume_unsubmitted(engine, client, options, tenant.tenant_id)
    if not todo:
        return []
    identity = tenant.identity()
    check = check_budget(engine, tenant, todo, price=options.price(identity.model, tenant.features),
                         usd_brl=options.usd_brl, max_prompt_tokens=options.max_prompt_tokens,
                         timezone=settings.timezone_name(), prompt_version=identity.prompt_version)
    todo = apply_budget(check, tenant, todo, summary, sink, context.log, what="batch")
    if not todo:
        return []
    submissions = submit(engine, client, identity, todo, options, features=tenant.features)
    summary.in_batch += sum(s.conversations for s in submissions)
    summary.mark(tenant.tenant_id, (c.conversation_id for c in todo), IN_BATCH)
    summary.batch_ids += tuple(s.batch_id for s in submissions if s.batch_id)
    context.log.info(
        f"{tenant.slug}: {sum(s.conversations for s in submissions)} conversation(s) submitted to the Batch API in "
        f"{len(submissions)} batch(es): {', '.join(s.batch_id or s.batch_key for s in submissions) or 'none'}")
    return []
