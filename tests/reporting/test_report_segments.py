"""The segments insight section (issue 17): MRR, new customers, churned MRR and ARPA by
segment in monthly, quarterly and annual reports, with a bar chart and statements that
carry their evidence. Built from kpi_values' ``segment`` rows (hand-made here, in 2019: a
year no other test writes) read back on both backends."""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from test_reporting_golden import build

from pulse_reporting.domain.model import Fmt, KpiValue
from pulse_reporting.domain.periods import ReportKind, parse_period
from pulse_reporting.domain.segments import SegmentInputs, segments_section
from pulse_reporting.insights import INSIGHTS, insights_for
from pulse_reporting.render.markdown import render_markdown
from pulse_reporting.storage import ReportingStorage
from pulse_shared.store import Store

NOW = dt.datetime(2019, 12, 15, tzinfo=dt.UTC)  # every compared period has ended
# (period, segment, kpi, value); February is the previous month of March.
ROWS = [
    ("2019-03", "enterprise", "mrr", 19000.0), ("2019-03", "enterprise", "arpa", 9500.0),
    ("2019-03", "enterprise", "new_customers", 1.0), ("2019-03", "enterprise", "mrr_churn", 0.0),
    ("2019-03", "mid_market", "mrr", 6000.0), ("2019-03", "mid_market", "arpa", 2000.0),
    ("2019-03", "mid_market", "new_customers", 0.0),
    ("2019-03", "mid_market", "mrr_churn", -1500.0),
    ("2019-03", "smb", "mrr", 5000.0), ("2019-03", "smb", "arpa", 500.0),
    ("2019-03", "smb", "new_customers", 4.0), ("2019-03", "smb", "mrr_churn", -500.0),
    ("2019-03", "unknown", "mrr", 0.0), ("2019-03", "unknown", "new_customers", 0.0),
    ("2019-02", "enterprise", "mrr", 9500.0), ("2019-02", "mid_market", "mrr", 7500.0),
    ("2019-02", "smb", "mrr", 3000.0), ("2019-02", "smb", "new_customers", 2.0),
    ("2019-02", "mid_market", "mrr_churn", -200.0),
]


def kpi(period: str, member: str, name: str, value: float | None) -> KpiValue:
    grain = "quarter" if "Q" in period else "month"
    return KpiValue(kpi=name, grain=grain, period=period, dimension="segment",
                    dimension_value=member, value=value, unit="")


def month_inputs() -> SegmentInputs:
    march = parse_period(ReportKind.MONTHLY, "2019-03")
    return SegmentInputs((march, march.previous()), {"2019-03": ("2019-03",),
                                                      "2019-02": ("2019-02",)},
                         [kpi(*r) for r in ROWS])


def test_section_is_registered_first_for_monthly_quarterly_and_annual_reports() -> None:
    assert INSIGHTS[0].key == "segments"
    for kind in (ReportKind.MONTHLY, ReportKind.QUARTERLY, ReportKind.ANNUAL):
        assert "segments" in [s.key for s in insights_for(kind)]
    assert "segments" not in [s.key for s in insights_for(ReportKind.WEEKLY)]


def test_month_table_chart_and_statements_with_evidence() -> None:
    march = parse_period(ReportKind.MONTHLY, "2019-03")
    section = segments_section(month_inputs(), march, NOW)
    assert section is not None and section.unavailable is None
    [table] = section.tables
    assert [c.key for c in table.columns] == [
        "segment", "mrr", "mrr_share", "mrr_previous", "mrr_change", "new_customers",
        "mrr_churn", "arpa"]
    assert table.rows == [
        ["Enterprise", 19000.0, 19000 / 30000, 9500.0, 1.0, 1.0, 0.0, 9500.0],
        ["Mid-market", 6000.0, 6000 / 30000, 7500.0, -0.2, 0.0, -1500.0, 2000.0],
        ["SMB", 5000.0, 5000 / 30000, 3000.0, 2000 / 3000, 4.0, -500.0, 500.0],
    ]  # "unknown" had nothing in either month: left out
    mrr_chart = section.charts[0]
    assert (mrr_chart.kind, mrr_chart.fmt) == ("bar", Fmt.MONEY)
    assert mrr_chart.labels == ["Enterprise", "Mid-market", "SMB"]
    assert [s.name for s in mrr_chart.series] == ["2019-03", "2019-02"]
    assert mrr_chart.series[1].values == [9500.0, 7500.0, 3000.0]
    # February has no new-customer value for enterprise and mid-market: gaps, never 0
    assert section.charts[1].series[1].values == [None, None, 2.0]
    assert section.statements == [
        "Enterprise holds 63.3% of MRR at the end of 2019-03: $19,000 of $30,000 "
        "(2019-02: 47.5%).",
        "New customers 2019-03: Enterprise 1, SMB 4 (5 in all; 2019-02: 2).",
        "Churned MRR 2019-03 was largest in Mid-market: -$1,500 of -$2,000 "
        "(2019-02: -$200.00).",
        "ARPA at the end of 2019-03: Enterprise $9,500 vs SMB $500.00 (19.00x).",
    ]
    assert section.dimensions == ["segment"] and "mrr" in section.kpis


