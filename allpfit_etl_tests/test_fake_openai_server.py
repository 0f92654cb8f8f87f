"""The bundled OpenAI-compatible server, through the real openai client over real HTTP."""

from __future__ import annotations

import json
import subprocess
import sys

import openai
import pydantic
import pytest
import requests

from allpfit_etl.analysis.structured_output import LeadAnswer, response_format
from fake_openai import FakeOpenAIServer, expected_answer

MESSAGES = [{"role": "system", "content": "Você analisa leads."}, {"role": "user", "content": "Contato: qual o valor?"}]


def client(server, **kw):
    return openai.OpenAI(api_key="sk-test", base_url=server.base_url, max_retries=0, **kw)


def request_body(messages=MESSAGES) -> dict:
    return {"model": "gpt-4o-mini", "messages": messages, "response_format": response_format()}


def test_structured_output_is_the_expected_answer_and_usage_is_counted(server):
    completion = client(server).chat.completions.parse(model="gpt-4o-mini", messages=MESSAGES, response_format=LeadAnswer)
    parsed = completion.choices[0].message.parsed
    assert parsed.model_dump() == expected_answer(request_body())
    assert 0 <= parsed.probabilidade_conversao <= 5
    stats = server.stats()
    assert stats["billed_calls"] == 1
    assert stats["prompt_tokens"] == completion.usage.prompt_tokens > 0
    assert stats["completion_tokens"] == completion.usage.completion_tokens > 0


def test_answers_are_deterministic_and_depend_on_the_prompt():
    other = [MESSAGES[0], {"role": "user", "content": "Contato: número errado"}]
    assert expected_answer(request_body()) == expected_answer(request_body())
    answers = {json.dumps(expected_answer(request_body([MESSAGES[0], {"role": "user", "content": f"x{i}"}]))) for i in range(20)}
    assert len(answers) > 10 and expected_answer(request_body(other)) != expected_answer(request_body())


def test_generated_values_honour_the_schema():
    schema = {"type": "object", "properties": {
        "n": {"type": "integer", "minimum": 3, "maximum": 4}, "e": {"enum": ["a", "b"]},
        "maybe": {"anyOf": [{"type": "string"}, {"type": "null"}]}, "items": {"type": "array", "items": {"$ref": "#/$defs/x"}},
    }, "$defs": {"x": {"type": "boolean"}}}
    for i in range(50):
        body = {"messages": [{"role": "user", "content": str(i)}],
                "response_format": {"type": "json_schema", "json_schema": {"name": "t", "schema": schema}}}
        value = expected_answer(body)
        assert value["n"] in (3, 4) and value["e"] in ("a", "b")
        assert value["maybe"] is None or isinstance(value["maybe"], str)
        assert all(isinstance(v, bool) for v in value["items"])


def test_rpm_limit_answers_429_with_retry_after_and_ratelimit_headers(server):
    server.configure(rpm=60)  # one request per second, burst of one
    c = client(server)
    c.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    with pytest.raises(openai.RateLimitError) as raised:
        c.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    headers = raised.value.response.headers
    assert int(headers["retry-after"]) >= 1 and int(headers["retry-after-ms"]) > 0
    assert headers["x-ratelimit-limit-requests"] == "60" and headers["x-ratelimit-remaining-requests"] == "0"
    assert headers["x-ratelimit-reset-requests"].endswith(("ms", "s"))
    assert server.stats()["rate_limited"] == 1 and server.stats()["billed_calls"] == 1


@pytest.mark.parametrize("fault, error", [("p_429", openai.RateLimitError), ("p_500", openai.InternalServerError)])
def test_error_faults(server, fault, error):
    server.configure(**{fault: 1.0})
    with pytest.raises(error):
        client(server).chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert server.stats()["billed_calls"] == 0


def test_hang_outlasts_the_client_timeout_without_blocking_others(server):
    server.configure(p_hang=1.0, hang_s=5)
    with pytest.raises(openai.APITimeoutError):
        client(server, timeout=0.5).chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    server.configure(p_hang=0.0)
    assert client(server, timeout=2).chat.completions.create(model="gpt-4o-mini", messages=MESSAGES).choices
    assert server.stats()["hangs"] == 1


