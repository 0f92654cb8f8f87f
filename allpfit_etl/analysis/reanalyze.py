"""Re-analysing a tenant's history with its current prompt, on request only (``allpfit-etl reanalyze``).

Switching a tenant's ``prompt_version`` never re-pays its history (``pending.rules``): this is
the explicit way, through the Batch API at half price, with the estimate shown first. The
batch's answers are stored under the new prompt and the follow-up runs load them.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import sqlalchemy as sa

from allpfit_etl.analysis.interface import ConversationInput
from allpfit_etl.analysis.openai_analyzer import EXPECTED_COMPLETION_TOKENS, build_messages
from allpfit_etl.analysis.pricing import batch_price_for, cost_usd, price_for
from allpfit_etl.analysis.truncation import estimate_tokens
from allpfit_etl.db import sql
from allpfit_etl.identities import AnalyzerIdentity


def history_to_reanalyze(engine: sa.Engine, tenant_id: int, identity: AnalyzerIdentity, first: dt.date,
                         last: dt.date) -> list[ConversationInput]:
    """The conversations of ``first``–``last`` without an answer of ``identity`` for their content."""
    with engine.connect() as conn:
        rows = conn.execute(sql("analytics/reanalyze/history_without_current_answer"), {
            "tenant_id": tenant_id, "first_day": first, "last_day": last, "analyzer": identity.analyzer,
            "model": identity.model, "prompt_version": identity.prompt_version}).all()
    return [ConversationInput(tenant_id, int(r.conversation_id), r.content_hash, r.message_compiled, r.contact_name)
            for r in rows]


@dataclass(frozen=True)
class CostEstimate:
    conversations: int
    prompt_tokens: int
    completion_tokens: int
    batch_usd: float
    realtime_usd: float


def estimate_cost(conversations: list[ConversationInput], identity: AnalyzerIdentity, max_prompt_tokens: int,
                  price_overrides: dict | None = None) -> CostEstimate:
    """An upper bound: the exact messages the batch will carry, no cache discount."""
    prompt = sum(estimate_tokens(m["content"]) for c in conversations
                 for m in build_messages(c, max_prompt_tokens, identity.prompt_version))
    completion = EXPECTED_COMPLETION_TOKENS * len(conversations)
    return CostEstimate(len(conversations), prompt, completion,
                        cost_usd(batch_price_for(identity.model, price_overrides), prompt, 0, completion),
                        cost_usd(price_for(identity.model, price_overrides), prompt, 0, completion))
