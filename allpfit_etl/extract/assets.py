"""Extract: Chatwoot conversations of a (tenant, day) into the analytics database."""

import dagster as dg
import sqlalchemy as sa

from allpfit_etl import settings
from allpfit_etl.db import sql
from allpfit_etl.errors import ConfigError
from allpfit_etl.extract.chatwoot_source import extract_day
from allpfit_etl.partitions import BACKFILL_POLICY, add_partition_metadata, tenant_day_partitions
from allpfit_etl.resources import AnalyticsDatabase, ChatwootDatabase
from allpfit_etl.tables import chatwoot_conversations as conversations_table
from allpfit_etl.tables import insert_rows


def require_account(source: sa.Engine, account_id: int, slug: str) -> None:
    with source.connect() as conn:
        if conn.execute(sql("chatwoot/account_name"), {"account_id": account_id}).first() is None:
            raise ConfigError(f"tenant {slug!r} points at Chatwoot account {account_id}, which does not exist")


@dg.asset(
    partitions_def=tenant_day_partitions,
    backfill_policy=BACKFILL_POLICY,
    group_name="extract",
    kinds={"postgres", "python"},
)
def chatwoot_conversations(
    context: dg.AssetExecutionContext, chatwoot: ChatwootDatabase, analytics: AnalyticsDatabase
) -> dg.MaterializeResult:
    """Conversations created on the partition's local day in the tenant's Chatwoot account,
    each with its compiled transcript (contact / agent / bot lines; no private notes or
    activity; NUL bytes removed), content hash, Chatwoot labels and the outcome the tenant's label
    mapping gives them. Re-running replaces the partition."""
    source, target = chatwoot.engine(), analytics.engine()
    timezone = settings.timezone_name()
    total = 0
    for tenant, days in analytics.tenant_days(context.partition_keys):
        require_account(source, tenant.chatwoot_account_id, tenant.slug)
        for day in days:
            extracted = contact_messages = labelled = 0
            with target.begin() as conn:
                conn.execute(sql("analytics/delete_partition_chatwoot_conversations"), {"t": tenant.tenant_id, "d": day})
                for batch in extract_day(
                    source, tenant_id=tenant.tenant_id, account_id=tenant.chatwoot_account_id,
                    day=day, timezone=timezone, outcomes=tenant.features.outcome_mapping(),
                ):
                    extracted += insert_rows(conn, conversations_table, batch)
                    contact_messages += sum(row["contact_messages_count"] for row in batch)
                    labelled += sum(row["outcome"] is not None for row in batch)
            # The partition is replaced, so what was extracted is what it holds now.
            add_partition_metadata(context, day, tenant.slug, {"extracted": extracted, "contact_messages": contact_messages,
                                                            "labelled": labelled})
            total += extracted
    context.log.info(f"extracted {total} conversations for {len(context.partition_keys)} partition(s)")
    return dg.MaterializeResult()
