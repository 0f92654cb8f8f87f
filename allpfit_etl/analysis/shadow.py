"""The second opinion stored beside every loaded answer, so the two analyzers can be compared.

- OpenAI tenants: every conversation of the chunk is also analyzed by the regex analyzer (free).
- Regex tenants with ``shadow_openai_sample`` > 0: a fixed share of conversations, chosen by a
  hash of (tenant, conversation), is also analyzed by OpenAI, inside the monthly budget and
  through the ``llm_usage`` ledger, once the conversation has settled (as the tenant's own paid
  answers do; the next run of its day after that gets it).

Shadow answers go to ``conversation_analyses`` under their own analyzer identity, so they are
never loaded (the load joins on the tenant's identity) and never paid twice (the store is keyed
by content hash, analyzer, model and prompt version, and stored answers are reused).
"""

from __future__ import annotations

import datetime as dt
import hashlib

import sqlalchemy as sa

from allpfit_etl import settings
from allpfit_etl.analysis.answer_store import AnswerSink, settled_conversation_ids, stored_answers
from allpfit_etl.analysis.budget import estimate_chunk_cost_brl, month_to_date_spend_brl
from allpfit_etl.analysis.interface import ConversationInput, Usage
from allpfit_etl.analysis.openai_analyzer import OpenAIAccountError
from allpfit_etl.db import sql
from allpfit_etl.errors import ConfigError
from allpfit_etl.identities import (
    OPENAI_ANALYZER, PROMPT_VERSION, REGEX_ANALYZER, AnalyzerIdentity, openai_identity, regex_identity,
)
from allpfit_etl.tenants.registry import Tenant


