"""A candidate prompt version, run as a shadow on a sample of an OpenAI tenant's conversations.

The sample is chosen like ``shadow_openai_sample`` (a hash of tenant and conversation), among
conversations that have settled, inside the monthly budget and through the ``llm_usage``
ledger. Its answers are stored under the candidate's identity: the load joins on the tenant's
identity, so they are never loaded, and stored answers are reused, so none is paid twice.
``allpfit-etl compare SLUG --candidate`` sets them against the current answers.
"""

from __future__ import annotations

import sqlalchemy as sa

from allpfit_etl.analysis.answer_store import stored_answers
from allpfit_etl.analysis.interface import ConversationInput, Usage
from allpfit_etl.analysis.shadow import send_sample, settled_sample
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
    candidates = settled_sample(engine, tenant, inputs, tenant.features.candidate_sample)
    reused = stored_answers(engine, tenant.tenant_id, identity, candidates)
    todo = [c for c in candidates if c.conversation_id not in reused]
    if not todo:
        return Usage()
    return send_sample(engine, tenant, identity, todo, openai, log, run_id=run_id,
                       label=f"candidate prompt {identity.prompt_version}")
