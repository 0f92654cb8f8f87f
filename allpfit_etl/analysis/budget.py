"""Monthly budget guard, for real time and the Batch API alike: a chunk is only sent when
month-to-date spend plus its estimate fits. A model with no known price has an unknown spend,
never R$ 0: the guard says so and cannot enforce the budget for it."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from allpfit_etl.analysis.interface import AnalysisFailure, ConversationInput
from allpfit_etl.analysis.pricing import ModelPrice, estimate_cost_usd, price_for
from allpfit_etl.analysis.prompts import system_prompt
from allpfit_etl.analysis.summary import DEFERRED
from allpfit_etl.analysis.truncation import estimate_tokens
from allpfit_etl.db import sql
from allpfit_etl.identities import PROMPT_VERSION


def month_start_utc(now: dt.datetime, timezone: str) -> dt.datetime:
    local = now.astimezone(ZoneInfo(timezone))
    start = local.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    return start.astimezone(dt.timezone.utc)


@dataclass(frozen=True)
class MonthSpend:
    spent_brl: float  # what priced calls cost, plus the estimates of batches not yet ingested
    unpriced_calls: int  # calls of models with no known price: their spend is unknown, not 0

    def describe(self) -> str:
        known = f"R$ {self.spent_brl:.2f}"
        return f"{known} plus {self.unpriced_calls} unpriced call(s) of unknown cost" if self.unpriced_calls else known


def month_to_date(engine: sa.Engine, tenant_id: int, timezone: str, now: dt.datetime | None = None) -> MonthSpend:
    now = now or dt.datetime.now(dt.timezone.utc)
    with engine.connect() as conn:
        row = conn.execute(
            sql("analytics/month_to_date_spend"), {"tenant_id": tenant_id, "since": month_start_utc(now, timezone)}
        ).one()
    return MonthSpend(float(row.spent_brl), int(row.unpriced_calls))


def month_to_date_spend_brl(engine: sa.Engine, tenant_id: int, timezone: str, now: dt.datetime | None = None) -> float:
    return month_to_date(engine, tenant_id, timezone, now).spent_brl


def estimate_chunk_cost_brl(
    conversations: list[ConversationInput], *, usd_brl: float, max_prompt_tokens: int = 6000,
    price: ModelPrice | None = None, model: str | None = None, price_overrides: dict | None = None,
    prompt_version: str = PROMPT_VERSION,
) -> float:
    """Upper-bound estimate of what sending these conversations would cost, without any network:
    each transcript counts at most ``max_prompt_tokens``, as it is truncated before sending."""
    price = price if price is not None else price_for(model, price_overrides)
    system_tokens = estimate_tokens(system_prompt(prompt_version))  # lead-v2's is five times lead-v1's
    total = 0.0
    for conversation in conversations:
        prompt_tokens = system_tokens + min(estimate_tokens(conversation.message_compiled), max_prompt_tokens)
        total += estimate_cost_usd(price, prompt_tokens)
    return total * usd_brl


def exceeds_budget(budget_brl: float | None, spent_brl: float, estimate_brl: float) -> bool:
    return budget_brl is not None and spent_brl + estimate_brl > budget_brl


@dataclass(frozen=True)
class BudgetCheck:
    budget_brl: float
    spent: MonthSpend
    estimate_brl: float | None  # None: the model has no price, so neither has this chunk

    @property
    def exceeded(self) -> bool:
        return self.estimate_brl is not None and exceeds_budget(self.budget_brl, self.spent.spent_brl, self.estimate_brl)

    def line(self, slug: str, model: str, conversations: int, what: str = "chunk") -> str | None:
        """The log line: why these conversations wait, or why the budget cannot be enforced."""
        if self.estimate_brl is None:
            return (f"budget: {slug}'s model {model} has no price, so its spend is unknown (not R$ 0): the monthly "
                    f"budget of R$ {self.budget_brl:.2f} cannot be enforced for it; set price_input/price_output to enforce it")
        if self.exceeded:
            return (f"budget: {slug} has spent {self.spent.describe()} of R$ {self.budget_brl:.2f} this month; this {what} "
                    f"(~R$ {self.estimate_brl:.2f}) would pass it, so its {conversations} conversations stay pending")
        return None


def check_budget(engine: sa.Engine, tenant, conversations: list[ConversationInput], *, price: ModelPrice,
                 usd_brl: float, max_prompt_tokens: int, timezone: str,
                 prompt_version: str = PROMPT_VERSION) -> BudgetCheck | None:
    """The tenant's budget against these conversations at ``price``; None when it has no budget."""
    budget = tenant.features.monthly_budget_brl
    if budget is None or not conversations:
        return None
    estimate = estimate_chunk_cost_brl(conversations, price=price, usd_brl=usd_brl, max_prompt_tokens=max_prompt_tokens,
                                       prompt_version=prompt_version)
    return BudgetCheck(float(budget), month_to_date(engine, tenant.tenant_id, timezone),
                       estimate if price.priced else None)


def apply_budget(check: BudgetCheck | None, tenant, todo: list[ConversationInput], summary, sink, log,
                 what: str = "chunk") -> list[ConversationInput]:
    """What may be sent: all of ``todo``, or nothing when the budget would be passed (those
    conversations are recorded as deferred and stay pending)."""
    if check is None:
        return todo
    line = check.line(tenant.slug, tenant.features.model, len(todo), what)
    if line:
        log.warning(line)
    if not check.exceeded:
        return todo
    summary.deferred_by_budget += len(todo)
    summary.mark(tenant.tenant_id, (c.conversation_id for c in todo), DEFERRED)
    sink.save_failures([AnalysisFailure(c.conversation_id, c.content_hash, "budget_exhausted", 0, "monthly budget reached")
                        for c in todo])
    return []
