"""Submit a tenant's history as an asset backfill, exactly as the UI's "Materialize → Backfill" does.

The daemon executes it with the assets' ``BackfillPolicy`` (multi-run, bounded partitions per
run), under the run queue's limits for backfill runs.
"""

from __future__ import annotations

import datetime as dt
import secrets
import string

import dagster as dg

from allpfit_etl import dagster_compat
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
    dagster_compat.submit_asset_backfill(
        instance, asset_graph, backfill_id, backfill_partition_keys(tenant.slug, first, last),
        tags={**run_tags(tenant.slug, "backfill"), **(extra_tags or {})},
        title=f"{tenant.slug} {first}…{last}", description=f"History of tenant {tenant.name} from {first} to {last}",
        # The global monitoring (jobs.GLOBAL_MONITORING, kept up to date by an automation condition)
        # follows once the backfill's runs have updated what it reads: inside the backfill it would
        # take as many runs as the daemon's timing makes waves of its parents.
        asset_keys=[key for key in asset_graph.materializable_asset_keys if asset_graph.get(key).automation_condition is None],
    )
    return backfill_id
