"""Pending filter: only conversations whose analysis is missing or out of date go on."""

import datetime as dt
from collections import Counter

import dagster as dg

from allpfit_etl.analysis.shadow import answered_by, missing_shadow_answers
from allpfit_etl.db import sql
from allpfit_etl.partitions import BACKFILL_POLICY, add_partition_metadata, tenant_day_partitions
from allpfit_etl.pending.rules import (
    REASONS, SHADOW_MISSING, PendingDecision, StoredAnalysis, is_settled, pending_decision,
)
from allpfit_etl.resources import AnalyticsDatabase
from allpfit_etl.tables import insert_rows, pending_conversations as pending_table
from allpfit_etl.timeutil import as_utc


def _stored(row) -> StoredAnalysis | None:
    if row.stored_hash is None:
        return None
    return StoredAnalysis(row.stored_hash, row.stored_analyzer, row.stored_model, row.stored_prompt_version,
                          row.stored_answer_kind)


@dg.asset(
    partitions_def=tenant_day_partitions,
    backfill_policy=BACKFILL_POLICY,
    deps=["chatwoot_conversations"],
    group_name="analysis",
    kinds={"postgres", "python"},
)
def pending_conversations(context: dg.AssetExecutionContext, analytics: AnalyticsDatabase) -> dg.MaterializeResult:
    """Extracted conversations whose content hash, analyser, model or prompt version differ
    from the analysis already loaded. The rest are skipped (and counted), so an unchanged
    conversation is never analysed — nor paid for — twice. An OpenAI tenant's conversation that
    has not settled yet (see ``settle_minutes``) is pending for its free provisional answer only."""
    engine = analytics.engine()
    now = dt.datetime.now(dt.timezone.utc)
    total_pending = total_skipped = 0
    for tenant, days in analytics.tenant_days(context.partition_keys):
        identity = tenant.identity()
        # A regex tenant's OpenAI sample is paid for too: it waits for the conversation to settle.
        shadow_is_paid = not tenant.features.use_openai
        for day in days:
            reasons: Counter[str] = Counter()
            skipped = provisional = 0
            with engine.begin() as conn:
                rows = conn.execute(
                    sql("analytics/partition_conversations_with_stored_analysis"),
                    {"tenant_id": tenant.tenant_id, "day": day},
                ).all()
                pending = []
                missing_shadow = missing_shadow_answers(conn, tenant, day, [r.conversation_id for r in rows])
                # answers stored for the current prompt by `allpfit-etl reanalyze`, to load
                answered_now = answered_by(conn, tenant.tenant_id, day, identity) if tenant.features.use_openai else set()
                for row in rows:
                    stored = _stored(row)
                    settled = is_settled(as_utc(row.last_activity_at), row.status, now, tenant.features.settle_minutes)
                    decision = pending_decision(
                        row.content_hash, identity, stored, settled=settled,
                        reanalyze_with_regex=tenant.features.reanalyze_with_regex,
                        current_answer_stored=row.conversation_id in answered_now,
                    )
                    if (decision is None and stored is not None and stored.identity == identity
                            and row.conversation_id in missing_shadow and (settled or not shadow_is_paid)):
                        decision = PendingDecision(SHADOW_MISSING, provisional=False)
                    if decision is None:
                        skipped += 1
                        continue
                    reasons[decision.reason] += 1
                    provisional += decision.provisional
                    pending.append({
                        "tenant_id": tenant.tenant_id, "conversation_id": row.conversation_id, "day": day,
                        "content_hash": row.content_hash, "reason": decision.reason,
                        "provisional": decision.provisional, "queued_at": now,
                    })
                conn.execute(sql("analytics/delete_partition_pending_conversations"), {"t": tenant.tenant_id, "d": day})
                insert_rows(conn, pending_table, pending)
            add_partition_metadata(context, day, tenant.slug, {
                "pending": len(pending),
                "skipped": skipped,
                "pending_provisional": provisional,
                **{f"pending_{reason}": reasons[reason] for reason in REASONS},
            })
            total_pending += len(pending)
            total_skipped += skipped
    context.log.info(f"{total_pending} pending, {total_skipped} skipped (analysis current)")
    return dg.MaterializeResult()
