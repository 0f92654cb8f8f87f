"""Prices per model (USD per 1M tokens), the exchange rate, and the arithmetic of cost. Pure
functions: the one place a price is looked up, for real time, the Batch API and the budget guard.

Where a price comes from, first match wins: the tenant's ``price_input``/``price_output``
features; the resource's ``price_overrides``; the ``OPENAI_PRICES`` environment variable (JSON,
the same shape); the table below. A model found nowhere is *unpriced* on any server but OpenAI's
(a local model: cost 0, ``priced = false`` in the ledger, spend unknown), and a configuration
error on OpenAI's own URL, where every model has a price."""

from __future__ import annotations

import json
from dataclasses import dataclass
from urllib.parse import urlparse

from allpfit_etl.errors import ConfigError

DEFAULT_USD_BRL = 5.40
PRICES_ENV = "OPENAI_PRICES"


@dataclass(frozen=True)
class ModelPrice:
    input_per_m: float
    cached_input_per_m: float
    output_per_m: float
    priced: bool = True  # False: nobody knows this model's price; its cost is recorded as 0, meaning unknown


UNPRICED = ModelPrice(0.0, 0.0, 0.0, priced=False)

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


def is_openai_url(base_url: str | None) -> bool:
    """No base URL means the client's default, OpenAI's API."""
    if not base_url:
        return True
    host = (urlparse(base_url).hostname or "").lower()
    return host == "openai.com" or host.endswith(".openai.com")


def parse_price_table(text: str | None, source: str = PRICES_ENV) -> dict:
    """``{"model": {"input": .., "output": .., "cached_input": ..}}`` from JSON text (empty: none)."""
    if not text or not text.strip():
        return {}
    try:
        table = json.loads(text)
    except ValueError as exc:
        raise ConfigError(f"{source} is not valid JSON ({exc}); expected "
                          '{"MODEL": {"input": USD_PER_1M, "output": USD_PER_1M}}') from None
    if not isinstance(table, dict) or not all(isinstance(v, dict) for v in table.values()):
        raise ConfigError(f'{source} must map each model to {{"input": .., "output": ..}} (USD per 1M tokens)')
    for model, entry in table.items():
        _entry_price(model, entry, source)  # bad input fails here, before any run starts
    return table


def _entry_price(model: str, entry: dict, source: str) -> ModelPrice:
    try:
        price = ModelPrice(float(entry["input"]), float(entry.get("cached_input", entry["input"])),
                           float(entry["output"]))
    except (KeyError, TypeError, ValueError):
        raise ConfigError(f"bad price override for {model!r} in {source}: needs numeric input, output (and cached_input)") from None
    if min(price.input_per_m, price.cached_input_per_m, price.output_per_m) < 0:
        raise ConfigError(f"bad price override for {model!r} in {source}: prices must not be negative")
    return price


def price_for(model: str, overrides: dict | None = None, *, base_url: str | None = None,
              tenant_price: tuple[float, float] | None = None) -> ModelPrice:
    """The price of ``model``: the tenant's (input, output) when set, else ``overrides``
    (resource and environment merged by the caller), else the table; else unpriced off OpenAI."""
    if tenant_price is not None:
        return _entry_price(model, {"input": tenant_price[0], "output": tenant_price[1]}, "the tenant's features")
    override = (overrides or {}).get(model)
    if override:
        return _entry_price(model, override, "price_overrides")
    if model in DEFAULT_PRICES:
        return DEFAULT_PRICES[model]
    if not is_openai_url(base_url):
        return UNPRICED
    raise ConfigError(
        f"no price for model {model!r} on OpenAI: set the tenant's price_input=… price_output=… "
        f"(USD per 1M tokens, `allpfit-etl tenants set`) or {PRICES_ENV}='{{\"{model}\": {{\"input\": …, \"output\": …}}}}'")


def cost_usd(price: ModelPrice, prompt_tokens: int, cached_tokens: int, completion_tokens: int) -> float:
    """Cached tokens are part of the prompt tokens, billed at the cached rate."""
    uncached = max(0, prompt_tokens - cached_tokens)
    return (uncached * price.input_per_m + cached_tokens * price.cached_input_per_m
            + completion_tokens * price.output_per_m) / 1_000_000


def estimate_cost_usd(price: ModelPrice, prompt_tokens_estimate: int, completion_tokens_estimate: int = 120) -> float:
    """Upper bound for the budget guard: no cache discount assumed."""
    return cost_usd(price, prompt_tokens_estimate, 0, completion_tokens_estimate)


BATCH_DISCOUNT = 0.5  # the Batch API bills input and output at half the real-time price


def batch_price(price: ModelPrice) -> ModelPrice:
    """Half of a real-time price."""
    return ModelPrice(price.input_per_m * BATCH_DISCOUNT, price.cached_input_per_m * BATCH_DISCOUNT,
                      price.output_per_m * BATCH_DISCOUNT, price.priced)


def batch_price_for(model: str, overrides: dict | None = None, **where) -> ModelPrice:
    """Half of the model's (possibly overridden) real-time price."""
    return batch_price(price_for(model, overrides, **where))
