"""Every table of a report as (columns, raw rows): one source for Markdown, HTML and CSV."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from pulse_reporting.domain.cohorts import trial_status
from pulse_reporting.domain.formatting import fmt_value
from pulse_reporting.domain.mmm import gain_text, horizon_text
from pulse_reporting.domain.model import (
    AlertRecord,
    AnnualSection,
    BriefingSection,
    CohortSection,
    DimensionRow,
    Fmt,
    InsightChart,
    InsightSection,
    InsightTable,
    KpiTile,
    MmmSection,
    PacingRow,
    Recommendation,
    Report,
    ReportMeta,
)
from pulse_shared.attribution_models import DEFAULT_MODEL
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


#: The model of the attribution ROAS stored beside MMM ROI (pulse_mmm.storage.ROAS_MODEL).
ROAS_LABEL = model_label(DEFAULT_MODEL)

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


#: The tables of the daily briefing and the annual report (they are short: the sections
#: of the weekly/monthly/quarterly reports they do not have are not written as empty files).
KIND_TABLES: dict[str, tuple[str, ...]] = {
    "daily": ("headline", "pacing", "budget", "alerts", "alerts_resolved", "sparklines"),
    # plus the marketing mix model's tables (mmm_*) when a run is shown
    "annual": ("headline", "annual_months", "forecast", "cohorts"),
}


def report_tables(report: Report) -> list[Table]:
    """All tables, in report order (CSV exports write one file per table)."""
    tables = _all_tables(report)
    if report.briefing is not None:
        tables += briefing_tables(report)
    if report.annual is not None:
        tables.append(annual_table(report.annual))
    insights = [t for section in report.insights for t in insight_tables(section)]
    shown = KIND_TABLES.get(report.meta.kind)
    if shown is None:
        return tables + insights
    by_name = {t.name: t for t in tables}
    mmm = [t for t in tables if t.name.startswith("mmm_")] if report.annual else []
    return [by_name[name] for name in shown if name in by_name] + mmm + insights


def insight_table(table: InsightTable, display: bool = False) -> Table:
    """An insight section's table as a report table: raw values (CSV, whose file name is
    the table's ``name``) or, with ``display``, the cells of ``row_fmt`` columns written
    in their row's format (Markdown, HTML, PDF)."""
    columns = tuple(
        Column(c.key, c.title, c.fmt or (Fmt.COUNT if c.row_fmt else None))
        for c in table.columns
    )

    def shown(value: Cell, column: int, row: int) -> Cell:
        if not (display and table.columns[column].row_fmt and row < len(table.row_fmts)):
            return value
        if isinstance(value, int | float):
            return fmt_value(float(value), table.row_fmts[row])
        return value

    return Table(
        table.name, table.title, columns,
        tuple(tuple(shown(v, i, r) for i, v in enumerate(values))
              for r, values in enumerate(table.rows)),
    )


def insight_tables(section: InsightSection, display: bool = False) -> list[Table]:
    """The section's tables (none while it is unavailable: no n/a-only tables)."""
    if section.unavailable:
        return []
    return [insight_table(t, display) for t in section.tables]


def insight_chart_table(chart: InsightChart) -> Table:
    """A chart's numbers as a table (label, one column per series): how text formats
    without images (Markdown) show a chart. None stays n/a, never 0."""
    return Table(
        chart.name, chart.title,
        (Column("label", "Label"), *(Column(f"s{i}", s.name, chart.fmt)
                                for i, s in enumerate(chart.series))),
        tuple(
            (label, *(s.values[i] if i < len(s.values) else None for s in chart.series))
            for i, label in enumerate(chart.labels)
        ),
    )


def _alerts_table(name: str, title: str, alerts: Sequence[AlertRecord]) -> Table:
    return Table(
        name,
        title,
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
            for a in alerts
        ),
    )


