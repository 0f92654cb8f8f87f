"""Pay once per conversation: an OpenAI tenant's conversation still going on gets the free regex
answer (provisional) and is paid for once it settles — quiet for ``settle_minutes`` or resolved.
Real Dagster materializations, a real PostgreSQL server, real HTTP to the bundled OpenAI server."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import dagster as dg
import sqlalchemy as sa

from allpfit_etl.analysis.openai_resource import LeadAnalysisOpenAI
from allpfit_etl.db import get_engine
from allpfit_etl.definitions import ASSETS
from allpfit_etl.load.checks import ASSET_CHECKS
from allpfit_etl.resources import AnalyticsDatabase, ChatwootDatabase
from allpfit_etl.schema import apply_migrations
from allpfit_etl.settings import timezone_name
from allpfit_etl.tenants.registry import TenantFeatures, add_tenant, update_features
from allpfit_etl_tests.chatwoot_builder import ChatwootBuilder

RESOLVED = 1


def build(make_pg_database, server):
    chatwoot_url, analytics_url = make_pg_database("chatwoot"), make_pg_database("analytics")
    cw = ChatwootBuilder(get_engine(chatwoot_url))
    analytics = get_engine(analytics_url)
    apply_migrations(analytics)
    gym = cw.account("Gym")
    add_tenant(analytics, "gym", "Gym", gym, TenantFeatures(use_openai=True))
    resources = {
        "chatwoot": ChatwootDatabase(url=chatwoot_url),
        "analytics": AnalyticsDatabase(url=analytics_url),
        "openai": LeadAnalysisOpenAI(api_key="sk-test-settle", base_url=server.base_url),
    }
    return cw, gym, analytics, resources


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)  # as Chatwoot stores it


def partition_of(created: dt.datetime) -> str:
    day = created.replace(tzinfo=dt.timezone.utc).astimezone(ZoneInfo(timezone_name())).date()
    return f"{day.isoformat()}|gym"


def materialize(key, resources, instance) -> dict:
    result = dg.materialize(ASSETS + ASSET_CHECKS, partition_key=key, resources=resources, instance=instance,
                            raise_on_error=False)
    assert result.success, [e.message for e in result.all_events if e.is_failure]
    assert all(e.passed for e in result.get_asset_check_evaluations())
    return {
        e.asset_key.to_user_string(): {k: v.value for k, v in e.materialization.metadata.items()}
        for e in result.get_asset_materialization_events()
    }


def loaded(analytics, conversation_id):
    with analytics.connect() as conn:
        return conn.execute(sa.text(
            "SELECT analyzer, answer_kind, contact_messages_count FROM conversations_analytics WHERE conversation_id = :c"
        ), {"c": conversation_id}).one()


def paid_calls(analytics, conversation_id) -> int:
    with analytics.connect() as conn:
        return conn.execute(sa.text(
            "SELECT COUNT(*) FROM llm_usage WHERE conversation_id = :c AND status = 'ok'"), {"c": conversation_id}).scalar_one()


def test_a_conversation_going_on_is_provisional_then_paid_once_settled_and_exactly_twice_when_it_resumes(
    make_pg_database, server, instance
):
    cw, gym, analytics, resources = build(make_pg_database, server)
    started = utcnow() - dt.timedelta(minutes=3)
    conv = cw.conversation(gym, started, "Ana Paula")
    cw.message(gym, conv, started, "Oi! Quero agendar uma aula experimental amanhã às 19h")
    cw.message(gym, conv, utcnow() - dt.timedelta(minutes=2), "Claro! Qual o seu nome?", message_type=1, sender_type="User")
    key = partition_of(started)

    meta = materialize(key, resources, instance)
    assert tuple(loaded(analytics, conv)) == ("regex", "provisional", 1)
    assert meta["pending_conversations"]["pending_provisional"] == 1
    assert meta["conversation_analyses"]["provisional"] == 1 and meta["conversation_analyses"]["openai.calls"] == 0
    assert meta["conversations_analytics"]["provisional"] == 1
    assert server.stats()["billed_calls"] == 0

    meta = materialize(key, resources, instance)  # nothing new: nothing to do, nothing paid
    assert meta["pending_conversations"]["pending"] == 0 and meta["pending_conversations"]["skipped"] == 1
    assert server.stats()["billed_calls"] == 0

    update_features(analytics, "gym", settle_minutes=0)  # now quiet for longer than settle_minutes
    meta = materialize(key, resources, instance)
    assert tuple(loaded(analytics, conv)) == ("openai", "final", 1)
    assert meta["pending_conversations"]["pending_settled"] == 1
    assert meta["conversations_analytics"]["provisional"] == 0
    assert paid_calls(analytics, conv) == 1

    # The contact writes again: provisional again until it settles again, then paid a second time.
    update_features(analytics, "gym", settle_minutes=10)
    cw.message(gym, conv, utcnow(), "Ana Paula. Posso ir na sexta em vez de amanhã?")
    materialize(key, resources, instance)
    assert tuple(loaded(analytics, conv)) == ("regex", "provisional", 2)
    assert paid_calls(analytics, conv) == 1
    update_features(analytics, "gym", settle_minutes=0)
    materialize(key, resources, instance)
    materialize(key, resources, instance)
    assert tuple(loaded(analytics, conv)) == ("openai", "final", 2)
    assert paid_calls(analytics, conv) == 2 == server.stats()["billed_calls"]


def test_a_resolved_conversation_is_paid_at_once_without_waiting_to_settle(make_pg_database, server, instance):
    cw, gym, analytics, resources = build(make_pg_database, server)
    now = utcnow()
    conv = cw.conversation(gym, now, "Marcos", status=RESOLVED)
    cw.message(gym, conv, now, "Qual o valor da mensalidade?")
    going_on = cw.conversation(gym, now, "Bia")
    cw.message(gym, going_on, now, "Oi, vocês abrem sábado?")

    meta = materialize(partition_of(now), resources, instance)
    assert tuple(loaded(analytics, conv)) == ("openai", "final", 1)
    assert tuple(loaded(analytics, going_on)) == ("regex", "provisional", 1)
    assert paid_calls(analytics, conv) == 1 and paid_calls(analytics, going_on) == 0
    assert meta["conversation_analyses"]["analyzed"] == 1 and meta["conversation_analyses"]["provisional"] == 1


def test_regex_tenants_are_not_delayed(make_pg_database, server, instance):
    cw, gym, analytics, resources = build(make_pg_database, server)
    update_features(analytics, "gym", use_openai=False)
    now = utcnow()
    conv = cw.conversation(gym, now, "Carla")
    cw.message(gym, conv, now, "Quero agendar uma visita amanhã")
    materialize(partition_of(now), resources, instance)
    assert tuple(loaded(analytics, conv)) == ("regex", "final", 1)


def test_a_regex_tenants_openai_shadow_sample_waits_for_the_conversation_to_settle(make_pg_database, server, instance):
    cw, gym, analytics, resources = build(make_pg_database, server)
    update_features(analytics, "gym", use_openai=False, shadow_openai_sample=1.0)
    now = utcnow()
    conv = cw.conversation(gym, now, "Duda")
    cw.message(gym, conv, now, "Oi, quero agendar uma aula experimental")
    key = partition_of(now)

    materialize(key, resources, instance)
    assert tuple(loaded(analytics, conv)) == ("regex", "final", 1)  # the tenant's own answer: not delayed
    assert paid_calls(analytics, conv) == 0  # the paid comparison answer waits

    update_features(analytics, "gym", settle_minutes=0)
    meta = materialize(key, resources, instance)
    assert meta["pending_conversations"]["pending_shadow_missing"] == 1
    assert paid_calls(analytics, conv) == 1 == server.stats()["billed_calls"]
    with analytics.connect() as conn:
        assert conn.execute(sa.text("SELECT COUNT(*) FROM conversation_analyses WHERE analyzer = 'openai'")).scalar_one() == 1


def test_batch_mode_submits_only_settled_conversations(make_pg_database, server, instance):
    cw, gym, analytics, resources = build(make_pg_database, server)
    update_features(analytics, "gym", batch_api="always")
    now = utcnow()
    conv = cw.conversation(gym, now, "Léo")
    cw.message(gym, conv, now, "Qual o horário de funcionamento?")
    key = partition_of(now)

    meta = materialize(key, resources, instance)
    assert tuple(loaded(analytics, conv)) == ("regex", "provisional", 1)
    assert meta["conversation_analyses"]["in_batch"] == 0

    def batches() -> int:
        with analytics.connect() as conn:
            return conn.execute(sa.text("SELECT COUNT(*) FROM llm_batch_requests WHERE conversation_id = :c"),
                                {"c": conv}).scalar_one()

    assert batches() == 0
    update_features(analytics, "gym", settle_minutes=0)
    meta = materialize(key, resources, instance)
    assert meta["conversation_analyses"]["in_batch"] == 1 and batches() == 1
    assert tuple(loaded(analytics, conv)) == ("regex", "provisional", 1)  # until the batch's answer arrives
