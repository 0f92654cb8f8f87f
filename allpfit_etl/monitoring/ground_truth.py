"""The analyzers against what the sales team recorded: the funnel, each analyzer's quality and its
calibration, per tenant and month. Pure functions on pandas frames of counts (the SQL in
``sql/analytics/monitoring/*outcome*`` groups the rows; docs/ground_truth.md defines every figure).

Only conversations that carry an outcome are scored: an unlabelled conversation is unknown, not a
negative (agents label some conversations, not all). They count in the coverage (``labelled_share``).
"""

from __future__ import annotations

import datetime as dt

import pandas as pd

from allpfit_etl.tenants.outcomes import CONVERTED, LEAD_OUTCOMES, VISITED_OUTCOMES
from allpfit_etl.timeutil import as_date

# A figure over fewer conversations than this is shown as a small sample.
SMALL_SAMPLE = 20
PROBABILITY_LEVELS = range(6)
ALL, PAIRED = "all", "paired"  # every labelled answer of an analyzer / those the other analyzer answered too
ANSWER_KEYS = ["month", "analyzer", "model", "prompt_version"]

FUNNEL_COLUMNS = ["month", "conversations", "leads", "visits_scheduled", "labelled", "visited", "converted",
                  "conversion_rate", "labelled_share", "small_sample"]
QUALITY_COLUMNS = ANSWER_KEYS + [
    "scope", "labelled", "is_lead_tp", "is_lead_fp", "is_lead_fn", "is_lead_tn", "is_lead_precision", "is_lead_recall",
    "is_lead_f1", "visita_tp", "visita_fp", "visita_fn", "visita_tn", "visita_precision", "visita_recall", "converted",
    "auc_converted", "small_sample",
]
CALIBRATION_COLUMNS = ANSWER_KEYS + ["scope", "probabilidade_conversao", "conversations", "converted", "conversion_rate",
                                     "small_sample"]


def ratio(count: int, total: int) -> float | None:
    return count / total if total else None


def is_small(count: int) -> bool:
    return count < SMALL_SAMPLE


def f1(precision: float | None, recall: float | None) -> float | None:
    if precision is None or recall is None:
        return None
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


def month_of(day) -> dt.date:
    """A day (a date, or ISO text from SQLite) → the first day of its month."""
    return as_date(day).replace(day=1)


