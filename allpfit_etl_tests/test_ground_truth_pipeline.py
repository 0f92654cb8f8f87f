"""Outcomes from Chatwoot labels through real Dagster materializations, real PostgreSQL (the real
Chatwoot schema: ``cached_label_list``, ``custom_attributes``) and real HTTP to the bundled OpenAI
server. Ten conversations, each outcome counted by hand below; a label added after the analysis
updates the outcome with no new analysis and no OpenAI call; ``compare`` and the report show it."""

from __future__ import annotations

import datetime as dt

import dagster as dg
import pytest
import sqlalchemy as sa

from allpfit_etl.analysis.openai_resource import LeadAnalysisOpenAI
from allpfit_etl.cli.main import main
from allpfit_etl.db import get_engine
from allpfit_etl.definitions import ASSETS
from allpfit_etl.load.checks import ASSET_CHECKS
from allpfit_etl.monitoring.assets import MONITORING_ASSETS
from allpfit_etl.resources import AnalyticsDatabase, ChatwootDatabase
from allpfit_etl.schema import apply_migrations
from allpfit_etl.tenants.registry import TenantFeatures, add_tenant
from allpfit_etl_tests.chatwoot_builder import ChatwootBuilder

DAY = dt.date(2025, 11, 10)
KEY = f"{DAY.isoformat()}|gym"
START = dt.datetime(2025, 11, 10, 14, 0)  # naive UTC, as Chatwoot stores it: 11:00 in São Paulo
FEATURES = TenantFeatures(
    shadow_openai_sample=1.0,  # a regex tenant whose every conversation OpenAI answers too
    labels_converted="Matrícula,matriculado", labels_visited="visitou", labels_lead="lead",
    labels_not_lead="aluno,spam", outcome_attribute="resultado",
)

LEAD_AND_VISIT = [("c", "Oi, qual o valor da mensalidade? Quero agendar uma aula experimental"),
                  ("a", "Claro! Pode ser amanhã às 18h?"), ("c", "pode sim"), ("a", "Agendado! Te esperamos amanhã às 18h.")]
PRICE = [("c", "Boa tarde, quanto custa o plano anual?"), ("a", "O plano anual sai R$ 79,90 por mês.")]
MEMBER = [("c", "Sou aluno, preciso da segunda via do boleto"), ("a", "Te envio agora.")]
WRONG = [("c", "Acho que é número errado, desculpa"), ("a", "Sem problemas!")]

# name: (transcript, cached_label_list, conversation custom_attributes, contact custom_attributes, outcome by hand)
CONVERSATIONS = {
    "enrolled": (LEAD_AND_VISIT, "MATRICULA", None, None, "converted"),  # case and accent differ from the mapping
    "visited": (PRICE, "visitou", None, None, "visited"),
    "lead": (PRICE, "Lead", None, None, "lead"),
    "member": (MEMBER, "aluno", None, None, "not_lead"),
    "spam": (WRONG, "spam", None, None, "not_lead"),
    "unlabelled": (PRICE, None, None, None, None),
    "conflict": (PRICE, "aluno,matrícula", None, None, "converted"),  # converted > not_lead
    "member_visited": (MEMBER, "visitou", None, None, "visited"),  # regex says no lead: a false negative
    "by_attribute": (PRICE, None, {"resultado": "Matriculado"}, None, "converted"),
    "by_contact": (PRICE, "vip", None, {"resultado": "SPAM"}, "not_lead"),  # an unmapped label, the contact's attribute
}
# What the regex analyzer answers for these transcripts (is_lead, visita_agendada)
REGEX = {"enrolled": (True, True), "visited": (True, False), "lead": (True, False), "member": (False, False),
         "spam": (False, False), "unlabelled": (True, False), "conflict": (True, False),
         "member_visited": (False, False), "by_attribute": (True, False), "by_contact": (True, False)}