def briefing_tables(report: Report) -> list[Table]:
    """The daily briefing's own tables, raw (CSV): month-to-date pacing, alerts resolved on
    the day, and the 14 days behind the sparklines."""
    section = report.briefing
    if section is None:
        return []
    pacing = Table(
        "pacing",
        section.pacing_title,
        (
            Column("kpi", "KPI"), Column("label", "Label"), Column("value", "Month to date"),
            Column("previous", "Same days of the previous month"),
            Column("change_pct", "Change", Fmt.PERCENT), Column("landing", "Landing"),
            Column("landing_lower", "Landing lower"), Column("landing_upper", "Landing upper"),
            Column("fmt", "Format"), Column("unavailable", "Not available"),
        ),
        tuple(
            (r.kpi, r.label, r.value, r.previous, r.change_pct, r.landing, r.landing_lower,
             r.landing_upper, r.fmt.value, r.unavailable)
            for r in section.pacing
        ),
        tuple((None, None, None, None, r.tone.value, None, None, None, None, None)
              for r in section.pacing),
    )
    resolved = _alerts_table(
        "alerts_resolved", f"Alerts resolved on {section.day.isoformat()}",
        section.alerts_resolved,
    )
    sparklines = Table(
        "sparklines",
        "Last 14 days",
        (Column("kpi", "KPI"), Column("day", "Day"), Column("value", "Value")),
        tuple((t.kpi, p.day.isoformat(), p.value) for t in report.trends for p in t.points),
    )
    return [pacing, resolved, sparklines]


def pacing_display_table(section: BriefingSection) -> Table:
    """Month to date for people: formatted values, n/a with the reason."""
    def change(row: PacingRow) -> str:
        if row.change_pct is None:
            return f"n/a ({row.unavailable})" if row.unavailable else "n/a"
        return f"{row.change_pct * 100:+.1f}%"

    def landing(row: PacingRow) -> str:
        if row.landing is None:
            return "n/a"
        text = fmt_value(row.landing, row.fmt)
        if row.landing_lower is not None and row.landing_upper is not None:
            text += (f" ({fmt_value(row.landing_lower, row.fmt)} – "
                     f"{fmt_value(row.landing_upper, row.fmt)})")
        return text

    return Table(
        "pacing", section.pacing_title,
        (Column("label", "KPI"), Column("value", "Month to date"),
         Column("previous", "Same days, previous month"), Column("change", "Change"),
         Column("landing", "Month lands at (80% interval)")),
        tuple(
            (r.label, fmt_value(r.value, r.fmt), fmt_value(r.previous, r.fmt), change(r),
             landing(r))
            for r in section.pacing
        ),
        tuple((None, None, None, r.tone.value, None) for r in section.pacing),
    )


def annual_table(section: AnnualSection) -> Table:
    """Every KPI × month of the year beside the same month of the previous year, raw (CSV);
    plus one ``year`` row per KPI (its year value, see ``aggregate``)."""
    rows: list[tuple[Cell, ...]] = []
    for r in section.rows:
        for month, value, previous in zip(section.months, r.values, r.previous, strict=True):
            rows.append((r.kpi, month, value, previous, _pct(value, previous), r.fmt.value,
                         r.aggregate))
        rows.append((r.kpi, "year", r.total, r.previous_total,
                     _pct(r.total, r.previous_total), r.fmt.value, r.aggregate))
    return Table(
        "annual_months",
        f"{section.year} by month against {section.previous_year}",
        (Column("kpi", "KPI"), Column("month", "Month"), Column("value", "Value"),
         Column("previous_year", "Previous year"), Column("yoy_change_pct", "YoY change",
                                                          Fmt.PERCENT),
         Column("fmt", "Format"), Column("aggregate", "Year value")),
        tuple(rows),
    )


def _pct(value: float | None, previous: float | None) -> float | None:
    if value is None or previous is None or abs(previous) < 1e-9:
        return None
    return (value - previous) / abs(previous)


#: KPIs of the annual month-by-month display (a board page, not every column).
ANNUAL_DISPLAY_KPIS: tuple[str, ...] = (
    "spend", "leads", "attributed_pipeline", "attributed_revenue", "new_customers", "cac",
    "mrr_new", "mrr", "ltv_cac",
)


