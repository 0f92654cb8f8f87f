"""The world the pipeline tests run in: a Chatwoot database holding a generated day of conversations
per tenant (demo.seed's ``seed_bulk``: deterministic), an analytics database with those tenants, and
what points at them — Dagster resources for in-process materializations, an environment for
``allpfit-etl`` subprocesses. Tests that need exact messages write them with ChatwootBuilder."""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa

from allpfit_etl.analysis.openai_resource import LeadAnalysisOpenAI
from allpfit_etl.db import get_engine
from allpfit_etl.demo.seed import create_chatwoot_schema, seed_bulk
from allpfit_etl.resources import AnalyticsDatabase, ChatwootDatabase
from allpfit_etl.schema import apply_migrations
from allpfit_etl.tenants.registry import TenantFeatures, add_tenant

DAY = dt.date(2025, 11, 10)
API_KEY = "sk-test-world-key"


@dataclass(frozen=True)
class World:
    chatwoot_url: str
    analytics_url: str

    @property
    def chatwoot(self) -> sa.Engine:
        return get_engine(self.chatwoot_url)

    @property
    def analytics(self) -> sa.Engine:
        return get_engine(self.analytics_url)

    def add_tenant(self, slug: str, account_id: int, conversations: int, features: TenantFeatures = TenantFeatures(), *,
                   messages_per_conversation: int = 4) -> None:
        """A tenant and ``conversations`` generated conversations of its Chatwoot account on DAY."""
        self.seed(account_id, conversations, messages_per_conversation=messages_per_conversation)
        add_tenant(self.analytics, slug, slug.title(), account_id, features)

    def seed(self, account_id: int, conversations: int, *, day: dt.date = DAY, messages_per_conversation: int = 4,
             seed: int | None = None) -> None:
        """More generated conversations of an account on ``day``, with ids after those already written.
        The generator's seed defaults to the account, so two tenants never share a transcript."""
        seed_bulk(self.chatwoot, account_id=account_id, day=day, conversations=conversations,
                  messages_per_conversation=messages_per_conversation, seed=account_id if seed is None else seed)

    def scalar(self, query: str, **params):
        with self.analytics.connect() as conn:
            return conn.execute(sa.text(query), params).scalar_one()

    def resources(self, server=None, api_key: str = API_KEY, **openai_options) -> dict:
        """The pipeline's resources on this world; the OpenAI one on ``server`` (the bundled fake)."""
        resources = {"chatwoot": ChatwootDatabase(url=self.chatwoot_url), "analytics": AnalyticsDatabase(url=self.analytics_url)}
        if server is not None:
            resources["openai"] = LeadAnalysisOpenAI(api_key=api_key, base_url=server.base_url, **openai_options)
        return resources

    def cli_env(self, server, home: Path, api_key: str = API_KEY) -> dict[str, str]:
        """The environment of an ``allpfit-etl`` process on this world, as a user sets it: no
        DAGSTER_HOME (the CLI's own instance under ALLPFIT_HOME) and no rate limits of this shell."""
        inherited = {k: v for k, v in os.environ.items() if k not in ("DAGSTER_HOME", "OPENAI_RPM", "OPENAI_TPM")}
        return {**inherited, "CHATWOOT_DATABASE_URL": self.chatwoot_url, "ANALYTICS_DATABASE_URL": self.analytics_url,
                "OPENAI_API_KEY": api_key, "OPENAI_BASE_URL": server.base_url, "ALLPFIT_HOME": str(home)}


def empty_world(make_pg_database) -> World:
    """Both databases, their schemas, no tenant yet."""
    world = World(make_pg_database("chatwoot"), make_pg_database("analytics"))
    create_chatwoot_schema(world.chatwoot)
    apply_migrations(world.analytics)
    return world


def build_world(make_pg_database, conversations: int, features: TenantFeatures = TenantFeatures(), *,
                messages_per_conversation: int = 4) -> World:
    """The common case: tenant ``gym`` (Chatwoot account 1) with ``conversations`` on DAY."""
    world = empty_world(make_pg_database)
    world.add_tenant("gym", 1, conversations, features, messages_per_conversation=messages_per_conversation)
    return world
