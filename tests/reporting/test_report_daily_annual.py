"""The daily briefing and the annual (board) report, generated from rows written straight
into the store (both backends): exact comparisons, n/a where the base has no data, every
format, the running-period rule, the schedule and role scoping.

Dates are in 1996–1999, which no other test uses (the shared store's tables are shared)."""

from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from reporting_fixtures import alert, insert_alerts, insert_kpis, kpi

from pulse_reporting.domain.periods import (
    BY_GRAIN,
    ReportKind,
    YearPeriod,
    last_complete,
    parse_period,
)
from pulse_reporting.domain.schedule import ALL_KINDS, due_runs, latest_runs
from pulse_reporting.domain.scoping import scoped_report
from pulse_reporting.generate import produce_report
from pulse_shared.access import kpi_visible
from pulse_shared.events import Grain
from pulse_shared.periods import Period
from pulse_shared.store import Store

DAY = dt.date(1997, 3, 12)  # a Wednesday
WEEK_EARLIER = dt.date(1997, 3, 5)  # the Wednesday before
AFTER_DAY = dt.datetime(1997, 3, 13, 6, tzinfo=dt.UTC)
ALL = ("md", "html", "pdf", "json", "csv")


def _day(day: dt.date) -> Period:
    return Period(Grain.DAY, day)


def _month(year: int, month: int) -> Period:
    return Period(Grain.MONTH, dt.date(year, month, 1))


def _daily_rows() -> list[dict[str, Any]]:
    """The briefing day against the same weekday a week earlier (52 weeks earlier: none),
    and spend every day from 1 January (100 a day, 150 on the briefing day)."""
    rows: list[dict[str, Any]] = []
    day = dt.date(1997, 1, 1)
    while day <= DAY:
        if day not in (DAY, WEEK_EARLIER):
            rows.append(kpi("spend", _day(day), 100.0))
        day += dt.timedelta(days=1)
    today, before = _day(DAY), _day(WEEK_EARLIER)
    rows += [
        kpi("spend", today, 150.0), kpi("spend", before, 100.0),
        kpi("leads", today, 6.0, unit="count"), kpi("leads", before, 8.0, unit="count"),
        kpi("attributed_pipeline", today, 900.0), kpi("attributed_pipeline", before, 600.0),
        kpi("attributed_revenue", today, 300.0), kpi("attributed_revenue", before, 200.0),
        kpi("mrr_new", today, 200.0), kpi("mrr_new", before, 100.0),
        # CAC is undefined a week earlier (no new customer that day): no row
        kpi("cac", today, 75.0),
    ]
    return rows


@pytest.fixture
def briefing_store(any_store: Store) -> Store:
    insert_kpis(any_store, _daily_rows())
    fired = alert("dab-fired", dt.datetime(1997, 3, 12, 9, tzinfo=dt.UTC),
                  period=DAY.isoformat(), summary="spend spike on the briefing day")
    elsewhere = alert("dab-other", dt.datetime(1997, 3, 10, 9, tzinfo=dt.UTC),
                      period="1997-03-10", summary="an earlier day")
    resolved = alert("dab-resolved", dt.datetime(1997, 3, 11, 9, tzinfo=dt.UTC),
                     state="resolved", period="1997-03-11", summary="resolved on the day")
    resolved["ends_at"] = dt.datetime(1997, 3, 12, 14, tzinfo=dt.UTC)
    insert_alerts(any_store, [fired, elsewhere, resolved])
    return any_store


def _tile(report: dict[str, Any], kpi_name: str) -> dict[str, Any]:
    return next(t for t in report["headline"] if t["kpi"] == kpi_name)


