"""``allpfit-etl reanalyze SLUG --from --to``: a tenant's history with its current prompt, through
the Batch API; the estimated cost is printed before anything is sent."""

from __future__ import annotations

import argparse
import os

from allpfit_etl.errors import ConfigError


def add_reanalyze_parser(sub) -> None:
    parser = sub.add_parser("reanalyze", help="re-analyse a tenant's history with its current prompt (Batch API, half price)")
    parser.add_argument("slug")
    parser.add_argument("--from", dest="date_from", required=True, help="first local day, YYYY-MM-DD")
    parser.add_argument("--to", dest="date_to", required=True, help="last local day, YYYY-MM-DD")
    parser.add_argument("--dry-run", action="store_true", help="print what it would send and the estimate, send nothing")
    parser.set_defaults(func=cmd_reanalyze)


def cmd_reanalyze(args: argparse.Namespace) -> int:
    from allpfit_etl import settings
    from allpfit_etl.analysis.batch.submit import SubmitOptions, batch_client, submit
    from allpfit_etl.analysis.budget import exceeds_budget, month_to_date_spend_brl
    from allpfit_etl.analysis.reanalyze import estimate_cost, history_to_reanalyze
    from allpfit_etl.cli.main import analytics_engine
    from allpfit_etl.runner import resolve_day_range
    from allpfit_etl.tenants import registry

    first, last = resolve_day_range(args.date_from, args.date_to)
    engine = analytics_engine()
    tenant = registry.get_tenant(engine, args.slug)
    if not tenant.features.use_openai:
        raise ConfigError(f"tenant {tenant.slug!r} uses the regex analyzer: reanalyze re-pays OpenAI answers only")
    identity = tenant.identity()
    options = SubmitOptions()
    todo = history_to_reanalyze(engine, tenant.tenant_id, identity, first, last)
    what = f"{tenant.slug}, {first} → {last}, {identity.model} prompt {identity.prompt_version}"
    if not todo:
        print(f"nothing to re-analyse: every conversation of {what} already has its answer")
        return 0
    estimate = estimate_cost(todo, identity, options.max_prompt_tokens, options.price_overrides)
    estimate_brl = estimate.batch_usd * options.usd_brl
    print(f"{estimate.conversations} conversation(s) of {what}: ~{estimate.prompt_tokens} prompt + "
          f"~{estimate.completion_tokens} completion tokens; estimated US$ {estimate.batch_usd:.4f} (R$ {estimate_brl:.4f}) "
          f"through the Batch API (real time: US$ {estimate.realtime_usd:.4f})")
    budget = tenant.features.monthly_budget_brl
    spent = month_to_date_spend_brl(engine, tenant.tenant_id, settings.timezone_name()) if budget is not None else 0.0
    if exceeds_budget(budget, spent, estimate_brl):
        raise ConfigError(f"{tenant.slug} has spent R$ {spent:.2f} of its R$ {budget:.2f} monthly budget: this re-analysis "
                          "would pass it; raise monthly_budget_brl or choose fewer days")
    if args.dry_run:
        print("dry run: nothing sent")
        return 0
    client = batch_client(os.environ.get("OPENAI_API_KEY"), os.environ.get("OPENAI_BASE_URL"))
    submissions = submit(engine, client, identity, todo, options)
    sent = sum(s.conversations for s in submissions)
    print(f"submitted {sent} conversation(s) in {len(submissions)} batch(es): "
          f"{', '.join(s.batch_id or s.batch_key for s in submissions)}; the openai_batch_sensor "
          "(or `allpfit-etl batches --wait`) ingests their answers and loads them")
    return 0
