"""HTML, PDF, JSON and CSV outputs: self-contained, renderable, same numbers everywhere."""

from __future__ import annotations

import csv
import datetime as dt
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image, ImageStat

sys.path.insert(0, str(Path(__file__).parent))

from reporting_fixtures import insert_kpis, kpi, period_kpis

from pulse_reporting.domain.periods import parse_period
from pulse_reporting.generate import ReportResult, produce_report
from pulse_shared.store import Store

QUARTER = parse_period("quarterly", "2033-Q2")
NOW = dt.datetime(2033, 7, 1, 6, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def quarterly(embedded_store: Store, tmp_path_factory: pytest.TempPathFactory) -> ReportResult:
    insert_kpis(embedded_store, period_kpis(QUARTER, 1.5))
    insert_kpis(embedded_store, period_kpis(QUARTER.previous(), 1.0))
    month = parse_period("monthly", "2033-06")
    insert_kpis(embedded_store, [
        kpi("budget", month, 5000.0, "channel", "paid_search"),
        kpi("spend_to_date", month, 6500.0, "channel", "paid_search"),
        kpi("pacing", month, 1.3, "channel", "paid_search", "fraction"),
        kpi("projected_spend", month, 6500.0, "channel", "paid_search"),
    ])
    days = [QUARTER.last_day - dt.timedelta(days=i) for i in range(60)]
    day_rows = []
    for i, day in enumerate(days):
        d = parse_period("weekly", day.isoformat())  # only to build the row; grain fixed below
        row = kpi("spend", d, 100.0 + (59 - i) * 2.0)
        row.update(grain="day", period=day.isoformat(), period_start=day)
        day_rows.append(row)
        for channel, share in (("paid_search", 0.6), ("paid_social", 0.4)):
            by_channel = kpi("spend", d, share * (100.0 + (59 - i) * 2.0) + (i * 7 % 5),
                             "channel", channel)
            by_channel.update(grain="day", period=day.isoformat(), period_start=day)
            day_rows.append(by_channel)
    insert_kpis(embedded_store, day_rows)
    return produce_report(
        embedded_store, "quarterly", QUARTER, formats="all",
        out_dir=tmp_path_factory.mktemp("q"), now=NOW,
    )


def test_html_is_self_contained(quarterly: ReportResult) -> None:
    html = quarterly.paths["html"].read_text()
    assert html.startswith("<!DOCTYPE html>")
    assert "<svg" in html  # charts are inline
    assert "src=\"http" not in html and "<script" not in html and "<link" not in html
    assert 'data-kpi="spend"' in html and "$15,000" in html
    assert "Recommendation for manual review" in html
    assert 'id="forecast"' in html and "Spend — daily, with 30-day forecast" in html


def test_json_and_csv_carry_the_same_numbers(quarterly: ReportResult) -> None:
    data = json.loads(quarterly.paths["json"].read_text())
    channels = {c["name"]: c for c in data["channels"]}
    assert channels["paid_search"]["spend"] == 9000.0
    with (quarterly.paths["csv"] / "channels.csv").open() as fh:
        rows = {r["name"]: r for r in csv.DictReader(fh)}
    assert float(rows["paid_search"]["spend"]) == 9000.0
    assert float(rows["paid_search"]["attributed_revenue"]) == 45000.0
    expected = {"headline", "mrr_bridge", "channels", "campaigns", "top_campaigns",
                "model_comparison_roas",
                "bottom_campaigns", "model_comparison", "funnel", "budget", "paths", "alerts",
                "forecast", "forecast_check", "recommendations", "meta", "forecast_by_channel",
                # the incrementality section of quarterly and monthly reports
                "mmm_run", "mmm_roi", "mmm_allocation", "mmm_response_curves",
                # trial KPIs (with the funnel) and the cohort retention section
                "trials", "cohorts",
                # the quarterly report's own section (quarter over quarter, its months)
                "quarter_comparison", "quarter_months"}
    # and every other insight section's tables (one CSV file per table)
    expected |= {t.name for s in quarterly.report.insights if not s.unavailable
                 for t in s.tables}
    assert {p.stem for p in quarterly.paths["csv"].glob("*.csv")} == expected
    with (quarterly.paths["csv"] / "meta.csv").open() as fh:
        meta = {r["key"]: r["value"] for r in csv.DictReader(fh)}
    assert meta["complete"] == str(data["meta"]["complete"]).lower()
    assert meta["data_as_of"] == data["meta"]["data_as_of"]
    assert meta["model"] == data["meta"]["model"]


def test_budget_pacing_and_recommendations(quarterly: ReportResult) -> None:
    report = quarterly.report
    # no quarter-grain budget rows: the quarter's months are shown
    assert [(b.period, b.channel, b.pacing) for b in report.budget] == [
        ("2033-06", "paid_search", 1.3)
    ]
    actions = {r.action for r in report.recommendations}
    assert {"shift_budget", "fix_pacing"} <= actions
    shift = next(r for r in report.recommendations if r.action == "shift_budget")
    # paid_search ROAS 5.0x (last_touch) / 4.5x (linear): median 4.75x; paid_social
    # 2.0x / 1.75x: median 1.875x. 10 % of paid_social's $6,000 moves.
    assert (shift.channel, shift.to_channel) == ("paid_social", "paid_search")
    assert shift.numbers["to_consensus_roas"] == pytest.approx(4.75)
    assert shift.roas_by_model["paid_search:linear"] == pytest.approx(4.5)
    assert shift.amount == pytest.approx(600.0)
    data = json.loads(quarterly.paths["json"].read_text())
    first = data["recommendations"][0]
    assert {"action", "campaign_id", "channel", "amount", "roas_by_model", "confidence",
            "reason"} <= set(first)
    # ranked by spend at risk: the $1,500 projected overspend first, then the $600 shift
    assert [r["action"] for r in data["recommendations"][:2]] == ["fix_pacing", "shift_budget"]


def test_forecast_follows_the_trend(quarterly: ReportResult) -> None:
    spend = next(f for f in quarterly.report.forecast if f.kpi == "spend")
    # history rises exactly 2/day ending at 218 on the last day: next 30 days 220..278
    assert spend.total == pytest.approx(sum(218 + 2 * h for h in range(1, 31)))
    assert spend.total_lower <= spend.total <= spend.total_upper
    assert spend.points[0].day == QUARTER.end


def test_pdf_renders_non_blank_pages(quarterly: ReportResult, tmp_path: Path) -> None:
    pdftoppm = shutil.which("pdftoppm")
    assert pdftoppm, "pdftoppm missing: apt-get install -y poppler-utils"
    pdf = quarterly.paths["pdf"]
    assert pdf.read_bytes().startswith(b"%PDF")
    subprocess.run([pdftoppm, "-r", "40", "-png", str(pdf), str(tmp_path / "page")],
                   check=True, timeout=60)
    pages = sorted(tmp_path.glob("page*.png"))
    assert len(pages) >= 3
    for page in pages:
        with Image.open(page) as img:
            grey = img.convert("L")
            extrema = grey.getextrema()
            assert extrema[0] < 128, f"{page.name} looks blank"
            assert ImageStat.Stat(grey).mean[0] < 254.5


def test_forecast_by_channel_from_day_values_in_every_format(quarterly: ReportResult) -> None:
    data = json.loads(quarterly.paths["json"].read_text())
    forecasts = {f["dimension_value"]: f for f in data["forecast_by_channel"]}
    assert set(forecasts) == {"paid_search", "paid_social"}
    search = forecasts["paid_search"]
    assert (search["kpi"], search["dimension"], search["interval"]) == ("spend", "channel", 0.8)
    assert search["total_lower"] <= search["total"] <= search["total_upper"]
    # the last 30 days of paid_search spend were ~$5.4k and rising: the next 30 are more
    assert search["total"] > forecasts["paid_social"]["total"]
    with (quarterly.paths["csv"] / "forecast_by_channel.csv").open() as fh:
        rows = {r["channel"]: r for r in csv.DictReader(fh)}
    assert float(rows["paid_search"]["total"]) == search["total"]
    html = quarterly.paths["html"].read_text()
    assert 'data-table="forecast_by_channel"' in html
    assert "Spend forecast by channel" in html  # the chart
    assert "30-day forecast by channel" in quarterly.paths["md"].read_text()


def test_pdf_states_model_and_channel_forecast(quarterly: ReportResult) -> None:
    pdftotext = shutil.which("pdftotext")
    assert pdftotext, "pdftotext missing: apt-get install -y poppler-utils"
    text = subprocess.run([pdftotext, str(quarterly.paths["pdf"]), "-"], check=True,
                          capture_output=True, text=True).stdout
    assert "Position-based (U-shaped)" in text and "executive default" in text
    assert "30-day forecast by channel" in text and "paid_search" in text
    assert "Partial period" not in text  # generated after the quarter ended
