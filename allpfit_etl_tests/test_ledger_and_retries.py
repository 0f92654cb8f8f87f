"""Every OpenAI attempt reaches the llm_usage ledger with its status, and answers already stored
are reused by a Dagster step retry and by a re-execution from failure: real Dagster runs on a
persistent instance, real PostgreSQL, the bundled server over real HTTP."""

from __future__ import annotations


import dagster as dg
import sqlalchemy as sa

from allpfit_etl.analysis.openai_resource import LeadAnalysisOpenAI
from allpfit_etl.definitions import ASSETS
from allpfit_etl.jobs import LEAD_ANALYSIS_JOB_NAME, lead_analysis_job
from allpfit_etl.load.checks import ASSET_CHECKS
from allpfit_etl.resources import AnalyticsDatabase, ChatwootDatabase
from allpfit_etl.tenants.registry import TenantFeatures
from allpfit_etl_tests.test_openai_pipeline import API_KEY, KEY, materialize, world_of


def ledger_by_status(world) -> dict[str, int]:
    with world.analytics.connect() as conn:
        return dict(conn.execute(sa.text("SELECT status, COUNT(*) FROM llm_usage GROUP BY status")).all())


def test_every_attempt_is_in_the_ledger_with_its_status(make_pg_database, server, instance):
    server.configure(p_429=0.12, p_500=0.12, p_hang=0.08, hang_s=8.0, p_truncated=0.12, fault_seed=5)
    world = world_of(make_pg_database, 40, TenantFeatures(use_openai=True, chunk_size=40, max_concurrency=20))
    meta, _ = materialize(world, server, instance, timeout_s=3.0)  # generous: only the hangs may time out
    stats = server.stats()

    assert ledger_by_status(world) == {
        "ok": stats["billed_calls"] - stats["faulty_billed_calls"],
        "invalid_answer": stats["faulty_billed_calls"],  # truncated JSON, billed but unusable
        "rate_limited": stats["rate_limited"],
        "server_error": stats["errors_500"],
        "timeout": stats["hangs"],
    }
    assert min(stats[k] for k in ("faulty_billed_calls", "rate_limited", "errors_500", "hangs")) > 0  # all four happened
    assert world.scalar("SELECT COUNT(*) FROM llm_usage") == stats["requests"]
    assert meta["conversation_analyses"]["retries"] == stats["requests"] - 40

    with world.analytics.connect() as conn:
        attempts = conn.execute(sa.text(
            "SELECT conversation_id, attempt, status, error_kind FROM llm_usage ORDER BY conversation_id, attempt")).all()
        failures = {r.conversation_id: r for r in conn.execute(sa.text(
            "SELECT conversation_id, attempts, error_kind FROM analysis_failures"))}
    by_conversation: dict[int, list] = {}
    for row in attempts:
        by_conversation.setdefault(row.conversation_id, []).append(row)
    assert len(by_conversation) == 40
    for conversation_id, rows in by_conversation.items():
        assert [r.attempt for r in rows] == list(range(1, len(rows) + 1))  # numbered, none missing
        assert all(r.status != "ok" and r.error_kind for r in rows[:-1])
        if conversation_id in failures:  # gave up: every attempt is there, the last one names the failure
            assert len(rows) == failures[conversation_id].attempts and rows[-1].status == failures[conversation_id].error_kind
        else:
            assert rows[-1].status == "ok" and rows[-1].error_kind is None
    assert len(failures) == meta["conversation_analyses"]["failures"]


# --- step retry and re-execution from failure ----------------------------------------------------

CONVERSATIONS = 6


def lead_analysis_from_env() -> dg.JobDefinition:
    """The production job with its resources read from the environment, for ``dg.execute_job``."""
    return dg.Definitions(
        assets=ASSETS,
        asset_checks=ASSET_CHECKS,
        jobs=[lead_analysis_job],
        resources={
            "chatwoot": ChatwootDatabase(url=dg.EnvVar("CHATWOOT_DATABASE_URL")),
            "analytics": AnalyticsDatabase(url=dg.EnvVar("ANALYTICS_DATABASE_URL")),
            "openai": LeadAnalysisOpenAI(api_key=dg.EnvVar("OPENAI_API_KEY"), base_url=dg.EnvVar("OPENAI_BASE_URL")),
        },
    ).resolve_job_def(LEAD_ANALYSIS_JOB_NAME)


