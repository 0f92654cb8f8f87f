"""The report's charts as inline SVG text: lines over days and grouped bars, with axes, grid,
ticks and a legend.

Drawn here rather than by a plotting library: four small charts do not need one, and
matplotlib cost every run about a second (its import and its layout engine) for the same picture.
Pure functions of their inputs: no clock, no files.
"""

from __future__ import annotations

import datetime as dt
import html
import math
from dataclasses import dataclass
from typing import Sequence

# matplotlib's "tab10", the colours the team's earlier charts used
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")
WIDTH = 960
LEFT, RIGHT, TOP, BOTTOM = 64, 16, 12, 30
FONT = "font-family='system-ui, -apple-system, Segoe UI, Roboto, sans-serif'"
MAX_DATE_TICKS = 12
DAY_STEPS = (1, 2, 3, 7, 14, 28, 56, 91, 182, 364)


def colour(index: int) -> str:
    return PALETTE[index % len(PALETTE)]


@dataclass(frozen=True)
class Series:
    label: str
    points: Sequence[tuple[dt.date, float]]
    colour: str
    marker_radius: float = 3.0


@dataclass(frozen=True)
class Level:
    """A horizontal dashed line: across the whole chart, or over one bar category."""

    value: float
    label: str | None
    colour: str
    category: int | None = None


@dataclass(frozen=True)
class Bars:
    label: str
    values: Sequence[float]
    colour: str
    opacity: float = 1.0


def nice_ticks(high: float, count: int = 5) -> list[float]:
    """Ticks from 0 to at least ``high`` at a 1-2-2.5-5 × 10ⁿ step."""
    if not high > 0 or math.isinf(high):
        return [0.0, 1.0]
    raw = high / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    return [i * step for i in range(math.ceil(high / step - 1e-9) + 1)]


def tick_label(value: float, step: float) -> str:
    """As many decimals as the step needs (2,5 · 0,25 · 10), with a decimal comma."""
    decimals = next((d for d in range(5) if abs(round(step, d) - step) < 1e-9 * max(1.0, step)), 4)
    return f"{value:.{decimals}f}".replace(".", ",")


