"""Analysis: pending conversations fan out in chunks (DynamicOut), each analyzed by the
tenant's analyzer (regex or OpenAI), then fan in to one materialization with the totals."""

import importlib
import time
from concurrent.futures import ThreadPoolExecutor

import dagster as dg

from allpfit_etl import settings
from allpfit_etl.analysis.answer_store import AnswerSink, chunk_inputs, stored_answers
from allpfit_etl.analysis.batch.step import route_chunk
from allpfit_etl.analysis.candidate import analyze_candidate
from allpfit_etl.analysis.budget import estimate_chunk_cost_brl, exceeds_budget, month_to_date_spend_brl
from allpfit_etl.analysis.chunks import ChunkSpec, default_chunk_size, split_into_chunks
from allpfit_etl.analysis.interface import AnalysisFailure, Analyzer, Usage
from allpfit_etl.analysis.openai_analyzer import OpenAIAccountError
from allpfit_etl.analysis.openai_resource import LeadAnalysisOpenAI
from allpfit_etl.analysis.partition_activity import partition_activity
from allpfit_etl.analysis.provisional import answer_provisionally
from allpfit_etl.analysis.shadow import analyze_shadow
from allpfit_etl.analysis.worker_processes import WorkerProcessesAnalyzer, worker_count
from allpfit_etl.analysis.summary import ANALYZED, DEFERRED, FAILED, REUSED, ChunkSummary
from allpfit_etl.db import sql
from allpfit_etl.identities import OPENAI_ANALYZER
from allpfit_etl.partitions import BACKFILL_POLICY, add_partition_metadata, tenant_day_partitions, tenant_days
from allpfit_etl.resources import AnalyticsDatabase
from allpfit_etl.tenants.registry import Tenant, get_tenant_by_id

MAX_CHUNKS_PER_RUN = 32
MONITORING_MODULE = "allpfit_etl.monitoring.store"  # pandas and the monitoring tables: preloaded here and by the daemon
OPENAI_POOL = "openai"

CHUNK_RETRY_POLICY = dg.RetryPolicy(max_retries=3, delay=5, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS)


@dg.op(ins={"pending": dg.In(dg.Nothing)}, out=dg.DynamicOut(ChunkSpec))
def plan_analysis_chunks(context: dg.OpExecutionContext, analytics: AnalyticsDatabase):
    """One dynamic output per chunk of the tenant's ``chunk_size`` pending conversations."""
    engine = analytics.engine()
    for tenant, days in tenant_days(engine, context.partition_keys):
        slug = tenant.slug
        with engine.connect() as conn:
            ids = [
                int(row.conversation_id)
                for day in days
                for row in conn.execute(sql("analytics/pending_for_partition"), {"tenant_id": tenant.tenant_id, "day": day})
            ]
        size = tenant.features.chunk_size or default_chunk_size(tenant.features.use_openai)
        chunks = split_into_chunks(tenant.tenant_id, slug, ids, size, MAX_CHUNKS_PER_RUN)
        context.log.info(f"{slug}: {len(ids)} pending conversations in {len(chunks)} chunk(s)")
        for chunk in chunks:
            yield dg.DynamicOutput(chunk, mapping_key=chunk.mapping_key)


@dg.op(ins={"pending": dg.In(dg.Nothing)})
def answer_unsettled(context: dg.OpExecutionContext, analytics: AnalyticsDatabase) -> ChunkSummary:
    """The free regex answer for each OpenAI tenant's conversation still going on: loaded at once,
    marked provisional, until the conversation settles and gets its paid answer."""
    engine = analytics.engine()
    summary = ChunkSummary()
    for tenant, days in tenant_days(engine, context.partition_keys):
        with engine.connect() as conn:
            ids = [
                int(row.conversation_id)
                for day in days
                for row in conn.execute(sql("analytics/provisional_for_partition"), {"tenant_id": tenant.tenant_id, "day": day})
            ]
        if ids:
            context.log.info(f"{tenant.slug}: {len(ids)} conversation(s) still going on get a provisional regex answer")
            summary = summary.add(answer_provisionally(engine, tenant, ids, context.run_id))
    return summary


