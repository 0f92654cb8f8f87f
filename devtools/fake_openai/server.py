"""An OpenAI-compatible chat-completions server for tests and benchmarks, on loopback.

It answers Structured Outputs requests with JSON that satisfies the requested schema, derived
deterministically from the messages, and rejects a schema where OpenAI's strict mode would;
reports usage; enforces RPM/TPM limits with 429, ``retry-after`` and ``x-ratelimit-*`` headers;
plays the account errors (quota exhausted, bad key, 403, unknown model); and injects faults
(spurious 429s, 500s, hangs, truncated JSON, NUL bytes). It also answers ``json_object`` with a
``schema`` and a forced tool call, and plays llama-cpp-python's server (``llama_cpp``): HTTP 500
for a ``json_schema`` response format, as that server answers it.
It counts every billed call per distinct prompt so tests can prove nothing is paid twice.
Built on asyncio streams, stdlib only, so thousands of slow requests cost little CPU.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import math
import random
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Awaitable, Callable

from fake_openai.prompt_cache import PromptCache
from fake_openai.strict_schema import SchemaRejected, check_strict_schema

MAX_BODY = 16 * 1024 * 1024


@dataclass
class FakeServerConfig:
    latency_s: float = 0.0
    latency_jitter_s: float = 0.0
    rpm: int = 0  # 0 = unlimited
    tpm: int = 0
    p_429: float = 0.0
    p_500: float = 0.0
    p_hang: float = 0.0
    hang_s: float = 120.0
    p_truncated: float = 0.0
    p_nul: float = 0.0
    fault_seed: int = 0
    # Account errors, as OpenAI answers them (every request gets them while they hold):
    api_keys: tuple[str, ...] = ()  # when set, any other key gets 401 invalid_api_key
    models: tuple[str, ...] = ()  # when set, any other model gets 404 model_not_found
    quota_calls: int | None = None  # billed calls left before 429 insufficient_quota (None = no quota)
    forbidden: bool = False  # 403 for every request
    # llama-cpp-python's server (0.3.x): response_format json_schema is refused with a 500;
    # json_object with a schema and tools are accepted.
    llama_cpp: bool = False


LLAMA_CPP_FORMAT_ERROR = "response_format.type: Input should be 'text' or 'json_object'"


def estimate_tokens(text: str) -> int:
    return math.ceil(len(text) / 4)


def prompt_key(messages: list[dict]) -> str:
    return hashlib.sha256(json.dumps(messages, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def prompt_tokens_of(messages: list[dict]) -> int:
    return sum(estimate_tokens(_content_text(m.get("content"))) + 4 for m in messages)


def _content_text(content) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return ""


_WORDS = ("contato", "perguntou", "valor", "plano", "aula", "experimental", "agendou", "visita", "interesse", "mensal")


class _SchemaFaker:
    """Generates a value that satisfies a JSON schema, from a seeded RNG."""

    def __init__(self, root: dict, rng: random.Random):
        self.root, self.rng = root, rng

    def value(self, schema: dict):
        if "$ref" in schema:
            return self.value(self._resolve(schema["$ref"]))
        if "enum" in schema:
            return self.rng.choice(schema["enum"])
        if "const" in schema:
            return schema["const"]
        for key in ("anyOf", "oneOf"):
            if key in schema:
                options = schema[key]
                non_null = [o for o in options if o.get("type") != "null"]
                if len(non_null) < len(options) and self.rng.random() < 0.3:
                    return None
                return self.value(self.rng.choice(non_null or options))
        kind = schema.get("type")
        if isinstance(kind, list):
            if "null" in kind and self.rng.random() < 0.3:
                return None
            kind = self.rng.choice([k for k in kind if k != "null"] or ["null"])
        if kind == "object" or "properties" in schema:
            props = schema.get("properties", {})
            return {name: self.value(sub) for name, sub in props.items()}
        if kind == "array":
            return [self.value(schema.get("items", {})) for _ in range(self.rng.randint(schema.get("minItems", 0), 3))]
        if kind == "boolean":
            return self.rng.random() < 0.5
        if kind in ("integer", "number"):
            low = schema.get("minimum", schema.get("exclusiveMinimum", 0))
            high = schema.get("maximum", schema.get("exclusiveMaximum", low + 100))
            if kind == "integer":
                return self.rng.randint(math.ceil(low), math.floor(high))
            return round(self.rng.uniform(low, high), 3)
        if kind == "null":
            return None
        return " ".join(self.rng.choice(_WORDS) for _ in range(self.rng.randint(3, 8))).capitalize() + "."

    def _resolve(self, ref: str) -> dict:
        node = self.root
        for part in ref.lstrip("#/").split("/"):
            node = node[part]
        return node


def forced_tool(body: dict) -> dict | None:
    """The function a request makes the model call (``tool_choice`` naming one, or the only tool)."""
    tools = [t.get("function") or {} for t in body.get("tools") or [] if t.get("type") == "function"]
    choice = body.get("tool_choice")
    if isinstance(choice, dict):
        name = (choice.get("function") or {}).get("name")
        return next((t for t in tools if t.get("name") == name), None)
    return tools[0] if len(tools) == 1 and choice in (None, "required", "auto") else None


def _response_schema(body: dict) -> dict | None:
    tool = forced_tool(body)
    if tool is not None:
        return tool.get("parameters")
    response_format = body.get("response_format") or {}
    if response_format.get("type") == "json_schema":
        return (response_format.get("json_schema") or {}).get("schema")
    if response_format.get("type") == "json_object":
        return response_format.get("schema")  # llama-cpp-python and Ollama take a schema here
    return None


def expected_answer(request_body: dict):
    """What a successful, unfaulted request gets: a dict for Structured Outputs, else text."""
    messages = request_body.get("messages", [])
    rng = random.Random(hashlib.sha256("".join(_content_text(m.get("content")) for m in messages).encode()).hexdigest())
    schema = _response_schema(request_body)
    if schema is None:
        return "Resposta de teste: " + " ".join(rng.choice(_WORDS) for _ in range(6))
    return _SchemaFaker(schema, rng).value(schema)


def _with_nul(value):
    if isinstance(value, str):
        return value[: len(value) // 2] + "\x00" + value[len(value) // 2:]
    if isinstance(value, dict):
        return {k: _with_nul(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_with_nul(v) for v in value]
    return value


def _duration(seconds: float) -> str:
    """OpenAI's reset format: ``120ms``, ``1s``, ``6m0s``."""
    if seconds < 1:
        return f"{max(0, int(seconds * 1000))}ms"
    minutes, rest = divmod(seconds, 60)
    return f"{int(minutes)}m{rest:.0f}s" if minutes else f"{rest:.3g}s"


