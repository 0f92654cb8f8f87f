"""What the Dagster UI shows per partition is what the tables hold: range runs (the CLI's,
backfills) give each (day, tenant) partition its own materialization figures and its own
check results, on a real PostgreSQL server, with real Dagster runs and the OpenAI client
talking real HTTP to the bundled server."""

from __future__ import annotations

import datetime as dt

import dagster as dg
import pytest
import sqlalchemy as sa

from allpfit_etl.analysis.openai_resource import LeadAnalysisOpenAI
from allpfit_etl.db import get_engine
from allpfit_etl.definitions import ASSETS
from fake_openai import FakeOpenAIServer, FakeServerConfig
from allpfit_etl.jobs import lead_analysis_job, monitoring_job
from allpfit_etl.load.checks import ASSET_CHECKS
from allpfit_etl.monitoring.assets import MONITORING_ASSETS
from allpfit_etl.partitions import partition_key, register_tenant_partitions, tenant_day_partitions
from allpfit_etl.resources import AnalyticsDatabase, ChatwootDatabase
from allpfit_etl.runner import run_partitions
from allpfit_etl.schema import apply_migrations
from allpfit_etl.tenants.registry import add_tenant, get_tenant
from allpfit_etl_tests.chatwoot_builder import ChatwootBuilder

DAYS = [dt.date(2025, 11, 3) + dt.timedelta(days=i) for i in range(4)]
UTC = dt.datetime  # Chatwoot timestamps are naive UTC
MESSAGES = (  # (contact's text, agent's answer): a visit, a lead, and no lead at all
    ("Quero agendar uma aula experimental amanhã às 19h", "Agendado! Te esperamos amanhã às 19h"),
    ("Oi, qual o valor da mensalidade?", "O plano mensal custa R$ 99,90"),
    ("ok, obrigado", "Por nada!"),
)
NAMES = ("Juliana Souza", None, "Pedro")
STATE = ("conversations", "leads", "visits", "high_probability", "named")


def seed(cw: ChatwootBuilder, account: int, per_day: dict[dt.date, int]) -> None:
    for day, count in per_day.items():
        for i in range(count):
            at = UTC(day.year, day.month, day.day, 13, 0) + dt.timedelta(minutes=7 * i)  # 10:00 local and after
            contact, agent = MESSAGES[(i + day.day) % len(MESSAGES)]
            conv = cw.conversation(account, at, NAMES[i % len(NAMES)])
            cw.message(account, conv, at, contact)
            cw.message(account, conv, at + dt.timedelta(minutes=1), agent, message_type=1, sender_type="User")


@pytest.fixture
def world(make_pg_database, monkeypatch):
    chatwoot_url, analytics_url = make_pg_database("chatwoot"), make_pg_database("analytics")
    cw = ChatwootBuilder(get_engine(chatwoot_url))
    gym, other = cw.account("AllpFit"), cw.account("CDT Mossoró")
    seed(cw, gym, {DAYS[0]: 5, DAYS[1]: 2, DAYS[2]: 7, DAYS[3]: 4})
    seed(cw, other, {DAYS[0]: 3, DAYS[1]: 6, DAYS[2]: 1})  # nothing on the last day
    analytics = get_engine(analytics_url)
    apply_migrations(analytics)
    tenants = [add_tenant(analytics, "allpfit", "AllpFit", gym), add_tenant(analytics, "cdt_mossoro", "CDT Mossoró", other)]
    monkeypatch.setenv("CHATWOOT_DATABASE_URL", chatwoot_url)
    monkeypatch.setenv("ANALYTICS_DATABASE_URL", analytics_url)
    with dg.instance_for_test() as instance:
        yield {"instance": instance, "analytics": analytics, "tenants": tenants, "cw": cw, "gym": gym,
               "chatwoot_url": chatwoot_url, "analytics_url": analytics_url}


def latest_metadata(instance: dg.DagsterInstance, asset: str, key: str) -> dict:
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset), asset_partitions=[key]), limit=1
    ).records
    assert records, f"no materialization of {asset} for {key}"
    return {k: v.value for k, v in records[0].asset_materialization.metadata.items()}