def test_daily_briefing_compares_with_the_same_weekday_a_week_earlier(
    briefing_store: Store, tmp_path: Path,
) -> None:
    result = produce_report(briefing_store, "daily", DAY.isoformat(), formats=ALL,
                            out_dir=tmp_path, now=AFTER_DAY)
    assert set(result.paths) == set(ALL)
    report = json.loads(result.paths["json"].read_text())
    meta = report["meta"]
    assert (meta["kind"], meta["period"], meta["grain"]) == ("daily", "1997-03-12", "day")
    assert meta["previous_period"] == "1997-03-05" and meta["complete"] is True
    spend = _tile(report, "spend")
    assert (spend["value"], spend["pop"]["previous"], spend["pop"]["change_pct"]) == (
        150.0, 100.0, 0.5)
    leads = _tile(report, "leads")
    assert (leads["value"], leads["pop"]["change_pct"], leads["pop"]["tone"]) == (
        6.0, -0.25, "bad")
    assert _tile(report, "attributed_pipeline")["pop"]["change_pct"] == 0.5
    assert _tile(report, "attributed_revenue")["pop"]["previous"] == 200.0
    assert _tile(report, "mrr_new")["pop"]["change_pct"] == 1.0
    cac = _tile(report, "cac")
    assert cac["value"] == 75.0 and cac["pop"]["previous"] is None
    assert cac["pop"]["change"] is None  # n/a, never a change against 0
    # 52 weeks earlier has no data at all: n/a, not 0
    assert spend["yoy"]["previous"] is None and spend["yoy"]["change"] is None
    # no attribution comparison, funnel or recommendations in a briefing
    assert report["model_comparison"]["rows"] == [] and report["recommendations"] == []
    assert report["annual"] is None

    briefing = report["briefing"]
    assert [a["alert_id"] for a in report["alerts"]] == ["dab-fired"]
    assert [a["alert_id"] for a in briefing["alerts_resolved"]] == ["dab-resolved"]
    # month to date: 1-12 March (11 × 100 + 150) against 1-12 February (12 × 100)
    pacing = {r["kpi"]: r for r in briefing["pacing"]}
    assert pacing["spend"]["value"] == 1250.0 and pacing["spend"]["previous"] == 1200.0
    assert pacing["spend"]["landing"] is not None
    # the sparkline: the last 14 days of spend, the briefing day last
    spark = next(t for t in report["trends"] if t["kpi"] == "spend")
    assert len(spark["points"]) == 14 and spark["points"][-1] == {
        "day": "1997-03-12", "value": 150.0}

    md = result.paths["md"].read_text()
    assert "# Daily marketing briefing 1997-03-12 (Wednesday)" in md
    assert "| Spend | $150.00 | ▲ +50.0% | ⚪ |" in md
    assert "| Leads | 6 | ▼ -25.0% | 🔴 |" in md
    assert "| CAC | $75.00 | n/a" in md
    assert "spend spike on the briefing day" in md and "resolved on the day" in md
    assert "an earlier day" not in md
    assert "## Month to date — 1997-03" in md and "| Spend | $1,250 | $1,200 | +4.2% |" in md
    assert "Attribution model comparison" not in md and "Recommendations" not in md
    html = result.paths["html"].read_text()
    assert "vs a week earlier" in html and "<svg" in html
    assert 'id="recommendations"' not in html
    assert result.paths["pdf"].read_bytes().startswith(b"%PDF")
    csv_dir = result.paths["csv"]
    assert {p.stem for p in csv_dir.iterdir()} == {
        "meta", "headline", "pacing", "budget", "alerts", "alerts_resolved", "sparklines"}
    assert "spend,Spend,1250.0,1200.0," in (csv_dir / "pacing.csv").read_text()


def test_daily_briefing_of_a_day_not_over_is_flagged_partial(
    briefing_store: Store, tmp_path: Path,
) -> None:
    during = dt.datetime(1997, 3, 12, 15, tzinfo=dt.UTC)
    result = produce_report(briefing_store, "daily", DAY.isoformat(), formats=("md", "json"),
                            out_dir=tmp_path, now=during)
    assert result.report.meta.complete is False
    assert "Partial period" in result.paths["md"].read_text()


def _annual_rows() -> list[dict[str, Any]]:
    """1998 month by month, 1997 at half the spend (no attributed revenue in 1997)."""
    rows: list[dict[str, Any]] = []
    for m in range(1, 13):
        cur, prev = _month(1998, m), _month(1997, m)
        rows += [
            kpi("spend", cur, 1000.0 * m), kpi("spend", prev, 500.0 * m),
            kpi("leads", cur, 50.0, unit="count"), kpi("leads", prev, 40.0, unit="count"),
            kpi("new_customers", cur, 10.0, unit="count"),
            kpi("new_customers", prev, 10.0, unit="count"),
            kpi("attributed_revenue", cur, 3000.0 * m),
            kpi("mrr", cur, 100.0 * m), kpi("mrr", prev, 50.0 * m),
            kpi("ltv_cac", cur, 4.0, unit="ratio"), kpi("ltv_cac", prev, 2.0, unit="ratio"),
        ]
    # the daily spend history the next quarter's forecast is made from
    first = dt.date(1998, 10, 3)
    rows += [kpi("spend", _day(first + dt.timedelta(days=i)), 100.0 + i % 7)
             for i in range(90)]
    return rows