class _Bucket:
    """Token bucket: ``limit`` per minute, refilled continuously, one second of burst."""

    def __init__(self, per_minute: int):
        self.per_minute = per_minute
        self.capacity = max(1.0, per_minute / 60)
        self.level = self.capacity
        self.updated = time.monotonic()

    def _refill(self) -> None:
        now = time.monotonic()
        self.level = min(self.capacity, self.level + (now - self.updated) * self.per_minute / 60)
        self.updated = now

    def wait_for(self, amount: float) -> float:
        """0 when ``amount`` fits now (and takes it), else the seconds until it would."""
        if not self.per_minute:
            return 0.0
        self._refill()
        amount = min(amount, self.capacity)
        if self.level >= amount:
            self.level -= amount
            return 0.0
        return (amount - self.level) * 60 / self.per_minute

    def remaining(self) -> int:
        if not self.per_minute:
            return 0
        self._refill()
        return int(self.level)

    def reset_seconds(self) -> float:
        return (self.capacity - self.level) * 60 / self.per_minute if self.per_minute else 0.0


@dataclass
class _Stats:
    requests: int = 0
    billed_calls: int = 0
    faulty_billed_calls: int = 0
    rate_limited: int = 0
    errors_500: int = 0
    hangs: int = 0
    prompt_tokens: int = 0
    cached_tokens: int = 0
    completion_tokens: int = 0
    account_errors: int = 0
    requests_after_account_error: int = 0  # arrived after the first account error was answered
    schema_rejections: int = 0
    format_rejections: int = 0  # llama_cpp: json_schema refused with a 500
    in_flight: int = 0
    max_in_flight: int = 0
    billed_by_prompt: dict = field(default_factory=dict)
    faulty_billed_by_prompt: dict = field(default_factory=dict)


