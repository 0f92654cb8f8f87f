"""``allpfit-etl``: set up the analytics database, manage tenants, run and watch the pipeline."""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import warnings
from dataclasses import asdict
from zoneinfo import ZoneInfo

from allpfit_etl import db, settings
from allpfit_etl.errors import AllpfitError, ConfigError, redact

# Exit statuses (README, "Command line"): 0 done; 1 a run failed (one line per failed run names its
# tenant, step and cause; the run is in the Dagster UI); 2 bad input, nothing changed.
RUN_FAILED, BAD_INPUT = 1, 2
# What --from/--to take (runner.parse_day); spelled here so that --help does not import Dagster.
DAY_FORMS = "YYYY-MM-DD, today, yesterday or N-days-ago"


def analytics_engine(*, require_schema: bool = True):
    from allpfit_etl.schema import schema_ready

    engine = db.analytics_engine()
    if require_schema and not schema_ready(engine):
        raise ConfigError("analytics database is not initialised: run `allpfit-etl init` first")
    return engine


def chatwoot_engine(*, read_only: bool = True):
    return db.chatwoot_engine(read_only=read_only)


def cmd_init(args) -> int:
    from allpfit_etl.runner import dagster_home, get_instance
    from allpfit_etl.schema import apply_migrations

    applied = apply_migrations(analytics_engine(require_schema=False))
    print(f"analytics schema up to date ({'applied ' + ', '.join(applied) if applied else 'nothing to apply'})")
    with get_instance():  # its storage is created here once, not inside the first run
        print(f"Dagster instance ready in {dagster_home()}")
    return 0


def cmd_seed_demo(args) -> int:
    from allpfit_etl.demo.seed import create_chatwoot_schema, seed_demo

    engine = chatwoot_engine(read_only=False)
    if args.live is not None:
        return cmd_seed_live(engine, args)
    create_chatwoot_schema(engine)
    counts = seed_demo(engine)
    print("demo Chatwoot data: " + ", ".join(f"{v} {k}" for k, v in counts.items()))
    return 0


def cmd_seed_live(engine, args) -> int:
    """``seed-demo --live``: conversations written message by message in real time (demo/live.py)."""
    from allpfit_etl.demo.live import LiveSchedule, write_live_demo

    try:
        schedule = LiveSchedule(args.live, args.every, args.gap, args.messages, args.resolve).validated()
    except ValueError as exc:
        raise ConfigError(f"seed-demo --live: {exc}") from None
    write_live_demo(engine, schedule, args.account, args.record)
    return 0


def check_account(engine, account_id: int, slug: str, *, enabled: bool = True) -> None:
    """The account must exist (when Chatwoot is reachable) and, for an enabled tenant, belong
    to no other enabled tenant."""
    from allpfit_etl.errors import DatabaseUnreachableError
    from allpfit_etl.tenants.accounts import require_account_exists, require_account_unused

    if enabled:
        require_account_unused(engine, account_id, slug)
    try:
        source = chatwoot_engine()
    except DatabaseUnreachableError as exc:
        print(f"warning: Chatwoot account {account_id} not verified: {redact(str(exc))}", file=sys.stderr)
        return
    require_account_exists(source, account_id)


