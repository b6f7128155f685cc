"""Insight sections (usage, deliverability, CX, martech, quarter …) drawn generically in
every format: Markdown, HTML (inline SVG), PDF (vector drawings), CSV (a file per table),
JSON, the e-mail's inline PNGs; user text escaped everywhere; None is a gap, never 0."""

from __future__ import annotations

import csv
import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from reportlab.graphics.shapes import Circle, Line, PolyLine, Rect

sys.path.insert(0, str(Path(__file__).parent))

from test_reporting_golden import build

from pulse_reporting.delivery.charts import png_charts
from pulse_reporting.delivery.compose import email_message
from pulse_reporting.domain.model import (
    Fmt,
    InsightChart,
    InsightColumn,
    InsightSection,
    InsightSeries,
    InsightTable,
    Report,
)
from pulse_reporting.domain.scoping import scoped_report
from pulse_reporting.render.drawing import insight_chart, report_charts
from pulse_reporting.render.exports import render_csv, render_json
from pulse_reporting.render.html import render_html
from pulse_reporting.render.markdown import render_markdown
from pulse_reporting.render.pdf import write_pdf

EVIL = "<script>alert(1)</script> | *bold*, a,b"


def _section() -> InsightSection:
    return InsightSection(
        key="probe",
        title="Probe section",
        statements=[f"Tool {EVIL} cost $1,200 in 2031-03 (2031-02: $1,000)."],
        charts=[
            InsightChart(
                name="by_tool", title="Spend by tool", kind="bar", fmt=Fmt.MONEY,
                labels=[EVIL, "crm"],
                series=[InsightSeries(name="2031-03", values=[1200.0, None]),
                        InsightSeries(name="2031-02", values=[1000.0, 500.0])],
            ),
            InsightChart(
                name="daily_rate", title="Bounce rate by day", kind="line", fmt=Fmt.PERCENT,
                labels=["d1", "d2", "d3", "d4", "d5"],
                series=[InsightSeries(name="bounce rate",
                                      values=[0.01, 0.015, None, 0.04, 0.012])],
                threshold=0.02, threshold_label="alert threshold 2%",
            ),
        ],
        tables=[InsightTable(
            name="probe_tools", title="Tools",
            columns=[InsightColumn(key="tool", title="Tool"),
                     InsightColumn(key="cost", title="Cost", fmt=Fmt.MONEY),
                     InsightColumn(key="share", title="Share", fmt=Fmt.PERCENT)],
            rows=[[EVIL, 1200.0, 0.7], ["=HYPERLINK(\"x\")", None, 0.3]],
        )],
        notes=["Costs are monthly list prices; 2031-03 is complete."],
        kpis=["spend"],
    )


def _unavailable() -> InsightSection:
    return InsightSection(key="empty_probe", title="Empty probe",
                          unavailable="No events of this kind yet.", kpis=["spend"])


@pytest.fixture(scope="module")
def report() -> Report:
    return build("monthly", "2031-03").model_copy(
        update={"insights": [_section(), _unavailable()]})


def test_markdown_escapes_and_tabulates(report: Report) -> None:
    md = render_markdown(report)
    assert "## Probe section" in md and "## Empty probe" in md
    assert "_No events of this kind yet._" in md
    assert "<script>" not in md and "\\<script\\>" in md
    assert "\\| \\*bold\\*, a,b" in md
    # the charts as tables of their numbers (Markdown has no images): None is n/a
    assert "### Spend by tool" in md
    assert "| Label | 2031-03 | 2031-02 |" in md
    assert "| crm | n/a | $500.00 |" in md
    assert "_alert threshold 2%: 2.0%_" in md
    assert "| =HYPERLINK(\"x\") | n/a | 30.0% |" in md
    # insight sections come before the recommendations
    assert md.index("## Probe section") < md.index("## Recommendations")


def test_html_escapes_and_draws_svg(report: Report) -> None:
    html = render_html(report)
    assert '<section id="insight-probe">' in html and '<section id="insight-empty_probe">' in html
    assert "<script" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    probe = html[html.index('<section id="insight-probe">'):]
    probe = probe[:probe.index("</section>")]
    assert probe.count("<svg") == 2  # both charts, inline
    assert "Spend by tool" in probe and "alert threshold 2%" in probe
    assert 'data-table="probe_tools"' in probe
    assert "Costs are monthly list prices" in probe


def test_pdf_contains_the_section(report: Report, tmp_path: Path) -> None:
    pdftotext = shutil.which("pdftotext")
    assert pdftotext, "pdftotext missing: apt-get install -y poppler-utils"
    path = write_pdf(report, tmp_path / "r.pdf")
    text = subprocess.run([pdftotext, str(path), "-"], check=True, capture_output=True,
                          text=True).stdout
    assert "Probe section" in text and "<script>alert(1)</script>" in text  # literal text
    assert "Spend by tool" in text and "Bounce rate by day" in text
    assert "No events of this kind yet." in text


