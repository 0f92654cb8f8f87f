"""Local models on any OpenAI-compatible server: unpriced models, the structured-output modes,
and a run that fails loudly when every request fails the same way. End to end through
`allpfit-etl run` (a real CLI process, real Dagster, real PostgreSQL, real HTTP to the bundled
server, in its llama.cpp mode where the server under test is llama-cpp-python's)."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import subprocess
import sys

import dagster as dg
import pytest
import sqlalchemy as sa

from allpfit_etl.analysis import structured_output as so
from allpfit_etl.analysis.failure_watch import FailureWatch
from allpfit_etl.analysis.interface import ConversationInput
from allpfit_etl.analysis.openai_analyzer import OpenAIAccountError, build_messages
from allpfit_etl.analysis.openai_resource import LeadAnalysisOpenAI
from allpfit_etl.analysis.pricing import DEFAULT_PRICES, UNPRICED, price_for
from allpfit_etl.db import get_engine
from allpfit_etl.demo.seed import create_chatwoot_schema, seed_bulk
from allpfit_etl.errors import ConfigError
from fake_openai import FakeOpenAIServer, FakeServerConfig, expected_answer
from fake_openai.server import LLAMA_CPP_FORMAT_ERROR
from allpfit_etl.schema import apply_migrations
from allpfit_etl.tenants.registry import TenantFeatures, add_tenant, coerce_feature_value, parse_features

DAY = dt.date(2025, 11, 10)
API_KEY = "sk-local-test"
CONVERSATIONS = 30


# ----- pure rules ------------------------------------------------------------------------------
def test_a_model_without_a_price_is_unpriced_off_openai_and_one_line_on_openai():
    assert price_for("smollm2", base_url="http://127.0.0.1:8080/v1") == UNPRICED
    assert not UNPRICED.priced and UNPRICED.input_per_m == UNPRICED.output_per_m == 0
    for openai_url in (None, "https://api.openai.com/v1"):
        with pytest.raises(ConfigError, match=r"^no price for model 'smollm2' on OpenAI: set the tenant's price_input") as raised:
            price_for("smollm2", base_url=openai_url)
        assert "\n" not in str(raised.value)
    # the tenant's price wins over every table; a table entry over the built-in one
    assert price_for("smollm2", base_url=None, tenant_price=(0.5, 1.0)).output_per_m == 1.0
    assert price_for("gpt-4o-mini", {"gpt-4o-mini": {"input": 9, "output": 9}}).input_per_m == 9
    assert price_for("gpt-4o-mini", base_url="http://127.0.0.1/v1") == DEFAULT_PRICES["gpt-4o-mini"]


def test_prices_reach_the_resource_from_the_environment_and_the_tenant(monkeypatch):
    resource = LeadAnalysisOpenAI(api_key="k", base_url="https://api.openai.com/v1",
                                  price_overrides={"gpt-4o": {"input": 1, "output": 2}})
    monkeypatch.setenv("OPENAI_PRICES", json.dumps({"smollm2": {"input": 0.01, "output": 0.02},
                                                    "gpt-4o": {"input": 7, "output": 7}}))
    assert resource.price("smollm2").output_per_m == 0.02
    assert resource.price("gpt-4o").input_per_m == 1  # the resource's config over the environment
    features = parse_features({"model": "other", "price_input": 3, "price_output": 4})
    assert resource.price("other", features).output_per_m == 4
    monkeypatch.setenv("OPENAI_PRICES", "{not json")
    with pytest.raises(ConfigError, match="^OPENAI_PRICES is not valid JSON"):
        resource.price("smollm2")
    with pytest.raises(ConfigError, match="price_input and price_output go together"):
        parse_features({"price_input": 3})
    with pytest.raises(ConfigError, match="structured_output must be one of json_schema, json_object, tools, auto"):
        parse_features({"structured_output": "xml"})
    assert coerce_feature_value("structured_output", "AUTO") == "auto"
    assert coerce_feature_value("price_input", "0.1") == 0.1


def test_the_failure_watch_stops_on_the_same_error_or_on_no_success_and_never_after_one():
    same = FailureWatch()
    lines = [same.failure("HTTP 500", LLAMA_CPP_FORMAT_ERROR) for _ in range(10)]
    assert lines[:9] == [None] * 9
    assert lines[9] == f"the server answered the first 10 requests with the same error (HTTP 500): {LLAMA_CPP_FORMAT_ERROR}"

    mixed = FailureWatch()
    assert all(mixed.failure("HTTP 500", f"error {i}") is None for i in range(39))
    assert mixed.failure("timeout").startswith("none of the first 40 requests got a valid answer (the last: timeout)")

    healthy = FailureWatch()
    healthy.failure("HTTP 500", "boom")
    healthy.success()
    assert all(healthy.failure("HTTP 500", "boom") is None for _ in range(100))


def test_every_mode_is_parsed_into_the_same_validated_answer():
    answer = {"is_lead": True, "visita_agendada": False, "probabilidade_conversao": 4,
              "nome_mapeado_bot": " Ana ", "analise_ia": "Pediu o valor."}
    as_content = {"choices": [{"finish_reason": "stop", "message": {"content": json.dumps(answer)}}]}
    as_fenced = {"choices": [{"finish_reason": "stop", "message": {"content": "```json\n" + json.dumps(answer) + "\n```"}}]}
    as_tool = {"choices": [{"finish_reason": "tool_calls", "message": {"content": None, "tool_calls": [
        {"type": "function", "function": {"name": so.TOOL_NAME, "arguments": json.dumps(answer)}}]}}]}
    parsed = {so.parse_completion(c) for c in (as_content, as_fenced, as_tool)}
    assert len(parsed) == 1 and parsed.pop().nome_mapeado_bot == "Ana"
    off_schema = {"choices": [{"finish_reason": "stop", "message": {"content": json.dumps({**answer, "probabilidade_conversao": 9})}}]}
    with pytest.raises(so.InvalidAnswer):
        so.parse_completion(off_schema)
    assert so.is_format_rejection(500, LLAMA_CPP_FORMAT_ERROR, None, so.JSON_SCHEMA)
    assert not so.is_format_rejection(500, "The server had an error while processing your request.", None, so.JSON_SCHEMA)
    assert not so.is_format_rejection(429, LLAMA_CPP_FORMAT_ERROR, None, so.JSON_SCHEMA)


# ----- the analyser alone, over real HTTP ------------------------------------------------------
def conversations(n: int) -> list[ConversationInput]:
    return [ConversationInput(1, i, f"hash{i}", f"[10/11 10:00] Contato: qual o valor do plano {i}?", f"Cliente {i}")
            for i in range(n)]


def analyzer(server, mode: str, notices: list | None = None, model: str = "gpt-4o-mini", **kw):
    resource = LeadAnalysisOpenAI(api_key=API_KEY, base_url=server.base_url, timeout_s=5.0, structured_output=mode)
    return resource.build_analyzer(tenant_id=1, model=model, max_concurrency=8,
                                   notice=(notices.append if notices is not None else None), **kw)


def test_auto_falls_back_to_json_object_on_llama_cpp_once_and_says_which_mode(server):
    server.configure(llama_cpp=True)
    notices: list[str] = []
    a = analyzer(server, so.AUTO, notices)
    outcome = a.analyze_chunk(conversations(20))
    assert len(outcome.results) == 20 and not outcome.failures
    assert a.mode == so.JSON_OBJECT
    assert server.stats()["format_rejections"] == 1  # one probe, not one per conversation
    assert notices == [f"structured output: the server rejected json_schema (HTTP 500: {LLAMA_CPP_FORMAT_ERROR}); "
                       "trying json_object", "structured output: json_object (auto)"]
    for result in outcome.results:  # the server's answer to exactly what json_object mode sends
        body = {"model": "gpt-4o-mini", **so.request_fields(so.JSON_OBJECT, build_messages(conversations(20)[result.conversation_id], 6000))}
        assert result.analysis.analise_ia == expected_answer(body)["analise_ia"]


def test_forced_json_schema_against_llama_cpp_stops_with_the_servers_message(server):
    server.configure(llama_cpp=True)
    calls = []
    with pytest.raises(OpenAIAccountError) as raised:
        analyzer(server, so.JSON_SCHEMA, on_call=calls.append).analyze_chunk(conversations(300))
    line = str(raised.value)
    assert line.startswith("the server answered the first 10 requests with the same error (HTTP 500): "
                           f"{LLAMA_CPP_FORMAT_ERROR}; this server does not take structured_output=json_schema"), line
    assert "\n" not in line
    assert server.stats()["requests"] <= 20 and server.stats()["billed_calls"] == 0  # not 300 × 4


# ----- end to end through the CLI ----------------------------------------------------------------
@contextlib.contextmanager
def build_world(make_pg_database, tmp_path, features: TenantFeatures, config: FakeServerConfig | None = None):
    chatwoot_url, analytics_url = make_pg_database("chatwoot"), make_pg_database("analytics")
    source = get_engine(chatwoot_url)
    create_chatwoot_schema(source)
    seed_bulk(source, account_id=1, day=DAY, conversations=CONVERSATIONS, messages_per_conversation=4)
    analytics = get_engine(analytics_url)
    apply_migrations(analytics)
    add_tenant(analytics, "gym", "Gym", 1, features)
    with FakeOpenAIServer(config or FakeServerConfig()) as server:
        env = {
            **{k: v for k, v in os.environ.items()
               if k not in ("DAGSTER_HOME", "OPENAI_RPM", "OPENAI_TPM", "OPENAI_PRICES", "OPENAI_STRUCTURED_OUTPUT")},
            "CHATWOOT_DATABASE_URL": chatwoot_url, "ANALYTICS_DATABASE_URL": analytics_url,
            "OPENAI_API_KEY": API_KEY, "OPENAI_BASE_URL": server.base_url, "ALLPFIT_HOME": str(tmp_path),
        }
        yield {"server": server, "analytics": analytics, "env": env, "home": tmp_path}


def cli(world, *args, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "allpfit_etl.cli.main", *args], env=env or world["env"],
                          capture_output=True, text=True, timeout=300)


def run(world, env: dict | None = None) -> subprocess.CompletedProcess:
    return cli(world, "run", "--tenant", "gym", "--from", DAY.isoformat(), env=env)


def one(world, query: str):
    with world["analytics"].connect() as conn:
        return conn.execute(sa.text(query)).one()


def instance_of(world):
    return dg.DagsterInstance.from_config(str(world["home"] / "dagster_home"))


def run_messages(world) -> list[str]:
    with instance_of(world) as instance:
        return [str(e.user_message) for r in instance.get_runs() for e in instance.all_logs(r.run_id)]


def budget_check_metadata(world) -> dict:
    with instance_of(world) as instance:
        for r in instance.get_runs():
            for entry in instance.all_logs(r.run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION):
                data = entry.dagster_event.event_specific_data
                if data.check_name == "spend_within_monthly_budget":
                    return {k: v.value for k, v in data.metadata.items()}
    raise AssertionError("no evaluation of spend_within_monthly_budget")


def test_an_unpriced_local_model_is_analysed_at_cost_0_priced_false_and_its_spend_is_unknown(make_pg_database, tmp_path):
    features = TenantFeatures(use_openai=True, model="smollm2", monthly_budget_brl=5.0)
    with build_world(make_pg_database, tmp_path, features) as world:
        done = run(world)
        assert done.returncode == 0, done.stdout + done.stderr[-3000:]
        stats = world["server"].stats()
        assert one(world, "SELECT COUNT(*) FROM conversations_analytics WHERE analyzer = 'openai'")[0] == CONVERSATIONS
        ledger = one(world, "SELECT COUNT(*) AS n, SUM(prompt_tokens) AS p, SUM(completion_tokens) AS c, "
                            "SUM(cost_usd) AS usd, SUM(cost_brl) AS brl, SUM(CASE WHEN priced THEN 1 ELSE 0 END) AS priced "
                            "FROM llm_usage WHERE status = 'ok'")
        assert (ledger.n, ledger.p, ledger.c) == (stats["billed_calls"], stats["prompt_tokens"], stats["completion_tokens"])
        assert ledger.n == CONVERSATIONS and (ledger.usd, ledger.brl, ledger.priced) == (0, 0, 0)
        # the CLI's summary and the budget check say "unknown", never R$ 0
        assert "R$ 0" not in done.stdout, done.stdout
        assert f"tokens, spend unknown ({CONVERSATIONS} call(s) of an unpriced model)" in done.stdout
        assert f"visits, spend to date unknown ({CONVERSATIONS} call(s) of an unpriced model)" in done.stdout
        messages = run_messages(world)
        assert sum("model smollm2 has no known price on this server" in m for m in messages) == 1
        assert any("smollm2 has no price, so its spend is unknown (not R$ 0)" in m for m in messages)
        check = budget_check_metadata(world)
        assert check["spent_brl_month"] == f"unknown: R$ 0.00 plus {CONVERSATIONS} unpriced call(s) of unknown cost"
        assert check["unpriced_calls_month"] == CONVERSATIONS
        with instance_of(world) as instance:
            (materialized,) = [e for r in instance.get_runs()
                               for e in instance.all_logs(r.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION)
                               if e.asset_materialization.asset_key.to_user_string() == "conversation_analyses"]
            meta = {k: v.value for k, v in materialized.asset_materialization.metadata.items()}
        assert meta["priced"] is False and meta["openai.unpriced_calls"] == CONVERSATIONS

        # priced by the user: the same model through OPENAI_PRICES costs what it says
        with world["analytics"].begin() as conn:
            conn.execute(sa.text("DELETE FROM conversation_analyses"))
            conn.execute(sa.text("DELETE FROM conversations_analytics"))
        world["server"].reset_stats()
        priced = run(world, env={**world["env"], "OPENAI_PRICES": json.dumps({"smollm2": {"input": 1.0, "output": 2.0}})})
        assert priced.returncode == 0, priced.stderr[-3000:]
        stats = world["server"].stats()
        cost = one(world, "SELECT SUM(cost_usd) FROM llm_usage WHERE priced AND status = 'ok'")[0]
        assert cost == pytest.approx((stats["prompt_tokens"] * 1.0 + stats["completion_tokens"] * 2.0) / 1e6)


def test_an_unknown_model_on_openais_url_is_one_line_and_no_run_starts(make_pg_database, tmp_path):
    with build_world(make_pg_database, tmp_path, TenantFeatures(use_openai=True, model="smollm2")) as world:
        env = {k: v for k, v in world["env"].items() if k != "OPENAI_BASE_URL"}  # OpenAI's own URL
        refused = run(world, env=env)
        assert refused.returncode == 2
        assert refused.stderr.strip().splitlines() == [
            "error: no price for model 'smollm2' on OpenAI: set the tenant's price_input=… price_output=… "
            "(USD per 1M tokens, `allpfit-etl tenants set`) or OPENAI_PRICES='{\"smollm2\": {\"input\": …, \"output\": …}}'"]
        assert not (world["home"] / "dagster_home").exists() or not run_messages(world)


def test_llama_cpp_auto_analyses_everything_and_forced_json_schema_fails_loudly(make_pg_database, tmp_path):
    features = TenantFeatures(use_openai=True, structured_output="json_schema")
    with build_world(make_pg_database, tmp_path, features, FakeServerConfig(llama_cpp=True)) as world:
        server = world["server"]
        failed = run(world)
        assert failed.returncode == 1, failed.stdout + failed.stderr[-3000:]
        assert failed.stderr.strip().splitlines() == [
            "run failed: gym: the server answered the first 10 requests with the same error (HTTP 500): "
            f"{LLAMA_CPP_FORMAT_ERROR}; this server does not take structured_output=json_schema: set the tenant's "
            "structured_output to auto (or json_object, tools), then re-run (step conversation_analyses.analyze_chunk[gym_00000])"]
        assert server.stats()["billed_calls"] == 0 and server.stats()["requests"] < CONVERSATIONS * 4
        assert one(world, "SELECT COUNT(*) FROM analysis_failures")[0] == 0  # they stay pending
        assert one(world, "SELECT COUNT(*) FROM pending_conversations")[0] == CONVERSATIONS

        assert cli(world, "tenants", "set", "gym", "structured_output=auto").returncode == 0
        done = run(world)
        assert done.returncode == 0, done.stderr[-3000:]
        assert one(world, "SELECT COUNT(*) FROM conversations_analytics WHERE analyzer = 'openai'")[0] == CONVERSATIONS
        assert server.stats()["billed_calls"] == CONVERSATIONS and server.prompts_billed_twice() == []
        assert any(m.endswith("gym: structured output: json_object (auto)") for m in run_messages(world))


def test_tools_mode_answers_are_valid_and_the_ledger_equals_the_servers_counters(make_pg_database, tmp_path):
    features = TenantFeatures(use_openai=True, structured_output="tools")
    with build_world(make_pg_database, tmp_path, features, FakeServerConfig(llama_cpp=True, p_truncated=0.1,
                                                                            fault_seed=4)) as world:
        done = run(world)
        assert done.returncode == 0, done.stderr[-3000:]
        stats = world["server"].stats()
        assert stats["format_rejections"] == 0  # tools mode sends no response_format
        ledger = one(world, "SELECT COUNT(*) AS n, SUM(prompt_tokens) AS p, SUM(completion_tokens) AS c FROM llm_usage "
                            "WHERE prompt_tokens > 0 OR completion_tokens > 0")
        assert (ledger.n, ledger.p, ledger.c) == (stats["billed_calls"], stats["prompt_tokens"], stats["completion_tokens"])
        assert one(world, "SELECT COUNT(*) FROM conversations_analytics WHERE analyzer = 'openai'")[0] == CONVERSATIONS
        assert one(world, "SELECT COUNT(*) FROM conversation_analyses WHERE analise_ia = '' "
                          "OR probabilidade_conversao NOT BETWEEN 0 AND 5")[0] == 0
