"""Per-chunk outcome counts and their sum: the numbers every materialization records."""

from __future__ import annotations

from dataclasses import dataclass, field, fields

from allpfit_etl.analysis.interface import AnalysisResult, Usage


_MERGED = {"started_at", "usage", "models", "outcomes"}  # not plain sums

# What a run did with one conversation; the names are the activity metadata keys they count in.
ANALYZED, REUSED, FAILED, DEFERRED, IN_BATCH = "analyzed", "reused_answers", "failures", "deferred_by_budget", "in_batch"
PROVISIONAL = "provisional"  # an OpenAI tenant's unsettled conversation, given its free regex answer for now
OUTCOMES = (ANALYZED, REUSED, FAILED, DEFERRED, IN_BATCH, PROVISIONAL)


@dataclass
class ChunkSummary:
    conversations: int = 0
    analyzed: int = 0
    reused_answers: int = 0
    failures: int = 0
    deferred_by_budget: int = 0
    in_batch: int = 0  # waiting in an OpenAI batch (submitted by this run or an earlier one)
    provisional: int = 0
    leads: int = 0
    visits: int = 0
    high_probability: int = 0
    named: int = 0
    elapsed_s: float = 0.0
    started_at: float = 0.0  # epoch seconds, to measure wall time across parallel chunks
    usage: Usage = field(default_factory=Usage)
    models: tuple[str, ...] = ()
    batch_ids: tuple[str, ...] = ()  # batches this run submitted
    # (tenant id, conversation id) → outcome: lets the fan-in split the counts by partition.
    outcomes: dict[tuple[int, int], str] = field(default_factory=dict)

    def mark(self, tenant_id: int, conversation_ids, outcome: str) -> None:
        for conversation_id in conversation_ids:
            self.outcomes[(tenant_id, int(conversation_id))] = outcome

    def count_results(self, results: list[AnalysisResult]) -> None:
        for result in results:
            a = result.analysis
            self.leads += bool(a.is_lead)
            self.visits += bool(a.visita_agendada)
            self.high_probability += a.probabilidade_conversao >= 4
            self.named += bool(a.nome_mapeado_bot)

    def add(self, other: "ChunkSummary") -> "ChunkSummary":
        counts = {f.name: getattr(self, f.name) + getattr(other, f.name) for f in fields(self) if f.name not in _MERGED}
        return ChunkSummary(
            **counts,
            started_at=min(filter(None, (self.started_at, other.started_at)), default=0.0),
            usage=self.usage.add(other.usage),
            models=tuple(sorted(set(self.models) | set(other.models))),
            outcomes={**self.outcomes, **other.outcomes},
        )

    def metadata(self, wall_seconds: float | None = None) -> dict:
        """Numeric metadata (plotted per partition in the UI) plus the model names."""
        seconds = wall_seconds if wall_seconds is not None else self.elapsed_s
        u = self.usage
        return {
            "conversations": self.conversations,
            "analyzed": self.analyzed,
            "reused_answers": self.reused_answers,
            "failures": self.failures,
            "deferred_by_budget": self.deferred_by_budget,
            "in_batch": self.in_batch,
            "provisional": self.provisional,
            "openai.batch_ids": ", ".join(self.batch_ids) or "none",
            "leads": self.leads,
            "visits": self.visits,
            "high_probability": self.high_probability,
            "named": self.named,
            "openai.calls": u.calls,
            "openai.prompt_tokens": u.prompt_tokens,
            "openai.cached_tokens": u.cached_tokens,
            "openai.completion_tokens": u.completion_tokens,
            "openai.total_tokens": u.total_tokens,
            "cost_usd": round(u.cost_usd, 8),
            "cost_brl": round(u.cost_brl, 8),
            "retries": u.retries,
            "conversations_per_second": round(self.analyzed / seconds, 3) if seconds > 0 else 0.0,
            "model": ", ".join(self.models) or "none",
        }
