"""The account's limit shared through the analytics database, on PostgreSQL and SQLite: holders
split it, leave it when done, expired leases stop counting, learned limits and run stops reach
every holder."""

from __future__ import annotations

import asyncio
import time

import pytest
import sqlalchemy as sa

from allpfit_etl.analysis.pricing import RateLimits
from allpfit_etl.analysis.shared_rate_limit import INITIAL_LIMITS, SAFETY, SharedRateLimit, account_key
from allpfit_etl.db import get_engine
from allpfit_etl.schema import apply_migrations

ACCOUNT = account_key("http://127.0.0.1:1/v1", "sk-x", "gpt-4o-mini")


@pytest.fixture(params=["postgresql", "sqlite"])
def engine(request, make_pg_database, tmp_path):
    url = make_pg_database("analytics") if request.param == "postgresql" else f"sqlite:///{tmp_path / 'analytics.db'}"
    engine = get_engine(url)
    apply_migrations(engine)
    return engine


def holder(engine, run_id="run-1", configured=None) -> SharedRateLimit:
    return SharedRateLimit(engine, ACCOUNT, configured=configured, run_id=run_id)


async def until(condition, timeout: float = 15.0) -> None:
    """Yield to the event loop (where the holders' beats run) until ``condition()`` holds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting for a beat"
        await asyncio.sleep(0.02)


def stored_limits(engine) -> tuple | None:
    with engine.connect() as conn:
        row = conn.execute(sa.text("SELECT rpm, tpm FROM openai_account_limits WHERE account_key = :a"), {"a": ACCOUNT}).first()
    return tuple(row) if row else None


def lease_expiry(engine, lease_id: str) -> float:
    with engine.connect() as conn:
        return conn.execute(sa.text("SELECT expires_at FROM openai_rate_leases WHERE lease_id = :l"), {"l": lease_id}).scalar_one()


def test_holders_split_the_limit_and_give_it_back(engine):
    async def scenario():
        a = holder(engine, configured=RateLimits(3000, 0))
        b = holder(engine, run_id="run-2", configured=RateLimits(3000, 0))
        async with a:
            assert a.limiter.rpm == pytest.approx(3000 * SAFETY)  # alone: the whole limit
            async with b:
                # b joins a holder that has not counted it yet: it takes only what a leaves.
                assert (b.holders, b.unaware) == (2, 1)
                assert b.limiter.rpm == pytest.approx(3000 * (1 - SAFETY))
                await until(lambda: a.holders == 2)  # a's next beat sees b's lease
                await until(lambda: b.unaware == 0)  # and b's next beat sees that a renewed since
                assert (a.holders, b.holders) == (2, 2)
                assert a.limiter.rpm == b.limiter.rpm == pytest.approx(1500 * SAFETY)
                await b.release()  # b has nothing left to start
                await until(lambda: a.holders == 1)
                assert a.limiter.rpm == pytest.approx(3000 * SAFETY)
            with engine.connect() as conn:
                assert conn.execute(sa.text("SELECT COUNT(*) FROM openai_rate_leases")).scalar_one() == 1
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT COUNT(*) FROM openai_rate_leases")).scalar_one() == 0

    asyncio.run(scenario())


def test_holders_starting_together_take_their_share_from_the_first_request(engine):
    """A chunk's worker processes start at once: the first of them must not take the whole limit
    because the others' leases are not written yet."""
    async def scenario():
        first = SharedRateLimit(engine, ACCOUNT, configured=RateLimits(3000, 0), run_id="run-1", holders_at_start=2)
        async with first:  # alone in the database so far
            assert first.limiter.rpm == pytest.approx(1500 * SAFETY)
            second = SharedRateLimit(engine, ACCOUNT, configured=RateLimits(3000, 0), run_id="run-1", holders_at_start=2)
            async with second:
                await until(lambda: second.unaware == 0)
                assert second.limiter.rpm == pytest.approx(1500 * SAFETY)
            await until(lambda: first.holders == 1)  # from the next beat on, the live leases decide
            assert first.limiter.rpm == pytest.approx(3000 * SAFETY)

    asyncio.run(scenario())


