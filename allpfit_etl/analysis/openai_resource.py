"""The OpenAI client as a Dagster resource: key and endpoint from the environment (``dg.EnvVar``)."""

import os
from typing import TYPE_CHECKING, Callable

import dagster as dg
import sqlalchemy as sa
from pydantic import Field

from allpfit_etl.analysis.openai_analyzer import OpenAIAnalyzer
from allpfit_etl.analysis.pricing import DEFAULT_USD_BRL, PRICES_ENV, ModelPrice, RateLimits, parse_price_table, price_for
from allpfit_etl.analysis.structured_output import JSON_SCHEMA, MODES
from allpfit_etl.analysis.shared_rate_limit import SharedRateLimit, account_key
from allpfit_etl.errors import ConfigError
from allpfit_etl.identities import PROMPT_VERSION

if TYPE_CHECKING:  # imported by the client factory (``structured_output.response_format`` says why)
    import openai

RPM_ENV, TPM_ENV = "OPENAI_RPM", "OPENAI_TPM"
STRUCTURED_OUTPUT_ENV = "OPENAI_STRUCTURED_OUTPUT"


def _limit_from_env(name: str) -> int | None:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return None
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number of {name[-3:]}, got {raw!r}") from None
    if value < 0:
        raise ConfigError(f"{name} must not be negative, got {value}")
    return value


class LeadAnalysisOpenAI(dg.ConfigurableResource):
    """Any OpenAI-compatible endpoint (OpenAI, vLLM, Ollama, LM Studio, the bundled fake server).

    Not ``dagster_openai.OpenAIResource``: this one builds the lead analyzer (rate limits,
    prices, retries into the ``llm_usage`` ledger), under the resource key ``openai``.

    The account's rate limit is learned from the server's ``x-ratelimit-limit-*`` headers; set
    ``rpm``/``tpm`` here, ``OPENAI_RPM``/``OPENAI_TPM`` in the environment, or
    ``rate_limit_overrides`` per model only to use less (or when the server states nothing).

    Prices: the tenant's ``price_input``/``price_output``, else ``price_overrides``, else the
    ``OPENAI_PRICES`` environment variable (the same JSON), else the built-in table; a model in
    none of them is unpriced on any server but OpenAI's (``analysis/pricing.py``).
    """

    api_key: str | None = Field(default=None, description="From dg.EnvVar('OPENAI_API_KEY'); never logged.")
    base_url: str | None = Field(default=None, description="From OPENAI_BASE_URL when set; OpenAI otherwise.")
    timeout_s: float = 30.0
    max_attempts: int = 4
    usd_brl: float = DEFAULT_USD_BRL
    max_prompt_tokens: int = 6000
    rpm: int | None = Field(default=None, description="Account requests/minute; else OPENAI_RPM; else learned.")
    tpm: int | None = Field(default=None, description="Account tokens/minute; else OPENAI_TPM; else learned.")
    price_overrides: dict = Field(default_factory=dict, description='{"model": {"input", "cached_input", "output"}}')
    rate_limit_overrides: dict = Field(default_factory=dict, description='{"model": {"rpm": .., "tpm": ..}}')
    structured_output: str | None = Field(
        default=None, description="json_schema | json_object | tools | auto; a tenant's feature wins; "
                                  "else OPENAI_STRUCTURED_OUTPUT; else json_schema.")

    def client_factory(self) -> Callable[[], "openai.AsyncOpenAI"]:
        if not self.api_key:
            raise ConfigError("OPENAI_API_KEY is not set: tenants with use_openai need it (or switch them to regex)")
        api_key, base_url = self.api_key, self.base_url

        def factory() -> "openai.AsyncOpenAI":
            import openai

            # Retries are ours (tenacity), so every attempt reaches the llm_usage ledger. The aiohttp
            # transport (openai[aiohttp]) spends about half the CPU per request of the default one,
            # which matters at hundreds of requests per second.
            return openai.AsyncOpenAI(api_key=api_key, base_url=base_url or None, max_retries=0,
                                      http_client=openai.DefaultAioHttpClient())

        return factory

    def price_table(self) -> dict:
        """``OPENAI_PRICES`` from the environment, under this resource's ``price_overrides``."""
        return {**parse_price_table(os.environ.get(PRICES_ENV)), **self.price_overrides}

    def price(self, model: str, features=None) -> ModelPrice:
        """The one price lookup (real time, Batch API, budget): ``features`` is the tenant's."""
        tenant_price = features.tenant_price() if features is not None else None
        return price_for(model, self.price_table(), base_url=self.base_url, tenant_price=tenant_price)

    def structured_output_for(self, features=None) -> str:
        """The tenant's ``structured_output``, else this resource's, else OPENAI_STRUCTURED_OUTPUT, else json_schema."""
        chosen = (getattr(features, "structured_output", None) or self.structured_output
                  or os.environ.get(STRUCTURED_OUTPUT_ENV, "").strip().lower() or JSON_SCHEMA)
        if chosen not in MODES:
            raise ConfigError(f"structured_output must be one of {', '.join(MODES)}, got {chosen!r}")
        return chosen

    def configured_limits(self, model: str) -> RateLimits | None:
        """The limits someone set (0 = unlimited for that kind), or None: learn them from the server."""
        rpm = self.rpm if self.rpm is not None else _limit_from_env(RPM_ENV)
        tpm = self.tpm if self.tpm is not None else _limit_from_env(TPM_ENV)
        override = self.rate_limit_overrides.get(model) or {}
        rpm = rpm if rpm is not None else override.get("rpm")
        tpm = tpm if tpm is not None else override.get("tpm")
        if rpm is None and tpm is None:
            return None
        return RateLimits(int(rpm or 0), int(tpm or 0))

    def shared_rate_limit(self, model: str, engine: sa.Engine | None, run_id: str | None,
                          holders_at_start: int = 1) -> SharedRateLimit:
        return SharedRateLimit(engine, account_key(self.base_url, self.api_key or "", model),
                               configured=self.configured_limits(model), run_id=run_id, holders_at_start=holders_at_start)

    def build_analyzer(self, *, tenant_id: int, model: str, max_concurrency: int | None = None,
                       engine: sa.Engine | None = None, run_id: str | None = None,
                       on_answer=None, on_call=None, progress=None, holders_at_start: int = 1,
                       features=None, notice=None, prompt_version: str = PROMPT_VERSION) -> OpenAIAnalyzer:
        """``features``: the tenant's (its price and structured_output); ``notice``: where the
        analyser's one-off lines go (the structured-output mode it settled on).
        With ``engine`` (the analytics database) the rate limit is shared with every other step,
        run and machine using the same key and model; without it, the analyser holds it alone.
        ``holders_at_start``: analyzers starting together with this one (a chunk's worker processes)."""
        return OpenAIAnalyzer(
            self.client_factory(),
            tenant_id=tenant_id,
            model=model,
            price=self.price(model, features),
            max_concurrency=max_concurrency,
            rate_limit=self.shared_rate_limit(model, engine, run_id, holders_at_start),
            timeout_s=self.timeout_s,
            max_attempts=self.max_attempts,
            usd_brl=self.usd_brl,
            max_prompt_tokens=self.max_prompt_tokens,
            on_answer=on_answer,
            on_call=on_call,
            progress=progress,
            structured_output=self.structured_output_for(features),
            notice=notice,
            prompt_version=prompt_version,
        )
