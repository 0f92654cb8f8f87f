"""``/v1/files`` and ``/v1/batches`` for the fake server: OpenAI's Batch API, modelled closely
enough to test a client that must pay exactly once across restarts.

A batch moves ``validating`` → ``in_progress`` → ``finalizing`` → ``completed`` (or ``expired``,
``failed``, ``cancelled``) as time passes; the status is worked out whenever the batch is read,
so a stopped client finds it where the clock left it. Answers come from the same
``expected_answer`` as ``/v1/chat/completions``; output lines are shuffled (never in input
order); expiry, per-line errors and validation failures are injected on demand. Only answered
lines are billed, counted per distinct prompt.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import random
import threading
import time
import uuid
from dataclasses import dataclass, field

from fake_openai.server import _message, estimate_tokens, expected_answer, forced_tool, prompt_key, prompt_tokens_of

MAX_LINES = 50_000
MAX_FILE_BYTES = 200 * 1024 * 1024
ENDED = ("completed", "expired", "failed", "cancelled")


@dataclass
class BatchConfig:
    validating_s: float = 0.0
    processing_s: float = 0.0  # read live: lowering it lets open batches finish
    finalizing_s: float = 0.0
    p_expire: float = 0.0  # share of lines left unanswered when the batch expires (snapshot at create)
    p_line_error: float = 0.0  # share of lines answered with a 500 in the error file (snapshot at create)
    fail_validation: str | None = None  # force the next batches' validation to fail with this code
    enqueued_token_limit: int = 0  # 0 = unlimited; past it validation fails with token_limit_exceeded
    seed: int = 0


@dataclass
class BatchStats:
    batches_created: int = 0
    billed_lines: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    billed_by_prompt: dict = field(default_factory=dict)


def _now() -> int:
    return int(time.time())


def _error(message: str, kind: str = "invalid_request_error", code=None, param=None) -> dict:
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


def parse_multipart(content_type: str, body: bytes) -> dict[str, tuple[str | None, bytes]]:
    """``{field: (filename, bytes)}`` of a multipart/form-data body."""
    boundary = None
    for part in content_type.split(";"):
        name, _, value = part.strip().partition("=")
        if name.lower() == "boundary":
            boundary = value.strip('"')
    if not boundary:
        raise ValueError("multipart body without a boundary")
    fields = {}
    for chunk in body.split(b"--" + boundary.encode())[1:]:
        if chunk.startswith(b"--"):
            break
        head, _, data = chunk.lstrip(b"\r\n").partition(b"\r\n\r\n")
        disposition = next((line for line in head.decode("utf-8", "replace").split("\r\n")
                            if line.lower().startswith("content-disposition")), "")
        params = {}
        for item in disposition.split(";")[1:]:
            key, _, value = item.strip().partition("=")
            params[key.lower()] = value.strip('"')
        if "name" in params:
            fields[params["name"]] = (params.get("filename"), data[:-2] if data.endswith(b"\r\n") else data)
    return fields


class BatchEndpoints:
    """Mounted by ``FakeOpenAIServer``: ``.handles(path)`` then ``await .route(...)``."""

    def __init__(self, config: BatchConfig | None = None):
        self.config = config or BatchConfig()
        self._lock = threading.RLock()
        self._files: dict[str, dict] = {}
        self._contents: dict[str, bytes] = {}
        self._batches: dict[str, dict] = {}
        self._private: dict[str, dict] = {}  # per batch: started (monotonic), snapshot, parsed lines
        self._stats = BatchStats()

    # ----- control (tests) -------------------------------------------------------------------
    def configure(self, **changes) -> None:
        with self._lock:
            self.config = dataclasses.replace(self.config, **changes)

    def stats(self) -> dict:
        with self._lock:
            return json.loads(json.dumps(dataclasses.asdict(self._stats)))

    def prompts_billed_twice(self) -> list[str]:
        with self._lock:
            return sorted(k for k, n in self._stats.billed_by_prompt.items() if n > 1)

    def batches(self) -> list[dict]:
        with self._lock:
            for batch_id in self._batches:
                self._advance(batch_id)
            return [json.loads(json.dumps(b)) for b in self._batches.values()]

    # ----- HTTP ------------------------------------------------------------------------------
    @staticmethod
    def handles(path: str) -> bool:
        return path.startswith(("/v1/files", "/v1/batches", "/_batches"))

    async def route(self, method: str, path: str, headers: dict, body: bytes):
        if path == "/_batches/config" and method == "POST":
            self.configure(**json.loads(body or b"{}"))
            return 200, {}, dataclasses.asdict(self.config)
        if path == "/_batches/stats" and method == "GET":
            return 200, {}, self.stats()
        if not headers.get("authorization", "").startswith("Bearer ") or len(headers["authorization"]) <= 7:
            return 401, {}, _error("Missing bearer token.", code="invalid_api_key")
        parts = [p for p in path.split("/") if p][1:]  # drop "v1"
        with self._lock:
            if parts[0] == "files":
                return self._files_route(method, parts[1:], headers, body)
            return self._batches_route(method, parts[1:], body)

    # ----- files -----------------------------------------------------------------------------
    def _files_route(self, method: str, rest: list[str], headers: dict, body: bytes):
        if not rest and method == "POST":
            return self._upload(headers, body)
        if not rest and method == "GET":
            data = sorted(self._files.values(), key=lambda f: f["created_at"], reverse=True)
            return 200, {}, {"object": "list", "data": data, "has_more": False,
                             "first_id": data[0]["id"] if data else None, "last_id": data[-1]["id"] if data else None}
        file_id = rest[0]
        if file_id not in self._files:
            return 404, {}, _error(f"No such File object: {file_id}", code="not_found", param="id")
        if len(rest) == 1 and method == "GET":
            return 200, {}, self._files[file_id]
        if len(rest) == 1 and method == "DELETE":
            del self._files[file_id]
            self._contents.pop(file_id, None)
            return 200, {}, {"id": file_id, "object": "file", "deleted": True}
        if rest[1:] == ["content"] and method == "GET":
            return 200, {}, self._contents[file_id]
        return 404, {}, _error("Unknown files route", code="not_found")

    def _upload(self, headers: dict, body: bytes):
        try:
            fields = parse_multipart(headers.get("content-type", ""), body)
        except ValueError as exc:
            return 400, {}, _error(str(exc))
        purpose = fields.get("purpose", (None, b""))[1].decode()
        if "file" not in fields or purpose not in ("batch", "batch_output", "assistants", "fine-tune", "user_data"):
            return 400, {}, _error("Upload needs 'file' and a valid 'purpose'.", param="purpose")
        filename, content = fields["file"]
        if purpose == "batch" and len(content) > MAX_FILE_BYTES:
            return 400, {}, _error("File is larger than 200 MB.", param="file")
        return 200, {}, self._store_file(filename or "upload.jsonl", content, purpose)

    def _store_file(self, filename: str, content: bytes, purpose: str) -> dict:
        file_id = f"file-{uuid.uuid4().hex[:24]}"
        self._files[file_id] = {
            "id": file_id, "object": "file", "bytes": len(content), "created_at": _now(), "filename": filename,
            "purpose": purpose, "status": "processed", "status_details": None, "expires_at": None,
        }
        self._contents[file_id] = content
        return self._files[file_id]

    # ----- batches ---------------------------------------------------------------------------
    def _batches_route(self, method: str, rest: list[str], body: bytes):
        if not rest and method == "POST":
            return self._create(json.loads(body or b"{}"))
        if not rest and method == "GET":
            return self._list()
        batch_id = rest[0]
        if batch_id not in self._batches:
            return 404, {}, _error(f"No batch found with id '{batch_id}'.", code="not_found")
        if len(rest) == 1 and method == "GET":
            return 200, {}, self._advance(batch_id)
        if rest[1:] == ["cancel"] and method == "POST":
            return 200, {}, self._cancel(batch_id)
        return 404, {}, _error("Unknown batches route", code="not_found")

    def _create(self, request: dict):
        file_id = request.get("input_file_id")
        if file_id not in self._files:
            return 400, {}, _error(f"Invalid input_file_id: {file_id}", param="input_file_id")
        if request.get("endpoint") != "/v1/chat/completions" or request.get("completion_window") != "24h":
            return 400, {}, _error("Only /v1/chat/completions with a 24h window is supported.", param="endpoint")
        metadata = request.get("metadata") or None
        if metadata and (len(metadata) > 16 or any(len(k) > 64 or len(str(v)) > 512 for k, v in metadata.items())):
            return 400, {}, _error("Invalid metadata: at most 16 pairs, keys ≤ 64 and values ≤ 512 characters.", param="metadata")
        batch_id = f"batch_{uuid.uuid4().hex[:24]}"
        created = _now()
        self._batches[batch_id] = {
            "id": batch_id, "object": "batch", "endpoint": request["endpoint"], "errors": None,
            "input_file_id": file_id, "completion_window": "24h", "status": "validating",
            "output_file_id": None, "error_file_id": None, "created_at": created, "in_progress_at": None,
            "expires_at": created + 86_400, "finalizing_at": None, "completed_at": None, "failed_at": None,
            "expired_at": None, "cancelling_at": None, "cancelled_at": None,
            "request_counts": {"total": 0, "completed": 0, "failed": 0}, "metadata": metadata, "model": None,
            "usage": None,
        }
        self._private[batch_id] = {"started": time.monotonic(), "config": self.config, "lines": []}
        self._stats.batches_created += 1
        if self.config.fail_validation:  # applies to batches created while it is set
            self._private[batch_id]["forced"] = self.config.fail_validation
        return 200, {}, dict(self._batches[batch_id])

    def _list(self):
        for batch_id in self._batches:
            self._advance(batch_id)
        data = sorted(self._batches.values(), key=lambda b: (b["created_at"], b["id"]), reverse=True)
        return 200, {}, {"object": "list", "data": data, "has_more": False,
                         "first_id": data[0]["id"] if data else None, "last_id": data[-1]["id"] if data else None}

    def _cancel(self, batch_id: str) -> dict:
        batch = self._advance(batch_id)
        if batch["status"] in ("validating", "in_progress", "finalizing"):
            now = _now()
            batch.update(status="cancelled", cancelling_at=now, cancelled_at=now)
            batch["request_counts"]["failed"] = batch["request_counts"]["total"] - batch["request_counts"]["completed"]
        return batch

    def _advance(self, batch_id: str) -> dict:
        """Bring the batch to where the clock says it is."""
        batch, private = self._batches[batch_id], self._private[batch_id]
        if batch["status"] in ENDED:
            return batch
        live = self.config
        elapsed = time.monotonic() - private["started"]
        if batch["status"] == "validating" and elapsed >= live.validating_s:
            self._validate(batch, private)
        if batch["status"] == "in_progress" and elapsed >= live.validating_s + live.processing_s:
            batch.update(status="finalizing", finalizing_at=_now())
        if batch["status"] == "finalizing" and elapsed >= live.validating_s + live.processing_s + live.finalizing_s:
            self._finish(batch, private)
        return batch

    def _validate(self, batch: dict, private: dict) -> None:
        content = self._contents.get(batch["input_file_id"], b"")
        errors, lines, seen, models = [], [], set(), set()
        raw_lines = [line for line in content.split(b"\n") if line.strip()]
        if len(raw_lines) > MAX_LINES:
            errors.append(("too_many_requests", None, f"The input file has {len(raw_lines)} requests; the limit is {MAX_LINES}."))
        for number, raw in enumerate(raw_lines[: MAX_LINES + 1], start=1):
            try:
                line = json.loads(raw)
            except ValueError:
                errors.append(("invalid_json_line", number, "This line is not parseable as valid JSON."))
                continue
            custom_id = line.get("custom_id")
            if not custom_id:
                errors.append(("missing_required_parameter", number, "custom_id is required."))
            elif custom_id in seen:
                errors.append(("duplicate_custom_id", number, f"The custom_id {custom_id!r} is used more than once."))
            seen.add(custom_id)
            if line.get("url") != batch["endpoint"] or line.get("method") != "POST":
                errors.append(("invalid_url", number, "The url must match the batch endpoint and method must be POST."))
            model = (line.get("body") or {}).get("model")
            models.add(model)
            if len(models) > 1:
                errors.append(("mismatched_model", number, "All requests in a batch must use the same model."))
                models = {model}
            lines.append(line)
        forced = private.get("forced")
        tokens = sum(prompt_tokens_of((line.get("body") or {}).get("messages", [])) for line in lines)
        limit = self.config.enqueued_token_limit  # an account property: read live
        if not errors and limit and tokens + self._enqueued_tokens() > limit:
            errors.append(("token_limit_exceeded", None,
                           f"Enqueued token limit reached for {next(iter(models), '?')}: limit {limit}."))
        if forced and not errors:
            errors.append((forced, None, f"Validation failed: {forced}."))
        now = _now()
        if errors:
            batch.update(status="failed", failed_at=now, errors={"object": "list", "data": [
                {"code": code, "line": line, "message": message, "param": None} for code, line, message in errors[:100]]})
            return
        private["lines"], private["tokens"] = lines, tokens
        batch.update(status="in_progress", in_progress_at=now, model=next(iter(models), None))
        batch["request_counts"]["total"] = len(lines)

    def _enqueued_tokens(self) -> int:
        return sum(p.get("tokens", 0) for bid, p in self._private.items()
                   if self._batches[bid]["status"] in ("in_progress", "finalizing"))

    def _finish(self, batch: dict, private: dict) -> None:
        snapshot: BatchConfig = private["config"]
        rng = random.Random(f"{snapshot.seed}:{batch['id']}")
        outputs, errors = [], []
        prompt_total = completion_total = 0
        expiring = snapshot.p_expire > 0
        for line in private["lines"]:
            custom_id, body = line["custom_id"], line["body"]
            draw = _draw(snapshot.seed, custom_id)
            request_id = f"batch_req_{uuid.uuid4().hex[:24]}"
            if expiring and draw < snapshot.p_expire:
                errors.append({"id": request_id, "custom_id": custom_id, "response": None, "error": {
                    "code": "batch_expired",
                    "message": "This request could not be executed before the completion window expired."}})
                continue
            if rng.random() < snapshot.p_line_error:
                errors.append({"id": request_id, "custom_id": custom_id, "error": None, "response": {
                    "status_code": 500, "request_id": f"req_{uuid.uuid4().hex[:24]}",
                    "body": _error("The server had an error while processing your request.", "server_error")}})
                continue
            completion = _completion(body)
            usage = completion["usage"]
            prompt_total += usage["prompt_tokens"]
            completion_total += usage["completion_tokens"]
            key = prompt_key(body.get("messages", []))
            self._stats.billed_lines += 1
            self._stats.prompt_tokens += usage["prompt_tokens"]
            self._stats.completion_tokens += usage["completion_tokens"]
            self._stats.billed_by_prompt[key] = self._stats.billed_by_prompt.get(key, 0) + 1
            outputs.append({"id": request_id, "custom_id": custom_id, "error": None, "response": {
                "status_code": 200, "request_id": f"req_{uuid.uuid4().hex[:24]}", "body": completion}})
        rng.shuffle(outputs)  # OpenAI gives no order guarantee; neither do we
        rng.shuffle(errors)
        now = _now()
        if outputs:
            batch["output_file_id"] = self._jsonl_file(f"{batch['id']}_output.jsonl", outputs)["id"]
        if errors:
            batch["error_file_id"] = self._jsonl_file(f"{batch['id']}_error.jsonl", errors)["id"]
        batch["request_counts"] = {"total": len(private["lines"]), "completed": len(outputs), "failed": len(errors)}
        batch["usage"] = {"input_tokens": prompt_total, "input_tokens_details": {"cached_tokens": 0},
                          "output_tokens": completion_total, "output_tokens_details": {"reasoning_tokens": 0},
                          "total_tokens": prompt_total + completion_total}
        if expiring:
            batch.update(status="expired", expired_at=now)
        else:
            batch.update(status="completed", completed_at=now)

    def _jsonl_file(self, filename: str, rows: list[dict]) -> dict:
        content = b"".join(json.dumps(row, ensure_ascii=False).encode() + b"\n" for row in rows)
        return self._store_file(filename, content, "batch_output")


def _draw(seed: int, custom_id: str) -> float:
    digest = hashlib.sha256(f"{seed}:{custom_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def _completion(body: dict) -> dict:
    """The body ``/v1/chat/completions`` would have answered, from the same answer logic."""
    messages = body.get("messages", [])
    answer = expected_answer(body)
    content = json.dumps(answer, ensure_ascii=False) if isinstance(answer, (dict, list)) else answer
    prompt_tokens, completion_tokens = prompt_tokens_of(messages), estimate_tokens(content)
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex[:24]}", "object": "chat.completion", "created": _now(),
        "model": body.get("model", "gpt-4o-mini"),
        "choices": [{"index": 0, "finish_reason": "stop", "logprobs": None,
                     "message": _message(content, forced_tool(body))}],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                  "total_tokens": prompt_tokens + completion_tokens,
                  "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
                  "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0}},
        "system_fingerprint": "fp_fake",
    }