def chatwoot(make_pg_database) -> tuple[str, ChatwootBuilder, int, dict[str, int]]:
    url = make_pg_database("chatwoot")
    builder = ChatwootBuilder(get_engine(url))
    account = builder.account("Gym")
    ids = {}
    for index, (name, (lines, labels, attributes, contact_attributes, _)) in enumerate(CONVERSATIONS.items()):
        at = START + dt.timedelta(minutes=10 * index)
        ids[name] = builder.conversation(account, at, f"Contato {index}", status=1, labels=labels,
                                         custom_attributes=attributes, contact_attributes=contact_attributes)
        for offset, (who, text) in enumerate(lines):
            incoming = who == "c"
            builder.message(account, ids[name], at + dt.timedelta(minutes=offset + 1), text,
                            message_type=0 if incoming else 1, sender_type="Contact" if incoming else "User")
    return url, builder, account, ids


@pytest.fixture
def world(make_pg_database, server, instance, monkeypatch, tmp_path):
    monkeypatch.setenv("ALLPFIT_REPORT_PATH", str(tmp_path / "lead_report.html"))
    chatwoot_url, builder, account, ids = chatwoot(make_pg_database)
    analytics_url = make_pg_database("analytics")
    analytics = get_engine(analytics_url)
    apply_migrations(analytics)
    add_tenant(analytics, "gym", "Gym", account, FEATURES)
    monkeypatch.setenv("ANALYTICS_DATABASE_URL", analytics_url)
    resources = {"chatwoot": ChatwootDatabase(url=chatwoot_url), "analytics": AnalyticsDatabase(url=analytics_url),
                 "openai": LeadAnalysisOpenAI(api_key="sk-test-ground-truth", base_url=server.base_url)}
    return {"analytics": analytics, "resources": resources, "builder": builder, "ids": ids, "instance": instance,
            "server": server}


def materialize(world) -> dict:
    result = dg.materialize(ASSETS + MONITORING_ASSETS + ASSET_CHECKS, partition_key=KEY, resources=world["resources"],
                            instance=world["instance"], raise_on_error=False)
    assert result.success, [e.message for e in result.all_events if e.is_failure]
    return {e.asset_key.to_user_string(): {k: v.value for k, v in e.materialization.metadata.items()}
            for e in result.get_asset_materialization_events()}


def rows(world, query: str, **params):
    with world["analytics"].connect() as conn:
        return conn.execute(sa.text(query), params).all()


def outcomes(world, table: str) -> dict[str, str | None]:
    by_id = {cid: name for name, cid in world["ids"].items()}
    return {by_id[int(cid)]: outcome for cid, outcome in rows(world, f"SELECT conversation_id, outcome FROM {table}")}


def answers(world, analyzer: str) -> dict[str, tuple[bool, bool, int]]:
    by_id = {cid: name for name, cid in world["ids"].items()}
    return {by_id[int(r.conversation_id)]: (bool(r.is_lead), bool(r.visita_agendada), int(r.probabilidade_conversao))
            for r in rows(world, "SELECT * FROM conversation_analyses WHERE analyzer = :a", a=analyzer)}


def hand_quality(answered: dict[str, tuple[bool, bool, int]], truth: dict[str, str | None]) -> dict:
    """The figures recomputed here, from the definitions in docs/ground_truth.md, without the monitoring code."""
    labelled = [n for n in answered if truth[n] is not None]
    lead_truth = {n: truth[n] in ("converted", "visited", "lead") for n in labelled}
    visit_truth = {n: truth[n] in ("converted", "visited") for n in labelled}
    tp = sum(answered[n][0] and lead_truth[n] for n in labelled)
    fp = sum(answered[n][0] and not lead_truth[n] for n in labelled)
    fn = sum(not answered[n][0] and lead_truth[n] for n in labelled)
    vtp = sum(answered[n][1] and visit_truth[n] for n in labelled)
    vfp = sum(answered[n][1] and not visit_truth[n] for n in labelled)
    vfn = sum(not answered[n][1] and visit_truth[n] for n in labelled)
    pos = [answered[n][2] for n in labelled if truth[n] == "converted"]
    neg = [answered[n][2] for n in labelled if truth[n] != "converted"]
    wins = sum(1.0 if p > q else 0.5 if p == q else 0.0 for p in pos for q in neg)
    precision = tp / (tp + fp) if tp + fp else None
    recall = tp / (tp + fn) if tp + fn else None
    return {
        "labelled": len(labelled), "is_lead_tp": tp, "is_lead_fp": fp, "is_lead_fn": fn,
        "is_lead_precision": precision, "is_lead_recall": recall,
        "is_lead_f1": (2 * precision * recall / (precision + recall) if precision and recall else
                       (0.0 if precision is not None and recall is not None else None)),
        "visita_precision": vtp / (vtp + vfp) if vtp + vfp else None,
        "visita_recall": vtp / (vtp + vfn) if vtp + vfn else None,
        "auc_converted": wins / (len(pos) * len(neg)) if pos and neg else None,
        "calibration": {p: (sum(answered[n][2] == p for n in labelled),
                            sum(answered[n][2] == p and truth[n] == "converted" for n in labelled)) for p in range(6)},
    }


