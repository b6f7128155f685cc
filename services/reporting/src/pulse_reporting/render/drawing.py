"""Report charts as reportlab vector drawings: embedded as-is in the PDF and converted to
inline SVG for HTML. Pure Python, a few milliseconds per chart, deterministic output.

Labels are ``String`` shapes: literal text in the PDF (no markup) and XML-escaped text nodes
in the SVG. Every label from data (channel names, stages, series labels) passes
:func:`chart_text`, which folds control characters and line breaks and shortens it."""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from reportlab.graphics import renderSVG
from reportlab.graphics.shapes import Drawing, Line, Polygon, PolyLine, Rect, String
from reportlab.lib import colors

from pulse_reporting.domain.formatting import fmt_value
from pulse_reporting.domain.model import Fmt, Report

GOOD = colors.HexColor("#1a7f37")
BAD = colors.HexColor("#cf222e")
GREY = colors.HexColor("#6e7781")
ACCENT = colors.HexColor("#0969da")
ACCENT2 = colors.HexColor("#8250df")
BAND = colors.HexColor("#e4d8f7")
SPAN = colors.HexColor("#eef5fd")
AXIS = colors.HexColor("#8c959f")
TEXT = colors.HexColor("#1f2328")
FONT = "Helvetica"

WIDTH, HEIGHT = 540.0, 210.0
LEFT, RIGHT, BOTTOM, TOP = 62.0, 12.0, 34.0, 26.0


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """Round tick values covering [lo, hi] (1/2/5 × 10^k steps)."""
    if hi <= lo:
        hi = lo + (abs(lo) or 1.0)
    raw = (hi - lo) / max(count - 1, 1)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)
    start = math.floor(lo / step) * step
    ticks = []
    value = start
    while value <= hi + step * 1e-9:
        ticks.append(round(value, 10))
        value += step
    if ticks[-1] < hi:
        ticks.append(ticks[-1] + step)
    return ticks


@dataclass
class Frame:
    """Plot area with a linear value axis (y) and a 0..1 x axis."""

    drawing: Drawing
    lo: float
    hi: float
    x0: float = LEFT
    y0: float = BOTTOM
    x1: float = WIDTH - RIGHT
    y1: float = HEIGHT - TOP

    def y(self, value: float) -> float:
        return self.y0 + (value - self.lo) / (self.hi - self.lo) * (self.y1 - self.y0)

    def x(self, fraction: float) -> float:
        return self.x0 + fraction * (self.x1 - self.x0)


_CONTROL = dict.fromkeys([*range(0x00, 0x20), 0x7F, 0x85, 0x2028, 0x2029], " ")


def chart_text(text: object, limit: int | None = None) -> str:
    """A data label as one line of plain text, at most ``limit`` characters."""
    line = str(text).translate(_CONTROL)
    return line if limit is None else line[:limit]


def _drawing(title: str, height: float = HEIGHT) -> Drawing:
    d = Drawing(WIDTH, height)
    d.add(String(WIDTH / 2, height - 16, chart_text(title), fontName=FONT + "-Bold", fontSize=10,
                 textAnchor="middle", fillColor=TEXT))
    return d


def _value_axis(
    d: Drawing, lo: float, hi: float, fmt: Fmt, height: float = HEIGHT, top: float = TOP
) -> Frame:
    ticks = nice_ticks(lo, hi)
    frame = Frame(d, ticks[0], ticks[-1], y1=height - top)
    for t in ticks:
        y = frame.y(t)
        d.add(Line(frame.x0, y, frame.x1, y, strokeColor=colors.HexColor("#eaeef2"),
                   strokeWidth=0.5))
        d.add(String(frame.x0 - 4, y - 3, fmt_value(t, fmt), fontName=FONT, fontSize=7,
                     textAnchor="end", fillColor=GREY))
    d.add(Line(frame.x0, frame.y0, frame.x1, frame.y0, strokeColor=AXIS, strokeWidth=0.7))
    return frame


def _label(d: Drawing, x: float, y: float, text: str, size: float = 7,
           anchor: str = "middle", colour: colors.Color = TEXT) -> None:
    d.add(String(x, y, text, fontName=FONT, fontSize=size, textAnchor=anchor,
                 fillColor=colour))


