"""The report's SVG charts: axis ticks, and charts that are well-formed SVG drawing what they are given."""

from __future__ import annotations

import datetime as dt
import xml.etree.ElementTree as ET

import pytest

from allpfit_etl.monitoring.svg_charts import (
    Bars, Level, Series, bar_chart, date_ticks, line_chart, message_chart, nice_ticks, tick_label,
)

SVG = "{http://www.w3.org/2000/svg}"
DAY = dt.date(2025, 11, 10)


@pytest.mark.parametrize("high, expected", [
    (4.2, [0, 1, 2, 3, 4, 5]),
    (100, [0, 20, 40, 60, 80, 100]),
    (0.9, [0, 0.2, 0.4, 0.6, 0.8, 1.0]),
    (11, [0, 2.5, 5, 7.5, 10, 12.5]),
    (0, [0, 1]),
])
def test_nice_ticks_start_at_zero_and_cover_the_highest_value(high, expected):
    assert nice_ticks(high) == pytest.approx(expected)


def test_tick_labels_use_a_decimal_comma_and_the_decimals_the_step_needs():
    assert [tick_label(v, 2.5) for v in (0, 2.5, 5)] == ["0,0", "2,5", "5,0"]
    assert tick_label(0.75, 0.25) == "0,75"
    assert tick_label(40, 20) == "40"


def test_date_ticks_stay_under_twelve_and_inside_the_range():
    for span in (0, 6, 30, 60, 400):
        ticks = date_ticks(DAY, DAY + dt.timedelta(days=span))
        assert 1 <= len(ticks) <= 12, span
        assert all(DAY <= t <= DAY + dt.timedelta(days=span) for t in ticks)
    assert date_ticks(DAY, DAY + dt.timedelta(days=6)) == [DAY + dt.timedelta(days=i) for i in range(7)]


def parse(svg: str) -> ET.Element:
    root = ET.fromstring(svg)
    assert root.tag == f"{SVG}svg"
    return root


def texts(root: ET.Element) -> list[str]:
    return [t.text for t in root.iter(f"{SVG}text")]


def test_line_chart_draws_each_series_with_its_points_levels_and_legend():
    series = [Series("allpfit", [(DAY + dt.timedelta(days=i), v) for i, v in enumerate((1.0, 3.0, 2.0))], "#1f77b4"),
              Series("mossoró <b>", [(DAY, 0.5)], "#ff7f0e")]
    root = parse(line_chart(series, y_label="R$ por dia", levels=[Level(4.0, "orçamento/dia", "#1f77b4")]))
    lines = list(root.iter(f"{SVG}polyline"))
    assert [len(p.get("points").split()) for p in lines] == [3, 1]
    assert len(list(root.iter(f"{SVG}circle"))) == 4
    labels = texts(root)
    assert {"allpfit", "mossoró <b>", "orçamento/dia", "R$ por dia", "10/11/25"} <= set(labels)  # escaped, then parsed back
    # y grows upwards: the highest value is drawn highest, and the budget level above every point
    ys = [float(pair.split(",")[1]) for pair in lines[0].get("points").split()]
    assert ys[1] < ys[2] < ys[0]
    dashed = [line for line in root.iter(f"{SVG}line") if line.get("stroke-dasharray") and line.get("x1") != line.get("x2")]
    assert dashed and all(float(d.get("y1")) < min(ys) for d in dashed if d.get("stroke") == "#1f77b4")
    assert "5" in labels  # the axis reaches the level (4.0 × 1.05 → up to 5)


def test_bar_chart_draws_one_bar_per_category_and_group_with_one_legend_entry_for_the_marks():
    bars = [Bars("gasto no mês", [1.0, 2.0], "#1f77b4"), Bars("projeção", [3.0, 0.0], "#ff7f0e", opacity=0.7)]
    marks = [Level(2.5, "orçamento", "#d62728", category=0), Level(1.5, "orçamento", "#d62728", category=1)]
    root = parse(bar_chart(["allpfit", "jp_sul"], bars, y_label="R$", levels=marks))
    rects = [r for r in root.iter(f"{SVG}rect") if r.get("fill") in ("#1f77b4", "#ff7f0e") and float(r.get("width")) > 20]
    assert len(rects) == 4
    heights = [float(r.get("height")) for r in rects]
    # in category order, each category's groups side by side, heights in proportion to the values
    assert [h / heights[0] for h in heights] == pytest.approx([1.0, 3.0, 2.0, 0.0], rel=0.01)
    assert texts(root).count("orçamento") == 1
    assert {"allpfit", "jp_sul", "gasto no mês", "projeção"} <= set(texts(root))


def test_a_fixed_axis_and_a_message_chart():
    root = parse(bar_chart(["a"], [Bars("é lead", [50.0], "#1f77b4")], y_label="%", y_max=100))
    assert [t for t in texts(root) if t and t.isdigit()] == ["0", "20", "40", "60", "80", "100"]
    assert texts(parse(message_chart("Nada a comparar ainda"))) == ["Nada a comparar ainda"]