def assert_quality_row(world, analyzer: str, scope: str, expected: dict) -> None:
    row = rows(world, "SELECT * FROM analyzer_quality WHERE analyzer = :a AND scope = :s", a=analyzer, s=scope)
    assert len(row) == 1, (analyzer, scope)
    row = row[0]._mapping
    for name, value in expected.items():
        if name == "calibration":
            continue
        assert row[name] == pytest.approx(value) if value is not None else row[name] is None, (analyzer, name)
    assert row["small_sample"] is True  # 9 labelled conversations < 20
    calibration = {r.probabilidade_conversao: (r.conversations, r.converted) for r in rows(
        world, "SELECT * FROM analyzer_calibration WHERE analyzer = :a AND scope = :s", a=analyzer, s=scope)}
    assert calibration == expected["calibration"]


def test_labels_give_outcomes_the_funnel_and_each_analyzers_quality(world):
    meta = materialize(world)
    truth = {name: spec[4] for name, spec in CONVERSATIONS.items()}
    assert outcomes(world, "chatwoot_conversations") == truth
    assert outcomes(world, "conversations_analytics") == truth
    assert meta["chatwoot_conversations"]["labelled"] == 9

    regex, openai = answers(world, "regex"), answers(world, "openai")
    assert {name: answer[:2] for name, answer in regex.items()} == REGEX
    assert set(openai) == set(CONVERSATIONS)  # the whole sample: both analyzers on the same conversations

    # the funnel, by hand: 10 conversations, 9 labelled; regex (the loaded analyzer) finds 7 leads and
    # 1 visit; visited = 2 visited + 3 converted = 5; conversion rate 3 / 7
    funnel = rows(world, "SELECT * FROM lead_funnel")
    assert len(funnel) == 1
    f = funnel[0]._mapping
    assert (f["month"], f["conversations"], f["leads"], f["visits_scheduled"], f["labelled"], f["visited"], f["converted"]) == (
        dt.date(2025, 11, 1), 10, 7, 1, 9, 5, 3)
    assert f["conversion_rate"] == pytest.approx(3 / 7) and f["labelled_share"] == pytest.approx(9 / 10)
    assert f["small_sample"] is True
    assert meta["lead_funnel"]["conversion_rate"] == pytest.approx(3 / 7)

    # regex, by hand: of 9 labelled, leads by the labels are the 6 converted|visited|lead ones, it says yes to
    # enrolled, visited, lead, conflict, by_attribute (TP 5), to by_contact (not_lead: FP 1), no to member_visited (FN 1)
    expected_regex = hand_quality(regex, truth)
    assert (expected_regex["is_lead_tp"], expected_regex["is_lead_fp"], expected_regex["is_lead_fn"]) == (5, 1, 1)
    assert expected_regex["is_lead_precision"] == pytest.approx(5 / 6) and expected_regex["is_lead_recall"] == pytest.approx(5 / 6)
    # visita: said for "enrolled" only, which converted (precision 1); 5 visited or converted (recall 1/5)
    assert (expected_regex["visita_precision"], expected_regex["visita_recall"]) == (1.0, pytest.approx(1 / 5))
    for scope in ("all", "paired"):  # every answer is paired: both rows are over the same 9 conversations
        assert_quality_row(world, "regex", scope, expected_regex)
        assert_quality_row(world, "openai", scope, hand_quality(openai, truth))
    assert meta["analyzer_quality"]["regex.is_lead_f1"] == pytest.approx(5 / 6)


