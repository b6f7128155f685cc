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
from reportlab.graphics.shapes import Circle, Drawing, Line, Polygon, PolyLine, Rect, String
from reportlab.lib import colors

from pulse_reporting.domain.formatting import fmt_value
from pulse_reporting.domain.model import Fmt, InsightChart, InsightSection, Report

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


def mmm_roi(report: Report) -> Drawing | None:
    """Incremental ROI per channel: a dot on its 90 % interval (whisker), beside a diamond
    at the channel's attribution ROAS (position-based, the executive default); the dashed line is break-even (1x)."""
    section = report.mmm
    if section is None or not section.channels:
        return None
    rows = [c for c in section.channels if c.roi is not None][:12]
    if not rows:
        return None
    d = _drawing("Incremental ROI by channel (90% interval) vs attribution ROAS")
    values = [1.0]
    for c in rows:
        values += [v for v in (c.roi, c.roi_lower, c.roi_upper, c.attribution_roas)
                   if v is not None]
    frame = _value_axis(d, min(0.0, min(values)), max(values) * 1.08, Fmt.RATIO,
                        top=TOP + 14)
    one = frame.y(1.0)
    d.add(Line(frame.x0, one, frame.x1, one, strokeColor=GREY, strokeWidth=0.7,
               strokeDashArray=[3, 2]))
    _label(d, frame.x1, one + 2, "break-even", 6, "end", GREY)
    slot = 1 / len(rows)
    for i, c in enumerate(rows):
        mid = frame.x(slot * i + slot * 0.45)
        lo = frame.y(c.roi_lower if c.roi_lower is not None else c.roi or 0.0)
        up = frame.y(c.roi_upper if c.roi_upper is not None else c.roi or 0.0)
        d.add(Line(mid, lo, mid, up, strokeColor=ACCENT, strokeWidth=1.6))
        for y in (lo, up):
            d.add(Line(mid - 4, y, mid + 4, y, strokeColor=ACCENT, strokeWidth=1.0))
        y = frame.y(c.roi or 0.0)
        d.add(Circle(mid, y, 3.2, fillColor=ACCENT, strokeColor=colors.white,
                     strokeWidth=0.6))
        _label(d, mid + 6, y - 2.5, fmt_value(c.roi, Fmt.RATIO), 6.2, "start")
        if c.attribution_roas is not None:
            ax, ay = mid + 14, frame.y(c.attribution_roas)
            d.add(Polygon([ax, ay + 3.5, ax + 3.5, ay, ax, ay - 3.5, ax - 3.5, ay],
                          fillColor=ACCENT2, strokeColor=None))
        stagger = 9 if len(rows) > 6 and i % 2 else 0
        _label(d, mid, frame.y0 - 11 - stagger, chart_text(c.channel, 16), 6.5)
    legend = (("MMM ROI, 90% interval", ACCENT), ("Attribution ROAS (position-based)", ACCENT2))
    for k, (text, colour) in enumerate(legend):
        lx = frame.x1 - 230 + k * 105
        d.add(Rect(lx, HEIGHT - 36, 7, 7, fillColor=colour, strokeColor=None))
        _label(d, lx + 10, HEIGHT - 35, text, 7, "start")
    return d


CURVE_COLUMNS = 3


