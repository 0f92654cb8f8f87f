"""The dashboard's sections measured against the labels: the funnel over time per tenant and a
calibration chart per analyzer. Pure functions of the frames ``report.collect_report_data`` reads
(``report_funnel.sql``, ``report_calibration.sql``); Portuguese like the rest of the dashboard."""

from __future__ import annotations

import html

import pandas as pd

from allpfit_etl.monitoring.ground_truth import SMALL_SAMPLE, is_small
from allpfit_etl.monitoring.svg_charts import Bars, bar_chart, colour, message_chart

FUNNEL_MONTHS = 12  # months drawn per tenant
STAGES = (("conversations", "conversas"), ("leads", "leads"), ("visits_scheduled", "visitas agendadas"),
          ("visited", "visitaram"), ("converted", "matricularam"))
ANALYZER_NAMES = {"regex": "regex", "openai": "OpenAI"}
SMALL_NOTE = f"* amostra pequena: menos de {SMALL_SAMPLE} conversas por trás do número."
NO_LABELS = ("Nenhuma conversa com etiqueta de resultado: configure labels_converted, labels_visited, labels_lead e "
             "labels_not_lead do tenant (docs/ground_truth.md)")


def _pct(value, count) -> str:
    shown = "—" if value is None or pd.isna(value) else f"{value * 100:.1f}%".replace(".", ",")
    return f"{shown} <span class='muted'>(n={int(count)}){'*' if is_small(int(count)) else ''}</span>"


def _month(value) -> str:
    return pd.Timestamp(value).strftime("%m/%Y")


def funnel_chart(rows: pd.DataFrame) -> str:
    """One tenant's funnel stages per month, as grouped bars."""
    rows = rows.tail(FUNNEL_MONTHS)
    bars = [Bars(label, [float(v) for v in rows[column]], colour(index)) for index, (column, label) in enumerate(STAGES)]
    return bar_chart([_month(m) for m in rows["month"]], bars, y_label="conversas", legend_at="upper right")


def funnel_table(rows: pd.DataFrame) -> str:
    body = "".join(
        f"<tr><td>{_month(r.month)}</td><td>{r.conversations}</td><td>{r.leads}</td><td>{r.visits_scheduled}</td>"
        f"<td>{r.visited}</td><td>{r.converted}</td><td>{_pct(r.conversion_rate, r.leads)}</td>"
        f"<td>{_pct(r.labelled_share, r.conversations)}</td></tr>"
        for r in rows.tail(FUNNEL_MONTHS).itertuples())
    head = "".join(f"<th>{h}</th>" for h in ("Mês", "Conversas", "Leads", "Visitas agendadas", "Visitaram", "Matricularam",
                                             "Taxa de conversão (matrículas ÷ leads)", "Com etiqueta"))
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def funnel_section(funnel: pd.DataFrame) -> str:
    """Per tenant: the funnel table and chart, months in order."""
    if funnel.empty or int(funnel["labelled"].sum()) == 0:
        return message_chart(NO_LABELS)
    parts = []
    for slug, rows in funnel.groupby("slug", sort=True):
        name = rows["name"].iloc[0]
        parts.append(f"<h3>{html.escape(str(name))} <span class='muted'>({html.escape(str(slug))})</span></h3>"
                     + funnel_table(rows) + funnel_chart(rows))
    return ("<p class='muted'>Leads e visitas agendadas segundo o analisador; visitaram e matricularam segundo as "
            "etiquetas do Chatwoot (quem matriculou conta também como visitou). " + SMALL_NOTE + "</p>" + "".join(parts))


def calibration_chart(rows: pd.DataFrame) -> str:
    """One analyzer: the conversion rate at each probability 0–5, one bar per tenant."""
    bars = []
    for index, (slug, tenant_rows) in enumerate(rows.groupby("slug", sort=True)):
        by_level = {int(r.probabilidade_conversao): r for r in tenant_rows.itertuples()}
        values = [100.0 * by_level[p].converted / by_level[p].conversations
                  if p in by_level and by_level[p].conversations else 0.0 for p in range(6)]
        bars.append(Bars(str(slug), values, colour(index)))
    return bar_chart([f"probabilidade {p}" for p in range(6)], bars, y_label="% que matricularam", y_max=100,
                     legend_at="upper left")


def calibration_table(rows: pd.DataFrame) -> str:
    head = "<th>Tenant</th>" + "".join(f"<th>prob. {p}</th>" for p in range(6))
    body = []
    for slug, tenant_rows in rows.groupby("slug", sort=True):
        by_level = {int(r.probabilidade_conversao): r for r in tenant_rows.itertuples()}
        cells = []
        for p in range(6):
            r = by_level.get(p)
            n, won = (int(r.conversations), int(r.converted)) if r is not None else (0, 0)
            cells.append(f"<td>{won}/{n}{'*' if is_small(n) else ''}</td>")
        body.append(f"<tr><td>{html.escape(str(slug))}</td>{''.join(cells)}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def calibration_section(calibration: pd.DataFrame) -> str:
    """A chart per analyzer: a well-calibrated one converts more at each higher probability."""
    if calibration.empty or int(calibration["conversations"].sum()) == 0:
        return message_chart(NO_LABELS)
    parts = []
    for analyzer, rows in calibration.groupby("analyzer", sort=True):
        parts.append(f"<h3>{html.escape(ANALYZER_NAMES.get(str(analyzer), str(analyzer)))}</h3>"
                     + calibration_chart(rows) + calibration_table(rows))
    return ("<p class='muted'>Conversas com etiqueta de resultado, por probabilidade de conversão dada pelo analisador: "
            "quantas matricularam (matrículas/conversas). " + SMALL_NOTE + "</p>" + "".join(parts))
