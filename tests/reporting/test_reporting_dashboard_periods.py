"""Dashboard period selection: garbage or out-of-range periods are a 400 with a clear
message, never a 500 (``period=9999-12`` overflowed the calendar)."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from reporting_fixtures import insert_kpis, period_kpis

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
    async with httpx.AsyncClient(transport=transport, base_url="http://dash") as client:
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
    async with httpx.AsyncClient(transport=transport, base_url="http://dash") as client:
        default = (await client.get("/api/overview", params={"grain": "month"})).json()
        assert (default["meta"]["period"], default["meta"]["complete"]) == ("2041-02", True)
        running = (await client.get("/api/overview", params={"period": "2041-03"})).json()
        assert (running["meta"]["period"], running["meta"]["complete"]) == ("2041-03", False)
        periods = (await client.get("/api/periods", params={"grain": "month"})).json()
        assert {"2041-03", "2041-02"} <= set(periods["periods"])  # March stays selectable
        # From 1 April, March is complete and becomes the default.
        component.clock = lambda: dt.datetime(2041, 4, 1, 0, 0, 1, tzinfo=dt.UTC)
        later = (await client.get("/api/overview")).json()
        assert (later["meta"]["period"], later["meta"]["complete"]) == ("2041-03", True)