def mmm_curves(report: Report) -> Drawing | None:
    """Response curve per channel (small multiples): expected contribution per period at a
    steady spend, its 90 % band, the current spend (grey line) and the optimiser's
    recommended spend (green line)."""
    section = report.mmm
    curves = [c for c in (section.curves if section else []) if len(c.points) >= 2][:12]
    if not curves:
        return None
    grain = section.run.grain if section and section.run else "period"
    rows = math.ceil(len(curves) / CURVE_COLUMNS)
    panel_w, panel_h = WIDTH / CURVE_COLUMNS, 128.0
    height = 40.0 + rows * panel_h
    d = _drawing(f"Response curves: contribution per {grain} at a steady spend per {grain} "
                 "(90% band)", height)
    _label(d, WIDTH / 2, height - 28, "grey: current spend · green: recommended spend",
           6.8, "middle", GREY)
    for index, curve in enumerate(curves):
        col, row = index % CURVE_COLUMNS, index // CURVE_COLUMNS
        x0 = col * panel_w + 44
        x1 = (col + 1) * panel_w - 10
        y0 = height - 40 - (row + 1) * panel_h + 24
        y1 = y0 + panel_h - 42
        max_x = max([p.spend for p in curve.points]
                    + [v for v in (curve.current_spend, curve.recommended_spend) if v]) or 1.0
        ticks = nice_ticks(0.0, max(p.upper for p in curve.points) or 1.0, 3)
        hi_y = ticks[-1] or 1.0

        def px(v: float, x0: float = x0, x1: float = x1, max_x: float = max_x) -> float:
            return x0 + v / max_x * (x1 - x0)

        def py(v: float, y0: float = y0, y1: float = y1, hi_y: float = hi_y) -> float:
            return y0 + max(v, 0.0) / hi_y * (y1 - y0)

        for t in ticks:
            d.add(Line(x0, py(t), x1, py(t), strokeColor=colors.HexColor("#eaeef2"),
                       strokeWidth=0.4))
            _label(d, x0 - 3, py(t) - 2.5, fmt_value(t, Fmt.MONEY), 5.5, "end", GREY)
        d.add(Line(x0, y0, x1, y0, strokeColor=AXIS, strokeWidth=0.6))
        band: list[float] = []
        for p in curve.points:
            band += [px(p.spend), py(p.upper)]
        for p in reversed(curve.points):
            band += [px(p.spend), py(p.lower)]
        d.add(Polygon(band, fillColor=BAND, strokeColor=None))
        line: list[float] = []
        for p in curve.points:
            line += [px(p.spend), py(p.contribution)]
        d.add(PolyLine(line, strokeColor=ACCENT2, strokeWidth=1.2))
        for value, colour in ((curve.current_spend, GREY), (curve.recommended_spend, GOOD)):
            if value is not None:
                d.add(Line(px(value), y0, px(value), y1, strokeColor=colour, strokeWidth=0.9,
                           strokeDashArray=[2, 2]))
        _label(d, (x0 + x1) / 2, y1 + 6, chart_text(curve.channel, 28), 7.5)
        _label(d, x0, y0 - 9, "$0", 5.5, "middle", GREY)
        _label(d, x1, y0 - 9, fmt_value(max_x, Fmt.MONEY), 5.5, "end", GREY)
        _label(d, (x0 + x1) / 2, y0 - 9, f"spend per {grain}", 5.5, "middle", GREY)
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


def _heat_colour(value: float) -> colors.Color:
    """White (0 %) to the accent blue (100 % and above, MRR retention can exceed 100 %)."""
    share = min(max(value, 0.0), 1.0)
    start, end = colors.HexColor("#f6f8fa"), ACCENT
    return colors.Color(
        start.red + (end.red - start.red) * share,
        start.green + (end.green - start.green) * share,
        start.blue + (end.blue - start.blue) * share,
    )


