"""Requests-per-minute and tokens-per-minute limiter for one asyncio event loop.

Continuous token buckets with one second of burst, tightened by what the server says
(``x-ratelimit-remaining-*`` / ``x-ratelimit-reset-*``) and paused after a 429's ``retry-after``.
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


class _Bucket:
    def __init__(self, per_minute: int, clock):
        self.per_minute, self.clock = per_minute, clock
        self.capacity = max(1.0, per_minute / 60)
        self.level = self.capacity
        self.updated = clock()

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
    def __init__(self, rpm: int = 0, tpm: int = 0, clock=time.monotonic, sleep=asyncio.sleep):
        self.rpm, self.tpm = rpm, tpm
        self._clock, self._sleep = clock, sleep
        self._requests = _Bucket(rpm, clock) if rpm else None
        self._tokens = _Bucket(tpm, clock) if tpm else None
        self._paused_until = 0.0
        self._lock = asyncio.Lock()

    async def acquire(self, tokens: int = 0) -> None:
        """Wait until one request of ``tokens`` tokens fits; callers are served in order."""
        async with self._lock:
            while True:
                delay = self._paused_until - self._clock()
                if self._requests:
                    delay = max(delay, self._requests.delay_for(1))
                if self._tokens and tokens:
                    delay = max(delay, self._tokens.delay_for(tokens))
                if delay <= 0:
                    break
                await self._sleep(delay)
            if self._requests:
                self._requests.take(1)
            if self._tokens and tokens:
                self._tokens.take(tokens)

    def penalize(self, retry_after_s: float) -> None:
        """Everyone waits until ``retry_after_s`` from now (a 429 said so)."""
        self._paused_until = max(self._paused_until, self._clock() + max(0.0, retry_after_s))

    def observe_headers(self, headers) -> None:
        """When the server says a budget is exhausted, wait for its reset."""
        for kind in ("requests", "tokens"):
            remaining = headers.get(f"x-ratelimit-remaining-{kind}")
            reset = parse_duration(headers.get(f"x-ratelimit-reset-{kind}"))
            if remaining is not None and reset is not None:
                try:
                    if int(float(remaining)) <= 0:
                        self.penalize(reset)
                except ValueError:
                    continue


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
