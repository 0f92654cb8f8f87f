"""A candidate prompt version, run as a shadow on a sample of an OpenAI tenant's conversations.

The sample is chosen like ``shadow_openai_sample`` (a hash of tenant and conversation), among
conversations that have settled, inside the monthly budget and through the ``llm_usage``
ledger. Its answers are stored under the candidate's identity: the load joins on the tenant's
identity, so they are never loaded, and stored answers are reused, so none is paid twice.
``allpfit-etl compare SLUG --candidate`` sets them against the current answers.
"""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa

from allpfit_etl import settings
from allpfit_etl.analysis.answer_store import AnswerSink, settled_conversation_ids, stored_answers
from allpfit_etl.analysis.budget import month_to_date_spend_brl
from allpfit_etl.analysis.interface import ConversationInput, Usage
from allpfit_etl.analysis.openai_analyzer import OpenAIAccountError
from allpfit_etl.analysis.shadow import fit_in_budget, in_shadow_sample
from allpfit_etl.errors import ConfigError
from allpfit_etl.identities import AnalyzerIdentity, openai_identity
from allpfit_etl.tenants.registry import Tenant


def candidate_identity(tenant: Tenant) -> AnalyzerIdentity | None:
    """The candidate's identity, or None when the tenant runs none (or it equals the current prompt)."""
    f = tenant.features
    if not f.use_openai or not f.candidate_prompt_version or f.candidate_sample <= 0:
        return None
    if f.candidate_prompt_version == f.prompt_version:
        return None
    return openai_identity(f.model, f.candidate_prompt_version)


def analyze_candidate(engine: sa.Engine, tenant: Tenant, inputs: list[ConversationInput], openai, log, *,
                      run_id: str | None = None) -> Usage:
    """Store the candidate's answers for the chunk's sampled, settled conversations; returns what it spent."""
    identity = candidate_identity(tenant)
    if identity is None or not inputs:
        return Usage()
    sampled = [c for c in inputs if in_shadow_sample(tenant.tenant_id, c.conversation_id, tenant.features.candidate_sample)]
    settled = settled_conversation_ids(engine, tenant.tenant_id, [c.conversation_id for c in sampled],
                                       dt.datetime.now(dt.timezone.utc), tenant.features.settle_minutes)
    candidates = [c for c in sampled if c.conversation_id in settled]
    reused = stored_answers(engine, tenant.tenant_id, identity, candidates)
    todo = [c for c in candidates if c.conversation_id not in reused]
    if not todo:
        return Usage()
    spent = month_to_date_spend_brl(engine, tenant.tenant_id, settings.timezone_name())
    affordable = fit_in_budget(todo, tenant.features.monthly_budget_brl, spent, model=identity.model,
                               usd_brl=openai.usd_brl, price_overrides=openai.price_overrides,
                               prompt_version=identity.prompt_version)
    if len(affordable) < len(todo):
        log.warning(f"candidate prompt: {tenant.slug} is near its monthly budget; "
                    f"{len(todo) - len(affordable)} sampled conversation(s) not sent")
    if not affordable:
        return Usage()
    sink = AnswerSink(engine, tenant.tenant_id, identity, run_id)
    try:
        analyzer = openai.build_analyzer(
            tenant_id=tenant.tenant_id, model=identity.model, max_concurrency=tenant.features.max_concurrency,
            engine=engine, run_id=run_id, on_answer=sink.submit_answer, on_call=sink.submit_call,
            prompt_version=identity.prompt_version)
        outcome = analyzer.analyze_chunk(affordable)
    except (ConfigError, OpenAIAccountError) as exc:  # the tenant's own answers still load
        log.warning(f"candidate prompt {identity.prompt_version} skipped for {tenant.slug}: {exc}")
        return Usage()
    log.info(f"candidate prompt {identity.prompt_version}: {len(outcome.results)} answer(s) stored for {tenant.slug}, "
             f"{len(outcome.failures)} failed")
    return outcome.usage