def parse_account_id(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ConfigError(f"account takes a Chatwoot account id (an integer), got {text!r}") from None


def _label_features(features) -> str:
    """The outcome mapping set on a tenant, as `tenants set` takes it (nothing when unset)."""
    from allpfit_etl.tenants.outcomes import LABEL_FEATURES

    parts = [f"{name}={getattr(features, name)}" for name in LABEL_FEATURES.values() if getattr(features, name)]
    if features.outcome_attribute:
        parts.append(f"outcome_attribute={features.outcome_attribute}")
    return "".join(" " + part for part in parts)


def candidate_on(features) -> bool:
    return features.use_openai and bool(features.candidate_prompt_version) and features.candidate_sample > 0


def cmd_tenants(args) -> int:
    from allpfit_etl.tenants import registry

    engine = analytics_engine()
    if args.tenants_command == "add":
        registry.require_new_slug(engine, args.slug)
        given = {"model": args.model, "chunk_size": args.chunk_size, "max_concurrency": args.max_concurrency,
                 "monthly_budget_brl": args.budget_brl}
        # options left out take TenantFeatures' defaults; a given 0 is refused, not replaced
        features = registry.TenantFeatures(
            use_openai=args.openai, **{k: v for k, v in given.items() if v is not None}).validated()
        check_account(engine, args.account_id, args.slug)  # last: it may warn that it could not verify
        tenant = registry.add_tenant(engine, args.slug, args.name, args.account_id, features)
        print(f"added tenant {tenant.slug} (id {tenant.tenant_id}, Chatwoot account {tenant.chatwoot_account_id})")
    elif args.tenants_command == "list":
        tenants = registry.list_tenants(engine)
        if not tenants:
            print("no tenants (add one with `allpfit-etl tenants add`)")
        for t in tenants:
            f = t.features
            print(
                f"{t.slug:<16} id={t.tenant_id:<3} account={t.chatwoot_account_id:<4} "
                f"{'enabled ' if t.enabled else 'disabled'} analyser={'openai:' + f.model if f.use_openai else 'regex'}"
                f"{f' prompt={f.prompt_version}' if f.use_openai else ''}"
                f"{f' candidate={f.candidate_prompt_version}@{f.candidate_sample:g}' if candidate_on(f) else ''}"
                f"{f' shadow_openai_sample={f.shadow_openai_sample:g}' if f.shadow_openai_sample and not f.use_openai else ''} "
                f"chunk_size={f.chunk_size or 'auto'} max_concurrency={f.max_concurrency or 'auto'} "
                f"budget_brl={f.monthly_budget_brl} batch_api={f.batch_api}{_label_features(f)}  {t.name}"
            )
    elif args.tenants_command == "set":
        changes, account = {}, None
        for assignment in args.assignments:
            if "=" not in assignment:
                raise ConfigError(f"bad assignment {assignment!r}: expected KEY=VALUE")
            key, value = (part.strip() for part in assignment.split("=", 1))
            if key == "account":
                account = parse_account_id(value)
            else:
                changes[key] = registry.coerce_feature_value(key, value)
        tenant = registry.get_tenant(engine, args.slug)
        if account is not None and account != tenant.chatwoot_account_id:
            check_account(engine, account, tenant.slug, enabled=tenant.enabled)
        if changes:  # validated before anything is written
            tenant = registry.update_features(engine, args.slug, **changes)
        if account is not None:
            tenant = registry.set_account(engine, args.slug, account)
        print(f"{tenant.slug}: account={tenant.chatwoot_account_id}, "
              + ", ".join(f"{k}={v}" for k, v in asdict(tenant.features).items()))
    elif args.tenants_command == "disable":
        registry.set_enabled(engine, args.slug, False)
        print(f"disabled tenant {args.slug}")
    elif args.tenants_command == "enable":
        tenant = registry.get_tenant(engine, args.slug)
        from allpfit_etl.tenants.accounts import require_account_unused

        require_account_unused(engine, tenant.chatwoot_account_id, tenant.slug)
        registry.set_enabled(engine, args.slug, True)
        print(f"enabled tenant {args.slug}")
    return 0


def _selected_tenants(engine, slugs: list[str] | None):
    from allpfit_etl.tenants import registry

    if slugs:
        tenants = [registry.get_tenant(engine, slug) for slug in slugs]
        disabled = [t.slug for t in tenants if not t.enabled]
        if disabled:
            raise ConfigError(f"tenant {disabled[0]!r} is disabled (enable it with `allpfit-etl tenants enable`)")
        return tenants
    tenants = registry.list_tenants(engine, enabled_only=True)
    if not tenants:
        raise ConfigError("no enabled tenants: add one with `allpfit-etl tenants add`")
    return tenants


def spend_text(usd: float, brl: float, unpriced_calls: int, to_date: bool = False) -> str:
    """Money as the ledger knows it: a model with no known price makes the spend unknown, never R$ 0."""
    known = f"US$ {usd:.4f} (R$ {brl:.4f})"
    if not unpriced_calls:
        return f"{known} spent to date" if to_date else known
    priced = f"; priced calls {known}" if usd else ""
    return f"spend{' to date' if to_date else ''} unknown ({int(unpriced_calls)} call(s) of an unpriced model{priced})"


def print_summary(summary, totals, first, last) -> None:
    """What this run changed, then what the range holds now (read from the tables)."""
    t = summary.totals
    in_batch = f"{int(t['in_batch'])} in batch, " if t.get("in_batch") else ""
    refresh = ""
    if summary.monitoring_runs:
        refresh = " and the monitoring refresh" + (" (queued)" if summary.monitoring_queued else "")
    print(
        f"{len(summary.runs)} run(s){refresh}, {first} → {last}\n"
        f"  this run:  {int(t.get('extracted', 0))} conversations extracted, {int(t.get('analyzed', 0))} analyzed, "
        f"{int(t.get('reused_answers', 0))} reused, {in_batch}{int(t.get('skipped', 0))} skipped, {int(t.get('failures', 0))} failed, "
        f"{int(t.get('tokens', 0))} tokens, {spend_text(t.get('cost_usd', 0), t.get('cost_brl', 0), t.get('unpriced_calls', 0))}\n"
        f"  range now: {totals.conversations} conversations, {totals.analyzed} analyzed, {totals.leads} leads, "
        f"{totals.visits} visits, {spend_text(totals.cost_usd, totals.cost_brl, totals.unpriced_calls, to_date=True)}"
    )
    for error in summary.errors:
        print(f"run failed: {error}", file=sys.stderr)


def cmd_run(args) -> int:
    from allpfit_etl.runner import range_totals, resolve_day_range, run_partitions

    from allpfit_etl.cli.batches import check_openai_tenants, deployed_openai

    first, last = resolve_day_range(args.date_from, args.date_to)
    engine = analytics_engine()
    tenants = _selected_tenants(engine, args.tenant)
    chatwoot_engine()
    set_rate_limits(args)
    check_openai_tenants(deployed_openai(), tenants)
    summary = run_partitions(tenants, first, last, extra_tags=batch_tags(args), run_config=rate_limit_config(args))
    print_summary(summary, range_totals(engine, tenants, first, last), first, last)
    return RUN_FAILED if summary.failed_runs else 0


def local_day_range(source, account_ids: list[int]):
    """The first and last local days with conversations in these Chatwoot accounts."""
    import sqlalchemy as sa

    from allpfit_etl.db import sql
    from allpfit_etl.timeutil import as_utc

    query = sql("chatwoot/conversation_time_range").bindparams(sa.bindparam("account_ids", expanding=True))
    with source.connect() as conn:
        row = conn.execute(query, {"account_ids": account_ids}).one()
    tz = ZoneInfo(settings.timezone_name())
    return as_utc(row.first_at).astimezone(tz).date(), as_utc(row.last_at).astimezone(tz).date()


def set_rate_limits(args) -> None:
    """``--rpm``/``--tpm`` reach the OpenAI resource the way a deployment sets them: OPENAI_RPM/OPENAI_TPM."""
    import os

    for value, name in ((args.rpm, "OPENAI_RPM"), (args.tpm, "OPENAI_TPM")):
        if value is not None:
            if value < 0:
                raise ConfigError(f"--{name[-3:].lower()} must not be negative, got {value}")
            os.environ[name] = str(value)


def rate_limit_config(args) -> dict | None:
    """``--rpm``/``--tpm`` also as the run's config of the OpenAI resource: a run that the
    dagster-daemon executes does not see this process's environment (a re-execution keeps them)."""
    limits = {name: value for name, value in (("rpm", args.rpm), ("tpm", args.tpm)) if value is not None}
    return {"resources": {"openai": {"config": limits}}} if limits else None


def batch_tags(args) -> dict:
    """``--batch`` / ``--no-batch`` as the run tag that overrides the tenant's ``batch_api``."""
    from allpfit_etl.analysis.batch.step import BATCH_TAG

    return {} if args.batch is None else {BATCH_TAG: "true" if args.batch else "false"}


def cmd_batches(args) -> int:
    from allpfit_etl.cli.batches import list_batches, wait_and_ingest

    engine = analytics_engine()
    if args.wait:
        code = wait_and_ingest(engine, interval_s=args.interval, timeout_s=args.timeout)
        list_batches(engine)
        return code
    list_batches(engine)
    return 0


def cmd_demo(args) -> int:
    from allpfit_etl.demo.seed import DEMO_DAYS, DEMO_TENANTS, create_chatwoot_schema, seed_demo
    from allpfit_etl.demo.labels import demo_features
    from allpfit_etl.runner import range_totals, run_partitions
    from allpfit_etl.schema import apply_migrations
    from allpfit_etl.tenants import registry

    source = chatwoot_engine(read_only=False)
    create_chatwoot_schema(source)
    # The demo's days end yesterday, so they are among the newest partitions the UI plots.
    yesterday = dt.datetime.now(ZoneInfo(settings.timezone_name())).date() - dt.timedelta(days=1)
    counts = seed_demo(source, end_date=yesterday, days=DEMO_DAYS, timezone=settings.timezone_name())
    first, last = local_day_range(source, [d.account_id for d in DEMO_TENANTS])  # an earlier demo's days, if any
    print(f"seeded demo Chatwoot: {counts['conversations']} conversations, {counts['messages']} messages, {first} → {last}")
    engine = analytics_engine(require_schema=False)
    apply_migrations(engine)
    existing = {t.slug: t for t in registry.list_tenants(engine)}
    for demo in DEMO_TENANTS:
        labels = demo_features(demo.slug)  # the demo's label mapping, so it shows the funnel and calibration
        if demo.slug not in existing:
            registry.add_tenant(engine, demo.slug, demo.name, demo.account_id, registry.TenantFeatures(**labels))
        elif not existing[demo.slug].features.outcome_mapping().configured:
            registry.update_features(engine, demo.slug, **labels)
    tenants = [registry.get_tenant(engine, d.slug) for d in DEMO_TENANTS]
    summary = run_partitions(tenants, first, last)
    print_summary(summary, range_totals(engine, tenants, first, last), first, last)
    print(f"analytics database: {redact(settings.analytics_database_url())}")
    print(f"open these runs in the Dagster UI:  {dagster_dev_command()}")
    return RUN_FAILED if summary.failed_runs else 0


def dagster_dev_command() -> str:
    """The ``dagster dev`` line that opens the CLI's runs from any folder: a workspace file beside the
    embedded defaults names the code location as the runs' origin does (pyproject's [tool.dagster]
    is only in the clone)."""
    import shlex

    from allpfit_etl.runner import CODE_LOCATION_NAME, DEFINITIONS_MODULE, dagster_home

    home = settings.allpfit_home()
    workspace = home / "workspace.yaml"
    workspace.write_text("load_from:\n  - python_module:\n"
                         f"      module_name: {DEFINITIONS_MODULE}\n      location_name: {CODE_LOCATION_NAME}\n")
    return (f"DAGSTER_HOME={shlex.quote(str(dagster_home()))} ALLPFIT_HOME={shlex.quote(str(home))} "
            f"dagster dev -w {shlex.quote(str(workspace))}")


def cmd_backfill(args) -> int:
    from allpfit_etl.automation.backfill import submit_tenant_backfill
    from allpfit_etl.definitions import defs
    from allpfit_etl.runner import get_instance, resolve_day_range
    from allpfit_etl.tenants import registry

    from allpfit_etl.cli.batches import check_openai_tenants, deployed_openai

    first, last = resolve_day_range(args.date_from, args.date_to)
    tenant = registry.get_tenant(analytics_engine(), args.slug)
    check_openai_tenants(deployed_openai(), [tenant])
    instance = get_instance()
    backfill_id = submit_tenant_backfill(defs, instance, tenant, first, last, extra_tags=batch_tags(args))
    days = (last - first).days + 1
    print(f"submitted backfill {backfill_id}: {tenant.slug}, {days} day(s) {first} → {last}; "
          "the dagster-daemon runs it (see Runs → Backfills in the UI)")
    return 0


def cmd_status(args) -> int:
    from allpfit_etl.status.monitor import run_status

    return run_status(analytics_engine(), watch_seconds=args.watch)


def _monitoring_engine():
    import sqlalchemy as sa

    engine = analytics_engine()
    inspector = sa.inspect(engine)
    if not (inspector.has_table("analyzer_agreement") and inspector.has_table("lead_funnel")):
        raise ConfigError("analytics schema predates monitoring: run `allpfit-etl init` to upgrade it")
    return engine


def cmd_compare(args) -> int:
    from allpfit_etl.monitoring.compare import parse_month, run_compare

    if args.candidate:
        from allpfit_etl.monitoring.candidate import run_candidate_compare

        return run_candidate_compare(_monitoring_engine(), args.slug)
    if args.month:
        parse_month(args.month)  # a malformed month fails before any database is touched
    return run_compare(_monitoring_engine(), args.slug, args.month)


def cmd_report(args) -> int:
    from pathlib import Path

    from allpfit_etl.monitoring.report import collect_report_data, default_report_path, render_report, write_report

    out = Path(args.out) if args.out else default_report_path()
    if out.suffix.lower() not in (".html", ".htm"):
        raise ConfigError(f"bad --out {str(out)!r}: the report is an .html file")
    path = write_report(render_report(collect_report_data(_monitoring_engine())), out)
    print(f"report written to {path} (self-contained: open it in any browser, offline)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="allpfit-etl", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("init", help="create or upgrade the analytics schema; open the Dagster instance").set_defaults(func=cmd_init)
    seed = sub.add_parser("seed-demo", help="write demo Chatwoot data for four gym tenants (--live: as live traffic)")
    seed.set_defaults(func=cmd_seed_demo)
    seed.add_argument("--live", type=float, metavar="MINUTES",
                      help="instead, write live traffic now, message by message: new conversations for MINUTES")
    seed.add_argument("--every", type=float, default=45.0, metavar="S", help="--live: a new conversation per account every S seconds")
    seed.add_argument("--gap", type=float, default=25.0, metavar="S", help="--live: seconds between two messages")
    seed.add_argument("--messages", type=int, default=11, metavar="N", help="--live: messages per conversation")
    seed.add_argument("--resolve", type=float, default=0.0, metavar="FRACTION",
                      help="--live: resolve this share of the conversations after their last message")
    seed.add_argument("--account", type=int, action="append", metavar="ID",
                      help="--live: Chatwoot account id (repeatable; default: the demo's four)")
    seed.add_argument("--record", metavar="FILE", help="--live: write what was written, one JSON line per conversation")
    sub.add_parser("demo", help="seed-demo + init + tenants + run, on the embedded defaults").set_defaults(func=cmd_demo)

    tenants = sub.add_parser("tenants", help="manage tenant_configs")
    tenants.set_defaults(func=cmd_tenants)
    tsub = tenants.add_subparsers(dest="tenants_command", required=True)
    add = tsub.add_parser("add", help="add a tenant (one Chatwoot account)")
    add.add_argument("slug")
    add.add_argument("--name", required=True)
    add.add_argument("--account-id", type=int, required=True)
    add.add_argument("--openai", action="store_true", help="analyse with OpenAI instead of regex")
    add.add_argument("--model")
    add.add_argument("--chunk-size", type=int)
    add.add_argument("--max-concurrency", type=int)
    add.add_argument("--budget-brl", type=float)
    tsub.add_parser("list", help="list tenants")
    set_parser = tsub.add_parser("set", help="change features or the Chatwoot account: KEY=VALUE ... (account=ID)")
    set_parser.add_argument("slug")
    set_parser.add_argument("assignments", nargs="+")
    for name in ("disable", "enable"):
        p = tsub.add_parser(name, help=f"{name} a tenant")
        p.add_argument("slug")

    run = sub.add_parser("run", help="materialize (tenant, day) partitions through Dagster")
    run.add_argument("--tenant", action="append", help="tenant slug (repeatable); default: every enabled tenant")
    run.add_argument("--from", dest="date_from", metavar="DAY", help=f"first local day, {DAY_FORMS} (default: yesterday)")
    run.add_argument("--to", dest="date_to", metavar="DAY", help=f"last local day, {DAY_FORMS} (default: --from, or today)")
    run.add_argument("--rpm", type=int, help="the OpenAI account's requests/minute (default: learned from the server)")
    run.add_argument("--tpm", type=int, help="the OpenAI account's tokens/minute (default: learned from the server)")
    run.add_argument("--batch", action=argparse.BooleanOptionalAction, default=None,
                     help="use (or not) the OpenAI Batch API: half price, results within 24 h (default: tenant's batch_api)")
    run.set_defaults(func=cmd_run)

    backfill = sub.add_parser("backfill", help="submit a tenant's history as a Dagster backfill")
    backfill.add_argument("slug")
    backfill.add_argument("--from", dest="date_from", metavar="DAY", required=True, help=f"first local day, {DAY_FORMS}")
    backfill.add_argument("--to", dest="date_to", metavar="DAY", required=True, help=f"last local day, {DAY_FORMS}")
    backfill.add_argument("--batch", action=argparse.BooleanOptionalAction, default=None,
                          help="use (or not) the OpenAI Batch API (default: tenant's batch_api, i.e. yes for backfills)")
    backfill.set_defaults(func=cmd_backfill)

    batches = sub.add_parser("batches", help="OpenAI batches: status, counts, cost; --wait ingests and loads them")
    batches.add_argument("--wait", action="store_true", help="poll and ingest until every open batch has ended, then load")
    batches.add_argument("--interval", type=float, default=10.0, metavar="SECONDS", help="polling interval (default 10)")
    batches.add_argument("--timeout", type=float, default=None, metavar="SECONDS", help="give up waiting after this long")
    batches.set_defaults(func=cmd_batches)

    status = sub.add_parser("status", help="progress, leads and spend per tenant")
    status.add_argument("--watch", type=float, metavar="SECONDS", help="refresh every SECONDS until Ctrl-C")
    status.set_defaults(func=cmd_status)

    compare = sub.add_parser("compare", help="regex vs OpenAI for one tenant: agreement, cost, disagreements")
    compare.add_argument("slug")
    compare.add_argument("--month", help="YYYY-MM (default: the latest month with both answers)")
    compare.add_argument("--candidate", action="store_true",
                         help="the tenant's candidate prompt against its current one, on the sampled conversations")
    compare.set_defaults(func=cmd_compare)

    report = sub.add_parser("report", help="write the self-contained HTML dashboard")
    report.add_argument("--out", help="FILE.html (default: $ALLPFIT_HOME/reports/lead_report.html)")
    report.set_defaults(func=cmd_report)

    from allpfit_etl.cli.evaluate import add_eval_parser

    add_eval_parser(sub)
    from allpfit_etl.cli.reanalyze import add_reanalyze_parser

    add_reanalyze_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    # Dagster labels BackfillPolicy and partitioned checks beta/preview: true, and noise in a terminal.
    warnings.filterwarnings("ignore", message=r".*is currently in (beta|preview).*")
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except AllpfitError as exc:
        print(f"error: {redact(str(exc))}", file=sys.stderr)
        return BAD_INPUT


def entry_point() -> None:
    """The ``allpfit-etl`` command."""
    sys.exit(main())


if __name__ == "__main__":
    entry_point()
