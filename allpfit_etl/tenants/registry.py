"""``tenant_configs``: which Chatwoot accounts are analyzed, and how.

A tenant's slug is its Dagster partition key, so it is restricted to ``[a-z0-9_]+``: it can
never contain the ``|``, ``,``, ``[`` or ``]`` that Dagster's multi-partition keys reserve.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

import sqlalchemy as sa

from allpfit_etl.db import sql
from allpfit_etl.errors import ConfigError, UnknownTenantError
from allpfit_etl.identities import PROMPT_VERSION, PROMPT_VERSIONS, AnalyzerIdentity, analyzer_identity
from allpfit_etl.tenants.outcomes import LabelMappingError, OutcomeMapping, build_mapping

SLUG_PATTERN = re.compile(r"^[a-z0-9_]+$")
DEFAULT_MODEL = "gpt-4o-mini"
BATCH_API_MODES = ("never", "backfills", "always")
# How the answer's JSON schema is asked for (analysis/structured_output.py); None = the resource's setting.
STRUCTURED_OUTPUT_MODES = ("json_schema", "json_object", "tools", "auto")
# A WhatsApp sales chat goes back and forth within seconds (the bot) to a few minutes (the contact,
# an agent); ten quiet minutes almost always end an exchange. Longer only delays the final answer,
# shorter pays again for chats that were only pausing.
DEFAULT_SETTLE_MINUTES = 10.0


@dataclass(frozen=True)
class TenantFeatures:
    use_openai: bool = False
    model: str = DEFAULT_MODEL
    # None = derived: chunks from the analyser (analysis/chunks.py), requests in flight from the
    # account's rate limit and the latency (Little's law). Set, they are upper bounds.
    chunk_size: int | None = None
    max_concurrency: int | None = None
    monthly_budget_brl: float | None = None
    # A tenant switched back from OpenAI to regex keeps its paid answers unless this is set.
    reanalyze_with_regex: bool = False
    # OpenAI Batch API (half price, results within 24 h): never | backfills | always
    batch_api: str = "backfills"
    # Regex tenants: this fraction of conversations is also analysed by OpenAI, to compare (analysis/shadow.py).
    shadow_openai_sample: float = 0.0
    # OpenAI tenants: a conversation is paid for once it has settled, i.e. no new message for this
    # many minutes (or resolved in Chatwoot); until then its free regex answer is loaded as provisional.
    settle_minutes: float = DEFAULT_SETTLE_MINUTES
    # json_schema (OpenAI, vLLM) | json_object (llama-cpp-python, Ollama) | tools | auto; None = the resource's.
    structured_output: str | None = None
    # USD per 1M tokens, for a model the price table lacks (both or neither); None = the table's, or unpriced.
    price_input: float | None = None
    price_output: float | None = None
    # OpenAI tenants: the prompt of new and changed conversations. A switch re-pays no history:
    # `allpfit-etl reanalyze` does that, explicitly, through the Batch API.
    prompt_version: str = PROMPT_VERSION
    # OpenAI tenants: a candidate prompt also answers this fraction of settled conversations, stored
    # beside the current answers and never loaded, to compare before a switch (analysis/candidate.py).
    candidate_prompt_version: str | None = None
    candidate_sample: float = 0.0
    # What the sales team recorded (tenants/outcomes.py): comma-separated Chatwoot label titles per
    # outcome, matched whatever their case and accents, and a custom_attributes key read as one more label.
    labels_converted: str = ""
    labels_visited: str = ""
    labels_lead: str = ""
    labels_not_lead: str = ""
    outcome_attribute: str | None = None

    def outcome_mapping(self) -> OutcomeMapping:
        try:
            return build_mapping({"converted": self.labels_converted, "visited": self.labels_visited,
                                  "lead": self.labels_lead, "not_lead": self.labels_not_lead}, self.outcome_attribute)
        except LabelMappingError as exc:
            raise ConfigError(str(exc)) from None

    def validated(self) -> "TenantFeatures":
        if not isinstance(self.use_openai, bool) or not isinstance(self.reanalyze_with_regex, bool):
            raise ConfigError("features use_openai and reanalyze_with_regex must be true or false")
        if not isinstance(self.model, str) or not self.model.strip():
            raise ConfigError("feature model must be a non-empty string")
        for name in ("chunk_size", "max_concurrency"):
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"feature {name} must be a positive integer, got {value!r}")
        if self.batch_api not in BATCH_API_MODES:
            raise ConfigError(f"feature batch_api must be one of {', '.join(BATCH_API_MODES)}, got {self.batch_api!r}")
        budget = self.monthly_budget_brl
        if budget is not None and (isinstance(budget, bool) or not isinstance(budget, (int, float)) or budget < 0):
            raise ConfigError(f"feature monthly_budget_brl must be a non-negative number, got {budget!r}")
        sample = self.shadow_openai_sample
        if isinstance(sample, bool) or not isinstance(sample, (int, float)) or not 0 <= sample <= 1:
            raise ConfigError(f"feature shadow_openai_sample must be a fraction between 0 and 1, got {sample!r}")
        settle = self.settle_minutes
        if isinstance(settle, bool) or not isinstance(settle, (int, float)) or not 0 <= settle <= 7 * 24 * 60:
            raise ConfigError(f"feature settle_minutes must be a number of minutes between 0 and 10080, got {settle!r}")
        if self.structured_output is not None and self.structured_output not in STRUCTURED_OUTPUT_MODES:
            raise ConfigError(f"feature structured_output must be one of {', '.join(STRUCTURED_OUTPUT_MODES)}, "
                              f"got {self.structured_output!r}")
        for name in ("price_input", "price_output"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0):
                raise ConfigError(f"feature {name} must be a non-negative number of USD per 1M tokens, got {value!r}")
        if (self.price_input is None) != (self.price_output is None):
            raise ConfigError("features price_input and price_output go together: set both (USD per 1M tokens)")
        for name in ("prompt_version", "candidate_prompt_version"):
            value = getattr(self, name)
            if value not in PROMPT_VERSIONS and not (name == "candidate_prompt_version" and value is None):
                raise ConfigError(f"feature {name} must be one of {', '.join(PROMPT_VERSIONS)}, got {value!r}")
        sample = self.candidate_sample
        if isinstance(sample, bool) or not isinstance(sample, (int, float)) or not 0 <= sample <= 1:
            raise ConfigError(f"feature candidate_sample must be a fraction between 0 and 1, got {sample!r}")
        self.outcome_mapping()
        return self

    def tenant_price(self) -> tuple[float, float] | None:
        """The (input, output) price the tenant set for its model, if any."""
        return None if self.price_input is None else (float(self.price_input), float(self.price_output))


FEATURE_NAMES = tuple(f.name for f in fields(TenantFeatures))


def parse_features(raw: Any) -> TenantFeatures:
    """Features from the JSON column (dict on PostgreSQL, text on SQLite); unknown keys are an error."""
    if raw is None or raw == "":
        data: dict = {}
    elif isinstance(raw, dict):
        data = raw
    else:
        try:
            data = json.loads(raw)
        except ValueError as exc:
            raise ConfigError(f"tenant features are not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError("tenant features must be a JSON object")
    unknown = sorted(set(data) - set(FEATURE_NAMES))
    if unknown:
        raise ConfigError(f"unknown tenant feature(s) {', '.join(unknown)}; known: {', '.join(FEATURE_NAMES)}")
    return TenantFeatures(**data).validated()


def coerce_feature_value(key: str, text: str) -> Any:
    """Parse ``KEY=VALUE`` text from the CLI into the feature's type."""
    if key not in FEATURE_NAMES:
        raise ConfigError(f"unknown tenant feature {key!r}; known: {', '.join(FEATURE_NAMES)}")
    lowered = text.strip().lower()
    if key in ("use_openai", "reanalyze_with_regex"):
        if lowered in ("true", "1", "yes", "on"):
            return True
        if lowered in ("false", "0", "no", "off"):
            return False
        raise ConfigError(f"feature {key} takes true or false, got {text!r}")
    if key in ("chunk_size", "max_concurrency"):
        if lowered in ("", "auto", "none", "null"):
            return None
        try:
            return int(text)
        except ValueError:
            raise ConfigError(f"feature {key} takes an integer, got {text!r}") from None
    if key in ("monthly_budget_brl", "price_input", "price_output"):
        if lowered in ("", "none", "null"):
            return None
        try:
            return float(text)
        except ValueError:
            raise ConfigError(f"feature {key} takes a number, got {text!r}") from None
    if key == "batch_api":
        return lowered
    if key == "structured_output":
        return None if lowered in ("", "none", "null", "default") else lowered
    if key == "settle_minutes":
        try:
            return float(text)
        except ValueError:
            raise ConfigError(f"feature {key} takes a number of minutes, got {text!r}") from None
    if key == "outcome_attribute":
        return None if lowered in ("", "none", "null") else text.strip()
    if key.startswith("labels_"):
        return ",".join(part.strip() for part in text.split(",") if part.strip())
    if key == "candidate_prompt_version" and lowered in ("", "none", "null"):
        return None
    if key in ("shadow_openai_sample", "candidate_sample"):
        try:
            return float(text)
        except ValueError:
            raise ConfigError(f"feature {key} takes a fraction between 0 and 1, got {text!r}") from None
    return text