def table_figures(analytics: sa.Engine, tenant_id: int, day: dt.date) -> dict:
    params = {"t": tenant_id, "d": day}
    with analytics.connect() as conn:
        extracted = conn.execute(sa.text("SELECT COUNT(*) FROM chatwoot_conversations WHERE tenant_id = :t AND day = :d"), params).scalar_one()
        loaded = conn.execute(sa.text(
            "SELECT COUNT(*) AS conversations, SUM(CASE WHEN is_lead THEN 1 ELSE 0 END) AS leads,"
            " SUM(CASE WHEN visita_agendada THEN 1 ELSE 0 END) AS visits,"
            " SUM(CASE WHEN probabilidade_conversao >= 4 THEN 1 ELSE 0 END) AS high_probability,"
            " SUM(CASE WHEN nome_mapeado_bot <> '' THEN 1 ELSE 0 END) AS named"
            " FROM conversations_analytics WHERE tenant_id = :t AND day = :d"), params).one()
        kpis = conn.execute(sa.text(
            "SELECT conversations, leads, visits_scheduled AS visits, high_probability, named_contacts AS named"
            " FROM tenant_daily_kpis WHERE tenant_id = :t AND day = :d"), params).one()
    return {
        "extracted": extracted,
        "analytics": {k: int(v or 0) for k, v in loaded._mapping.items()},
        "kpis": {k: int(v) for k, v in kpis._mapping.items()},
    }


def materializations_per_partition(instance: dg.DagsterInstance, run_id: str, asset: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for event in instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION):
        materialization = event.dagster_event.event_specific_data.materialization
        if materialization.asset_key == dg.AssetKey(asset):
            counts[materialization.partition] = counts.get(materialization.partition, 0) + 1
    return counts


SAMPLED = [(DAYS[0], "allpfit"), (DAYS[2], "allpfit"), (DAYS[1], "cdt_mossoro")]


def test_a_cli_range_run_records_each_partitions_own_figures_and_a_rerun_zero_activity(world):
    instance, analytics = world["instance"], world["analytics"]
    first = run_partitions(world["tenants"], DAYS[0], DAYS[-1], instance=instance)
    assert not first.failed_runs and len(first.runs) == 2
    for run_id in first.runs:  # one materialization per partition, not one per partition per step
        assert set(materializations_per_partition(instance, run_id, "tenant_daily_kpis").values()) == {1}

    states = {}
    for day, slug in SAMPLED:
        key, tenant = partition_key(day, slug), get_tenant(analytics, slug)
        figures = table_figures(analytics, tenant.tenant_id, day)
        extracted = figures["extracted"]
        assert extracted > 0 and figures["analytics"]["conversations"] == extracted
        assert figures["analytics"]["leads"] > 0  # figures worth comparing
        assert latest_metadata(instance, "chatwoot_conversations", key)["extracted"] == extracted
        pending = latest_metadata(instance, "pending_conversations", key)
        assert (pending["pending"], pending["skipped"], pending["pending_new"]) == (extracted, 0, extracted)
        analyses = latest_metadata(instance, "conversation_analyses", key)
        assert (analyses["analyzed"], analyses["reused_answers"], analyses["failures"]) == (extracted, 0, 0)
        assert (analyses["openai.total_tokens"], analyses["cost_usd"], analyses["cost_brl"]) == (0, 0.0, 0.0)
        loaded = latest_metadata(instance, "conversations_analytics", key)
        assert {k: loaded[k] for k in STATE} == figures["analytics"] and loaded["loaded"] == extracted
        kpis = latest_metadata(instance, "tenant_daily_kpis", key)
        assert {k: kpis[k] for k in STATE} == figures["kpis"] == figures["analytics"]
        states[key] = figures

    second = run_partitions(world["tenants"], DAYS[0], DAYS[-1], instance=instance)
    assert not second.failed_runs
    for day, slug in SAMPLED:
        key, tenant = partition_key(day, slug), get_tenant(analytics, slug)
        figures = table_figures(analytics, tenant.tenant_id, day)
        assert figures == states[key]  # nothing changed
        extracted = figures["extracted"]
        assert latest_metadata(instance, "chatwoot_conversations", key)["extracted"] == extracted
        pending = latest_metadata(instance, "pending_conversations", key)
        assert (pending["pending"], pending["skipped"]) == (0, extracted)
        analyses = latest_metadata(instance, "conversation_analyses", key)
        assert (analyses["analyzed"], analyses["reused_answers"], analyses["failures"], analyses["cost_usd"]) == (0, 0, 0, 0.0)
        loaded = latest_metadata(instance, "conversations_analytics", key)
        assert {k: loaded[k] for k in STATE} == figures["analytics"] and loaded["loaded"] == 0
        kpis = latest_metadata(instance, "tenant_daily_kpis", key)
        assert {k: kpis[k] for k in STATE} == figures["kpis"]

    empty = partition_key(DAYS[-1], "cdt_mossoro")  # a day without conversations says so
    assert {k: latest_metadata(instance, "tenant_daily_kpis", empty)[k] for k in STATE} == dict.fromkeys(STATE, 0)


