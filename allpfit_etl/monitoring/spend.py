"""LLM spend: the ledger per local day, month-to-date against the budget, the month-end
projection, and what switching a regex tenant to OpenAI would cost. Pure functions."""

from __future__ import annotations

import calendar
import datetime as dt
from dataclasses import dataclass

import pandas as pd

from allpfit_etl.analysis.pricing import ModelPrice, cost_usd

SPEND_COLUMNS = ["day", "model", "mode", "calls", "failed_calls", "prompt_tokens", "cached_tokens", "completion_tokens",
                 "total_tokens", "cost_usd", "cost_brl", "avg_latency_ms"]
TOKEN_COLUMNS = ["prompt_tokens", "cached_tokens", "completion_tokens", "total_tokens"]


def daily_spend(ledger: pd.DataFrame, timezone: str) -> pd.DataFrame:
    """One row per local day, model and mode: calls (every attempt), failed calls, tokens by kind,
    cost and average latency. ``ledger`` has the columns of ``ledger_for_window.sql``."""
    if ledger.empty:
        return pd.DataFrame(columns=SPEND_COLUMNS)
    local = pd.to_datetime(ledger["created_at"], utc=True, format="mixed").dt.tz_convert(timezone)
    frame = ledger.assign(
        day=local.dt.date,
        failed=(ledger["status"] != "ok").astype(int),
        latency_ms=pd.to_numeric(ledger["latency_ms"], errors="coerce"),
    )
    for column in TOKEN_COLUMNS:
        frame[column] = frame[column].astype("int64")
    grouped = frame.groupby(["day", "model", "mode"], sort=True).agg(
        calls=("status", "size"), failed_calls=("failed", "sum"),
        prompt_tokens=("prompt_tokens", "sum"), cached_tokens=("cached_tokens", "sum"),
        completion_tokens=("completion_tokens", "sum"), total_tokens=("total_tokens", "sum"),
        cost_usd=("cost_usd", "sum"), cost_brl=("cost_brl", "sum"), avg_latency_ms=("latency_ms", "mean"),
    ).reset_index()
    return grouped[SPEND_COLUMNS]


def days_in_month(day: dt.date) -> int:
    return calendar.monthrange(day.year, day.month)[1]


def month_end_projection(month_to_date: float, today: dt.date) -> float:
    """Spend at month end if the month's average daily rate so far (today included) holds."""
    return month_to_date / today.day * days_in_month(today)


@dataclass(frozen=True)
class BudgetStatus:
    month_to_date_brl: float
    projected_brl: float
    budget_brl: float | None

    @property
    def budget_used(self) -> float | None:
        return self.month_to_date_brl / self.budget_brl if self.budget_brl else None

    @property
    def projected_over_budget(self) -> bool:
        return self.budget_brl is not None and self.projected_brl > self.budget_brl

    def metadata(self) -> dict:
        meta = {"month_to_date_brl": round(self.month_to_date_brl, 8), "projected_month_brl": round(self.projected_brl, 8),
                "projected_over_budget": self.projected_over_budget}
        if self.budget_brl is not None:
            meta["monthly_budget_brl"] = float(self.budget_brl)
            meta["budget_used"] = round(self.budget_used or 0.0, 6)
        return meta


def budget_status(month_to_date_brl: float, today: dt.date, budget_brl: float | None) -> BudgetStatus:
    return BudgetStatus(month_to_date_brl, month_end_projection(month_to_date_brl, today), budget_brl)


@dataclass(frozen=True)
class TokensPerConversation:
    prompt: float
    cached: float
    completion: float
    sample_size: int


def switching_cost_brl(tokens: TokensPerConversation, conversations: float, price: ModelPrice, usd_brl: float) -> float:
    """Monthly cost of analysing ``conversations`` with OpenAI: tokens per conversation from the
    sample × the month's volume × the price table."""
    per_conversation_usd = cost_usd(price, tokens.prompt, tokens.cached, tokens.completion)
    return per_conversation_usd * conversations * usd_brl


def projected_volume(conversations_so_far: int, month: dt.date, today: dt.date) -> float:
    """The month's conversation volume: counted for a past month, extrapolated for the current one."""
    if (month.year, month.month) != (today.year, today.month):
        return float(conversations_so_far)
    return conversations_so_far / today.day * days_in_month(today)
