"""Dashboard: JSON API behaviour, and the pages in a real headless Chromium driven by Selenium
through Debian's chromedriver (signed in through the sign-in form; numbers on the page equal
the API's, no console errors, the model selector reloads the view, one screenshot per
page)."""

from __future__ import annotations

import datetime as dt
import os
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import Select, WebDriverWait

from pulse_testinfra import free_port

sys.path.insert(0, str(Path(__file__).parent))

from auth_support import issue_token
from reporting_fixtures import (
    alert,
    bearer,
    insert_alerts,
    insert_kpis,
    kpi,
    period_kpis,
)

from pulse_reporting.domain.periods import parse_period
from pulse_reporting.generate import produce_report
from pulse_reporting.main import ReportingComponent, build
from pulse_reporting.settings import ReportingSettings
from pulse_reporting.web import create_dashboard
from pulse_shared.attribution_models import DEFAULT_MODEL
from pulse_shared.bus import Bus, make_broker
from pulse_shared.store import Store

MONTH = parse_period("monthly", "2035-02")
TODAY = dt.date(2035, 3, 11)  # the dashboard's clock: March is running, 10 days complete
QUERY = "grain=month&period=2035-02&model=linear"

# Debian's Chromium and its matching chromedriver (`make system-deps` installs them). The
# driver path is given explicitly so Selenium Manager never tries to download anything.
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
INSTALL_BROWSER = (
    "apt-get update && apt-get install -y --no-install-recommends chromium chromium-driver"
)
CHROMIUM_ARGS = (
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
    "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--hide-scrollbars",
    "--window-size=1280,1800",
)


@pytest.fixture(scope="module")
def component(
    embedded_store: Store, tmp_path_factory: pytest.TempPathFactory
) -> ReportingComponent:
    out = tmp_path_factory.mktemp("dash-reports")
    insert_kpis(embedded_store, period_kpis(MONTH, 1.3) + period_kpis(MONTH.previous(), 1.0))
    first = dt.date(2034, 12, 1)
    insert_kpis(embedded_store, [  # day values for the month-to-date panel
        {**kpi("spend", parse_period("monthly", "2035-01"), 400.0 + day.day),
         "grain": "day", "period": day.isoformat(), "period_start": day}
        for day in (first + dt.timedelta(days=i) for i in range((TODAY - first).days))
    ])
    insert_alerts(embedded_store, [alert("dash-1", dt.datetime(2035, 2, 3, 9, tzinfo=dt.UTC))])
    produce_report(embedded_store, "monthly", MONTH, formats="md,html", out_dir=out,
                   now=dt.datetime(2035, 3, 1, 6, tzinfo=dt.UTC))
    settings = ReportingSettings(output_dir=out, schedule_enabled=False)
    return build(embedded_store, Bus(make_broker(None), "reporting"), settings)


@pytest.fixture(scope="module")
def token(component: ReportingComponent) -> str:
    return issue_token(component.store, "cmo")


@pytest.fixture(scope="module")
def base_url(component: ReportingComponent) -> Iterator[str]:
    port = free_port()
    app = create_dashboard(component, today=lambda: TODAY, host="127.0.0.1")
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1",
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


@pytest.fixture(scope="module")
def api(base_url: str, token: str) -> Iterator[httpx.Client]:
    """The dashboard's JSON API as a signed-in cmo (Bearer token)."""
    with httpx.Client(base_url=base_url, headers=bearer(token), timeout=30) as client:
        yield client


def test_api_needs_a_token(base_url: str) -> None:
    r = httpx.get(f"{base_url}/api/overview?{QUERY}", timeout=30)
    assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Bearer")


def test_api_overview_reads_kpi_values(api: httpx.Client) -> None:
    data = api.get(f"/api/overview?{QUERY}").json()
    assert data["meta"]["period"] == "2035-02" and data["meta"]["model"] == "linear"
    tiles = {t["kpi"]: t["value"] for t in data["headline"]}
    assert tiles["spend"] == 13000.0
    assert tiles["attributed_revenue__linear"] == 36000.0 * 1.3
    assert [a["alert_id"] for a in data["alerts"]] == ["dash-1"]