def test_a_label_added_later_updates_the_outcome_with_no_new_analysis(world):
    materialize(world)
    server = world["server"]
    billed = server.stats()["billed_calls"]
    ledger = rows(world, "SELECT * FROM llm_usage ORDER BY id")
    analyses = rows(world, "SELECT * FROM conversation_analyses ORDER BY conversation_id, analyzer")
    assert billed == len(CONVERSATIONS) and len(ledger) == billed

    # an agent labels the unlabelled conversation a sale and takes the label off the spam one, a day later
    later = START + dt.timedelta(days=1)
    world["builder"].set_labels(world["ids"]["unlabelled"], "matricula", later)
    world["builder"].set_labels(world["ids"]["spam"], None, later + dt.timedelta(minutes=1))
    meta = materialize(world)

    assert outcomes(world, "conversations_analytics")["unlabelled"] == "converted"
    assert outcomes(world, "conversations_analytics")["spam"] is None
    assert meta["pending_conversations"]["pending"] == 0 and meta["conversations_analytics"]["outcomes_updated"] == 2
    assert server.stats()["billed_calls"] == billed  # not one more OpenAI call
    assert rows(world, "SELECT * FROM llm_usage ORDER BY id") == ledger
    assert rows(world, "SELECT * FROM conversation_analyses ORDER BY conversation_id, analyzer") == analyses
    f = rows(world, "SELECT converted, labelled FROM lead_funnel")[0]
    assert tuple(f) == (4, 9)  # one more converted; one labelled more, one less
    # a third run with nothing changed updates nothing
    assert materialize(world)["conversations_analytics"]["outcomes_updated"] == 0


def test_compare_and_the_report_show_the_quality_section(world, tmp_path, capsys):
    from allpfit_etl_tests.headless_chromium import HeadlessChromium

    materialize(world)
    assert main(["compare", "gym", "--month", "2025-11"]) == 0
    out = capsys.readouterr().out
    assert "quality against the labels · 2025-11: 9 of 10 conversations carry an outcome (90.0% (n=10)*)" in out
    assert "funnel: 10 conversations → 7 leads → 1 visits scheduled → 5 visited → 3 converted; " \
           "lead conversion rate 42.9% (n=7)*" in out
    regex_line = next(line for line in out.splitlines() if line.startswith("| 2025-11 | regex regex-v1 | both answered"))
    assert "| 9* | 83.3% (n=6)* | 83.3% (n=6)* |" in regex_line
    assert "conversion rate by probabilidade_conversao:" in out
    paired = {r.analyzer: r for r in rows(world, "SELECT * FROM analyzer_quality WHERE scope = 'paired'")}
    extra_true = paired["openai"].is_lead_tp - paired["regex"].is_lead_tp
    extra_false = paired["openai"].is_lead_fp - paired["regex"].is_lead_fp
    value_line = next(line for line in out.splitlines() if line.startswith("OpenAI finds"))
    assert value_line.startswith(f"OpenAI finds {extra_true:+d} true and {extra_false:+d} false leads against regex "
                                 "on the 9* labelled conversations both answered; OpenAI cost R$ ")
    assert value_line.endswith("per extra correctly found lead" if extra_true > 0 else "for no more true leads than regex finds")
    assert "| agreement |" in out  # the regex vs OpenAI section follows

    page = tmp_path / "painel.html"
    assert main(["report", "--out", str(page)]) == 0
    text = page.read_text(encoding="utf-8")
    for title in ("Funil por tenant", "Calibração: matrículas por probabilidade de conversão"):
        assert title in text
    browser = HeadlessChromium(tmp_path / "chromium")
    try:
        browser.open(page.as_uri())
        body = browser.wait_for_text(["Funil por tenant", "Matricularam", "Calibração", "OpenAI", "regex"])
        assert "42,9%" in body and "(n=7)*" in body  # the funnel's conversion rate, marked a small sample
        # regex at its probability levels: converted / labelled, as the table holds them
        levels = rows(world, "SELECT probabilidade_conversao, conversations, converted FROM analyzer_calibration "
                             "WHERE analyzer = 'regex' AND scope = 'all' ORDER BY probabilidade_conversao")
        assert " ".join(f"{won}/{n}*" for _, n, won in levels) in " ".join(body.split())
        assert browser.evaluate("performance.getEntriesByType('resource').length") == 0
    finally:
        browser.close()
