"""The deliverability insight section (issue 17, slice S3), built from KPI values (pure):
rates per sending domain, daily bounce/complaint charts with the threshold lines, breach
statements with their evidence, n/a and partial periods, and its Markdown rendering.
(tests/kpi/test_kpi_deliverability.py reads the section's inputs from both backends.)"""

from __future__ import annotations

import datetime as dt

from test_reporting_golden import build

from pulse_reporting.domain.deliverability import (
    DeliverabilityInputs,
    deliverability_section,
    week_labels,
)
from pulse_reporting.domain.model import KpiValue
from pulse_reporting.domain.periods import parse_period
from pulse_reporting.insights import insights_for
from pulse_reporting.render.markdown import render_markdown
from pulse_shared.periods import Period

WEEK = parse_period("weekly", "2031-W10")  # Mon 2031-03-03 … Sun 2031-03-09
LATER = dt.datetime(2031, 3, 20, tzinfo=dt.UTC)


def kv(kpi: str, period: str, value: float | None, domain: str = "") -> KpiValue:
    grain = "day" if len(period) == 10 else "week"
    return KpiValue(kpi=kpi, grain=grain, period=period, value=value,
                    dimension="sending_domain" if domain else "all", dimension_value=domain)


def inputs(bad: bool) -> DeliverabilityInputs:
    bounce = 0.031 if bad else 0.009
    rows = [
        kv("emails_sent", "2031-W10", 50000.0), kv("emails_sent", "2031-W09", 48000.0),
        kv("emails_sent", "2031-W10", 30000.0, "mail.example.com"),
        kv("emails_sent", "2031-W10", 20000.0, "news.example.com"),
        kv("bounce_rate", "2031-W10", 0.02, ""), kv("bounce_rate", "2031-W09", 0.008),
        kv("complaint_rate", "2031-W10", 0.0004), kv("complaint_rate", "2031-W09", None),
        kv("bounce_rate", "2031-W10", bounce, "mail.example.com"),
        kv("complaint_rate", "2031-W10", 0.0005, "mail.example.com"),
        kv("bounce_rate", "2031-W10", 0.004, "news.example.com"),
        kv("complaint_rate", "2031-W10", 0.0002, "news.example.com"),
        kv("open_rate", "2031-W10", 0.31, "mail.example.com"),
    ]
    weeks = [r for r in rows if r.period == "2031-W10" and r.kpi != "open_rate"]
    days = [kv("bounce_rate", "2031-03-04", 0.05, "mail.example.com"),
            kv("bounce_rate", "2031-03-04", 0.03), kv("bounce_rate", "2031-03-05", None)]
    return DeliverabilityInputs(WEEK, WEEK.previous(), rows, weeks, days)


def test_a_bad_week_is_named_with_its_evidence() -> None:
    section = deliverability_section(inputs(bad=True), WEEK, LATER)
    assert section is not None and section.unavailable is None
    assert section.statements[0].startswith(
        "2031-W10: 50,000 e-mails sent from 2 sending domains, delivery rate n/a, "
        "bounce rate 2.00%, spam complaint rate 0.040%")
    assert section.statements[1:] == [
        "Breach: mail.example.com had a bounce rate of 3.10% in 2031-W10, above the 2.0% "
        "threshold (30,000 e-mails sent that week)."]
    table = section.tables[0]
    assert [r[0] for r in table.rows] == ["mail.example.com", "news.example.com", "all domains"]
    assert table.rows[0][8] == 0.31  # open rate column
    assert table.rows[2][6] == "0.040%"  # complaint rates with 3 decimals
    bounce, complaint = section.charts
    assert (bounce.kind, bounce.threshold, complaint.threshold) == ("line", 0.02, 0.001)
    assert bounce.labels[0] == "2031-03-03" and len(bounce.labels) == 7
    assert [s.name for s in bounce.series] == ["all domains", "mail.example.com",
                                               "news.example.com"]
    assert bounce.series[1].values[:3] == [None, 0.05, None]  # no value is a gap, not 0
    assert section.kpis[0] == "emails_sent" and section.dimensions == ["all", "sending_domain"]


def test_a_calm_week_says_so_with_the_highest_rates_and_partial_periods_are_flagged() -> None:
    section = deliverability_section(inputs(bad=False), WEEK, dt.datetime(2031, 3, 5,
                                                                          tzinfo=dt.UTC))
    assert section is not None
    assert section.statements[1] == (
        "No sending domain broke the thresholds (bounce rate 2.0%, complaint rate 0.1%) in "
        "any week of 2031-W10; highest domain rates over 2031-W10: "
        "bounce 0.90%, complaints 0.050%.")
    assert "2031-W10 is still running: e-mails and rates to date." in section.notes


def test_without_data_the_section_says_why() -> None:
    empty = DeliverabilityInputs(WEEK, WEEK.previous())
    section = deliverability_section(empty, WEEK, LATER)
    assert section is not None and section.unavailable is not None
    assert "No e-mail delivery data for 2031-W10 or 2031-W09" in section.unavailable


def test_weeks_of_a_month_and_the_report_kinds() -> None:
    month = Period("month", dt.date(2031, 3, 1))
    assert week_labels(month)[0] == "2031-W09" and week_labels(month)[-1] == "2031-W14"
    keys = {kind: [s.key for s in insights_for(kind)] for kind in
            ("daily", "weekly", "monthly", "quarterly", "annual")}
    assert "deliverability" in keys["weekly"] and "deliverability" in keys["quarterly"]
    assert "deliverability" not in keys["daily"] and "deliverability" not in keys["annual"]


def test_markdown_shows_the_section() -> None:
    section = deliverability_section(inputs(bad=True), WEEK, LATER)
    assert section is not None
    report = build("weekly", "2031-W10").model_copy(update={"insights": [section]})
    md = render_markdown(report)
    assert "## E-mail deliverability" in md
    assert "Breach: mail.example.com had a bounce rate of 3.10%" in md