@pytest.fixture
def annual_store(any_store: Store) -> Store:
    insert_kpis(any_store, _annual_rows())
    return any_store


AFTER_1998 = dt.datetime(1999, 1, 1, 6, tzinfo=dt.UTC)


def test_annual_report_year_over_year(annual_store: Store, tmp_path: Path) -> None:
    result = produce_report(annual_store, "annual", "1998", formats=ALL, out_dir=tmp_path,
                            now=AFTER_1998)
    assert set(result.paths) == set(ALL)
    report = json.loads(result.paths["json"].read_text())
    meta = report["meta"]
    assert (meta["kind"], meta["period"], meta["grain"], meta["complete"]) == (
        "annual", "1998", "year", True)
    assert (meta["period_start"], meta["period_end"]) == ("1998-01-01", "1998-12-31")
    spend = _tile(report, "spend")  # 1000 × (1 + … + 12) against 500 × (1 + … + 12)
    assert (spend["value"], spend["pop"]["previous"], spend["pop"]["change_pct"]) == (
        78000.0, 39000.0, 1.0)
    assert _tile(report, "leads")["pop"]["change_pct"] == 0.25  # 600 against 480
    cac = _tile(report, "cac")  # the year's spend ÷ the year's 120 new customers
    assert (cac["value"], cac["pop"]["previous"], cac["pop"]["tone"]) == (650.0, 325.0, "bad")
    mrr = _tile(report, "mrr")  # a stock: December's
    assert (mrr["value"], mrr["pop"]["previous"]) == (1200.0, 600.0)
    ltv_cac = _tile(report, "ltv_cac")
    assert (ltv_cac["value"], ltv_cac["pop"]["change_pct"]) == (4.0, 1.0)
    revenue = _tile(report, "attributed_revenue")  # 1997 has none: n/a, not +∞ or 0
    assert revenue["value"] == 234000.0 and revenue["pop"]["previous"] is None
    assert revenue["pop"]["change"] is None
    roas = _tile(report, "roas")
    assert roas["value"] == 3.0 and roas["pop"]["change"] is None

    annual = report["annual"]
    rows = {r["kpi"]: r for r in annual["rows"]}
    assert rows["spend"]["values"] == [1000.0 * m for m in range(1, 13)]
    assert rows["spend"]["previous"] == [500.0 * m for m in range(1, 13)]
    assert rows["attributed_revenue"]["previous"] == [None] * 12
    assert annual["forecast_quarter"] == "1999-Q1" and annual["forecast_days"] == 90
    spend_forecast = next(f for f in report["forecast"] if f["kpi"] == "spend")
    assert spend_forecast["horizon_days"] == 90
    assert spend_forecast["total_lower"] <= spend_forecast["total"] <= spend_forecast[
        "total_upper"]
    assert report["cohorts"] is not None  # the cohort section, even without a ledger
    assert [t["grain"] for t in report["trends"]] and all(
        t["grain"] == "month" and len(t["points"]) == 12 for t in report["trends"])

    md = result.paths["md"].read_text()
    assert "# Annual marketing report 1998" in md
    assert "| Spend | $78,000 | ▲ +100.0% | ⚪ |" in md
    assert "## 1998 month by month" in md and "| 1998-03 | $3,000 | 50 |" in md
    assert "## Forecast of 1999-Q1" in md and "Cohort retention" in md
    html = result.paths["html"].read_text()
    assert html.count("<svg") >= len(report["trends"]) and 'id="recommendations"' not in html
    assert result.paths["pdf"].read_bytes().startswith(b"%PDF")
    csv_dir = result.paths["csv"]
    assert {"meta", "headline", "annual_months", "forecast", "cohorts"} <= {
        p.stem for p in csv_dir.iterdir()}
    months_csv = (csv_dir / "annual_months.csv").read_text()
    assert "spend,1998-01,1000.0,500.0,1.0,money,sum" in months_csv
    assert "spend,year,78000.0,39000.0,1.0,money,sum" in months_csv
    assert "attributed_revenue,1998-01,3000.0,,,money,sum" in months_csv


