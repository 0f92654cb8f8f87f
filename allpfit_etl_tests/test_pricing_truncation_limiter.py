"""Pure pieces of the OpenAI analyser: prices, token budgets, the rate limiter."""

from __future__ import annotations

import asyncio

import pytest

from allpfit_etl.analysis.pricing import DEFAULT_PRICES, cost_usd, estimate_cost_usd, price_for
from allpfit_etl.analysis.rate_limiter import RateLimiter, parse_duration, retry_after_seconds
from allpfit_etl.analysis.truncation import estimate_tokens, truncate_transcript
from allpfit_etl.errors import ConfigError


def test_gpt_4o_mini_cost():
    price = DEFAULT_PRICES["gpt-4o-mini"]
    assert cost_usd(price, 1_000_000, 200_000, 100_000) == pytest.approx(0.12 + 0.015 + 0.06)
    assert cost_usd(price, 1000, 0, 0) == pytest.approx(0.00015)
    assert estimate_cost_usd(price, 1000, 100) == pytest.approx(cost_usd(price, 1000, 0, 100))


def test_price_overrides_and_unknown_models():
    custom = price_for("llama-3", {"llama-3": {"input": 0.01, "output": 0.02}})
    assert (custom.input_per_m, custom.cached_input_per_m, custom.output_per_m) == (0.01, 0.01, 0.02)
    with pytest.raises(ConfigError, match="no price for model 'llama-3'"):
        price_for("llama-3")
    with pytest.raises(ConfigError, match="bad price override"):
        price_for("x", {"x": {"input": "cheap"}})


def transcript(n: int) -> str:
    return "\n".join(f"[10/11 10:{i % 60:02d}] Contato: mensagem número {i} com algum texto" for i in range(n))


def test_truncation_keeps_the_opening_and_the_latest_lines():
    text = transcript(500)
    cut = truncate_transcript(text, 600)
    lines = cut.splitlines()
    assert estimate_tokens(cut) <= 600
    assert lines[0] == text.splitlines()[0] and lines[-1] == text.splitlines()[-1]
    marker = next(line for line in lines if line.startswith("[... "))
    omitted = int(marker.split()[1])
    assert omitted == 500 - (len(lines) - 1)
    assert truncate_transcript(text, 10_000_000) == text


def test_truncation_of_one_enormous_line():
    cut = truncate_transcript("x" * 100_000, 100)
    assert 0 < estimate_tokens(cut) <= 100


@pytest.mark.parametrize("text, seconds", [("1s", 1), ("250ms", 0.25), ("6m0s", 360), ("1h2m3.5s", 3723.5), ("2.5", 2.5)])
def test_openai_durations(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


def test_retry_after_prefers_milliseconds():
    assert retry_after_seconds({"retry-after": "2", "retry-after-ms": "1500"}) == 1.5
    assert retry_after_seconds({"retry-after": "3"}) == 3.0
    assert retry_after_seconds({}) is None


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_limiter_spaces_requests_to_the_rpm():
    clock = FakeClock()
    limiter = RateLimiter(rpm=600, clock=clock, sleep=clock.sleep)  # 10/s, burst 10

    async def run():
        for _ in range(40):
            await limiter.acquire()

    asyncio.run(run())
    assert clock.now == pytest.approx(3.0, abs=0.05)  # 10 at once, then 30 at 10/s


def test_limiter_honours_tokens_and_penalties():
    clock = FakeClock()
    limiter = RateLimiter(tpm=6000, clock=clock, sleep=clock.sleep)  # 100 tokens/s

    async def run():
        for _ in range(5):
            await limiter.acquire(tokens=100)
        limiter.penalize(10)
        await limiter.acquire(tokens=1)

    asyncio.run(run())
    assert clock.now == pytest.approx(4.0 + 10.0, abs=0.05)


def test_limiter_waits_when_the_server_says_the_budget_is_spent():
    clock = FakeClock()
    limiter = RateLimiter(clock=clock, sleep=clock.sleep)
    limiter.observe_headers({"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "2s"})
    asyncio.run(limiter.acquire())
    assert clock.now == pytest.approx(2.0)


def test_limiter_waits_for_one_requests_room_when_the_server_states_its_limit():
    """OpenAI's budgets refill continuously: at 6,000 RPM there is room again after 10 ms, not after
    the reset (the time until the budget is full again)."""
    clock = FakeClock()
    limiter = RateLimiter(clock=clock, sleep=clock.sleep)
    limiter.observe_headers({"x-ratelimit-limit-requests": "6000", "x-ratelimit-remaining-requests": "0",
                             "x-ratelimit-reset-requests": "1s"})
    asyncio.run(limiter.acquire())
    assert clock.now == pytest.approx(0.01)