def cohort_heatmap(report: Report, metric: str) -> Drawing | None:
    """Cohorts (rows) × months since first paid (columns), each cell the cohort's ``metric``
    ("logo" or "mrr") retention. A month not ended yet and an undefined MRR retention are
    left blank (no fill, no number): never drawn as 0."""
    section = report.cohorts
    if section is None or not section.cohorts:
        return None
    rows, months = section.cohorts, section.months
    cell_h = 16.0
    height = 58.0 + cell_h * len(rows)
    title = ("Logo retention" if metric == "logo" else "MRR retention") + \
        " by first-paid-month cohort (months since first paid)"
    d = _drawing(title, height)
    x0, x1 = 86.0, WIDTH - RIGHT
    cell_w = (x1 - x0) / len(months)
    top = height - 34
    for j, k in enumerate(months):
        _label(d, x0 + (j + 0.5) * cell_w, top + 4, f"M{k}", 7, "middle", GREY)
    for i, line in enumerate(rows):
        y = top - (i + 1) * cell_h
        _label(d, x0 - 6, y + 5, f"{chart_text(line.cohort, 7)} ({line.accounts})", 7, "end")
        for j, k in enumerate(months):
            cell = line.cell(k)
            value = None if cell is None else (
                cell.logo_retention if metric == "logo" else cell.mrr_retention)
            x = x0 + j * cell_w
            if value is None:
                d.add(Rect(x, y, cell_w, cell_h, fillColor=None,
                           strokeColor=colors.HexColor("#eaeef2"), strokeWidth=0.4))
                continue
            fill = _heat_colour(value)
            d.add(Rect(x, y, cell_w, cell_h, fillColor=fill, strokeColor=colors.white,
                       strokeWidth=0.6))
            ink = colors.white if min(value, 1.0) > 0.55 else TEXT
            _label(d, x + cell_w / 2, y + 5, f"{value * 100:.0f}%", 6.5, "middle", ink)
    _label(d, x0, 8, f"as of {section.as_of.isoformat()} · (n) = accounts · blank: month not ended yet or "
           "n/a (no MRR at the end of the first month)", 6.5, "start", GREY)
    return d


def cohort_logo(report: Report) -> Drawing | None:
    return cohort_heatmap(report, "logo")


def cohort_mrr(report: Report) -> Drawing | None:
    return cohort_heatmap(report, "mrr")


def trend(report: Report, kpi: str) -> Drawing | None:
    series = next((t for t in report.trends if t.kpi == kpi), None)
    if series is None:
        return None
    actual = [(p.day, p.value) for p in series.points if p.value is not None]
    monthly = series.grain != "day"
    # a monthly series (the annual report) is never overlaid with a daily forecast
    forecast = None if monthly else next((f for f in report.forecast if f.kpi == kpi), None)
    if not actual:
        return None
    days = [a for a, _ in actual] + ([p.day for p in forecast.points] if forecast else [])
    first, last = min(days), max(days)
    values = [v for _, v in actual if v is not None]
    if forecast:
        values += [p.upper for p in forecast.points] + [p.lower for p in forecast.points]
    lo, hi = min(values), max(values)
    pad = (hi - lo) * 0.05 or abs(hi) * 0.05 or 1.0
    title = f"{series.label} — " + ("monthly" if monthly else "daily") + (
        f", with {forecast.horizon_days}-day forecast" if forecast else "")
    d = _drawing(title, 190.0)
    f = _value_axis(d, lo - pad, hi + pad, series.fmt, 190.0)
    span = max((last - first).days, 1)

    def fx(day: dt.date) -> float:
        return f.x((day - first).days / span)

    start, end = report.meta.period_start, report.meta.period_end
    if start >= first and not monthly:
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
    if monthly:
        for day, value in actual:
            d.add(Circle(fx(day), f.y(value or 0.0), 1.8, fillColor=ACCENT, strokeColor=None))
    ticks = [p.day for p in series.points] if monthly else _date_ticks(first, last)
    for tick in ticks:
        _label(d, fx(tick), f.y0 - 11, tick.strftime("%b" if monthly else "%d %b"), 6.5)
        d.add(Line(fx(tick), f.y0, fx(tick), f.y0 - 3, strokeColor=AXIS, strokeWidth=0.5))
    return d


SPARK_ROW = 30.0