def test_api_rejects_bad_selection(api: httpx.Client) -> None:
    assert api.get("/api/overview?grain=year").status_code == 400
    assert api.get("/api/overview?model=magic").status_code == 400
    r = api.get("/api/campaigns?grain=month&period=2035-W01")
    assert r.status_code == 400 and "not a monthly period" in r.json()["error"]


def test_report_list_and_download(api: httpx.Client, component: ReportingComponent) -> None:
    reports = api.get("/api/reports").json()["reports"]
    mine = [r for r in reports if r["period"] == "2035-02"]
    assert {r["format"] for r in mine} >= {"md", "html"}
    md = next(r for r in mine if r["format"] == "md")
    # File names and download links only: no server path in the answer.
    root = str(component.output_dir.resolve())
    assert all("path" not in r and root not in str(r) for r in reports)
    assert md["file_name"].endswith(".md") and "/" not in md["file_name"]
    r = api.get(md["url"])
    assert r.status_code == 200 and r.text.startswith("# Monthly marketing report 2035-02")
    assert api.get("/reports/file",
                   params={"report_id": "nope", "format": "md"}).status_code == 404


@pytest.fixture(scope="module")
def browser(base_url: str, token: str) -> Iterator[webdriver.Chrome]:
    """Headless Chromium, signed in to the dashboard through its sign-in form."""
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.is_file()]
    if missing:
        pytest.fail(f"dashboard browser test needs {', '.join(missing)} (Debian packages "
                    f"chromium + chromium-driver); install with: {INSTALL_BROWSER} "
                    "(or `make system-deps`)", pytrace=False)
    with tempfile.TemporaryDirectory(prefix="pulse-chromium-") as profile:
        options = webdriver.ChromeOptions()
        options.binary_location = str(CHROMIUM)
        for arg in CHROMIUM_ARGS:
            options.add_argument(arg)
        options.add_argument(f"--user-data-dir={profile}")
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)),
                                  options=options)
        try:
            driver.set_page_load_timeout(30)
            sign_in(driver, base_url, token)
            yield driver
        finally:
            driver.quit()


def sign_in(driver: webdriver.Chrome, base_url: str, token: str) -> None:
    """Open a page, get sent to the sign-in form, paste the token, land on the page."""
    driver.get(f"{base_url}/reports")
    assert "/signin?next=%2Freports" in driver.current_url, driver.current_url
    driver.find_element(By.ID, "token").send_keys(token)
    driver.find_element(By.CSS_SELECTOR, "#signin-form button[type=submit]").click()
    WebDriverWait(driver, 30).until(lambda d: d.current_url == f"{base_url}/reports")
    shown = driver.find_element(By.ID, "signed-in-as")
    assert shown.get_attribute("data-role") == "cmo"


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    configured = os.environ.get("PULSE_SCREENSHOT_DIR")
    path = Path(configured) if configured else tmp_path_factory.mktemp("screenshots")
    path.mkdir(parents=True, exist_ok=True)
    return path


def goto(driver: webdriver.Chrome, url: str) -> None:
    """Navigate and wait for the load event; drops log entries of earlier pages first."""
    driver.get_log("browser")  # type: ignore[no-untyped-call]
    driver.get(url)


def console_errors(driver: webdriver.Chrome) -> list[str]:
    """SEVERE browser-log entries (console.error, uncaught exceptions, failed loads) since
    the last navigation through ``goto``."""
    return [f"{e.get('source', '')}: {e['message']}" for e in driver.get_log("browser")  # type: ignore[no-untyped-call]
            if e["level"] == "SEVERE"]


def screenshot(driver: webdriver.Chrome, path: Path) -> Path:
    assert driver.save_screenshot(str(path)), f"screenshot not written: {path}"
    return path


def _numbers(driver: webdriver.Chrome, selector: str, attr: str) -> dict[str, Any]:
    return driver.execute_script(  # type: ignore[no-any-return]
        f"""return Object.fromEntries([...document.querySelectorAll('{selector}')].map(
            e => [e.closest('[{attr}]').getAttribute('{attr}') + '/' +
                  (e.dataset.field || 'value'),
                  e.dataset.value === '' ? null : Number(e.dataset.value)]))"""
    )


