"""Which conversations need an analysis: the rule that keeps every run from paying twice."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from allpfit_etl.identities import OPENAI_ANALYZER, REGEX_ANALYZER, AnalyzerIdentity

NEW, CONTENT_CHANGED, ANALYZER_CHANGED = "new", "content_changed", "analyzer_changed"
SHADOW_MISSING = "shadow_missing"  # analysis current, the other analyser's answer missing (analysis/shadow.py)
SETTLED = "settled"  # the provisional answer's conversation settled: the final answer is due
REASONS = (NEW, CONTENT_CHANGED, ANALYZER_CHANGED, SHADOW_MISSING, SETTLED)

# What a conversations_analytics row holds: the tenant's own analyzer's answer, or the free regex
# answer standing in until an OpenAI tenant's conversation settles.
FINAL, PROVISIONAL = "final", "provisional"
RESOLVED_STATUS = "resolved"


@dataclass(frozen=True)
class StoredAnalysis:
    content_hash: str
    analyzer: str
    model: str
    prompt_version: str
    answer_kind: str = FINAL

    @property
    def identity(self) -> AnalyzerIdentity:
        return AnalyzerIdentity(self.analyzer, self.model, self.prompt_version)


def pending_reason(
    content_hash: str, current: AnalyzerIdentity, stored: StoredAnalysis | None, *, reanalyze_with_regex: bool = False,
    current_answer_stored: bool = False,
) -> str | None:
    """Why a conversation must be analysed again, or ``None`` when its stored analysis is current.

    A paid OpenAI answer for unchanged content is kept when the tenant falls back to regex,
    unless the tenant explicitly asks for regex re-analysis. It is kept too when only the prompt
    version changed: history is re-paid by ``allpfit-etl reanalyze`` only, and the answer that
    command stored (``current_answer_stored``) is then loaded without another call.
    """
    if stored is None:
        return NEW
    if stored.content_hash != content_hash:
        return CONTENT_CHANGED
    if stored.identity == current:
        return None
    if stored.analyzer == OPENAI_ANALYZER and current.analyzer == REGEX_ANALYZER and not reanalyze_with_regex:
        return None
    if (stored.analyzer == current.analyzer == OPENAI_ANALYZER and stored.model == current.model
            and stored.answer_kind == FINAL and not current_answer_stored):
        return None  # a new prompt version: new and changed conversations get it, history stays
    return ANALYZER_CHANGED


def is_settled(last_activity_at: dt.datetime | None, status: str | None, now: dt.datetime, settle_minutes: float) -> bool:
    """A conversation has settled when it is resolved, or quiet for ``settle_minutes``."""
    if status == RESOLVED_STATUS or last_activity_at is None:
        return True
    return last_activity_at <= now - dt.timedelta(minutes=settle_minutes)


@dataclass(frozen=True)
class PendingDecision:
    reason: str
    provisional: bool  # answered by regex for free now, by the tenant's analyzer once settled


def pending_decision(
    content_hash: str, current: AnalyzerIdentity, stored: StoredAnalysis | None, *, settled: bool,
    reanalyze_with_regex: bool = False, current_answer_stored: bool = False,
) -> PendingDecision | None:
    """What a run does with one conversation: nothing (``None``), a provisional answer, or the
    final one. Only the tenant's OpenAI analysis waits for the conversation to settle: a chat still
    going on would otherwise be paid for again at every message, its whole transcript each time."""
    reason = pending_reason(content_hash, current, stored, reanalyze_with_regex=reanalyze_with_regex,
                            current_answer_stored=current_answer_stored)
    if reason is None:
        return None
    provisional_current = stored is not None and stored.answer_kind == PROVISIONAL and stored.content_hash == content_hash
    if current.analyzer == OPENAI_ANALYZER and not settled:
        return None if provisional_current else PendingDecision(reason, provisional=True)
    return PendingDecision(SETTLED if provisional_current else reason, provisional=False)
