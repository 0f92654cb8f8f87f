"""Submit a tenant's history as an asset backfill, exactly as the UI's "Materialize → Backfill" does.

The daemon executes it with the assets' ``BackfillPolicy`` (multi-run, bounded partitions per
run), under the run queue's limits for backfill runs.
"""

from __future__ import annotations

import datetime as dt
import secrets
import string
import time

import dagster as dg

# Dagster has no public API to submit an asset backfill from Python (only the UI and GraphQL):
# dagster-io/dagster#13852 (open) asks for one, and dagster-io/dagster#26731, which would have
# added it, was closed unmerged.
# test_deployment_end_to_end.py pins this use (a week's backfill → the expected runs, tags).
from dagster._core.execution.backfill import PartitionBackfill

from allpfit_etl.partitions import partition_key, register_tenant_partitions, run_tags
from allpfit_etl.tenants.registry import Tenant


def backfill_partition_keys(tenant_slug: str, first: dt.date, last: dt.date) -> list[str]:
    days = (last - first).days + 1
    return [str(partition_key(first + dt.timedelta(days=i), tenant_slug)) for i in range(days)]


def submit_tenant_backfill(
    defs: dg.Definitions, instance: dg.DagsterInstance, tenant: Tenant, first: dt.date, last: dt.date,
    extra_tags: dict | None = None,
) -> str:
    """``defs`` comes from the caller (the CLI), so this code-location module never imports the entry points."""
    register_tenant_partitions(instance, [tenant])
    asset_graph = defs.resolve_asset_graph()
    backfill_id = "".join(secrets.choice(string.ascii_lowercase) for _ in range(8))  # Dagster's id format
    backfill = PartitionBackfill.from_asset_partitions(
        backfill_id=backfill_id,
        asset_graph=asset_graph,
        partition_names=backfill_partition_keys(tenant.slug, first, last),
        # the tenant's days: the unpartitioned monitoring (tenant × month tables) follows once, by
        # its automation condition, when the backfill has ended, rather than in a run of its own here
        asset_selection=[key for key in asset_graph.materializable_asset_keys if asset_graph.get(key).is_partitioned],
        backfill_timestamp=time.time(),
        tags={**run_tags(tenant.slug, "backfill"), **(extra_tags or {})},
        dynamic_partitions_store=instance,
        all_partitions=False,
        title=f"{tenant.slug} {first}…{last}",
        description=f"History of tenant {tenant.name} from {first} to {last}",
        run_config=None,
    )
    instance.add_backfill(backfill)
    return backfill_id