def date_ticks(first: dt.date, last: dt.date) -> list[dt.date]:
    span = (last - first).days
    step = next((s for s in DAY_STEPS if span / s <= MAX_DATE_TICKS - 1), DAY_STEPS[-1])
    start = first + dt.timedelta(days=(-first.toordinal()) % step)  # steps on fixed days, not on the data's first
    return [start + dt.timedelta(days=i * step) for i in range((last - start).days // step + 1)]


def _text(x: float, y: float, text: str, *, size: int = 11, anchor: str = "middle", fill: str = "#333",
          rotate: bool = False) -> str:
    transform = f" transform='rotate(-90 {x:.1f} {y:.1f})'" if rotate else ""
    return (f"<text x='{x:.1f}' y='{y:.1f}' font-size='{size}' text-anchor='{anchor}' fill='{fill}'{transform}>"
            f"{html.escape(text)}</text>")


class _Frame:
    """The plot area of one chart: pixel mapping, y grid and axis, legend."""

    def __init__(self, height: int, y_high: float, y_label: str, y_ticks: list[float] | None = None):
        self.height = height
        self.ticks = y_ticks or nice_ticks(y_high)
        self.y_top = self.ticks[-1]
        self.x0, self.x1 = LEFT, WIDTH - RIGHT
        self.y0, self.y1 = height - BOTTOM, TOP
        self.parts: list[str] = []
        step = self.ticks[1] - self.ticks[0]
        for tick in self.ticks:
            y = self.y(tick)
            self.parts.append(f"<line x1='{self.x0}' x2='{self.x1}' y1='{y:.1f}' y2='{y:.1f}' stroke='#ddd'/>")
            self.parts.append(_text(self.x0 - 6, y + 4, tick_label(tick, step), anchor="end"))
        self.parts.append(_text(14, (self.y0 + self.y1) / 2, y_label, rotate=True))
        self.legend: list[tuple[str, str, str]] = []  # (label, colour, kind)

    def y(self, value: float) -> float:
        return self.y0 - (self.y0 - self.y1) * (value / self.y_top if self.y_top else 0)

    def svg(self, legend_at: str = "upper left") -> str:
        axes = (f"<line x1='{self.x0}' x2='{self.x1}' y1='{self.y0}' y2='{self.y0}' stroke='#333'/>"
                f"<line x1='{self.x0}' x2='{self.x0}' y1='{self.y0}' y2='{self.y1}' stroke='#333'/>")
        return (f"<svg xmlns='http://www.w3.org/2000/svg' width='{WIDTH}' height='{self.height}' "
                f"viewBox='0 0 {WIDTH} {self.height}' {FONT} role='img'>"
                + "".join(self.parts) + axes + self._legend(legend_at) + "</svg>")

    def _legend(self, at: str) -> str:
        if not self.legend:
            return ""
        width = 36 + 6.2 * max(len(label) for label, _, _ in self.legend)
        height = 8 + 16 * len(self.legend)
        x = self.x0 + 8 if at.endswith("left") else self.x1 - 8 - width
        y = self.y1 + 6 if at.startswith("upper") else self.y0 - 6 - height
        parts = [f"<rect x='{x:.1f}' y='{y:.1f}' width='{width:.1f}' height='{height}' fill='#fff' "
                 f"fill-opacity='0.85' stroke='#ccc' rx='3'/>"]
        for i, (label, swatch, kind) in enumerate(self.legend):
            cy = y + 12 + 16 * i
            if kind == "bar":
                parts.append(f"<rect x='{x + 8:.1f}' y='{cy - 5:.1f}' width='18' height='10' fill='{swatch}'/>")
            else:
                dash = " stroke-dasharray='5 3'" if kind == "dashed" else ""
                parts.append(f"<line x1='{x + 6:.1f}' x2='{x + 28:.1f}' y1='{cy:.1f}' y2='{cy:.1f}' "
                             f"stroke='{swatch}' stroke-width='2'{dash}/>")
            parts.append(_text(x + 34, cy + 4, label, size=10, anchor="start"))
        return "".join(parts)


def message_chart(message: str) -> str:
    """A chart-sized note where there is nothing to draw yet."""
    height = 115
    return (f"<svg xmlns='http://www.w3.org/2000/svg' width='{WIDTH}' height='{height}' viewBox='0 0 {WIDTH} {height}' "
            f"{FONT} role='img'>{_text(WIDTH / 2, height / 2 + 4, message, size=14, fill='#666')}</svg>")


def line_chart(series: Sequence[Series], *, y_label: str, levels: Sequence[Level] = (), height: int = 346) -> str:
    """Values per day, one line per series, y from 0; the days at least a week wide, so one or
    two days of data do not stretch over an empty axis."""
    days = [day for s in series for day, _ in s.points]
    first, last = min(days), max(days)
    pad = max(1.0, (7 - (last - first).days) / 2)
    left, right = first.toordinal() - pad, last.toordinal() + pad
    values = [v for s in series for _, v in s.points] + [level.value for level in levels]
    frame = _Frame(height, max(values, default=0) * 1.05, y_label)

    def x(day: dt.date) -> float:
        return frame.x0 + (frame.x1 - frame.x0) * (day.toordinal() - left) / (right - left)

    for day in date_ticks(first - dt.timedelta(days=int(pad)), last + dt.timedelta(days=int(pad))):
        if left <= day.toordinal() <= right:
            frame.parts.append(f"<line x1='{x(day):.1f}' x2='{x(day):.1f}' y1='{frame.y0}' y2='{frame.y1}' stroke='#eee'/>")
            frame.parts.append(_text(x(day), frame.y0 + 16, day.strftime("%d/%m/%y")))
    for s in series:
        points = " ".join(f"{x(day):.1f},{frame.y(value):.1f}" for day, value in s.points)
        frame.parts.append(f"<polyline points='{points}' fill='none' stroke='{s.colour}' stroke-width='1.8'/>")
        frame.parts.extend(f"<circle cx='{x(day):.1f}' cy='{frame.y(value):.1f}' r='{s.marker_radius}' fill='{s.colour}'/>"
                           for day, value in s.points)
        frame.legend.append((s.label, s.colour, "line"))
    for level in levels:
        y = frame.y(level.value)
        frame.parts.append(f"<line x1='{frame.x0}' x2='{frame.x1}' y1='{y:.1f}' y2='{y:.1f}' stroke='{level.colour}' "
                           f"stroke-dasharray='5 3'/>")
        if level.label:
            frame.legend.append((level.label, level.colour, "dashed"))
    return frame.svg()


def bar_chart(categories: Sequence[str], bars: Sequence[Bars], *, y_label: str, y_max: float | None = None,
              levels: Sequence[Level] = (), legend_at: str = "upper right", height: int = 288) -> str:
    """Grouped bars per category (room for three categories at least, so one tenant is not one
    wall of colour); ``levels`` with a category mark a value over that category's bars."""
    values = [v for b in bars for v in b.values] + [level.value for level in levels]
    top = y_max if y_max is not None else max(values, default=0) * 1.05
    frame = _Frame(height, top, y_label, None if y_max is None else [y_max * i / 5 for i in range(6)])
    slots = max(len(categories), 3)
    slot = (frame.x1 - frame.x0) / slots
    width = 0.8 * slot / max(1, len(bars))
    for index, category in enumerate(categories):
        centre = frame.x0 + slot * (index + 0.5)
        frame.parts.append(_text(centre, frame.y0 + 16, category))
        for position, group in enumerate(bars):
            value = max(0.0, float(group.values[index]))
            left = centre - 0.4 * slot + position * width
            opacity = f" fill-opacity='{group.opacity}'" if group.opacity < 1 else ""
            frame.parts.append(f"<rect x='{left:.1f}' y='{frame.y(value):.1f}' width='{width:.1f}' "
                               f"height='{frame.y0 - frame.y(value):.1f}' fill='{group.colour}'{opacity}/>")
    frame.legend.extend((group.label, group.colour, "bar") for group in bars)
    labelled = False
    for level in levels:
        centre = frame.x0 + slot * ((level.category or 0) + 0.5)
        y = frame.y(level.value)
        frame.parts.append(f"<line x1='{centre - 0.45 * slot:.1f}' x2='{centre + 0.45 * slot:.1f}' y1='{y:.1f}' "
                           f"y2='{y:.1f}' stroke='{level.colour}' stroke-width='1.5' stroke-dasharray='5 3'/>")
        if level.label and not labelled:  # one legend entry for all the marks
            frame.legend.append((level.label, level.colour, "dashed"))
            labelled = True
    return frame.svg(legend_at)
