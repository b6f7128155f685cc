"""Every table of a report as (columns, raw rows): one source for Markdown, HTML and CSV."""

from __future__ import annotations

from dataclasses import dataclass

from pulse_reporting.domain.formatting import fmt_value
from pulse_reporting.domain.model import DimensionRow, Fmt, Report

Cell = str | float | int | None


@dataclass(frozen=True)
class Column:
    key: str
    title: str
    fmt: Fmt | None = None  # None = text


@dataclass(frozen=True)
class Table:
    name: str  # file-safe, e.g. "channels"
    title: str
    columns: tuple[Column, ...]
    rows: tuple[tuple[Cell, ...], ...]
    tones: tuple[tuple[str | None, ...], ...] = ()  # per cell: good/bad/neutral or None


_DIM_COLUMNS = (
    Column("spend", "Spend", Fmt.MONEY),
    Column("attributed_pipeline", "Pipeline", Fmt.MONEY),
    Column("attributed_revenue", "Attributed revenue", Fmt.MONEY),
    Column("roas", "ROAS", Fmt.RATIO),
    Column("cac", "CAC", Fmt.MONEY),
    Column("leads", "Leads", Fmt.COUNT),
    Column("wins", "Wins", Fmt.COUNT),
    Column("spend_share", "Spend share", Fmt.PERCENT),
)


def _dimension_table(name: str, title: str, first: str, rows: list[DimensionRow]) -> Table:
    columns = (Column("name", first), *_DIM_COLUMNS)
    body = tuple(
        tuple([r.name, *(getattr(r, c.key) for c in _DIM_COLUMNS)]) for r in rows
    )
    return Table(name, title, columns, body)


def headline_table(report: Report) -> Table:
    columns = (
        Column("kpi", "KPI"),
        Column("label", "Label"),
        Column("value", "Value"),
        Column("previous", "Previous period"),
        Column("change_pct", "PoP change", Fmt.PERCENT),
        Column("year_ago", "Year ago"),
        Column("yoy_change_pct", "YoY change", Fmt.PERCENT),
        Column("fmt", "Format"),
    )
    rows = tuple(
        (
            t.kpi, t.label, t.value, t.pop.previous, t.pop.change_pct, t.yoy.previous,
            t.yoy.change_pct, t.fmt.value,
        )
        for t in report.headline
    )
    tones = tuple(
        (None, None, None, None, t.pop.tone.value, None, t.yoy.tone.value, None)
        for t in report.headline
    )
    return Table("headline", "Headline KPIs", columns, rows, tones)


