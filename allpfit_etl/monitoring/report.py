"""The dashboard: one self-contained HTML file (charts as inline SVG, no script, stylesheet or
font loaded from anywhere), in Portuguese like the team's dashboards.

``collect_report_data`` reads the monitoring tables; ``render_report`` is pure.
"""

from __future__ import annotations

import datetime as dt
import html
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import sqlalchemy as sa

from allpfit_etl import settings
from allpfit_etl.monitoring.report_ground_truth import calibration_section, funnel_section
from allpfit_etl.monitoring.store import frame_of
from allpfit_etl.monitoring.svg_charts import Bars, Level, Series, bar_chart, colour, line_chart, message_chart

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
    funnel: pd.DataFrame = field(default_factory=pd.DataFrame)  # slug, name, month, the funnel's counts and rates
    calibration: pd.DataFrame = field(default_factory=pd.DataFrame)  # slug, analyzer, probability, conversations, converted


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
        funnel = _frame(conn, load_sql("analytics/monitoring/report_funnel"))
        calibration = _frame(conn, load_sql("analytics/monitoring/report_calibration"))
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
    return ReportData(now, today, spend, kpis, agreement, examples, outlooks, funnel, calibration)


# --- charts -----------------------------------------------------------------------------------

def _daily_series(frame: pd.DataFrame, column: str, scale: float = 1.0, marker_radius: float = 3.0) -> list[Series]:
    return [
        Series(str(slug), [(day.date(), float(value) * scale) for day, value in zip(rows["day"], rows[column])],
               colour(index), marker_radius)
        for index, (slug, rows) in enumerate(frame.groupby("slug", sort=True))
    ]


def spend_chart(spend: pd.DataFrame, outlooks: list[TenantOutlook], today: dt.date) -> str:
    if spend.empty:
        return message_chart("Nenhuma chamada à OpenAI registrada ainda")
    budgets = {o.slug: o.budget_brl for o in outlooks}
    days_in_month = pd.Period(today, freq="M").days_in_month
    series = _daily_series(spend, "cost_brl")
    levels = [Level(budgets[s.label] / days_in_month, f"{s.label}: orçamento/dia (R$ {budgets[s.label] / days_in_month:.2f})",
                    s.colour) for s in series if budgets.get(s.label)]
    return line_chart(series, y_label="R$ por dia", levels=levels)


def budget_chart(outlooks: list[TenantOutlook]) -> str:
    if not outlooks:
        return message_chart("Nenhum tenant ativo")
    bars = [Bars("gasto no mês", [o.month_to_date_brl for o in outlooks], colour(0)),
            Bars("projeção fim do mês", [o.projected_brl for o in outlooks], colour(1), opacity=0.7)]
    marks = [Level(o.budget_brl, "orçamento", colour(3), category=index)
             for index, o in enumerate(outlooks) if o.budget_brl is not None]
    return bar_chart([o.slug for o in outlooks], bars, y_label="R$", levels=marks)


def kpi_chart(kpis: pd.DataFrame, column: str, label: str, percent: bool = False) -> str:
    if kpis.empty:
        return message_chart("Nenhuma conversa analisada ainda")
    return line_chart(_daily_series(kpis, column, 100.0 if percent else 1.0, marker_radius=2.0), y_label=label,
                      height=288)


def agreement_chart(agreement: pd.DataFrame) -> str:
    compared = agreement[agreement["compared"] > 0] if not agreement.empty else agreement
    if compared.empty:
        return message_chart("Nada a comparar ainda: ative a amostra sombra (shadow_openai_sample) ou a OpenAI")
    bars = [Bars(label, list(compared[column].astype(float).fillna(0) * 100), colour(index))
            for index, (column, label) in enumerate((("is_lead_agreement", "é lead"), ("visita_agreement", "visita agendada")))]
    return bar_chart([str(slug) for slug in compared["slug"]], bars, y_label="% de concordância", y_max=100,
                     legend_at="lower right")


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
h3 { margin: 1.2em 0 0.3em; font-size: 1.1em; }
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
        ("Funil por tenant: leads, visitas e matrículas por mês", funnel_section(data.funnel)),
        ("Calibração: matrículas por probabilidade de conversão", calibration_section(data.calibration)),
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
