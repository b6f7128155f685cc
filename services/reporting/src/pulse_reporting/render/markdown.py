"""Markdown rendering of a :class:`Report` (GitHub-flavoured tables).

Every piece of text written into the document passes :func:`md_escape`: campaign and channel
names, alert rules and summaries, paths, notes and reasons come from ingested data, and a
Markdown viewer renders raw HTML (``<script>``, ``<img onerror>``) and links
(``[x](javascript:…)``). Formatting (``**``, ``_``, table pipes) is only ever added here,
around escaped text.
"""

from __future__ import annotations

import re

from pulse_reporting.domain.formatting import MISSING, TONE_EMOJI, fmt_change, fmt_value
from pulse_reporting.domain.mmm import gain_text, horizon_text
from pulse_reporting.domain.model import (
    RECOMMENDATION_LABEL,
    CohortSection,
    InsightSection,
    MmmSection,
    Report,
    Tone,
)
from pulse_reporting.domain.tables import (
    Cell,
    Column,
    KindSection,
    Table,
    cohort_display_table,
    forecast_by_channel_display_table,
    forecast_check_display_table,
    forecast_display_table,
    headline_column_labels,
    insight_chart_table,
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
from pulse_shared.attribution_models import label as model_label

_MD_SPECIAL = str.maketrans(
    {c: f"\\{c}" for c in "\\|*`[]<>&"}
    # a line break would end a table row or a quote and start a block of the name's choosing
    | {c: " " for c in "\r\n\v\f\x85\u2028\u2029"}
)
# script URL schemes: inert without brackets already, escaped too for viewers that autolink
_SCRIPT_SCHEME = re.compile(r"\b(javascript|vbscript)(\s*):", re.IGNORECASE)


def md_escape(text: object) -> str:
    """Any text as literal Markdown: no tag, link, emphasis, code span or table cell break
    can come from it (``<`` ``>`` ``[`` ``]`` ``|`` ``*`` ``&`` backtick and backslash escaped,
    line breaks folded, ``javascript:`` defused)."""
    return _SCRIPT_SCHEME.sub(r"\1\2\\:", str(text).translate(_MD_SPECIAL))


def _cell(value: Cell, column: Column) -> str:
    if value is None:
        return MISSING if column.fmt else ""
    if column.fmt is not None and isinstance(value, int | float):
        return md_escape(fmt_value(float(value), column.fmt))
    return md_escape(value)


def _table(table: Table) -> list[str]:
    lines = [
        "| " + " | ".join(md_escape(c.title) for c in table.columns) + " |",
        "|" + "|".join("---" if c.fmt is None else "---:" for c in table.columns) + "|",
    ]
    for row in table.rows:
        lines.append("| " + " | ".join(_cell(v, c) for v, c in zip(row, table.columns, strict=True)) + " |")
    return lines


def _section(title: str, table: Table, empty: str) -> list[str]:
    lines = ["", f"## {md_escape(title)}", ""]
    if table.rows:
        lines += _table(table)
    else:
        lines.append(f"_{md_escape(empty)}_")
    return lines


MMM_TITLE = "Incrementality (marketing mix model)"


def _mmm(section: MmmSection) -> list[str]:
    """Incremental ROI beside attribution ROAS, and the optimiser's split (the response
    curves are charts: HTML and PDF; their points are in the CSV export)."""
    lines = ["", f"## {MMM_TITLE}", "", md_escape(section.statement)]
    if section.run is None:
        return lines
    roi = mmm_roi_display_table(section)
    lines += _section(roi.title, roi, "No channel results in this run.")
    allocation = mmm_allocation_display_table(section)
    lines += _section(allocation.title, allocation, "The run stored no budget allocation.")
    if section.allocation:
        lines += [
            "",
            f"Expected gain of the recommended split over the current mix (same budget, "
            f"{md_escape(horizon_text(section))}): **{md_escape(gain_text(section))}**.",
        ]
    lines += ["", "_Response curves per channel: see the HTML or PDF report (points in the "
              "CSV export, mmm\\_response\\_curves.csv)._"]
    return lines


COHORTS_TITLE = "Cohort retention"


def _cohorts(section: CohortSection) -> list[str]:
    """The heat-map as tables (logo, then MRR retention): blank = month not ended yet."""
    lines = ["", f"## {COHORTS_TITLE}", "", md_escape(section.statement)]
    if not section.cohorts:
        return lines
    for metric in ("logo", "mrr"):
        table = cohort_display_table(section, metric)
        lines += ["", f"### {md_escape(table.title)}", ""] + _table(table)
    return lines


def _insight(section: InsightSection) -> list[str]:
    """An insight section: statements, its charts as tables of their numbers (Markdown
    shows no images; the HTML, PDF and e-mail draw them), its tables and notes."""
    lines = ["", f"## {md_escape(section.title)}"]
    if section.unavailable:
        lines += ["", f"_{md_escape(section.unavailable)}_"]
    else:
        if section.statements:
            lines.append("")
            lines += [f"- {md_escape(text)}" for text in section.statements]
        for chart in section.charts:
            table = insight_chart_table(chart)
            lines += ["", f"### {md_escape(chart.title)}", ""]
            lines += _table(table) if table.rows else ["_No values._"]
            if chart.threshold is not None:
                caption = chart.threshold_label or "Threshold"
                lines += ["", f"_{md_escape(caption)}: "
                          f"{md_escape(fmt_value(chart.threshold, chart.fmt))}_"]
        for table in insight_tables(section, display=True):
            lines += ["", f"### {md_escape(table.title)}", ""]
            lines += _table(table) if table.rows else ["_None._"]
    for note in section.notes:
        lines += ["", f"_{md_escape(note)}_"]
    return lines


def _insights(report: Report) -> list[str]:
    return [line for section in report.insights for line in _insight(section)]


def _kind_sections(report: Report, body: list[KindSection]) -> list[str]:
    """A daily briefing's or annual report's sections (then its MMM and cohort sections)."""
    lines: list[str] = []
    for section in body:
        lines += ["", f"## {md_escape(section.title)}"]
        if section.text:
            lines += ["", md_escape(section.text)]
        if not any(t.rows for t in section.tables):
            lines += ["", f"_{md_escape(section.empty)}_"]
            continue
        for table in section.tables:
            if len(section.tables) > 1:
                lines += ["", f"### {md_escape(table.title)}"]
            lines += [""] + (_table(table) if table.rows else ["_None._"])
    if report.mmm is not None:
        lines += _mmm(report.mmm)
    if report.cohorts is not None:
        lines += _cohorts(report.cohorts)
    return lines


def render_markdown(report: Report) -> str:
    m = report.meta
    tables = {t.name: t for t in report_tables(report)}
    lines = [
        f"# {md_escape(m.title)}",
        "",
        f"Period **{md_escape(m.period)}** ({m.period_start} – {m.period_end}) · compared with "
        f"{md_escape(m.previous_period)} (PoP) and {md_escape(m.year_ago_period)} (YoY) · "
        f"attribution model **{md_escape(m.model)}** · currency {md_escape(m.currency)}",
        "",
        f"Generated {m.generated_at.strftime('%Y-%m-%d %H:%M UTC')} · report id "
        f"`{m.report_id.replace('`', '')}`",
        "",
        md_escape(model_statement(m)),
    ]
    banner = partial_banner(m)
    if banner:
        lines += ["", f"> **⚠ {md_escape(banner)}**"]
    for note in report.notes:
        lines += ["", f"> **Note:** {md_escape(note)}"]
    lines += [
        "", "## Headline KPIs", "",
    ]
    beside_model = next((t.beside_model for t in report.headline if t.beside_model), None)
    # the beside model's value (last touch) in its own column, next to the report model's
    beside_head = f" {md_escape(model_label(beside_model))} |" if beside_model else ""
    first, second = headline_column_labels(report)
    lines += [
        f"| KPI | Value |{beside_head} {first} | |" + (f" {second} | |" if second else ""),
        "|---|---:|" + ("---:|" if beside_model else "") + "---:|---|"
        + ("---:|---|" if second else ""),
    ]
    for t in report.headline:
        beside = (
            f" {md_escape(fmt_value(t.beside_value, t.fmt)) if t.beside_model else ''} |"
            if beside_model else ""
        )
        year_ago = (
            f" {md_escape(fmt_change(t.yoy, t.fmt))} | "
            f"{TONE_EMOJI[t.yoy.tone] if t.yoy.change is not None else ''} |"
        ) if second else ""
        lines.append(
            f"| {md_escape(t.label)} | {md_escape(fmt_value(t.value, t.fmt))} |{beside} "
            f"{md_escape(fmt_change(t.pop, t.fmt))} | "
            f"{TONE_EMOJI[t.pop.tone] if t.pop.change is not None else ''} |{year_ago}"
        )
    lines.append("")
    lines.append(
        f"{TONE_EMOJI[Tone.GOOD]} good news · {TONE_EMOJI[Tone.BAD]} needs attention · "
        f"{TONE_EMOJI[Tone.NEUTRAL]} neutral (direction-aware: lower CAC is good)"
    )
    for foot in report.footnotes:
        lines += ["", f"_{md_escape(foot.label)}: {md_escape(foot.source)}_"]
    kind_body = kind_sections(report)
    if kind_body is not None:
        return "\n".join(lines + _kind_sections(report, kind_body) + _insights(report)) + "\n"
    lines += _section("MRR bridge", tables["mrr_bridge"], "No MRR data.")
    lines += _section(f"Channels — {m.model}", tables["channels"], "No channel KPIs.")
    lines += _section(
        "Attribution model comparison", tables["model_comparison"], "No per-model KPIs."
    )
    if tables["model_comparison_roas"].rows and report.model_comparison.models:
        lines += ["", "ROAS by model:", ""] + _table(tables["model_comparison_roas"])
    lines += _section(f"Campaigns — {m.model}", tables["campaigns"], "No campaign KPIs.")
    lines += _section(
        "Top campaigns (median ROAS over the shown models)", tables["top_campaigns"],
        top_campaigns_empty(report),
    )
    lines += _section(
        "Bottom campaigns (median ROAS over the shown models)", tables["bottom_campaigns"],
        "No further campaigns.",
    )
    lines += _section("Funnel", tables["funnel"], "No funnel data.")
    trials = trials_display_table(report)
    lines += _section(trials.title, trials, "No trial KPIs for this period.")
    lines += _section("Budget vs actual", tables["budget"], "No budgets.")
    lines += _section("Top conversion paths", tables["paths"], "No conversions in the period.")
    lines += _section(
        "Alerts fired on this period's data", tables["alerts"],
        "No alerts fired on this period's data.",
    )
    forecast = forecast_display_table(report)
    lines += _section(forecast.title, forecast, "Not enough history.")
    by_channel = forecast_by_channel_display_table(report)
    lines += _section(by_channel.title, by_channel, "Not enough daily history per channel.")
    lines += _section(
        "Last period's forecast vs actual", forecast_check_display_table(report),
        "No forecast could be made before this period (too little history).",
    )
    if report.mmm is not None:
        lines += _mmm(report.mmm)
    if report.cohorts is not None:
        lines += _cohorts(report.cohorts)
    lines += _insights(report)
    lines += ["", "## Recommendations", "", f"_{md_escape(RECOMMENDATION_LABEL)}._", ""]
    if report.recommendations:
        for r in report.recommendations:
            lines.append(
                f"- **{md_escape(recommendation_headline(r))}** · confidence "
                f"{md_escape(r.confidence.value)} — {md_escape(r.reason)} "
                + (f"_(evidence: {md_escape(r.evidence)}; ROI and ROAS: "
                   if r.evidence else "_(ROAS by model: ")
                + f"{md_escape(roas_summary(r.roas_by_model)) or 'n/a'})_"
            )
    else:
        lines.append("_No recommendations this period._")
    return "\n".join(lines) + "\n"