def build_analyzer(tenant: Tenant, openai: LeadAnalysisOpenAI, sink: AnswerSink, log, run_id: str | None = None,
                   conversations: int = 0) -> Analyzer:
    """The tenant's analyzer for a chunk of ``conversations``; a big OpenAI chunk is spread over
    forked worker processes (``worker_processes``), each with its own answer writer."""
    if not tenant.features.use_openai:
        from allpfit_etl.analysis.regex_analyzer import RegexAnalyzer

        return RegexAnalyzer()

    def progress(p: dict) -> None:
        figures = f", {p['prompt_tokens'] + p['completion_tokens']} tokens, US$ {p['cost_usd']:.4f}" if "cost_usd" in p else ""
        log.info(f"{tenant.slug}: {p['done']}/{p['total']} done, {p['per_second']:.1f} conv/s, "
                 f"ETA {p['eta_s']:.0f}s{figures}")

    def analyzer(writer: AnswerSink, on_progress, together: int = 1) -> Analyzer:
        return openai.build_analyzer(
            tenant_id=tenant.tenant_id,
            model=tenant.features.model,
            max_concurrency=tenant.features.max_concurrency,
            engine=writer.engine,  # the account's limit is shared through the analytics database
            run_id=run_id,
            on_answer=writer.submit_answer,
            on_call=writer.submit_call,
            progress=on_progress,
            holders_at_start=together,
            prompt_version=tenant.features.prompt_version,
        )

    workers = worker_count(conversations, sink.engine.dialect.name)
    if workers == 1:
        return analyzer(sink, progress)

    def in_worker(on_progress) -> Analyzer:
        sink.engine.dispose(close=False)  # the parent's pooled connections are not this process's
        return analyzer(AnswerSink(sink.engine, sink.tenant_id, sink.identity, sink.run_id), on_progress, workers)

    log.info(f"{tenant.slug}: {conversations} conversations over {workers} worker processes")
    return WorkerProcessesAnalyzer(in_worker, workers, progress=progress)


@dg.op(retry_policy=CHUNK_RETRY_POLICY, pool=OPENAI_POOL)
def analyze_chunk(
    context: dg.OpExecutionContext, chunk: ChunkSpec, analytics: AnalyticsDatabase, openai: LeadAnalysisOpenAI
) -> dg.Output[ChunkSummary]:
    """Analyze one chunk. Answers already stored (a retry, a re-run after a crash) are reused
    without any API call; new answers are stored the moment they arrive."""
    started, started_at = time.monotonic(), time.time()
    engine = analytics.engine()
    tenant = get_tenant_by_id(engine, chunk.tenant_id)
    identity = tenant.identity()
    inputs = chunk_inputs(engine, tenant.tenant_id, chunk.conversation_ids)
    reused = stored_answers(engine, tenant.tenant_id, identity, inputs)
    todo = [c for c in inputs if c.conversation_id not in reused]
    sink = AnswerSink(engine, tenant.tenant_id, identity, context.run_id)
    summary = ChunkSummary(
        conversations=len(inputs), reused_answers=len(reused), started_at=started_at,
        models=(identity.model or identity.analyzer,),
    )
    summary.count_results(list(reused.values()))
    summary.mark(tenant.tenant_id, reused, REUSED)
    todo = route_chunk(context, engine, tenant, todo, openai, summary, sink)  # in batch mode: submitted, none left

    if todo and identity.analyzer == OPENAI_ANALYZER and tenant.features.monthly_budget_brl is not None:
        spent = month_to_date_spend_brl(engine, tenant.tenant_id, settings.timezone_name())
        estimate = estimate_chunk_cost_brl(
            todo, model=identity.model, usd_brl=openai.usd_brl, price_overrides=openai.price_overrides
        )
        if exceeds_budget(tenant.features.monthly_budget_brl, spent, estimate):
            context.log.warning(
                f"budget: {tenant.slug} has spent R$ {spent:.2f} of R$ {tenant.features.monthly_budget_brl:.2f} this month; "
                f"this chunk (~R$ {estimate:.2f}) would pass it, so its {len(todo)} conversations stay pending"
            )
            summary.deferred_by_budget = len(todo)
            summary.mark(tenant.tenant_id, (c.conversation_id for c in todo), DEFERRED)
            sink.save_failures([
                AnalysisFailure(c.conversation_id, c.content_hash, "budget_exhausted", 0, "monthly budget reached")
                for c in todo
            ])
            todo = []

    def shadow() -> Usage:  # the other analyzer's answer, and a candidate prompt's, to compare
        return (analyze_shadow(engine, tenant, inputs, openai, context.log, run_id=context.run_id)
                .add(analyze_candidate(engine, tenant, inputs, openai, context.log, run_id=context.run_id)))

    with ThreadPoolExecutor(1, thread_name_prefix="shadow") as meanwhile:
        shadow_usage = None
        if todo:
            analyzer = build_analyzer(tenant, openai, sink, context.log, context.run_id, len(todo))
            if isinstance(analyzer, WorkerProcessesAnalyzer):
                # The worker processes do the analysis and this one only waits for them: the
                # other analyzer's answers are computed meanwhile.
                shadow_usage = meanwhile.submit(shadow)
                # A run in one process (the CLI's) runs the monitoring steps here next: their
                # pandas (~0.4 s to import) loads while this process waits. Done before the step ends.
                meanwhile.submit(importlib.import_module, MONITORING_MODULE)
            try:
                outcome = analyzer.analyze_chunk(todo)
            except OpenAIAccountError as stop:
                # Every request would fail the same way: no step retry, the run fails (and alerts).
                # The answers received are stored; the rest stay pending for the next run.
                raise dg.Failure(description=str(stop), allow_retries=False) from None
            if identity.analyzer != OPENAI_ANALYZER:  # OpenAI answers were stored one by one as they arrived
                sink.save_answers(outcome.results)
            sink.save_failures(outcome.failures)
            summary.analyzed = len(outcome.results)
            summary.failures = len(outcome.failures)
            summary.usage = outcome.usage
            summary.count_results(outcome.results)
            summary.mark(tenant.tenant_id, (r.conversation_id for r in outcome.results), ANALYZED)
            summary.mark(tenant.tenant_id, (f.conversation_id for f in outcome.failures), FAILED)
            for failure in outcome.failures[:5]:
                context.log.warning(f"conversation {failure.conversation_id} failed after {failure.attempts} attempt(s): {failure.error_kind}")
        summary.usage = summary.usage.add(shadow_usage.result() if shadow_usage else shadow())
    summary.elapsed_s = time.monotonic() - started
    return dg.Output(summary, metadata=summary.metadata())


