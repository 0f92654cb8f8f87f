"""The dashboard: one self-contained HTML file (charts as inline SVG drawn by matplotlib, no
script, stylesheet or font loaded from anywhere), in Portuguese like the team's dashboards.

``collect_report_data`` reads the monitoring tables; ``render_report`` is pure.
"""

from __future__ import annotations

import datetime as dt
import html
import io
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import sqlalchemy as sa

from allpfit_etl import settings
from allpfit_etl.monitoring.store import frame_of

REPORT_DAYS = 60  # days of history drawn
EXAMPLES_PER_TENANT = 5


def default_report_path() -> Path:
    return Path(os.environ.get("ALLPFIT_REPORT_PATH") or settings.allpfit_home() / "reports" / "lead_report.html")


@dataclass
class TenantOutlook:
    slug: str
    name: str
    analyzer: str
    month_to_date_brl: float
    projected_brl: float
    budget_brl: float | None
    switching_brl: float | None
    shadow_sample: float


@dataclass
class ReportData:
    generated_at: dt.datetime
    today: dt.date
    spend: pd.DataFrame  # slug, day, cost_brl, calls
    kpis: pd.DataFrame  # slug, day, conversations, lead_rate, visits_scheduled
    agreement: pd.DataFrame  # slug, month, compared, is_lead_agreement, ...
    examples: pd.DataFrame  # slug, display_id, both answers, transcript_start
    outlooks: list[TenantOutlook] = field(default_factory=list)


def _frame(conn: sa.Connection, query: str, params: dict | None = None) -> pd.DataFrame:
    return frame_of(conn.execute(sa.text(query), params or {}))


def collect_report_data(engine: sa.Engine, *, timezone: str | None = None, now: dt.datetime | None = None,
                        usd_brl: float | None = None, price_overrides: dict | None = None) -> ReportData:
    from allpfit_etl.db import load_sql
    from allpfit_etl.monitoring import store
    from allpfit_etl.tenants.registry import list_tenants

    timezone = timezone or settings.timezone_name()
    now = now or dt.datetime.now(dt.timezone.utc)
    today = store.local_today(timezone, now)
    with engine.connect() as conn:
        spend = _frame(conn, load_sql("analytics/monitoring/report_spend"))
        kpis = _frame(conn, load_sql("analytics/monitoring/report_kpis"))
        agreement = _frame(conn, load_sql("analytics/monitoring/report_agreement"))
        examples = _frame(conn, load_sql("analytics/monitoring/report_disagreements"), {"per_tenant": EXAMPLES_PER_TENANT})
    for frame in (spend, kpis):
        if not frame.empty:
            frame["day"] = pd.to_datetime(frame["day"])
            frame.drop(frame[frame["day"] < frame["day"].max() - pd.Timedelta(days=REPORT_DAYS)].index, inplace=True)
    outlooks = []
    month = store.month_start(today)
    for tenant in list_tenants(engine, enabled_only=True):
        outlook = store.cost_outlook(engine, tenant, month, timezone, today=today,
                                     volume_month=store.latest_data_month(engine, tenant.tenant_id),
                                     usd_brl=usd_brl, price_overrides=price_overrides)
        outlooks.append(TenantOutlook(
            tenant.slug, tenant.name, "OpenAI" if tenant.features.use_openai else "regex",
            outlook.budget.month_to_date_brl, outlook.budget.projected_brl, tenant.features.monthly_budget_brl,
            outlook.switching_brl, tenant.features.shadow_openai_sample,
        ))
    return ReportData(now, today, spend, kpis, agreement, examples, outlooks)


# --- charts -----------------------------------------------------------------------------------

def _figure(width: float = 10, height: float = 3.6):
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=96, layout="constrained")
    return figure, figure.add_subplot()


def _svg(figure) -> str:
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", metadata={"Date": None})
    text = buffer.getvalue()
    return text[text.index("<svg"):]  # drop the XML prolog and DOCTYPE (no external DTD)


