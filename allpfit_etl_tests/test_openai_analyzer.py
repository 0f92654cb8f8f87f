"""The OpenAI analyser on its own, over real HTTP to the bundled server (no Dagster)."""

from __future__ import annotations

import json
import time

import pytest

from allpfit_etl.analysis.shared_rate_limit import SAFETY

from allpfit_etl.analysis import openai_analyzer, structured_output
from allpfit_etl.analysis.interface import ConversationInput
from allpfit_etl.analysis.openai_analyzer import (
    IN_FLIGHT_WITHOUT_LIMIT,
    OpenAIAccountError,
    build_messages,
    in_flight_cap,
)
from allpfit_etl.analysis.openai_resource import LeadAnalysisOpenAI
from allpfit_etl.analysis.structured_output import response_format
from allpfit_etl.errors import ConfigError
from fake_openai import expected_answer
from fake_openai.strict_schema import check_strict_schema


def conversations(n: int) -> list[ConversationInput]:
    return [ConversationInput(1, i, f"hash{i}", f"[10/11 10:00] Contato: qual o valor do plano {i}?", f"Cliente {i}")
            for i in range(n)]


def analyzer(server, key="sk-test", **kw):
    resource = LeadAnalysisOpenAI(api_key=key, base_url=server.base_url, timeout_s=kw.pop("timeout_s", 5.0),
                              max_attempts=kw.pop("max_attempts", 4))
    return resource.build_analyzer(tenant_id=1, model="gpt-4o-mini", max_concurrency=kw.pop("max_concurrency", 8), **kw)


def test_answers_are_the_servers_and_each_is_handed_over_as_it_arrives(server):
    server.configure(latency_s=0.3, latency_jitter_s=0.25)
    arrivals, calls = [], []
    started = time.monotonic()
    outcome = analyzer(server, on_answer=lambda r, rec: arrivals.append((time.monotonic() - started, r, rec)),
                       on_call=calls.append).analyze_chunk(conversations(16))
    finished = time.monotonic() - started
    assert len(outcome.results) == 16 and not outcome.failures
    for result in outcome.results:
        c = conversations(16)[result.conversation_id]
        body = {"model": "gpt-4o-mini", "messages": build_messages(c, 6000), "response_format": response_format()}
        expected = expected_answer(body)
        assert result.analysis.is_lead == expected["is_lead"]
        assert result.analysis.probabilidade_conversao == expected["probabilidade_conversao"]
        assert result.analysis.analise_ia == expected["analise_ia"]
    assert arrivals[0][0] < finished - 0.2  # the first answer was handed over long before the chunk ended
    assert len(arrivals) == 16 and all(rec.status == "ok" and rec.cost_usd > 0 for _, _, rec in arrivals)
    assert calls == []  # successful calls reach the ledger with their answer, through on_answer


def test_usage_equals_the_servers_counters(server):
    outcome = analyzer(server).analyze_chunk(conversations(25))
    stats = server.stats()
    u = outcome.usage
    assert (u.calls, u.prompt_tokens, u.cached_tokens, u.completion_tokens) == (
        stats["billed_calls"], stats["prompt_tokens"], stats["cached_tokens"], stats["completion_tokens"])
    assert u.cost_brl == pytest.approx(u.cost_usd * 5.40)


def test_faults_end_as_results_or_failures_never_nul_never_a_good_answer_paid_twice(server):
    server.configure(p_500=0.2, p_429=0.2, p_truncated=0.15, p_nul=0.3, fault_seed=3)
    outcome = analyzer(server, max_attempts=6).analyze_chunk(conversations(40))
    assert len(outcome.results) + len(outcome.failures) == 40
    assert len(outcome.results) >= 35
    for r in outcome.results:
        assert "\x00" not in r.analysis.analise_ia and "\x00" not in (r.analysis.nome_mapeado_bot or "")
    assert outcome.usage.retries > 0
    assert server.prompts_billed_twice() == []


def test_a_hang_becomes_a_timeout_failure_quickly(server):
    server.configure(p_hang=1.0, hang_s=10)
    started = time.monotonic()
    outcome = analyzer(server, timeout_s=0.5, max_attempts=2).analyze_chunk(conversations(2))
    assert time.monotonic() - started < 8
    assert [(f.error_kind, f.attempts) for f in outcome.failures] == [("timeout", 2), ("timeout", 2)]


def test_missing_key_is_a_config_error(server):
    with pytest.raises(ConfigError, match="OPENAI_API_KEY is not set"):
        LeadAnalysisOpenAI(base_url=server.base_url).build_analyzer(tenant_id=1, model="gpt-4o-mini", max_concurrency=1)


def test_a_bad_key_stops_every_request_at_once(server):
    server.configure(api_keys=("sk-good",), latency_s=0.05)
    calls = []
    with pytest.raises(OpenAIAccountError, match=r"^OpenAI rejected the API key \(401\)"):
        analyzer(server, key="sk-bad", on_call=calls.append).analyze_chunk(conversations(300))
    assert server.stats()["requests"] <= 30  # not 300 × 4 attempts
    assert calls and all(c.status == "error" and c.error_kind == "http_401" for c in calls)


