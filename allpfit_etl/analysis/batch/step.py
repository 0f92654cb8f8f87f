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
from allpfit_etl.analysis.budget import estimate_chunk_cost_brl, exceeds_budget, month_to_date_spend_brl
from allpfit_etl.analysis.interface import AnalysisFailure, ConversationInput
from allpfit_etl.analysis.pricing import BATCH_DISCOUNT
from allpfit_etl.analysis.summary import DEFERRED, IN_BATCH, ChunkSummary
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
    return SubmitOptions(max_prompt_tokens=openai_resource.max_prompt_tokens, usd_brl=openai_resource.usd_brl,
                         price_overrides=openai_resource.price_overrides, run_id=run_id)


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
    budget = tenant.features.monthly_budget_brl
    if budget is not None:
        spent = month_to_date_spend_brl(engine, tenant.tenant_id, settings.timezone_name())
        estimate = BATCH_DISCOUNT * estimate_chunk_cost_brl(
            todo, model=identity.model, usd_brl=options.usd_brl, max_prompt_tokens=options.max_prompt_tokens,
            price_overrides=options.price_overrides, prompt_version=identity.prompt_version)
        if exceeds_budget(budget, spent, estimate):
            context.log.warning(
                f"budget: {tenant.slug} has spent or committed R$ {spent:.2f} of R$ {budget:.2f} this month; this batch "
                f"(~R$ {estimate:.2f}) would pass it, so its {len(todo)} conversations stay pending")
            summary.deferred_by_budget += len(todo)
            summary.mark(tenant.tenant_id, (c.conversation_id for c in todo), DEFERRED)
            sink.save_failures([AnalysisFailure(c.conversation_id, c.content_hash, "budget_exhausted", 0,
                                                "monthly budget reached") for c in todo])
            return []
    submissions = submit(engine, client, identity, todo, options)
    summary.in_batch += sum(s.conversations for s in submissions)
    summary.mark(tenant.tenant_id, (c.conversation_id for c in todo), IN_BATCH)
    summary.batch_ids += tuple(s.batch_id for s in submissions if s.batch_id)
    context.log.info(
        f"{tenant.slug}: {sum(s.conversations for s in submissions)} conversation(s) submitted to the Batch API in "
        f"{len(submissions)} batch(es): {', '.join(s.batch_id or s.batch_key for s in submissions) or 'none'}")
    return []
