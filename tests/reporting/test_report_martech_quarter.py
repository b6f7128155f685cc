"""The martech insight section (tool cost by category, CAC and ROI with and without tools)
and the quarterly report's own section (QoQ and YoY, five quarters, the quarter's months):
read on both backends, built exactly, drawn in the reports; absent data is n/a."""

from __future__ import annotations

import csv
import datetime as dt
import sys
from decimal import Decimal
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from reporting_fixtures import insert_kpis, kpi

from pulse_reporting.domain.martech import MartechInputs, martech_section
from pulse_reporting.domain.model import InsightSection, KpiValue
from pulse_reporting.domain.periods import YearPeriod, parse_period
from pulse_reporting.domain.quarter import (
    QuarterInputs,
    quarter_months,
    quarter_periods,
    quarter_section,
)
from pulse_reporting.domain.scoping import scoped_report
from pulse_reporting.generate import produce_report
from pulse_reporting.storage import ReportingStorage
from pulse_shared.store import Store

Y = 2043  # a year no other test writes
MONTH = parse_period("monthly", f"{Y}-05")
QUARTER = parse_period("quarterly", f"{Y}-Q2")
NOW = dt.datetime(Y, 7, 2, 6, tzinfo=dt.UTC)
COST_COLUMNS = ("event_id", "month", "vendor", "category", "amount", "currency")


def _costs() -> list[dict[str, object]]:
    def row(i: int, month: int, vendor: str, category: str, amount: int) -> dict[str, object]:
        return {"event_id": f"s5-mt-{i}", "month": dt.date(Y, month, 1), "vendor": vendor,
                "category": category, "amount": Decimal(amount), "currency": "USD"}
    return [
        row(1, 5, "hubspot", "marketing_automation", 3000),
        row(2, 5, "salesforce", "crm", 1500),
        row(3, 5, "amplitude", "analytics", 500),
        row(4, 4, "hubspot", "marketing_automation", 3000),
        row(5, 4, "salesforce", "crm", 1000),
    ]


def _month_kpis() -> list[dict[str, object]]:
    may, april = MONTH, MONTH.previous()
    return [
        kpi("spend", may, 20000.0), kpi("martech_cost", may, 5000.0),
        kpi("marketing_cost", may, 25000.0), kpi("new_customers", may, 10.0, unit="count"),
        kpi("cac", may, 2000.0), kpi("cac_fully_loaded", may, 2500.0),
        kpi("marketing_roi", may, 1.5, unit="ratio"),
        kpi("marketing_roi_fully_loaded", may, 1.0, unit="ratio"),
        kpi("spend", april, 16000.0), kpi("martech_cost", april, 4000.0),
        kpi("cac", april, 2000.0), kpi("cac_fully_loaded", april, 2500.0),
    ]


class TestMartechSectionOnBothBackends:
    @pytest.fixture
    def store(self, any_store: Store) -> Store:
        insert_kpis(any_store, _month_kpis())
        any_store.insert("martech_costs", _costs(), COST_COLUMNS)
        return any_store

    def test_reads_and_builds_the_section(self, store: Store) -> None:
        inputs = ReportingStorage(store).martech_inputs(MONTH)
        section = martech_section(inputs, MONTH, NOW)
        assert section is not None and section.unavailable is None
        tables = {t.name: t for t in section.tables}
        assert tables["martech_by_category"].rows == [
            ["marketing_automation", 3000.0, 3000.0, 0.0, 0.6],
            ["crm", 1500.0, 1000.0, 0.5, 0.3],
            ["analytics", 500.0, None, None, 0.1],  # no cost in April: n/a, not 0
        ]
        assert tables["martech_cac_roi"].rows[0] == [
            f"{Y}-05", 20000.0, 5000.0, 2000.0, 2500.0, 1.5, 1.0]
        assert tables["martech_cac_roi"].rows[2][1:] == [None] * 6  # a year ago: nothing
        [by_category, cac] = section.charts
        assert by_category.labels == ["marketing_automation", "crm", "analytics"]
        assert cac.series[1].values == [None, 2500.0, 2500.0]
        text = " ".join(section.statements)
        assert f"Martech cost {Y}-05: $5,000, 20.0% of marketing cost $25,000" in text
        assert "tools add $500.00 per new customer (25.0%)" in text
        assert "Marketing ROI 2043-05: 150.0% on ad spend alone, 100.0% with tools" in text
        assert "Largest tool category 2043-05: marketing_automation at $3,000" in text