class FakeOpenAIServer:
    """``FakeOpenAIServer(config).start()`` → ``.base_url``; ``.stats()``; ``.stop()``."""

    def __init__(self, config: FakeServerConfig | None = None, host: str = "127.0.0.1", port: int = 0):
        self.config = config or FakeServerConfig()
        self.host, self.port = host, port
        self._lock = threading.Lock()
        self._stats = _Stats()
        self._rng = random.Random(self.config.fault_seed)
        self.prompt_cache = PromptCache()  # OpenAI's prompt caching (prompt_cache.py)
        self._quota_used = 0
        self._buckets = (_Bucket(self.config.rpm), _Bucket(self.config.tpm))
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.AbstractServer | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        from fake_openai.batches import BatchEndpoints  # imports this module's helpers

        self.batches = BatchEndpoints()  # /v1/files and /v1/batches
        self._routes: dict[tuple[str, str], Route] = {}
        self._public_routes: set[tuple[str, str]] = set()
        self.add_route("GET", "/_stats", self._get_stats, public=True)
        self.add_route("POST", "/_reset", self._post_reset, public=True)
        self.add_route("POST", "/_config", self._post_config, public=True)
        self.add_route("GET", "/v1/models", self._get_models)
        self.add_route("POST", "/v1/chat/completions", self._post_chat)
        for register in _EXTENSIONS:
            register(self)

    def add_route(self, method: str, path: str, handler: "Route", *, public: bool = False) -> None:
        """Serve ``handler(headers, body) -> (status, headers, payload)`` at ``method path``.
        Routes under ``/v1`` need a bearer key (``public`` routes do not)."""
        self._routes[(method, path)] = handler
        if public:
            self._public_routes.add((method, path))

    # ----- lifecycle -------------------------------------------------------------------------
    def start(self) -> "FakeOpenAIServer":
        ready = threading.Event()
        self._loop = asyncio.new_event_loop()

        def run() -> None:
            asyncio.set_event_loop(self._loop)
            self._server = self._loop.run_until_complete(
                asyncio.start_server(self._handle, self.host, self.port, backlog=2048, limit=MAX_BODY)
            )
            self.port = self._server.sockets[0].getsockname()[1]
            ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, name="fake-openai", daemon=True)
        self._thread.start()
        ready.wait(10)
        return self

    async def _shutdown(self) -> None:
        self._server.close()
        for writer in list(self._writers):
            writer.close()
        for task in [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]:
            task.cancel()

    def stop(self) -> None:
        if self._loop and self._loop.is_running():
            asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(10)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)

    def __enter__(self) -> "FakeOpenAIServer":
        return self if self._thread else self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    # ----- control ---------------------------------------------------------------------------
    def configure(self, **changes) -> None:
        with self._lock:
            self.config = dataclasses.replace(self.config, **changes)
            if "fault_seed" in changes:
                self._rng = random.Random(self.config.fault_seed)
            if "rpm" in changes or "tpm" in changes:
                self._buckets = (_Bucket(self.config.rpm), _Bucket(self.config.tpm))
            if "quota_calls" in changes:
                self._quota_used = 0

    def stats(self) -> dict:
        with self._lock:
            data = dataclasses.asdict(self._stats)
        data.pop("in_flight")
        return data

    def reset_stats(self) -> None:
        with self._lock:
            in_flight = self._stats.in_flight
            self._stats = _Stats(in_flight=in_flight)

    def wait_until_idle(self, timeout: float = 30.0) -> None:
        """Return once no client holds a connection open: every request received has been answered
        (and billed) or dropped. A killed client's requests in flight still complete here first."""
        deadline = time.monotonic() + timeout
        while self._writers:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(self._writers)} client connection(s) still open after {timeout:.0f}s")
            time.sleep(0.02)

    def prompts_billed_twice(self) -> list[str]:
        """Prompts that were paid for a good answer more than once."""
        with self._lock:
            billed, faulty = self._stats.billed_by_prompt, self._stats.faulty_billed_by_prompt
            return sorted(k for k, n in billed.items() if n - faulty.get(k, 0) > 1)

    # ----- HTTP ------------------------------------------------------------------------------
    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            while True:
                request_line = await reader.readline()
                if not request_line:
                    return
                method, path, _version = request_line.decode("latin-1").split(" ", 2)
                headers = {}
                while True:
                    line = await reader.readline()
                    if line in (b"\r\n", b"\n", b""):
                        break
                    name, _, value = line.decode("latin-1").partition(":")
                    headers[name.strip().lower()] = value.strip()
                length = int(headers.get("content-length", 0) or 0)
                body = await reader.readexactly(length) if length else b""
                status, extra, payload = await self._route(method, path.split("?")[0], headers, body)
                if status is None:  # a hang: drop the connection without answering
                    return
                data = payload if isinstance(payload, bytes) else json.dumps(payload, ensure_ascii=False).encode()
                head = [f"HTTP/1.1 {status} {_REASONS.get(status, 'OK')}", "content-type: application/json",
                        f"content-length: {len(data)}", "connection: keep-alive"]
                head += [f"{k}: {v}" for k, v in extra.items()]
                writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + data)
                await writer.drain()
                if headers.get("connection", "").lower() == "close":
                    return
        except (ConnectionError, asyncio.IncompleteReadError, ValueError, asyncio.CancelledError):
            return
        finally:
            self._writers.discard(writer)
            writer.close()

    async def _route(self, method: str, path: str, headers: dict, body: bytes):
        handler = self._routes.get((method, path))
        if handler is None and not path.startswith("/v1/"):
            return 404, {}, _error(f"Unknown route {method} {path}", "invalid_request_error", "not_found")
        if (method, path) not in self._public_routes:
            rejected = self._check_key(headers.get("authorization", ""))
            if rejected:
                return rejected
        if handler is None and self.batches.handles(path):
            return await self.batches.route(method, path, headers, body)
        if handler is None:
            return 404, {}, _error(f"Unknown route {method} {path}", "invalid_request_error", "not_found")
        return await handler(headers, body)

    def _check_key(self, authorization: str):
        key = authorization[7:] if authorization.startswith("Bearer ") else ""
        if not key:
            return 401, {}, _error("Missing bearer token.", "invalid_request_error", "invalid_api_key")
        if self.config.api_keys and key not in self.config.api_keys:
            with self._lock:
                self._stats.requests += 1
                if self._stats.account_errors:
                    self._stats.requests_after_account_error += 1
                self._stats.account_errors += 1
            # OpenAI names a few characters of the key; a test server has no reason to.
            return 401, {}, _error("Incorrect API key provided.", "invalid_request_error", "invalid_api_key")
        return None

    async def _get_stats(self, headers, body):
        return 200, {}, self.stats()

    async def _post_reset(self, headers, body):
        self.reset_stats()
        return 200, {}, {"ok": True}

    async def _post_config(self, headers, body):
        changes = json.loads(body or b"{}")
        for name in ("api_keys", "models"):
            if name in changes:
                changes[name] = tuple(changes[name] or ())
        self.configure(**changes)
        return 200, {}, dataclasses.asdict(self.config)

    async def _get_models(self, headers, body):
        models = self.config.models or ("gpt-4o-mini",)
        return 200, {}, {"object": "list", "data": [{"id": m, "object": "model", "owned_by": "fake"} for m in models]}

    async def _post_chat(self, headers, body):
        return await self._chat(json.loads(body))

    def _account_error(self, body: dict):
        """What OpenAI answers before any work when the account or the request itself is wrong."""
        config = self.config
        if config.forbidden:
            return 403, {}, _error("You are not allowed to use this model from this project.",
                                   "invalid_request_error", "unsupported_country_region_territory")
        model = body.get("model", "")
        if config.models and model not in config.models:
            return 404, {}, _error(f"The model `{model}` does not exist or you do not have access to it.",
                                   "invalid_request_error", "model_not_found")
        if config.quota_calls is not None and self._quota_used >= config.quota_calls:
            return 429, {}, _error("You exceeded your current quota, please check your plan and billing details.",
                                   "insufficient_quota", "insufficient_quota")
        response_format = body.get("response_format") or {}
        if config.llama_cpp and response_format and response_format.get("type") not in ("text", "json_object"):
            self._stats.format_rejections += 1
            return 500, {}, _error(LLAMA_CPP_FORMAT_ERROR, "internal_server_error", None)
        if response_format.get("type") == "json_schema":
            spec = response_format.get("json_schema") or {}
            if spec.get("strict"):
                try:
                    check_strict_schema(spec.get("name", ""), spec.get("schema"))
                except SchemaRejected as exc:
                    self._stats.schema_rejections += 1
                    error = _error(str(exc), "invalid_request_error", "invalid_json_schema")
                    error["error"]["param"] = "response_format"
                    return 400, {}, error
        return None

    def _limit_headers(self) -> dict:
        requests_bucket, tokens_bucket = self._buckets
        headers = {}
        for kind, bucket in (("requests", requests_bucket), ("tokens", tokens_bucket)):
            if bucket.per_minute:
                headers[f"x-ratelimit-limit-{kind}"] = str(bucket.per_minute)
                headers[f"x-ratelimit-remaining-{kind}"] = str(bucket.remaining())
                headers[f"x-ratelimit-reset-{kind}"] = _duration(bucket.reset_seconds())
        return headers

    async def _chat(self, body: dict):
        messages = body.get("messages", [])
        key = prompt_key(messages)
        prompt_tokens = prompt_tokens_of(messages)
        with self._lock:
            self._stats.requests += 1
            if self._stats.account_errors:
                self._stats.requests_after_account_error += 1
            rejected = self._account_error(body)
            if rejected:
                self._stats.account_errors += 1
                return rejected
            config = self.config
            requests_bucket, tokens_bucket = self._buckets
            wait = max(requests_bucket.wait_for(1) if requests_bucket.per_minute else 0.0,
                       tokens_bucket.wait_for(prompt_tokens) if tokens_bucket.per_minute else 0.0)
            draw = self._rng.random()
            latency = max(0.0, config.latency_s + self._rng.uniform(-config.latency_jitter_s, config.latency_jitter_s))
            if wait > 0:
                self._stats.rate_limited += 1
        if wait > 0:
            return 429, {**self._limit_headers(), **_retry_after(wait)}, _error(
                "Rate limit reached for requests.", "requests", "rate_limit_exceeded")

        fault = _pick_fault(draw, config)
        if fault == "429":
            with self._lock:
                self._stats.rate_limited += 1
            return 429, {**self._limit_headers(), **_retry_after(1.0)}, _error(
                "Rate limit reached (spurious).", "requests", "rate_limit_exceeded")
        if fault == "500":
            with self._lock:
                self._stats.errors_500 += 1
            return 500, {}, _error("The server had an error while processing your request.", "server_error", None)
        if fault == "hang":
            with self._lock:
                self._stats.hangs += 1
            await asyncio.sleep(config.hang_s)
            return None, {}, b""

        with self._lock:
            self._stats.in_flight += 1
            self._stats.max_in_flight = max(self._stats.max_in_flight, self._stats.in_flight)
        try:
            await asyncio.sleep(latency)
        finally:
            with self._lock:
                self._stats.in_flight -= 1
        answer = expected_answer(body)
        finish_reason = "stop"
        tool = forced_tool(body)
        if isinstance(answer, (dict, list)):
            if fault == "nul":
                answer = _with_nul(answer)
            content = json.dumps(answer, ensure_ascii=False)
        else:
            content = answer
        if fault == "truncated":
            content, finish_reason = content[: len(content) // 2], "length"
        completion_tokens = estimate_tokens(content)
        cached = self.prompt_cache.cached_tokens(messages, prompt_tokens)
        with self._lock:
            s = self._stats
            self._quota_used += 1
            s.billed_calls += 1
            s.prompt_tokens += prompt_tokens
            s.cached_tokens += cached
            s.completion_tokens += completion_tokens
            s.billed_by_prompt[key] = s.billed_by_prompt.get(key, 0) + 1
            if fault in ("truncated", "nul"):
                s.faulty_billed_calls += 1
                s.faulty_billed_by_prompt[key] = s.faulty_billed_by_prompt.get(key, 0) + 1
            headers = self._limit_headers()
        headers["openai-processing-ms"] = str(round(latency * 1000))  # as OpenAI states its own time
        return 200, headers, {
            "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", "gpt-4o-mini"),
            "choices": [{"index": 0, "finish_reason": finish_reason, "logprobs": None,
                         "message": _message(content, tool)}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                      "total_tokens": prompt_tokens + completion_tokens,
                      "prompt_tokens_details": {"cached_tokens": cached, "audio_tokens": 0},
                      "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0}},
            "system_fingerprint": "fp_fake",
        }


Route = Callable[[dict, bytes], Awaitable[tuple]]
_EXTENSIONS: list[Callable[["FakeOpenAIServer"], None]] = []


def register_extension(register: Callable[["FakeOpenAIServer"], None]) -> None:
    """Add routes to every server created from now on: ``register(server)`` calls ``server.add_route``."""
    if register not in _EXTENSIONS:
        _EXTENSIONS.append(register)


def _pick_fault(draw: float, config: FakeServerConfig) -> str | None:
    threshold = 0.0
    for name, probability in (("429", config.p_429), ("500", config.p_500), ("hang", config.p_hang),
                              ("truncated", config.p_truncated), ("nul", config.p_nul)):
        threshold += probability
        if draw < threshold:
            return name
    return None


def _message(content: str, tool: dict | None) -> dict:
    """The assistant's message: the answer as its content, or as the arguments of the forced tool call."""
    if tool is None:
        return {"role": "assistant", "content": content, "refusal": None}
    call = {"id": f"call_{uuid.uuid4().hex[:24]}", "type": "function",
            "function": {"name": tool.get("name", ""), "arguments": content}}
    return {"role": "assistant", "content": None, "refusal": None, "tool_calls": [call]}


def _retry_after(seconds: float) -> dict:
    return {"retry-after": str(max(1, math.ceil(seconds))), "retry-after-ms": str(max(1, math.ceil(seconds * 1000)))}


def _error(message: str, kind: str, code) -> dict:
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


_REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
            429: "Too Many Requests", 500: "Internal Server Error"}
