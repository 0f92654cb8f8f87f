"""The analyzer contract: a chunk of conversations in; results and usage out.

The regex analyzer and the OpenAI analyzer both implement ``Analyzer``; the chunk op in
``analysis/assets.py`` only knows this interface.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Protocol, Sequence

from allpfit_etl.identities import AnalyzerIdentity


@dataclass(frozen=True)
class ConversationInput:
    """One conversation as the analyzer sees it."""

    tenant_id: int
    conversation_id: int
    content_hash: str
    message_compiled: str
    contact_name: str | None = None


@dataclass(frozen=True)
class LeadAnalysis:
    """The answer for one conversation. Field names are the dashboards' column names."""

    is_lead: bool
    visita_agendada: bool
    probabilidade_conversao: int
    nome_mapeado_bot: str | None
    analise_ia: str

    def __post_init__(self) -> None:
        if not 0 <= int(self.probabilidade_conversao) <= 5:
            raise ValueError(f"probabilidade_conversao out of range 0-5: {self.probabilidade_conversao}")


@dataclass(frozen=True)
class AnalysisResult:
    conversation_id: int
    content_hash: str
    analysis: LeadAnalysis


@dataclass(frozen=True)
class AnalysisFailure:
    conversation_id: int
    content_hash: str
    error_kind: str
    attempts: int
    message: str = ""


@dataclass
class Usage:
    """Tokens and money spent by one chunk (all zero for the regex analyzer)."""

    calls: int = 0
    prompt_tokens: int = 0
    cached_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    cost_brl: float = 0.0
    retries: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def add(self, other: "Usage") -> "Usage":
        return Usage(**{f.name: getattr(self, f.name) + getattr(other, f.name) for f in fields(self)})


@dataclass
class ChunkOutcome:
    results: list[AnalysisResult] = field(default_factory=list)
    failures: list[AnalysisFailure] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)


class Analyzer(Protocol):
    identity: AnalyzerIdentity

    def analyze_chunk(self, conversations: Sequence[ConversationInput]) -> ChunkOutcome: ...


__all__ = ["AnalysisFailure", "AnalysisResult", "Analyzer", "AnalyzerIdentity", "ChunkOutcome", "ConversationInput",
           "LeadAnalysis", "Usage"]
