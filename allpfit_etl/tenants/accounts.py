"""A tenant's Chatwoot account: it must exist, and no other enabled tenant may use it
(two tenants on one account would analyze, store and pay for the same conversations twice)."""

from __future__ import annotations

import sqlalchemy as sa

from allpfit_etl.db import sql
from allpfit_etl.errors import ConfigError
from allpfit_etl.tenants.registry import list_tenants


def require_account_unused(engine: sa.Engine, account_id: int, slug: str) -> None:
    for other in list_tenants(engine, enabled_only=True):
        if other.chatwoot_account_id == account_id and other.slug != slug:
            raise ConfigError(f"Chatwoot account {account_id} is already used by enabled tenant {other.slug!r}")


def require_account_exists(source: sa.Engine, account_id: int) -> None:
    with source.connect() as conn:
        if conn.execute(sql("chatwoot/account_name"), {"account_id": account_id}).first() is None:
            raise ConfigError(f"Chatwoot account {account_id} does not exist in the Chatwoot database")