def test_an_expired_lease_of_a_killed_step_stops_counting(engine):
    with engine.begin() as conn:  # a step killed 10 s ago, never renewed
        conn.execute(sa.text("INSERT INTO openai_rate_leases (lease_id, account_key, run_id, expires_at) "
                             "VALUES ('dead', :a, 'r', 0)"), {"a": ACCOUNT})
        conn.execute(sa.text("INSERT INTO openai_rate_leases (lease_id, account_key, run_id, expires_at) "
                             "VALUES ('other-account', 'x:gpt-4o-mini', 'r', 1e12)"))

    async def scenario():
        async with holder(engine) as a:
            assert a.holders == 1

    asyncio.run(scenario())


def test_limits_start_at_tier_one_and_are_learned_by_every_holder(engine):
    async def scenario():
        a, b = holder(engine), holder(engine)
        async with a:
            assert a.limiter.rpm == pytest.approx(INITIAL_LIMITS.rpm * SAFETY)
            a.observe({"x-ratelimit-limit-requests": "10000", "x-ratelimit-limit-tokens": "4000000"})
            assert a.account_limits == RateLimits(10000, 4_000_000)
            await until(lambda: stored_limits(engine) == (10000, 4_000_000))
            async with b:  # a later step (or run, or machine) starts from what was learned
                assert b.account_limits == RateLimits(10000, 4_000_000)
                await until(lambda: b.unaware == 0)
                assert b.limiter.rpm == pytest.approx(5000 * SAFETY)
            b.observe({})  # a server that states no limit enforces none
            assert b.account_limits == RateLimits(0, 0) and b.limiter.rpm == 0

    asyncio.run(scenario())


def test_a_run_stop_reaches_the_runs_other_holders_only(engine):
    stops = []

    async def scenario():
        same, other = holder(engine, run_id="run-1"), holder(engine, run_id="run-2")
        same.on_stop, other.on_stop = stops.append, lambda reason: stops.append(("other", reason))
        async with same, other:
            await holder(engine, run_id="run-1").stop_run("OpenAI quota exhausted")
            await until(lambda: stops)  # same's next beat reads the stop
            # Three renewals of other's lease: the second beat began after the stop was written, and a
            # beat starts once the one before was taken, so the third says the second was taken.
            renewals = [lease_expiry(engine, other.lease_id)]
            for _ in range(3):
                await until(lambda: lease_expiry(engine, other.lease_id) != renewals[-1])
                renewals.append(lease_expiry(engine, other.lease_id))

    asyncio.run(scenario())
    assert stops and set(stops) == {"OpenAI quota exhausted"}  # at every beat of its run's holder, never to the other


def test_a_step_of_a_stopped_run_sends_nothing(engine):
    from allpfit_etl.analysis.interface import ConversationInput
    from allpfit_etl.analysis.openai_analyzer import OpenAIAccountError
    from allpfit_etl.analysis.openai_resource import LeadAnalysisOpenAI
    from fake_openai import FakeOpenAIServer

    asyncio.run(holder(engine, run_id="run-9").stop_run("OpenAI rejected the API key (401)"))
    with FakeOpenAIServer() as server:
        analyzer = LeadAnalysisOpenAI(api_key="sk-x", base_url=server.base_url).build_analyzer(
            tenant_id=1, model="gpt-4o-mini", engine=engine, run_id="run-9")
        with pytest.raises(OpenAIAccountError, match=r"^OpenAI rejected the API key \(401\)$"):
            analyzer.analyze_chunk([ConversationInput(1, i, f"h{i}", "Contato: oi") for i in range(50)])
        assert server.stats()["requests"] == 0
