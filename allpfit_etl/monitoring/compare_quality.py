"""``allpfit-etl compare``'s quality section: the month's funnel, each analyzer against the labels
and, where both answered, what OpenAI costs per extra correctly found lead. Computed from the
tables at call time, with the same functions as the assets."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import sqlalchemy as sa

from allpfit_etl.analysis.pricing import price_for
from allpfit_etl.errors import ConfigError
from allpfit_etl.monitoring import ground_truth, spend, store
from allpfit_etl.monitoring.ground_truth_store import ground_truth_of
from allpfit_etl.monitoring.ground_truth_text import calibration_markdown, figure, quality_markdown
from allpfit_etl.tenants.registry import Tenant


def openai_cost_per_conversation(engine: sa.Engine, tenant: Tenant, month: dt.date, timezone: str) -> float | None:
    """R$ per conversation of the tenant's stored OpenAI answers (their average tokens × today's
    price table × the ledger's exchange rate), as the switching cost counts it."""
    tokens = store.shadow_tokens(engine, tenant.tenant_id, tenant.features.model)
    if tokens is None:
        return None
    rate = store.usd_brl_rate(store.month_ledger(engine, tenant.tenant_id, month, timezone))
    try:
        price = price_for(tenant.features.model, tenant_price=tenant.features.tenant_price())
    except ConfigError:  # a model without a price: the cost is unknown, never R$ 0
        return None
    return spend.switching_cost_brl(tokens, 1.0, price, rate)


def latest_labelled_month(engine: sa.Engine, tenant: Tenant) -> dt.date | None:
    funnel = ground_truth_of(engine, tenant).funnel
    labelled = funnel[funnel["labelled"] > 0] if not funnel.empty else funnel
    return None if labelled.empty else labelled["month"].max()


def print_quality(engine: sa.Engine, tenant: Tenant, month: dt.date, timezone: str, out: Callable = print) -> bool:
    """The section, or nothing when no conversation of the month carries an outcome; True if printed."""
    truth = ground_truth_of(engine, tenant).month(month)
    if truth.funnel.empty or int(truth.funnel.iloc[0]["labelled"]) == 0:
        if not tenant.features.outcome_mapping().configured:
            out(f"no outcome labels mapped: set them with `allpfit-etl tenants set {tenant.slug} "
                "labels_converted=... labels_not_lead=...` (docs/ground_truth.md)")
        return False
    f = truth.funnel.iloc[0]
    out(f"quality against the labels · {month:%Y-%m}: {f.labelled} of {f.conversations} conversations carry an outcome "
        f"({figure(f.labelled_share, f.conversations)})")
    out(f"funnel: {f.conversations} conversations → {f.leads} leads → {f.visits_scheduled} visits scheduled → "
        f"{f.visited} visited → {f.converted} converted; lead conversion rate {figure(f.conversion_rate, f.leads)}")
    out("")
    shown = ground_truth.shown_rows(truth.quality)
    out(quality_markdown(shown))
    out("")
    out("conversion rate by probabilidade_conversao:")
    keys = ground_truth.ANSWER_KEYS + ["scope"]
    picked = truth.calibration.merge(shown[keys], on=keys, how="inner")
    out(calibration_markdown(picked))
    value = ground_truth.openai_value(ground_truth.fair_rows(truth.quality),
                                      openai_cost_per_conversation(engine, tenant, month, timezone))
    if value is not None:
        out("")
        out(openai_value_line(value))
    return True


def openai_value_line(value: dict) -> str:
    mark = "*" if value["small_sample"] else ""
    found = (f"OpenAI finds {value['extra_true_leads']:+d} true and {value['extra_false_leads']:+d} false leads against "
             f"regex on the {value['labelled']}{mark} labelled conversations both answered")
    if value["openai_cost_brl"] is None:
        return found + "; no OpenAI answer priced yet"
    cost = f"; OpenAI cost R$ {value['openai_cost_brl']:.4f} there"
    if value["cost_per_extra_lead_brl"] is None:
        return found + cost + ", for no more true leads than regex finds"
    return found + cost + f": R$ {value['cost_per_extra_lead_brl']:.4f} per extra correctly found lead"
