"""OpenAI analyser: structured answers (``structured_output``) over the official async client, as fast as the account's
rate limit allows, every attempt accounted for, every good answer handed over the moment it
arrives (the caller stores it, so nothing paid for is ever lost).

Requests in flight follow Little's law — the rate this step may send times the latency observed —
so no setting has to be tuned to reach the limit. An account error (quota, key, access, model, a
request the API rejects as such) stops every request of the run at once: ``OpenAIAccountError``;
so does a server that fails the step's first requests all the same way (``failure_watch``)."""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import datetime as dt
import json
import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Sequence

from tenacity import AsyncRetrying, RetryError, retry_if_exception, stop_after_attempt, wait_random_exponential

from allpfit_etl.analysis.interface import (
    AnalysisFailure,
    AnalysisResult,
    AnalyzerIdentity,
    ChunkOutcome,
    ConversationInput,
    Usage,
)
from allpfit_etl.analysis.failure_watch import FailureWatch, quoted
from allpfit_etl.analysis.pricing import DEFAULT_USD_BRL, ModelPrice, RateLimits, cost_usd
from allpfit_etl.analysis.prompts import PROMPT_VERSION, system_prompt
from allpfit_etl.analysis.rate_limiter import LimiterClosed, retry_after_seconds
from allpfit_etl.analysis.shared_rate_limit import SharedRateLimit
from allpfit_etl.analysis import structured_output
from allpfit_etl.analysis.structured_output import (
    AUTO,
    InvalidAnswer,
    completion_usage,
    first_mode,
    is_format_rejection,
    next_mode,
    parse_completion,
    request_fields,
    validate_mode,
)
from allpfit_etl.analysis.truncation import estimate_tokens, truncate_transcript
from allpfit_etl.errors import AllpfitError
from allpfit_etl.text import sanitize_text

if TYPE_CHECKING:  # the SDK is imported where requests are sent (``structured_output.response_format`` says why)
    import openai

EXPECTED_COMPLETION_TOKENS = 120
# Little's law: in flight ≈ rate × latency; the headroom absorbs latency jitter.
IN_FLIGHT_HEADROOM = 1.5
MIN_IN_FLIGHT = 4
MAX_IN_FLIGHT = 2000
IN_FLIGHT_WITHOUT_LIMIT = 64  # a server that states no rate limit (a local vLLM): no law to follow
INITIAL_LATENCY_S = 5.0
# Until the first answer shows the latency, at most this many requests go out (a slow start):
# a configured or remembered high limit times the initial guess would send hundreds at once.
INITIAL_IN_FLIGHT = 64
NETWORK_BUCKET_S = 10.0
# 400s about one conversation's content; any other 400 rejects the request itself (every one would fail).
PER_CONVERSATION_400 = {"context_length_exceeded", "string_above_max_length", "content_filter", "invalid_prompt"}


async def send_raw_completion(client: openai.AsyncOpenAI, model: str, body: dict, timeout_s: float) -> tuple:
    """One chat completion, its body sent as it is and its answer read as plain JSON: (the raw
    response, for its headers; the completion as a dict).

    The one place the analyser leaves openai-python's typed API. ``create`` with typed messages
    walks their type hints and the schema on every request, and ``parse`` builds typed models of
    every answer: bench/bench_request_encoding.py measured 2.72 CPU-s per 1,000 requests that way
    against 0.94 for this (65 % less of the client's CPU, which bounds a step's requests per second).
    The answer is still validated by the same pydantic model (``parse_completion``)."""
    raw = await client.chat.completions.with_raw_response.create(
        model=model, messages=[], timeout=timeout_s, extra_body=body)
    return raw, json.loads(raw.text)


class OpenAIAccountError(AllpfitError):
    """Every request of the run would fail the same way: one line naming the cause and the fix."""