def test_martech_in_the_monthly_report_files(
    embedded_store: Store, tmp_path: Path
) -> None:
    insert_kpis(embedded_store, [kpi("spend", parse_period("monthly", f"{Y + 1}-02"), 900.0)])
    embedded_store.insert("martech_costs", [
        {"event_id": "s5-mt-feb", "month": dt.date(Y + 1, 2, 1), "vendor": "x | <b>",
         "category": "seo, tools", "amount": Decimal(250), "currency": "USD"},
    ], COST_COLUMNS)
    result = produce_report(embedded_store, "monthly", f"{Y + 1}-02", formats="md,csv,html",
                            out_dir=tmp_path, now=dt.datetime(Y + 1, 3, 2, tzinfo=dt.UTC))
    keys = [s.key for s in result.report.insights]
    assert "martech" in keys and "quarter" not in keys  # quarter: quarterly reports only
    md = result.paths["md"].read_text()
    assert "## Martech spend: tools and licences" in md
    assert "| seo, tools | $250.00 | n/a | n/a | 100.0% |" in md
    with (result.paths["csv"] / "martech_by_category.csv").open() as fh:
        assert list(csv.DictReader(fh))[0]["category"] == "seo, tools"
    assert "Martech cost by tool category" in result.paths["html"].read_text()
    # cx sees no spend economics: the section is not in its view
    assert "martech" not in [s.key for s in scoped_report(result.report, "cx").insights]


def test_martech_unavailable_without_costs() -> None:
    period = parse_period("monthly", "2040-01")
    inputs = MartechInputs((period, period.previous(), period.year_ago()),
                           {p.label: (p.label,) for p in (period, period.previous(),
                                                          period.year_ago())})
    section = martech_section(inputs, period, NOW)
    assert section is not None and section.unavailable is not None
    assert "No martech" in section.unavailable and not section.tables


def test_annual_martech_is_recomputed_from_the_quarters() -> None:
    year = YearPeriod.of_year(2040)
    periods = (year, year.previous(), year.year_ago())
    parts = {p.label: tuple(p.quarter(q).label for q in range(1, 5)) for p in periods}
    rows = [
        KpiValue(kpi=k, grain="quarter", period=q, value=v)
        for q in parts["2040"]
        for k, v in (("spend", 1000.0), ("martech_cost", 250.0), ("new_customers", 5.0),
                     ("attributed_revenue", 2500.0))
    ] + [KpiValue(kpi="spend", grain="quarter", period="2039-Q1", value=10.0)]
    section = martech_section(MartechInputs(periods, parts, rows), year, NOW)
    assert section is not None
    economics = {t.name: t for t in section.tables}["martech_cac_roi"]
    # 4000 / 20, 5000 / 20, (10000 − 4000) / 4000, (10000 − 5000) / 5000
    assert economics.rows[0] == ["2040", 4000.0, 1000.0, 200.0, 250.0, 1.5, 1.0]
    # 2039 has one quarter of spend only: not a year, n/a
    assert economics.rows[1] == ["2039", None, None, None, None, None, None]


def _quarter_rows() -> list[dict[str, object]]:
    rows = []
    for i, q in enumerate(quarter_periods(QUARTER)):  # oldest first
        scale = 1.0 + 0.1 * i
        rows += [kpi("spend", q, 10000.0 * scale), kpi("attributed_revenue", q, 30000.0 * scale),
                 kpi("mrr", q, 50000.0 * scale), kpi("new_customers", q, 10.0 * scale,
                                                       unit="count"),
                 kpi("cac", q, 1000.0 / scale)]
    for j, m in enumerate(quarter_months(QUARTER)):
        rows.append(kpi("spend", m, 4000.0 + j * 100))
    return rows


def test_quarterly_report_has_its_own_section(embedded_store: Store, tmp_path: Path) -> None:
    insert_kpis(embedded_store, _quarter_rows())
    result = produce_report(embedded_store, "quarterly", QUARTER, formats="md,html,csv",
                            out_dir=tmp_path, now=NOW)
    [section] = [s for s in result.report.insights if s.key == "quarter"]
    comparison = {t.name: t for t in section.tables}["quarter_comparison"]
    assert [c.title for c in comparison.columns] == [
        "KPI", f"{Y}-Q2", f"{Y}-Q1", "QoQ", f"{Y - 1}-Q2", "YoY"]
    spend = next(r for r in comparison.rows if r[0] == "Spend")
    assert spend[1:] == [14000.0, 13000.0, pytest.approx(1 / 13), 10000.0, pytest.approx(0.4)]
    ltv = next(r for r in comparison.rows if r[0] == "LTV")
    assert ltv[1:] == [None, None, None, None, None]  # not stored: n/a, not 0
    months = {t.name: t for t in section.tables}["quarter_months"]
    assert [c.title for c in months.columns][1:] == [f"{Y}-04", f"{Y}-05", f"{Y}-06", f"{Y}-Q2"]
    assert months.rows[0] == ["Spend", 4000.0, 4100.0, 4200.0, 14000.0]
    md = result.paths["md"].read_text()
    assert f"## {Y}-Q2: quarter over quarter and year over year" in md
    assert "| Spend | $14,000 | $13,000 | 7.7% | $10,000 | 40.0% |" in md
    assert "| CAC | $714.29 | $769.23 | -7.1% | $1,000 | -28.6% |" in md
    assert f"Improved most over {Y}-Q1: Attributed revenue +7.7%, MRR +7.7%" in md
    assert f"CAC {Y}-Q2: $714.29 ($769.23 in {Y}-Q1, -7.1%; $1,000 in {Y - 1}-Q2, -28.6%)" in md
    assert f"{Y}-Q2" in md.split("### Spend, attributed revenue")[1]  # the chart's numbers
    with (result.paths["csv"] / "quarter_comparison.csv").open() as fh:
        first = next(csv.DictReader(fh))
    assert first["kpi"] == "Spend" and float(first["quarter"]) == 14000.0  # raw in CSV
    assert '<section id="insight-quarter">' in result.paths["html"].read_text()