def test_a_year_sums_its_quarters_flows_and_takes_the_last_quarters_stocks() -> None:
    year = parse_period(ReportKind.ANNUAL, "2019")
    quarters = tuple(f"2019-Q{q}" for q in range(1, 5))
    last = tuple(f"2018-Q{q}" for q in range(1, 5))
    rows = [kpi(q, "smb", "new_customers", float(n)) for q, n in zip(quarters, (1, 2, 3, 4),
                                                                      strict=True)]
    rows += [kpi("2019-Q2", "smb", "mrr", 100.0), kpi("2019-Q4", "smb", "mrr", 400.0),
             kpi("2018-Q4", "smb", "mrr", 50.0)]
    inputs = SegmentInputs((year, year.previous()), {"2019": quarters, "2018": last}, rows)
    section = segments_section(inputs, year, NOW.replace(year=2020))
    assert section is not None
    [row] = section.tables[0].rows
    assert row[:5] == ["SMB", 400.0, 1.0, 50.0, 7.0]
    assert row[5] == 10.0  # 1 + 2 + 3 + 4 new customers
    assert any("four quarters" in note for note in section.notes)


def test_without_profiles_the_section_says_why_and_a_running_month_is_flagged() -> None:
    april = parse_period(ReportKind.MONTHLY, "2019-04")
    empty = SegmentInputs((april, april.previous()), {"2019-04": ("2019-04",),
                                                      "2019-03": ("2019-03",)})
    section = segments_section(empty, april, NOW)
    assert section is not None and section.unavailable is not None
    assert "ingest kind accounts" in section.unavailable
    running = segments_section(month_inputs(), parse_period(ReportKind.MONTHLY, "2019-03"),
                               dt.datetime(2019, 3, 20, tzinfo=dt.UTC))
    assert running is not None and any("still running" in n for n in running.notes)


def test_the_section_renders_in_the_report() -> None:
    march = parse_period(ReportKind.MONTHLY, "2019-03")
    section = segments_section(month_inputs(), march, NOW)
    report = build("monthly", "2031-03").model_copy(update={"insights": [section]})
    md = render_markdown(report)
    assert "## Segments: SMB, mid-market, enterprise" in md
    assert "### MRR by segment" in md and "Enterprise holds 63.3% of MRR" in md


class TestSegmentInputsOnBothBackends:
    @pytest.fixture
    def store(self, any_store: Store) -> Store:
        rows = [{"kpi": name, "grain": "month", "period": period,
                 "period_start": dt.date(2019, int(period[5:7]), 1), "dimension": "segment",
                 "dimension_value": member, "value": value, "unit": "",
                 "computed_at": NOW} for period, member, name, value in ROWS]
        rows.append({**rows[0], "dimension": "plan", "dimension_value": "pro"})  # not read
        any_store.insert("kpi_values", rows, list(rows[0]))
        return any_store

    def test_reads_the_segment_rows_of_the_period_and_the_previous_one(
        self, store: Store
    ) -> None:
        march = parse_period(ReportKind.MONTHLY, "2019-03")
        inputs = ReportingStorage(store).segment_inputs(march)
        assert inputs.parts == {"2019-03": ("2019-03",), "2019-02": ("2019-02",)}
        assert {(k.period, k.dimension_value, k.kpi) for k in inputs.kpis} == {
            (p, m, k) for p, m, k, _ in ROWS}
        section = segments_section(inputs, march, NOW)
        assert section is not None
        assert section.tables[0].rows == segments_section(month_inputs(), march, NOW).tables[0].rows  # type: ignore[union-attr]