def account_error_line(exc: openai.APIStatusError, model: str) -> str | None:
    """The one-line reason to stop the whole run, or None when only this request failed."""
    status, code = exc.status_code, getattr(exc, "code", None)
    if status == 429 and (code == "insufficient_quota" or getattr(exc, "type", None) == "insufficient_quota"):
        return "OpenAI quota exhausted for this API key: add credit or raise the limit, then re-run"
    if status == 401:
        return "OpenAI rejected the API key (401): set a valid OPENAI_API_KEY, then re-run"
    if status == 403:
        return (f"OpenAI refused access (403): this API key's project may not use model {model!r} from here; "
                "check the key's permissions, then re-run")
    if status == 404:
        if code == "model_not_found":
            return (f"OpenAI has no model {model!r} for this API key (404 model_not_found): "
                    "fix the tenant's model feature, then re-run")
        return "OpenAI endpoint not found (404): check OPENAI_BASE_URL, then re-run"
    if status == 400 and getattr(exc, "param", None) != "messages" and code not in PER_CONVERSATION_400:
        detail = quoted(server_message(exc))
        return f"OpenAI rejected the request itself (400{' ' + code if code else ''}), so every request would fail: {detail}"
    return None


def server_message(exc: openai.APIStatusError) -> str:
    """The server's own words: OpenAI's ``error.message``, FastAPI's ``detail``, else the client's text."""
    body = exc.body if isinstance(exc.body, dict) else {}
    message = body.get("message") or body.get("detail") or exc.message or ""
    return message if isinstance(message, str) else str(message)


