"""``allpfit-etl status``: progress, rate, leads and spend per tenant, in the terminal.

``collect_status`` reads a snapshot (plain data, tested on its own); ``render_status`` draws it
with rich; ``run_status`` prints once or refreshes with ``--watch``.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from rich.console import Console, Group
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table

from allpfit_etl import settings
from allpfit_etl.analysis.budget import month_start_utc
from allpfit_etl.db import sql
from allpfit_etl.tenants.registry import parse_features

RATE_WINDOW_S = 60


@dataclass
class TenantStatus:
    slug: str
    name: str
    enabled: bool
    analyzer: str
    total: int = 0
    analyzed: int = 0
    pending: int = 0
    failed: int = 0
    leads: int = 0
    visits: int = 0
    high_probability: int = 0
    named: int = 0
    today_brl: float = 0.0
    today_usd: float = 0.0
    month_brl: float = 0.0
    month_usd: float = 0.0
    budget_brl: float | None = None
    rate_per_s: float = 0.0

    @property
    def budget_used_pct(self) -> float | None:
        return 100 * self.month_brl / self.budget_brl if self.budget_brl else None

    @property
    def eta_s(self) -> float | None:
        return self.pending / self.rate_per_s if self.rate_per_s > 0 and self.pending else None


@dataclass
class StatusSnapshot:
    taken_at: dt.datetime
    tenants: list[TenantStatus] = field(default_factory=list)
    last_calls: list[dict] = field(default_factory=list)


def collect_status(engine: sa.Engine, now: dt.datetime | None = None, timezone: str | None = None,
                   last_calls: int = 10) -> StatusSnapshot:
    now = now or dt.datetime.now(dt.timezone.utc)
    timezone = timezone or settings.timezone_name()  # today and this month as the budget guard sees them
    local = now.astimezone(ZoneInfo(timezone))
    day_start = local.replace(hour=0, minute=0, second=0, microsecond=0).astimezone(dt.timezone.utc)
    month_start = month_start_utc(now, timezone)
    snapshot = StatusSnapshot(taken_at=now)
    with engine.connect() as conn:
        spend = {
            row.tenant_id: row
            for row in conn.execute(sql("analytics/status/tenant_spend"), {
                "day_start": day_start, "month_start": month_start,
                "recent": now - dt.timedelta(seconds=RATE_WINDOW_S)})
        }
        for row in conn.execute(sql("analytics/status/tenant_progress")):
            features = parse_features(row.features)
            status = TenantStatus(
                slug=row.slug, name=row.name, enabled=bool(row.enabled),
                analyzer=f"openai:{features.model}" if features.use_openai else "regex",
                total=row.total, analyzed=row.analyzed, pending=row.pending, failed=row.failed, leads=row.leads,
                visits=row.visits, high_probability=row.high_probability, named=row.named,
                budget_brl=features.monthly_budget_brl,
            )
            money = spend.get(row.tenant_id)
            if money is not None:
                status.today_brl, status.today_usd = float(money.today_brl), float(money.today_usd)
                status.month_brl, status.month_usd = float(money.month_brl), float(money.month_usd)
                status.rate_per_s = int(money.recent_ok) / RATE_WINDOW_S
            snapshot.tenants.append(status)
        for row in conn.execute(sql("analytics/status/last_calls"), {"limit": last_calls}).mappings():
            snapshot.last_calls.append(dict(row))
    return snapshot


def _eta(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    return str(dt.timedelta(seconds=int(seconds)))


def _tenant_cells(t: TenantStatus, label: str, budget: str) -> list:
    return [
        label, t.analyzer, ProgressBar(total=max(t.total, 1), completed=t.analyzed, width=24),
        str(t.analyzed), str(t.total), str(t.pending), str(t.failed), f"{t.rate_per_s:.1f}", _eta(t.eta_s),
        str(t.leads), str(t.visits), str(t.high_probability), str(t.named),
        f"{t.today_brl:.4f}", f"{t.month_brl:.4f}", budget,
    ]


def render_status(snapshot: StatusSnapshot):
    tenants = Table(title=f"allpfit-etl · {snapshot.taken_at.astimezone().strftime('%Y-%m-%d %H:%M:%S')}",
                    title_justify="left", expand=False)
    for column, justify in (("tenant", "left"), ("analyser", "left"), ("progress", "left"), ("analysed", "right"),
                            ("total", "right"), ("pending", "right"), ("failed", "right"), ("rate/s", "right"),
                            ("ETA", "right"), ("leads", "right"), ("visits", "right"), ("prob 4-5", "right"),
                            ("named", "right"), ("today R$", "right"), ("month R$", "right"), ("budget", "right")):
        tenants.add_column(column, justify=justify, no_wrap=True)
    totals = TenantStatus("total", "", True, "")
    for t in snapshot.tenants:
        budget = f"{t.budget_used_pct:.0f}% of {t.budget_brl:.2f}" if t.budget_brl else "—"
        tenants.add_row(*_tenant_cells(t, t.slug if t.enabled else f"[dim]{t.slug} (off)[/dim]", budget))
        for name in ("total", "analyzed", "pending", "failed", "leads", "visits", "high_probability", "named",
                     "today_brl", "month_brl", "rate_per_s"):
            setattr(totals, name, getattr(totals, name) + getattr(t, name))
    tenants.add_section()
    tenants.add_row(*_tenant_cells(totals, "[bold]total[/bold]", ""))
    calls = Table(title="last API calls", title_justify="left")
    for column in ("time", "tenant", "model", "tokens", "US$", "latency ms", "status"):
        calls.add_column(column, no_wrap=True)
    for call in snapshot.last_calls:
        created = call["created_at"]
        created = dt.datetime.fromisoformat(created) if isinstance(created, str) else created
        calls.add_row(created.astimezone().strftime("%H:%M:%S"), call["slug"], call["model"], str(call["total_tokens"]),
                      f"{call['cost_usd']:.6f}", str(call["latency_ms"] or ""), call["status"])
    return Group(tenants, calls)


def run_status(engine: sa.Engine, watch_seconds: float | None = None, console: Console | None = None) -> int:
    console = console or Console()
    if not watch_seconds:
        console.print(render_status(collect_status(engine)))
        return 0
    try:
        with Live(render_status(collect_status(engine)), console=console, refresh_per_second=1) as live:
            while True:
                time.sleep(watch_seconds)
                live.update(render_status(collect_status(engine)))
    except KeyboardInterrupt:
        return 0