def annual_display_table(section: AnnualSection, yoy: bool = False) -> Table:
    """Months × headline KPIs (``yoy``: change against the same month of the previous year,
    n/a where that month has no data), with the year row last."""
    shown = [r for r in section.rows if r.kpi.split("__")[0] in ANNUAL_DISPLAY_KPIS]
    rows: list[tuple[Cell, ...]] = []
    for index, month in enumerate(section.months):
        cells: list[Cell] = [month]
        for r in shown:
            value, previous = r.values[index], r.previous[index]
            if yoy:
                pct = _pct(value, previous)
                cells.append("n/a" if pct is None else f"{pct * 100:+.1f}%")
            else:
                cells.append(fmt_value(value, r.fmt))
        rows.append(tuple(cells))
    year: list[Cell] = [section.year]
    for r in shown:
        if yoy:
            pct = _pct(r.total, r.previous_total)
            year.append("n/a" if pct is None else f"{pct * 100:+.1f}%")
        else:
            year.append(fmt_value(r.total, r.fmt))
    rows.append(tuple(year))
    title = (f"Year over year by month (against {section.previous_year})" if yoy
             else f"{section.year} month by month")
    return Table(
        "annual_yoy" if yoy else "annual_months",
        title,
        (Column("month", "Month"), *(Column(r.kpi, r.label) for r in shown)),
        tuple(rows),
    )


def _all_tables(report: Report) -> list[Table]:
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
        _alerts_table("alerts", "Alerts fired on this period's data", report.alerts)
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
    tables.append(trials_table(report))
    if report.mmm is not None:
        tables += mmm_tables(report.mmm)
    if report.cohorts is not None:
        tables.append(cohorts_table(report.cohorts))
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
                Column("evidence", "Evidence"),
            ),
            tuple(
                (r.action.value, r.campaign_id, r.channel, r.to_channel, r.amount,
                 r.consensus_roas, roas_summary(r.roas_by_model), r.confidence.value,
                 r.spend_at_risk, r.reason, r.evidence or "attribution ROAS by model")
                for r in report.recommendations
            ),
        )
    )
    return tables


def trials_table(report: Report) -> Table:
    """The period's trial KPIs, raw (CSV): value, previous period, and whether it is final."""
    return Table(
        "trials",
        "Trials",
        (
            Column("kpi", "KPI"), Column("label", "Label"), Column("value", "Value"),
            Column("previous", "Previous period"), Column("fmt", "Format"),
            Column("provisional", "Provisional"), Column("final_on", "Final on"),
        ),
        tuple(
            (t.kpi, t.label, t.value, t.previous, t.fmt.value,
             "true" if t.provisional else "false", t.final_on.isoformat())
            for t in report.trials
        ),
    )


def trials_display_table(report: Report) -> Table:
    """Trial KPIs for people: formatted values, a provisional one marked as such."""
    rows = tuple(
        (
            t.label,
            fmt_value(t.value, t.fmt) + (" (provisional)" if t.provisional else ""),
            fmt_value(t.previous, t.fmt),
            trial_status(t),
        )
        for t in report.trials
    )
    return Table(
        "trials", "Trials (counted in the period they started)",
        (Column("label", "Trial KPI"), Column("value", "Value"),
         Column("previous", "Previous period"), Column("status", "Status")),
        rows,
    )


def cohorts_table(section: CohortSection) -> Table:
    """Every cell of the cohort heat-map, long form (CSV): the columns of ``pulse kpi
    cohorts`` plus the counts and MRR behind the two rates (mrr_retention empty: n/a)."""
    return Table(
        "cohorts",
        "Cohort retention by first paid month",
        (
            Column("cohort", "Cohort"), Column("months_since", "Months since"),
            Column("accounts", "Accounts", Fmt.COUNT),
            Column("retained_accounts", "Retained accounts", Fmt.COUNT),
            Column("logo_retention", "Logo retention", Fmt.PERCENT),
            Column("mrr_retention", "MRR retention", Fmt.PERCENT),
            Column("mrr", "MRR", Fmt.MONEY), Column("starting_mrr", "Starting MRR", Fmt.MONEY),
        ),
        tuple(
            (line.cohort, c.months_since, c.accounts, c.retained_accounts, c.logo_retention,
             c.mrr_retention, c.mrr, c.starting_mrr)
            for line in section.cohorts for c in line.cells
        ),
    )