def _empty_chart(message: str) -> str:
    figure, axes = _figure(height=1.2)
    axes.axis("off")
    axes.text(0.5, 0.5, message, ha="center", va="center", fontsize=12, color="#666")
    return _svg(figure)


def _dates(axes, days: pd.Series) -> None:
    import matplotlib.dates as mdates

    # at least a week wide, so one or two days of data do not stretch over years of empty axis
    first, last = days.min(), days.max()
    pad = max(pd.Timedelta(days=1), (pd.Timedelta(days=7) - (last - first)) / 2)
    axes.set_xlim(first - pad, last + pad)
    axes.xaxis.set_major_locator(mdates.AutoDateLocator(maxticks=12))
    axes.xaxis.set_major_formatter(mdates.DateFormatter("%d/%m/%y"))
    axes.grid(alpha=0.3)


def _categories(axes, labels: list[str]) -> None:
    """Bar positions with room for three groups at least, so one tenant is not one wall of colour."""
    axes.set_xticks(range(len(labels)), labels)
    axes.set_xlim(-0.6, max(len(labels), 3) - 0.4)


def spend_chart(spend: pd.DataFrame, outlooks: list[TenantOutlook], today: dt.date) -> str:
    if spend.empty:
        return _empty_chart("Nenhuma chamada à OpenAI registrada ainda")
    figure, axes = _figure()
    budgets = {o.slug: o.budget_brl for o in outlooks}
    days_in_month = pd.Period(today, freq="M").days_in_month
    for index, (slug, rows) in enumerate(spend.groupby("slug", sort=True)):
        color = f"C{index}"
        axes.plot(rows["day"], rows["cost_brl"], marker="o", color=color, label=slug)
        if budgets.get(slug):
            axes.axhline(budgets[slug] / days_in_month, color=color, linestyle="--", linewidth=1,
                         label=f"{slug}: orçamento/dia (R$ {budgets[slug] / days_in_month:.2f})")
    axes.set_ylabel("R$ por dia")
    axes.set_ylim(bottom=0)
    _dates(axes, spend["day"])
    axes.legend(fontsize=8, loc="upper left")
    return _svg(figure)


def budget_chart(outlooks: list[TenantOutlook]) -> str:
    if not outlooks:
        return _empty_chart("Nenhum tenant ativo")
    figure, axes = _figure(height=3.0)
    slugs = [o.slug for o in outlooks]
    positions = range(len(slugs))
    axes.bar([p - 0.2 for p in positions], [o.month_to_date_brl for o in outlooks], width=0.4, label="gasto no mês")
    axes.bar([p + 0.2 for p in positions], [o.projected_brl for o in outlooks], width=0.4, label="projeção fim do mês",
             color="C1", alpha=0.7)
    label = "orçamento"
    for position, outlook in zip(positions, outlooks):
        if outlook.budget_brl is not None:
            axes.hlines(outlook.budget_brl, position - 0.45, position + 0.45, colors="C3", linestyles="--", label=label)
            label = None  # one legend entry for all the budget marks
    _categories(axes, slugs)
    axes.set_ylabel("R$")
    axes.grid(axis="y", alpha=0.3)
    axes.legend(fontsize=8)
    return _svg(figure)


def kpi_chart(kpis: pd.DataFrame, column: str, label: str, percent: bool = False) -> str:
    if kpis.empty:
        return _empty_chart("Nenhuma conversa analisada ainda")
    figure, axes = _figure(height=3.0)
    for slug, rows in kpis.groupby("slug", sort=True):
        values = rows[column] * 100 if percent else rows[column]
        axes.plot(rows["day"], values, marker=".", label=slug)
    axes.set_ylabel(label)
    axes.set_ylim(bottom=0)
    _dates(axes, kpis["day"])
    axes.legend(fontsize=8, loc="upper left")
    return _svg(figure)