def failing_world(make_pg_database, server, monkeypatch):
    """One chunk of six conversations, one request at a time; the analytics database refuses the
    sixth answer once (a dropped connection, a failover), which fails the chunk step after five
    answers were stored."""
    world = world_of(make_pg_database, CONVERSATIONS,
                     TenantFeatures(use_openai=True, chunk_size=CONVERSATIONS, max_concurrency=1))
    with world.analytics.begin() as conn:
        conn.execute(sa.text("CREATE SEQUENCE answer_writes"))
        conn.execute(sa.text(f"""
            CREATE FUNCTION refuse_one_answer() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                IF nextval('answer_writes') = {CONVERSATIONS} THEN  -- sequences ignore rollbacks: once only
                    RAISE EXCEPTION 'connection to the analytics database lost';
                END IF;
                RETURN NEW;
            END $$"""))
        conn.execute(sa.text("CREATE TRIGGER refuse_one_answer BEFORE INSERT ON conversation_analyses"
                             " FOR EACH ROW EXECUTE FUNCTION refuse_one_answer()"))
    for name, value in (("CHATWOOT_DATABASE_URL", world.chatwoot_url), ("ANALYTICS_DATABASE_URL", world.analytics_url),
                        ("OPENAI_API_KEY", API_KEY), ("OPENAI_BASE_URL", server.base_url)):
        monkeypatch.setenv(name, value)
    return world


def in_process(retries: bool) -> dict:
    return {"execution": {"config": {"in_process": {"retries": {"enabled" if retries else "disabled": {}}}}}}


def analyses_metadata(instance, run_id: str) -> dict:
    (record,) = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey("conversation_analyses"), asset_partitions=[KEY]), limit=1
    ).records
    assert record.run_id == run_id
    return {k: v.value for k, v in record.asset_materialization.metadata.items()}


def assert_paid_once_except_the_lost_answer(world, server):
    # six answers paid, plus the one whose write was refused; never the five already stored
    assert server.stats()["billed_calls"] == CONVERSATIONS + 1
    assert world.scalar("SELECT COUNT(*) FROM conversation_analyses WHERE analyzer = 'openai'") == CONVERSATIONS
    assert world.scalar("SELECT COUNT(*) FROM conversations_analytics WHERE analyzer = 'openai'") == CONVERSATIONS
    assert world.scalar("SELECT COUNT(*) FROM llm_usage WHERE status = 'ok'") == CONVERSATIONS


def test_a_step_retry_reuses_the_answers_stored_before_the_failure(make_pg_database, server, instance, monkeypatch):
    world = failing_world(make_pg_database, server, monkeypatch)
    result = dg.execute_job(dg.reconstructable(lead_analysis_from_env), instance=instance,
                            run_config=in_process(retries=True), tags={"dagster/partition": KEY})
    assert result.success
    retried = [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_UP_FOR_RETRY]
    assert [e.step_key.split("[")[0] for e in retried] == ["conversation_analyses.analyze_chunk"]

    assert_paid_once_except_the_lost_answer(world, server)
    meta = analyses_metadata(instance, result.run_id)
    assert (meta["reused_answers"], meta["analyzed"]) == (CONVERSATIONS - 1, 1)


def test_a_reexecution_from_failure_reuses_the_answers_of_the_failed_run(make_pg_database, server, instance, monkeypatch):
    world = failing_world(make_pg_database, server, monkeypatch)
    job = dg.reconstructable(lead_analysis_from_env)
    failed = dg.execute_job(job, instance=instance, run_config=in_process(retries=False),
                            tags={"dagster/partition": KEY}, raise_on_error=False)
    assert not failed.success
    assert world.scalar("SELECT COUNT(*) FROM conversation_analyses WHERE analyzer = 'openai'") == CONVERSATIONS - 1
    assert server.stats()["billed_calls"] == CONVERSATIONS

    again = dg.execute_job(  # execute_job does not copy the parent's tags (the UI does): the partition goes in again
        job, instance=instance, run_config=in_process(retries=False), tags={"dagster/partition": KEY},
        reexecution_options=dg.ReexecutionOptions.from_failure(failed.run_id, instance),
    )
    assert again.success
    assert instance.get_run_by_id(again.run_id).parent_run_id == failed.run_id
    executed = {e.step_key.split("[")[0] for e in again.all_events if e.event_type == dg.DagsterEventType.STEP_START}
    assert "chatwoot_conversations" not in executed and "conversation_analyses.analyze_chunk" in executed

    assert_paid_once_except_the_lost_answer(world, server)
    meta = analyses_metadata(instance, again.run_id)
    assert (meta["reused_answers"], meta["analyzed"]) == (CONVERSATIONS - 1, 1)