def range_tags(first: dt.date, last: dt.date, slug: str) -> dict:
    return {"dagster/asset_partition_range_start": partition_key(first, slug),
            "dagster/asset_partition_range_end": partition_key(last, slug), "allpfit/tenant": slug}


def test_an_openai_range_run_splits_tokens_and_cost_by_partition_and_they_add_up_to_the_ledger(world):
    instance, analytics = world["instance"], world["analytics"]
    tenant = world["tenants"][0]
    with analytics.begin() as conn:
        conn.execute(sa.text("UPDATE tenant_configs SET features = :f WHERE tenant_id = :t"),
                     {"f": '{"use_openai": true, "chunk_size": 4, "max_concurrency": 4}', "t": tenant.tenant_id})
    register_tenant_partitions(instance, [tenant])
    with FakeOpenAIServer(FakeServerConfig(p_500=0.1, fault_seed=3)) as server:
        defs = dg.Definitions(
            assets=ASSETS, asset_checks=ASSET_CHECKS, jobs=[lead_analysis_job],
            resources={
                "chatwoot": ChatwootDatabase(url=world["chatwoot_url"]),
                "analytics": AnalyticsDatabase(url=world["analytics_url"]),
                "openai": LeadAnalysisOpenAI(api_key="sk-test-partitions", base_url=server.base_url),
            },
        )
        result = defs.resolve_job_def("lead_analysis").execute_in_process(
            instance=instance, tags=range_tags(DAYS[0], DAYS[-1], "allpfit"))
        assert result.success
        stats = server.stats()

    with analytics.connect() as conn:
        ledger = conn.execute(sa.text("SELECT SUM(cost_usd), SUM(total_tokens), SUM(cost_brl) FROM llm_usage")).one()
        by_day = {
            str(day)[:10]: (float(usd), int(tokens))
            for day, usd, tokens in conn.execute(sa.text(
                "SELECT c.day, SUM(u.cost_usd), SUM(u.total_tokens) FROM llm_usage u JOIN chatwoot_conversations c"
                " ON c.tenant_id = u.tenant_id AND c.conversation_id = u.conversation_id GROUP BY c.day"))
        }
        analyzed = {str(day)[:10]: n for day, n in conn.execute(sa.text(
            "SELECT day, COUNT(*) FROM conversations_analytics WHERE analyzer = 'openai' GROUP BY day"))}
    per_partition = {day: latest_metadata(instance, "conversation_analyses", partition_key(day, "allpfit")) for day in DAYS}
    assert stats["prompt_tokens"] > 0 and len(by_day) == len(DAYS)
    assert sum(m["cost_usd"] for m in per_partition.values()) == pytest.approx(float(ledger[0]), rel=1e-9)
    assert sum(m["cost_brl"] for m in per_partition.values()) == pytest.approx(float(ledger[2]), rel=1e-9)
    assert sum(m["openai.total_tokens"] for m in per_partition.values()) == int(ledger[1])
    assert sum(m["openai.prompt_tokens"] + m["openai.completion_tokens"] for m in per_partition.values()) == (
        stats["prompt_tokens"] + stats["completion_tokens"])
    for day, meta in per_partition.items():
        usd, tokens = by_day[day.isoformat()]
        assert meta["cost_usd"] == pytest.approx(usd, rel=1e-9) and meta["openai.total_tokens"] == tokens
        assert meta["analyzed"] == analyzed[day.isoformat()]
        assert meta["model"] == "gpt-4o-mini"


