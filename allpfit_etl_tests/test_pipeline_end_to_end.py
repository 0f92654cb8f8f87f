"""Extract → pending → analysis → load through real Dagster materializations, on a real
PostgreSQL server and on SQLite (the same code path)."""

from __future__ import annotations

import datetime as dt

import dagster as dg
import pytest
import sqlalchemy as sa

from allpfit_etl.analysis.openai_resource import LeadAnalysisOpenAI
from allpfit_etl.db import get_engine
from allpfit_etl.definitions import ASSETS
from allpfit_etl.load.checks import ASSET_CHECKS
from allpfit_etl.partitions import TENANT_PARTITIONS_NAME, tenant_day_partitions
from allpfit_etl.resources import AnalyticsDatabase, ChatwootDatabase
from allpfit_etl.schema import apply_migrations
from allpfit_etl.tenants.registry import add_tenant
from allpfit_etl_tests.chatwoot_builder import ChatwootBuilder

DAY = "2025-11-10"
UTC = dt.datetime  # Chatwoot timestamps are naive UTC


@pytest.fixture(params=["postgresql", "sqlite"])
def databases(request, make_pg_database, tmp_path):
    if request.param == "postgresql":
        return make_pg_database("chatwoot"), make_pg_database("analytics")
    return f"sqlite:///{tmp_path / 'chatwoot.db'}", f"sqlite:///{tmp_path / 'analytics.db'}"


@pytest.fixture
def world(databases):
    chatwoot_url, analytics_url = databases
    source = get_engine(chatwoot_url)
    cw = ChatwootBuilder(source)
    dialect = source.dialect.name
    gym, other = cw.account("AllpFit"), cw.account("Outra Academia")
    t = UTC(2025, 11, 10, 13, 0)  # 10:00 in São Paulo

    lead = cw.conversation(gym, t, "Juliana Souza")
    cw.message(gym, lead, t, "Oi, qual o valor da mensalidade? 💪🏽")
    cw.message(gym, lead, t + dt.timedelta(minutes=1), "Olá! Sou a assistente virtual da AllpFit 🤖", message_type=1, sender_type="AgentBot")
    cw.message(gym, lead, t + dt.timedelta(minutes=2), "cliente antiga, segredo interno", message_type=1, sender_type="User", private=True)
    cw.message(gym, lead, t + dt.timedelta(minutes=3), "Conversa atribuída a Ana", message_type=2, sender_type=None)
    cw.message(gym, lead, t + dt.timedelta(minutes=4), "O plano mensal custa R$ 99,90", message_type=1, sender_type="User")
    cw.message(gym, lead, t + dt.timedelta(minutes=5), "Quero agendar uma aula experimental amanhã às 18h")
    cw.message(gym, lead, t + dt.timedelta(minutes=6), "Agendado! Te esperamos amanhã às 18h", message_type=1, sender_type="User")
    cw.message(gym, lead, t + dt.timedelta(minutes=7), None, attachment_type=0)
    if dialect == "sqlite":
        cw.message(gym, lead, t + dt.timedelta(minutes=8), "obrigada\x00 até amanhã")
    else:  # a PostgreSQL text column cannot hold NUL: it arrives escaped in the json column
        cw.message(gym, lead, t + dt.timedelta(minutes=8), None,
                   content_attributes={"email": {"text_content": {"full": "obrigada\u0000 até amanhã"}}})

    late = cw.conversation(gym, UTC(2025, 11, 11, 2, 50), None)  # 23:50 local on the 10th
    cw.message(gym, late, UTC(2025, 11, 11, 2, 50), "boa noite, vocês abrem domingo?")

    next_day = cw.conversation(gym, UTC(2025, 11, 11, 3, 10), "Pedro")  # 00:10 local on the 11th
    cw.message(gym, next_day, UTC(2025, 11, 11, 3, 10), "oi")

    long = cw.conversation(gym, t + dt.timedelta(hours=2), "Carlos Lima")
    for i in range(210):
        cw.message(gym, long, t + dt.timedelta(hours=2, seconds=30 * i), f"mensagem {i} 🏋️‍♀️",
                   message_type=i % 2, sender_type="Contact" if i % 2 == 0 else "User")

    foreign = cw.conversation(other, t, "Cliente de outra conta")
    cw.message(other, foreign, t, "qual o valor da matrícula?")

    analytics = get_engine(analytics_url)
    apply_migrations(analytics)
    add_tenant(analytics, "allpfit", "AllpFit", gym)
    add_tenant(analytics, "outra", "Outra Academia", other)
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(TENANT_PARTITIONS_NAME, ["allpfit", "outra"])
        yield {
            "instance": instance, "source": source, "cw": cw, "analytics": analytics, "gym": gym,
            "ids": {"lead": lead, "late": late, "next_day": next_day, "long": long, "foreign": foreign},
            "resources": {
                "chatwoot": ChatwootDatabase(url=databases[0]),
                "analytics": AnalyticsDatabase(url=databases[1]),
                "openai": LeadAnalysisOpenAI(),
            },
        }