def agreement_chart(agreement: pd.DataFrame) -> str:
    compared = agreement[agreement["compared"] > 0] if not agreement.empty else agreement
    if compared.empty:
        return _empty_chart("Nada a comparar ainda: ative a amostra sombra (shadow_openai_sample) ou a OpenAI")
    figure, axes = _figure(height=3.0)
    slugs = list(compared["slug"])
    positions = range(len(slugs))
    for offset, column, label in ((-0.2, "is_lead_agreement", "é lead"), (0.2, "visita_agreement", "visita agendada")):
        axes.bar([p + offset for p in positions], compared[column].astype(float).fillna(0) * 100, width=0.4, label=label)
    _categories(axes, slugs)
    axes.set_ylim(0, 100)
    axes.set_ylabel("% de concordância")
    axes.grid(axis="y", alpha=0.3)
    axes.legend(fontsize=8, loc="lower right")
    return _svg(figure)


# --- HTML -------------------------------------------------------------------------------------

def _brl(value) -> str:
    if value is None or pd.isna(value):
        return "—"
    return "R$ " + f"{value:,.2f}".replace(",", "X").replace(".", ",").replace("X", ".")


def _pct(value) -> str:
    return "—" if value is None or pd.isna(value) else f"{value * 100:.1f}%".replace(".", ",")


def _num(value, digits: int = 2) -> str:
    return "—" if value is None or pd.isna(value) else f"{value:.{digits}f}".replace(".", ",")


def _yes(value) -> str:
    return "sim" if bool(value) else "não"


