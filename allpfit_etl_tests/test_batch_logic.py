"""Batch mode's pure functions: request lines, custom_id, file limits, result lines, batch price."""

from __future__ import annotations

import json

import pytest

from allpfit_etl.analysis import openai_analyzer, structured_output
from allpfit_etl.analysis.batch.requests import (
    RequestKey,
    build_request_line,
    file_content,
    parse_custom_id,
    split_into_files,
)
from allpfit_etl.analysis.batch.results import parse_result_file, parse_result_line
from allpfit_etl.analysis.interface import ConversationInput
from allpfit_etl.analysis.pricing import batch_price_for, cost_usd, price_for

HASH = "ab" * 32


def conversation(i: int, text: str = "[10/11 10:00] Contato: quanto custa?") -> ConversationInput:
    return ConversationInput(7, i, HASH, text, "Maria")


def test_request_line_is_the_real_time_request():
    line = build_request_line(conversation(1), "gpt-4o-mini", "lead-v1", 6000)
    row = json.loads(line.data)
    assert line.data.endswith(b"\n") and row["method"] == "POST" and row["url"] == "/v1/chat/completions"
    assert row["body"] == {"model": "gpt-4o-mini", "messages": openai_analyzer.build_messages(conversation(1), 6000),
                           "response_format": json.loads(json.dumps(structured_output.response_format()))}


@pytest.mark.parametrize("model, version", [("gpt-4o-mini", "lead_analysis_v1"), ("ft:gpt-4o-mini:org::x1", "v:2/é")])
def test_custom_id_round_trip(model, version):
    key = RequestKey(3, 123456789012, HASH, model, version)
    assert parse_custom_id(key.custom_id()) == key
    with pytest.raises(ValueError):
        parse_custom_id("req-1")


def test_files_respect_count_size_and_model_limits_and_drop_repeats():
    lines = [build_request_line(conversation(i), "gpt-4o-mini", "lead-v1", 6000) for i in range(10)]
    lines += [build_request_line(conversation(i), "gpt-4o", "lead-v1", 6000) for i in range(3)]
    lines.append(lines[0])
    files = split_into_files(lines, max_requests=4)
    assert [len(f) for f in files] == [3, 4, 4, 2]
    assert all(len({line.key.model for line in f}) == 1 for f in files)
    one_size = len(lines[0].data)
    by_bytes = split_into_files(lines[:10], max_bytes=one_size * 3 + 10)
    assert all(len(file_content(f)) <= one_size * 3 + 10 for f in by_bytes) and sum(map(len, by_bytes)) == 10


def output_line(custom_id: str, content: str, finish: str = "stop") -> str:
    body = {"choices": [{"index": 0, "finish_reason": finish, "message": {"role": "assistant", "content": content, "refusal": None}}],
            "usage": {"prompt_tokens": 100, "completion_tokens": 20, "prompt_tokens_details": {"cached_tokens": 0}}}
    return json.dumps({"id": "r", "custom_id": custom_id, "error": None,
                       "response": {"status_code": 200, "request_id": "q", "body": body}})


def test_result_lines_matched_by_custom_id():
    good = json.dumps({"is_lead": True, "visita_agendada": False, "probabilidade_conversao": 4,
                       "nome_mapeado_bot": "Ana\x00", "analise_ia": "Quer plano."})
    ids = [RequestKey(7, i, HASH, "gpt-4o-mini", "v1").custom_id() for i in range(4)]
    text = "\n".join([
        output_line(ids[2], good),
        output_line(ids[0], good[:20], finish="length"),
        json.dumps({"id": "r", "custom_id": ids[1], "response": None, "error": {"code": "batch_expired", "message": "x"}}),
        json.dumps({"id": "r", "custom_id": ids[3], "error": None, "response": {"status_code": 500, "body": {"error": {"code": None}}}}),
        "not json",
    ])
    outcomes = parse_result_file(text)
    assert outcomes[ids[2]].analysis.probabilidade_conversao == 4 and outcomes[ids[2]].analysis.nome_mapeado_bot == "Ana"
    assert outcomes[ids[2]].key.conversation_id == 2 and outcomes[ids[2]].billed
    assert outcomes[ids[0]].error_kind == "invalid_answer" and outcomes[ids[0]].billed  # paid, but unusable
    assert outcomes[ids[1]].error_kind == "batch_expired" and not outcomes[ids[1]].billed
    assert outcomes[ids[3]].error_kind == "http_500"
    assert len(outcomes) == 4
    assert parse_result_line(output_line("foreign", good)).key is None


def test_batch_price_is_half_of_the_overridable_real_time_price():
    assert cost_usd(batch_price_for("gpt-4o-mini"), 1_000_000, 0, 1_000_000) == pytest.approx(0.375)
    overrides = {"gpt-4o-mini": {"input": 1.0, "output": 2.0}}
    assert batch_price_for("gpt-4o-mini", overrides).output_per_m == price_for("gpt-4o-mini", overrides).output_per_m / 2


@pytest.mark.parametrize("feature, tags, expected", [
    ("backfills", {"dagster/backfill": "b1"}, True),
    ("backfills", {}, False),  # sensor, schedule, CLI and UI runs stay real time
    ("backfills", {"dagster/backfill": "b1", "allpfit/batch": "false"}, False),  # backfill --no-batch
    ("backfills", {"allpfit/batch": "true"}, True),  # run --batch
    ("never", {"dagster/backfill": "b1"}, False),
    ("never", {"allpfit/batch": "true"}, True),
    ("always", {}, True),
    ("always", {"allpfit/batch": "false"}, False),
])
def test_which_runs_use_the_batch_api(feature, tags, expected):
    from allpfit_etl.analysis.batch.step import use_batch_api
    from allpfit_etl.tenants.registry import Tenant, TenantFeatures

    tenant = Tenant(1, "gym", "Gym", 1, True, TenantFeatures(use_openai=True, batch_api=feature))
    assert use_batch_api(tenant, tags) is expected
    regex = Tenant(1, "gym", "Gym", 1, True, TenantFeatures(use_openai=False, batch_api=feature))
    assert use_batch_api(regex, tags) is False


def test_backfill_batch_flag_becomes_a_tag_of_the_backfill(tmp_path):
    import datetime as dt

    import dagster as dg

    from allpfit_etl.automation.backfill import submit_tenant_backfill
    from allpfit_etl.cli.main import batch_tags, build_parser
    from allpfit_etl.definitions import defs
    from allpfit_etl.tenants.registry import Tenant, TenantFeatures

    parser = build_parser()
    assert batch_tags(parser.parse_args(["backfill", "gym", "--from", "2025-11-01", "--to", "2025-11-02"])) == {}
    no_batch = batch_tags(parser.parse_args(["backfill", "gym", "--from", "2025-11-01", "--to", "2025-11-02", "--no-batch"]))
    assert no_batch == {"allpfit/batch": "false"}
    assert batch_tags(parser.parse_args(["run", "--batch"])) == {"allpfit/batch": "true"}
    tenant = Tenant(1, "gym", "Gym", 1, True, TenantFeatures(use_openai=True))
    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        backfill_id = submit_tenant_backfill(defs, instance, tenant, dt.date(2025, 11, 1), dt.date(2025, 11, 2), no_batch)
        assert instance.get_backfill(backfill_id).tags["allpfit/batch"] == "false"