def materialize(world, key=f"{DAY}|allpfit") -> dict[str, dict]:
    result = dg.materialize(ASSETS, partition_key=key, resources=world["resources"], instance=world["instance"])
    assert result.success
    return {
        e.asset_key.to_user_string(): {k: v.value for k, v in e.materialization.metadata.items()}
        for e in result.get_asset_materialization_events()
    }


def analytics_rows(world) -> dict[int, dict]:
    with world["analytics"].connect() as conn:
        rows = conn.execute(sa.text("SELECT * FROM conversations_analytics ORDER BY conversation_id")).mappings().all()
    return {r["conversation_id"]: dict(r) for r in rows}


def test_materializing_a_partition_fills_conversations_analytics(world):
    meta = materialize(world)
    ids = world["ids"]
    rows = analytics_rows(world)

    assert set(rows) == {ids["lead"], ids["late"], ids["long"]}  # day boundary in local time, own account only
    assert meta["chatwoot_conversations"]["extracted"] == 3
    assert meta["pending_conversations"]["pending"] == 3
    assert meta["conversation_analyses"]["analyzed"] == 3
    assert meta["conversations_analytics"]["loaded"] == 3
    assert meta["tenant_daily_kpis"]["conversations"] == 3

    lead = rows[ids["lead"]]
    transcript = lead["message_compiled"]
    assert transcript.splitlines()[0] == "[10/11 10:00] Contato: Oi, qual o valor da mensalidade? 💪🏽"
    assert "Bot: Olá! Sou a assistente virtual" in transcript
    assert "segredo interno" not in transcript and "atribuída" not in transcript
    assert "Contato: [imagem]" in transcript
    assert "Contato: obrigada até amanhã" in transcript
    assert lead["contact_messages_count"] == 4
    assert lead["analyzer"] == "regex" and lead["is_lead"] and lead["visita_agendada"]
    assert 0 <= lead["probabilidade_conversao"] <= 5
    assert rows[ids["late"]]["contact_name"] is None
    assert len(rows[ids["long"]]["message_compiled"].splitlines()) == 210

    for row in rows.values():
        for value in row.values():
            assert not (isinstance(value, str) and "\x00" in value)

    # the contact asks the price (lead), asks the opening hours (lead), or only chats (no lead)
    assert {cid for cid, row in rows.items() if row["is_lead"]} == {ids["lead"], ids["late"]}
    assert {cid for cid, row in rows.items() if row["visita_agendada"]} == {ids["lead"]}
    with world["analytics"].connect() as conn:
        kpi = conn.execute(sa.text("SELECT conversations, leads, visits_scheduled FROM tenant_daily_kpis")).one()
        pending_left = conn.execute(sa.text("SELECT COUNT(*) FROM pending_conversations")).scalar()
    assert (kpi.conversations, kpi.leads, kpi.visits_scheduled) == (3, 2, 1)
    assert pending_left == 0


