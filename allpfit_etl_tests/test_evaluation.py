"""``allpfit-etl eval``: figures against hand-computed matrices, the OpenAI path through the fake
server over real HTTP, a malformed set rejected with one line, every evaluation stored in PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sqlalchemy as sa

from allpfit_etl.cli.main import main
from allpfit_etl.db import get_engine
from allpfit_etl.evaluation.dataset import EvalSetError, bundled_path, load_eval_set, parse_eval_set
from allpfit_etl.evaluation.metrics import binary_scores
from allpfit_etl.schema import apply_migrations

SMALL_SET = Path(__file__).parent / "data" / "eval_small.jsonl"


@pytest.fixture
def analytics(make_pg_database, monkeypatch):
    url = make_pg_database("eval")
    engine = get_engine(url)
    apply_migrations(engine)
    monkeypatch.setenv("ANALYTICS_DATABASE_URL", url)
    return engine


def stored(engine) -> list:
    with engine.connect() as conn:
        return conn.execute(sa.text("SELECT * FROM prompt_evaluations ORDER BY evaluation_id")).all()


def test_binary_scores_of_a_hand_counted_matrix():
    truth = [True, True, True, False, False, True, False]
    said = [True, False, True, True, False, True, False]
    s = binary_scores(truth, said)
    assert (s.tp, s.fp, s.fn, s.tn) == (3, 1, 1, 2)
    assert s.precision == pytest.approx(3 / 4) and s.recall == pytest.approx(3 / 4) and s.f1 == pytest.approx(3 / 4)
    # po = 5/7; pe = (4·4 + 3·3)/49 = 25/49; kappa = (35/49 − 25/49)/(24/49)
    assert s.kappa == pytest.approx(10 / 24)
    nothing = binary_scores([False, False], [False, False])
    assert (nothing.precision, nothing.recall, nothing.f1, nothing.kappa) == (None, None, None, None)


def test_regex_eval_of_a_small_fixed_set_matches_the_hand_computed_matrix(analytics, capsys):
    # The regex analyser on eval_small.jsonl, worked out by hand from its rules:
    #   price: lead, p2, "Ana Souza"         cancel: member, not lead, p1, no name
    #   visit: lead, visit, p5               cancelled-visit: lead, visit (it reads "agendado amanhã às 18h"), p5
    #   audio: no contact text: not lead, p0, display name "Deus é fiel" taken for a name
    #   job: "valor" + "personal" read as interest: lead, p3
    assert main(["eval", "--file", str(SMALL_SET), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["conversations"] == 6 and out["failed"] == 0
    assert out["is_lead"] == {"tp": 3, "fp": 1, "fn": 1, "tn": 1, "precision": 0.75, "recall": 0.75, "f1": 0.75,
                              "kappa": pytest.approx(0.25)}
    assert {k: out["visita_agendada"][k] for k in ("tp", "fp", "fn", "tn")} == {"tp": 1, "fp": 1, "fn": 0, "tn": 4}
    assert out["visita_agendada"]["precision"] == 0.5 and out["visita_agendada"]["recall"] == 1.0
    assert out["visita_agendada"]["f1"] == pytest.approx(2 / 3) and out["visita_agendada"]["kappa"] == pytest.approx(4 / 7)
    assert out["probabilidade_mae"] == pytest.approx(8 / 6)  # |0|+|1|+|0|+|2|+|2|+|3|
    assert out["nome_exact"] == pytest.approx(5 / 6)
    assert (out["prompt_tokens"], out["cached_tokens"], out["cost_usd"]) == (0, 0, 0.0)
    # severity 4 (lead wrong) + |p error| + 1 (name wrong): audio 4+2+1, job 4+3+0; ties by id
    assert [(m["id"], m["severity"]) for m in out["worst_misses"]] == [("audio", 7), ("job", 7), ("cancelled-visit", 5),
                                                                       ("cancel", 1)]

    [row] = stored(analytics)  # what was printed is what the table holds
    assert row.evaluation_id == out["evaluation_id"] and row.set_fingerprint == load_eval_set(SMALL_SET).fingerprint
    assert (row.analyzer, row.model, row.prompt_version, row.conversations) == ("regex", "", "regex-v1", 6)
    assert (row.is_lead_tp, row.is_lead_fp, row.is_lead_fn, row.is_lead_tn) == (3, 1, 1, 1)
    assert (row.visita_tp, row.visita_fp, row.visita_fn, row.visita_tn) == (1, 1, 0, 4)
    assert row.is_lead_kappa == pytest.approx(0.25) and row.probabilidade_mae == pytest.approx(8 / 6)
    with analytics.connect() as conn:  # never a tenant's tables
        for table in ("conversation_analyses", "llm_usage", "conversations_analytics", "chatwoot_conversations"):
            assert conn.execute(sa.text(f"SELECT COUNT(*) FROM {table}")).scalar_one() == 0

    assert main(["eval", "--file", str(SMALL_SET)]) == 0  # the table view, same figures
    text = capsys.readouterr().out
    assert "  is_lead             0.750    0.750    0.750    0.250     3     1     1     1" in text
    assert "worst misses:" in text and len(stored(analytics)) == 2


def test_eval_through_the_fake_server_counts_exactly_what_the_server_billed(analytics, server, monkeypatch, capsys):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-eval")
    monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
    assert main(["eval", "--set", "dev", "--analyzer", "openai", "--prompt", "lead-v2", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    stats = server.stats()
    conversations = len(load_eval_set(bundled_path("dev")).conversations)
    assert out["conversations"] == out["answered"] == conversations == stats["billed_calls"]
    assert (out["prompt_tokens"], out["cached_tokens"], out["completion_tokens"]) == (
        stats["prompt_tokens"], stats["cached_tokens"], stats["completion_tokens"])
    assert stats["cached_tokens"] > 0  # v2's static prefix is over 1,024 tokens
    cost = ((stats["prompt_tokens"] - stats["cached_tokens"]) * 0.15 + stats["cached_tokens"] * 0.075
            + stats["completion_tokens"] * 0.60) / 1_000_000
    assert out["cost_usd"] == pytest.approx(cost, rel=1e-9)
    assert out["cost_usd_per_conversation"] == pytest.approx(cost / conversations, rel=1e-9)
    [row] = stored(analytics)
    assert (row.analyzer, row.model, row.prompt_version) == ("openai", "gpt-4o-mini", "lead-v2")
    assert row.endpoint == server.base_url.removeprefix("http://").removesuffix("/v1")
    assert (row.calls, row.prompt_tokens, row.cached_tokens, row.completion_tokens) == (
        stats["billed_calls"], stats["prompt_tokens"], stats["cached_tokens"], stats["completion_tokens"])
    assert row.cost_usd == pytest.approx(cost, rel=1e-9)
    with analytics.connect() as conn:
        assert conn.execute(sa.text("SELECT COUNT(*) FROM llm_usage")).scalar_one() == 0


@pytest.mark.parametrize(("line", "expected"), [
    ('{"id": "x", "messages": [], "labels": {}}', "line 3: field messages: missing or not a non-empty list"),
    ('{"id": "x", "messages": [{"role": "cliente", "text": "oi", "at": "2025-03-03T10:00:00"}], "labels": {}}',
     "line 3: field messages[0].role: must be one of contact, agent, bot, got 'cliente'"),
    ('{"id": "x", "messages": [{"role": "contact", "text": "oi", "at": "ontem"}], "labels": {}}',
     "line 3: field messages[0].at: not an ISO 8601 time: 'ontem'"),
    ('{"id": "x", "messages": [{"role": "contact", "text": "oi", "at": "2025-03-03T10:00:00"}], "labels": '
     '{"is_lead": true, "visita_agendada": false, "probabilidade_conversao": 7, "nome": null}}',
     "line 3: field labels.probabilidade_conversao: must be an integer from 0 to 5, got 7"),
    ('{"id": "price", "messages": [{"role": "contact", "text": "oi", "at": "2025-03-03T10:00:00"}], "labels": '
     '{"is_lead": true, "visita_agendada": false, "probabilidade_conversao": 1, "nome": null}}',
     "line 3: field id: 'price' appears twice"),
    ("{not json", "line 3: not valid JSON"),
])
def test_a_malformed_set_is_rejected_with_one_line_and_nothing_is_stored_or_sent(
        analytics, server, monkeypatch, capsys, tmp_path, line, expected):
    lines = SMALL_SET.read_text(encoding="utf-8").splitlines()
    bad = tmp_path / "bad.jsonl"
    bad.write_text("\n".join(lines[:2] + [line] + lines[3:]) + "\n", encoding="utf-8")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-eval")
    monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
    assert main(["eval", "--file", str(bad), "--analyzer", "openai"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1
    assert captured.err.startswith(f"error: bad.jsonl {expected}")
    assert stored(analytics) == [] and server.stats()["requests"] == 0


def test_bundled_sets_are_valid_large_enough_and_split_by_scene():
    dev, heldout = (load_eval_set(bundled_path(name)) for name in ("dev", "heldout"))
    assert len(dev.conversations) + len(heldout.conversations) >= 200
    scene = lambda c: c.id.split("-", 2)[2]  # noqa: E731 - ids are <split>-<n>-<scene>
    assert {scene(c) for c in dev.conversations}.isdisjoint({scene(c) for c in heldout.conversations})
    for eval_set in (dev, heldout):
        labels = [c.labels for c in eval_set.conversations]
        assert {x.is_lead for x in labels} == {True, False} and {x.visita_agendada for x in labels} == {True, False}
        assert {x.probabilidade_conversao for x in labels} == set(range(6))
        assert all(c.note for c in eval_set.conversations)
    texts = " ".join(m.content or "" for c in dev.conversations + heldout.conversations for m in c.messages).lower()
    for needle in ("boleto", "cancelar", "engano", "currículo", "vc", "😅", "pass", "link", "qualquer dia", "remarcado",
                   "minha filha"):
        assert needle in texts, needle
    attachments = {m.attachment_type for c in dev.conversations + heldout.conversations for m in c.messages}
    assert {0, 1} <= attachments  # [imagem] and [áudio] stand for attachments, as Chatwoot stores them


def test_parse_errors_name_the_line_even_for_an_empty_or_binary_file():
    with pytest.raises(EvalSetError, match=r"^s.jsonl: no conversations$"):
        parse_eval_set(b"\n\n", "s.jsonl")
    with pytest.raises(EvalSetError, match=r"^s.jsonl: not UTF-8 text"):
        parse_eval_set(b"\xff\xfe", "s.jsonl")

