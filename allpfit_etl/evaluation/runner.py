"""One evaluation: an analyser over a labelled set, through the pipeline's transcript compiler
and, for OpenAI, the pipeline's client and analyser; the figures and what it cost."""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlsplit

from allpfit_etl.analysis.interface import Analyzer, LeadAnalysis, Usage
from allpfit_etl.analysis.pricing import ModelPrice
from allpfit_etl.analysis.prompts import require_prompt_version
from allpfit_etl.errors import ConfigError
from allpfit_etl.evaluation.dataset import EvalSet, LabelledConversation, analyzer_inputs
from allpfit_etl.evaluation.metrics import QualityFigures, miss_severity, quality
from allpfit_etl.identities import OPENAI_ANALYZER, PROMPT_VERSION, REGEX_ANALYZER, REGEX_VERSION

WORST_MISSES = 5
NO_PRICE = ModelPrice(0.0, 0.0, 0.0)


@dataclass(frozen=True)
class EvalSpec:
    analyzer: str = REGEX_ANALYZER  # regex | openai
    model: str = "gpt-4o-mini"
    prompt_version: str = PROMPT_VERSION
    timezone: str = "America/Sao_Paulo"


@dataclass(frozen=True)
class Miss:
    id: str
    severity: int
    expected: dict
    answered: dict
    note: str | None


@dataclass
class EvalReport:
    set_name: str
    fingerprint: str
    analyzer: str
    model: str
    prompt_version: str
    endpoint: str | None
    quality: QualityFigures
    usage: Usage
    failed: list[str] = field(default_factory=list)  # ids without an answer
    worst: list[Miss] = field(default_factory=list)
    priced: bool = True  # False: a model without a known price (a local server), cost shown as 0
    evaluation_id: int | None = None

    def per_conversation(self, value: float) -> float:
        return value / self.quality.conversations if self.quality.conversations else 0.0

    def as_json(self) -> dict:
        q, u = self.quality, self.usage
        return {
            "evaluation_id": self.evaluation_id, "set": self.set_name, "set_fingerprint": self.fingerprint,
            "analyzer": self.analyzer, "model": self.model, "prompt_version": self.prompt_version,
            "conversations": q.conversations, "answered": q.answered, "failed": len(self.failed),
            "is_lead": q.is_lead.as_dict(), "visita_agendada": q.visita_agendada.as_dict(),
            "probabilidade_mae": q.probabilidade_mae, "nome_exact": q.nome_exact,
            "calls": u.calls, "prompt_tokens": u.prompt_tokens, "cached_tokens": u.cached_tokens,
            "completion_tokens": u.completion_tokens, "cost_usd": u.cost_usd, "priced": self.priced,
            "cost_usd_per_conversation": self.per_conversation(u.cost_usd),
            "worst_misses": [vars(m) for m in self.worst],
        }


def endpoint_label(base_url: str | None) -> str:
    """Where answers came from, without credentials or paths: ``api.openai.com``, ``127.0.0.1:8000``."""
    if not base_url:
        return "api.openai.com"
    parts = urlsplit(base_url)
    return parts.hostname + (f":{parts.port}" if parts.port else "") if parts.hostname else "?"


def run_evaluation(eval_set: EvalSet, spec: EvalSpec, analyzer: Analyzer | None = None, *, priced: bool = True,
                   endpoint: str | None = None) -> EvalReport:
    """Analyse every conversation of the set with ``analyzer`` (the regex analyser when None and
    ``spec`` says regex) and compute the figures. Nothing is stored here."""
    if spec.analyzer == REGEX_ANALYZER:
        from allpfit_etl.analysis.regex_analyzer import RegexAnalyzer

        analyzer, model, version = analyzer or RegexAnalyzer(), "", REGEX_VERSION
    elif spec.analyzer == OPENAI_ANALYZER and analyzer is not None:
        model, version = spec.model, require_prompt_version(spec.prompt_version)
    else:
        raise ConfigError(f"unknown analyzer {spec.analyzer!r}: use regex or openai")
    inputs = analyzer_inputs(eval_set, spec.timezone)
    outcome = analyzer.analyze_chunk(inputs)
    answers = {r.conversation_id: r.analysis for r in outcome.results}
    pairs, failed, misses = [], [], []
    for number, conversation in enumerate(eval_set.conversations, start=1):
        answer = answers.get(number)
        if answer is None:
            failed.append(conversation.id)
            continue
        pairs.append((conversation.labels, answer))
        severity = miss_severity(conversation.labels, answer)
        if severity:
            misses.append(_miss(conversation, answer, severity))
    misses.sort(key=lambda m: (-m.severity, m.id))
    return EvalReport(eval_set.name, eval_set.fingerprint, spec.analyzer, model, version, endpoint,
                      quality(pairs, len(eval_set.conversations)), outcome.usage, failed, misses[:WORST_MISSES], priced)


def _miss(conversation: LabelledConversation, answer: LeadAnalysis, severity: int) -> Miss:
    labels = conversation.labels
    return Miss(conversation.id, severity,
                {"is_lead": labels.is_lead, "visita_agendada": labels.visita_agendada,
                 "probabilidade_conversao": labels.probabilidade_conversao, "nome": labels.nome},
                {"is_lead": answer.is_lead, "visita_agendada": answer.visita_agendada,
                 "probabilidade_conversao": answer.probabilidade_conversao, "nome": answer.nome_mapeado_bot},
                conversation.note)
