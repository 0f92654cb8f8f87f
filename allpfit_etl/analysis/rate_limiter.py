"""Requests-per-minute and tokens-per-minute limiter for one asyncio event loop.

Continuous token buckets with one second of burst, tightened by what the server says
(``x-ratelimit-remaining-*`` / ``x-ratelimit-reset-*``) and paused after a 429's ``retry-after``.
Its rates change while it runs (``set_limits``): ``shared_rate_limit`` gives it its share of
the account's limit, rebalanced every second.
"""

from __future__ import annotations

import asyncio
import re
import time

_DURATION = re.compile(r"(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m(?!s))?(?:(\d+(?:\.\d+)?)s)?(?:(\d+(?:\.\d+)?)ms)?$")


def parse_duration(text: str | None) -> float | None:
    """OpenAI's reset durations: ``1s``, ``250ms``, ``6m0s``, ``1h2m3.5s`` → seconds."""
    if not text:
        return None
    match = _DURATION.match(text.strip())
    if not match or not any(match.groups()):
        try:
            return float(text)
        except ValueError:
            return None
    h, m, s, ms = (float(g) if g else 0.0 for g in match.groups())
    return h * 3600 + m * 60 + s + ms / 1000


# The tokens one request takes, for waiting on an exhausted token budget (a typical transcript).
ESTIMATED_TOKENS_PER_REQUEST = 1_000


class LimiterClosed(Exception):
    """The limiter was closed while waiting: no more requests may start."""


class _Bucket:
    def __init__(self, per_minute: float, clock):
        self.per_minute, self.clock = per_minute, clock
        self.capacity = max(1.0, per_minute / 60)
        self.level = self.capacity
        self.updated = clock()

    def set_rate(self, per_minute: float) -> None:
        self.refill()
        self.per_minute = per_minute
        self.capacity = max(1.0, per_minute / 60)
        self.level = min(self.level, self.capacity)

    def refill(self) -> None:
        now = self.clock()
        self.level = min(self.capacity, self.level + (now - self.updated) * self.per_minute / 60)
        self.updated = now

    def delay_for(self, amount: float) -> float:
        self.refill()
        amount = min(amount, self.capacity)
        if self.level >= amount - 1e-9:  # float dust must not turn into endless micro-sleeps
            return 0.0
        return max((amount - self.level) * 60 / self.per_minute, 0.001)

    def take(self, amount: float) -> None:
        self.level -= min(amount, self.capacity)


class RateLimiter:
    """``rpm``/``tpm`` of 0 mean unlimited."""

    def __init__(self, rpm: float = 0, tpm: float = 0, clock=time.monotonic, sleep=asyncio.sleep):
        self._clock, self._sleep = clock, sleep
        self.rpm = self.tpm = 0.0
        self._requests: _Bucket | None = None
        self._tokens: _Bucket | None = None
        self.set_limits(rpm, tpm)
        self._paused_until = 0.0
        self._closed = False
        self._lock = asyncio.Lock()

    def set_limits(self, rpm: float, tpm: float) -> None:
        self.rpm, self.tpm = rpm, tpm
        self._requests = self._retuned(self._requests, rpm)
        self._tokens = self._retuned(self._tokens, tpm)

    def _retuned(self, bucket: _Bucket | None, per_minute: float) -> _Bucket | None:
        if not per_minute:
            return None
        if bucket is None:
            return _Bucket(per_minute, self._clock)
        if bucket.per_minute != per_minute:
            bucket.set_rate(per_minute)
        return bucket

    def close(self) -> None:
        """Every waiting and future ``acquire`` raises ``LimiterClosed``."""
        self._closed = True

    async def acquire(self, tokens: int = 0) -> None:
        """Wait until one request of ``tokens`` tokens fits; callers are served in order."""
        async with self._lock:
            while True:
                if self._closed:
                    raise LimiterClosed()
                delay = self._paused_until - self._clock()
                if self._requests:
                    delay = max(delay, self._requests.delay_for(1))
                if self._tokens and tokens:
                    delay = max(delay, self._tokens.delay_for(tokens))
                if delay <= 0:
                    break
                await self._sleep(min(delay, 1.0))  # rates change and the limiter may close meanwhile
            if self._requests:
                self._requests.take(1)
            if self._tokens and tokens:
                self._tokens.take(tokens)

    def penalize(self, retry_after_s: float) -> None:
        """Everyone waits until ``retry_after_s`` from now (a 429 said so)."""
        self._paused_until = max(self._paused_until, self._clock() + max(0.0, retry_after_s))

    def observe_headers(self, headers) -> None:
        """When the server says a budget is exhausted, wait. OpenAI's budgets refill continuously:
        with the limit stated, the wait is for room for one more request, not the ``reset`` (the
        time until the budget is full again, up to a second of traffic lost to a stall)."""
        for kind in ("requests", "tokens"):
            remaining = headers.get(f"x-ratelimit-remaining-{kind}")
            reset = parse_duration(headers.get(f"x-ratelimit-reset-{kind}"))
            if remaining is not None and reset is not None:
                try:
                    if int(float(remaining)) <= 0:
                        limit = float(headers.get(f"x-ratelimit-limit-{kind}") or 0)
                        per_request = 1 if kind == "requests" else ESTIMATED_TOKENS_PER_REQUEST
                        self.penalize(min(reset, 60 * per_request / limit) if limit > 0 else reset)
                except ValueError:
                    continue


def advertised_limits(headers) -> tuple[int | None, int | None] | None:
    """The account's limits the server states (``x-ratelimit-limit-requests`` / ``-tokens``);
    ``None`` when it states neither (a server that enforces none, such as a local vLLM)."""
    values = []
    for kind in ("requests", "tokens"):
        raw = headers.get(f"x-ratelimit-limit-{kind}") if headers is not None else None
        try:
            values.append(int(float(raw)) if raw else None)
        except ValueError:
            values.append(None)
    return None if values == [None, None] else (values[0], values[1])


def retry_after_seconds(headers) -> float | None:
    """Seconds a 429 asks us to wait (``retry-after-ms`` first, then ``retry-after``)."""
    for name, scale in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        value = headers.get(name) if headers is not None else None
        if value:
            try:
                return float(value) / scale
            except ValueError:
                continue
    return None