COHORT_METRICS: dict[str, str] = {
    "logo": "Logo retention",
    "mrr": "MRR retention",
}


def cohort_display_table(section: CohortSection, metric: str) -> Table:
    """Cohorts × months since first paid (the section's ``table_months``): ``metric`` "logo"
    or "mrr" retention. A month not ended yet is blank; an undefined MRR retention (no MRR
    at the end of the first month) is n/a — neither is ever 0."""
    columns = (
        Column("cohort", "Cohort"), Column("accounts", "Accounts", Fmt.COUNT),
        Column("starting_mrr", "Starting MRR", Fmt.MONEY),
        *(Column(f"m{k}", f"M{k}", Fmt.PERCENT) for k in section.table_months),
    )
    rows: list[tuple[Cell, ...]] = []
    for line in section.cohorts:
        values: list[Cell] = []
        for k in section.table_months:
            cell = line.cell(k)
            if cell is None:
                values.append("")  # not observed yet: blank
            else:
                values.append(cell.logo_retention if metric == "logo" else cell.mrr_retention)
        rows.append((line.cohort, line.accounts, line.starting_mrr, *values))
    step = "quarter over quarter, " if section.table_months[1:2] == [3] else ""
    return Table(
        f"cohort_{metric}_retention",
        f"{COHORT_METRICS[metric]} by first-paid-month cohort ({step}M0 = first month)",
        columns, tuple(rows),
    )


