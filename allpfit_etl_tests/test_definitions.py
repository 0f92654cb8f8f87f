"""The code location loads with no database: the first test to fail when someone breaks it."""

import importlib

import dagster as dg
import pytest

ASSETS = ["chatwoot_conversations", "pending_conversations", "conversation_analyses", "conversations_analytics",
          "tenant_daily_kpis"]
CHECKS = {"no_nul_bytes_stored", "every_conversation_analyzed_or_failed", "probabilidade_conversao_in_range",
          "spend_within_monthly_budget"}
# monitoring asset → the asset it runs after
MONITORING = {"analyzer_agreement": "conversation_analyses", "analyzer_disagreements": "conversation_analyses",
              "analyzer_daily_kpis": "conversation_analyses", "llm_spend_daily": "conversation_analyses",
              "lead_report": "tenant_daily_kpis", "lead_funnel": "conversations_analytics",
              "analyzer_quality": "conversation_analyses", "analyzer_calibration": "conversation_analyses"}
# at their real grain (per tenant and month, or one file): unpartitioned, refreshed by their own job
UNPARTITIONED = {"analyzer_agreement", "analyzer_disagreements", "lead_report", "lead_funnel", "analyzer_quality",
                 "analyzer_calibration"}
SENSORS = {"tenant_partitions_sensor", "chatwoot_activity_sensor", "run_failure_alert_sensor", "openai_batch_sensor",
           "monitoring_refresh_sensor"}
UNREACHABLE = "postgresql://nobody@127.0.0.1:1/nothing"


@pytest.fixture
def defs(monkeypatch):
    # Any connection attempt while loading would fail on these URLs.
    monkeypatch.setenv("CHATWOOT_DATABASE_URL", UNREACHABLE)
    monkeypatch.setenv("ANALYTICS_DATABASE_URL", UNREACHABLE)
    import allpfit_etl.definitions as definitions

    yield importlib.reload(definitions).defs
    monkeypatch.undo()
    importlib.reload(definitions)  # later tests get resources built from their own environment


def test_definitions_load_and_validate(defs):
    dg.Definitions.validate_loadable(defs)


def test_the_two_jobs_cover_the_whole_asset_graph_at_its_grain(defs):
    from allpfit_etl.jobs import GLOBAL_MONITORING, LEAD_ANALYSIS_JOB_NAME, MONITORING_JOB_NAME
    from allpfit_etl.partitions import tenant_day_partitions

    job = defs.resolve_job_def(LEAD_ANALYSIS_JOB_NAME)
    assert job.partitions_def == tenant_day_partitions
    partitioned = (set(ASSETS) | set(MONITORING)) - UNPARTITIONED
    assert {k.to_user_string() for k in job.asset_layer.executable_asset_keys} == partitioned
    monitoring = defs.resolve_job_def(MONITORING_JOB_NAME)
    assert monitoring.partitions_def is None and set(GLOBAL_MONITORING) == UNPARTITIONED
    assert {k.to_user_string() for k in monitoring.asset_layer.executable_asset_keys} == UNPARTITIONED
    sensor = defs.resolve_sensor_def("monitoring_refresh_sensor")
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING


def test_asset_keys_and_their_order(defs):
    graph = defs.resolve_asset_graph()
    assert {k.to_user_string() for k in graph.get_all_asset_keys()} == set(ASSETS) | set(MONITORING)
    for upstream, downstream in [*zip(ASSETS, ASSETS[1:]), *((up, down) for down, up in MONITORING.items())]:
        parents = {k.to_user_string() for k in graph.get(dg.AssetKey(downstream)).parent_keys}
        assert upstream in parents, f"{downstream} should depend on {upstream}"


def test_global_monitoring_assets_are_unpartitioned_and_automated(defs):
    graph = defs.resolve_asset_graph()
    for name in UNPARTITIONED:
        node = graph.get(dg.AssetKey(name))
        assert node.partitions_def is None and node.automation_condition is not None, name
        assert node.group_name == "monitoring"