def mrr_bridge(report: Report) -> Drawing | None:
    b = report.mrr_bridge
    steps: list[tuple[str, float | None, str]] = [
        ("Start", b.starting, "total"), ("New", b.new, "up"),
        ("Expansion", b.expansion, "up"), ("Reactivation", b.reactivation, "up"),
        ("Contraction", None if b.contraction is None else -b.contraction, "down"),
        ("Churn", None if b.churn is None else -b.churn, "down"),
        ("End", b.ending, "total"),
    ]
    if all(v is None for _, v, _ in steps):
        return None
    bars: list[tuple[str, float, float, colors.Color, float | None]] = []
    running = b.starting or 0.0
    for label, value, kind in steps:
        v = value or 0.0
        if kind == "total":
            bars.append((label, 0.0, v, ACCENT, value))
            if label == "Start":
                running = v
        else:
            bars.append((label, running, running + v, GOOD if v >= 0 else BAD, value))
            running += v
    tops = [max(a, c) for _, a, c, _, _ in bars]
    totals = [c for _, a, c, _, _ in bars if a == 0.0 and c > 0]
    lo = min(totals) * 0.85 if totals else 0.0
    # Floating bars (movements) may dip below the smallest total; none may exist at all.
    lo = min([lo, *(min(a, c) for _, a, c, _, _ in bars if a != 0.0)])
    d = _drawing("MRR bridge")
    f = _value_axis(d, max(0.0, lo), max(tops) * 1.04 or 1.0, Fmt.MONEY)
    slot = 1 / len(bars)
    for i, (label, a, c, colour, value) in enumerate(bars):
        x = f.x(slot * i + slot * 0.15)
        w = f.x(slot * 0.7) - f.x0
        ya, yc = f.y(max(min(a, c), f.lo)), f.y(max(a, c))
        d.add(Rect(x, ya, w, max(yc - ya, 0.6), fillColor=colour, strokeColor=None))
        _label(d, x + w / 2, yc + 3, fmt_value(value, Fmt.MONEY), 6.5)
        _label(d, x + w / 2, f.y0 - 11, label, 7.5)
    return d


def channels(report: Report) -> Drawing | None:
    rows = [r for r in report.channels if (r.spend or 0) > 0 or (r.attributed_revenue or 0) > 0]
    if not rows:
        return None
    rows = rows[:12]
    d = _drawing(f"Spend and attributed revenue by channel ({report.meta.model})")
    hi = max(max(r.spend or 0, r.attributed_revenue or 0) for r in rows)
    f = _value_axis(d, 0.0, hi * 1.05, Fmt.MONEY, top=TOP + 14)
    slot = 1 / len(rows)
    for i, r in enumerate(rows):
        x = f.x(slot * i + slot * 0.12)
        w = (f.x(slot * 0.76) - f.x0) / 2
        for j, (value, colour) in enumerate(((r.spend, GREY), (r.attributed_revenue, ACCENT))):
            if value:
                d.add(Rect(x + j * w, f.y(0), w, f.y(value) - f.y(0), fillColor=colour,
                           strokeColor=None))
        stagger = 9 if len(rows) > 6 and i % 2 else 0  # keep long names from colliding
        _label(d, x + w, f.y0 - 11 - stagger, chart_text(r.name, 16), 6.5)
    for k, (text, colour) in enumerate((("Spend", GREY), ("Attributed revenue", ACCENT))):
        lx = f.x1 - 150 + k * 55
        d.add(Rect(lx, HEIGHT - 36, 7, 7, fillColor=colour, strokeColor=None))
        _label(d, lx + 10, HEIGHT - 35, text, 7, "start")
    return d


def forecast_by_channel(report: Report) -> Drawing | None:
    """Next-days spend forecast per channel: bars with their 80 % interval as whiskers."""
    rows = [f for f in report.forecast_by_channel if f.kpi == "spend"][:12]
    if not rows:
        return None
    days = rows[0].horizon_days
    d = _drawing(f"Spend forecast by channel, next {days} days (80% interval)")
    hi = max(max(f.total_upper, f.total) for f in rows)
    frame = _value_axis(d, 0.0, (hi or 1.0) * 1.05, Fmt.MONEY)
    slot = 1 / len(rows)
    for i, f in enumerate(rows):
        x = frame.x(slot * i + slot * 0.2)
        w = frame.x(slot * 0.6) - frame.x0
        d.add(Rect(x, frame.y(0), w, frame.y(max(f.total, 0.0)) - frame.y(0),
                   fillColor=ACCENT, strokeColor=None))
        mid = x + w / 2
        lo, up = frame.y(max(f.total_lower, 0.0)), frame.y(f.total_upper)
        d.add(Line(mid, lo, mid, up, strokeColor=TEXT, strokeWidth=0.8))
        for y in (lo, up):
            d.add(Line(mid - 4, y, mid + 4, y, strokeColor=TEXT, strokeWidth=0.8))
        stagger = 9 if len(rows) > 6 and i % 2 else 0
        _label(d, mid, frame.y0 - 11 - stagger, chart_text(f.dimension_value, 16), 6.5)
    return d


