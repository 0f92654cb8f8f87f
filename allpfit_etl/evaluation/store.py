"""Evaluations in the analytics database (``prompt_evaluations``), never in a tenant's tables."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa

from allpfit_etl.db import sql
from allpfit_etl.evaluation.runner import EvalReport

TABLE = "prompt_evaluations"


def evaluation_row(report: EvalReport, evaluated_at: dt.datetime) -> dict:
    q = report.quality
    row = {
        "evaluated_at": evaluated_at, "set_name": report.set_name, "set_fingerprint": report.fingerprint,
        "analyzer": report.analyzer, "model": report.model, "prompt_version": report.prompt_version,
        "endpoint": report.endpoint, "conversations": q.conversations, "answered": q.answered,
        "probabilidade_mae": q.probabilidade_mae, "nome_exact": q.nome_exact, "calls": report.usage.calls,
        "prompt_tokens": report.usage.prompt_tokens, "cached_tokens": report.usage.cached_tokens,
        "completion_tokens": report.usage.completion_tokens, "cost_usd": report.usage.cost_usd,
    }
    for prefix, scores in (("is_lead", q.is_lead), ("visita", q.visita_agendada)):
        row.update({f"{prefix}_{key}": value for key, value in scores.as_dict().items()})
    return row


def save_evaluation(engine: sa.Engine, report: EvalReport) -> int:
    with engine.begin() as conn:
        return int(conn.execute(sql("analytics/evaluation/insert_evaluation"),
                                evaluation_row(report, dt.datetime.now(dt.timezone.utc))).scalar_one())
