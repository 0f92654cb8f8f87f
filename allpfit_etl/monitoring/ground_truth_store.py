"""Reading the counts behind the funnel, quality and calibration, and writing their tables
(delete-then-insert per tenant: every re-run, and a label mapping changed since, is safe)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import pandas as pd
import sqlalchemy as sa

from allpfit_etl.db import sql
from allpfit_etl.monitoring import ground_truth
from allpfit_etl.monitoring.store import frame_of, insert_frame
from allpfit_etl.tenants.registry import Tenant


def funnel_by_day(engine: sa.Engine, tenant_id: int) -> pd.DataFrame:
    with engine.connect() as conn:
        return frame_of(conn.execute(sql("analytics/monitoring/funnel_by_day"), {"tenant_id": tenant_id}))


def outcome_answers(engine: sa.Engine, tenant_id: int) -> pd.DataFrame:
    with engine.connect() as conn:
        return frame_of(conn.execute(sql("analytics/monitoring/outcome_answers"), {"tenant_id": tenant_id}))


@dataclass
class TenantGroundTruth:
    tenant: Tenant
    funnel: pd.DataFrame
    quality: pd.DataFrame
    calibration: pd.DataFrame

    def month(self, month: dt.date) -> "TenantGroundTruth":
        pick = lambda frame: frame[frame["month"] == month].reset_index(drop=True)  # noqa: E731
        return TenantGroundTruth(self.tenant, pick(self.funnel), pick(self.quality), pick(self.calibration))


def funnel_of(engine: sa.Engine, tenant: Tenant) -> pd.DataFrame:
    return ground_truth.funnel_rows(funnel_by_day(engine, tenant.tenant_id))


def quality_of(engine: sa.Engine, tenant: Tenant) -> tuple[pd.DataFrame, pd.DataFrame]:
    answers = outcome_answers(engine, tenant.tenant_id)
    return ground_truth.quality_rows(answers), ground_truth.calibration_rows(answers)


def ground_truth_of(engine: sa.Engine, tenant: Tenant) -> TenantGroundTruth:
    """A tenant's funnel, quality and calibration, every month, computed now from the tables."""
    quality, calibration = quality_of(engine, tenant)
    return TenantGroundTruth(tenant, funnel_of(engine, tenant), quality, calibration)


def _replace(conn: sa.Connection, table: str, tenant: Tenant, frame: pd.DataFrame, now: dt.datetime) -> int:
    conn.execute(sql(f"analytics/monitoring/delete_tenant_{table}"), {"tenant_id": tenant.tenant_id})
    return insert_frame(conn, table, frame, tenant_id=tenant.tenant_id, updated_at=now)


def refresh_funnel(engine: sa.Engine, tenant: Tenant, now: dt.datetime) -> pd.DataFrame:
    funnel = funnel_of(engine, tenant)
    with engine.begin() as conn:
        _replace(conn, "lead_funnel", tenant, funnel, now)
    return funnel


def refresh_quality(engine: sa.Engine, tenant: Tenant, now: dt.datetime) -> tuple[pd.DataFrame, pd.DataFrame]:
    quality, calibration = quality_of(engine, tenant)
    with engine.begin() as conn:
        _replace(conn, "analyzer_quality", tenant, quality, now)
        _replace(conn, "analyzer_calibration", tenant, calibration, now)
    return quality, calibration
