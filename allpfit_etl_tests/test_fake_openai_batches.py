"""The fake server's Files and Batch API, through the real openai client over real HTTP."""

from __future__ import annotations

import io
import json

import openai
import pytest

from fake_openai import expected_answer


def client(server):
    return openai.OpenAI(api_key="sk-test", base_url=server.base_url, max_retries=0)


def line(i: int, model: str = "gpt-4o-mini", custom_id: str | None = None) -> dict:
    body = {"model": model, "messages": [{"role": "user", "content": f"conversa {i}"}],
            "response_format": {"type": "json_schema", "json_schema": {"name": "x", "strict": True, "schema": {
                "type": "object", "properties": {"n": {"type": "integer", "minimum": 0, "maximum": 5}},
                "required": ["n"], "additionalProperties": False}}}}
    return {"custom_id": custom_id or f"req-{i}", "method": "POST", "url": "/v1/chat/completions", "body": body}


def submit(c, lines: list[dict], **metadata):
    content = "".join(json.dumps(item) + "\n" for item in lines).encode()
    uploaded = c.files.create(file=("requests.jsonl", io.BytesIO(content)), purpose="batch")
    return c.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h",
                            metadata=metadata or None)


def read_jsonl(c, file_id: str) -> list[dict]:
    return [json.loads(row) for row in c.files.content(file_id).text.splitlines() if row.strip()]


def test_status_progression_output_format_and_billing(server):
    server.batches.configure(processing_s=3600)
    c = client(server)
    lines = [line(i) for i in range(40)]
    batch = submit(c, lines, allpfit_key="k1")
    assert batch.status == "validating" and batch.metadata == {"allpfit_key": "k1"}
    assert c.batches.retrieve(batch.id).status == "in_progress"
    assert server.batches.stats()["billed_lines"] == 0
    server.batches.configure(processing_s=0)
    done = c.batches.retrieve(batch.id)
    assert done.status == "completed" and done.request_counts.completed == 40 and done.error_file_id is None
    output = read_jsonl(c, done.output_file_id)
    assert [o["custom_id"] for o in output] != [item["custom_id"] for item in lines]  # out of order
    by_id = {o["custom_id"]: o for o in output}
    for item in lines:
        response = by_id[item["custom_id"]]["response"]
        assert response["status_code"] == 200
        assert json.loads(response["body"]["choices"][0]["message"]["content"]) == expected_answer(item["body"])
    stats = server.batches.stats()
    assert stats["billed_lines"] == 40 and server.batches.prompts_billed_twice() == []
    assert stats["prompt_tokens"] == sum(o["response"]["body"]["usage"]["prompt_tokens"] for o in output)
    assert done.usage.input_tokens == stats["prompt_tokens"]
    assert server.stats()["billed_calls"] == 0  # nothing went through the real-time endpoint
    assert [b.id for b in c.batches.list()] == [batch.id]
    c.files.delete(done.output_file_id)
    with pytest.raises(openai.NotFoundError):
        c.files.retrieve(done.output_file_id)


def test_partial_expiry_and_line_errors(server):
    server.batches.configure(p_expire=0.25, seed=3)
    c = client(server)
    batch = c.batches.retrieve(submit(c, [line(i) for i in range(200)]).id)
    assert batch.status == "expired"
    errors = read_jsonl(c, batch.error_file_id)
    assert 20 < len(errors) < 80 and all(e["error"]["code"] == "batch_expired" for e in errors)
    assert batch.request_counts.completed + len(errors) == 200
    server.batches.configure(p_expire=0.0, p_line_error=0.1)
    batch = c.batches.retrieve(submit(c, [line(i) for i in range(200)]).id)
    errors = read_jsonl(c, batch.error_file_id)
    assert batch.status == "completed" and 5 < len(errors) < 40
    assert all(e["response"]["status_code"] == 500 and e["error"] is None for e in errors)


@pytest.mark.parametrize("lines, code", [
    ([line(1), line(2, custom_id="req-1")], "duplicate_custom_id"),
    ([line(1), line(2, model="gpt-4o")], "mismatched_model"),
])
def test_validation_failures(server, lines, code):
    c = client(server)
    batch = c.batches.retrieve(submit(c, lines).id)
    assert batch.status == "failed" and batch.errors.data[0].code == code
    assert batch.output_file_id is None and server.batches.stats()["billed_lines"] == 0


def test_more_than_50000_lines_fail_validation(server):
    c = client(server)
    tiny = json.dumps({"custom_id": "x", "method": "POST", "url": "/v1/chat/completions", "body": {"model": "m"}})
    content = "\n".join(tiny.replace('"x"', f'"r{i}"') for i in range(50_001)).encode()
    uploaded = c.files.create(file=("big.jsonl", io.BytesIO(content)), purpose="batch")
    batch = c.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h")
    batch = c.batches.retrieve(batch.id)
    assert batch.status == "failed" and batch.errors.data[0].code == "too_many_requests"


def test_cancel_token_limit_and_persistence_across_clients(server):
    server.batches.configure(processing_s=3600, enqueued_token_limit=200)
    first = client(server)
    open_batch = submit(first, [line(i) for i in range(10)])
    assert first.batches.retrieve(open_batch.id).status == "in_progress"
    too_many = submit(first, [line(i) for i in range(10, 30)])
    failed = first.batches.retrieve(too_many.id)
    assert failed.status == "failed" and failed.errors.data[0].code == "token_limit_exceeded"
    first.close()
    second = client(server)  # a restarted client sees the same batches
    assert {b.id for b in second.batches.list()} == {open_batch.id, too_many.id}
    cancelled = second.batches.cancel(open_batch.id)
    assert cancelled.status == "cancelled" and cancelled.output_file_id is None
    assert server.batches.stats()["billed_lines"] == 0