def briefing_sparklines(report: Report) -> Drawing | None:
    """The daily briefing's one chart: a row per KPI — its last 14 days as a sparkline, the
    briefing day marked, and the day's value (a day without a value is a gap, not 0)."""
    if report.briefing is None or not report.trends:
        return None
    height = 30.0 + SPARK_ROW * len(report.trends)
    d = _drawing(f"Last 14 days to {report.briefing.day.isoformat()}", height)
    x0, x1 = 150.0, WIDTH - 110.0
    last = report.briefing.day
    first = last - dt.timedelta(days=13)
    for row, series in enumerate(report.trends):
        y0 = height - 34.0 - SPARK_ROW * (row + 1) + 6
        y1 = y0 + SPARK_ROW - 10
        _label(d, 8, y0 + 6, chart_text(series.label, 28), 8, "start")
        known = [p.value for p in series.points if p.value is not None]
        lo, hi = (min(known), max(known)) if known else (0.0, 0.0)
        span = (hi - lo) or 1.0

        def px(day: dt.date, first: dt.date = first) -> float:
            return x0 + (x1 - x0) * (day - first).days / 13

        def py(value: float, lo: float = lo, span: float = span, y0: float = y0,
               y1: float = y1) -> float:
            return y0 + (y1 - y0) * (value - lo) / span

        segment: list[float] = []
        for p in series.points:
            if p.value is None:  # a gap: the line stops
                if len(segment) >= 4:
                    d.add(PolyLine(segment, strokeColor=ACCENT, strokeWidth=1.2))
                segment = []
                continue
            segment += [px(p.day), py(p.value)]
        if len(segment) >= 4:
            d.add(PolyLine(segment, strokeColor=ACCENT, strokeWidth=1.2))
        today = next((p for p in series.points if p.day == last), None)
        if today is not None and today.value is not None:
            d.add(Circle(px(last), py(today.value), 2.2, fillColor=ACCENT2, strokeColor=None))
        _label(d, WIDTH - 8, y0 + 6,
               fmt_value(today.value if today else None, series.fmt), 8, "end")
    return d


#: Series colours of insight charts, in series order (then repeated).
PALETTE = (ACCENT, ACCENT2, colors.HexColor("#bf8700"), GOOD, GREY, colors.HexColor("#e16f24"))
#: The most x labels an insight chart writes (every k-th beyond that; all are plotted).
MAX_X_LABELS = 14


def _insight_legend(d: Drawing, chart: InsightChart, y: float) -> None:
    x = LEFT
    for i, series in enumerate(chart.series):
        name = chart_text(series.name, 28)
        d.add(Rect(x, y, 7, 7, fillColor=PALETTE[i % len(PALETTE)], strokeColor=None))
        _label(d, x + 10, y + 1, name, 7, "start")
        x += 22 + 4.2 * len(name)


