"""The same 1,000 conversations analysed in real time and through the Batch API (a backfill run,
the batch sensor, the follow-up run), against the bundled server; prints both costs."""

from __future__ import annotations

import time


import dagster as dg
import sqlalchemy as sa
from allpfit_devtools.bench import seed_in_subprocess, throwaway_databases

from allpfit_etl.analysis.openai_resource import LeadAnalysisOpenAI
from allpfit_etl.automation.alerts import AlertWebhook
from allpfit_etl.automation.batch_sensor import openai_batch_sensor
from allpfit_etl.db import get_engine
from allpfit_etl.definitions import ASSETS
from fake_openai import FakeOpenAIServer
from allpfit_etl.resources import AnalyticsDatabase, ChatwootDatabase
from allpfit_etl.schema import apply_migrations
from allpfit_etl.tenants.registry import TenantFeatures, add_tenant

N, DAY = 1000, "2025-11-10"
KEY = f"{DAY}|gym"


def run(mode: str, chatwoot_url: str, analytics_url: str, server) -> tuple[float, int, float]:
    analytics = get_engine(analytics_url)
    apply_migrations(analytics)
    add_tenant(analytics, "gym", "Gym", 1, TenantFeatures(use_openai=True, chunk_size=250))
    resources = {"chatwoot": ChatwootDatabase(url=chatwoot_url), "analytics": AnalyticsDatabase(url=analytics_url),
                 "openai": LeadAnalysisOpenAI(api_key="sk-bench", base_url=server.base_url)}
    started = time.perf_counter()
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("tenant", ["gym"])
        tags = {"dagster/backfill": "bench"} if mode == "batch" else {}
        dg.materialize(ASSETS, partition_key=KEY, instance=instance, resources=resources, tags=tags)
        if mode == "batch":
            with dg.build_sensor_context(instance=instance, resources={**resources, "alert_webhook": AlertWebhook()}) as ctx:
                openai_batch_sensor(ctx)
            dg.materialize(ASSETS, partition_key=KEY, instance=instance, resources=resources)
    wall = time.perf_counter() - started
    with analytics.connect() as conn:
        usd, loaded = conn.execute(sa.text(
            "SELECT (SELECT SUM(cost_usd) FROM llm_usage), (SELECT COUNT(*) FROM conversations_analytics)")).one()
    return wall, int(loaded), float(usd)


def main() -> None:
    with throwaway_databases("chatwoot", "realtime", "batch") as (chatwoot_url, realtime_url, batch_url):
        seed_in_subprocess(chatwoot_url, account_id=1, day=DAY, conversations=N, messages=6)
        with FakeOpenAIServer() as server:
            real = run("realtime", chatwoot_url, realtime_url, server)
            batch = run("batch", chatwoot_url, batch_url, server)
        print(f"real time : {real[1]} loaded, US$ {real[2]:.4f}, {real[0]:.1f} s")
        print(f"Batch API : {batch[1]} loaded, US$ {batch[2]:.4f}, {batch[0]:.1f} s (server answers at once)")
        print(f"batch / real time = {batch[2] / real[2]:.3f}")


if __name__ == "__main__":
    main()
