"""Analysis: pending conversations fan out in chunks (DynamicOut), each analyzed by the
tenant's analyzer (regex or OpenAI), then fan in to one materialization with the totals."""

import time
from dataclasses import dataclass

import dagster as dg

from allpfit_etl.analysis import chunk_steps
from allpfit_etl.analysis.answer_store import AnswerSink
from allpfit_etl.analysis.batch.step import route_chunk
from allpfit_etl.analysis.candidate import analyze_candidate
from allpfit_etl.analysis.chunks import ChunkSpec, default_chunk_size, split_into_chunks
from allpfit_etl.analysis.interface import Analyzer
from allpfit_etl.analysis.openai_analyzer import OpenAIAccountError
from allpfit_etl.analysis.openai_resource import LeadAnalysisOpenAI
from allpfit_etl.analysis.partition_activity import partition_activity
from allpfit_etl.analysis.provisional import answer_provisionally
from allpfit_etl.analysis.shadow import analyze_shadow
from allpfit_etl.analysis.worker_processes import WorkerProcessesAnalyzer, share_of_limit, worker_count
from allpfit_etl.analysis.summary import ChunkSummary
from allpfit_etl.db import sql
from allpfit_etl.partitions import BACKFILL_POLICY, add_partition_metadata, tenant_day_partitions
from allpfit_etl.resources import AnalyticsDatabase
from allpfit_etl.tenants.registry import Tenant

MAX_CHUNKS_PER_RUN = 32
OPENAI_POOL = "openai"

CHUNK_RETRY_POLICY = dg.RetryPolicy(max_retries=3, delay=5, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS)


@dg.op(ins={"pending": dg.In(dg.Nothing)}, out=dg.DynamicOut(ChunkSpec))
def plan_analysis_chunks(context: dg.OpExecutionContext, analytics: AnalyticsDatabase):
    """One dynamic output per chunk of the tenant's ``chunk_size`` pending conversations."""
    engine = analytics.engine()
    for tenant, days in analytics.tenant_days(context.partition_keys):
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
    for tenant, days in analytics.tenant_days(context.partition_keys):
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


def _log_progress(log, slug: str):
    def progress(p: dict) -> None:
        figures = f", {p['prompt_tokens'] + p['completion_tokens']} tokens, US$ {p['cost_usd']:.4f}" if "cost_usd" in p else ""
        log.info(f"{slug}: {p['done']}/{p['total']} done, {p['per_second']:.1f} conv/s, ETA {p['eta_s']:.0f}s{figures}")
    return progress


@dataclass(frozen=True)
class OpenAIChunkAnalyzer:
    """Builds the OpenAI analyzer of one tenant's chunk around an answer writer: in this process,
    or in each forked worker process (with a writer of its own)."""

    tenant: Tenant
    openai: LeadAnalysisOpenAI
    sink: AnswerSink
    run_id: str | None
    log: object
    workers: int = 1

    def build(self, writer: AnswerSink, on_progress) -> Analyzer:
        features = self.tenant.features
        return self.openai.build_analyzer(
            tenant_id=self.tenant.tenant_id, model=features.model,
            max_concurrency=share_of_limit(features.max_concurrency, self.workers),
            engine=writer.engine,  # the account's limit is shared through the analytics database
            run_id=self.run_id, on_answer=writer.submit_answer, on_call=writer.submit_call, progress=on_progress,
            holders_at_start=self.workers, features=features, notice=self.notice,
            prompt_version=features.prompt_version,
        )

    def notice(self, line: str) -> None:
        self.log.info(f"{self.tenant.slug}: {line}")

    def in_worker(self, on_progress) -> Analyzer:
        self.sink.engine.dispose(close=False)  # the parent's pooled connections are not this process's
        return self.build(AnswerSink(self.sink.engine, self.sink.tenant_id, self.sink.identity, self.sink.run_id), on_progress)


def build_analyzer(tenant: Tenant, openai: LeadAnalysisOpenAI, sink: AnswerSink, log, run_id: str | None = None,
                   conversations: int = 0) -> Analyzer:
    """The tenant's analyzer for a chunk of ``conversations``; a big OpenAI chunk is spread over
    forked worker processes (``worker_processes``)."""
    if not tenant.features.use_openai:
        from allpfit_etl.analysis.regex_analyzer import RegexAnalyzer

        return RegexAnalyzer()
    if not openai.price(tenant.features.model, tenant.features).priced:
        log.info(f"{tenant.slug}: model {tenant.features.model} has no known price on this server: its calls are "
                 "ledgered at cost 0 with priced=false (spend unknown); set price_input/price_output to price it")
    progress = _log_progress(log, tenant.slug)
    workers = worker_count(conversations, sink.engine.dialect.name)
    factory = OpenAIChunkAnalyzer(tenant, openai, sink, run_id, log, workers)
    if workers == 1:
        return factory.build(sink, progress)
    log.info(f"{tenant.slug}: {conversations} conversations over {workers} worker processes")
    return WorkerProcessesAnalyzer(factory.in_worker, workers, progress=progress)


@dg.op(retry_policy=CHUNK_RETRY_POLICY, pool=OPENAI_POOL)
def analyze_chunk(
    context: dg.OpExecutionContext, chunk: ChunkSpec, analytics: AnalyticsDatabase, openai: LeadAnalysisOpenAI
) -> dg.Output[ChunkSummary]:
    """Analyze one chunk. Answers already stored (a retry, a re-run after a crash) are reused
    without any API call; new answers are stored the moment they arrive."""
    engine = analytics.engine()
    work = chunk_steps.load_chunk(engine, chunk, context.run_id)
    chunk_steps.reuse_stored_answers(engine, work)
    # Backfills of OpenAI tenants go to the Batch API: submitted there, none left here.
    work.todo = route_chunk(context, engine, work.tenant, work.todo, openai, work.summary, work.sink)
    if work.pays and work.todo:  # a regex chunk pays nothing: its model ('') has no price to look up
        chunk_steps.keep_budget(engine, work, price=openai.price(work.identity.model, work.tenant.features),
                                usd_brl=openai.usd_brl, max_prompt_tokens=openai.max_prompt_tokens, log=context.log)
    if work.todo:
        analyzer = build_analyzer(work.tenant, openai, work.sink, context.log, context.run_id, len(work.todo))
        try:
            outcome = analyzer.analyze_chunk(work.todo)
        except OpenAIAccountError as stop:
            # Every request would fail the same way: no step retry, the run fails (and alerts).
            # The answers received are stored; the rest stay pending for the next run.
            raise dg.Failure(description=str(stop), allow_retries=False) from None
        for warning in chunk_steps.record_outcome(work, outcome):
            context.log.warning(warning)
    # The other analyzer's answer, to compare (regex for OpenAI tenants, a sample for regex ones).
    shadow = analyze_shadow(engine, work.tenant, work.inputs, openai, context.log, run_id=context.run_id)
    # A candidate prompt's answers on a sample, to compare before a switch (OpenAI tenants).
    candidate = analyze_candidate(engine, work.tenant, work.inputs, openai, context.log, run_id=context.run_id)
    work.summary.usage = work.summary.usage.add(shadow).add(candidate)
    summary = chunk_steps.finish(work)
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
    for tenant, days in analytics.tenant_days(context.partition_keys):
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
