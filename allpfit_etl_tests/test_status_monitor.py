"""``allpfit-etl status`` numbers against rows inserted into a real analytics database."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys

import pytest
import sqlalchemy as sa
from rich.console import Console

from allpfit_etl.db import get_engine
from allpfit_etl.schema import apply_migrations
from allpfit_etl.status.monitor import collect_status, render_status
from allpfit_etl.tenants.registry import TenantFeatures, add_tenant

NOW = dt.datetime(2025, 11, 20, 15, 0, tzinfo=dt.timezone.utc)  # 12:00 in São Paulo
DAY = dt.date(2025, 11, 20)


@pytest.fixture(params=["postgresql", "sqlite"])
def analytics(request, make_pg_database, tmp_path):
    url = make_pg_database("status") if request.param == "postgresql" else f"sqlite:///{tmp_path / 'analytics.db'}"
    engine = get_engine(url)
    apply_migrations(engine)
    gym = add_tenant(engine, "allpfit", "AllpFit", 1, TenantFeatures(use_openai=True, monthly_budget_brl=10.0))
    other = add_tenant(engine, "investbem", "InvestBem", 3)
    with engine.begin() as conn:
        for cid in range(1, 11):  # 10 extracted for allpfit
            conn.execute(sa.text(
                "INSERT INTO chatwoot_conversations (tenant_id, conversation_id, day, display_id, conversation_created_at,"
                " contact_messages_count, message_compiled, content_hash, extracted_at)"
                " VALUES (:t, :c, :d, :c, :now, 1, 'x', :h, :now)"), {"t": gym.tenant_id, "c": cid, "d": DAY, "h": f"h{cid}", "now": NOW})
        analyzed = [(1, True, True, 5, "Ana"), (2, True, False, 4, None), (3, False, False, 0, ""), (4, True, False, 2, "Bia"),
                    (5, False, False, 1, None), (6, True, True, 5, None)]
        for cid, lead, visit, prob, name in analyzed:
            stale = cid == 6  # loaded for an older transcript: not counted as analysed
            conn.execute(sa.text(
                "INSERT INTO conversations_analytics (tenant_id, conversation_id, day, display_id, conversation_created_at,"
                " contact_messages_count, message_compiled, content_hash, is_lead, visita_agendada, probabilidade_conversao,"
                " nome_mapeado_bot, analise_ia, analyzer, model, prompt_version, analyzed_at, loaded_at)"
                " VALUES (:t, :c, :d, :c, :now, 1, 'x', :h, :lead, :visit, :prob, :name, 'a', 'openai', 'gpt-4o-mini', 'lead-v1', :now, :now)"),
                {"t": gym.tenant_id, "c": cid, "d": DAY, "h": "old" if stale else f"h{cid}", "lead": lead, "visit": visit,
                 "prob": prob, "name": name, "now": NOW})
        for cid in (6, 7, 8, 9):
            conn.execute(sa.text(
                "INSERT INTO pending_conversations (tenant_id, conversation_id, day, content_hash, reason, queued_at)"
                " VALUES (:t, :c, :d, :h, 'new', :now)"), {"t": gym.tenant_id, "c": cid, "d": DAY, "h": f"h{cid}", "now": NOW})
        conn.execute(sa.text(
            "INSERT INTO analysis_failures (tenant_id, conversation_id, content_hash, analyzer, model, prompt_version,"
            " error_kind, attempts, failed_at) VALUES (:t, 9, 'h9', 'openai', 'gpt-4o-mini', 'lead-v1', 'timeout', 4, :now)"),
            {"t": gym.tenant_id, "now": NOW})
        calls = [  # (seconds before NOW, cost_brl, status)
            (10, 0.50, "ok"), (20, 0.25, "ok"), (30, 0.0, "rate_limited"),  # within the last minute
            (3 * 3600, 1.00, "ok"),                  # today, 09:00 local
            (16 * 3600, 2.00, "ok"),                 # yesterday 20:00 local: this month, not today
            (25 * 86400, 4.00, "ok"),                # last month
        ]
        for i, (ago, brl, status) in enumerate(calls):
            conn.execute(sa.text(
                "INSERT INTO llm_usage (tenant_id, conversation_id, model, prompt_tokens, completion_tokens, total_tokens,"
                " cost_usd, cost_brl, latency_ms, attempt, status, created_at)"
                " VALUES (:t, :c, 'gpt-4o-mini', 100, 20, 120, :usd, :brl, 900, 1, :s, :at)"),
                {"t": gym.tenant_id, "c": i, "usd": brl / 5.4, "brl": brl, "s": status, "at": NOW - dt.timedelta(seconds=ago)})
    return engine, url, gym, other


def test_collect_status_matches_the_rows(analytics):
    engine, _, _, _ = analytics
    snapshot = collect_status(engine, now=NOW)
    gym, other = snapshot.tenants
    assert (gym.total, gym.analyzed, gym.pending, gym.failed) == (10, 5, 4, 1)
    assert (gym.leads, gym.visits, gym.high_probability, gym.named) == (4, 2, 3, 2)
    assert gym.today_brl == pytest.approx(1.75) and gym.month_brl == pytest.approx(3.75)
    assert gym.today_usd == pytest.approx(1.75 / 5.4)
    assert gym.budget_used_pct == pytest.approx(37.5)
    assert gym.rate_per_s == pytest.approx(2 / 60) and gym.eta_s == pytest.approx(4 / (2 / 60))
    assert gym.analyzer == "openai:gpt-4o-mini" and other.analyzer == "regex"
    assert (other.total, other.pending, other.month_brl, other.eta_s) == (0, 0, 0.0, None)
    assert [c["status"] for c in snapshot.last_calls[:3]] == ["ok", "ok", "rate_limited"]
    assert len(snapshot.last_calls) == 6


def test_today_and_this_month_follow_the_configured_timezone(analytics, monkeypatch):
    engine, _, _, _ = analytics
    monkeypatch.setenv("ALLPFIT_TIMEZONE", "Asia/Tokyo")  # NOW is 00:00 on the 21st there: nothing spent today yet
    gym = collect_status(engine, now=NOW).tenants[0]
    assert gym.today_brl == 0 and gym.month_brl == pytest.approx(3.75)


def test_render_shows_every_tenant_and_its_numbers(analytics):
    engine, _, _, _ = analytics
    console = Console(record=True, width=220)
    console.print(render_status(collect_status(engine, now=NOW)))
    text = console.export_text()
    rows = table_rows(text)
    figures = {"total": "10", "pending": "4", "failed": "1", "rate/s": "0.0", "ETA": "0:02:00", "leads": "4",
               "visits": "2", "prob 4-5": "3", "named": "2", "today R$": "1.7500", "month R$": "3.7500"}
    analyzed = "analyzed" if "analyzed" in rows["allpfit"] else "analysed"  # the column takes the US spelling
    assert {k: rows["allpfit"][k] for k in figures} == figures and rows["allpfit"][analyzed] == "5"
    assert rows["allpfit"]["budget"] == "38% of 10.00"
    assert {k: rows["investbem"][k] for k in figures} == {
        **{k: "0" for k in figures}, "rate/s": "0.0", "ETA": "—", "today R$": "0.0000", "month R$": "0.0000"}
    assert {k: rows["total"][k] for k in figures} == figures  # the other tenant adds nothing
    assert "investbem" in text and "last API calls" in text and "rate_limited" in text


def table_rows(text: str) -> dict[str, dict[str, str]]:
    """The first table's body rows as {first cell: {column header: cell}}, read from rich's box lines."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("┃"))
    headers = [cell.strip() for cell in lines[start].strip().strip("┃").split("┃")]
    rows = {}
    for line in lines[start + 1:]:
        if line.startswith("└"):
            break
        if line.startswith("│"):
            cells = [cell.strip() for cell in line.strip().strip("│").split("│")]
            rows[cells[0]] = dict(zip(headers, cells))
    return rows


def test_status_command_prints_the_numbers(analytics, tmp_path):
    _, url, _, _ = analytics
    env = {**os.environ, "ANALYTICS_DATABASE_URL": url, "ALLPFIT_HOME": str(tmp_path), "COLUMNS": "220"}
    result = subprocess.run([sys.executable, "-m", "allpfit_etl.cli.main", "status"], env=env, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "allpfit" in result.stdout and "investbem" in result.stdout and "openai:gpt-4o-mini" in result.stdout