def test_truncated_and_nul_answers_are_billed_as_faulty(server):
    c = client(server)
    server.configure(p_truncated=1.0)
    truncated = c.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, response_format=response_format())
    assert truncated.choices[0].finish_reason == "length"
    with pytest.raises(pydantic.ValidationError):
        LeadAnswer.model_validate_json(truncated.choices[0].message.content)
    server.configure(p_truncated=0.0, p_nul=1.0)
    nul = c.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, response_format=response_format())
    assert "\x00" in json.loads(nul.choices[0].message.content)["analise_ia"]
    stats = server.stats()
    assert stats["billed_calls"] == 2 and stats["faulty_billed_calls"] == 2
    assert server.prompts_billed_twice() == []  # two faulty answers, no good one paid twice
    server.configure(p_nul=0.0)
    c.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, response_format=response_format())
    assert server.prompts_billed_twice() == []
    c.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, response_format=response_format())
    assert len(server.prompts_billed_twice()) == 1


def test_cached_tokens_for_a_repeated_long_system_prompt(server):
    long_system = {"role": "system", "content": "regra " * 1200}
    c = client(server)
    first = c.chat.completions.create(model="gpt-4o-mini", messages=[long_system, {"role": "user", "content": "a"}])
    second = c.chat.completions.create(model="gpt-4o-mini", messages=[long_system, {"role": "user", "content": "b"}])
    assert first.usage.prompt_tokens_details.cached_tokens == 0
    assert second.usage.prompt_tokens_details.cached_tokens > 0
    assert second.usage.prompt_tokens_details.cached_tokens % 128 == 0
    assert server.stats()["cached_tokens"] == second.usage.prompt_tokens_details.cached_tokens


def test_requests_without_a_key_get_401_and_admin_endpoints_work(server):
    assert requests.post(f"{server.base_url}/chat/completions", json={"messages": []}, timeout=5).status_code == 401
    root = server.base_url.removesuffix("/v1")
    assert requests.post(f"{root}/_config", json={"latency_s": 0.01}, timeout=5).json()["latency_s"] == 0.01
    client(server).chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert requests.get(f"{root}/_stats", timeout=5).json()["billed_calls"] == 1
    requests.post(f"{root}/_reset", timeout=5)
    assert server.stats()["billed_calls"] == 0


def test_command_line_server_prints_its_url_and_answers():
    process = subprocess.Popen([sys.executable, "-m", "fake_openai", "--port", "0"], stdout=subprocess.PIPE, text=True)
    try:
        line = process.stdout.readline().strip()
        assert line.startswith("listening on http://127.0.0.1:")
        url = line.removeprefix("listening on ")
        models = openai.OpenAI(api_key="k", base_url=url).models.list()
        assert [m.id for m in models.data] == ["gpt-4o-mini"]
    finally:
        process.terminate()
        process.wait(timeout=10)


def strict_format(schema: dict) -> dict:
    return {"type": "json_schema", "json_schema": {"name": "T", "strict": True, "schema": schema}}


def obj(properties: dict, **extra) -> dict:
    return {"type": "object", "properties": properties, "required": list(properties), "additionalProperties": False,
            **extra}


@pytest.mark.parametrize("schema, message", [
    ({"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]},
     "In context=(), 'additionalProperties' is required to be supplied and to be false."),
    (obj({"a": obj({"b": {"type": "string"}, "c": {"type": "integer"}}, required=["b"])}),
     "In context=('properties', 'a'), 'required' is required to be supplied and to be an array including every key "
     "in properties. Missing 'c'."),
    (obj({"a": {"type": "string", "minLength": 2}}), "In context=('properties', 'a'), 'minLength' is not permitted."),
    (obj({"a": {"allOf": [{"type": "string"}]}}), "In context=('properties', 'a'), schema must have a 'type' key."),
    (obj({"a": {"type": "string", "allOf": [{"type": "string"}]}}), "'allOf' is not permitted."),
    (obj({"a": {"type": "object", "patternProperties": {}, "additionalProperties": False}}), "'patternProperties' is not permitted."),
    (obj({"a": {"type": "string", "format": "uri"}}), "format 'uri' is not supported."),
    ({"anyOf": [obj({"a": {"type": "string"}})]}, "schema must be a JSON Schema of 'type: \"object\"'"),
    (obj({"a": {"$ref": "#/$defs/missing"}}), "reference '#/$defs/missing' cannot be resolved."),
])
def test_strict_schemas_are_rejected_where_openai_rejects_them(server, schema, message):
    with pytest.raises(openai.BadRequestError) as raised:
        client(server).chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, response_format=strict_format(schema))
    error = raised.value
    assert error.code == "invalid_json_schema" and error.param == "response_format"
    assert error.message.startswith("Error code: 400") and "Invalid schema for response_format 'T': " in error.message
    assert message in error.message
    assert server.stats()["billed_calls"] == 0 and server.stats()["schema_rejections"] == 1


