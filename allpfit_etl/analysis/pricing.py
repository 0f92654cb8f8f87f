"""Prices per model (USD per 1M tokens) and the arithmetic of cost. Pure functions."""

from __future__ import annotations

from dataclasses import dataclass

from allpfit_etl.errors import ConfigError

DEFAULT_USD_BRL = 5.40


@dataclass(frozen=True)
class ModelPrice:
    input_per_m: float
    cached_input_per_m: float
    output_per_m: float


DEFAULT_PRICES = {
    "gpt-4o-mini": ModelPrice(0.15, 0.075, 0.60),
    "gpt-4o": ModelPrice(2.50, 1.25, 10.00),
    "gpt-4.1-mini": ModelPrice(0.40, 0.10, 1.60),
    "gpt-4.1-nano": ModelPrice(0.10, 0.025, 0.40),
}


@dataclass(frozen=True)
class RateLimits:
    """An account's limits per minute (0 = unlimited). There are no per-model defaults: they
    depend on the account's tier, so they are learned from the server (``shared_rate_limit``)."""

    rpm: int
    tpm: int


def price_for(model: str, overrides: dict | None = None) -> ModelPrice:
    """The model's price; ``overrides`` = ``{model: {"input": .., "cached_input": .., "output": ..}}``."""
    override = (overrides or {}).get(model)
    if override:
        try:
            return ModelPrice(float(override["input"]), float(override.get("cached_input", override["input"])),
                              float(override["output"]))
        except (KeyError, TypeError, ValueError):
            raise ConfigError(f"bad price override for {model!r}: needs numeric input, output (and cached_input)") from None
    if model not in DEFAULT_PRICES:
        raise ConfigError(f"no price for model {model!r}: add it to LeadAnalysisOpenAI.price_overrides")
    return DEFAULT_PRICES[model]


def cost_usd(price: ModelPrice, prompt_tokens: int, cached_tokens: int, completion_tokens: int) -> float:
    """Cached tokens are part of the prompt tokens, billed at the cached rate."""
    uncached = max(0, prompt_tokens - cached_tokens)
    return (uncached * price.input_per_m + cached_tokens * price.cached_input_per_m
            + completion_tokens * price.output_per_m) / 1_000_000


def usd_to_brl(usd: float, rate: float = DEFAULT_USD_BRL) -> float:
    return usd * rate


def estimate_cost_usd(price: ModelPrice, prompt_tokens_estimate: int, completion_tokens_estimate: int = 120) -> float:
    """Upper bound for the budget guard: no cache discount assumed."""
    return cost_usd(price, prompt_tokens_estimate, 0, completion_tokens_estimate)


BATCH_DISCOUNT = 0.5  # the Batch API bills input and output at half the real-time price


def batch_price_for(model: str, overrides: dict | None = None) -> ModelPrice:
    """Half of the model's (possibly overridden) real-time price."""
    price = price_for(model, overrides)
    return ModelPrice(price.input_per_m * BATCH_DISCOUNT, price.cached_input_per_m * BATCH_DISCOUNT,
                      price.output_per_m * BATCH_DISCOUNT)