@dataclass(frozen=True)
class Tenant:
    tenant_id: int
    slug: str
    name: str
    chatwoot_account_id: int
    enabled: bool
    features: TenantFeatures

    def identity(self) -> AnalyzerIdentity:
        """The analyzer whose answers count as current for this tenant."""
        return analyzer_identity(self.features.use_openai, self.features.model, self.features.prompt_version)


def validate_slug(slug: str) -> str:
    if not SLUG_PATTERN.fullmatch(slug or ""):
        raise ConfigError(f"bad tenant slug {slug!r}: use lowercase letters, digits and underscores only")
    return slug


def _row_to_tenant(row) -> Tenant:
    return Tenant(
        tenant_id=int(row.tenant_id),
        slug=row.slug,
        name=row.name,
        chatwoot_account_id=int(row.chatwoot_account_id),
        enabled=bool(row.enabled),
        features=parse_features(row.features),
    )


def list_tenants(engine: sa.Engine, *, enabled_only: bool = False) -> list[Tenant]:
    query = sql("analytics/tenants/list_enabled" if enabled_only else "analytics/tenants/list_all")
    with engine.connect() as conn:
        return [_row_to_tenant(row) for row in conn.execute(query)]


def get_tenant(engine: sa.Engine, slug: str) -> Tenant:
    with engine.connect() as conn:
        row = conn.execute(sql("analytics/tenants/by_slug"), {"slug": slug}).first()
    if row is None:
        raise UnknownTenantError(f"unknown tenant {slug!r} (see `allpfit-etl tenants list`)")
    return _row_to_tenant(row)