def run_event_loop(coroutine):
    """Run on uvloop where it exists (not on Windows): at hundreds of requests per second the
    event loop's own work is a good part of the client's CPU, and uvloop's is a fraction of it."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coroutine)
    return uvloop.run(coroutine)


def in_flight_cap(requests_per_s: float, latency_s: float, ceiling: int | None = None) -> int:
    """How many requests may be in flight: rate × latency (Little's law) with headroom."""
    if requests_per_s <= 0:
        cap = IN_FLIGHT_WITHOUT_LIMIT
    else:
        cap = math.ceil(requests_per_s * latency_s * IN_FLIGHT_HEADROOM) + MIN_IN_FLIGHT
    cap = max(MIN_IN_FLIGHT, min(cap, MAX_IN_FLIGHT))
    return min(cap, ceiling) if ceiling else cap


@dataclass
class CallRecord:
    """One API attempt, as written to the ``llm_usage`` ledger."""

    tenant_id: int
    conversation_id: int
    model: str
    prompt_tokens: int = 0
    cached_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    cost_usd: float = 0.0
    cost_brl: float = 0.0
    latency_ms: int = 0
    attempt: int = 1
    status: str = "ok"  # ok | invalid_answer | rate_limited | server_error | timeout | connection_error | error
    error_kind: str | None = None
    created_at: dt.datetime | None = None
    priced: bool = True  # False: the model has no known price; cost 0 means unknown, not free
    mode: str = "realtime"  # realtime | batch
    batch_id: str | None = None


class AttemptFailed(Exception):
    """A retryable failure of one attempt."""

    def __init__(self, status: str, retry_after: float | None = None):
        super().__init__(status)
        self.status, self.retry_after = status, retry_after


class FatalRequestError(Exception):
    """This conversation's request was rejected (a 400 about its content, a 422): retrying cannot help."""

    def __init__(self, status: str):
        super().__init__(status)
        self.status = status


class RunStopped(Exception):
    """An account error stopped the run: this conversation stays pending."""


def build_messages(conversation: ConversationInput, max_prompt_tokens: int,
                   prompt_version: str = PROMPT_VERSION) -> list[dict]:
    """The static system prompt first, then the conversation: OpenAI caches a shared prefix."""
    transcript = truncate_transcript(sanitize_text(conversation.message_compiled) or "", max_prompt_tokens)
    name = sanitize_text(conversation.contact_name) or "(sem nome)"
    user = (f"Conversa #{conversation.conversation_id}. Nome de exibição do contato: {name}\n\n"
            f"Transcrição:\n{transcript or '(sem mensagens)'}")
    return [{"role": "system", "content": system_prompt(prompt_version)}, {"role": "user", "content": user}]


class OpenAIAnalyzer:
    def __init__(
        self,
        client_factory: Callable[[], openai.AsyncOpenAI],
        *,
        tenant_id: int,
        model: str,
        price: ModelPrice,
        max_concurrency: int | None = None,
        rate_limit: SharedRateLimit | None = None,
        rate_limits: RateLimits | None = None,
        timeout_s: float = 30.0,
        max_attempts: int = 4,
        usd_brl: float = DEFAULT_USD_BRL,
        max_prompt_tokens: int = 6000,
        on_answer: Callable[[AnalysisResult, CallRecord], concurrent.futures.Future | None] | None = None,
        on_call: Callable[[CallRecord], concurrent.futures.Future | None] | None = None,
        progress: Callable[[dict], None] | None = None,
        progress_every_s: float = 5.0,
        structured_output: str = structured_output.JSON_SCHEMA,
        notice: Callable[[str], None] | None = None,
        prompt_version: str = PROMPT_VERSION,
    ):
        """``rate_limit`` is the step's share of the account's limit; without it, a private one
        (``rate_limits`` configured, else learned from the server's headers). ``max_concurrency``,
        when set, caps the requests in flight below what Little's law gives."""
        self.client_factory = client_factory
        self.tenant_id, self.model, self.price = tenant_id, model, price
        self.max_concurrency = max_concurrency if max_concurrency and max_concurrency > 0 else None
        self.rate_limit = rate_limit or SharedRateLimit(None, "local", configured=rate_limits)
        self.timeout_s, self.max_attempts = timeout_s, max(1, max_attempts)
        self.usd_brl, self.max_prompt_tokens = usd_brl, max_prompt_tokens
        self.on_answer, self.on_call = on_answer, on_call
        self.progress, self.progress_every_s = progress, progress_every_s
        self.structured_output = validate_mode(structured_output)
        self.mode = first_mode(self.structured_output)  # the mode requests are sent in now
        self._probing = self.structured_output == AUTO  # one request at a time until a mode works
        self.notice = notice or (lambda line: None)
        self.watch = FailureWatch()
        self.prompt_version = prompt_version
        self.identity = AnalyzerIdentity("openai", model, prompt_version)
        self.stop_reason: str | None = None
        self._queue = None  # the chunk's queue; a SharedFeed is closed by whichever process stops first
        self.latency_s = INITIAL_LATENCY_S
        self.max_in_flight_seen = 0
        self._in_flight = 0
        self._unsent = 0  # conversations taken from the queue and not yet sent once
        self._latency_seen = False
        self._network_minimums: collections.deque = collections.deque(maxlen=6)  # (10-s bucket, least)

    def analyze_chunk(self, conversations: Sequence[ConversationInput]) -> ChunkOutcome:
        return run_event_loop(self.analyze_chunk_async(conversations))

    async def analyze_chunk_async(self, conversations: Sequence[ConversationInput]) -> ChunkOutcome:
        """``conversations`` may also be a queue shared with other processes (``SharedFeed``).
        Raises ``OpenAIAccountError`` after an account error; answers received until then were
        handed to ``on_answer``, and the conversations not answered stay pending (no failure rows)."""
        outcome = ChunkOutcome()
        if not conversations:
            return outcome
        self.rate_limit.on_stop = self._stop
        client = self.client_factory()
        started = time.monotonic()
        reporter = asyncio.create_task(self._report(outcome, len(conversations), started)) if self.progress else None
        try:
            async with self.rate_limit:
                queue = conversations if hasattr(conversations, "popleft") else collections.deque(conversations)
                self._queue = queue
                await self._run_workers(client, queue, outcome)
        finally:
            if reporter:
                reporter.cancel()
            await client.close()
        if self.stop_reason:
            raise OpenAIAccountError(self.stop_reason)
        return outcome

    def target_in_flight(self) -> int:
        """How many requests to keep in flight now: Little's law on this holder's rate and the
        observed latency, held to a slow start until the first answer."""
        if self._probing:
            return 1
        cap = in_flight_cap(self.rate_limit.limiter.rpm / 60, self.latency_s, self.max_concurrency)
        return cap if self._latency_seen else min(cap, INITIAL_IN_FLIGHT)

    async def _run_workers(self, client, queue, outcome: ChunkOutcome) -> None:
        """A pool of workers sized by Little's law, resized as the rate and the latency change."""
        workers: set[asyncio.Task] = set()

        async def worker() -> None:
            while queue and not self.halted and len(workers) <= self.target_in_flight():
                await self._one(client, queue.popleft(), outcome)

        while (queue or workers) and not self.halted:
            while queue and len(workers) < self.target_in_flight():
                task = asyncio.create_task(worker())
                workers.add(task)
                task.add_done_callback(workers.discard)
            if not queue and self._unsent == 0 and self.rate_limit.holding:  # only retries left: share the rest
                await self.rate_limit.release()
            if workers:
                done, _ = await asyncio.wait(set(workers), timeout=0.25, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    task.result()  # a bug must surface, not vanish
        if self.halted and workers:
            # Requests already sent are paid for: let them land (and be stored), then stop the
            # workers that are only waiting (for the limiter, or to retry after a backoff).
            deadline = time.monotonic() + self.timeout_s + 1
            while self._in_flight and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            for task in workers:
                task.cancel()
        for result in await asyncio.gather(*workers, return_exceptions=True):
            if isinstance(result, BaseException) and not isinstance(result, asyncio.CancelledError):
                raise result

    @property
    def halted(self) -> bool:
        """Stopped here, or by a sibling worker process that shares the chunk (``SharedFeed``)."""
        return self.stop_reason is not None or getattr(self._queue, "closed", False)

    def _stop(self, reason: str) -> None:
        """Stop every request of this step now: its sibling worker processes at once, through the
        shared queue; the run's other steps at their next beat, from the database."""
        if self.stop_reason is None:
            self.stop_reason = reason
            self.rate_limit.limiter.close()
            close = getattr(self._queue, "close", None)
            if close:
                close()

    async def _report(self, outcome: ChunkOutcome, total: int, started: float) -> None:
        while True:
            await asyncio.sleep(self.progress_every_s)
            done = len(outcome.results) + len(outcome.failures)
            elapsed = time.monotonic() - started
            rate = done / elapsed if elapsed else 0.0
            self.progress({
                "done": done, "total": total, "failed": len(outcome.failures), "per_second": rate,
                "eta_s": (total - done) / rate if rate else float("inf"),
                "prompt_tokens": outcome.usage.prompt_tokens, "completion_tokens": outcome.usage.completion_tokens,
                "cost_usd": outcome.usage.cost_usd,
            })

    async def _one(self, client, conversation: ConversationInput, outcome: ChunkOutcome) -> None:
        self._unsent += 1  # while any is left unsent, this step needs its share of the limit
        messages = build_messages(conversation, self.max_prompt_tokens, self.prompt_version)
        tokens = sum(estimate_tokens(m["content"]) for m in messages) + EXPECTED_COMPLETION_TOKENS
        limiter = self.rate_limit.limiter
        attempts = 0
        last_status = "error"
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.max_attempts),
            wait=_wait_with_retry_after(wait_random_exponential(multiplier=0.5, max=20)),
            retry=retry_if_exception(lambda e: isinstance(e, AttemptFailed)),
            reraise=False,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    if self.halted:
                        raise RunStopped()
                    await limiter.acquire(tokens)
                    if self.halted:
                        raise RunStopped()
                    attempts += 1
                    if attempts == 1:
                        self._unsent -= 1
                    try:
                        analysis, record = await self._attempt(client, conversation, messages, attempts, outcome.usage)
                    except AttemptFailed as failed:
                        last_status = failed.status
                        if failed.retry_after:
                            limiter.penalize(failed.retry_after)
                        raise
            result = AnalysisResult(conversation.conversation_id, conversation.content_hash, analysis)
            if self.on_answer:  # stored before this conversation counts as done; the loop keeps going meanwhile
                await _settled(self.on_answer(result, record))
            elif self.on_call:
                await _settled(self.on_call(record))
            outcome.results.append(result)
        except (RunStopped, LimiterClosed):
            pass  # stays pending: the next run with a working account analyses it
        except RetryError:
            outcome.failures.append(AnalysisFailure(conversation.conversation_id, conversation.content_hash,
                                                    last_status, attempts, f"gave up after {attempts} attempts"))
        except FatalRequestError as fatal:
            outcome.failures.append(AnalysisFailure(conversation.conversation_id, conversation.content_hash,
                                                    fatal.status, attempts, "request rejected by the API"))
        finally:
            outcome.usage.retries += max(0, attempts - 1)

    async def _attempt(self, client, conversation, messages, attempt_number: int, usage: Usage):
        """One attempt; under ``auto``, a request whose format the server rejects is sent again
        at once in the next mode (the rejection is ledgered, unbilled, and not an attempt)."""
        import openai

        while True:
            mode = self.mode
            record = CallRecord(self.tenant_id, conversation.conversation_id, self.model, attempt=attempt_number,
                                created_at=dt.datetime.now(dt.timezone.utc), priced=self.price.priced)
            started = time.monotonic()
            self._in_flight += 1
            self.max_in_flight_seen = max(self.max_in_flight_seen, self._in_flight)
            try:
                raw, completion = await send_raw_completion(client, self.model, request_fields(mode, messages),
                                                            self.timeout_s)
                self.observe_latency(time.monotonic() - started, raw.headers)
                self.rate_limit.observe(raw.headers)
            except openai.APIStatusError as exc:
                if await self._format_rejected(exc, mode, record, started, usage):
                    continue
                stop = account_error_line(exc, self.model)
                if stop:
                    await self._record(record, started, "error", f"http_{exc.status_code}", usage)
                    await self._stop_run(stop)
                    raise RunStopped() from None
                await self._failed_status(exc, record, started, usage)
            except openai.APITimeoutError:
                await self._record(record, started, "timeout", "timeout", usage)
                await self._watch("timeout")
                raise AttemptFailed("timeout") from None
            except openai.APIConnectionError:
                await self._record(record, started, "connection_error", "connection", usage)
                await self._watch("connection error")
                raise AttemptFailed("connection_error") from None
            except ValueError:  # not JSON
                await self._record(record, started, "invalid_answer", "malformed_response", usage)
                await self._watch("malformed response")
                raise AttemptFailed("invalid_answer") from None
            finally:
                self._in_flight -= 1
            return await self._answer(completion, record, started, usage)

    async def _stop_run(self, line: str) -> None:
        """Stop every request of the run: this step now, the run's other steps at their next beat."""
        if self.stop_reason is None:
            self._stop(line)
            await self.rate_limit.stop_run(line)

    async def _watch(self, kind: str, message: str | None = None) -> None:
        """Count a failed attempt; the first ones all failing stop the run (``FailureWatch``)."""
        hint = ""
        if message and is_format_rejection(500, message, None, self.mode):
            hint = (f"; this server does not take structured_output={self.mode}: set the tenant's "
                    "structured_output to auto (or json_object, tools), then re-run")
        line = self.watch.failure(kind, message, hint)
        if line:
            await self._stop_run(line)
            raise RunStopped()

    async def _format_rejected(self, exc: openai.APIStatusError, mode: str, record: CallRecord, started: float,
                               usage: Usage) -> bool:
        """Under ``auto``: whether the server rejected how the schema was asked for; the first
        request to see it moves the step to the next mode (or stops the run when none is left)."""
        body = exc.body if isinstance(exc.body, dict) else {}
        message = server_message(exc)
        if self.structured_output != AUTO or not is_format_rejection(exc.status_code, message, body.get("param"), mode):
            return False
        await self._record(record, started, "error", "format_rejected", usage)
        if mode == self.mode:
            following = next_mode(mode)
            if following is None:
                await self._stop_run(f"the server rejects every structured-output mode (json_schema, json_object, "
                                     f"tools), the last with HTTP {exc.status_code}: {quoted(message)}")
                raise RunStopped()
            self.mode = following
            self.notice(f"structured output: the server rejected {mode} (HTTP {exc.status_code}: {quoted(message)}); "
                        f"trying {following}")
        return True

    def observe_latency(self, seconds: float, headers) -> None:
        """The latency Little's law uses. Where the server states its own time
        (``openai-processing-ms``, as OpenAI does), the time an answer waited in this busy event
        loop does not count: counted, it would call for more requests in flight, which busies the
        loop further — a spiral up to the cap, at a higher CPU cost per request. The network's
        share is the least seen in the last minute (some answers always find the loop idle)."""
        processing = _processing_seconds(headers)
        if processing is not None:
            bucket = int(time.monotonic() // NETWORK_BUCKET_S)
            network = max(0.0, seconds - processing)
            if not self._network_minimums or self._network_minimums[-1][0] != bucket:
                self._network_minimums.append((bucket, network))
            elif network < self._network_minimums[-1][1]:
                self._network_minimums[-1] = (bucket, network)
            seconds = processing + min(least for _, least in self._network_minimums)
        self.latency_s = 0.9 * self.latency_s + 0.1 * seconds if self._latency_seen else seconds
        self._latency_seen = True

    async def _failed_status(self, exc: openai.APIStatusError, record: CallRecord, started: float, usage: Usage):
        """A failed request that concerns this conversation only: retry it, or record it."""
        import openai

        if isinstance(exc, openai.RateLimitError):
            self.rate_limit.observe_rejection(exc.response.headers)
            await self._record(record, started, "rate_limited", "rate_limit", usage)
            raise AttemptFailed("rate_limited", retry_after_seconds(exc.response.headers)) from None
        kind = f"http_{exc.status_code}"
        if isinstance(exc, openai.InternalServerError):
            await self._record(record, started, "server_error", kind, usage)
            await self._watch(f"HTTP {exc.status_code}", server_message(exc))
            raise AttemptFailed("server_error") from None
        await self._record(record, started, "error", kind, usage)
        await self._watch(f"HTTP {exc.status_code}", server_message(exc))
        if exc.status_code in (400, 422):
            raise FatalRequestError(kind) from None
        raise AttemptFailed("error") from None

    async def _answer(self, completion: dict, record: CallRecord, started: float, usage: Usage):
        """A chat completion (its JSON): usage first — it was paid for, valid or not — then the answer."""
        tokens = completion_usage(completion)
        if tokens:
            record.prompt_tokens, record.cached_tokens, record.completion_tokens, record.total_tokens = tokens
            record.cost_usd = cost_usd(self.price, record.prompt_tokens, record.cached_tokens, record.completion_tokens)
            record.cost_brl = record.cost_usd * self.usd_brl
        try:
            analysis = parse_completion(completion)
        except InvalidAnswer:
            await self._record(record, started, "invalid_answer", "invalid_answer", usage)
            await self._watch("invalid answer")
            raise AttemptFailed("invalid_answer") from None
        await self._record(record, started, "ok", None, usage)
        self.watch.success()
        if self._probing:
            self._probing = False
            self.notice(f"structured output: {self.mode} (auto)")
        return analysis, record

    async def _record(self, record: CallRecord, started: float, status: str, error_kind: str | None, usage: Usage) -> None:
        """Account for one attempt. Successful ones reach the ledger through ``on_answer``
        (with their answer, in one transaction); every other attempt through ``on_call``."""
        record.latency_ms = int((time.monotonic() - started) * 1000)
        record.status, record.error_kind = status, error_kind
        if self.on_call and status != "ok":
            await _settled(self.on_call(record))
        if record.prompt_tokens or record.completion_tokens:  # a billed call: a completion came back, valid or not
            usage.calls += 1
            usage.prompt_tokens += record.prompt_tokens
            usage.cached_tokens += record.cached_tokens
            usage.completion_tokens += record.completion_tokens
            usage.cost_usd += record.cost_usd
            usage.cost_brl += record.cost_brl


def _processing_seconds(headers) -> float | None:
    try:
        return float(headers["openai-processing-ms"]) / 1000
    except (KeyError, TypeError, ValueError):
        return None


async def _settled(handed_over) -> None:
    """``on_answer``/``on_call`` run in the event loop and must not block: a callback with
    work to do (a database commit) returns a ``concurrent.futures.Future`` of it."""
    if isinstance(handed_over, concurrent.futures.Future):
        await asyncio.wrap_future(handed_over)


def _wait_with_retry_after(fallback):
    """Exponential backoff with jitter, but never shorter than a 429's ``retry-after``."""

    def wait(retry_state) -> float:
        base = fallback(retry_state)
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        if isinstance(exc, AttemptFailed) and exc.retry_after:
            return max(exc.retry_after, 0.0)
        return base

    return wait
