"""The report's charts as PNG images for e-mail (mail clients strip inline SVG).

The charts are the very drawings of :mod:`pulse_reporting.render.drawing` (those of the
HTML and PDF reports), rasterised by matplotlib's Agg renderer: reportlab's own bitmap
renderer needs Cairo bindings the project does not ship. Drawing units are points
(1/72 in), as in matplotlib, so sizes, line widths and font sizes carry over unchanged.
Shapes the charts use are drawn (rectangles, lines, polylines, polygons, circles, text,
groups with transforms); an unknown shape is skipped and logged, never fatal.
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from reportlab.graphics import shapes

from pulse_reporting.domain.model import Report
from pulse_shared.logging import get_logger

log = get_logger(__name__)

#: Pixels per inch of the PNGs: 2x a 72-dpi layout, sharp on high-density screens.
DPI = 144
Affine = tuple[float, float, float, float, float, float]
IDENTITY: Affine = (1.0, 0.0, 0.0, 1.0, 0.0, 0.0)
_ANCHOR = {"start": "left", "middle": "center", "end": "right"}


@dataclass(frozen=True)
class PngChart:
    name: str  # the chart's name in the report (mrr_bridge, channels, trend_<kpi>, …)
    png: bytes
    width: int  # pixels
    height: int

    @property
    def content_id(self) -> str:
        """The ``Content-ID`` of its MIME part (``cid:`` in the HTML)."""
        return f"chart-{self.name}@pulse"


def _compose(outer: Affine, inner: Affine) -> Affine:
    a1, b1, c1, d1, e1, f1 = outer
    a2, b2, c2, d2, e2, f2 = inner
    return (a1 * a2 + c1 * b2, b1 * a2 + d1 * b2, a1 * c2 + c1 * d2, b1 * c2 + d1 * d2,
            a1 * e2 + c1 * f2 + e1, b1 * e2 + d1 * f2 + f1)


def _apply(m: Affine, x: float, y: float) -> tuple[float, float]:
    a, b, c, d, e, f = m
    return a * x + c * y + e, b * x + d * y + f


def _pairs(flat: Sequence[float]) -> list[tuple[float, float]]:
    return [(float(flat[i]), float(flat[i + 1])) for i in range(0, len(flat) - 1, 2)]


def _colour(value: Any, opacity: float | None = None) -> tuple[float, float, float, float] | None:
    if value is None:
        return None
    alpha = getattr(value, "alpha", 1.0)
    if opacity is not None:
        alpha *= opacity
    return (float(value.red), float(value.green), float(value.blue), float(alpha))


def _stroke(shape: Any) -> dict[str, Any]:
    colour = _colour(getattr(shape, "strokeColor", None), getattr(shape, "strokeOpacity", None))
    width = float(getattr(shape, "strokeWidth", 1) or 0)
    if colour is None or width <= 0:
        return {"edgecolor": "none", "linewidth": 0}
    style: dict[str, Any] = {"edgecolor": colour, "linewidth": width}
    dashes = getattr(shape, "strokeDashArray", None)
    if dashes:
        # reportlab dashes are in points; matplotlib scales its pattern by the line width
        pattern = dashes[1] if isinstance(dashes[0], list | tuple) else dashes
        style["linestyle"] = (0, tuple(float(v) / width for v in pattern))
    return style


class _Painter:
    def __init__(self, axes: Any) -> None:
        from matplotlib import patches
        from matplotlib.lines import Line2D

        self.axes = axes
        self.patches = patches
        self.line_type = Line2D
        self.skipped: set[str] = set()
        self.z = 0.0

    def order(self) -> float:
        """Painter's order: matplotlib would otherwise draw every line above every patch."""
        self.z += 1
        return self.z

    def polygon(self, points: list[tuple[float, float]], shape: Any, closed: bool) -> None:
        fill = _colour(getattr(shape, "fillColor", None), getattr(shape, "fillOpacity", None))
        stroke = _stroke(shape)
        if not closed:
            if stroke["linewidth"] == 0 or len(points) < 2:
                return
            line = self.line_type(
                [p[0] for p in points], [p[1] for p in points], color=stroke["edgecolor"],
                linewidth=stroke["linewidth"], linestyle=stroke.get("linestyle", "-"),
                solid_joinstyle="round", solid_capstyle="butt", zorder=self.order())
            self.axes.add_line(line)
            return
        patch = self.patches.Polygon(
            points, closed=True, facecolor=fill if fill is not None else "none",
            edgecolor=stroke["edgecolor"], linewidth=stroke["linewidth"],
            linestyle=stroke.get("linestyle", "-"), joinstyle="miter", zorder=self.order())
        self.axes.add_patch(patch)

    def text(self, shape: shapes.String, m: Affine) -> None:
        x, y = _apply(m, float(shape.x), float(shape.y))
        angle = math.degrees(math.atan2(m[1], m[0]))
        font = str(getattr(shape, "fontName", "Helvetica"))
        colour = _colour(getattr(shape, "fillColor", None)) or (0.0, 0.0, 0.0, 1.0)
        self.axes.text(
            x, y, str(shape.text), fontsize=float(shape.fontSize), color=colour,
            ha=_ANCHOR.get(str(getattr(shape, "textAnchor", "start")), "left"),
            va="baseline", rotation=angle, rotation_mode="anchor",
            fontweight="bold" if "bold" in font.lower() else "normal",
            fontstyle="italic" if ("oblique" in font.lower() or "italic" in font.lower())
            else "normal",
            family="DejaVu Sans", zorder=self.order(),
        )

    def shape(self, shape: Any, m: Affine) -> None:
        if isinstance(shape, shapes.Group):  # Drawing is one too
            inner = _compose(m, tuple(shape.transform))
            for child in shape.contents:
                self.shape(child, inner)
        elif isinstance(shape, shapes.String):
            self.text(shape, m)
        elif isinstance(shape, shapes.Rect):
            x, y, w, h = (float(v) for v in (shape.x, shape.y, shape.width, shape.height))
            corners = [(x, y), (x + w, y), (x + w, y + h), (x, y + h)]
            self.polygon([_apply(m, *p) for p in corners], shape, closed=True)
        elif isinstance(shape, shapes.Line):
            ends = [(float(shape.x1), float(shape.y1)), (float(shape.x2), float(shape.y2))]
            self.polygon([_apply(m, *p) for p in ends], shape, closed=False)
        elif isinstance(shape, shapes.Polygon):
            self.polygon([_apply(m, *p) for p in _pairs(shape.points)], shape, closed=True)
        elif isinstance(shape, shapes.PolyLine):
            self.polygon([_apply(m, *p) for p in _pairs(shape.points)], shape, closed=False)
        elif isinstance(shape, shapes.Circle | shapes.Ellipse):
            cx, cy = float(shape.cx), float(shape.cy)
            rx = float(getattr(shape, "r", 0) or getattr(shape, "rx", 0))
            ry = float(getattr(shape, "r", 0) or getattr(shape, "ry", 0))
            ring = [(cx + rx * math.cos(t / 32 * math.tau), cy + ry * math.sin(t / 32 * math.tau))
                    for t in range(32)]
            self.polygon([_apply(m, *p) for p in ring], shape, closed=True)
        else:
            self.skipped.add(type(shape).__name__)