def get_tenant_by_id(engine: sa.Engine, tenant_id: int) -> Tenant:
    with engine.connect() as conn:
        row = conn.execute(sql("analytics/tenants/by_id"), {"id": tenant_id}).first()
    if row is None:
        raise UnknownTenantError(f"unknown tenant id {tenant_id}")
    return _row_to_tenant(row)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def require_new_slug(engine: sa.Engine, slug: str) -> None:
    validate_slug(slug)
    with engine.connect() as conn:
        if conn.execute(sql("analytics/tenants/slug_exists"), {"s": slug}).first():
            raise ConfigError(f"tenant {slug!r} already exists (use `allpfit-etl tenants set`)")


def add_tenant(
    engine: sa.Engine, slug: str, name: str, chatwoot_account_id: int, features: TenantFeatures | None = None
) -> Tenant:
    require_new_slug(engine, slug)
    features = (features or TenantFeatures()).validated()
    with engine.begin() as conn:
        conn.execute(
            sql("analytics/tenants/insert"),
            {"slug": slug, "name": name, "account": int(chatwoot_account_id),
             "features": json.dumps(asdict(features)), "now": _now()},
        )
    return get_tenant(engine, slug)


def update_features(engine: sa.Engine, slug: str, **changes: Any) -> Tenant:
    tenant = get_tenant(engine, slug)
    features = replace(tenant.features, **changes).validated()
    with engine.begin() as conn:
        conn.execute(
            sql("analytics/tenants/update_features"),
            {"f": json.dumps(asdict(features)), "now": _now(), "slug": slug},
        )
    return get_tenant(engine, slug)


def set_account(engine: sa.Engine, slug: str, chatwoot_account_id: int) -> Tenant:
    get_tenant(engine, slug)
    with engine.begin() as conn:
        conn.execute(sql("analytics/tenants/set_account"), {"account": int(chatwoot_account_id), "now": _now(), "slug": slug})
    return get_tenant(engine, slug)


def set_enabled(engine: sa.Engine, slug: str, enabled: bool) -> Tenant:
    get_tenant(engine, slug)
    with engine.begin() as conn:
        conn.execute(
            sql("analytics/tenants/set_enabled"),
            {"e": enabled, "now": _now(), "slug": slug},
        )
    return get_tenant(engine, slug)