@dg.op(out=dg.Out(dg.Nothing))
def collect_analyses(context: dg.AssetExecutionContext, analytics: AnalyticsDatabase, summaries: list[ChunkSummary],
                     provisional: ChunkSummary):
    """Fan-in: what this run did to each partition — analyzed, reused, failed, deferred and
    provisional conversations from the chunks, tokens and cost from the ``llm_usage`` ledger rows
    of this run — recorded on that partition's materialization."""
    total = provisional
    for summary in summaries:
        total = total.add(summary)
    engine = analytics.engine()
    for tenant, days in tenant_days(engine, context.partition_keys):
        for day, figures in partition_activity(engine, tenant.tenant_id, days, context.run_id, total.outcomes).items():
            add_partition_metadata(context, day, tenant.slug, figures)
    wall_seconds = time.time() - total.started_at if total.started_at else 0.0
    context.log.info(
        f"{total.analyzed} analyzed, {total.reused_answers} reused, {total.failures} failed in {len(summaries)} chunk(s), "
        f"{total.provisional} provisional, "
        f"{total.usage.total_tokens} tokens, US$ {total.usage.cost_usd:.4f}"
    )
    if total.deferred_by_budget:
        context.log.warning(f"monthly budget reached: {total.deferred_by_budget} conversations stay pending")
    if total.in_batch:
        context.log.info(f"{total.in_batch} conversation(s) wait in OpenAI batches")
    # Facts about the run that produced the partitions, the same on each of them.
    run_metadata = total.metadata(wall_seconds=wall_seconds)
    return dg.Output(None, metadata={
        "chunks": len(summaries),
        "conversations_per_second": run_metadata["conversations_per_second"],
        "model": run_metadata["model"],
        "openai.batch_ids": run_metadata["openai.batch_ids"],
    })


@dg.graph_asset(
    partitions_def=tenant_day_partitions,
    backfill_policy=BACKFILL_POLICY,
    ins={"pending_conversations": dg.AssetIn(dagster_type=dg.Nothing)},
    group_name="analysis",
    kinds={"openai", "postgres"},
    description=(
        "Lead analysis of every pending conversation: is_lead, visita_agendada, probabilidade_conversao (0–5), "
        "nome_mapeado_bot and analise_ia, by the tenant's analyzer (regex or OpenAI). Chunks of the tenant's "
        "chunk_size fan out in parallel; each partition's materialization records what this run did to it "
        "(analyzed, reused, failed, tokens and cost from the llm_usage ledger)."
    ),
)
def conversation_analyses(pending_conversations):
    chunks = plan_analysis_chunks(pending_conversations).map(analyze_chunk).collect()
    return collect_analyses(chunks, answer_unsettled(pending_conversations))