def _table(headers: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _outlook_table(outlooks: list[TenantOutlook]) -> str:
    rows = []
    for o in outlooks:
        used = o.month_to_date_brl / o.budget_brl if o.budget_brl else None
        over = o.budget_brl is not None and o.projected_brl > o.budget_brl
        if o.switching_brl is not None:
            switching = _brl(o.switching_brl)
        elif o.analyzer == "OpenAI":
            switching = "—"
        else:
            switching = "aguardando respostas da amostra" if o.shadow_sample else "ative a amostra sombra"
        rows.append([
            html.escape(o.name), o.analyzer, _brl(o.month_to_date_brl), _brl(o.budget_brl), _pct(used),
            f"<span class='{'alert' if over else ''}'>{_brl(o.projected_brl)}</span>",
            _pct(o.shadow_sample) if o.analyzer == "regex" else "—", switching,
        ])
    return _table(["Tenant", "Analisador", "Gasto no mês", "Orçamento", "% usado", "Projeção fim do mês",
                   "Amostra sombra", "Custo mensal projetado com OpenAI"], rows)


def _agreement_table(agreement: pd.DataFrame) -> str:
    if agreement.empty:
        return "<p class='muted'>Nenhuma comparação ainda.</p>"
    rows = [[
        html.escape(str(r.slug)), pd.Timestamp(r.month).strftime("%m/%Y"), str(int(r.compared)),
        _pct(r.is_lead_agreement), _num(r.is_lead_kappa), _pct(r.visita_agreement), _num(r.visita_kappa),
        _num(r.probabilidade_mae), _pct(r.regex_lead_rate), _pct(r.openai_lead_rate), _pct(r.names_match_share),
        str(int(r.disagreements)),
    ] for r in agreement.itertuples()]
    return _table(["Tenant", "Mês", "Comparadas", "Concordância é lead", "Kappa é lead", "Concordância visita",
                   "Kappa visita", "Erro médio probabilidade", "Leads regex", "Leads OpenAI", "Nomes iguais",
                   "Divergências"], rows)


def _answer(r, side: str) -> str:
    name = getattr(r, f"{side}_nome_mapeado_bot")
    return (f"lead: <b>{_yes(getattr(r, f'{side}_is_lead'))}</b> · visita: <b>{_yes(getattr(r, f'{side}_visita_agendada'))}</b>"
            f" · prob.: <b>{int(getattr(r, f'{side}_probabilidade_conversao'))}</b>"
            f"{' · nome: ' + html.escape(str(name)) if name and not pd.isna(name) else ''}"
            f"<br><span class='muted'>{html.escape(str(getattr(r, f'{side}_analise_ia')))}</span>")


def _examples_table(examples: pd.DataFrame) -> str:
    if examples.empty:
        return "<p class='muted'>Nenhuma divergência encontrada.</p>"
    rows = [[
        html.escape(str(r.slug)), f"#{int(r.display_id)}", _answer(r, "regex"), _answer(r, "openai"),
        f"<pre>{html.escape(str(r.transcript_start))}</pre>",
    ] for r in examples.itertuples()]
    return _table(["Tenant", "Conversa", "Regex", "OpenAI", "Início da conversa"], rows)


STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 24px auto; max-width: 1200px;
       color: #222; background: #fff; padding: 0 16px; }
h1 { font-size: 1.6em; margin-bottom: 0; } h2 { margin-top: 1.8em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; width: 100%; font-size: 0.9em; margin: 8px 0; }
th, td { border: 1px solid #ddd; padding: 4px 8px; vertical-align: top; text-align: left; }
th { background: #f4f6f8; } .muted { color: #666; } .alert { color: #b00020; font-weight: bold; }
pre { white-space: pre-wrap; font-size: 0.85em; margin: 0; max-height: 12em; overflow: hidden; }
svg { max-width: 100%; height: auto; }
"""


def render_report(data: ReportData) -> str:
    """The dashboard as one HTML document: inline CSS and SVG, nothing fetched from anywhere."""
    generated = data.generated_at.strftime("%d/%m/%Y %H:%M UTC")
    sections = [
        ("Gasto diário com OpenAI por tenant",
         "<p class='muted'>Linhas tracejadas: orçamento mensal dividido pelos dias do mês.</p>"
         + spend_chart(data.spend, data.outlooks, data.today)),
        (f"Mês atual ({data.today.strftime('%m/%Y')}): gasto × orçamento e projeção",
         "<p class='muted'>Projeção: gasto do mês até hoje ÷ dias decorridos × dias do mês. Para tenants no regex com amostra "
         "sombra, o custo projetado de mudar para a OpenAI = tokens por conversa na amostra × volume do mês × tabela de preços.</p>"
         + _outlook_table(data.outlooks) + budget_chart(data.outlooks)),
        ("Taxa de leads por dia", kpi_chart(data.kpis, "lead_rate", "% de leads", percent=True)),
        ("Visitas agendadas por dia", kpi_chart(data.kpis, "visits_scheduled", "visitas")),
        ("Concordância regex × OpenAI (último mês com dados)",
         "<p class='muted'>Conversas com as duas respostas para o mesmo conteúdo. Kappa de Cohen: 1 = concordância total, "
         "0 = o acaso; “—” quando indefinido (uma só classe).</p>"
         + _agreement_table(data.agreement) + agreement_chart(data.agreement)),
        ("Exemplos de divergência",
         "<p class='muted'>As divergências mais claras (é lead, visita agendada ou probabilidade com diferença ≥ 2).</p>"
         + _examples_table(data.examples)),
    ]
    body = "".join(f"<section><h2>{html.escape(title)}</h2>{content}</section>" for title, content in sections)
    return (
        "<!DOCTYPE html><html lang='pt-BR'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>allpfit-etl — leads e custos</title><style>{STYLE}</style></head><body>"
        f"<h1>Leads, qualidade e custos por tenant</h1><p class='muted'>Gerado em {generated} · allpfit-etl</p>"
        f"{body}</body></html>"
    )


def write_report(text: str, path: Path) -> Path:
    """Atomically: two runs writing at once never leave a half-written file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", encoding="utf-8", dir=path.parent, suffix=".tmp", delete=False) as handle:
        handle.write(text)
    os.chmod(handle.name, 0o644)  # a report to share, not a secret
    os.replace(handle.name, path)
    return path.resolve()
