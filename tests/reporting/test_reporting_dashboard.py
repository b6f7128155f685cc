"""Dashboard: JSON API behaviour, and the pages in a real headless Chromium (numbers on the
page equal the API's, no console errors, one screenshot per page)."""

from __future__ import annotations

import datetime as dt
import os
import socket
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

sys.path.insert(0, str(Path(__file__).parent))

from cdp import Browser, find_chromium
from reporting_fixtures import alert, insert_alerts, insert_kpis, period_kpis

from pulse_reporting.domain.periods import parse_period
from pulse_reporting.generate import produce_report
from pulse_reporting.main import ReportingComponent, build
from pulse_reporting.settings import ReportingSettings
from pulse_reporting.web import create_dashboard
from pulse_shared.bus import Bus, make_broker
from pulse_shared.store import Store

MONTH = parse_period("monthly", "2035-02")
QUERY = "grain=month&period=2035-02&model=linear"


@pytest.fixture(scope="module")
def component(
    embedded_store: Store, tmp_path_factory: pytest.TempPathFactory
) -> ReportingComponent:
    out = tmp_path_factory.mktemp("dash-reports")
    insert_kpis(embedded_store, period_kpis(MONTH, 1.3) + period_kpis(MONTH.previous(), 1.0))
    insert_alerts(embedded_store, [alert("dash-1", dt.datetime(2035, 2, 3, 9, tzinfo=dt.UTC))])
    produce_report(embedded_store, "monthly", MONTH, formats="md,html", out_dir=out,
                   now=dt.datetime(2035, 3, 1, 6, tzinfo=dt.UTC))
    settings = ReportingSettings(output_dir=out, schedule_enabled=False)
    return build(embedded_store, Bus(make_broker(None), "reporting"), settings)


@pytest.fixture(scope="module")
def base_url(component: ReportingComponent) -> Iterator[str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_dashboard(component), host="127.0.0.1",
                                           port=port, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        assert time.monotonic() < deadline, "dashboard server did not start"
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


def test_api_overview_reads_kpi_values(base_url: str) -> None:
    data = httpx.get(f"{base_url}/api/overview?{QUERY}", timeout=30).json()
    assert data["meta"]["period"] == "2035-02" and data["meta"]["model"] == "linear"
    tiles = {t["kpi"]: t["value"] for t in data["headline"]}
    assert tiles["spend"] == 13000.0
    assert tiles["attributed_revenue__linear"] == 36000.0 * 1.3
    assert [a["alert_id"] for a in data["alerts"]] == ["dash-1"]


def test_api_rejects_bad_selection(base_url: str) -> None:
    assert httpx.get(f"{base_url}/api/overview?grain=year").status_code == 400
    assert httpx.get(f"{base_url}/api/overview?model=magic").status_code == 400
    r = httpx.get(f"{base_url}/api/campaigns?grain=month&period=2035-W01")
    assert r.status_code == 400 and "not a monthly period" in r.json()["error"]


def test_report_list_and_download(base_url: str) -> None:
    reports = httpx.get(f"{base_url}/api/reports").json()["reports"]
    mine = [r for r in reports if r["period"] == "2035-02"]
    assert {r["format"] for r in mine} >= {"md", "html"}
    md = next(r for r in mine if r["format"] == "md")
    r = httpx.get(f"{base_url}/reports/file",
                  params={"report_id": md["report_id"], "format": "md"})
    assert r.status_code == 200 and r.text.startswith("# Monthly marketing report 2035-02")
    assert httpx.get(f"{base_url}/reports/file",
                     params={"report_id": "nope", "format": "md"}).status_code == 404


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    executable = find_chromium()
    assert executable, "chromium missing: apt-get install -y chromium"
    b = Browser(executable)
    yield b
    b.close()


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    configured = os.environ.get("PULSE_SCREENSHOT_DIR")
    return Path(configured) if configured else tmp_path_factory.mktemp("screenshots")


def _numbers(browser: Browser, selector: str, attr: str) -> dict[str, Any]:
    return browser.evaluate(  # type: ignore[no-any-return]
        f"""Object.fromEntries([...document.querySelectorAll('{selector}')].map(
            e => [e.closest('[{attr}]').getAttribute('{attr}') + '/' +
                  (e.dataset.field || 'value'),
                  e.dataset.value === '' ? null : Number(e.dataset.value)]))"""
    )


def test_overview_page_in_chromium(base_url: str, browser: Browser, screenshots: Path) -> None:
    browser.goto(f"{base_url}/?{QUERY}")
    assert browser.console_errors() == []
    api = httpx.get(f"{base_url}/api/overview?{QUERY}", timeout=30).json()
    page_tiles = _numbers(browser, "[data-kpi] .value", "data-kpi")
    assert page_tiles == {f"{t['kpi']}/value": t["value"] for t in api["headline"]}
    page_channels = _numbers(browser, "tr[data-channel] td[data-field]", "data-channel")
    assert page_channels == {
        f"{c['name']}/{f}": c[f] for c in api["channels"]
        for f in ("spend", "attributed_revenue", "roas", "attributed_pipeline", "cac")
    }
    assert browser.evaluate("document.querySelectorAll('figure.chart svg').length") >= 2
    assert browser.evaluate("document.querySelector('#model').value") == "linear"
    shot = browser.screenshot(screenshots / "dashboard-overview.png")
    assert shot.stat().st_size > 20_000


def test_selectors_change_the_view(base_url: str, browser: Browser) -> None:
    browser.goto(f"{base_url}/?{QUERY}")
    browser.evaluate("""(() => { const m = document.querySelector('#model');
        m.value = 'last_touch'; m.dispatchEvent(new Event('change')); })()""")
    browser.wait_event("Page.loadEventFired")
    assert "model=last_touch" in browser.evaluate("location.search")
    tiles = _numbers(browser, "[data-kpi] .value", "data-kpi")
    assert tiles["attributed_revenue/value"] == 40000.0 * 1.3
    assert browser.console_errors() == []


def test_campaign_and_report_pages_in_chromium(
    base_url: str, browser: Browser, screenshots: Path
) -> None:
    browser.goto(f"{base_url}/campaigns?{QUERY}")
    assert browser.console_errors() == []
    api = httpx.get(f"{base_url}/api/campaigns?{QUERY}", timeout=30).json()
    page = _numbers(browser, "#campaigns tr[data-campaign] td[data-field]", "data-campaign")
    assert page == {
        f"{c['name']}/{f}": c[f] for c in api["campaigns"]
        for f in ("spend", "attributed_revenue", "roas", "leads", "wins")
    }
    browser.screenshot(screenshots / "dashboard-campaigns.png")

    browser.goto(f"{base_url}/reports")
    assert browser.console_errors() == []
    links = browser.evaluate(
        "[...document.querySelectorAll('#reports a')].map(a => a.getAttribute('href'))"
    )
    assert any("format=html" in href for href in links)
    browser.screenshot(screenshots / "dashboard-reports.png")
    assert {p.name for p in screenshots.glob("dashboard-*.png")} >= {
        "dashboard-overview.png", "dashboard-campaigns.png", "dashboard-reports.png"}
