"""Dashboard period selection: garbage or out-of-range periods are a 400 with a clear
message, never a 500 (``period=9999-12`` overflowed the calendar)."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from auth_support import issue_token
from reporting_fixtures import bearer, insert_kpis, period_kpis

from pulse_reporting.domain.periods import parse_period
from pulse_reporting.main import build
from pulse_reporting.settings import ReportingSettings
from pulse_reporting.web import create_dashboard
from pulse_shared.bus import Bus, make_broker
from pulse_shared.store import Store


@pytest.fixture
async def dashboard(embedded_store: Store, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    settings = ReportingSettings(output_dir=tmp_path, schedule_enabled=False)
    component = build(embedded_store, Bus(make_broker(None), "reporting"), settings)
    transport = httpx.ASGITransport(app=create_dashboard(component))
    async with httpx.AsyncClient(transport=transport, base_url="http://dash",
                                 headers=bearer(issue_token(embedded_store, "cmo"))) as client:
        yield client


@pytest.mark.parametrize(("grain", "period", "message"), [
    ("month", "9999-12", "outside the supported years 1980-2099"),
    ("month", "0000-01", "outside the supported years"),
    ("month", "1900-01", "outside the supported years"),
    ("month", "2100-01", "outside the supported years"),
    ("week", "9999-W52", "outside the supported years"),
    ("quarter", "9999-Q4", "outside the supported years"),
    ("month", "9999-12-31", "outside the supported years"),
    ("month", "2026-13", "no month 2026-13"),
    ("month", "2026-02-30", "invalid date"),
    ("month", "<script>x</script>", "is not a monthly period"),
])
async def test_bad_period_is_a_400_with_a_clear_message(
    dashboard: httpx.AsyncClient, grain: str, period: str, message: str
) -> None:
    for path in ("/api/overview", "/api/campaigns"):
        r = await dashboard.get(path, params={"grain": grain, "period": period})
        assert r.status_code == 400, (path, r.text)
        assert message in r.json()["error"]
    page = await dashboard.get("/", params={"grain": grain, "period": period})
    assert page.status_code == 400 and "<script>" not in page.text


async def test_period_inside_the_supported_years_is_served(dashboard: httpx.AsyncClient) -> None:
    r = await dashboard.get("/api/overview", params={"grain": "month", "period": "2099-12"})
    assert r.status_code == 200, r.text
    assert r.json()["meta"]["period"] == "2099-12"


async def test_overview_opens_on_the_last_complete_month_and_says_if_complete(
    embedded_store: Store, tmp_path: Path
) -> None:
    """On 3 March the newest data is March (2 days); the overview opens on February."""
    february, march = parse_period("monthly", "2041-02"), parse_period("monthly", "2041-03")
    insert_kpis(embedded_store, period_kpis(february) + period_kpis(march, 0.1))
    settings = ReportingSettings(output_dir=tmp_path, schedule_enabled=False)
    component = build(embedded_store, Bus(make_broker(None), "reporting"), settings)
    component.clock = lambda: dt.datetime(2041, 3, 3, 9, tzinfo=dt.UTC)
    transport = httpx.ASGITransport(app=create_dashboard(component))
    async with httpx.AsyncClient(transport=transport, base_url="http://dash",
                                 headers=bearer(issue_token(embedded_store, "cmo"))) as client:
        default = (await client.get("/api/overview", params={"grain": "month"})).json()
        assert (default["meta"]["period"], default["meta"]["complete"]) == ("2041-02", True)
        running = (await client.get("/api/overview", params={"period": "2041-03"})).json()
        assert (running["meta"]["period"], running["meta"]["complete"]) == ("2041-03", False)
        periods = (await client.get("/api/periods", params={"grain": "month"})).json()
        assert {"2041-03", "2041-02"} <= set(periods["periods"])  # March stays selectable
        assert "2041-03" in periods["partial"] and "2041-02" not in periods["partial"]
        # From 1 April, March is complete and becomes the default.
        component.clock = lambda: dt.datetime(2041, 4, 1, 0, 0, 1, tzinfo=dt.UTC)
        later = (await client.get("/api/overview")).json()
        assert (later["meta"]["period"], later["meta"]["complete"]) == ("2041-03", True)


def day_rows(kpi: str, first: dt.date, last: dt.date, value: Callable[[dt.date], float]
             ) -> list[dict[str, Any]]:
    return [
        {"kpi": kpi, "grain": "day", "period": day.isoformat(), "period_start": day,
         "dimension": "all", "dimension_value": "", "value": value(day), "unit": "usd",
         "computed_at": dt.datetime(2043, 6, 1, tzinfo=dt.UTC)}
        for day in (first + dt.timedelta(days=i) for i in range((last - first).days + 1))
    ]


def spend_2043(day: dt.date) -> float:
    return 500.0 + day.toordinal() % 7 * 40.0  # a weekly pattern


async def test_overview_shows_month_to_date_against_the_same_days_and_the_landing(
    embedded_store: Store, tmp_path: Path
) -> None:
    """On 16 March 2043 the overview opens on February (complete) and adds March 1–15
    against 1–15 February, with the month-end landing; March is flagged where shown."""
    first, last = dt.date(2042, 12, 1), dt.date(2043, 3, 15)
    insert_kpis(embedded_store, [
        *period_kpis(parse_period("monthly", "2043-02")),
        *period_kpis(parse_period("monthly", "2043-03"), 0.5),
        *day_rows("spend", first, last, spend_2043),
        *day_rows("leads", first, last, lambda d: 10.0 + d.day % 2),
        *day_rows("attributed_revenue__linear", first, last, lambda d: 2 * spend_2043(d)),
    ])
    settings = ReportingSettings(output_dir=tmp_path, schedule_enabled=False)
    component = build(embedded_store, Bus(make_broker(None), "reporting"), settings)
    app = create_dashboard(component, today=lambda: dt.date(2043, 3, 16))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://dash",
                                 headers=bearer(issue_token(embedded_store, "cmo"))) as client:
        body = (await client.get("/api/overview", params={"model": "linear"})).json()
        assert (body["meta"]["period"], body["meta"]["complete"]) == ("2043-02", True)
        to_date = body["to_date"]
        assert (to_date["period"], to_date["days"], to_date["previous_period"]) == (
            "2043-03", 15, "2043-02")
        assert to_date["title"] == "Month to date (15 days) vs the same 15 days of 2043-02"
        kpis = {k["kpi"]: k for k in to_date["kpis"]}
        march = sum(spend_2043(dt.date(2043, 3, d)) for d in range(1, 16))
        february = sum(spend_2043(dt.date(2043, 2, d)) for d in range(1, 16))
        spend = kpis["spend"]
        assert (spend["value"], spend["comparison"]["previous"]) == (march, february)
        assert spend["comparison"]["change_pct"] == pytest.approx(march / february - 1)
        landing = spend["landing"]
        assert landing["forecast_days"] == 16 and landing["actual_to_date"] == march
        assert landing["lower"] <= landing["value"] <= landing["upper"]
        # Flat weekly pattern: the landing is the to-date sum plus 16 more such days.
        expected = march + sum(spend_2043(dt.date(2043, 3, d)) for d in range(16, 32))
        assert landing["value"] == pytest.approx(expected, rel=0.05)
        assert kpis["roas__linear"]["value"] == pytest.approx(2.0)
        assert kpis["new_customers"]["value"] is None  # no day values: n/a, not 0

        page = await client.get("/", params={"model": "linear"})
        assert page.status_code == 200
        assert "Month to date (15 days) vs the same 15 days of 2043-02" in page.text
        assert 'id="to-date"' in page.text and "Forecast landing (month-end)" in page.text
        assert f'data-value="{march}"' in page.text
        assert ">2043-03 (to date)</option>" in page.text  # the selector flags March
        assert 'id="partial-note"' not in page.text  # February is complete

        running = await client.get("/", params={"model": "linear", "period": "2043-03"})
        assert 'id="partial-note"' in running.text and "(15 of 31 days)" in running.text
        campaigns = (await client.get("/api/campaigns", params={"period": "2043-03"})).json()
        assert campaigns["meta"]["complete"] is False
