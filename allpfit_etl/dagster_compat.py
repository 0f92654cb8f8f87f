"""Every use of Dagster's internals, in one place, each for a need its public API does not meet
(as of 1.13). ``allpfit_etl_tests/test_dagster_compat.py`` pins what each one is relied on for,
so a Dagster upgrade that changes one fails there, not somewhere in a run.

Imports are inside the functions: several of these modules cost tenths of a second to import,
and most CLI commands and sensor ticks need none of them.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence

import dagster as dg


def reconstructable_job(module: str, attribute: str, job_name: str):
    """A job as a code pointer (module and attribute), as the daemon's run workers load it."""
    from dagster._core.definitions.reconstruct import ReconstructableRepository

    return ReconstructableRepository.for_module(module, attribute).get_reconstructable_job(job_name)


def python_module_job_origin(module: str, location_name: str, repository_name: str, job_name: str):
    """The origin the webserver and the daemon give a job of workspace.yaml's ``python_module``
    entry: a run created with it can be re-executed from the UI."""
    from dagster._core.remote_origin import (
        ManagedGrpcPythonEnvCodeLocationOrigin, RemoteJobOrigin, RemoteRepositoryOrigin,
    )
    from dagster._core.types.loadable_target_origin import LoadableTargetOrigin

    location = ManagedGrpcPythonEnvCodeLocationOrigin(LoadableTargetOrigin(module_name=module), location_name=location_name)
    return RemoteJobOrigin(RemoteRepositoryOrigin(location, repository_name), job_name)


def queues_runs(instance: dg.DagsterInstance) -> bool:
    """The instance's run coordinator is the queue (dagster.yaml's QueuedRunCoordinator)."""
    from dagster._core.run_coordinator import QueuedRunCoordinator

    return not instance.is_ephemeral and isinstance(instance.run_coordinator, QueuedRunCoordinator)


def engine_event_data(metadata: Mapping[str, object]):
    """The payload of an engine event a process writes into a run's log."""
    from dagster._core.events import EngineEventData

    return EngineEventData(metadata=dict(metadata))


def execute_run(recon_job, run: dg.DagsterRun, instance: dg.DagsterInstance) -> None:
    """Execute a created run in this process, as a run worker would."""
    from dagster._core.execution.api import execute_run as dagster_execute_run

    dagster_execute_run(recon_job, run, instance)


def partition_run_tags(job: dg.JobDefinition, partition: str | None, tags: Mapping[str, str],
                       instance: dg.DagsterInstance, run_config: dict) -> dict[str, str]:
    """The tags Dagster gives a run of ``job`` for ``partition`` (its partition tags and the job's
    own), merged with ``tags``."""
    from dagster._core.execution.execute_in_process import merge_run_tags

    return merge_run_tags(job_def=job, partition_key=partition, tags=dict(tags), asset_selection=None,
                          instance=instance, run_config=run_config)


def submit_asset_backfill(instance: dg.DagsterInstance, asset_graph, backfill_id: str, partition_keys: Sequence[str],
                          tags: Mapping[str, str], title: str, description: str,
                          asset_keys: Sequence[dg.AssetKey] | None = None) -> None:
    """An asset backfill of ``asset_keys`` (default: every materializable asset) over ``partition_keys``,
    exactly as the UI's "Materialize → Backfill" submits it. Dagster has no public API for it (only
    the UI and GraphQL): dagster-io/dagster#13852 (open) asks for one; #26731 was closed unmerged."""
    from dagster._core.execution.backfill import PartitionBackfill

    instance.add_backfill(PartitionBackfill.from_asset_partitions(
        backfill_id=backfill_id, asset_graph=asset_graph, partition_names=list(partition_keys),
        asset_selection=list(asset_graph.materializable_asset_keys if asset_keys is None else asset_keys),
        backfill_timestamp=time.time(),
        tags=dict(tags), dynamic_partitions_store=instance, all_partitions=False, title=title,
        description=description, run_config=None,
    ))


def check_target(record: dg.EventLogRecord):
    """A check evaluation's pointer to the materialization it checked, as ``AssetCheckResult``
    builds it for single-partition runs: the UI then shows the result as current. The record type
    is not exported by ``dagster``."""
    from dagster._core.definitions.asset_checks.asset_check_evaluation import (
        AssetCheckEvaluationTargetMaterializationData,
    )

    return AssetCheckEvaluationTargetMaterializationData(
        storage_id=record.storage_id, run_id=record.run_id, timestamp=record.timestamp)