def mmm_tables(section: MmmSection) -> list[Table]:
    """The marketing mix model's results as raw tables (CSV): the run (with the split's
    expected gain), ROI per channel beside attribution ROAS, the optimiser's split and
    the response curves. Intervals are 90 % credible intervals."""
    run, rejected = section.run, section.rejected
    run_table = Table(
        "mmm_run",
        "Marketing mix model run",
        (
            Column("status", "Status"), Column("statement", "Statement"),
            Column("run_id", "Run"), Column("version", "Version"), Column("target", "Target"),
            Column("grain", "Grain"), Column("date_from", "From"), Column("date_to", "To"),
            Column("periods", "Periods"), Column("library", "Library"),
            Column("max_rhat", "Max R-hat"), Column("min_ess", "Min ESS"),
            Column("divergences", "Divergences"), Column("holdout_periods", "Hold-out periods"),
            Column("holdout_mape", "Hold-out MAPE", Fmt.PERCENT),
            Column("r_squared", "R²"), Column("finished_at", "Finished"),
            Column("allocation_budget", "Budget", Fmt.MONEY),
            Column("allocation_periods", "Budget periods"),
            Column("expected_gain", "Expected gain", Fmt.MONEY),
            Column("expected_gain_lower", "Gain lower 90%", Fmt.MONEY),
            Column("expected_gain_upper", "Gain upper 90%", Fmt.MONEY),
            Column("rejected_run_id", "Rejected run"),
            Column("rejected_version", "Rejected version"),
            Column("rejected_reason", "Rejected because"),
        ),
        ((
            section.status.value, section.statement,
            run.run_id if run else None, run.version if run else None,
            run.target if run else None, run.grain if run else None,
            run.date_from.isoformat() if run else None, run.date_to.isoformat() if run else None,
            run.periods if run else None, run.library if run else None,
            run.max_rhat if run else None, run.min_ess if run else None,
            run.divergences if run else None, run.holdout_periods if run else None,
            run.holdout_mape if run else None, run.r_squared if run else None,
            run.finished_at.isoformat() if run else None,
            section.allocation_budget, section.allocation_periods,
            section.expected_gain, section.expected_gain_lower, section.expected_gain_upper,
            rejected.run_id if rejected else None, rejected.version if rejected else None,
            rejected.reason if rejected else None,
        ),),
    )
    roi = Table(
        "mmm_roi",
        "Incremental ROI by channel (marketing mix model) beside attribution ROAS",
        (
            Column("channel", "Channel"), Column("spend", "Spend", Fmt.MONEY),
            Column("contribution", "Contribution", Fmt.MONEY),
            Column("contribution_lower", "Contribution lower 90%", Fmt.MONEY),
            Column("contribution_upper", "Contribution upper 90%", Fmt.MONEY),
            Column("roi", "ROI", Fmt.RATIO), Column("roi_lower", "ROI lower 90%", Fmt.RATIO),
            Column("roi_upper", "ROI upper 90%", Fmt.RATIO),
            Column("marginal_roi", "Marginal ROI", Fmt.RATIO),
            Column("attribution_roas", f"Attribution ROAS ({ROAS_LABEL})", Fmt.RATIO),
        ),
        tuple(
            (c.channel, c.spend, c.contribution, c.contribution_lower, c.contribution_upper,
             c.roi, c.roi_lower, c.roi_upper, c.marginal_roi, c.attribution_roas)
            for c in section.channels
        ),
    )
    allocation = Table(
        "mmm_allocation",
        "Recommended budget split (marketing mix model optimiser)",
        (
            Column("channel", "Channel"),
            Column("current_spend", "Current spend", Fmt.MONEY),
            Column("recommended_spend", "Recommended spend", Fmt.MONEY),
            Column("current_contribution", "Current contribution", Fmt.MONEY),
            Column("expected_contribution", "Expected contribution", Fmt.MONEY),
            Column("expected_contribution_lower", "Expected lower 90%", Fmt.MONEY),
            Column("expected_contribution_upper", "Expected upper 90%", Fmt.MONEY),
        ),
        tuple(
            (a.channel, a.current_spend, a.recommended_spend, a.current_contribution,
             a.expected_contribution, a.expected_contribution_lower,
             a.expected_contribution_upper)
            for a in section.allocation
        ),
    )
    curves = Table(
        "mmm_response_curves",
        "Response curves (contribution per period at a steady spend per period)",
        (
            Column("channel", "Channel"), Column("spend", "Spend per period", Fmt.MONEY),
            Column("contribution", "Contribution per period", Fmt.MONEY),
            Column("lower", "Lower 90%", Fmt.MONEY), Column("upper", "Upper 90%", Fmt.MONEY),
        ),
        tuple(
            (c.channel, p.spend, p.contribution, p.lower, p.upper)
            for c in section.curves for p in c.points
        ),
    )
    return [run_table, roi, allocation, curves]


def _ratio_range(lower: float | None, upper: float | None) -> str:
    return f"{fmt_value(lower, Fmt.RATIO)} – {fmt_value(upper, Fmt.RATIO)}"


def mmm_roi_display_table(section: MmmSection) -> Table:
    """ROI per channel with its 90 % interval beside attribution ROAS, for people."""
    columns = (
        Column("channel", "Channel"),
        Column("spend", "Spend"),
        Column("contribution", "Incremental contribution (90%)"),
        Column("roi", "MMM ROI"),
        Column("roi_range", "ROI 90% interval"),
        Column("marginal_roi", "Marginal ROI"),
        Column("attribution_roas", f"Attribution ROAS ({ROAS_LABEL})"),
    )
    rows = tuple(
        (
            c.channel,
            fmt_value(c.spend, Fmt.MONEY),
            f"{fmt_value(c.contribution, Fmt.MONEY)} ({fmt_value(c.contribution_lower, Fmt.MONEY)}"
            f" – {fmt_value(c.contribution_upper, Fmt.MONEY)})",
            fmt_value(c.roi, Fmt.RATIO),
            _ratio_range(c.roi_lower, c.roi_upper),
            fmt_value(c.marginal_roi, Fmt.RATIO),
            fmt_value(c.attribution_roas, Fmt.RATIO),
        )
        for c in section.channels
    )
    return Table("mmm_roi", "Incremental ROI by channel beside attribution ROAS", columns, rows)


