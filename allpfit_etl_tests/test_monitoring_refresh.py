"""The global monitoring (agreement, funnel, quality, report) is refreshed once after updates, at most
once per cron tick: evaluated by Dagster's own automation-condition evaluator on the code location's
definitions, as the daemon's monitoring_refresh_sensor evaluates it."""

from __future__ import annotations

import datetime as dt

import dagster as dg

from allpfit_etl.jobs import GLOBAL_MONITORING
from allpfit_etl.partitions import TENANT_PARTITIONS_NAME

UTC = dt.timezone.utc


def test_refreshed_once_per_tick_after_an_update_and_not_without_one():
    from allpfit_etl.definitions import defs

    selection = dg.AssetSelection.assets(*GLOBAL_MONITORING)
    global_keys = [dg.AssetKey(name) for name in GLOBAL_MONITORING]
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(TENANT_PARTITIONS_NAME, ["allpfit"])

        def evaluate(at: dt.datetime, cursor):
            result = dg.evaluate_automation_conditions(defs=defs, instance=instance, asset_selection=selection,
                                                       evaluation_time=at, cursor=cursor)
            requested = {key.to_user_string() for key in global_keys if result.get_num_requested(key)}
            return requested, result.cursor

        start = dt.datetime(2026, 3, 2, 12, 1, tzinfo=UTC)
        requested, cursor = evaluate(start, None)
        assert requested == set()

        for asset in ("conversation_analyses", "conversations_analytics"):  # what a tenant's run updates
            instance.report_runless_asset_event(dg.AssetMaterialization(asset, partition="2025-11-10|allpfit"))
        requested, cursor = evaluate(start + dt.timedelta(minutes=4), cursor)
        assert requested == set()  # updated, but no tick since: the refresh waits for 12:10
        requested, cursor = evaluate(start + dt.timedelta(minutes=10), cursor)
        assert requested == set(GLOBAL_MONITORING)  # one refresh of everything global
        requested, cursor = evaluate(start + dt.timedelta(minutes=11), cursor)
        assert requested == set()  # requested once
        requested, cursor = evaluate(start + dt.timedelta(minutes=25), cursor)
        assert requested == set()  # a tick passed, but nothing was updated since
