"""Provisional answers: an OpenAI tenant's conversation that is still going on gets the free regex
answer now, so a new lead reaches the dashboards within minutes; the paid answer waits until the
conversation settles (``pending.rules.pending_decision``).

The answers are stored under the regex identity, where they also serve as the shadow answers the
monitoring compares, so the final run reuses them instead of computing them again.
"""

from __future__ import annotations

import sqlalchemy as sa

from allpfit_etl.analysis.answer_store import AnswerSink, chunk_inputs, stored_answers
from allpfit_etl.analysis.summary import PROVISIONAL, ChunkSummary
from allpfit_etl.identities import regex_identity
from allpfit_etl.tenants.registry import Tenant


def answer_provisionally(engine: sa.Engine, tenant: Tenant, conversation_ids: list[int], run_id: str | None) -> ChunkSummary:
    """Store the regex answer of each conversation (reused when its content is unchanged)."""
    from allpfit_etl.analysis.regex_analyzer import RegexAnalyzer

    identity = regex_identity()
    inputs = chunk_inputs(engine, tenant.tenant_id, conversation_ids)
    reused = stored_answers(engine, tenant.tenant_id, identity, inputs)
    todo = [c for c in inputs if c.conversation_id not in reused]
    results = RegexAnalyzer().analyze_chunk(todo).results if todo else []
    AnswerSink(engine, tenant.tenant_id, identity, run_id).save_answers(results)
    summary = ChunkSummary(conversations=len(inputs), provisional=len(inputs), models=(identity.analyzer,))
    summary.count_results([*reused.values(), *results])
    summary.mark(tenant.tenant_id, (c.conversation_id for c in inputs), PROVISIONAL)
    return summary
