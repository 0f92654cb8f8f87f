"""The steps of analysing one chunk, as plain functions (the Dagster op ``analyze_chunk`` calls
them in order): load the chunk, reuse the answers already stored, keep the month's budget,
analyse the rest, record the outcome. Each is tested without Dagster."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import sqlalchemy as sa

from allpfit_etl import settings
from allpfit_etl.analysis.answer_store import AnswerSink, chunk_inputs, stored_answers
from allpfit_etl.analysis.budget import apply_budget, check_budget
from allpfit_etl.analysis.chunks import ChunkSpec
from allpfit_etl.analysis.interface import AnalyzerIdentity, ChunkOutcome, ConversationInput
from allpfit_etl.analysis.pricing import ModelPrice
from allpfit_etl.analysis.summary import ANALYZED, FAILED, REUSED, ChunkSummary
from allpfit_etl.identities import OPENAI_ANALYZER
from allpfit_etl.tenants.registry import Tenant, get_tenant_by_id

# Failures logged one by one per chunk; the rest are in the failures table and the metadata.
FAILURES_LOGGED = 5


@dataclass
class ChunkWork:
    """One chunk on its way through the steps: what it holds, what is left to analyse, and the
    summary its materialization records."""

    tenant: Tenant
    identity: AnalyzerIdentity
    inputs: list[ConversationInput]
    todo: list[ConversationInput]
    sink: AnswerSink
    summary: ChunkSummary
    started: float = field(default_factory=time.monotonic)

    @property
    def pays(self) -> bool:
        return self.identity.analyzer == OPENAI_ANALYZER


def load_chunk(engine: sa.Engine, chunk: ChunkSpec, run_id: str | None) -> ChunkWork:
    """The chunk's tenant and conversations, all still to do."""
    tenant = get_tenant_by_id(engine, chunk.tenant_id)
    identity = tenant.identity()
    inputs = chunk_inputs(engine, tenant.tenant_id, chunk.conversation_ids)
    summary = ChunkSummary(conversations=len(inputs), started_at=time.time(), models=(identity.model or identity.analyzer,))
    return ChunkWork(tenant, identity, inputs, list(inputs), AnswerSink(engine, tenant.tenant_id, identity, run_id), summary)


def reuse_stored_answers(engine: sa.Engine, work: ChunkWork) -> None:
    """Answers already stored for the same content, analyser, model and prompt (a retry, a
    re-run after a crash) count as done, with no API call."""
    reused = stored_answers(engine, work.tenant.tenant_id, work.identity, work.inputs)
    work.todo = [c for c in work.todo if c.conversation_id not in reused]
    work.summary.reused_answers = len(reused)
    work.summary.count_results(list(reused.values()))
    work.summary.mark(work.tenant.tenant_id, reused, REUSED)


def keep_budget(engine: sa.Engine, work: ChunkWork, *, price: ModelPrice, usd_brl: float, max_prompt_tokens: int,
                log) -> None:
    """When the chunk's estimated cost would take the tenant past its monthly budget, its
    conversations stay pending (recorded as deferred), with a warning in ``log``."""
    if not work.todo or not work.pays:
        return
    check = check_budget(engine, work.tenant, work.todo, price=price, usd_brl=usd_brl,
                         max_prompt_tokens=max_prompt_tokens, timezone=settings.timezone_name(),
                         prompt_version=work.identity.prompt_version)
    work.todo = apply_budget(check, work.tenant, work.todo, work.summary, work.sink, log)


def record_outcome(work: ChunkWork, outcome: ChunkOutcome) -> list[str]:
    """Store what the analyser returned (OpenAI answers were stored one by one as they arrived)
    and count it; returns the warnings to log."""
    if not work.pays:
        work.sink.save_answers(outcome.results)
    work.sink.save_failures(outcome.failures)
    summary, tenant_id = work.summary, work.tenant.tenant_id
    summary.analyzed = len(outcome.results)
    summary.failures = len(outcome.failures)
    summary.usage = summary.usage.add(outcome.usage)
    summary.count_results(outcome.results)
    summary.mark(tenant_id, (r.conversation_id for r in outcome.results), ANALYZED)
    summary.mark(tenant_id, (f.conversation_id for f in outcome.failures), FAILED)
    return [f"conversation {f.conversation_id} failed after {f.attempts} attempt(s): {f.error_kind}"
            for f in outcome.failures[:FAILURES_LOGGED]]


def finish(work: ChunkWork) -> ChunkSummary:
    work.summary.elapsed_s = time.monotonic() - work.started
    return work.summary