def test_quarter_section_skips_other_grains_and_says_when_empty() -> None:
    inputs = QuarterInputs(quarter_periods(QUARTER), quarter_months(QUARTER))
    assert quarter_section(inputs, MONTH, NOW) is None
    empty = quarter_section(inputs, QUARTER, NOW)
    assert isinstance(empty, InsightSection) and empty.unavailable


def test_annual_report_carries_the_martech_section_in_every_format(
    embedded_store: Store, tmp_path: Path
) -> None:
    """The annual report lays its sections out its own way (kind sections): the insight
    sections follow them in every format, and their tables are CSV files."""
    year = YearPeriod.of_year(2046)
    rows = []
    for q in range(1, 5):
        quarter = year.quarter(q)
        rows += [kpi("spend", quarter, 9000.0), kpi("martech_cost", quarter, 3000.0),
                 kpi("new_customers", quarter, 12.0, unit="count"),
                 kpi("attributed_revenue", quarter, 24000.0)]
    rows += [kpi("spend", m, 3000.0) for m in year.month_periods()]
    insert_kpis(embedded_store, rows)
    embedded_store.insert("martech_costs", [
        {"event_id": f"s5-an-{m}", "month": dt.date(2046, m, 1), "vendor": "crm-co",
         "category": "crm", "amount": Decimal(1000), "currency": "USD"} for m in range(1, 13)
    ], COST_COLUMNS)
    result = produce_report(embedded_store, "annual", "2046", formats="md,html,csv,json",
                            out_dir=tmp_path, now=dt.datetime(2047, 1, 2, tzinfo=dt.UTC))
    [section] = [s for s in result.report.insights if s.key == "martech"]
    economics = {t.name: t for t in section.tables}["martech_cac_roi"]
    # 36000 / 48 and 48000 / 48; (96000 − 36000) / 36000 and (96000 − 48000) / 48000
    assert economics.rows[0] == ["2046", 36000.0, 12000.0, 750.0, 1000.0,
                                 pytest.approx(5 / 3), 1.0]
    md = result.paths["md"].read_text()
    assert md.index("## 2046 month by month") < md.index("## Martech spend: tools and licences")
    assert "| crm | $12,000 | n/a | n/a | 100.0% |" in md
    assert 'id="insight-martech"' in result.paths["html"].read_text()
    assert (result.paths["csv"] / "martech_cac_roi.csv").exists()


def test_an_empty_quarter_without_source_data_is_n_a_not_zero() -> None:
    quarters = quarter_periods(QUARTER)
    rows = [KpiValue(kpi="attributed_revenue", grain="quarter", period=q.label,
                     value=0.0 if i < 4 else 42000.0) for i, q in enumerate(quarters)]
    rows.append(KpiValue(kpi="spend", grain="quarter", period=quarters[-2].label, value=0.0))
    # touchpoints and pipeline (attributed revenue's sources) start in the report's quarter;
    # spend has data throughout (its 0 is a measured nothing)
    coverage = {"touchpoints": (QUARTER.start, QUARTER.last_day),
                "pipeline_events": (QUARTER.start, QUARTER.last_day),
                "spend": (quarters[0].start, QUARTER.last_day),
                "subscriptions": (quarters[0].start, QUARTER.last_day)}
    section = quarter_section(QuarterInputs(quarters, quarter_months(QUARTER), rows, coverage),
                              QUARTER, NOW)
    assert section is not None
    comparison = {t.name: t for t in section.tables}["quarter_comparison"]
    revenue = next(r for r in comparison.rows if r[0] == "Attributed revenue")
    assert revenue[1:] == [42000.0, None, None, None, None]  # not $0.00 and not −100 %
    spend = next(r for r in comparison.rows if r[0] == "Spend")
    assert spend[2] == 0.0
    assert any(f"before {QUARTER.start.isoformat()}" in n for n in section.notes)
