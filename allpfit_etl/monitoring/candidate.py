"""``allpfit-etl compare SLUG --candidate``: a candidate prompt's answers against the current ones,
on the conversations both answered (``analysis/candidate.py`` stores the candidate's)."""

from __future__ import annotations

from typing import Sequence

import sqlalchemy as sa

from allpfit_etl.db import sql
from allpfit_etl.errors import ConfigError
from allpfit_etl.monitoring.agreement import cohen_kappa, fold_name
from allpfit_etl.tenants.registry import get_tenant

EXAMPLES = 5


def candidate_pairs(engine: sa.Engine, tenant, candidate_version: str) -> list:
    identity = tenant.identity()
    with engine.connect() as conn:
        return conn.execute(sql("analytics/monitoring/candidate_pairs"), {
            "tenant_id": tenant.tenant_id, "analyzer": identity.analyzer, "model": identity.model,
            "prompt_version": identity.prompt_version, "candidate_prompt_version": candidate_version}).all()


def _field(rows: Sequence, name: str) -> dict:
    counts = {"true_true": 0, "true_false": 0, "false_true": 0, "false_false": 0}
    for r in rows:
        current, candidate = bool(getattr(r, f"current_{name}")), bool(getattr(r, f"candidate_{name}"))
        counts[f"{'true' if current else 'false'}_{'true' if candidate else 'false'}"] += 1
    agree = counts["true_true"] + counts["false_false"]
    return {"agreement": agree / len(rows) if rows else None, "kappa": cohen_kappa(**counts),
            "current_rate": (counts["true_true"] + counts["true_false"]) / len(rows) if rows else None,
            "candidate_rate": (counts["true_true"] + counts["false_true"]) / len(rows) if rows else None}


def candidate_figures(rows: Sequence) -> dict:
    """Agreement, kappa, probability MAE, same names, and tokens and cost per conversation of each side."""
    n = len(rows)

    def mean(name: str) -> float | None:
        return sum(float(getattr(r, name) or 0) for r in rows) / n if n else None

    return {
        "compared": n,
        "is_lead": _field(rows, "is_lead"),
        "visita_agendada": _field(rows, "visita_agendada"),
        "probabilidade_mae": (sum(abs(int(r.current_probabilidade_conversao) - int(r.candidate_probabilidade_conversao))
                                  for r in rows) / n) if n else None,
        "names_match_share": (sum(fold_name(r.current_nome_mapeado_bot) == fold_name(r.candidate_nome_mapeado_bot)
                                  for r in rows) / n) if n else None,
        **{f"{side}_{what}_per_conversation": mean(f"{side}_{what}")
           for side in ("current", "candidate") for what in ("prompt_tokens", "cached_tokens", "cost_usd")},
    }


def candidate_quality(rows: Sequence) -> dict[str, dict] | None:
    """Both prompts scored against the labels (ground_truth.quality_row) on the same conversations:
    the sampled ones that carry an outcome. None when none does."""
    import pandas as pd

    from allpfit_etl.monitoring.ground_truth import quality_row

    labelled = [r for r in rows if r.outcome is not None]
    if not labelled:
        return None
    return {side: quality_row(pd.DataFrame({
        "is_lead": [bool(getattr(r, f"{side}_is_lead")) for r in labelled],
        "visita_agendada": [bool(getattr(r, f"{side}_visita_agendada")) for r in labelled],
        "probabilidade_conversao": [int(getattr(r, f"{side}_probabilidade_conversao")) for r in labelled],
        "outcome": [r.outcome for r in labelled], "n": [1] * len(labelled)})) for side in ("current", "candidate")}


def quality_lines(quality: dict[str, dict] | None) -> list[str]:
    if quality is None:
        return ["  quality against labels: none of the compared conversations carries an outcome label yet "
                "(map the tenant's labels: docs/ground_truth.md), or run `allpfit-etl eval` on a labelled set"]
    first = quality["current"]
    small = " *fewer than 20: read with care" if first["small_sample"] else ""
    lines = [f"  quality against labels, on the {first['labelled']} compared conversations with an outcome{small}:"]
    for side, q in quality.items():
        lines.append(f"  {side:<9} is_lead precision {_share(q['is_lead_precision'])}, recall {_share(q['is_lead_recall'])}, "
                     f"F1 {_kappa(q['is_lead_f1'])}; visita precision {_share(q['visita_precision'])}, "
                     f"recall {_share(q['visita_recall'])}; AUC converted {_kappa(q['auc_converted'])}")
    return lines


def _share(value: float | None) -> str:
    return "—" if value is None else f"{value:.1%}"


def _kappa(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"


def run_candidate_compare(engine: sa.Engine, slug: str, out=print) -> int:
    tenant = get_tenant(engine, slug)
    f = tenant.features
    if not f.use_openai or not f.candidate_prompt_version:
        raise ConfigError(f"tenant {tenant.slug!r} runs no candidate prompt: set use_openai=true, "
                          "candidate_prompt_version=… and candidate_sample=… first")
    rows = candidate_pairs(engine, tenant, f.candidate_prompt_version)
    out(f"{tenant.name} ({tenant.slug}) · {f.model} · current prompt {f.prompt_version} vs candidate "
        f"{f.candidate_prompt_version} (sample {f.candidate_sample:.0%})")
    figures = candidate_figures(rows)
    if not rows:
        out("nothing to compare yet: no conversation has both answers (the sample is taken as settled "
            "conversations are analysed)")
        return 0
    out(f"  compared conversations: {figures['compared']}")
    for name in ("is_lead", "visita_agendada"):
        g = figures[name]
        out(f"  {name:<16} agreement {_share(g['agreement'])}, kappa {_kappa(g['kappa'])}; "
            f"rate current {_share(g['current_rate'])}, candidate {_share(g['candidate_rate'])}")
    out(f"  probabilidade_conversao MAE {figures['probabilidade_mae']:.3f}; same name {_share(figures['names_match_share'])}")
    for side in ("current", "candidate"):
        out(f"  {side:<9} per conversation: {figures[f'{side}_prompt_tokens_per_conversation']:.0f} prompt tokens "
            f"({figures[f'{side}_cached_tokens_per_conversation']:.0f} cached), US$ {figures[f'{side}_cost_usd_per_conversation']:.6f}")
    for line in quality_lines(candidate_quality(rows)):
        out(line)
    differ = [r for r in rows if (r.current_is_lead, r.current_visita_agendada) != (r.candidate_is_lead, r.candidate_visita_agendada)]
    if differ:
        out("disagreements (current | candidate):")
        for r in differ[:EXAMPLES]:
            out(f"  conversation {r.conversation_id} ({r.day}): lead {r.current_is_lead}/{r.candidate_is_lead}, "
                f"visit {r.current_visita_agendada}/{r.candidate_visita_agendada}, "
                f"prob {r.current_probabilidade_conversao}/{r.candidate_probabilidade_conversao}")
    return 0