def test_asset_checks(defs):
    keys = defs.resolve_asset_graph().asset_check_keys
    assert {k.name for k in keys} == CHECKS
    assert {k.asset_key.to_user_string() for k in keys} == {"conversations_analytics"}


def test_sensors_and_schedule(defs):
    assert {s.name for s in defs.sensors} == SENSORS
    for name in SENSORS:
        assert defs.resolve_sensor_def(name).name == name
    schedule = defs.resolve_schedule_def("every_two_hours_schedule")
    assert schedule.cron_schedule == "0 */2 * * *"
    assert schedule.job_name == "lead_analysis"
    assert defs.resolve_sensor_def("chatwoot_activity_sensor").job_name == "lead_analysis"
    assert defs.resolve_sensor_def("openai_batch_sensor").job_name == "lead_analysis"


def test_resources_under_their_keys(defs):
    assert set(defs.resources) == {"chatwoot", "analytics", "openai", "alert_webhook"}


@pytest.mark.parametrize(
    "execution, expected",
    [
        ({}, {"multiprocess": {"start_method": {"forkserver": {"preload_modules": [
            "allpfit_etl.definitions", "allpfit_etl.monitoring.store", "openai"]}}}}),
        ({"multiprocess": {"max_concurrent": 1}},
         {"multiprocess": {"max_concurrent": 1, "start_method": {"forkserver": {"preload_modules": [
            "allpfit_etl.definitions", "allpfit_etl.monitoring.store", "openai"]}}}}),
        ({"multiprocess": {"start_method": {"spawn": {}}}}, {"multiprocess": {"start_method": {"spawn": {}}}}),
        ({"in_process": {}}, {"in_process": {}}),
    ],
)
def test_steps_fork_from_a_preloaded_server_unless_run_config_chooses_otherwise(defs, execution, expected):
    from allpfit_etl.jobs import LEAD_ANALYSIS_JOB_NAME

    job = defs.resolve_job_def(LEAD_ANALYSIS_JOB_NAME)
    validated = dg.validate_run_config(job, {"execution": {"config": execution}} if execution else {})
    (resolved,) = validated["execution"].values()  # under the executor's name
    (mode,) = expected
    assert set(resolved) == {mode}
    assert {k: v for k, v in resolved[mode].items() if k in expected[mode]} == expected[mode]


def test_loading_the_code_location_leaves_pandas_to_the_monitoring_steps():
    """Every CLI command and the daemon's sensors load the code location; only the monitoring
    steps need pandas (the daemon's step server preloads it, see FORKSERVER)."""
    import subprocess
    import sys

    code = "import sys, allpfit_etl.definitions; print(sorted({'pandas', 'numpy'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-W", "ignore", "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_loading_the_code_location_leaves_the_openai_sdk_to_the_processes_that_send_requests():
    """A third of a definitions load was the SDK (bench/bench_definitions_load.py): the CLI's
    commands, code servers, sensors and regex runs no longer pay it."""
    import subprocess
    import sys

    code = ("import sys, allpfit_etl.definitions, allpfit_etl.cli.main, allpfit_etl.runner; "
            "print(sorted({'openai', 'aiohttp'} & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-W", "ignore", "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_the_sensors_live_selection_is_every_asset_but_the_monitoring_and_every_check(defs):
    from allpfit_etl.automation.sensors import LIVE_ASSETS, LIVE_CHECKS

    graph = defs.resolve_asset_graph()
    groups = {key.to_user_string(): graph.get(key).group_name for key in graph.get_all_asset_keys()}
    assert {k.to_user_string() for k in LIVE_ASSETS} == {k for k, g in groups.items() if g != "monitoring"} == set(ASSETS)
    assert set(LIVE_CHECKS) == set(graph.asset_check_keys)