def test_other_tenants_partition_sees_only_its_account(world):
    materialize(world, f"{DAY}|outra")
    assert set(analytics_rows(world)) == {world["ids"]["foreign"]}


def test_second_run_changes_nothing_and_a_new_message_makes_one_conversation_pending(world):
    materialize(world)
    before = analytics_rows(world)

    meta = materialize(world)
    assert meta["pending_conversations"]["pending"] == 0
    assert meta["pending_conversations"]["skipped"] == 3
    assert meta["conversation_analyses"]["analyzed"] == 0
    assert analytics_rows(world) == before

    ids = world["ids"]
    world["cw"].message(world["gym"], ids["late"], UTC(2025, 11, 11, 2, 55), "meu nome é Ana Beatriz")
    meta = materialize(world)
    assert meta["pending_conversations"]["pending"] == 1
    assert meta["pending_conversations"]["pending_content_changed"] == 1
    after = analytics_rows(world)
    changed = {cid for cid in after if after[cid] != before[cid]}
    assert changed == {ids["late"]}
    assert after[ids["late"]]["message_compiled"].endswith("Contato: meu nome é Ana Beatriz")


def run_checks(world, key=f"{DAY}|allpfit") -> dict[str, bool]:
    """Evaluate the checks alone, without re-running the assets (which would repair the rows)."""
    checks_job = dg.define_asset_job(
        "data_checks", selection=dg.AssetSelection.all_asset_checks(), partitions_def=tenant_day_partitions
    )
    defs = dg.Definitions(assets=ASSETS, asset_checks=ASSET_CHECKS, jobs=[checks_job], resources=world["resources"])
    # execute_in_process(partition_key=...) refuses a selection holding checks but no asset, so the
    # partition goes in as the run tag the UI would set.
    result = defs.resolve_job_def("data_checks").execute_in_process(
        tags={"dagster/partition": key}, instance=world["instance"]
    )
    assert result.success
    return {e.check_name: e.passed for e in result.get_asset_check_evaluations()}


def test_data_checks_pass_on_loaded_rows_and_fail_on_corrupted_ones(world):
    materialize(world)
    assert run_checks(world) == {
        "no_nul_bytes_stored": True, "every_conversation_analyzed_or_failed": True,
        "probabilidade_conversao_in_range": True, "spend_within_monthly_budget": True,
    }

    ids, analytics = world["ids"], world["analytics"]
    out_of_range = sa.text("UPDATE conversations_analytics SET probabilidade_conversao = 7 WHERE conversation_id = :c")
    with pytest.raises(sa.exc.IntegrityError):  # the schema itself refuses it
        with analytics.begin() as conn:
            conn.execute(out_of_range, {"c": ids["long"]})
    on_postgres = analytics.dialect.name == "postgresql"
    with analytics.begin() as conn:  # what a foreign writer could leave behind
        conn.execute(sa.text("UPDATE conversations_analytics SET analise_ia = :a WHERE conversation_id = :c"),
                     {"a": "texto com \\u0000 escapado", "c": ids["lead"]})
        conn.execute(sa.text("DELETE FROM conversations_analytics WHERE conversation_id = :c"), {"c": ids["late"]})
        if on_postgres:  # a dashboard team's migration that dropped the constraint
            conn.execute(sa.text("ALTER TABLE conversations_analytics"
                                 " DROP CONSTRAINT conversations_analytics_probabilidade_conversao_check"))
            conn.execute(out_of_range, {"c": ids["long"]})
    checks = run_checks(world)
    assert checks["no_nul_bytes_stored"] is False
    assert checks["every_conversation_analyzed_or_failed"] is False
    assert checks["probabilidade_conversao_in_range"] is (not on_postgres)
    assert checks["spend_within_monthly_budget"] is True
