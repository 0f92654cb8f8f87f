"""The funnel, quality and calibration figures on small hand-made frames, each expectation worked
out by hand in the comments. Pure functions, no database, no Dagster."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from allpfit_etl.monitoring.ground_truth import (
    auc_from_levels, calibration_rows, fair_rows, funnel_rows, openai_value, quality_rows, shown_rows,
)
from allpfit_etl.monitoring.ground_truth_text import figure, quality_markdown

NOV, DEC = dt.date(2025, 11, 1), dt.date(2025, 12, 1)
COLUMNS = ["day", "analyzer", "model", "prompt_version", "paired", "is_lead", "visita_agendada",
           "probabilidade_conversao", "outcome", "n"]


def answers(*rows) -> pd.DataFrame:
    return pd.DataFrame([dict(zip(COLUMNS, r)) for r in rows], columns=COLUMNS)


def regex(day, paired, lead, visit, prob, outcome, n=1):
    return (day, "regex", "regex", "regex-v1", paired, lead, visit, prob, outcome, n)


def openai(day, paired, lead, visit, prob, outcome, n=1):
    return (day, "openai", "gpt-4o-mini", "lead_analysis_v1", paired, lead, visit, prob, outcome, n)


# Ten labelled conversations answered by regex in November (SQLite gives the day as text):
#   outcome    is_lead visita prob  n
#   converted  yes     yes    5     2
#   converted  no      no     2     1
#   visited    yes     yes    4     1
#   visited    yes     no     3     1
#   lead       yes     no     3     2
#   not_lead   yes     no     1     1
#   not_lead   no      no     0     2
NOVEMBER = answers(
    regex("2025-11-03", 0, True, True, 5, "converted", 2),
    regex("2025-11-03", 0, False, False, 2, "converted"),
    regex("2025-11-04", 0, True, True, 4, "visited"),
    regex("2025-11-05", 0, True, False, 3, "visited"),
    regex("2025-11-05", 0, True, False, 3, "lead", 2),
    regex("2025-11-06", 0, True, False, 1, "not_lead"),
    regex("2025-11-06", 0, False, False, 0, "not_lead", 2),
)


def test_quality_by_hand():
    row = quality_rows(NOVEMBER).iloc[0]
    assert (row.month, row.analyzer, row.scope, row.labelled) == (NOV, "regex", "all", 10)
    # is_lead: positives converted|visited|lead = 3 + 2 + 2 = 7, of which regex said yes to 2 + 1 + 1 + 2 = 6
    # (TP 6, FN 1); negatives not_lead = 3, regex said yes to 1 (FP 1, TN 2)
    assert (row.is_lead_tp, row.is_lead_fp, row.is_lead_fn, row.is_lead_tn) == (6, 1, 1, 2)
    assert row.is_lead_precision == pytest.approx(6 / 7) and row.is_lead_recall == pytest.approx(6 / 7)
    assert row.is_lead_f1 == pytest.approx(6 / 7)
    # visita against visited (visited or converted = 5): said yes to 2 converted + 1 visited = 3, all right
    assert (row.visita_tp, row.visita_fp, row.visita_fn, row.visita_tn) == (3, 0, 2, 5)
    assert row.visita_precision == 1.0 and row.visita_recall == pytest.approx(3 / 5)
    # AUC for converted: positives at prob 5, 5, 2; negatives at 4, 3, 3, 3, 1, 0, 0 (7 of them).
    # The two 5s beat all 7 negatives: 14; the 2 beats 1, 0, 0: 3. (14 + 3) / (3 × 7) = 17/21
    assert row.converted == 3 and row.auc_converted == pytest.approx(17 / 21)
    assert bool(row.small_sample)  # 10 < 20


def test_calibration_by_hand():
    rows = calibration_rows(NOVEMBER)
    by_level = {int(r.probabilidade_conversao): (r.conversations, r.converted, r.conversion_rate) for r in rows.itertuples()}
    assert by_level == {0: (2, 0, 0.0), 1: (1, 0, 0.0), 2: (1, 1, 1.0), 3: (3, 0, 0.0), 4: (1, 0, 0.0), 5: (2, 2, 1.0)}
    assert rows["small_sample"].all()


def test_auc_with_ties_and_undefined():
    # one positive and one negative at the same level: a tie, half a win
    assert auc_from_levels([0, 0, 1, 0, 0, 0], [0, 0, 1, 0, 0, 0]) == 0.5
    assert auc_from_levels([0, 0, 0, 0, 0, 1], [1, 0, 0, 0, 0, 0]) == 1.0
    assert auc_from_levels([1, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 1]) == 0.0
    assert auc_from_levels([0, 0, 0, 0, 0, 0], [1, 0, 0, 0, 0, 0]) is None  # no converted conversation


def test_both_analyzers_are_scored_on_the_same_conversations():
    # December: regex answered 3 labelled conversations, OpenAI (a 1-in-3 shadow sample) one of them
    december = answers(
        regex("2025-12-01", 1, False, False, 1, "converted"),
        openai("2025-12-01", 1, True, True, 5, "converted"),
        regex("2025-12-02", 0, True, False, 3, "converted"),
        regex("2025-12-02", 0, False, False, 0, "not_lead"),
    )
    quality = quality_rows(december)
    got = {(r.analyzer, r.scope): (r.labelled, r.is_lead_tp, r.is_lead_fn) for r in quality.itertuples()}
    # 'all': every answer of the analyzer; 'paired': only the conversation both answered
    assert got == {("regex", "all"): (3, 1, 1), ("regex", "paired"): (1, 0, 1),
                   ("openai", "all"): (1, 1, 0), ("openai", "paired"): (1, 1, 0)}
    fair = fair_rows(quality)
    assert set(zip(fair["analyzer"], fair["scope"])) == {("regex", "paired"), ("openai", "paired")}
    # a month without pairs is compared on 'all'
    assert set(fair_rows(quality_rows(NOVEMBER))["scope"]) == {"all"}


def test_rates_without_a_denominator_are_none_not_zero():
    only_not_lead = answers(regex("2025-11-01", 0, False, False, 0, "not_lead", 3))
    row = quality_rows(only_not_lead).iloc[0]
    assert row.is_lead_precision is None and row.is_lead_recall is None and row.is_lead_f1 is None
    assert row.auc_converted is None and row.is_lead_tn == 3
    assert quality_rows(answers()).empty and calibration_rows(answers()).empty


def test_funnel_by_hand():
    daily = pd.DataFrame([
        # day, conversations, leads, visits_scheduled, labelled, visited, converted
        ("2025-11-03", 10, 4, 2, 3, 2, 1),
        ("2025-11-20", 15, 6, 1, 5, 2, 2),
        (dt.date(2025, 12, 1), 30, 24, 5, 12, 6, 6),
    ], columns=["day", "conversations", "leads", "visits_scheduled", "labelled", "visited", "converted"])
    funnel = funnel_rows(daily)
    nov, dec = funnel.iloc[0], funnel.iloc[1]
    assert (nov.month, nov.conversations, nov.leads, nov.visits_scheduled, nov.visited, nov.converted) == (NOV, 25, 10, 3, 4, 3)
    assert nov.conversion_rate == pytest.approx(3 / 10) and nov.labelled_share == pytest.approx(8 / 25)
    assert bool(nov.small_sample) and not bool(dec.small_sample)  # 10 leads < 20 ≤ 24 leads
    assert dec.conversion_rate == pytest.approx(6 / 24) and dec.labelled_share == pytest.approx(12 / 30)
    no_leads = funnel_rows(pd.DataFrame([("2025-11-03", 5, 0, 0, 0, 0, 0)], columns=daily.columns)).iloc[0]
    assert no_leads.conversion_rate is None and no_leads.labelled_share == 0.0


def test_figures_carry_their_count_and_the_small_sample_mark():
    assert figure(0.625, 8) == "62.5% (n=8)*"
    assert figure(0.5, 20) == "50.0% (n=20)"
    assert figure(None, 0) == "— (n=0)*"
    text = quality_markdown(quality_rows(NOVEMBER))
    assert "85.7% (n=7)*" in text and "0.810 (n=3)*" in text and "small sample" in text


def test_shown_rows_are_the_fair_ones_and_wider_coverage():
    december = answers(
        regex("2025-12-01", 1, False, False, 1, "converted"),
        openai("2025-12-01", 1, True, True, 5, "converted"),
        regex("2025-12-02", 0, True, False, 3, "converted"),
    )
    shown = shown_rows(quality_rows(december))
    # OpenAI's 'all' row is its paired one again (1 conversation): left out; regex covers 2 in all
    assert list(zip(shown["analyzer"], shown["scope"], shown["labelled"])) == [
        ("openai", "paired", 1), ("regex", "all", 2), ("regex", "paired", 1)]


def test_openai_value_counts_extra_true_leads_and_their_cost():
    # both answered 3 labelled leads: regex found 1, OpenAI 3 and one false lead on a not_lead
    both = answers(
        regex("2025-12-01", 1, True, False, 3, "lead"), openai("2025-12-01", 1, True, False, 3, "lead"),
        regex("2025-12-01", 1, False, False, 1, "visited"), openai("2025-12-01", 1, True, True, 4, "visited"),
        regex("2025-12-02", 1, False, False, 0, "converted"), openai("2025-12-02", 1, True, True, 5, "converted"),
        regex("2025-12-02", 1, False, False, 0, "not_lead"), openai("2025-12-02", 1, True, False, 2, "not_lead"),
    )
    value = openai_value(fair_rows(quality_rows(both)), cost_per_conversation_brl=0.01)
    # OpenAI: TP 3, FP 1; regex: TP 1, FP 0. Cost on the 4 conversations: R$ 0.04, for 2 extra true leads
    assert value == {"labelled": 4, "extra_true_leads": 2, "extra_false_leads": 1, "openai_cost_brl": pytest.approx(0.04),
                     "cost_per_extra_lead_brl": pytest.approx(0.02), "small_sample": True}
    assert openai_value(fair_rows(quality_rows(NOVEMBER)), 0.01) is None  # regex alone: nothing to weigh