def test_strict_schemas_openai_accepts_are_answered(server):
    accepted = obj({
        "n": {"type": "number", "minimum": 0, "maximum": 1}, "s": {"type": "string", "pattern": "^a", "format": "email"},
        "maybe": {"anyOf": [{"type": "string"}, {"type": "null"}]}, "kind": {"type": "string", "enum": ["a", "b"]},
        "items": {"type": "array", "items": {"$ref": "#/$defs/item"}, "minItems": 1, "maxItems": 3},
        "either": {"type": ["string", "null"], "description": "d"},
    }, **{"$defs": {"item": obj({"v": {"type": "boolean"}})}})
    c = client(server)
    answer = c.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, response_format=strict_format(accepted))
    assert set(json.loads(answer.choices[0].message.content)) == set(accepted["properties"])
    loose = {"type": "json_schema", "json_schema": {"name": "T", "schema": {"type": "object", "minProperties": 1}}}
    assert c.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, response_format=loose).choices  # not strict


@pytest.mark.parametrize("change, status, error, code", [
    ({"api_keys": ("sk-other",)}, 401, openai.AuthenticationError, "invalid_api_key"),
    ({"forbidden": True}, 403, openai.PermissionDeniedError, "unsupported_country_region_territory"),
    ({"models": ("gpt-4o",)}, 404, openai.NotFoundError, "model_not_found"),
    ({"quota_calls": 0}, 429, openai.RateLimitError, "insufficient_quota"),
])
def test_account_errors_as_openai_answers_them(server, change, status, error, code):
    server.configure(**change)
    with pytest.raises(error) as raised:
        client(server).chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert raised.value.status_code == status and raised.value.code == code
    stats = server.stats()
    assert stats["account_errors"] == 1 and stats["billed_calls"] == 0


def test_quota_runs_out_after_the_billed_calls_it_allows(server):
    server.configure(quota_calls=2)
    c = client(server)
    for _ in range(2):
        c.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    with pytest.raises(openai.RateLimitError):
        c.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    with pytest.raises(openai.RateLimitError):
        c.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert server.stats()["requests_after_account_error"] == 1


def test_successful_answers_state_the_limits(server):
    server.configure(rpm=600, tpm=100_000)
    raw = client(server).chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=MESSAGES)
    assert raw.headers["x-ratelimit-limit-requests"] == "600" and raw.headers["x-ratelimit-limit-tokens"] == "100000"
    assert 0 <= int(raw.headers["x-ratelimit-remaining-requests"]) < 10
    assert int(raw.headers["x-ratelimit-remaining-tokens"]) < 100_000 / 60


def test_extensions_add_routes_behind_the_same_key_check():
    from fake_openai import register_extension
    from fake_openai import server as server_module

    def register(server):
        async def echo(headers, body):
            return 200, {}, {"echo": json.loads(body or b"{}")}

        server.add_route("POST", "/v1/echo", echo)

    register_extension(register)
    try:
        with FakeOpenAIServer() as fake:
            assert requests.post(f"{fake.base_url}/echo", json={"a": 1}, headers={"Authorization": "Bearer k"},
                                 timeout=5).json() == {"echo": {"a": 1}}
            assert requests.post(f"{fake.base_url}/echo", json={}, timeout=5).status_code == 401
            assert requests.post(f"{fake.base_url}/nothing", json={}, headers={"Authorization": "Bearer k"},
                                 timeout=5).status_code == 404
    finally:
        server_module._EXTENSIONS.remove(register)
