"""The funnel, quality and calibration as Markdown (asset metadata, ``allpfit-etl compare``).

Every figure is shown with the count it is over; one over fewer than ``SMALL_SAMPLE``
conversations carries a ``*`` (small sample), explained under the table."""

from __future__ import annotations

import pandas as pd

from allpfit_etl.monitoring.ground_truth import SMALL_SAMPLE, is_small

SMALL_NOTE = f"`*` small sample: fewer than {SMALL_SAMPLE} conversations behind the figure"


def figure(value, count: int, percent: bool = True) -> str:
    """``62.5% (n=8)*``: the value, what it is over, and the small-sample mark."""
    if value is None or pd.isna(value):
        shown = "—"
    else:
        shown = f"{value:.1%}" if percent else f"{value:.3f}"
    return f"{shown} (n={int(count)}){'*' if is_small(int(count)) else ''}"


def funnel_markdown(funnel: pd.DataFrame, slug: str | None = None) -> str:
    if funnel.empty:
        return "no conversations loaded"
    lead = "| tenant " if slug else ""
    lines = [f"{lead}| month | conversations | leads | visits scheduled | visited | converted | conversion rate | labelled |",
             f"{'|---' if slug else ''}|---|---|---|---|---|---|---|---|"]
    for r in funnel.itertuples():
        cell = f"| {slug} " if slug else ""
        lines.append(f"{cell}| {r.month:%Y-%m} | {r.conversations} | {r.leads} | {r.visits_scheduled} | {r.visited} | "
                     f"{r.converted} | {figure(r.conversion_rate, r.leads)} | {figure(r.labelled_share, r.conversations)} |")
    return "\n".join(lines + ["", SMALL_NOTE])


def _analyzer(r) -> str:
    return f"{r.analyzer} {r.model} {r.prompt_version}" if r.analyzer != "regex" else f"regex {r.prompt_version}"


def quality_markdown(quality: pd.DataFrame) -> str:
    if quality.empty:
        return "no labelled conversation analysed yet"
    lines = ["| month | analyzer | scored on | labelled | is_lead precision | is_lead recall | is_lead F1 | "
             "visita precision | visita recall | AUC converted |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in quality.itertuples():
        scope = "both answered" if r.scope == "paired" else "all its answers"
        positives = r.converted
        negatives = r.labelled - r.converted
        lines.append(
            f"| {r.month:%Y-%m} | {_analyzer(r)} | {scope} | {r.labelled}{'*' if r.small_sample else ''} | "
            f"{figure(r.is_lead_precision, r.is_lead_tp + r.is_lead_fp)} | {figure(r.is_lead_recall, r.is_lead_tp + r.is_lead_fn)} | "
            f"{figure(r.is_lead_f1, r.labelled, percent=False)} | {figure(r.visita_precision, r.visita_tp + r.visita_fp)} | "
            f"{figure(r.visita_recall, r.visita_tp + r.visita_fn)} | "
            f"{figure(r.auc_converted, min(positives, negatives), percent=False)} |")
    return "\n".join(lines + ["", SMALL_NOTE + " (AUC: the smaller of converted and not converted)"])


def calibration_markdown(calibration: pd.DataFrame) -> str:
    """One line per analyzer: the conversion rate at each probability 0–5."""
    if calibration.empty:
        return "no labelled conversation analysed yet"
    lines = ["| month | analyzer | scored on | " + " | ".join(f"prob. {p}" for p in range(6)) + " |",
             "|---|---|---|" + "---|" * 6]
    keys = ["month", "analyzer", "model", "prompt_version", "scope"]
    for key, rows in calibration.groupby(keys, sort=True):
        r = rows.iloc[0]
        cells = [f"{figure(x.conversion_rate, x.conversations)}" for x in rows.sort_values("probabilidade_conversao").itertuples()]
        scope = "both answered" if r.scope == "paired" else "all its answers"
        lines.append(f"| {r.month:%Y-%m} | {_analyzer(r)} | {scope} | " + " | ".join(cells) + " |")
    return "\n".join(lines + ["", SMALL_NOTE])
