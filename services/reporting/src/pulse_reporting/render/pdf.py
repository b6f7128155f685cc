"""PDF report with reportlab (pure PyPI): the same sections as the HTML, charts as PNG.

Uses the DejaVu fonts shipped with matplotlib so arrows and dashes render everywhere.

Every string that goes into a ``Paragraph`` passes :func:`pdf_escape`: Paragraph text is
reportlab markup, so a campaign named ``<img src="http://…">`` would otherwise be an image
reportlab fetches, and ``"><img …`` a syntax error that aborts the whole report. Markup is
only ever added here, around escaped text (``<b>``, ``<i>``); data never brings tags, links
or images. Plain strings in ``Table`` cells are drawn as literal text (no markup). And
while a PDF is built, reportlab trusts no host (:func:`_no_remote_resources`), so nothing is
fetched even where ``RL_trustedHosts`` is set.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

from reportlab import rl_config
from reportlab.graphics.shapes import Drawing
from reportlab.lib import colors
from reportlab.lib.pagesizes import A4, landscape
from reportlab.lib.styles import ParagraphStyle, getSampleStyleSheet
from reportlab.lib.units import cm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.platypus import (
    KeepTogether,
    PageBreak,
    Paragraph,
    SimpleDocTemplate,
    Spacer,
    Table,
    TableStyle,
)
from reportlab.platypus.flowables import Flowable

from pulse_reporting.domain.formatting import TONE_COLOURS, fmt_change, fmt_value
from pulse_reporting.domain.mmm import gain_text, horizon_text
from pulse_reporting.domain.model import RECOMMENDATION_LABEL, InsightSection, Report, Tone
from pulse_reporting.domain.tables import (
    KindSection,
    cohort_display_table,
    forecast_by_channel_display_table,
    forecast_check_display_table,
    forecast_display_table,
    headline_column_labels,
    insight_tables,
    kind_sections,
    mmm_allocation_display_table,
    mmm_roi_display_table,
    model_statement,
    partial_banner,
    recommendation_headline,
    report_tables,
    roas_summary,
    trials_display_table,
)
from pulse_reporting.domain.tables import Table as DataTable
from pulse_reporting.render.drawing import Chart, insight_chart_name, report_charts
from pulse_reporting.render.html import cell
from pulse_shared.attribution_models import label as model_label

PAGE = landscape(A4)
# C0 control characters (but tab and newline) and DEL: not text; reportlab's parser may choke
_CONTROL = dict.fromkeys([*range(0x00, 0x09), 0x0B, 0x0C, *range(0x0E, 0x20), 0x7F], " ")
FONT, BOLD = "PulseSans", "PulseSans-Bold"


@lru_cache(maxsize=1)
def _fonts() -> tuple[str, str]:
    spec = importlib.util.find_spec("matplotlib")
    locations = list(spec.submodule_search_locations or []) if spec else []
    ttf = Path(locations[0] if locations else ".") / "mpl-data" / "fonts" / "ttf"
    try:
        pdfmetrics.registerFont(TTFont(FONT, str(ttf / "DejaVuSans.ttf")))
        pdfmetrics.registerFont(TTFont(BOLD, str(ttf / "DejaVuSans-Bold.ttf")))
    except Exception:  # no matplotlib: the core fonts (no arrows) still work
        return "Helvetica", "Helvetica-Bold"
    return FONT, BOLD


def pdf_escape(text: object) -> str:
    """Any text as literal Paragraph content: ``& < >`` escaped (so no tag, entity, image
    or link can come from data) and control characters blanked."""
    return (
        str(text).translate(_CONTROL)
        .replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    )


def _styles() -> dict[str, ParagraphStyle]:
    regular, bold = _fonts()
    base = getSampleStyleSheet()
    return {
        "title": ParagraphStyle("t", parent=base["Title"], fontName=bold, fontSize=20),
        "h2": ParagraphStyle("h2", parent=base["Heading2"], fontName=bold, fontSize=13,
                             spaceBefore=10),
        "h3": ParagraphStyle("h3", parent=base["Heading3"], fontName=bold, fontSize=10),
        "body": ParagraphStyle("b", parent=base["BodyText"], fontName=regular, fontSize=9),
        "small": ParagraphStyle("s", parent=base["BodyText"], fontName=regular, fontSize=7.5,
                                leading=9),
        "note": ParagraphStyle("n", parent=base["BodyText"], fontName=regular, fontSize=9,
                               backColor=colors.HexColor("#ddf4ff"), borderPadding=4),
        "partial": ParagraphStyle("p", parent=base["BodyText"], fontName=bold, fontSize=10,
                                  textColor=colors.HexColor("#82071e"),
                                  backColor=colors.HexColor("#ffebe9"), borderPadding=5),
    }


def _table(data: DataTable, styles: dict[str, ParagraphStyle]) -> Flowable:
    regular, bold = _fonts()
    header = [c.title for c in data.columns]
    body = [
        [Paragraph(pdf_escape(cell(v, c)), styles["small"]) if c.fmt is None else cell(v, c)
         for v, c in zip(row, data.columns, strict=True)]
        for row in data.rows
    ]
    table = Table([header, *body], repeatRows=1, hAlign="LEFT")
    style = [
        ("FONT", (0, 0), (-1, -1), regular, 7.5),
        ("FONT", (0, 0), (-1, 0), bold, 7.5),
        ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#f6f8fa")),
        ("LINEBELOW", (0, 0), (-1, -1), 0.25, colors.HexColor("#d0d7de")),
        ("VALIGN", (0, 0), (-1, -1), "TOP"),
    ]
    for i, c in enumerate(data.columns):
        if c.fmt is not None:
            style.append(("ALIGN", (i, 0), (i, -1), "RIGHT"))
    for r, tones in enumerate(data.tones):
        for i, t in enumerate(tones):
            if t in ("good", "bad"):
                style.append(("TEXTCOLOR", (i, r + 1), (i, r + 1),
                              colors.HexColor(TONE_COLOURS[Tone(t)])))
    table.setStyle(TableStyle(style))
    return table


def _headline(report: Report, styles: dict[str, ParagraphStyle]) -> Flowable:
    regular, bold = _fonts()
    beside_model = next((t.beside_model for t in report.headline if t.beside_model), None)
    beside_head = [model_label(beside_model)] if beside_model else []
    first, second = headline_column_labels(report)
    rows: list[list[str]] = [["KPI", "Value", *beside_head, first, second or ""]]
    shift = 1 if beside_model else 0
    style = [
        ("FONT", (0, 0), (-1, -1), regular, 9),
        ("FONT", (0, 0), (-1, 0), bold, 9),
        ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#f6f8fa")),
        ("LINEBELOW", (0, 0), (-1, -1), 0.25, colors.HexColor("#d0d7de")),
        ("ALIGN", (1, 0), (-1, -1), "RIGHT"),
    ]
    for i, t in enumerate(report.headline, start=1):
        beside = (
            [fmt_value(t.beside_value, t.fmt) if t.beside_model else ""] if beside_model else []
        )
        rows.append([t.label, fmt_value(t.value, t.fmt), *beside, fmt_change(t.pop, t.fmt),
                     fmt_change(t.yoy, t.fmt) if second else ""])
        for col, d in ((2 + shift, t.pop), (3 + shift, t.yoy)):
            if d.change is not None:
                style.append(("TEXTCOLOR", (col, i), (col, i),
                              colors.HexColor(TONE_COLOURS[d.tone])))
    widths = [6 * cm, 4 * cm, *([3 * cm] if beside_model else []), 4 * cm, 4 * cm]
    table = Table(rows, colWidths=widths, hAlign="LEFT")
    table.setStyle(TableStyle(style))
    return table


def _kind_story(
    body: list[KindSection], figs: dict[str, Drawing], styles: dict[str, ParagraphStyle]
) -> list[Flowable]:
    """A daily briefing's or annual report's sections (its MMM and cohort sections follow,
    as in the monthly report)."""
    story: list[Flowable] = []
    for s in body:
        parts: list[Flowable] = [Paragraph(pdf_escape(s.title), styles["h2"])]
        if s.text:
            parts.append(Paragraph(pdf_escape(s.text), styles["body"]))
        charts = [figs.pop(name) for name in s.charts if name in figs]
        if charts:
            parts.append(charts[0])
        story.append(KeepTogether(parts))
        story += [KeepTogether([chart]) for chart in charts[1:]]
        if not any(table.rows for table in s.tables):
            story.append(Paragraph(pdf_escape(s.empty), styles["small"]))
            continue
        for table in s.tables:
            if len(s.tables) > 1:
                story.append(Paragraph(pdf_escape(table.title), styles["h3"]))
            story.append(_table(table, styles) if table.rows
                         else Paragraph("None.", styles["small"]))
    return story


def _insight_story(
    section: InsightSection, figs: dict[str, Drawing], styles: dict[str, ParagraphStyle]
) -> list[Flowable]:
    """An insight section: statements, charts (vector drawings), tables, notes."""
    head: list[Flowable] = [Paragraph(pdf_escape(section.title), styles["h2"])]
    if section.unavailable:
        head.append(Paragraph(pdf_escape(section.unavailable), styles["body"]))
        return [KeepTogether(head),
                *(Paragraph(pdf_escape(n), styles["small"]) for n in section.notes)]
    head += [Paragraph(f"• {pdf_escape(text)}", styles["body"]) for text in section.statements]
    charts = [figs.pop(name) for c in section.charts
              if (name := insight_chart_name(section, c)) in figs]
    story: list[Flowable] = [KeepTogether(head + charts[:1])]
    story += [KeepTogether([chart]) for chart in charts[1:]]
    for table in insight_tables(section, display=True):
        story += [Paragraph(pdf_escape(table.title), styles["h3"]),
                  _table(table, styles) if table.rows else Paragraph("None.", styles["small"])]
    story += [Paragraph(pdf_escape(n), styles["small"]) for n in section.notes]
    return story


def build_story(report: Report, rendered: list[Chart] | None = None) -> list[Flowable]:
    styles = _styles()
    m = report.meta
    t = {table.name: table for table in report_tables(report)}
    t["forecast"] = forecast_display_table(report)
    t["forecast_check"] = forecast_check_display_table(report)
    t["forecast_by_channel"] = forecast_by_channel_display_table(report)
    t["trials"] = trials_display_table(report)
    if rendered is None:
        rendered = report_charts(report)
    figs = {c.name: c.drawing for c in rendered}
    story: list[Flowable] = [
        Paragraph(pdf_escape(m.title), styles["title"]),
        Paragraph(
            f"Period <b>{pdf_escape(m.period)}</b> ({m.period_start} – {m.period_end}) · vs "
            f"{pdf_escape(m.previous_period)} (PoP) and {pdf_escape(m.year_ago_period)} (YoY)"
            f" · attribution model <b>{pdf_escape(m.model)}</b> · {pdf_escape(m.currency)} · "
            f"generated {m.generated_at.strftime('%Y-%m-%d %H:%M UTC')}",
            styles["body"],
        ),
        Paragraph(pdf_escape(model_statement(m)), styles["body"]),
        Spacer(1, 6),
    ]
    banner = partial_banner(m)
    if banner:
        story += [Paragraph(f"⚠ {pdf_escape(banner)}", styles["partial"]), Spacer(1, 6)]
    story += [Paragraph(f"Note: {pdf_escape(n)}", styles["note"]) for n in report.notes]
    story += [Paragraph("Headline KPIs", styles["h2"]), _headline(report, styles)]
    story += [
        Paragraph(f"<b>{pdf_escape(f.label)}</b>: {pdf_escape(f.source)}", styles["small"])
        for f in report.footnotes
    ]
    if report.recommendations:
        story += [Paragraph("Recommendations", styles["h2"]),
                  Paragraph(pdf_escape(RECOMMENDATION_LABEL), styles["note"]), Spacer(1, 4)]
        story += [
            Paragraph(
                f"• <b>{pdf_escape(recommendation_headline(r))}</b> · confidence "
                f"{pdf_escape(r.confidence.value)} — {pdf_escape(r.reason)} <i>("
                + (f"evidence: {pdf_escape(r.evidence)}; ROI and ROAS: " if r.evidence
                   else "ROAS by model: ")
                + f"{pdf_escape(roas_summary(r.roas_by_model)) or 'n/a'})</i>",
                styles["body"],
            )
            for r in report.recommendations
        ]
    body = kind_sections(report)
    if body is None:
        story.append(PageBreak())

    def section(title: str, names: list[str], chart: str | None = None) -> None:
        parts: list[Flowable] = [Paragraph(pdf_escape(title), styles["h2"])]
        if chart and chart in figs:
            parts.append(figs.pop(chart))
        story.append(KeepTogether(parts))
        for name in names:
            data = t[name]
            if len(names) > 1:
                story.append(Paragraph(pdf_escape(data.title), styles["h3"]))
            story.append(_table(data, styles) if data.rows
                         else Paragraph("None.", styles["small"]))

    if body is not None:
        story += _kind_story(body, figs, styles)
    else:
        section("MRR bridge", ["mrr_bridge"], "mrr_bridge")
        section(f"Channels — {m.model}", ["channels"], "channels")
        section("Attribution model comparison", ["model_comparison", "model_comparison_roas"])
        section(f"Campaigns — {m.model}", ["campaigns", "top_campaigns", "bottom_campaigns"])
        section("Funnel", ["funnel", "trials"], "funnel")
        section("Budget vs actual and pacing", ["budget"])
        section("Top conversion paths", ["paths"])
        section("Alerts fired on this period's data", ["alerts"])
        section(t["forecast"].title, ["forecast"])
        section(t["forecast_by_channel"].title, ["forecast_by_channel"], "forecast_by_channel")
        section("Last period's forecast vs actual", ["forecast_check"])
    if report.mmm is not None:
        mmm = report.mmm
        story.append(KeepTogether([
            Paragraph("Incrementality (marketing mix model)", styles["h2"]),
            Paragraph(pdf_escape(mmm.statement), styles["body"]),
            *([figs.pop("mmm_roi")] if "mmm_roi" in figs else []),
        ]))
        if mmm.run is not None:
            roi, allocation = mmm_roi_display_table(mmm), mmm_allocation_display_table(mmm)
            story += [Paragraph(pdf_escape(roi.title), styles["h3"]),
                      _table(roi, styles) if roi.rows else Paragraph("None.", styles["small"])]
            story += [Paragraph(pdf_escape(allocation.title), styles["h3"]),
                      _table(allocation, styles) if allocation.rows
                      else Paragraph("The run stored no budget allocation.", styles["small"])]
            if mmm.allocation:
                story.append(Paragraph(
                    "Expected gain of the recommended split over the current mix (same "
                    f"budget, {pdf_escape(horizon_text(mmm))}): "
                    f"<b>{pdf_escape(gain_text(mmm))}</b>.", styles["body"],
                ))
            if "mmm_curves" in figs:
                story.append(KeepTogether([figs.pop("mmm_curves")]))
    if report.cohorts is not None:
        cohorts = report.cohorts
        story.append(KeepTogether([
            Paragraph("Cohort retention", styles["h2"]),
            Paragraph(pdf_escape(cohorts.statement), styles["body"]),
            *([figs.pop("cohort_logo_retention")] if "cohort_logo_retention" in figs else []),
        ]))
        if "cohort_mrr_retention" in figs:
            story.append(KeepTogether([figs.pop("cohort_mrr_retention")]))
        for metric in ("logo", "mrr") if cohorts.cohorts else ():
            table = cohort_display_table(cohorts, metric)
            story += [Paragraph(pdf_escape(table.title), styles["h3"]), _table(table, styles)]
    for insight in report.insights:
        story += _insight_story(insight, figs, styles)
    for name in [k for k in figs if k.startswith("trend_")]:
        story.append(KeepTogether([figs.pop(name)]))
    return story


@contextmanager
def _no_remote_resources() -> Iterator[None]:
    """reportlab fetches ``http:``/``file:`` images only from ``rl_config.trustedHosts``:
    none while a report is built (fonts are read by path, not through it)."""
    saved = rl_config.trustedHosts
    rl_config.trustedHosts = None
    try:
        yield
    finally:
        rl_config.trustedHosts = saved


def write_pdf(report: Report, path: Path, rendered: list[Chart] | None = None) -> Path:
    _fonts()
    doc = SimpleDocTemplate(
        str(path), pagesize=PAGE, leftMargin=1.5 * cm, rightMargin=1.5 * cm,
        topMargin=1.2 * cm, bottomMargin=1.2 * cm, title=report.meta.title,
        author="Pulse", subject=f"{report.meta.kind} report {report.meta.period}",
        invariant=1,
    )

    def footer(canvas: object, doc_: object) -> None:
        regular, _ = _fonts()
        canvas.saveState()  # type: ignore[attr-defined]
        canvas.setFont(regular, 7)  # type: ignore[attr-defined]
        canvas.drawString(  # type: ignore[attr-defined]
            1.5 * cm, 0.7 * cm,
            f"Pulse · {report.meta.title} · page {doc_.page}",  # type: ignore[attr-defined]
        )
        canvas.restoreState()  # type: ignore[attr-defined]

    with _no_remote_resources():
        doc.build(build_story(report, rendered), onFirstPage=footer, onLaterPages=footer)
    return path
