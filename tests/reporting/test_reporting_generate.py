"""End-to-end report generation on the embedded store with hand-inserted kpi_values."""

from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from reporting_fixtures import alert, insert_alerts, insert_kpis, period_kpis

from pulse_reporting.domain.periods import parse_period
from pulse_reporting.generate import generate_report, produce_report
from pulse_shared.store import Store

WEEK = parse_period("weekly", "2031-W45")
NOW = dt.datetime(2031, 11, 10, 6, 0, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def weekly_data(embedded_store: Store) -> Store:
    insert_kpis(embedded_store, period_kpis(WEEK, 1.25))
    insert_kpis(embedded_store, period_kpis(WEEK.previous(), 1.0))
    insert_kpis(embedded_store, period_kpis(WEEK.year_ago(), 0.5))
    start = dt.datetime.combine(WEEK.start, dt.time(9), tzinfo=dt.UTC)
    insert_alerts(
        embedded_store,
        [
            alert("rep-a1", start + dt.timedelta(days=1)),
            alert("rep-a2", start - dt.timedelta(days=3), summary="previous week"),
            alert("rep-a3", start + dt.timedelta(days=2), state="resolved"),
        ],
    )
    return embedded_store


def test_weekly_markdown_report(weekly_data: Store, tmp_path: Path) -> None:
    result = produce_report(
        weekly_data, "weekly", "2031-W45", formats=("md", "json"), out_dir=tmp_path, now=NOW
    )
    md = result.paths["md"].read_text()
    assert result.paths["md"].is_relative_to(tmp_path)
    assert "# Weekly marketing report 2031-W45" in md
    # spend 12,500 vs 10,000 previous (+25 %) vs 5,000 a year ago (+150 %)
    # (the empty column is last touch's, beside attribution KPIs only)
    assert "| Spend | $12,500 |  | ▲ +25.0% | ⚪ | ▲ +150.0% | ⚪ |" in md
    # CAC fell (2000/1.25=1600 vs 2000): a decrease is good news
    assert "| CAC | $1,600 |  | ▼ -20.0% | 🟢 |" in md
    assert "| paid_search | $7,500 |" in md
    assert "CAC above threshold" in md
    assert "previous week" not in md  # alert outside the period
    report = json.loads(result.paths["json"].read_text())
    spend = next(t for t in report["headline"] if t["kpi"] == "spend")
    assert spend["value"] == 12500.0 and spend["pop"]["previous"] == 10000.0
    assert [a["alert_id"] for a in report["alerts"]] == ["rep-a1"]


def test_report_is_recorded(weekly_data: Store, tmp_path: Path) -> None:
    result = produce_report(
        weekly_data, "weekly", WEEK, formats="md,csv", out_dir=tmp_path,
        now=NOW + dt.timedelta(seconds=1),
    )
    rows = weekly_data.query(
        "SELECT format, path, model FROM reports FINAL WHERE report_id = {id:String} "
        "ORDER BY format",
        {"id": result.report_id},
    )
    # the executive default (pulse_shared.attribution_models.DEFAULT_MODEL)
    assert [(r["format"], r["model"]) for r in rows] == [
        ("csv", "position_based"), ("md", "position_based")]
    assert Path(rows[1]["path"]) == result.paths["md"].resolve()
    assert (result.paths["csv"] / "channels.csv").read_text().startswith("name,spend,")


async def test_generate_publishes_report_ready(weekly_data: Store, tmp_path: Path) -> None:
    published: list[tuple[str, list[object]]] = []

    class FakeBus:
        async def publish(self, topic: object, events: list[object]) -> None:
            published.append((topic.name, events))  # type: ignore[attr-defined]

    result = await generate_report(
        weekly_data, "weekly", "2031-W45", out_dir=tmp_path, bus=FakeBus(), now=NOW + dt.timedelta(seconds=2)  # type: ignore[arg-type]
    )
    assert published[0][0] == "report.ready.v1"
    event = published[0][1][0]
    assert event.report_id == result.report_id  # type: ignore[attr-defined]
    assert event.paths == {"md": str(result.paths["md"].resolve())}  # type: ignore[attr-defined]
