"""``allpfit-etl compare SLUG [--month YYYY-MM]``: should this tenant use OpenAI? Each analyzer
against the labels (when the tenant maps them), regex vs OpenAI, and what OpenAI costs.

Computed from the stored answers at call time (the same functions as the assets), so it is
current even between runs."""

from __future__ import annotations

import datetime as dt
import re

import sqlalchemy as sa

from allpfit_etl import settings
from allpfit_etl.db import sql
from allpfit_etl.errors import ConfigError
from allpfit_etl.monitoring import store
from allpfit_etl.monitoring.agreement import markdown_table
from allpfit_etl.monitoring.compare_quality import latest_labelled_month, print_quality
from allpfit_etl.tenants.registry import Tenant, get_tenant
from allpfit_etl.timeutil import as_date

MONTH_PATTERN = re.compile(r"^(\d{4})-(\d{2})$")
EXAMPLES = 5


def parse_month(text: str) -> dt.date:
    match = MONTH_PATTERN.fullmatch(text.strip())
    if not match or not 1 <= int(match.group(2)) <= 12:
        raise ConfigError(f"bad --month {text!r}: expected YYYY-MM, e.g. 2025-11")
    return dt.date(int(match.group(1)), int(match.group(2)), 1)


def latest_compared_month(engine: sa.Engine, tenant_id: int) -> dt.date | None:
    with engine.connect() as conn:
        value = conn.execute(sql("analytics/monitoring/latest_compared_month"), {"tenant_id": tenant_id}).scalar()
    return as_date(value) if value is not None else None


def _one_line(text: str, width: int = 160) -> str:
    flat = " ".join(str(text).split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def _answer(row, side: str) -> str:
    yes = {True: "yes", False: "no"}
    return (f"lead={yes[bool(row[f'{side}_is_lead'])]} visit={yes[bool(row[f'{side}_visita_agendada'])]} "
            f"prob={int(row[f'{side}_probabilidade_conversao'])}")


def _analyzer(tenant: Tenant) -> str:
    f = tenant.features
    if f.use_openai:
        return f"OpenAI ({f.model}) with the regex answer beside it"
    return f"regex, OpenAI shadow sample {f.shadow_openai_sample:.0%}" if f.shadow_openai_sample else "regex, no shadow sample"


def run_compare(engine: sa.Engine, slug: str, month_text: str | None, out=print) -> int:
    month = parse_month(month_text) if month_text else None  # bad input fails before any query
    tenant = get_tenant(engine, slug)
    timezone = settings.timezone_name()
    today = store.local_today(timezone)
    month = (month or latest_compared_month(engine, tenant.tenant_id) or latest_labelled_month(engine, tenant)
             or store.month_start(today))
    comparison = store.compare_month(engine, tenant, month)
    out(f"{tenant.name} ({tenant.slug}) · {month:%Y-%m} · {_analyzer(tenant)}")
    if print_quality(engine, tenant, month, timezone, out):
        out("")
    if comparison.figures["compared"] == 0:
        hint = ("" if tenant.features.use_openai or tenant.features.shadow_openai_sample
                else f"; turn on a sample with `allpfit-etl tenants set {tenant.slug} shadow_openai_sample=0.1` and run")
        out(f"nothing to compare yet: no conversation of {month:%Y-%m} has both a regex and an OpenAI answer{hint}")
        return 0
    out("")
    out(markdown_table(comparison.figures))
    out("")
    # spend is dated when the calls were made: this month's, whichever month's conversations were compared
    outlook = store.cost_outlook(engine, tenant, store.month_start(today), timezone, today=today, volume_month=month)
    budget = outlook.budget
    limit = f" of R$ {budget.budget_brl:.2f} budget" if budget.budget_brl is not None else " (no budget set)"
    out(f"OpenAI spend this month ({today:%Y-%m}): R$ {budget.month_to_date_brl:.2f}{limit}; "
        f"month-end projection R$ {budget.projected_brl:.2f}")
    if outlook.switching_brl is not None:
        out(f"projected monthly cost of switching to OpenAI ({tenant.features.model}): R$ {outlook.switching_brl:.2f} "
            f"(tokens per conversation of {outlook.sample_size} sampled answers × {outlook.month_volume:.0f} conversations "
            f"in {month:%Y-%m})")
    elif tenant.features.use_openai:
        out(f"projected monthly cost on OpenAI: R$ {budget.projected_brl:.2f} (month-end projection above)")
    examples = comparison.disagreements.head(EXAMPLES)
    out("")
    out(f"the {len(examples)} clearest of {len(comparison.disagreements)} disagreement(s):" if len(examples)
        else "no disagreements")
    for _, row in examples.iterrows():
        out(f"  #{int(row['display_id'])}  regex: {_answer(row, 'regex')}  |  OpenAI: {_answer(row, 'openai')}")
        out(f"      {_one_line(row['transcript_start'])}")
    return 0
