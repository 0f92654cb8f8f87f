"""The OpenAI client as a Dagster resource: key and endpoint from the environment (``dg.EnvVar``)."""

from typing import Callable

import dagster as dg
import openai
from pydantic import Field

from allpfit_etl.analysis.openai_analyzer import OpenAIAnalyzer
from allpfit_etl.analysis.pricing import DEFAULT_USD_BRL, RateLimits, price_for, rate_limits_for
from allpfit_etl.errors import ConfigError

# Sending at exactly the limit meets the server's clock jitter as 429s; keep a small margin.
RATE_LIMIT_SAFETY = 0.97


class LeadAnalysisOpenAI(dg.ConfigurableResource):
    """Any OpenAI-compatible endpoint (OpenAI, vLLM, Ollama, LM Studio, the bundled fake server).

    Not ``dagster_openai.OpenAIResource``: this one builds the lead analyzer (rate limits,
    prices, retries into the ``llm_usage`` ledger), under the resource key ``openai``."""

    api_key: str | None = Field(default=None, description="From dg.EnvVar('OPENAI_API_KEY'); never logged.")
    base_url: str | None = Field(default=None, description="From OPENAI_BASE_URL when set; OpenAI otherwise.")
    timeout_s: float = 30.0
    max_attempts: int = 4
    usd_brl: float = DEFAULT_USD_BRL
    max_prompt_tokens: int = 6000
    price_overrides: dict = Field(default_factory=dict, description='{"model": {"input", "cached_input", "output"}}')
    rate_limit_overrides: dict = Field(default_factory=dict, description='{"model": {"rpm": .., "tpm": ..}}')

    def client_factory(self) -> Callable[[], openai.AsyncOpenAI]:
        if not self.api_key:
            raise ConfigError("OPENAI_API_KEY is not set: tenants with use_openai need it (or switch them to regex)")
        api_key, base_url = self.api_key, self.base_url

        def factory() -> openai.AsyncOpenAI:
            # Retries are ours (tenacity), so every attempt reaches the llm_usage ledger.
            return openai.AsyncOpenAI(api_key=api_key, base_url=base_url or None, max_retries=0)

        return factory

    def rate_limits(self, model: str, share: float = 1.0) -> RateLimits:
        limits = rate_limits_for(model, self.rate_limit_overrides)
        scale = share * RATE_LIMIT_SAFETY
        return RateLimits(max(1, int(limits.rpm * scale)) if limits.rpm else 0,
                          max(1, int(limits.tpm * scale)) if limits.tpm else 0)

    def build_analyzer(self, *, tenant_id: int, model: str, max_concurrency: int, rate_limit_share: float = 1.0,
                       on_answer=None, on_call=None, progress=None) -> OpenAIAnalyzer:
        return OpenAIAnalyzer(
            self.client_factory(),
            tenant_id=tenant_id,
            model=model,
            price=price_for(model, self.price_overrides),
            max_concurrency=max_concurrency,
            rate_limits=self.rate_limits(model, rate_limit_share),
            timeout_s=self.timeout_s,
            max_attempts=self.max_attempts,
            usd_brl=self.usd_brl,
            max_prompt_tokens=self.max_prompt_tokens,
            on_answer=on_answer,
            on_call=on_call,
            progress=progress,
        )
