"""Which conversations need an analysis: the rule that keeps every run from paying twice."""

from __future__ import annotations

from dataclasses import dataclass

from allpfit_etl.identities import OPENAI_ANALYZER, REGEX_ANALYZER, AnalyzerIdentity

NEW, CONTENT_CHANGED, ANALYZER_CHANGED = "new", "content_changed", "analyzer_changed"
SHADOW_MISSING = "shadow_missing"  # analysis current, the other analyser's answer missing (analysis/shadow.py)


@dataclass(frozen=True)
class StoredAnalysis:
    content_hash: str
    analyzer: str
    model: str
    prompt_version: str

    @property
    def identity(self) -> AnalyzerIdentity:
        return AnalyzerIdentity(self.analyzer, self.model, self.prompt_version)


def pending_reason(
    content_hash: str, current: AnalyzerIdentity, stored: StoredAnalysis | None, *, reanalyze_with_regex: bool = False
) -> str | None:
    """Why a conversation must be analysed again, or ``None`` when its stored analysis is current.

    A paid OpenAI answer for unchanged content is kept when the tenant falls back to regex,
    unless the tenant explicitly asks for regex re-analysis.
    """
    if stored is None:
        return NEW
    if stored.content_hash != content_hash:
        return CONTENT_CHANGED
    if stored.identity == current:
        return None
    if stored.analyzer == OPENAI_ANALYZER and current.analyzer == REGEX_ANALYZER and not reanalyze_with_regex:
        return None
    return ANALYZER_CHANGED