def drawing_png(drawing: shapes.Drawing, dpi: int = DPI) -> tuple[bytes, int, int]:
    """(PNG bytes, width px, height px) of one reportlab drawing, on white."""
    from matplotlib import rc_context
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    width, height = float(drawing.width), float(drawing.height)
    with rc_context({"svg.fonttype": "none", "lines.scale_dashes": True}):
        figure = Figure(figsize=(width / 72, height / 72), dpi=dpi, facecolor="white")
        FigureCanvasAgg(figure)
        axes = figure.add_axes((0, 0, 1, 1))
        axes.set_xlim(0, width)
        axes.set_ylim(0, height)
        axes.set_axis_off()
        painter = _Painter(axes)
        painter.shape(drawing, IDENTITY)
        buffer = io.BytesIO()
        # no "Software"/date metadata: the same chart gives the same bytes
        figure.savefig(buffer, format="png", dpi=dpi, facecolor="white",
                       metadata={"Software": None})
    if painter.skipped:
        log.warning("chart_shapes_skipped", shapes=sorted(painter.skipped))
    return buffer.getvalue(), round(width * dpi / 72), round(height * dpi / 72)


#: Charts in one e-mail (the report's first ones; the PDF has them all).
EMAIL_CHARTS = 6
#: Insight section charts (usage, deliverability, CX, martech …) in one e-mail, on top of
#: the report's first charts: each section's chart is its point, never crowded out.
EMAIL_INSIGHT_CHARTS = 8


def png_charts(
    report: Report, names: Iterable[str] | None = None, limit: int = EMAIL_CHARTS,
    insight_limit: int = EMAIL_INSIGHT_CHARTS,
) -> list[PngChart]:
    """The report's first ``limit`` charts (as its HTML and PDF draw them) and up to
    ``insight_limit`` insight section charts — every section's first chart before any
    section's second — as PNG, in report order, optionally only those whose name starts
    with one of ``names``."""
    from pulse_reporting.render.drawing import insight_chart_name, report_charts

    wanted = tuple(names) if names is not None else None
    charts = [c for c in report_charts(report)
              if wanted is None or c.name.startswith(wanted)]
    rank = {insight_chart_name(s, c): (i, k) for k, s in enumerate(report.insights)
            for i, c in enumerate(s.charts)}
    insights = sorted((c.name for c in charts if c.name in rank), key=rank.__getitem__)
    chosen = set(insights[:insight_limit])
    core = [c.name for c in charts if c.name not in rank][:limit]
    chosen.update(core)
    out: list[PngChart] = []
    for chart in charts:
        if chart.name in chosen:
            png, width, height = drawing_png(chart.drawing)
            out.append(PngChart(chart.name, png, width, height))
    return out