def _with_month(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.assign(month=[month_of(d) for d in frame["day"]]) if not frame.empty else frame.assign(month=[])


# --- the funnel -------------------------------------------------------------------------------

def funnel_rows(daily: pd.DataFrame) -> pd.DataFrame:
    """One row per month from per-day counts (``funnel_by_day.sql``: day, conversations, leads,
    visits_scheduled, labelled, visited, converted). ``visited`` includes the converted: each
    stage of the funnel holds the later ones. The rate is converted ÷ leads, as the analyzer counts
    leads; coverage is labelled ÷ conversations."""
    if daily.empty:
        return pd.DataFrame(columns=FUNNEL_COLUMNS)
    counts = ["conversations", "leads", "visits_scheduled", "labelled", "visited", "converted"]
    monthly = _with_month(daily).groupby("month", sort=True)[counts].sum().reset_index()
    monthly[counts] = monthly[counts].astype(int)
    monthly["conversion_rate"] = [ratio(c, n) for c, n in zip(monthly["converted"], monthly["leads"])]
    monthly["labelled_share"] = [ratio(c, n) for c, n in zip(monthly["labelled"], monthly["conversations"])]
    monthly["small_sample"] = [is_small(n) for n in monthly["leads"]]
    return monthly[FUNNEL_COLUMNS]


# --- quality ----------------------------------------------------------------------------------

def scoped(answers: pd.DataFrame) -> pd.DataFrame:
    """The answer counts (``outcome_answers.sql``: day, analyzer, model, prompt_version, paired,
    is_lead, visita_agendada, probabilidade_conversao, outcome, n) once with scope 'all' and
    once more, restricted to the paired conversations, with scope 'paired'."""
    if answers.empty:
        return answers.assign(month=[], scope=[])
    frame = _with_month(answers)
    paired = frame[frame["paired"].astype(bool)]
    return pd.concat([frame.assign(scope=ALL), paired.assign(scope=PAIRED)], ignore_index=True)


def _confusion(predicted: pd.Series, actual: pd.Series, n: pd.Series) -> dict[str, int]:
    predicted, actual = predicted.astype(bool), actual.astype(bool)
    return {"tp": int(n[predicted & actual].sum()), "fp": int(n[predicted & ~actual].sum()),
            "fn": int(n[~predicted & actual].sum()), "tn": int(n[~predicted & ~actual].sum())}


def auc_from_levels(positives: list[int], negatives: list[int]) -> float | None:
    """The area under the ROC curve of a score with few levels, from the count of positives and
    negatives at each level (lowest first): P(a positive scores above a negative), ties half.
    None without a positive or a negative."""
    total_pos, total_neg = sum(positives), sum(negatives)
    if not total_pos or not total_neg:
        return None
    below = 0
    wins = 0.0
    for pos, neg in zip(positives, negatives):
        wins += pos * (below + 0.5 * neg)
        below += neg
    return wins / (total_pos * total_neg)


def quality_row(group: pd.DataFrame) -> dict:
    """The figures of one (month, analyzer, model, prompt version, scope) from its answer counts."""
    n = group["n"].astype(int)
    lead = _confusion(group["is_lead"], group["outcome"].isin(LEAD_OUTCOMES), n)
    visit = _confusion(group["visita_agendada"], group["outcome"].isin(VISITED_OUTCOMES), n)
    converted = group["outcome"] == CONVERTED
    level = group["probabilidade_conversao"].astype(int)
    positives = [int(n[converted & (level == p)].sum()) for p in PROBABILITY_LEVELS]
    negatives = [int(n[~converted & (level == p)].sum()) for p in PROBABILITY_LEVELS]
    precision, recall = ratio(lead["tp"], lead["tp"] + lead["fp"]), ratio(lead["tp"], lead["tp"] + lead["fn"])
    labelled = int(n.sum())
    return {
        "labelled": labelled,
        **{f"is_lead_{k}": v for k, v in lead.items()},
        "is_lead_precision": precision, "is_lead_recall": recall, "is_lead_f1": f1(precision, recall),
        **{f"visita_{k}": v for k, v in visit.items()},
        "visita_precision": ratio(visit["tp"], visit["tp"] + visit["fp"]),
        "visita_recall": ratio(visit["tp"], visit["tp"] + visit["fn"]),
        "converted": sum(positives),
        "auc_converted": auc_from_levels(positives, negatives),
        "small_sample": is_small(labelled),
    }


def quality_rows(answers: pd.DataFrame) -> pd.DataFrame:
    """analyzer_quality's rows: one per month, analyzer, model, prompt version and scope."""
    frame = scoped(answers)
    if frame.empty:
        return pd.DataFrame(columns=QUALITY_COLUMNS)
    rows = [{**dict(zip(ANSWER_KEYS + ["scope"], key)), **quality_row(group)}
            for key, group in frame.groupby(ANSWER_KEYS + ["scope"], sort=True)]
    return pd.DataFrame(rows, columns=QUALITY_COLUMNS)


def calibration_rows(answers: pd.DataFrame) -> pd.DataFrame:
    """analyzer_calibration's rows: the labelled conversations and the converted ones at each
    probabilidade_conversao 0–5 (every level, also an empty one, so a chart has all six)."""
    frame = scoped(answers)
    if frame.empty:
        return pd.DataFrame(columns=CALIBRATION_COLUMNS)
    rows = []
    for key, group in frame.groupby(ANSWER_KEYS + ["scope"], sort=True):
        n, level = group["n"].astype(int), group["probabilidade_conversao"].astype(int)
        converted = group["outcome"] == CONVERTED
        for p in PROBABILITY_LEVELS:
            at_level = level == p
            total, won = int(n[at_level].sum()), int(n[at_level & converted].sum())
            rows.append({**dict(zip(ANSWER_KEYS + ["scope"], key)), "probabilidade_conversao": p,
                         "conversations": total, "converted": won, "conversion_rate": ratio(won, total),
                         "small_sample": is_small(total)})
    return pd.DataFrame(rows, columns=CALIBRATION_COLUMNS)


def fair_rows(quality: pd.DataFrame) -> pd.DataFrame:
    """The rows to compare analyzers on: the paired ones of a month that has them, else 'all'."""
    if quality.empty:
        return quality
    has_pairs = quality[quality["scope"] == PAIRED].groupby("month").size()
    keep = [(row.scope == PAIRED) if row.month in has_pairs.index else (row.scope == ALL)
            for row in quality.itertuples()]
    return quality[keep].reset_index(drop=True)


def openai_value(fair: pd.DataFrame, cost_per_conversation_brl: float | None) -> dict | None:
    """Quality and cost together, on the labelled conversations both analyzers answered (one month's
    ``fair_rows``): how many more leads OpenAI finds correctly than regex, how many more it gets
    wrong, and what it costs per extra correctly found lead (its cost on those conversations ÷ the
    extra true leads; None when it finds none more). None without paired rows of both analyzers."""
    paired = fair[fair["scope"] == PAIRED] if not fair.empty else fair
    sides = {}
    for analyzer in ("regex", "openai"):
        rows = paired[paired["analyzer"] == analyzer]
        if rows.empty:
            return None
        sides[analyzer] = rows.sort_values("labelled", kind="stable").iloc[-1]  # the most-answered version
    regex, openai = sides["regex"], sides["openai"]
    labelled = int(openai["labelled"])
    extra_true = int(openai["is_lead_tp"]) - int(regex["is_lead_tp"])
    extra_false = int(openai["is_lead_fp"]) - int(regex["is_lead_fp"])
    cost = None if cost_per_conversation_brl is None else cost_per_conversation_brl * labelled
    return {
        "labelled": labelled, "extra_true_leads": extra_true, "extra_false_leads": extra_false,
        "openai_cost_brl": cost,
        "cost_per_extra_lead_brl": cost / extra_true if cost is not None and extra_true > 0 else None,
        "small_sample": is_small(labelled),
    }


def shown_rows(quality: pd.DataFrame) -> pd.DataFrame:
    """The rows a person reads: the fair ones, and an analyzer's 'all' row only where it covers
    more conversations than its paired one (a regex tenant's sample leaves most unpaired)."""
    fair = fair_rows(quality)
    if fair.empty:
        return fair
    keys = ANSWER_KEYS
    covered = {tuple(r[k] for k in keys): r["labelled"] for _, r in fair.iterrows()}
    wider = [r["scope"] == ALL and r["labelled"] > covered.get(tuple(r[k] for k in keys), r["labelled"])
             for _, r in quality.iterrows()]
    extra = quality[pd.Series(wider, index=quality.index, dtype=bool)]
    return pd.concat([fair, extra], ignore_index=True).sort_values(keys + ["scope"], kind="stable").reset_index(drop=True)
