"""OpenAI analyser: Structured Outputs over the official async client, as fast as the account's
rate limit allows, every attempt accounted for, every good answer handed over the moment it
arrives (the caller stores it, so nothing paid for is ever lost)."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import time
from dataclasses import dataclass
from typing import Callable, Sequence

import openai
import pydantic
from openai.lib._parsing._completions import type_to_response_format_param
from tenacity import AsyncRetrying, RetryError, retry_if_exception, stop_after_attempt, wait_random_exponential

from allpfit_etl.analysis.interface import (
    AnalysisFailure,
    AnalysisResult,
    AnalyzerIdentity,
    ChunkOutcome,
    ConversationInput,
    LeadAnalysis,
    Usage,
)
from allpfit_etl.analysis.pricing import DEFAULT_USD_BRL, ModelPrice, RateLimits, cost_usd
from allpfit_etl.analysis.prompts import PROMPT_VERSION, system_prompt
from allpfit_etl.analysis.rate_limiter import RateLimiter, retry_after_seconds
from allpfit_etl.analysis.truncation import estimate_tokens, truncate_transcript
from allpfit_etl.text import sanitize_text

EXPECTED_COMPLETION_TOKENS = 120


class LeadAnswer(pydantic.BaseModel):
    """The answer schema, sent as a strict JSON schema (Structured Outputs)."""

    model_config = pydantic.ConfigDict(extra="forbid")

    is_lead: bool
    visita_agendada: bool
    probabilidade_conversao: int = pydantic.Field(ge=0, le=5)
    nome_mapeado_bot: str | None
    analise_ia: str


RESPONSE_FORMAT = type_to_response_format_param(LeadAnswer)


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


class AttemptFailed(Exception):
    """A retryable failure of one attempt."""

    def __init__(self, status: str, retry_after: float | None = None):
        super().__init__(status)
        self.status, self.retry_after = status, retry_after


class FatalRequestError(Exception):
    """400/401/403/404: retrying cannot help."""

    def __init__(self, status: str):
        super().__init__(status)
        self.status = status


def build_messages(conversation: ConversationInput, max_prompt_tokens: int) -> list[dict]:
    transcript = truncate_transcript(sanitize_text(conversation.message_compiled) or "", max_prompt_tokens)
    name = sanitize_text(conversation.contact_name) or "(sem nome)"
    user = (f"Conversa #{conversation.conversation_id}. Nome de exibição do contato: {name}\n\n"
            f"Transcrição:\n{transcript or '(sem mensagens)'}")
    return [{"role": "system", "content": system_prompt()}, {"role": "user", "content": user}]


def parse_answer(content: str | None, finish_reason: str | None) -> LeadAnalysis:
    """Validate an answer; truncated, refused or malformed answers raise ``AttemptFailed``."""
    if finish_reason == "length" or not content:
        raise AttemptFailed("invalid_answer")
    try:
        answer = LeadAnswer.model_validate_json(content)
    except pydantic.ValidationError:
        raise AttemptFailed("invalid_answer") from None
    name = sanitize_text(answer.nome_mapeado_bot)
    return LeadAnalysis(
        is_lead=answer.is_lead,
        visita_agendada=answer.visita_agendada,
        probabilidade_conversao=answer.probabilidade_conversao,
        nome_mapeado_bot=name.strip() or None if name else None,
        analise_ia=(sanitize_text(answer.analise_ia) or "").strip()[:500],
    )


class OpenAIAnalyzer:
    def __init__(
        self,
        client_factory: Callable[[], openai.AsyncOpenAI],
        *,
        tenant_id: int,
        model: str,
        price: ModelPrice,
        max_concurrency: int = 20,
        rate_limits: RateLimits | None = None,
        timeout_s: float = 30.0,
        max_attempts: int = 4,
        usd_brl: float = DEFAULT_USD_BRL,
        max_prompt_tokens: int = 6000,
        on_answer: Callable[[AnalysisResult, CallRecord], None] | None = None,
        on_call: Callable[[CallRecord], None] | None = None,
        progress: Callable[[dict], None] | None = None,
        progress_every_s: float = 5.0,
    ):
        self.client_factory = client_factory
        self.tenant_id, self.model, self.price = tenant_id, model, price
        self.max_concurrency = max(1, max_concurrency)
        self.rate_limits = rate_limits or RateLimits(0, 0)
        self.timeout_s, self.max_attempts = timeout_s, max(1, max_attempts)
        self.usd_brl, self.max_prompt_tokens = usd_brl, max_prompt_tokens
        self.on_answer, self.on_call = on_answer, on_call
        self.progress, self.progress_every_s = progress, progress_every_s
        self.identity = AnalyzerIdentity("openai", model, PROMPT_VERSION)

    def analyze_chunk(self, conversations: Sequence[ConversationInput]) -> ChunkOutcome:
        return asyncio.run(self.analyze_chunk_async(conversations))

    async def analyze_chunk_async(self, conversations: Sequence[ConversationInput]) -> ChunkOutcome:
        outcome = ChunkOutcome()
        if not conversations:
            return outcome
        limiter = RateLimiter(self.rate_limits.rpm, self.rate_limits.tpm)
        semaphore = asyncio.Semaphore(self.max_concurrency)
        client = self.client_factory()
        started = time.monotonic()
        reporter = asyncio.create_task(self._report(outcome, len(conversations), started)) if self.progress else None
        try:
            await asyncio.gather(*(self._one(client, limiter, semaphore, c, outcome) for c in conversations))
        finally:
            if reporter:
                reporter.cancel()
            await client.close()
        return outcome

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

    async def _one(self, client, limiter, semaphore, conversation: ConversationInput, outcome: ChunkOutcome) -> None:
        messages = build_messages(conversation, self.max_prompt_tokens)
        tokens = sum(estimate_tokens(m["content"]) for m in messages) + EXPECTED_COMPLETION_TOKENS
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
                    attempts += 1
                    async with semaphore:
                        await limiter.acquire(tokens)
                        try:
                            analysis, record = await self._attempt(client, limiter, conversation, messages, attempts, outcome.usage)
                        except AttemptFailed as failed:
                            last_status = failed.status
                            if failed.retry_after:
                                limiter.penalize(failed.retry_after)
                            raise
            result = AnalysisResult(conversation.conversation_id, conversation.content_hash, analysis)
            if self.on_answer:  # stored before this conversation counts as done; the loop keeps going meanwhile
                await asyncio.to_thread(self.on_answer, result, record)
            elif self.on_call:
                await asyncio.to_thread(self.on_call, record)
            outcome.results.append(result)
        except RetryError:
            outcome.failures.append(AnalysisFailure(conversation.conversation_id, conversation.content_hash,
                                                    last_status, attempts, f"gave up after {attempts} attempts"))
        except FatalRequestError as fatal:
            outcome.failures.append(AnalysisFailure(conversation.conversation_id, conversation.content_hash,
                                                    fatal.status, attempts, "request rejected by the API"))
        finally:
            outcome.usage.retries += max(0, attempts - 1)

    async def _attempt(self, client, limiter, conversation, messages, attempt_number: int, usage: Usage):
        record = CallRecord(self.tenant_id, conversation.conversation_id, self.model, attempt=attempt_number,
                            created_at=dt.datetime.now(dt.timezone.utc))
        started = time.monotonic()
        try:
            raw = await client.chat.completions.with_raw_response.create(
                model=self.model, messages=messages, response_format=RESPONSE_FORMAT, timeout=self.timeout_s,
            )
            limiter.observe_headers(raw.headers)
            completion = raw.parse()
        except openai.RateLimitError as exc:
            await self._record(record, started, "rate_limited", "rate_limit", usage)
            raise AttemptFailed("rate_limited", retry_after_seconds(exc.response.headers)) from None
        except openai.APITimeoutError:
            await self._record(record, started, "timeout", "timeout", usage)
            raise AttemptFailed("timeout") from None
        except openai.APIConnectionError:
            await self._record(record, started, "connection_error", "connection", usage)
            raise AttemptFailed("connection_error") from None
        except openai.InternalServerError as exc:
            await self._record(record, started, "server_error", f"http_{exc.status_code}", usage)
            raise AttemptFailed("server_error") from None
        except openai.APIStatusError as exc:
            kind = f"http_{exc.status_code}"
            await self._record(record, started, "error", kind, usage)
            if exc.status_code in (400, 401, 403, 404, 422):
                raise FatalRequestError(kind) from None
            raise AttemptFailed("error") from None
        except (json.JSONDecodeError, pydantic.ValidationError):
            await self._record(record, started, "invalid_answer", "malformed_response", usage)
            raise AttemptFailed("invalid_answer") from None

        reported = completion.usage
        if reported is not None:
            details = reported.prompt_tokens_details
            cached = (details.cached_tokens or 0) if details else 0
            record.prompt_tokens, record.cached_tokens = reported.prompt_tokens, cached
            record.completion_tokens, record.total_tokens = reported.completion_tokens, reported.total_tokens
            record.cost_usd = cost_usd(self.price, reported.prompt_tokens, cached, reported.completion_tokens)
            record.cost_brl = record.cost_usd * self.usd_brl
        choice = completion.choices[0] if completion.choices else None
        try:
            if choice is None or choice.message.refusal:
                raise AttemptFailed("invalid_answer")
            analysis = parse_answer(choice.message.content, choice.finish_reason)
        except AttemptFailed:
            await self._record(record, started, "invalid_answer", "invalid_answer", usage)
            raise
        await self._record(record, started, "ok", None, usage)
        return analysis, record

    async def _record(self, record: CallRecord, started: float, status: str, error_kind: str | None, usage: Usage) -> None:
        """Account for one attempt. Successful ones reach the ledger through ``on_answer``
        (with their answer, in one transaction); every other attempt through ``on_call``."""
        record.latency_ms = int((time.monotonic() - started) * 1000)
        record.status, record.error_kind = status, error_kind
        if self.on_call and status != "ok":
            await asyncio.to_thread(self.on_call, record)
        if record.prompt_tokens or record.completion_tokens:  # a billed call: a completion came back, valid or not
            usage.calls += 1
            usage.prompt_tokens += record.prompt_tokens
            usage.cached_tokens += record.cached_tokens
            usage.completion_tokens += record.completion_tokens
            usage.cost_usd += record.cost_usd
            usage.cost_brl += record.cost_brl


def _wait_with_retry_after(fallback):
    """Exponential backoff with jitter, but never shorter than a 429's ``retry-after``."""

    def wait(retry_state) -> float:
        base = fallback(retry_state)
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        if isinstance(exc, AttemptFailed) and exc.retry_after:
            return max(exc.retry_after, 0.0)
        return base

    return wait
