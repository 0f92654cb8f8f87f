"""Submit a tenant's history as an asset backfill, exactly as the UI's "Materialize → Backfill" does.

The daemon executes it with the assets' ``BackfillPolicy`` (multi-run, bounded partitions per
run), under the run queue's limits for backfill runs.
"""

from __future__ import annotations

import datetime as dt
import time

import dagster as dg
from dagster._core.execution.backfill import PartitionBackfill
from dagster._core.utils import make_new_backfill_id

from allpfit_etl.partitions import partition_key
from allpfit_etl.runner import register_tenant_partitions
from allpfit_etl.tenants.registry import Tenant


def backfill_partition_keys(tenant_slug: str, first: dt.date, last: dt.date) -> list[str]:
    days = (last - first).days + 1
    return [str(partition_key(first + dt.timedelta(days=i), tenant_slug)) for i in range(days)]


def submit_tenant_backfill(instance: dg.DagsterInstance, tenant: Tenant, first: dt.date, last: dt.date,
                           extra_tags: dict | None = None) -> str:
    from allpfit_etl.definitions import defs

    register_tenant_partitions(instance, [tenant])
    asset_graph = defs.resolve_asset_graph()
    backfill_id = make_new_backfill_id()
    backfill = PartitionBackfill.from_asset_partitions(
        backfill_id=backfill_id,
        asset_graph=asset_graph,
        partition_names=backfill_partition_keys(tenant.slug, first, last),
        asset_selection=list(asset_graph.materializable_asset_keys),
        backfill_timestamp=time.time(),
        tags={"allpfit/tenant": tenant.slug, "allpfit/trigger": "backfill", **(extra_tags or {})},
        dynamic_partitions_store=instance,
        all_partitions=False,
        title=f"{tenant.slug} {first}…{last}",
        description=f"History of tenant {tenant.name} from {first} to {last}",
        run_config=None,
    )
    instance.add_backfill(backfill)
    return backfill_id
