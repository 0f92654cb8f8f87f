"""What one run did to each (tenant, day) partition of the analysis.

Chunks mix the days of a tenant, so their summaries carry each conversation's outcome; the
conversation's day comes from ``chatwoot_conversations`` and the money from the ``llm_usage``
ledger rows of the run, so the partitions' ``cost_usd`` add up to the ledger.
"""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa

from allpfit_etl.analysis.summary import OUTCOMES
from allpfit_etl.db import sql
from allpfit_etl.timeutil import as_date

USAGE_KEYS = {
    "calls": "openai.calls", "prompt_tokens": "openai.prompt_tokens", "cached_tokens": "openai.cached_tokens",
    "completion_tokens": "openai.completion_tokens", "total_tokens": "openai.total_tokens",
    "cost_usd": "cost_usd", "cost_brl": "cost_brl", "retries": "retries", "unpriced_calls": "openai.unpriced_calls",
}


def empty_activity() -> dict:
    figures: dict = {outcome: 0 for outcome in OUTCOMES}
    figures.update({key: 0 for key in USAGE_KEYS.values()})
    figures["cost_usd"] = figures["cost_brl"] = 0.0
    figures["priced"] = True  # False: some calls were of a model with no known price, so cost_* is not the spend
    return figures


def partition_activity(
    engine: sa.Engine, tenant_id: int, days: list[dt.date], run_id: str, outcomes: dict[tuple[int, int], str]
) -> dict[dt.date, dict]:
    """Per day of ``days``: the run's outcome counts and its ledger's tokens and cost (zeros
    where the run did nothing, as on a re-run that finds nothing pending)."""
    activity = {day: empty_activity() for day in days}
    with engine.connect() as conn:
        day_of = {
            int(row.conversation_id): day
            for day in days
            for row in conn.execute(sql("analytics/partition_conversation_ids"), {"tenant_id": tenant_id, "day": day})
        }
        usage = conn.execute(sql("analytics/run_usage_by_day"), {"tenant_id": tenant_id, "run_id": run_id}).all()
    for (outcome_tenant, conversation_id), outcome in outcomes.items():
        day = day_of.get(conversation_id) if outcome_tenant == tenant_id else None
        if day is not None:
            activity[day][outcome] += 1
    for row in usage:
        figures = activity.get(as_date(row.day))
        if figures is None:  # ledger rows of this run for a day outside it: none are written
            continue
        for column, key in USAGE_KEYS.items():
            value = getattr(row, column)
            figures[key] = round(float(value), 8) if key.startswith("cost") else int(value)
        figures["priced"] = figures["openai.unpriced_calls"] == 0
    return activity