def funnel(report: Report) -> Drawing | None:
    steps = [s for s in report.funnel if s.count is not None]
    if not steps:
        return None
    height = 40.0 + 22.0 * len(steps)
    d = _drawing("Funnel", height)
    top = max(s.count or 0 for s in steps) or 1.0
    x0, x1 = 90.0, WIDTH - 80
    for i, s in enumerate(steps):
        y = height - 40 - i * 22
        w = (s.count or 0) / top * (x1 - x0)
        d.add(Rect(x0, y, max(w, 0.6), 15, fillColor=ACCENT, strokeColor=None))
        _label(d, x0 - 6, y + 4, chart_text(s.stage), 8, "end")
        text = fmt_value(s.count, Fmt.COUNT)
        if s.conversion_to_next is not None:
            text += f"  → {fmt_value(s.conversion_to_next, Fmt.PERCENT)}"
        _label(d, x0 + w + 5, y + 4, text, 7.5, "start")
    return d


def trend(report: Report, kpi: str) -> Drawing | None:
    series = next((t for t in report.trends if t.kpi == kpi), None)
    if series is None:
        return None
    actual = [(p.day, p.value) for p in series.points if p.value is not None]
    forecast = next((f for f in report.forecast if f.kpi == kpi), None)
    if not actual:
        return None
    days = [a for a, _ in actual] + ([p.day for p in forecast.points] if forecast else [])
    first, last = min(days), max(days)
    values = [v for _, v in actual if v is not None]
    if forecast:
        values += [p.upper for p in forecast.points] + [p.lower for p in forecast.points]
    lo, hi = min(values), max(values)
    pad = (hi - lo) * 0.05 or abs(hi) * 0.05 or 1.0
    title = f"{series.label} — daily" + (", with 30-day forecast" if forecast else "")
    d = _drawing(title, 190.0)
    f = _value_axis(d, lo - pad, hi + pad, series.fmt, 190.0)
    span = max((last - first).days, 1)

    def fx(day: dt.date) -> float:
        return f.x((day - first).days / span)

    start, end = report.meta.period_start, report.meta.period_end
    if start >= first:
        d.add(Rect(fx(start), f.y0, fx(end) - fx(start), f.y1 - f.y0, fillColor=SPAN,
                   strokeColor=None))
    if forecast:
        band: list[float] = []
        for p in forecast.points:
            band += [fx(p.day), f.y(p.upper)]
        for p in reversed(forecast.points):
            band += [fx(p.day), f.y(p.lower)]
        d.add(Polygon(band, fillColor=BAND, strokeColor=None))
        line: list[float] = []
        for p in forecast.points:
            line += [fx(p.day), f.y(p.value)]
        d.add(PolyLine(line, strokeColor=ACCENT2, strokeWidth=1.2, strokeDashArray=[3, 2]))
    points: list[float] = []
    for day, value in actual:
        points += [fx(day), f.y(value or 0.0)]
    d.add(PolyLine(points, strokeColor=ACCENT, strokeWidth=1.3))
    for tick in _date_ticks(first, last):
        _label(d, fx(tick), f.y0 - 11, tick.strftime("%d %b"), 6.5)
        d.add(Line(fx(tick), f.y0, fx(tick), f.y0 - 3, strokeColor=AXIS, strokeWidth=0.5))
    return d


def _date_ticks(first: dt.date, last: dt.date, count: int = 7) -> list[dt.date]:
    span = (last - first).days
    step = max(1, math.ceil(span / count))
    return [first + dt.timedelta(days=i) for i in range(0, span + 1, step)]


@dataclass(frozen=True)
class Chart:
    name: str
    drawing: Drawing

    def svg(self) -> str:
        text = renderSVG.drawToString(self.drawing)
        text = text[text.index("<svg"):]
        # responsive: keep the viewBox, let CSS size it
        return re.sub(r'<svg([^>]*?) width="[^"]*" height="[^"]*"', r"<svg\1", text, count=1)


BUILDERS: Sequence[tuple[str, Callable[[Report], Drawing | None]]] = (
    ("mrr_bridge", mrr_bridge),
    ("channels", channels),
    ("funnel", funnel),
    ("forecast_by_channel", forecast_by_channel),
)


def report_charts(report: Report) -> list[Chart]:
    out = [Chart(name, d) for name, build in BUILDERS if (d := build(report)) is not None]
    for t in report.trends:
        d = trend(report, t.kpi)
        if d is not None:
            out.append(Chart(f"trend_{t.kpi}", d))
    return out