def insight_chart(chart: InsightChart) -> Drawing | None:
    """An insight section's chart: grouped bars (``bar``) or one line per series (``line``)
    over the chart's labels, with the optional threshold as a dashed line. A None value is
    a gap (no bar, the line breaks), never 0; None when there is no value at all."""
    known = [v for s in chart.series for v in s.values if v is not None]
    if not chart.labels or not known:
        return None
    d = _drawing(chart.title)
    legend = len(chart.series) > 1 or chart.threshold is not None
    if legend:
        _insight_legend(d, chart, HEIGHT - 33)
    extremes = [*known, *([chart.threshold] if chart.threshold is not None else [])]
    lo, hi = min(extremes), max(extremes)
    if chart.kind == "bar":
        lo, hi = min(lo, 0.0), max(hi, 0.0)
    pad = (hi - lo) * 0.05 or abs(hi) * 0.05 or 1.0
    # values that cannot be negative (rates, counts) keep their axis at 0, never below
    lo = lo if lo >= 0 and (chart.kind == "bar" or lo - pad < 0) else lo - pad
    f = _value_axis(d, lo, hi + pad, chart.fmt, top=TOP + (14 if legend else 0))
    n = len(chart.labels)
    step = max(1, math.ceil(n / MAX_X_LABELS))
    if chart.kind == "bar":
        slot = 1 / n
        width = (f.x(slot * 0.76) - f.x0) / max(len(chart.series), 1)
        base = f.y(max(f.lo, 0.0))
        for i, label in enumerate(chart.labels):
            x = f.x(slot * i + slot * 0.12)
            for j, series in enumerate(chart.series):
                value = series.values[i] if i < len(series.values) else None
                if value is None:
                    continue
                top = f.y(value)
                d.add(Rect(x + j * width, min(base, top), width, max(abs(top - base), 0.6),
                           fillColor=PALETTE[j % len(PALETTE)], strokeColor=None))
            if i % step == 0:
                stagger = 9 if n > 6 and (i // step) % 2 else 0
                _label(d, f.x(slot * (i + 0.5)), f.y0 - 11 - stagger,
                       chart_text(label, 16), 6.5)
    else:
        def fx(i: int) -> float:
            return f.x(i / (n - 1) if n > 1 else 0.5)

        for j, series in enumerate(chart.series):
            colour = PALETTE[j % len(PALETTE)]
            runs: list[list[tuple[float, float]]] = [[]]
            for i in range(n):
                value = series.values[i] if i < len(series.values) else None
                if value is None:  # a gap: the line stops
                    runs.append([])
                    continue
                runs[-1].append((fx(i), f.y(value)))
            for run in runs:
                if len(run) == 1:  # an isolated value: a dot, no line to draw
                    d.add(Circle(run[0][0], run[0][1], 1.8, fillColor=colour, strokeColor=None))
                elif run:
                    d.add(PolyLine([c for point in run for c in point], strokeColor=colour,
                                   strokeWidth=1.3))
        for i, label in enumerate(chart.labels):
            if i % step == 0:
                text = chart_text(label, 12)
                half = len(text) * 6.5 * 0.3  # about half the text's width
                # a label at the right edge is moved in, not cut off
                _label(d, min(fx(i), WIDTH - half - 1), f.y0 - 11, text, 6.5)
                d.add(Line(fx(i), f.y0, fx(i), f.y0 - 3, strokeColor=AXIS, strokeWidth=0.5))
    if chart.threshold is not None:
        y = f.y(chart.threshold)
        d.add(Line(f.x0, y, f.x1, y, strokeColor=BAD, strokeWidth=0.9, strokeDashArray=[6, 4]))
        caption = chart.threshold_label or f"threshold {fmt_value(chart.threshold, chart.fmt)}"
        _label(d, f.x1, y + 2.5, chart_text(caption, 60), 6.2, "end", BAD)
    return d


def insight_chart_name(section: InsightSection, chart: InsightChart) -> str:
    """The chart's name among the report's charts (section keys keep names unique)."""
    return f"insight_{section.key}_{chart.name}"


def insight_charts(report: Report) -> list[Chart]:
    return [
        Chart(insight_chart_name(section, chart), d)
        for section in report.insights if not section.unavailable
        for chart in section.charts if (d := insight_chart(chart)) is not None
    ]


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
        # reportlab names every drawing's clip path "clip": in one HTML page the first
        # one would clip them all (a taller chart loses its top), so each gets its own.
        clip = f"clip-{re.sub(r'[^A-Za-z0-9_-]', '-', self.name)}"
        text = text.replace('<clipPath id="clip">', f'<clipPath id="{clip}">').replace(
            "url(#clip)", f"url(#{clip})")
        # responsive: keep the viewBox, let CSS size it
        return re.sub(r'<svg([^>]*?) width="[^"]*" height="[^"]*"', r"<svg\1", text, count=1)


BUILDERS: Sequence[tuple[str, Callable[[Report], Drawing | None]]] = (
    ("mrr_bridge", mrr_bridge),
    ("channels", channels),
    ("funnel", funnel),
    ("forecast_by_channel", forecast_by_channel),
    ("mmm_roi", mmm_roi),
    ("mmm_curves", mmm_curves),
    ("cohort_logo_retention", cohort_logo),
    ("cohort_mrr_retention", cohort_mrr),
    ("briefing_sparklines", briefing_sparklines),
)


def report_charts(report: Report) -> list[Chart]:
    out = [Chart(name, d) for name, build in BUILDERS if (d := build(report)) is not None]
    out += insight_charts(report)
    if report.briefing is not None:
        return out  # the sparkline panel is the briefing's trend chart
    for t in report.trends:
        d = trend(report, t.kpi)
        if d is not None:
            out.append(Chart(f"trend_{t.kpi}", d))
    return out