def mmm_allocation_display_table(section: MmmSection) -> Table:
    """Current → recommended spend per channel over the allocation's horizon, with the
    expected contribution and its 90 % interval; a total row carries the gain."""
    columns = (
        Column("channel", "Channel"),
        Column("current_spend", "Current spend"),
        Column("recommended_spend", "Recommended spend"),
        Column("change", "Change"),
        Column("expected_contribution", "Expected contribution"),
        Column("range", "90% interval"),
    )

    def signed(value: float) -> str:
        return ("+" if value >= 0 else "") + fmt_value(value, Fmt.MONEY)

    rows: list[tuple[Cell, ...]] = [
        (
            a.channel,
            fmt_value(a.current_spend, Fmt.MONEY),
            fmt_value(a.recommended_spend, Fmt.MONEY),
            signed(a.recommended_spend - a.current_spend),
            fmt_value(a.expected_contribution, Fmt.MONEY),
            f"{fmt_value(a.expected_contribution_lower, Fmt.MONEY)} – "
            f"{fmt_value(a.expected_contribution_upper, Fmt.MONEY)}",
        )
        for a in section.allocation
    ]
    if section.allocation:
        current = sum(a.current_spend for a in section.allocation)
        recommended = sum(a.recommended_spend for a in section.allocation)
        rows.append((
            "total (expected gain vs current mix)",
            fmt_value(current, Fmt.MONEY),
            fmt_value(recommended, Fmt.MONEY),
            signed(recommended - current),
            gain_text(section),
            "",
        ))
    return Table(
        "mmm_allocation",
        f"Recommended split of the current budget over {horizon_text(section)}",
        columns, tuple(rows),
    )


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


@dataclass(frozen=True)
class KindSection:
    """One section of a daily briefing or an annual report, for every renderer: a title,
    its tables (display form), the text when they are empty and the charts it shows."""

    key: str  # html id
    title: str
    tables: tuple[Table, ...]
    empty: str
    charts: tuple[str, ...] = ()  # chart names (render.drawing.report_charts)
    text: str = ""  # one paragraph above the tables


def _display_alerts(name: str, title: str, alerts: Sequence[AlertRecord]) -> Table:
    return Table(
        name, title,
        (Column("data_period", "Data period"), Column("severity", "Severity"),
         Column("rule", "Rule"), Column("kpi", "KPI"), Column("summary", "Summary")),
        tuple((alert_data_period(a), a.severity, a.rule, a.kpi, a.summary) for a in alerts),
    )


def _budget_display(report: Report) -> Table:
    return Table(
        "budget", "Budget pacing (month)",
        (Column("period", "Month"), Column("channel", "Channel"), Column("budget", "Budget"),
         Column("spend_to_date", "Spend to date"), Column("pacing", "Pacing"),
         Column("projected_spend", "Projected spend")),
        tuple(
            (b.period, b.channel, fmt_value(b.budget, Fmt.MONEY),
             fmt_value(b.spend_to_date, Fmt.MONEY), fmt_value(b.pacing, Fmt.PERCENT),
             fmt_value(b.projected_spend, Fmt.MONEY))
            for b in report.budget
        ),
        tuple((None, None, None, None, b.tone.value, None) for b in report.budget),
    )


_BARS = "▁▂▃▄▅▆▇█"


def sparkline(values: Sequence[float | None]) -> str:
    """``▁▃█`` for the values (a space for a day without a value: n/a, not 0)."""
    known = [v for v in values if v is not None]
    if not known:
        return ""
    lo, hi = min(known), max(known)
    span = hi - lo
    return "".join(
        " " if v is None else _BARS[0 if span <= 0 else round((v - lo) / span * 7)]
        for v in values
    )


