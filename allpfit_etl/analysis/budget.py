"""Monthly budget guard: a chunk is only sent when month-to-date spend plus its estimate fits."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from allpfit_etl.analysis.interface import ConversationInput
from allpfit_etl.analysis.pricing import estimate_cost_usd, price_for
from allpfit_etl.analysis.prompts import system_prompt
from allpfit_etl.analysis.truncation import estimate_tokens
from allpfit_etl.db import sql
from allpfit_etl.identities import PROMPT_VERSION


def month_start_utc(now: dt.datetime, timezone: str) -> dt.datetime:
    local = now.astimezone(ZoneInfo(timezone))
    start = local.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    return start.astimezone(dt.timezone.utc)


def month_to_date_spend_brl(engine: sa.Engine, tenant_id: int, timezone: str, now: dt.datetime | None = None) -> float:
    now = now or dt.datetime.now(dt.timezone.utc)
    with engine.connect() as conn:
        row = conn.execute(
            sql("analytics/month_to_date_spend"), {"tenant_id": tenant_id, "since": month_start_utc(now, timezone)}
        ).one()
    return float(row.spent_brl)


def estimate_chunk_cost_brl(
    conversations: list[ConversationInput], *, model: str, usd_brl: float, max_prompt_tokens: int = 6000,
    price_overrides: dict | None = None, prompt_version: str = PROMPT_VERSION,
) -> float:
    """Upper-bound estimate of what sending these conversations would cost, without any network."""
    price = price_for(model, price_overrides)
    system_tokens = estimate_tokens(system_prompt(prompt_version))  # lead-v2's is five times lead-v1's
    total = 0.0
    for conversation in conversations:
        prompt_tokens = system_tokens + min(estimate_tokens(conversation.message_compiled), max_prompt_tokens)
        total += estimate_cost_usd(price, prompt_tokens)
    return total * usd_brl


def exceeds_budget(budget_brl: float | None, spent_brl: float, estimate_brl: float) -> bool:
    return budget_brl is not None and spent_brl + estimate_brl > budget_brl