def test_csv_has_a_file_per_table_and_json_round_trips(report: Report) -> None:
    files = render_csv(report)
    assert "probe_tools" in files
    rows = list(csv.reader(io.StringIO(files["probe_tools"])))
    assert rows[0] == ["tool", "cost", "share"]
    assert rows[1] == [EVIL, "1200.0", "0.7"]  # commas quoted, not split
    assert rows[2] == ["'=HYPERLINK(\"x\")", "", "0.3"]  # formula defused, None empty
    data = json.loads(render_json(report))
    assert [s["key"] for s in data["insights"]] == ["probe", "empty_probe"]
    assert Report.model_validate_json(render_json(report)) == report


def test_charts_draw_gaps_and_thresholds() -> None:
    bar, line = _section().charts
    bars = insight_chart(bar)
    assert bars is not None
    drawn_bars = [s for s in bars.contents if isinstance(s, Rect) and s.height > 8]
    assert len(drawn_bars) == 3  # three values; the None is no bar (legend squares are 7)
    lines = insight_chart(line)
    assert lines is not None
    runs = [s for s in lines.contents if isinstance(s, PolyLine)]
    assert len(runs) == 2  # d1–d2 and d4–d5: the line breaks at the gap
    dashed = [s for s in lines.contents if isinstance(s, Line) and s.strokeDashArray]
    assert len(dashed) == 1  # the threshold
    lonely = InsightChart(name="x", title="x", kind="line", labels=["a", "b", "c"],
                          series=[InsightSeries(name="s", values=[None, 2.0, None])])
    drawn = insight_chart(lonely)
    assert drawn is not None and any(isinstance(s, Circle) for s in drawn.contents)
    empty = InsightChart(name="x", title="x", kind="bar", labels=["a"],
                         series=[InsightSeries(name="s", values=[None])])
    assert insight_chart(empty) is None  # nothing known: no chart, not a chart of zeros


def test_every_consumer_gets_the_insight_charts(report: Report) -> None:
    names = [c.name for c in report_charts(report)]
    assert "insight_probe_by_tool" in names and "insight_probe_daily_rate" in names
    pngs = png_charts(report)
    assert {"insight_probe_by_tool", "insight_probe_daily_rate"} <= {p.name for p in pngs}
    message = email_message(report, sender="p@example.com", to="cmo@example.com",
                            charts=pngs)
    cids = {part["Content-ID"] for part in message.walk() if part["Content-ID"]}
    assert "<chart-insight_probe_by_tool@pulse>" in cids
    html = next(p for p in message.walk() if p.get_content_type() == "text/html").get_content()
    text = next(p for p in message.walk() if p.get_content_type() == "text/plain").get_content()
    # the section's title and statements, escaped, and its charts under them
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    probe = html.index("Probe section")
    assert probe < html.index("cid:chart-insight_probe_by_tool@pulse")
    assert html.index("cid:chart-mrr_bridge@pulse") < probe
    assert "Empty probe" in html and "No events of this kind yet." in html
    assert "Probe section\n- Tool <script>" in text  # plain text is not HTML


def test_a_narrowed_role_gets_only_sections_it_may_see(report: Report) -> None:
    assert [s.key for s in scoped_report(report, "cmo").insights] == ["probe", "empty_probe"]
    # cx sees no spend: both probe sections name it
    assert scoped_report(report, "cx").insights == []
    revenue = InsightSection(key="retention", title="Retention", kpis=["mrr"])
    unnamed = InsightSection(key="unknown_section", title="Unnamed")
    both = report.model_copy(update={"insights": [revenue, unnamed]})
    assert [s.key for s in scoped_report(both, "cx").insights] == ["retention"]


def test_every_sections_first_chart_reaches_the_email_before_any_second(report: Report) -> None:
    def section(key: str) -> InsightSection:
        return _section().model_copy(update={"key": key, "title": key})

    many = report.model_copy(update={"insights": [section(f"s{i}") for i in range(5)]})
    names = [p.name for p in png_charts(many, insight_limit=6)]
    insight = [n for n in names if n.startswith("insight_")]
    # five sections × two charts, six allowed: every first chart, then s0's second
    assert insight == ["insight_s0_by_tool", "insight_s0_daily_rate", "insight_s1_by_tool",
                       "insight_s2_by_tool", "insight_s3_by_tool", "insight_s4_by_tool"]
    assert len([n for n in names if not n.startswith("insight_")]) <= 6