def in_shadow_sample(tenant_id: int, conversation_id: int, fraction: float) -> bool:
    """Deterministic: the same conversations are picked on every run, whatever the chunking."""
    if fraction <= 0:
        return False
    if fraction >= 1:
        return True
    digest = hashlib.sha256(f"{tenant_id}:{conversation_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < fraction


def shadow_identity(tenant: Tenant) -> AnalyzerIdentity | None:
    """The analyzer that gives the second opinion for this tenant, or None."""
    if tenant.features.use_openai:
        return regex_identity()
    if tenant.features.shadow_openai_sample > 0:
        return openai_identity(tenant.features.model, tenant.features.prompt_version)
    return None


def answered_by(conn: sa.Connection, tenant_id: int, day, identity: AnalyzerIdentity) -> set[int]:
    """Conversations of the (tenant, day) with a stored answer of ``identity`` for their current content."""
    rows = conn.execute(sql("analytics/monitoring/shadow_answered_for_partition"), {
        "tenant_id": tenant_id, "day": day, "analyzer": identity.analyzer, "model": identity.model,
        "prompt_version": identity.prompt_version})
    return {int(r.conversation_id) for r in rows}


def missing_shadow_answers(conn: sa.Connection, tenant: Tenant, day, conversation_ids) -> set[int]:
    """Conversations of the (tenant, day) that should have a shadow answer for their current content
    and do not: the pending filter sends them on even when their loaded analysis is current, so a
    sample turned on today also covers conversations analyzed before."""
    identity = shadow_identity(tenant)
    if identity is None:
        return set()
    wanted = {int(c) for c in conversation_ids}
    if identity.analyzer == OPENAI_ANALYZER:
        wanted = {c for c in wanted if in_shadow_sample(tenant.tenant_id, c, tenant.features.shadow_openai_sample)}
    if not wanted:
        return set()
    answered = conn.execute(sql("analytics/monitoring/shadow_answered_for_partition"), {
        "tenant_id": tenant.tenant_id, "day": day, "analyzer": identity.analyzer, "model": identity.model,
        "prompt_version": identity.prompt_version})
    return wanted - {int(r.conversation_id) for r in answered}


def fit_in_budget(conversations: list[ConversationInput], budget_brl: float | None, spent_brl: float, *,
                  model: str, usd_brl: float, price_overrides: dict | None = None,
                  price=None, prompt_version: str = PROMPT_VERSION) -> list[ConversationInput]:
    """The longest prefix whose estimated cost keeps month-to-date spend within the budget."""
    if budget_brl is None:
        return conversations
    kept, total = [], spent_brl
    for conversation in conversations:
        total += estimate_chunk_cost_brl([conversation], model=model, usd_brl=usd_brl, price_overrides=price_overrides,
                                         price=price, prompt_version=prompt_version)
        if total > budget_brl:
            break
        kept.append(conversation)
    return kept


def settled_sample(engine: sa.Engine, tenant: Tenant, inputs: list[ConversationInput],
                   fraction: float) -> list[ConversationInput]:
    """The conversations of ``inputs`` in the tenant's hashed sample of ``fraction`` that have
    settled: a sampled answer is paid for once, like the tenant's own."""
    sampled = [c for c in inputs if in_shadow_sample(tenant.tenant_id, c.conversation_id, fraction)]
    settled = settled_conversation_ids(engine, tenant.tenant_id, [c.conversation_id for c in sampled],
                                       dt.datetime.now(dt.timezone.utc), tenant.features.settle_minutes)
    return [c for c in sampled if c.conversation_id in settled]


def send_sample(engine: sa.Engine, tenant: Tenant, identity: AnalyzerIdentity, todo: list[ConversationInput],
                openai, log, *, run_id: str | None, label: str) -> Usage:
    """Send sampled conversations to OpenAI under ``identity`` (the shadow sample, a candidate
    prompt): within the tenant's monthly budget, at its one price, answers and calls through the
    ledger. A configuration or account error skips the sample: the tenant's own answers still load."""
    spent = month_to_date_spend_brl(engine, tenant.tenant_id, settings.timezone_name())
    affordable = fit_in_budget(todo, tenant.features.monthly_budget_brl, spent, model=identity.model,
                               usd_brl=openai.usd_brl, price=openai.price(identity.model, tenant.features),
                               prompt_version=identity.prompt_version)
    if len(affordable) < len(todo):
        log.warning(f"{label}: {tenant.slug} is near its monthly budget; "
                    f"{len(todo) - len(affordable)} sampled conversation(s) not sent to OpenAI")
    if not affordable:
        return Usage()
    sink = AnswerSink(engine, tenant.tenant_id, identity, run_id)
    try:
        analyzer = openai.build_analyzer(
            tenant_id=tenant.tenant_id, model=identity.model, max_concurrency=tenant.features.max_concurrency,
            engine=engine, run_id=run_id, on_answer=sink.submit_answer, on_call=sink.submit_call,
            features=tenant.features, prompt_version=identity.prompt_version,
        )
        outcome = analyzer.analyze_chunk(affordable)
    except (ConfigError, OpenAIAccountError) as exc:
        log.warning(f"{label} skipped for {tenant.slug}: {exc}")
        return Usage()
    log.info(f"{label}: {len(outcome.results)} OpenAI answer(s) stored for {tenant.slug}, "
             f"{len(outcome.failures)} failed (retried when the conversation is pending again)")
    return outcome.usage


def analyze_shadow(engine: sa.Engine, tenant: Tenant, inputs: list[ConversationInput], openai, log, *,
                   run_id: str | None = None) -> Usage:
    """Store the shadow analyzer's answers for the chunk's conversations; returns what it spent."""
    identity = shadow_identity(tenant)
    if identity is None or not inputs:
        return Usage()
    if identity.analyzer == REGEX_ANALYZER:
        candidates = inputs
    else:
        candidates = settled_sample(engine, tenant, inputs, tenant.features.shadow_openai_sample)
    reused = stored_answers(engine, tenant.tenant_id, identity, candidates)
    todo = [c for c in candidates if c.conversation_id not in reused]
    if not todo:
        return Usage()
    if identity.analyzer == REGEX_ANALYZER:
        from allpfit_etl.analysis.regex_analyzer import RegexAnalyzer

        AnswerSink(engine, tenant.tenant_id, identity, run_id).save_answers(RegexAnalyzer().analyze_chunk(todo).results)
        return Usage()
    return send_sample(engine, tenant, identity, todo, openai, log, run_id=run_id, label="shadow sample")