def sparkline_display_table(report: Report) -> Table:
    """The briefing's 14 days per KPI as a text sparkline, with the lowest and highest day."""
    rows: list[tuple[Cell, ...]] = []
    for t in report.trends:
        values = [p.value for p in t.points]
        known = [v for v in values if v is not None]
        rows.append((
            t.label, sparkline(values),
            fmt_value(min(known), t.fmt) if known else "n/a",
            fmt_value(max(known), t.fmt) if known else "n/a",
        ))
    return Table(
        "sparklines", "Last 14 days",
        (Column("label", "KPI"), Column("days", "Day by day"), Column("low", "Lowest day"),
         Column("high", "Highest day")),
        tuple(rows),
    )


def kind_sections(report: Report) -> list[KindSection] | None:
    """The body of a daily briefing or an annual report after the headline (None for the
    weekly, monthly and quarterly reports, whose renderers lay out their own sections).
    The annual report's marketing mix model and cohort sections are the monthly report's,
    drawn by each renderer after these."""
    if report.briefing is not None:
        b = report.briefing
        day = b.day.isoformat()
        return [
            KindSection("sparklines", "Last 14 days", (sparkline_display_table(report),),
                        "No daily values in the last 14 days.", ("briefing_sparklines",)),
            KindSection("pacing", f"Month to date — {b.month}",
                        (pacing_display_table(b), _budget_display(report)),
                        "No month-to-date values or budgets.",
                        text="" if b.pacing else b.pacing_title),
            KindSection("alerts", f"Alerts on {day}",
                        (_display_alerts("alerts", f"Fired on {day}'s data", report.alerts),
                         _display_alerts("alerts_resolved", f"Resolved on {day}",
                                         b.alerts_resolved)),
                        "None."),
        ]
    if report.annual is not None:
        a = report.annual
        forecast = forecast_display_table(report)
        ltv_cac = next((r for r in a.rows if r.kpi == "ltv_cac"), None)
        ltv_text = (
            f"LTV:CAC at the end of {a.year}: {fmt_value(ltv_cac.total, ltv_cac.fmt)} "
            f"(end of {a.previous_year}: {fmt_value(ltv_cac.previous_total, ltv_cac.fmt)})."
            if ltv_cac is not None else ""
        )
        return [
            KindSection(
                "months", f"{a.year} month by month",
                (annual_display_table(a), annual_display_table(a, yoy=True)),
                "No monthly KPI values.",
                tuple(f"trend_{t.kpi}" for t in report.trends),
                text=("Flows are summed over the twelve months (n/a unless every month has "
                      "data); MRR, ARR, LTV and LTV:CAC are December's; CAC and ROAS are "
                      "the year's spend ÷ new customers and revenue ÷ spend. " + ltv_text),
            ),
            KindSection(
                "forecast", f"Forecast of {a.forecast_quarter}", (forecast,),
                "Not enough daily history to forecast.",
                text=(f"The next {a.forecast_days} days after {a.year} from the daily "
                      "history, with calibrated 80 % and 95 % intervals."),
            ),
        ]
    return None


def comparison_labels(report: Report) -> tuple[str, str | None]:
    """What a headline KPI's two deltas compare with (an annual report's previous year is
    its year ago: shown once, the second label None)."""
    if report.briefing is not None:
        return "vs a week earlier", "vs 52 weeks earlier"
    if report.annual is not None:
        return "YoY", None
    if report.meta.kind == "quarterly":
        return "QoQ", "YoY"
    return "PoP", "YoY"


def headline_column_labels(report: Report) -> tuple[str, str | None]:
    """The headline table's comparison columns (Markdown, PDF): a quarterly report says
    which quarters it compares with."""
    if report.briefing is not None or report.annual is not None:
        return comparison_labels(report)
    if report.meta.kind == "quarterly":
        return "vs previous quarter", "vs same quarter last year"
    return "vs previous", "vs year ago"