@pytest.mark.parametrize("change, line", [
    ({"quota_calls": 5}, "OpenAI quota exhausted for this API key: add credit or raise the limit, then re-run"),
    ({"api_keys": ("sk-the-only-valid-key",)}, "OpenAI rejected the API key (401)"),
    ({"forbidden": True}, "OpenAI refused access (403)"),
    ({"models": ("gpt-4o",)}, "OpenAI has no model 'gpt-4o-mini' for this API key (404 model_not_found)"),
])
def test_account_errors_stop_the_chunk_and_keep_the_answers_received(server, change, line):
    server.configure(latency_s=0.02, **change)
    answers = []
    with pytest.raises(OpenAIAccountError) as raised:
        analyzer(server, on_answer=lambda r, rec: answers.append(r)).analyze_chunk(conversations(400))
    assert str(raised.value).startswith(line) and "\n" not in str(raised.value)
    stats = server.stats()
    assert len(answers) == stats["billed_calls"] <= 40  # every paid answer handed over; the rest not attempted
    assert stats["requests"] - stats["billed_calls"] <= 30


def test_a_rejected_schema_stops_the_chunk(server, monkeypatch):
    schema = json.loads(json.dumps(response_format()))
    del schema["json_schema"]["schema"]["additionalProperties"]
    monkeypatch.setattr(structured_output, "response_format", lambda: schema)  # a schema strict mode refuses
    with pytest.raises(OpenAIAccountError, match="rejected the request itself .400 invalid_json_schema.*additionalProperties"):
        analyzer(server).analyze_chunk(conversations(200))
    assert server.stats()["schema_rejections"] <= 30 and server.stats()["billed_calls"] == 0


def test_response_format_is_the_strict_schema_structured_outputs_expect():
    """Pins the schema built by openai's public helper (it replaced a private import)."""
    assert response_format() == {"type": "json_schema", "json_schema": {"name": "LeadAnswer", "strict": True, "schema": {
        "type": "object", "title": "LeadAnswer", "additionalProperties": False,
        "description": "The answer schema, sent as a strict JSON schema (Structured Outputs).",
        "properties": {
            "is_lead": {"title": "Is Lead", "type": "boolean"},
            "visita_agendada": {"title": "Visita Agendada", "type": "boolean"},
            "probabilidade_conversao": {"title": "Probabilidade Conversao", "type": "integer", "minimum": 0, "maximum": 5},
            "nome_mapeado_bot": {"title": "Nome Mapeado Bot", "anyOf": [{"type": "string"}, {"type": "null"}]},
            "analise_ia": {"title": "Analise Ia", "type": "string"},
        },
        "required": ["is_lead", "visita_agendada", "probabilidade_conversao", "nome_mapeado_bot", "analise_ia"],
    }}}
    check_strict_schema("LeadAnswer", response_format()["json_schema"]["schema"])


def test_limits_are_learned_from_the_headers_and_in_flight_follows_littles_law(server):
    server.configure(rpm=1200, latency_s=0.5)  # 20/s × 0.5 s ≈ 10 in flight
    a = analyzer(server, max_concurrency=None)
    outcome = a.analyze_chunk(conversations(60))
    assert len(outcome.results) == 60
    assert a.rate_limit.stated.rpm == 1200 and a.rate_limit.limiter.rpm == pytest.approx(1200 * SAFETY)
    assert 5 <= a.max_in_flight_seen <= in_flight_cap(20, 0.5) + 2
    assert in_flight_cap(50, 3.0) >= 150 and in_flight_cap(50, 3.0, ceiling=20) == 20
    assert in_flight_cap(0, 3.0) == IN_FLIGHT_WITHOUT_LIMIT


def test_prompt_carries_the_conversation_and_strips_nul():
    messages = build_messages(ConversationInput(1, 7, "h", "[10/11 10:00] Contato: oi\x00 tudo", "Ana\x00"), 6000)
    assert messages[0]["role"] == "system" and "academias" in messages[0]["content"]
    assert "Conversa #7" in messages[1]["content"] and "\x00" not in messages[1]["content"]
    assert "Ana" in messages[1]["content"]


def test_littles_law_uses_the_servers_own_time_not_the_time_answers_waited_in_a_busy_client():
    """With ``openai-processing-ms`` (sent by OpenAI), a client whose event loop is busy does not
    mistake its own queueing for latency — which would call for more requests in flight, busying
    it further. Without the header, the observed latency is all there is."""
    from allpfit_etl.analysis.openai_analyzer import OpenAIAnalyzer
    from allpfit_etl.analysis.pricing import RateLimits, price_for

    def fresh() -> OpenAIAnalyzer:
        return OpenAIAnalyzer(lambda: None, tenant_id=1, model="gpt-4o-mini", price=price_for("gpt-4o-mini", {}),
                              rate_limits=RateLimits(30_000, 0))

    busy = fresh()
    assert busy.target_in_flight() == openai_analyzer.INITIAL_IN_FLIGHT  # a slow start before any answer
    busy.observe_latency(0.25, {"openai-processing-ms": "200"})  # 50 ms of network
    for _ in range(200):  # then every answer waits 1.8 s in the busy client
        busy.observe_latency(2.0, {"openai-processing-ms": "200"})
    assert busy.latency_s == pytest.approx(0.25, abs=0.01)

    plain = fresh()
    for _ in range(200):
        plain.observe_latency(2.0, {})
    assert plain.latency_s == pytest.approx(2.0)
    rate = 30_000 / 60
    assert openai_analyzer.in_flight_cap(rate, busy.latency_s) < openai_analyzer.in_flight_cap(rate, plain.latency_s) / 5
