"""What allpfit-etl relies on from Dagster's internals (allpfit_etl/dagster_compat.py), pinned:
a Dagster upgrade that changes one of them fails here."""

from __future__ import annotations

import dagster as dg

from allpfit_etl import dagster_compat
from allpfit_etl.definitions import defs
from allpfit_etl.partitions import PARTITION_TAG, PARTITION_TENANT_TAG, partition_key
from allpfit_etl.runner import recon_job, remote_origin

QUEUE = {"run_coordinator": {"module": "dagster.core.run_coordinator", "class": "QueuedRunCoordinator"}}
DIRECT = {"run_coordinator": {"module": "dagster.core.run_coordinator", "class": "DefaultRunCoordinator"}}


def test_the_job_pointer_and_origin_are_the_workspace_yaml_ones():
    recon = recon_job()
    assert recon.get_definition().name == "lead_analysis"
    origin = remote_origin()
    location = origin.repository_origin.code_location_origin
    assert (location.location_name, location.loadable_target_origin.module_name) == ("allpfit_etl", "allpfit_etl.definitions")
    assert origin.job_name == "lead_analysis"


def test_queues_runs_tells_the_queue_from_the_default_coordinator():
    with dg.instance_for_test(overrides=DIRECT) as plain, dg.instance_for_test(overrides=QUEUE) as queued:
        assert not dagster_compat.queues_runs(plain)
        assert dagster_compat.queues_runs(queued)
    assert not dagster_compat.queues_runs(dg.DagsterInstance.ephemeral())


def test_a_partition_runs_tags_an_engine_event_and_execute_run():
    job = recon_job().get_definition()
    key = str(partition_key("2025-11-10", "allpfit"))
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("tenant", ["allpfit"])
        tags = dagster_compat.partition_run_tags(job, key, {"allpfit/tenant": "allpfit"}, instance, {})
        assert tags[PARTITION_TAG] == key and tags[PARTITION_TENANT_TAG] == "allpfit"
        assert tags["allpfit/tenant"] == "allpfit"

        run = instance.create_run_for_job(job, tags=tags)
        instance.report_engine_event("marked", run, dagster_compat.engine_event_data({"pid": 7, "host": "h"}))
        (entry,) = [e for e in instance.all_logs(run.run_id, of_type=dg.DagsterEventType.ENGINE_EVENT)
                    if e.message == "marked"]
        metadata = entry.dagster_event.engine_event_data.metadata
        assert (metadata["pid"].value, metadata["host"].value) == (7, "h")


@dg.op
def refuses():
    raise dg.Failure(description="tenant partition 'x' has no row in tenant_configs", allow_retries=False)


@dg.job
def refusing():
    refuses()


def test_a_steps_failure_description_is_in_its_failure_event():
    """The CLI's one line per failed run is the step's own dg.Failure description."""
    with dg.instance_for_test() as instance:
        result = refusing.execute_in_process(instance=instance, raise_on_error=False)
        (failure,) = [e for e in instance.all_logs(result.run_id, of_type=dg.DagsterEventType.STEP_FAILURE)]
        data = failure.dagster_event.step_failure_data
        assert data.user_failure_data.description == "tenant partition 'x' has no row in tenant_configs"
        assert data.error.cause is None


def test_an_asset_backfill_is_submitted_as_the_ui_submits_it():
    keys = [str(partition_key(f"2025-11-1{i}", "allpfit")) for i in range(3)]
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("tenant", ["allpfit"])
        graph = defs.resolve_asset_graph()
        dagster_compat.submit_asset_backfill(instance, graph, "abcdefgh", keys, {"allpfit/tenant": "allpfit"},
                                             title="allpfit week", description="history")
        backfill = instance.get_backfill("abcdefgh")
        assert backfill.status.value == "REQUESTED" and backfill.title == "allpfit week"
        assert backfill.tags == {"allpfit/tenant": "allpfit"}
        assert set(backfill.asset_selection) == set(graph.materializable_asset_keys)
        subset = backfill.asset_backfill_data.target_subset
        assert set(subset.get_partitions_subset(dg.AssetKey("chatwoot_conversations")).get_partition_keys()) == set(keys)


def test_a_check_target_points_at_the_materialization_it_checked():
    @dg.asset
    def checked():
        return 1

    with dg.instance_for_test() as instance:
        dg.materialize([checked], instance=instance)
        (record,) = instance.fetch_materializations(checked.key, limit=1).records
        target = dagster_compat.check_target(record)
        assert (target.storage_id, target.run_id, target.timestamp) == (record.storage_id, record.run_id, record.timestamp)
        evaluation = dg.AssetCheckEvaluation(asset_key=checked.key, check_name="c", passed=True,
                                             target_materialization_data=target)
        assert evaluation.target_materialization_data == target
