"""The account's OpenAI rate limit, shared by whatever calls OpenAI at the same moment.

Every ``analyze_chunk`` step that is sending requests holds a lease row in the analytics
database (``openai_rate_leases``) and renews it every second. Each holder takes

    its limit = account limit × 0.99 / number of live leases of the account

so one step alone uses the whole limit, two steps (of one run, of two runs, of two tenants, on
two machines or two Kubernetes pods) half each, and a step that ends, or is killed, stops
counting within ``LEASE_TTL_S``. A step that joins others takes only what they leave (1 %) until
each of them has renewed its lease since, and so counts the newcomer: otherwise the account
would see the others' old shares plus the newcomer's for up to a beat, and answer with 429s.
The analytics database is the one thing every run of every launcher already reaches, and lease
expiry uses the database server's clock.

The account's limit is, in this order: configured (``OPENAI_RPM``/``OPENAI_TPM``, ``--rpm``, the
resource); else what the server states in ``x-ratelimit-limit-*`` (kept in
``openai_account_limits`` for every later step and run); else, until the first answer states it,
tier 1's 500 RPM — an account of any tier can take that. A server that states no limit (a local
vLLM, Ollama) gets no rate limit, only the in-flight cap.

An account error (quota, key, model, a rejected request) is written to ``openai_run_stops``; the
run's other steps read it at their next beat and stop too.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
import uuid
from typing import Callable

import sqlalchemy as sa

from allpfit_etl.analysis.pricing import RateLimits
from allpfit_etl.analysis.rate_limiter import RateLimiter, advertised_limits
from allpfit_etl.db import sql

BEAT_S = 1.0
# While joining, beat faster: the wait ends at the others' next beat, not ours.
JOINING_BEAT_S = 0.2
LEASE_TTL_S = 5.0
# Sending at exactly the limit meets the server's clock jitter as 429s; keep a small margin.
SAFETY = 0.99
# Tier 1 (the lowest paid tier) allows gpt-4o-mini 500 RPM and 200,000 TPM.
INITIAL_LIMITS = RateLimits(500, 200_000)


def account_key(base_url: str | None, api_key: str, model: str) -> str:
    """Limits belong to an API key's project and a model; the key itself is never stored."""
    digest = hashlib.sha256(f"{base_url or 'https://api.openai.com/v1'}\n{api_key}".encode()).hexdigest()[:24]
    return f"{digest}:{model}"


