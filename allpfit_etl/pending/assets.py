"""Pending filter: only conversations whose analysis is missing or out of date go on."""

import datetime as dt
from collections import Counter

import dagster as dg

from allpfit_etl.analysis.shadow import missing_shadow_answers
from allpfit_etl.db import sql
from allpfit_etl.partitions import BACKFILL_POLICY, tenant_day_partitions, tenant_days
from allpfit_etl.pending.rules import SHADOW_MISSING, StoredAnalysis, pending_reason
from allpfit_etl.resources import AnalyticsDatabase
from allpfit_etl.tables import insert_rows, pending_conversations as pending_table


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
    conversation is never analysed — nor paid for — twice."""
    engine = analytics.engine()
    now = dt.datetime.now(dt.timezone.utc)
    reasons: Counter[str] = Counter()
    skipped = 0
    for tenant, days in tenant_days(engine, context.partition_keys):
        identity = tenant.identity()
        for day in days:
            with engine.begin() as conn:
                rows = conn.execute(
                    sql("analytics/partition_conversations_with_stored_analysis"),
                    {"tenant_id": tenant.tenant_id, "day": day},
                ).all()
                pending = []
                missing_shadow = missing_shadow_answers(conn, tenant, day, [r.conversation_id for r in rows])
                for row in rows:
                    stored = (
                        StoredAnalysis(row.stored_hash, row.stored_analyzer, row.stored_model, row.stored_prompt_version)
                        if row.stored_hash is not None
                        else None
                    )
                    reason = pending_reason(
                        row.content_hash, identity, stored,
                        reanalyze_with_regex=tenant.features.reanalyze_with_regex,
                    )
                    if reason is None and stored.identity == identity and row.conversation_id in missing_shadow:
                        reason = SHADOW_MISSING  # current, but the comparison answer is still to get
                    if reason is None:
                        skipped += 1
                        continue
                    reasons[reason] += 1
                    pending.append({
                        "tenant_id": tenant.tenant_id, "conversation_id": row.conversation_id, "day": day,
                        "content_hash": row.content_hash, "reason": reason, "queued_at": now,
                    })
                conn.execute(sql("analytics/delete_partition_pending_conversations"), {"t": tenant.tenant_id, "d": day})
                insert_rows(conn, pending_table, pending)
    total_pending = sum(reasons.values())
    context.log.info(f"{total_pending} pending, {skipped} skipped (analysis current)")
    return dg.MaterializeResult(
        metadata={
            "pending": total_pending,
            "skipped": skipped,
            "pending_new": reasons["new"],
            "pending_content_changed": reasons["content_changed"],
            "pending_analyzer_changed": reasons["analyzer_changed"],
            "pending_shadow_missing": reasons[SHADOW_MISSING],
        }
    )
