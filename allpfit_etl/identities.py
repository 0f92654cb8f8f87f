"""Which analyzer produced an answer, and which one counts as current for a tenant.

An answer is current only if its analyzer kind, model and prompt version all match: this is
what the pending filter, the answer store and the load compare.
"""

from __future__ import annotations

from dataclasses import dataclass

OPENAI_ANALYZER = "openai"
REGEX_ANALYZER = "regex"
# A change to the regex rules or to the prompt text means a new version, so old answers are redone.
REGEX_VERSION = "regex-v1"
PROMPT_VERSION = "lead-v1"  # the default; a tenant picks another with its prompt_version feature
PROMPT_VERSIONS = ("lead-v1", "lead-v2")  # each one a file in analysis/prompts/


@dataclass(frozen=True)
class AnalyzerIdentity:
    """What makes a stored analysis current: analyzer kind, model and prompt version."""

    analyzer: str  # REGEX_ANALYZER | OPENAI_ANALYZER
    model: str  # "" for regex
    prompt_version: str


def regex_identity() -> AnalyzerIdentity:
    return AnalyzerIdentity(REGEX_ANALYZER, "", REGEX_VERSION)


def openai_identity(model: str, prompt_version: str = PROMPT_VERSION) -> AnalyzerIdentity:
    return AnalyzerIdentity(OPENAI_ANALYZER, model, prompt_version)


def analyzer_identity(use_openai: bool, model: str, prompt_version: str = PROMPT_VERSION) -> AnalyzerIdentity:
    """The identity of the analyzer a tenant's features select."""
    return openai_identity(model, prompt_version) if use_openai else regex_identity()