def run_checks_over_range(world, first: dt.date, last: dt.date, slug: str):
    """The data checks alone over a range of days, as a backfill run of them would."""
    checks_job = dg.define_asset_job(
        "data_checks", selection=dg.AssetSelection.all_asset_checks(), partitions_def=tenant_day_partitions
    )
    defs = dg.Definitions(assets=ASSETS, asset_checks=ASSET_CHECKS, jobs=[checks_job], resources={
        "chatwoot": ChatwootDatabase(url=world["chatwoot_url"]), "analytics": AnalyticsDatabase(url=world["analytics_url"]),
        "openai": LeadAnalysisOpenAI(),
    })
    result = defs.resolve_job_def("data_checks").execute_in_process(instance=world["instance"], tags=range_tags(first, last, slug))
    assert result.success
    return result.get_asset_check_evaluations()


def test_checks_are_recorded_per_partition_and_one_tenants_bad_day_fails_only_that_partition(world):
    instance, analytics = world["instance"], world["analytics"]
    assert not run_partitions(world["tenants"], DAYS[0], DAYS[-1], instance=instance).failed_runs
    gym = get_tenant(analytics, "allpfit")
    with analytics.begin() as conn:  # one of allpfit's days loses a row and gets a NUL escape
        conn.execute(sa.text(
            "DELETE FROM conversations_analytics WHERE conversation_id ="
            " (SELECT MIN(conversation_id) FROM conversations_analytics WHERE tenant_id = :t AND day = :d)"),
            {"t": gym.tenant_id, "d": DAYS[2]})
        conn.execute(sa.text(
            "UPDATE conversations_analytics SET analise_ia = 'texto com \\u0000 escapado' WHERE conversation_id ="
            " (SELECT MIN(conversation_id) FROM conversations_analytics WHERE tenant_id = :t AND day = :d)"),
            {"t": gym.tenant_id, "d": DAYS[2]})

    bad = str(partition_key(DAYS[2], "allpfit"))
    evaluations = run_checks_over_range(world, DAYS[0], DAYS[-1], "allpfit")
    evaluations += run_checks_over_range(world, DAYS[0], DAYS[-1], "cdt_mossoro")
    results = {(e.check_name, e.partition): e.passed for e in evaluations}
    partitions = {str(partition_key(day, slug)) for day in DAYS for slug in ("allpfit", "cdt_mossoro")}
    checks = {spec.name for check in ASSET_CHECKS for spec in check.check_specs}
    assert set(results) == {(name, key) for name in checks for key in partitions}  # every check, every partition
    failed = {(name, key) for (name, key), passed in results.items() if not passed}
    assert failed == {("every_conversation_analyzed_or_failed", bad), ("no_nul_bytes_stored", bad)}
    missing = next(e for e in evaluations if e.partition == bad and e.check_name == "every_conversation_analyzed_or_failed")
    assert missing.metadata["missing"].value == 1

    # Each result points at its partition's latest materialization, so the UI shows it as current.
    infos = instance.event_log_storage.get_asset_check_partition_info(
        [dg.AssetCheckKey(dg.AssetKey("conversations_analytics"), name) for name in checks])
    current = {(i.check_key.name, i.partition_key): (i.latest_execution_status.value, i.is_current) for i in infos}
    assert current[("no_nul_bytes_stored", bad)] == ("FAILED", True)
    assert current[("no_nul_bytes_stored", str(partition_key(DAYS[1], "cdt_mossoro")))] == ("SUCCEEDED", True)
    assert all(is_current for _, is_current in current.values())


