"""Figures of an analyser's answers against labels. Pure functions.

Cohen's kappa and name folding are the monitoring's own (``monitoring/agreement.py``), so a
kappa here and a kappa in ``compare`` mean the same thing.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Sequence

from allpfit_etl.analysis.interface import LeadAnalysis
from allpfit_etl.evaluation.dataset import Labels
from allpfit_etl.monitoring.agreement import cohen_kappa, fold_name


@dataclass(frozen=True)
class BinaryScores:
    tp: int
    fp: int
    fn: int
    tn: int
    precision: float | None
    recall: float | None
    f1: float | None
    kappa: float | None

    def as_dict(self) -> dict:
        return asdict(self)


def _ratio(numerator: int, denominator: int) -> float | None:
    return numerator / denominator if denominator else None


def binary_scores(truth: Sequence[bool], predicted: Sequence[bool]) -> BinaryScores:
    """Precision, recall and F1 of the positive class; None where a ratio has nothing to divide."""
    pairs = list(zip(truth, predicted, strict=True))
    tp = sum(1 for t, p in pairs if t and p)
    fp = sum(1 for t, p in pairs if not t and p)
    fn = sum(1 for t, p in pairs if t and not p)
    tn = len(pairs) - tp - fp - fn
    precision, recall = _ratio(tp, tp + fp), _ratio(tp, tp + fn)
    f1 = _ratio(2 * tp, 2 * tp + fp + fn)
    # cohen_kappa takes <label>_<answer> counts
    return BinaryScores(tp, fp, fn, tn, precision, recall, f1, cohen_kappa(tp, fn, fp, tn))


def mean_absolute_error(truth: Sequence[int], predicted: Sequence[int]) -> float | None:
    pairs = list(zip(truth, predicted, strict=True))
    return sum(abs(t - p) for t, p in pairs) / len(pairs) if pairs else None


def same_name(label: str | None, answer: str | None) -> bool:
    """Case, accents and spacing aside; no name matches no name."""
    return fold_name(label) == fold_name(answer)


def miss_severity(labels: Labels, answer: LeadAnalysis) -> int:
    """How bad a wrong answer is: a wrong lead or visit counts more than a probability off by one."""
    return (4 * (labels.is_lead != answer.is_lead) + 3 * (labels.visita_agendada != answer.visita_agendada)
            + abs(labels.probabilidade_conversao - answer.probabilidade_conversao)
            + (not same_name(labels.nome, answer.nome_mapeado_bot)))


@dataclass(frozen=True)
class QualityFigures:
    conversations: int
    answered: int
    is_lead: BinaryScores
    visita_agendada: BinaryScores
    probabilidade_mae: float | None
    nome_exact: float | None


def quality(pairs: Sequence[tuple[Labels, LeadAnalysis]], conversations: int) -> QualityFigures:
    """Figures over the conversations that got an answer (``pairs``) out of ``conversations``."""
    labels = [label for label, _ in pairs]
    answers = [answer for _, answer in pairs]
    names = [same_name(label.nome, answer.nome_mapeado_bot) for label, answer in pairs]
    return QualityFigures(
        conversations=conversations,
        answered=len(pairs),
        is_lead=binary_scores([x.is_lead for x in labels], [a.is_lead for a in answers]),
        visita_agendada=binary_scores([x.visita_agendada for x in labels], [a.visita_agendada for a in answers]),
        probabilidade_mae=mean_absolute_error([x.probabilidade_conversao for x in labels],
                                              [a.probabilidade_conversao for a in answers]),
        nome_exact=sum(names) / len(names) if names else None,
    )
