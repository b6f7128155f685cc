"""Every table of a report as (columns, raw rows): one source for Markdown, HTML and CSV."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from pulse_reporting.domain.formatting import fmt_value
from pulse_reporting.domain.model import (
    AlertRecord,
    DimensionRow,
    Fmt,
    KpiTile,
    Recommendation,
    Report,
    ReportMeta,
)
from pulse_shared.attribution_models import label as model_label

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


def _dimension_table(
    name: str, title: str, first: str, rows: list[DimensionRow], consensus: bool = False
) -> Table:
    extra = (Column("consensus_roas", "Median ROAS (all models)", Fmt.RATIO),) if consensus else ()
    dims = (*_DIM_COLUMNS, *extra)
    columns = (Column("name", first), *dims)
    body = tuple(
        tuple([r.name, *(getattr(r, c.key) for c in dims)]) for r in rows
    )
    return Table(name, title, columns, body)


def roas_summary(roas_by_model: dict[str, float | None]) -> str:
    """``first_touch 1.67x, last_touch 0.00x`` (n/a for a model without a value)."""
    return ", ".join(f"{m} {fmt_value(v, Fmt.RATIO)}" for m, v in roas_by_model.items())


def recommendation_subject(r: Recommendation) -> str:
    if r.to_channel:
        return f"{r.channel} → {r.to_channel}"
    if r.campaign_id:
        return f"campaign {r.campaign_id}"
    return f"channel {r.channel}" if r.channel else ""


def recommendation_headline(r: Recommendation) -> str:
    """``pause campaign gads-x ($1,200)``: action, subject, amount."""
    amount = f" ({fmt_value(r.amount, Fmt.MONEY)})" if r.amount is not None else ""
    return f"{r.action.value} {recommendation_subject(r)}{amount}"


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
        Column("pop_unavailable", "PoP not comparable"),
        Column("yoy_unavailable", "YoY not comparable"),
        Column("beside_model", "Beside model"),
        Column("beside_value", "Beside value"),
    )
    rows = tuple(
        (
            t.kpi, t.label, t.value, t.pop.previous, t.pop.change_pct, t.yoy.previous,
            t.yoy.change_pct, t.fmt.value, t.pop.unavailable, t.yoy.unavailable,
            t.beside_model, t.beside_value,
        )
        for t in report.headline
    )
    tones = tuple(
        (None, None, None, None, t.pop.tone.value, None, t.yoy.tone.value, None, None, None,
         None, None)
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
        _dimension_table("top_campaigns", "Top campaigns by median ROAS over the models",
                         "Campaign", report.top_campaigns, consensus=True)
    )
    tables.append(
        _dimension_table("bottom_campaigns", "Bottom campaigns by median ROAS over the models",
                         "Campaign", report.bottom_campaigns, consensus=True)
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
            "Alerts fired on this period's data",
            (
                Column("data_period", "Data period"),
                Column("data_time", "Data as of"),
                Column("severity", "Severity"),
                Column("rule", "Rule"),
                Column("kpi", "KPI"),
                Column("value", "Value"),
                Column("threshold", "Threshold"),
                Column("summary", "Summary"),
            ),
            tuple(
                (
                    alert_data_period(a), alert_data_time(a), a.severity, a.rule, a.kpi,
                    a.value, a.threshold, a.summary,
                )
                for a in report.alerts
            ),
        )
    )
    tables.append(
        Table(
            "forecast",
            "Forecast",
            (
                Column("kpi", "KPI"),
                Column("aggregate", "Aggregate"),
                Column("horizon_days", "Days"),
                Column("total", "Forecast"),
                Column("total_lower", "Lower"),
                Column("total_upper", "Upper"),
                Column("interval", "Interval", Fmt.PERCENT),
                Column("total_lower_95", "Lower 95%"),
                Column("total_upper_95", "Upper 95%"),
                Column("method", "Method"),
            ),
            tuple(
                (f.kpi, f.aggregate, f.horizon_days, f.total, f.total_lower, f.total_upper,
                 f.interval, f.total_lower_95, f.total_upper_95, f.method)
                for f in report.forecast
            ),
        )
    )
    tables.append(
        Table(
            "forecast_by_channel",
            "Forecast by channel",
            (
                Column("channel", "Channel"),
                Column("kpi", "KPI"),
                Column("horizon_days", "Days"),
                Column("total", "Forecast"),
                Column("total_lower", "Lower"),
                Column("total_upper", "Upper"),
                Column("interval", "Interval", Fmt.PERCENT),
                Column("method", "Method"),
            ),
            tuple(
                (f.dimension_value, f.kpi, f.horizon_days, f.total, f.total_lower,
                 f.total_upper, f.interval, f.method)
                for f in report.forecast_by_channel
            ),
        )
    )
    tables.append(
        Table(
            "forecast_check",
            "Last period's forecast vs actual",
            (
                Column("kpi", "KPI"),
                Column("aggregate", "Aggregate"),
                Column("days", "Days"),
                Column("forecast", "Forecast"),
                Column("lower", "Lower 80%"),
                Column("upper", "Upper 80%"),
                Column("actual", "Actual"),
                Column("inside", "Inside 80%"),
                Column("error_pct", "Error", Fmt.PERCENT),
                Column("method", "Method"),
            ),
            tuple(
                (c.kpi, c.aggregate, c.days, c.forecast, c.lower, c.upper, c.actual,
                 "yes" if c.inside else "no", c.error_pct, c.method)
                for c in report.forecast_check
            ),
        )
    )
    tables.append(
        Table(
            "recommendations",
            "Recommendations (for manual review)",
            (
                Column("action", "Action"),
                Column("campaign_id", "Campaign"),
                Column("channel", "Channel"),
                Column("to_channel", "To channel"),
                Column("amount", "Amount", Fmt.MONEY),
                Column("consensus_roas", "Median ROAS", Fmt.RATIO),
                Column("roas_by_model", "ROAS by model"),
                Column("confidence", "Confidence"),
                Column("spend_at_risk", "Spend at risk", Fmt.MONEY),
                Column("reason", "Reason"),
            ),
            tuple(
                (r.action.value, r.campaign_id, r.channel, r.to_channel, r.amount,
                 r.consensus_roas, roas_summary(r.roas_by_model), r.confidence.value,
                 r.spend_at_risk, r.reason)
                for r in report.recommendations
            ),
        )
    )
    return tables


def _horizon_label(report: Report) -> str:
    days = report.forecast[0].horizon_days if report.forecast else 30
    return f"{days}-day forecast"


def forecast_display_table(report: Report) -> Table:
    """The forecast with per-KPI formatting (money, counts) for human-readable outputs."""
    columns = (
        Column("label", "KPI"),
        Column("total", "Forecast"),
        Column("range", "80% interval"),
        Column("range_95", "95% interval"),
        Column("method", "Method"),
    )
    rows = tuple(
        (
            f.label + (f" (day {f.horizon_days})" if f.aggregate == "last"
                       else f" ({f.horizon_days}-day total)"),
            fmt_value(f.total, f.fmt),
            f"{fmt_value(f.total_lower, f.fmt)} – {fmt_value(f.total_upper, f.fmt)}",
            f"{fmt_value(f.total_lower_95, f.fmt)} – {fmt_value(f.total_upper_95, f.fmt)}",
            f.method,
        )
        for f in report.forecast
    )
    return Table("forecast", _horizon_label(report), columns, rows)


def forecast_check_display_table(report: Report) -> Table:
    """Last period's forecast (made before the period began) against the actual."""
    columns = (
        Column("label", "KPI"),
        Column("forecast", "Forecast"),
        Column("range", "80% interval"),
        Column("actual", "Actual"),
        Column("verdict", "Result"),
    )
    rows = tuple(
        (
            c.label + (" (last day)" if c.aggregate == "last" else f" ({c.days}-day total)"),
            fmt_value(c.forecast, c.fmt),
            f"{fmt_value(c.lower, c.fmt)} – {fmt_value(c.upper, c.fmt)}",
            fmt_value(c.actual, c.fmt),
            ("inside the interval" if c.inside else "outside the interval")
            + (f", error {c.error_pct * 100:+.1f}%" if c.error_pct is not None else ""),
        )
        for c in report.forecast_check
    )
    return Table("forecast_check", "Last period's forecast vs actual", columns, rows)