def test_overview_page_in_chromium(
    base_url: str, browser: webdriver.Chrome, screenshots: Path, token: str
) -> None:
    goto(browser, f"{base_url}/?{QUERY}")
    assert console_errors(browser) == []
    api = httpx.get(f"{base_url}/api/overview?{QUERY}", timeout=30, headers=bearer(token)).json()
    page_tiles = _numbers(browser, "[data-kpi] .value", "data-kpi")
    assert page_tiles == {f"{t['kpi']}/value": t["value"] for t in api["headline"]}
    page_channels = _numbers(browser, "tr[data-channel] td[data-field]", "data-channel")
    assert page_channels == {
        f"{c['name']}/{f}": c[f] for c in api["channels"]
        for f in ("spend", "attributed_revenue", "roas", "attributed_pipeline", "cac")
    }
    assert len(browser.find_elements(By.CSS_SELECTOR, "figure.chart svg")) >= 2
    # Month to date: the panel shows the API's to_date block (March 1–10 vs February 1–10).
    to_date = api["to_date"]
    assert (to_date["period"], to_date["days"]) == ("2035-03", 10)
    page_to_date = _numbers(browser, "tr[data-todate] td[data-value]", "data-todate")
    assert page_to_date == {
        f"{k['kpi']}/{f}": v for k in to_date["kpis"] for f, v in (
            ("value", k["value"]), ("previous", k["comparison"]["previous"]),
            ("landing", (k["landing"] or {}).get("value")),
            ("previous_total", k["previous_total"]))
    }
    assert page_to_date["spend/value"] == sum(400.0 + d for d in range(1, 11))
    assert page_to_date["spend/landing"] is not None
    title = browser.find_element(By.CSS_SELECTOR, "#to-date h2").text
    assert title.startswith("Month to date (10 days) vs the same 10 days of 2035-02")
    assert Select(browser.find_element(By.ID, "model")).first_selected_option.get_attribute(
        "value") == "linear"
    shot = screenshot(browser, screenshots / "dashboard-overview.png")
    assert shot.stat().st_size > 20_000


def test_selectors_change_the_view(base_url: str, browser: webdriver.Chrome) -> None:
    goto(browser, f"{base_url}/?{QUERY}")
    old_body = browser.find_element(By.TAG_NAME, "body")
    # The executive default model's attribution KPIs are stored without suffix.
    Select(browser.find_element(By.ID, "model")).select_by_value(DEFAULT_MODEL)
    wait = WebDriverWait(browser, 30)
    wait.until(expected_conditions.staleness_of(old_body))
    wait.until(lambda d: d.execute_script("return document.readyState") == "complete")
    assert f"model={DEFAULT_MODEL}" in browser.execute_script("return location.search")
    assert Select(browser.find_element(By.ID, "model")).first_selected_option.get_attribute(
        "value") == DEFAULT_MODEL
    tiles = _numbers(browser, "[data-kpi] .value", "data-kpi")
    assert tiles["attributed_revenue/value"] == 40000.0 * 1.3
    assert console_errors(browser) == []


def test_campaign_and_report_pages_in_chromium(
    base_url: str, browser: webdriver.Chrome, screenshots: Path, token: str
) -> None:
    goto(browser, f"{base_url}/campaigns?{QUERY}")
    assert console_errors(browser) == []
    api = httpx.get(f"{base_url}/api/campaigns?{QUERY}", timeout=30,
                    headers=bearer(token)).json()
    page = _numbers(browser, "#campaigns tr[data-campaign] td[data-field]", "data-campaign")
    assert page == {
        f"{c['name']}/{f}": c[f] for c in api["campaigns"]
        for f in ("spend", "attributed_revenue", "roas", "leads", "wins")
    }
    screenshot(browser, screenshots / "dashboard-campaigns.png")

    goto(browser, f"{base_url}/reports")
    assert console_errors(browser) == []
    links = [a.get_attribute("href") for a in
             browser.find_elements(By.CSS_SELECTOR, "#reports a")]
    assert any("format=html" in (href or "") for href in links)
    screenshot(browser, screenshots / "dashboard-reports.png")
    assert {p.name for p in screenshots.glob("dashboard-*.png")} >= {
        "dashboard-overview.png", "dashboard-campaigns.png", "dashboard-reports.png"}