def test_annual_report_without_a_previous_year_shows_n_a(
    annual_store: Store, tmp_path: Path,
) -> None:
    result = produce_report(annual_store, "annual", "1997", formats=("md", "json"),
                            out_dir=tmp_path, now=AFTER_1998)
    report = json.loads(result.paths["json"].read_text())
    spend = _tile(report, "spend")
    assert spend["value"] == 39000.0
    assert spend["pop"]["previous"] is None and spend["pop"]["change"] is None
    rows = {r["kpi"]: r for r in report["annual"]["rows"]}
    assert rows["spend"]["previous"] == [None] * 12 and rows["spend"]["previous_total"] is None
    md = result.paths["md"].read_text()
    assert "| Spend | $39,000 | n/a" in md and "▲" not in md.split("## 1997 month")[0]


def test_annual_report_of_the_running_year_is_flagged_partial(
    annual_store: Store, tmp_path: Path,
) -> None:
    result = produce_report(annual_store, "annual", "1998", formats=("json",),
                            out_dir=tmp_path, now=dt.datetime(1998, 12, 15, tzinfo=dt.UTC))
    assert result.report.meta.complete is False


def test_new_kinds_are_cut_for_a_narrowed_role(
    briefing_store: Store, annual_store: Store, tmp_path: Path,
) -> None:
    daily = produce_report(briefing_store, "daily", DAY.isoformat(), formats=("json",),
                           out_dir=tmp_path, now=AFTER_DAY).report
    annual = produce_report(annual_store, "annual", "1998", formats=("json",),
                            out_dir=tmp_path, now=AFTER_1998).report
    cut_daily, cut_annual = scoped_report(daily, "cx"), scoped_report(annual, "cx")
    assert cut_daily.briefing is not None and cut_annual.annual is not None
    assert daily.briefing is not None and annual.annual is not None
    assert [r.kpi for r in cut_daily.briefing.pacing] == [
        r.kpi for r in daily.briefing.pacing if kpi_visible("cx", r.kpi)]
    assert len(cut_daily.briefing.pacing) < len(daily.briefing.pacing)
    assert all(kpi_visible("cx", a.kpi) for a in cut_daily.briefing.alerts_resolved)
    kept = [r.kpi for r in cut_annual.annual.rows]
    assert "mrr" in kept and "spend" not in kept and "cac" not in kept
    assert "spend" not in [t.kpi for t in cut_annual.headline + cut_daily.headline]


def test_periods_and_schedule_of_the_new_kinds() -> None:
    assert parse_period("annual", "1998") == YearPeriod.of_year(1998)
    assert parse_period("annual", "1998-06-30").label == "1998"
    assert last_complete("annual", dt.date(1999, 1, 1)).label == "1998"
    assert last_complete("daily", dt.date(1999, 1, 1)).label == "1998-12-31"
    assert ReportKind.of(parse_period("daily", "1998-12-31")) is ReportKind.DAILY
    assert ReportKind.of(YearPeriod.of_year(1998)) is ReportKind.ANNUAL
    assert Grain.DAY not in BY_GRAIN  # not a dashboard grain
    zone = ZoneInfo("UTC")
    runs = due_runs(dt.datetime(1998, 12, 31, 12, tzinfo=dt.UTC),
                    dt.datetime(1999, 1, 1, 12, tzinfo=dt.UTC), zone, 6, ALL_KINDS,
                    hours={ReportKind.DAILY: 7})
    assert [(r.kind.value, r.period.label, r.due_at.hour) for r in runs] == [
        ("annual", "1998", 6), ("monthly", "1998-12", 6), ("quarterly", "1998-Q4", 6),
        ("daily", "1998-12-31", 7),
    ]
    latest = {r.kind.value: r.period.label
              for r in latest_runs(dt.datetime(1999, 6, 2, 12, tzinfo=dt.UTC), zone, 6,
                                   ALL_KINDS)}
    assert latest["annual"] == "1998" and latest["daily"] == "1999-06-01"
    # opt-in: without kinds the schedule runs what it always ran
    assert {r.kind for r in latest_runs(dt.datetime(1999, 6, 2, 12, tzinfo=dt.UTC), zone, 6)
            } == {ReportKind.WEEKLY, ReportKind.MONTHLY, ReportKind.QUARTERLY}