def top_campaigns_empty(report: Report) -> str:
    """Why the top-campaigns table is empty (never 'no spend' when campaigns spent)."""
    if any((c.spend or 0.0) > 0 for c in report.campaigns):
        return "No campaign with spend has attributed revenue under any shown model."
    return "No campaigns with spend."


def forecast_by_channel_display_table(report: Report) -> Table:
    """Per-channel forecast totals with their 80 % interval, formatted for people."""
    days = report.forecast_by_channel[0].horizon_days if report.forecast_by_channel else 30
    columns = (
        Column("channel", "Channel"),
        Column("label", "KPI"),
        Column("total", f"Next {days} days"),
        Column("range", "80% interval"),
        Column("method", "Method"),
    )
    rows = tuple(
        (
            f.dimension_value,
            f.label,
            fmt_value(f.total, f.fmt),
            f"{fmt_value(f.total_lower, f.fmt)} – {fmt_value(f.total_upper, f.fmt)}",
            f.method,
        )
        for f in report.forecast_by_channel
    )
    return Table("forecast_by_channel", f"{days}-day forecast by channel", columns, rows)


def alert_data_period(alert: AlertRecord) -> str:
    """The data period that fired the alert (its data day when it names no period)."""
    if alert.period:
        return alert.period
    moment = alert.data_time or alert.starts_at
    return moment.date().isoformat()


def alert_data_time(alert: AlertRecord) -> str:
    if alert.data_time is None:
        return "unknown (processed " + alert.starts_at.strftime("%Y-%m-%d %H:%M UTC") + ")"
    return alert.data_time.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def model_statement(meta: ReportMeta) -> str:
    """One paragraph for every header: which attribution model, what it does, whether it is
    the executive default and why, and the model shown beside it."""
    summary = f" — {meta.model_summary}" if meta.model_summary else ""
    text = f"Attribution model: {meta.model_label or meta.model}{summary}"
    if meta.model == meta.default_model:
        text += (
            f" This is the executive default, because {meta.default_reason}."
        )
    else:
        text += (
            f" Chosen for this report; the executive default is "
            f"{meta.default_model_label or meta.default_model}."
        )
    if meta.beside_model and meta.beside_model != meta.model:
        text += (
            f" {meta.beside_model_label or meta.beside_model} is shown beside it for ROAS and "
            "attributed revenue (what ad platforms report)."
        )
    return text


def partial_banner(meta: ReportMeta) -> str | None:
    """The banner of a period still running (None for a complete one)."""
    if meta.complete:
        return None
    as_of = meta.data_as_of.isoformat() if meta.data_as_of else "unknown"
    return f"Partial period — data to {as_of}; compare with care."


def beside_text(tile: KpiTile) -> str:
    """``last_touch 3.00x`` beside an attribution KPI's value ('' when not shown)."""
    if tile.beside_model is None or tile.value is None:
        return ""
    return f"{model_label(tile.beside_model)} {fmt_value(tile.beside_value, tile.fmt)}"