class SharedRateLimit:
    """One holder of the account's limit (one ``analyze_chunk`` step), used inside its event loop:
    ``async with``; ``limiter`` paces the requests; ``observe`` reads each answer's headers.

    Without ``engine`` (tests of the analyser alone) it is a single holder with no database.
    ``holders_at_start``: holders known to start at this moment (a step's worker processes);
    the first holder's first beat may come before the others' leases are written.
    """

    def __init__(self, engine: sa.Engine | None, account: str, *, configured: RateLimits | None = None,
                 run_id: str | None = None, holders_at_start: int = 1):
        self.engine, self.account, self.configured, self.run_id = engine, account, configured, run_id
        self.holders_at_start = holders_at_start
        self.lease_id = uuid.uuid4().hex
        self.limiter = RateLimiter()
        self.stated: RateLimits | None = None  # what the server stated (or the database remembers)
        self.holders = 1
        self.unaware = 0  # holders that have not counted this one yet
        self.entered_expiry: float | None = None
        self.counted = False  # every holder has counted this one: no need to ask again
        self.holding = False
        self.on_stop: Callable[[str], None] = lambda reason: None
        self._task: asyncio.Task | None = None
        self._pending_writes: set[asyncio.Task] = set()

    # ----- the account's limit and this holder's share -------------------------------------
    @property
    def account_limits(self) -> RateLimits:
        return self.configured or self.stated or INITIAL_LIMITS

    def _apply(self) -> None:
        share = (1 - SAFETY) if self.unaware else SAFETY / max(1, self.holders)
        limits = self.account_limits
        self.limiter.set_limits(limits.rpm * share, limits.tpm * share)

    def observe(self, headers) -> None:
        """An answer's headers: pause when the server says the budget is spent; learn the limits."""
        self.limiter.observe_headers(headers)
        stated = advertised_limits(headers)
        learned = RateLimits(stated[0] or 0, stated[1] or 0) if stated else RateLimits(0, 0)
        if learned != self.stated:
            self.stated = learned
            self._apply()
            self._write(self._save_limits, learned)

    def observe_rejection(self, headers) -> None:
        """A 429's headers: learn stated limits, but a missing header here says nothing."""
        if advertised_limits(headers):
            self.observe(headers)

    # ----- lifecycle -----------------------------------------------------------------------
    async def __aenter__(self) -> "SharedRateLimit":
        self.holding = True
        if self.engine is not None:
            self._take_beat(await asyncio.to_thread(self._enter))
            self.holders = max(self.holders, self.holders_at_start)
            self._task = asyncio.create_task(self._beats())
        self._apply()
        return self

    async def __aexit__(self, *exc) -> None:
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._pending_writes:
            await asyncio.gather(*self._pending_writes, return_exceptions=True)
        if self.engine is not None and self.holding:
            await asyncio.to_thread(self._execute, "analytics/rate_limit/drop_lease", {"lease_id": self.lease_id})
        self.holding = False

    async def release(self) -> None:
        """No new conversation will start here: leave the limit to the other holders now.
        (The last share is kept for the few retries still to come.)"""
        if self.holding and self.engine is not None:
            self.holding = False
            await asyncio.to_thread(self._execute, "analytics/rate_limit/drop_lease", {"lease_id": self.lease_id})
        self.holding = False

    async def stop_run(self, reason: str) -> None:
        if self.engine is not None and self.run_id:
            await asyncio.to_thread(self._execute, "analytics/rate_limit/stop_run",
                                    {"run_id": self.run_id, "reason": reason, "now": time.time()})

    # ----- the database --------------------------------------------------------------------
    def _enter(self) -> tuple:
        """The lease is committed first: a holder whose beat starts after that counts this one,
        and the first beat (a later transaction) dates the entry from then."""
        with self.engine.begin() as conn:
            now = self._now(conn)
            conn.execute(sql("analytics/rate_limit/drop_expired_leases"), {"before": now - 60})
            self._renew(conn, now)
        return self._beat()

    async def _beats(self) -> None:
        while True:
            await asyncio.sleep(JOINING_BEAT_S if self.unaware else BEAT_S)
            try:
                self._take_beat(await asyncio.to_thread(self._beat))
            except sa.exc.SQLAlchemyError:
                continue  # a missed beat keeps the last share; the lease outlives a few of them

    def _beat(self) -> tuple:
        """In a worker thread: renew the lease; read the live leases, the limits and a run stop."""
        with self.engine.begin() as conn:
            now = self._now(conn)
            if self.holding:
                self._renew(conn, now)
            holders = conn.execute(sql("analytics/rate_limit/live_leases"),
                                   {"account_key": self.account, "now": now}).scalar_one()
            if self.entered_expiry is None and self.holding:
                self.entered_expiry = now + LEASE_TTL_S
            # Holders that came later counted this one from their start; once every earlier one
            # has too, the count stays 0.
            unaware = conn.execute(sql("analytics/rate_limit/unaware_leases"), {
                "account_key": self.account, "now": now, "lease_id": self.lease_id,
                "entered_expiry": self.entered_expiry}).scalar_one() if self.holding and not self.counted else 0
            row = conn.execute(sql("analytics/rate_limit/account_limits"), {"account_key": self.account}).first()
            stop = conn.execute(sql("analytics/rate_limit/run_stop"), {"run_id": self.run_id}).scalar() \
                if self.run_id else None
        limits = RateLimits(int(row.rpm), int(row.tpm)) if row is not None else None
        return int(holders), int(unaware), limits, stop

    def _renew(self, conn: sa.Connection, now: float) -> None:
        conn.execute(sql("analytics/rate_limit/renew_lease"), {
            "lease_id": self.lease_id, "account_key": self.account, "run_id": self.run_id,
            "expires_at": now + LEASE_TTL_S,
        })

    def _take_beat(self, beat: tuple) -> None:
        """In the event loop, which owns the limiter: this holder's share from the beat's figures."""
        holders, unaware, stated, stop = beat
        if self.holding:
            self.holders = max(1, holders)
        self.unaware = unaware if self.holding else 0
        self.counted = self.counted or (self.holding and not unaware)
        if stated is not None and self.stated is None:
            self.stated = stated
        self._apply()
        if stop:
            self.on_stop(stop)

    def _now(self, conn: sa.Connection) -> float:
        return float(conn.execute(sql("analytics/rate_limit/now", conn.dialect.name)).scalar_one())

    def _save_limits(self, limits: RateLimits) -> None:
        with self.engine.begin() as conn:
            conn.execute(sql("analytics/rate_limit/save_account_limits"), {
                "account_key": self.account, "rpm": int(limits.rpm), "tpm": int(limits.tpm), "now": self._now(conn),
            })

    def _execute(self, name: str, params: dict) -> None:
        with self.engine.begin() as conn:
            conn.execute(sql(name), params)

    def _write(self, function, *args) -> None:
        if self.engine is None:
            return
        task = asyncio.get_running_loop().create_task(asyncio.to_thread(function, *args))
        self._pending_writes.add(task)
        task.add_done_callback(self._pending_writes.discard)