def report_tables(report: Report) -> list[Table]:
    """All tables, in report order (CSV exports write one file per table)."""
    tables = [headline_table(report)]
    b = report.mrr_bridge
    tables.append(
        Table(
            "mrr_bridge",
            "MRR bridge",
            (Column("movement", "Movement"), Column("amount", "Amount", Fmt.MONEY)),
            (
                ("starting_mrr", b.starting),
                ("new", b.new),
                ("expansion", b.expansion),
                ("reactivation", b.reactivation),
                ("contraction", None if b.contraction is None else -b.contraction),
                ("churn", None if b.churn is None else -b.churn),
                ("net_new", b.net_new),
                ("ending_mrr", b.ending),
            ),
        )
    )
    tables.append(
        _dimension_table(
            "channels", f"Channels ({report.meta.model})", "Channel", report.channels
        )
    )
    tables.append(
        _dimension_table(
            "campaigns", f"Campaigns ({report.meta.model})", "Campaign", report.campaigns
        )
    )
    tables.append(
        _dimension_table("top_campaigns", "Top campaigns by ROAS", "Campaign",
                         report.top_campaigns)
    )
    tables.append(
        _dimension_table("bottom_campaigns", "Bottom campaigns by ROAS", "Campaign",
                         report.bottom_campaigns)
    )
    mc = report.model_comparison
    tables.append(
        Table(
            "model_comparison",
            "Attributed revenue by model",
            (
                Column("name", "Channel"),
                *(Column(f"revenue_{m}", m, Fmt.MONEY) for m in mc.models),
            ),
            tuple((r.name, *(r.revenue.get(m) for m in mc.models)) for r in mc.rows),
        )
    )
    tables.append(
        Table(
            "model_comparison_roas",
            "ROAS by model",
            (
                Column("name", "Channel"),
                *(Column(f"roas_{m}", m, Fmt.RATIO) for m in mc.models),
            ),
            tuple((r.name, *(r.roas.get(m) for m in mc.models)) for r in mc.rows),
        )
    )
    tables.append(
        Table(
            "funnel",
            "Funnel",
            (
                Column("stage", "Stage"),
                Column("count", "Count", Fmt.COUNT),
                Column("next_stage", "Next stage"),
                Column("conversion_to_next", "Conversion to next", Fmt.PERCENT),
                Column("days_to_next", "Median days to next", Fmt.DAYS),
            ),
            tuple(
                (s.stage, s.count, s.next_stage, s.conversion_to_next, s.days_to_next)
                for s in report.funnel
            ),
        )
    )
    tables.append(
        Table(
            "budget",
            "Budget vs actual",
            (
                Column("period", "Month"),
                Column("channel", "Channel"),
                Column("budget", "Budget", Fmt.MONEY),
                Column("spend_to_date", "Spend to date", Fmt.MONEY),
                Column("pacing", "Pacing", Fmt.PERCENT),
                Column("projected_spend", "Projected spend", Fmt.MONEY),
            ),
            tuple(
                (r.period, r.channel, r.budget, r.spend_to_date, r.pacing, r.projected_spend)
                for r in report.budget
            ),
            tuple((None, None, None, None, r.tone.value, None) for r in report.budget),
        )
    )
    tables.append(
        Table(
            "paths",
            "Top conversion paths",
            (
                Column("path", "Path"),
                Column("conversions", "Conversions", Fmt.COUNT),
                Column("revenue", "Revenue", Fmt.MONEY),
            ),
            tuple((" → ".join(p.path), p.conversions, p.revenue) for p in report.paths),
        )
    )
    tables.append(
        Table(
            "alerts",
            "Alerts fired",
            (
                Column("starts_at", "Started"),
                Column("severity", "Severity"),
                Column("rule", "Rule"),
                Column("kpi", "KPI"),
                Column("value", "Value"),
                Column("threshold", "Threshold"),
                Column("summary", "Summary"),
            ),
            tuple(
                (
                    a.starts_at.strftime("%Y-%m-%d %H:%M UTC"), a.severity, a.rule, a.kpi,
                    a.value, a.threshold, a.summary,
                )
                for a in report.alerts
            ),
        )
    )
    tables.append(
        Table(
            "forecast",
            "30-day forecast",
            (
                Column("kpi", "KPI"),
                Column("total", "Next 30 days"),
                Column("total_lower", "Lower"),
                Column("total_upper", "Upper"),
                Column("interval", "Interval", Fmt.PERCENT),
                Column("method", "Method"),
            ),
            tuple(
                (f.kpi, f.total, f.total_lower, f.total_upper, f.interval, f.method)
                for f in report.forecast
            ),
        )
    )
    tables.append(
        Table(
            "recommendations",
            "Recommendations (for manual review)",
            (
                Column("action", "Action"),
                Column("title", "Recommendation"),
                Column("from_channel", "From"),
                Column("to_channel", "To"),
                Column("amount", "Amount", Fmt.MONEY),
                Column("rationale", "Numbers behind it"),
            ),
            tuple(
                (r.action, r.title, r.from_channel, r.to_channel, r.amount, r.rationale)
                for r in report.recommendations
            ),
        )
    )
    return tables


def forecast_display_table(report: Report) -> Table:
    """The forecast with per-KPI formatting (money, counts) for human-readable outputs."""
    columns = (
        Column("label", "KPI"),
        Column("total", "Next 30 days"),
        Column("range", "Interval"),
        Column("method", "Method"),
    )
    rows = tuple(
        (
            f.label + (" (day 30)" if f.aggregate == "last" else " (30-day total)"),
            fmt_value(f.total, f.fmt),
            f"{fmt_value(f.total_lower, f.fmt)} – {fmt_value(f.total_upper, f.fmt)} "
            f"({f.interval * 100:.0f}%)",
            f.method,
        )
        for f in report.forecast
    )
    return Table("forecast", "30-day forecast", columns, rows)
