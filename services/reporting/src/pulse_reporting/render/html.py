"""Self-contained HTML report: inline CSS, charts embedded as inline SVG, no scripts.

User text (campaign and channel names, alert rules and summaries, paths, notes, reasons) is
escaped by Jinja's autoescaping, on for every template of this environment (the report and
the dashboard pages): no template marks user text ``|safe``. The one ``|safe`` value is a
chart's SVG, drawn by reportlab from :mod:`pulse_reporting.render.drawing`, whose SVG writer
escapes every label as XML text.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources

import jinja2

from pulse_reporting.domain.formatting import MISSING, fmt_change, fmt_value
from pulse_reporting.domain.mmm import gain_text, horizon_text
from pulse_reporting.domain.model import (
    RECOMMENDATION_LABEL,
    CohortSection,
    InsightSection,
    MmmSection,
    Report,
)
from pulse_reporting.domain.tables import (
    Cell,
    Column,
    KindSection,
    Table,
    alert_data_period,
    alert_data_time,
    beside_text,
    cohort_display_table,
    comparison_labels,
    forecast_by_channel_display_table,
    forecast_check_display_table,
    forecast_display_table,
    insight_tables,
    kind_sections,
    mmm_allocation_display_table,
    mmm_roi_display_table,
    model_statement,
    partial_banner,
    recommendation_headline,
    report_tables,
    roas_summary,
    top_campaigns_empty,
    trials_display_table,
)
from pulse_reporting.render.drawing import Chart, insight_chart_name, report_charts


@dataclass
class Section:
    id: str
    title: str
    tables: list[Table]
    empty: str
    chart: str | None = None
    extra_charts: list[str] = field(default_factory=list)
    empties: dict[str, str] = field(default_factory=dict)  # per-table empty text
    intro: list[str] = field(default_factory=list)  # paragraphs before the tables
    outro: list[str] = field(default_factory=list)  # paragraphs after the tables


def cell(value: Cell, column: Column) -> str:
    if value is None:
        return MISSING if column.fmt else ""
    if column.fmt is not None and isinstance(value, int | float):
        return fmt_value(float(value), column.fmt)
    return str(value)


def tone(table: Table, row: int, col: int) -> str:
    if not table.tones:
        return ""
    return table.tones[row][col] or ""


@lru_cache(maxsize=1)
def _env() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("pulse_reporting", "templates"),
        autoescape=True,  # every template renders user text (see the module docstring)
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals.update(fv=fmt_value, fc=fmt_change, cell=cell, tone=tone,
                       rec_headline=recommendation_headline, roas_summary=roas_summary,
                       beside=beside_text, alert_period=alert_data_period,
                       alert_time=alert_data_time)
    return env


def _css() -> str:
    return resources.files("pulse_reporting").joinpath("templates/report.css").read_text()


def _kind_html_sections(
    report: Report, body: list[KindSection], svg: dict[str, str]
) -> list[Section]:
    """A daily briefing's or annual report's sections, then its MMM and cohort sections."""
    out: list[Section] = []
    for s in body:
        charts = [svg[name] for name in s.charts if name in svg]
        out.append(Section(
            s.key, s.title, list(s.tables), s.empty, charts[0] if charts else None,
            extra_charts=charts[1:], intro=[s.text] if s.text else [],
        ))
    if report.mmm is not None:
        out.append(mmm_html_section(report.mmm, svg))
    if report.cohorts is not None:
        out.append(cohorts_html_section(report.cohorts, svg))
    return out + [insight_html_section(s, svg) for s in report.insights]


def insight_html_section(section: InsightSection, svg: dict[str, str]) -> Section:
    """Statements, charts (inline SVG), tables and notes of an insight section; only why
    it is unavailable when it has no numbers."""
    if section.unavailable:
        return Section(f"insight-{section.key}", section.title, [], section.unavailable,
                       intro=[section.unavailable], outro=list(section.notes))
    charts = [svg[name] for c in section.charts
              if (name := insight_chart_name(section, c)) in svg]
    return Section(
        f"insight-{section.key}", section.title, insight_tables(section, display=True), "None.",
        charts[0] if charts else None, extra_charts=charts[1:],
        intro=list(section.statements), outro=list(section.notes),
    )


def sections(report: Report, rendered: list[Chart] | None = None) -> list[Section]:
    svg = {c.name: c.svg() for c in rendered or []}
    body = kind_sections(report)
    if body is not None:
        return _kind_html_sections(report, body, svg)
    t = {table.name: table for table in report_tables(report)}
    m = report.meta
    by_channel = forecast_by_channel_display_table(report)
    out = [
        Section("mrr-bridge", "MRR bridge", [t["mrr_bridge"]], "No MRR data.",
                svg.get("mrr_bridge")),
        Section("channels", f"Channels — {m.model}", [t["channels"]], "No channel KPIs.",
                svg.get("channels")),
        Section("model-comparison", "Attribution model comparison",
                [t["model_comparison"], t["model_comparison_roas"]],
                "No per-model KPIs."),
        Section("campaigns", f"Campaigns — {m.model}",
                [t["campaigns"], t["top_campaigns"], t["bottom_campaigns"]],
                "No campaign KPIs.", empties={"top_campaigns": top_campaigns_empty(report)}),
        Section("funnel", "Funnel", [t["funnel"], trials_display_table(report)],
                "No funnel data.", svg.get("funnel"),
                empties={"trials": "No trial KPIs for this period."}),
        Section("budget", "Budget vs actual and pacing", [t["budget"]], "No budgets."),
        Section("paths", "Top conversion paths", [t["paths"]], "No conversions in the period."),
        Section("alerts", "Alerts fired on this period's data", [t["alerts"]],
                "No alerts fired on this period's data."),
        Section("forecast", "Forecast",
                [forecast_display_table(report), forecast_check_display_table(report)],
                "Not enough history.",
                extra_charts=[v for k, v in svg.items() if k.startswith("trend_")]),
        Section("forecast-by-channel", by_channel.title, [by_channel],
                "Not enough daily history per channel.", svg.get("forecast_by_channel")),
    ]
    if report.mmm is not None:
        out.append(mmm_html_section(report.mmm, svg))
    if report.cohorts is not None:
        out.append(cohorts_html_section(report.cohorts, svg))
    return out + [insight_html_section(s, svg) for s in report.insights]


COHORTS_TITLE = "Cohort retention"


def cohorts_html_section(section: CohortSection, svg: dict[str, str]) -> Section:
    """Statement, the logo and MRR retention heat-maps and their tables."""
    if not section.cohorts:
        return Section("cohorts", COHORTS_TITLE, [], section.statement,
                       intro=[section.statement])
    return Section(
        "cohorts", COHORTS_TITLE,
        [cohort_display_table(section, "logo"), cohort_display_table(section, "mrr")],
        "No cohorts.", svg.get("cohort_logo_retention"),
        extra_charts=[v for k, v in svg.items() if k == "cohort_mrr_retention"],
        intro=[section.statement],
    )


MMM_TITLE = "Incrementality (marketing mix model)"


def mmm_html_section(section: MmmSection, svg: dict[str, str]) -> Section:
    """Statement, ROI chart and table, allocation table and gain, response curves; only
    the statement (n/a and why) without a current run."""
    if section.run is None:
        return Section("mmm", MMM_TITLE, [], section.statement, intro=[section.statement])
    outro = []
    if section.allocation:
        outro.append(
            f"Expected gain of the recommended split over the current mix (same budget, "
            f"{horizon_text(section)}): {gain_text(section)}."
        )
    return Section(
        "mmm", MMM_TITLE,
        [mmm_roi_display_table(section), mmm_allocation_display_table(section)],
        "No results in this run.", svg.get("mmm_roi"),
        extra_charts=[v for k, v in svg.items() if k == "mmm_curves"],
        empties={"mmm_allocation": "The run stored no budget allocation."},
        intro=[section.statement], outro=outro,
    )


def render_html(
    report: Report, rendered: list[Chart] | None = None, with_charts: bool = True
) -> str:
    """``rendered``: charts already drawn (shared with the PDF); drawn here when None."""
    if rendered is None and with_charts:
        rendered = report_charts(report)
    template = _env().get_template("report.html.j2")
    return template.render(
        report=report,
        m=report.meta,
        css=_css(),
        sections=sections(report, rendered if with_charts else None),
        recommendation_label=RECOMMENDATION_LABEL,
        model_statement=model_statement(report.meta),
        partial_banner=partial_banner(report.meta),
        comparison_labels=comparison_labels(report),
        with_recommendations=report.briefing is None and report.annual is None,
    )
