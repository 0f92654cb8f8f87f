"""``allpfit-etl status``: progress, rate, leads and spend per tenant, in the terminal.

``collect_status`` reads a snapshot (plain data, tested on its own); ``render_status`` draws it
with rich; ``run_status`` prints once or refreshes with ``--watch``.
"""

from __future__ import annotations

import datetime as dt
import signal
import threading
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


# Columns of the tenant table: (header, cell); the first two are text, the rest numbers.
TENANT_COLUMNS = (
    ("tenant", lambda t: t.label), ("analyzer", lambda t: t.analyzer),
    ("analyzed", lambda t: str(t.analyzed)), ("total", lambda t: str(t.total)),
    ("pending", lambda t: str(t.pending)), ("failed", lambda t: str(t.failed)),
    ("rate/s", lambda t: f"{t.rate_per_s:.1f}"), ("ETA", lambda t: _eta(t.eta_s)),
    ("leads", lambda t: str(t.leads)), ("visits", lambda t: str(t.visits)),
    ("prob 4-5", lambda t: str(t.high_probability)), ("named", lambda t: str(t.named)),
    ("today R$", lambda t: f"{t.today_brl:.4f}"), ("month R$", lambda t: f"{t.month_brl:.4f}"),
    ("budget", lambda t: f"{t.budget_used_pct:.0f}% of {t.budget_brl:.2f}" if t.budget_brl else "—"),
)
# Below this width the tenant table splits in three, each repeating the tenant column.
NARROW_GROUPS = (("analyzed", "total", "pending", "failed", "rate/s", "ETA"),
                 ("analyzer", "leads", "visits", "prob 4-5", "named"),
                 ("today R$", "month R$", "budget"))
PROGRESS_BAR_WIDTH = 24
TEXT_COLUMNS = {"tenant", "analyzer", "time", "model", "status"}


@dataclass
class _Row:
    """A tenant (or the total) as the table shows it."""

    status: TenantStatus
    label: str

    def __getattr__(self, name):
        return getattr(self.status, name)


def _table(title: str | None, headers: list[str], rows: list[list], *, bars: list | None = None,
           total_row: bool = False) -> Table:
    """Numbers never wrap and never shrink below their widest cell; text columns fold instead."""
    table = Table(title=title, title_justify="left")
    for i, header in enumerate(headers):
        if header in TEXT_COLUMNS:
            table.add_column(header, overflow="fold")
        else:
            widest = max((len(row[i]) for row in rows), default=0)
            table.add_column(header, justify="right", no_wrap=True, min_width=widest)
        if i == 1 and bars is not None:
            table.add_column("progress", no_wrap=True, width=PROGRESS_BAR_WIDTH)
    for n, row in enumerate(rows):
        if n == len(rows) - 1 and total_row:
            table.add_section()
        cells = list(row)
        if bars is not None:
            cells.insert(2, bars[n])
        table.add_row(*cells)
    return table


class StatusView:
    """The snapshot laid out for the terminal's width: one wide tenant table, or three narrow
    ones (progress, leads, spend) that each fit 80 columns without cutting a number."""

    def __init__(self, snapshot: StatusSnapshot):
        self.snapshot = snapshot
        totals = TenantStatus("total", "", True, "")
        for t in snapshot.tenants:
            for name in ("total", "analyzed", "pending", "failed", "leads", "visits", "high_probability", "named",
                         "today_brl", "month_brl", "rate_per_s"):
                setattr(totals, name, getattr(totals, name) + getattr(t, name))
        self.rows = [_Row(t, t.slug if t.enabled else f"{t.slug} (off)") for t in snapshot.tenants]
        self.rows.append(_Row(totals, "total"))
        self.cells = {header: [cell(r) for r in self.rows] for header, cell in TENANT_COLUMNS}

    def _tenant_tables(self, width: int) -> list[Table]:
        title = f"allpfit-etl · {self.snapshot.taken_at.astimezone().strftime('%Y-%m-%d %H:%M:%S')}"
        headers = [h for h, _ in TENANT_COLUMNS]
        wide = _table(title, headers, self._rows_for(headers),
                      bars=[ProgressBar(total=max(r.total, 1), completed=r.analyzed, width=PROGRESS_BAR_WIDTH)
                            for r in self.rows], total_row=True)
        if _fits(wide, width):
            return [wide]
        return [_table(title if n == 0 else None, ["tenant", *group], self._rows_for(["tenant", *group]), total_row=True)
                for n, group in enumerate(NARROW_GROUPS)]

    def _rows_for(self, headers: list[str]) -> list[list[str]]:
        return [[self.cells[h][n] for h in headers] for n in range(len(self.rows))]

    def _calls_table(self) -> Table:
        rows = []
        for call in self.snapshot.last_calls:
            created = call["created_at"]
            created = dt.datetime.fromisoformat(created) if isinstance(created, str) else created
            rows.append([created.astimezone().strftime("%H:%M:%S"), call["slug"], call["model"], str(call["total_tokens"]),
                         f"{call['cost_usd']:.6f}", str(call["latency_ms"] or ""), call["status"]])
        return _table("last API calls", ["time", "tenant", "model", "tokens", "US$", "latency ms", "status"], rows)

    def __rich_console__(self, console: Console, options):
        yield Group(*self._tenant_tables(options.max_width), self._calls_table())


def _fits(table: Table, width: int) -> bool:
    return Console(width=10_000).measure(table).maximum <= width


def render_status(snapshot: StatusSnapshot) -> StatusView:
    return StatusView(snapshot)


def run_status(engine: sa.Engine, watch_seconds: float | None = None, console: Console | None = None) -> int:
    console = console or Console()
    if not watch_seconds:
        console.print(render_status(collect_status(engine)))
        return 0
    # Ctrl-C ends the watch between refreshes: a KeyboardInterrupt raised inside a query or a
    # redraw could surface as some other error. A second Ctrl-C interrupts at once.
    stop = threading.Event()

    def on_interrupt(signum, frame) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()

    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, on_interrupt) if in_main_thread else None
    try:
        with Live(render_status(collect_status(engine)), console=console, refresh_per_second=1) as live:
            while not stop.wait(watch_seconds):
                live.update(render_status(collect_status(engine)))
    except KeyboardInterrupt:
        pass
    finally:
        if in_main_thread:
            signal.signal(signal.SIGINT, previous)
    return 0
