"""``allpfit-etl batches [--wait]``: the batches, and without a daemon the sensor's work."""

from __future__ import annotations

import sys
import time

import sqlalchemy as sa

from allpfit_etl.analysis.batch import store
from allpfit_etl.analysis.batch.ingest import IngestReport, poll_and_ingest
from allpfit_etl.analysis.batch.step import submit_options
from allpfit_etl.analysis.batch.submit import batch_client
from allpfit_etl.analysis.pricing import BATCH_DISCOUNT


def deployed_openai():
    """The code location's ``openai`` resource with its environment variables resolved: the
    CLI's own OpenAI work (``batches --wait``, the checks before a run) uses what the runs use."""
    from allpfit_etl.definitions import defs

    return defs.resources["openai"].process_config_and_initialize()


def check_openai_tenants(openai, tenants) -> None:
    """Before any run starts: each OpenAI tenant's price and structured output resolve (an
    unknown model on OpenAI's URL is one line, and nothing runs)."""
    for tenant in tenants:
        if tenant.features.use_openai:
            openai.price(tenant.features.model, tenant.features)
            openai.structured_output_for(tenant.features)


def list_batches(engine: sa.Engine) -> None:
    rows = store.rows(engine, "list")
    if not rows:
        print("no OpenAI batches")
        return
    print(f"{'batch':<32} {'tenant':<14} {'status':<11} {'conv':>6} {'done':>6} {'failed':>6} "
          f"{'est US$':>9} {'cost US$':>9}  created")
    for r in rows:
        print(f"{(r.batch_id or '(' + r.batch_key[:12] + '…)'):<32} {r.slug:<14} {r.status:<11} {r.conversation_count:>6} "
              f"{r.request_completed:>6} {r.request_failed:>6} {r.estimated_cost_usd:>9.4f} {r.cost_usd:>9.4f}  "
              f"{str(r.created_at)[:19]}")
    paid = sum(r.cost_usd for r in rows)
    open_count = sum(1 for r in rows if r.ingested_at is None)
    print(f"{len(rows)} batch(es), {open_count} open; paid US$ {paid:.4f} "
          f"(real time would have cost US$ {paid / BATCH_DISCOUNT:.4f})")


def _print_report(report: IngestReport) -> None:
    for _slug, line in report.problems:
        print(line, file=sys.stderr)
    if report.ingested:
        print(f"ingested {len(report.ingested)} batch(es): {report.answers} answers, {report.resubmitted} resubmitted, "
              f"{report.released} back to pending, {report.failed_lines} failed")


def wait_and_ingest(engine: sa.Engine, *, openai=None, interval_s: float = 10.0, timeout_s: float | None = None) -> int:
    """Poll and ingest until no batch is open, then materialize the partitions that got answers,
    as ``openai_batch_sensor``'s runs would. ``openai``: the resource whose key, endpoint, prices
    and exchange rate apply (default: the code location's, ``deployed_openai``)."""
    from allpfit_etl.automation.batch_sensor import TRIGGER, follow_up_partitions
    from allpfit_etl.runner import run_partition_keys

    openai = openai if openai is not None else deployed_openai()
    client = batch_client(openai.api_key, openai.base_url)
    options = submit_options(openai)
    deadline = time.monotonic() + timeout_s if timeout_s else None
    while True:
        report = poll_and_ingest(engine, client, options)
        _print_report(report)
        if not store.rows(engine, "not_ingested") and not store.rows(engine, "unsubmitted"):
            break
        if deadline and time.monotonic() > deadline:
            print(f"still {report.still_open} open batch(es) after {timeout_s:.0f} s", file=sys.stderr)
            return 1
        time.sleep(interval_s)
    partitions, batch_keys = follow_up_partitions(engine)
    keys = sorted(partitions)
    if keys:
        summary = run_partition_keys(keys, TRIGGER)
        store.mark_runs_requested(engine, batch_keys)
        print(f"loaded {len(keys)} partition(s) in {len(summary.runs)} run(s): "
              f"{int(summary.totals.get('reused_answers', 0))} stored answers, {int(summary.totals.get('loaded', 0))} loaded")
        for error in summary.errors:
            print(f"run failed: {error}", file=sys.stderr)
        if summary.failed_runs:
            return 1
    return 0