def agreement_table(analytics: sa.Engine, tenant_id: int) -> dict[str, int]:
    with analytics.connect() as conn:
        return {str(month)[:7]: compared for month, compared in conn.execute(sa.text(
            "SELECT month, compared FROM analyzer_agreement WHERE tenant_id = :t"), {"t": tenant_id})}


def latest_unpartitioned(instance: dg.DagsterInstance, asset: str) -> dict:
    (record,) = instance.fetch_materializations(dg.AssetKey(asset), limit=1).records
    return {k: v.value for k, v in record.asset_materialization.metadata.items()}


def test_the_agreement_is_refreshed_per_tenant_month_once_after_the_runs_and_only_where_answers_changed(world):
    """Regex vs OpenAI is compared per tenant-month, in the unpartitioned analyzer_agreement that the
    monitoring_refresh job rewrites after the tenants' runs: a range run across October and
    November gives each month its own figures; a later run over November recomputes November only.
    What the metadata shows is what the agreement table holds."""
    instance, analytics, tenant = world["instance"], world["analytics"], world["tenants"][0]
    october = [dt.date(2025, 10, 30), dt.date(2025, 10, 31)]
    seed(world["cw"], world["gym"], {october[0]: 1, october[1]: 2})  # 3 in October, 5 + 2 on the first November days
    with analytics.begin() as conn:
        conn.execute(sa.text("UPDATE tenant_configs SET features = :f WHERE tenant_id = :t"),
                     {"f": '{"use_openai": true, "chunk_size": 4}', "t": tenant.tenant_id})
    register_tenant_partitions(instance, world["tenants"])
    with FakeOpenAIServer(FakeServerConfig()) as server:
        defs = dg.Definitions(assets=ASSETS + MONITORING_ASSETS, jobs=[lead_analysis_job, monitoring_job], resources={
            "chatwoot": ChatwootDatabase(url=world["chatwoot_url"]), "analytics": AnalyticsDatabase(url=world["analytics_url"]),
            "openai": LeadAnalysisOpenAI(api_key="sk-test-months", base_url=server.base_url)})

        def run(first: dt.date, last: dt.date, slug: str) -> None:
            assert defs.resolve_job_def("lead_analysis").execute_in_process(
                instance=instance, tags=range_tags(first, last, slug)).success

        run(october[0], DAYS[1], "allpfit")
        run(DAYS[0], DAYS[1], "cdt_mossoro")  # a regex tenant: nothing to compare, months still listed
        assert defs.resolve_job_def("monitoring_refresh").execute_in_process(instance=instance).success

        compared = agreement_table(analytics, tenant.tenant_id)
        assert compared == {"2025-10": 3, "2025-11": 7}
        assert agreement_table(analytics, world["tenants"][1].tenant_id) == {"2025-11": 0}
        first = latest_unpartitioned(instance, "analyzer_agreement")
        assert first["months_refreshed"] == 3 and first["refreshed"] == "allpfit 2025-10, allpfit 2025-11, cdt_mossoro 2025-11"
        assert first["allpfit.month"] == "2025-11" and first["allpfit.compared"] == compared["2025-11"]
        assert "cdt_mossoro.compared" not in first  # nothing compared there
        with analytics.connect() as conn:
            stored = conn.execute(sa.text("SELECT COUNT(*) FROM analyzer_disagreements")).scalar_one()
        assert latest_unpartitioned(instance, "analyzer_disagreements")["dagster/row_count"] == stored

        # A later November day (7 conversations seeded, 1 more now): the next refresh recomputes November alone.
        seed(world["cw"], world["gym"], {DAYS[2]: 1})
        run(DAYS[2], DAYS[2], "allpfit")
        assert defs.resolve_job_def("monitoring_refresh").execute_in_process(instance=instance).success
    second = latest_unpartitioned(instance, "analyzer_agreement")
    assert second["refreshed"] == "allpfit 2025-11" and second["months_refreshed"] == 1
    assert agreement_table(analytics, tenant.tenant_id) == {"2025-10": 3, "2025-11": 7 + 8}
    assert second["allpfit.compared"] == 7 + 8
