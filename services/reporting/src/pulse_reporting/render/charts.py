"""Report charts with matplotlib (Agg): SVG for HTML, PNG for PDF.

Deterministic output: no timestamps in SVG metadata, fixed hash salt, fixed sizes.
"""

from __future__ import annotations

import datetime as dt
import io
from dataclasses import dataclass
from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")
matplotlib.rcParams["svg.hashsalt"] = "pulse-reporting"
matplotlib.rcParams["svg.fonttype"] = "none"
matplotlib.rcParams["font.size"] = 9

import matplotlib.dates as mdates  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import FuncFormatter  # noqa: E402

from pulse_reporting.domain.formatting import fmt_value  # noqa: E402
from pulse_reporting.domain.model import Fmt, Report  # noqa: E402

if TYPE_CHECKING:
    from matplotlib.figure import Figure

GOOD, BAD, NEUTRAL, ACCENT, ACCENT2 = "#1a7f37", "#cf222e", "#6e7781", "#0969da", "#8250df"


def _num(day: dt.date) -> float:
    return float(mdates.date2num(day))  # type: ignore[no-untyped-call]


def _money_axis(ax: object, fmt: Fmt = Fmt.MONEY) -> None:
    ax.yaxis.set_major_formatter(  # type: ignore[attr-defined]
        FuncFormatter(lambda v, _: fmt_value(v, fmt))
    )


def mrr_bridge_figure(report: Report) -> Figure | None:
    b = report.mrr_bridge
    steps = [
        ("Start", b.starting, "total"),
        ("New", b.new, "up"),
        ("Expansion", b.expansion, "up"),
        ("Reactivation", b.reactivation, "up"),
        ("Contraction", None if b.contraction is None else -b.contraction, "down"),
        ("Churn", None if b.churn is None else -b.churn, "down"),
        ("End", b.ending, "total"),
    ]
    if all(v is None for _, v, _ in steps):
        return None
    fig, ax = plt.subplots(figsize=(7.5, 3.2))
    running = b.starting or 0.0
    for i, (label, value, kind) in enumerate(steps):
        v = value or 0.0
        if kind == "total":
            ax.bar(i, v, color=ACCENT)
            running = v if label == "Start" else running
            top = v
        else:
            bottom = running if v >= 0 else running + v
            ax.bar(i, abs(v), bottom=bottom, color=GOOD if v >= 0 else BAD)
            running += v
            top = max(running, running - v)
        ax.annotate(fmt_value(value, Fmt.MONEY), (i, top), ha="center", va="bottom",
                    fontsize=8, xytext=(0, 2), textcoords="offset points")
    ax.set_xticks(range(len(steps)), [s[0] for s in steps])
    _money_axis(ax)
    ax.set_title("MRR bridge")
    ax.spines[["top", "right"]].set_visible(False)
    values = [s[1] for s in steps if s[2] == "total" and s[1]]
    if values:
        low = min(values) * 0.9
        ax.set_ylim(bottom=max(0.0, low - (max(values) - low) * 0.5))
    fig.tight_layout()
    return fig


def channel_figure(report: Report) -> Figure | None:
    rows = [r for r in report.channels if (r.spend or 0) > 0 or (r.attributed_revenue or 0) > 0]
    if not rows:
        return None
    fig, ax = plt.subplots(figsize=(7.5, 3.2))
    xs = range(len(rows))
    ax.bar([x - 0.2 for x in xs], [r.spend or 0 for r in rows], 0.4, label="Spend",
           color=NEUTRAL)
    ax.bar([x + 0.2 for x in xs], [r.attributed_revenue or 0 for r in rows], 0.4,
           label=f"Attributed revenue ({report.meta.model})", color=ACCENT)
    ax.set_xticks(list(xs), [r.name for r in rows], rotation=20, ha="right")
    _money_axis(ax)
    ax.legend(frameon=False)
    ax.set_title("Spend and attributed revenue by channel")
    ax.spines[["top", "right"]].set_visible(False)
    fig.tight_layout()
    return fig


def trend_figures(report: Report) -> list[tuple[str, Figure]]:
    forecasts = {f.kpi: f for f in report.forecast}
    out: list[tuple[str, Figure]] = []
    for trend in report.trends:
        fig, ax = plt.subplots(figsize=(7.5, 2.6))
        days = [_num(p.day) for p in trend.points if p.value is not None]
        values = [p.value for p in trend.points if p.value is not None]
        ax.plot(days, values, color=ACCENT, linewidth=1.4, label="actual")
        ax.axvspan(_num(report.meta.period_start), _num(report.meta.period_end),
                   color=ACCENT, alpha=0.06)
        forecast = forecasts.get(trend.kpi)
        if forecast is not None:
            fdays = [_num(p.day) for p in forecast.points]
            ax.plot(fdays, [p.value for p in forecast.points], color=ACCENT2, linestyle="--",
                    linewidth=1.2, label="forecast")
            ax.fill_between(fdays, [p.lower for p in forecast.points],
                            [p.upper for p in forecast.points], color=ACCENT2, alpha=0.15,
                            label=f"{forecast.interval:.0%} interval")
        _money_axis(ax, trend.fmt)
        ax.xaxis_date()
        ax.set_title(f"{trend.label} — daily, with 30-day forecast")
        ax.legend(frameon=False, fontsize=7, loc="upper left")
        ax.spines[["top", "right"]].set_visible(False)
        fig.autofmt_xdate()
        fig.tight_layout()
        out.append((trend.kpi, fig))
    return out


def funnel_figure(report: Report) -> Figure | None:
    steps = [s for s in report.funnel if s.count is not None]
    if not steps:
        return None
    fig, ax = plt.subplots(figsize=(7.5, 2.6))
    ax.barh([s.stage for s in steps][::-1], [s.count or 0 for s in steps][::-1], color=ACCENT)
    for i, s in enumerate(steps[::-1]):
        ax.annotate(fmt_value(s.count, Fmt.COUNT), (s.count or 0, i), va="center",
                    xytext=(3, 0), textcoords="offset points", fontsize=8)
    ax.set_title("Funnel")
    ax.spines[["top", "right"]].set_visible(False)
    fig.tight_layout()
    return fig


def report_figures(report: Report) -> list[tuple[str, Figure]]:
    figures: list[tuple[str, Figure]] = []
    for name, builder in (("mrr_bridge", mrr_bridge_figure), ("channels", channel_figure),
                          ("funnel", funnel_figure)):
        fig = builder(report)
        if fig is not None:
            figures.append((name, fig))
    figures += [(f"trend_{k}", f) for k, f in trend_figures(report)]
    return figures


def to_svg(fig: Figure, close: bool = True) -> str:
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", metadata={"Date": None})
    if close:
        plt.close(fig)
    text = buffer.getvalue()
    return text[text.index("<svg"):]


def to_png(fig: Figure, dpi: int = 150, close: bool = True) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, metadata={"Software": None})
    if close:
        plt.close(fig)
    return buffer.getvalue()


PDF_DPI = 100


@dataclass(frozen=True)
class RenderedChart:
    name: str
    svg: str | None
    png: bytes | None


def render_charts(report: Report, svg: bool = True, png: bool = True) -> list[RenderedChart]:
    """Every chart drawn once and saved in the formats asked for (HTML: SVG, PDF: PNG)."""
    out: list[RenderedChart] = []
    for name, fig in report_figures(report):
        try:
            out.append(RenderedChart(
                name,
                to_svg(fig, close=False) if svg else None,
                to_png(fig, PDF_DPI, close=False) if png else None,
            ))
        finally:
            plt.close(fig)
    return out
