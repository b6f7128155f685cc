"""Screenshots of the dashboard and the monthly HTML report for docs/ (``make screenshots``).

Builds the demo dataset into a temporary embedded store (the same in-process pipeline as
``pulse demo``) with every service's clock pinned to the middle of a month, serves the
reporting dashboard on 127.0.0.1 with that date, and captures PNGs with headless Chromium
(``chromium --headless --screenshot``):

- ``dashboard-overview.png``: the overview as it opens (last complete month), with the
  month-to-date panel and its month-end landing forecast;
- ``dashboard-running-month.png``: the running month selected, flagged as partial;
- ``report-monthly.png``: the monthly HTML report of the last complete month (its top);
- close-ups of single elements (Chromium's command line cannot scroll, so these go
  through Selenium and Debian's chromedriver, the same headless Chromium):
  ``dashboard-month-to-date.png`` (the month-to-date panel with the landing) and
  ``report-monthly-forecast.png`` (the report's forecast sections) and
  ``report-monthly-mmm.png`` (its incrementality section: the marketing mix model fitted
  on the demo data as ``pulse demo`` fits it, or why it has no results);
- the reports' insight sections (product usage, deliverability, customer experience,
  segments, martech, …: every one the demo data fills), one close-up each,
  ``report-monthly-insight-<key>.png``, and the quarterly report's own section
  ``report-quarterly-insight-quarter.png`` (quarter over quarter and year over year);
- the persona views: ``dashboard-persona-cmo.png``, ``dashboard-persona-ops.png``,
  ``dashboard-persona-cx.png`` (as the cmo) and ``dashboard-persona-cx-as-cx.png`` (as a
  cx user: only what that role may see).

Run: ``.venv/bin/python scripts/screenshots.py [--out docs/screenshots] [--today 2026-11-16]``.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
# A fixed date, so the pictures do not change with the day they are taken on.
DEFAULT_TODAY = dt.date(2026, 11, 16)
SEED, DAYS, ACCOUNTS = 7, 120, 400  # pulse demo's defaults
MODEL = "position_based"
FORECAST_SECTION = "section#forecast"  # the report's forecast and last period's check
MMM_SECTION = "section#mmm"  # the report's incrementality (marketing mix model) section
CHROMIUM_ARGS = (
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
    "--hide-scrollbars", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--force-device-scale-factor=1",
)


def fail(message: str) -> None:
    print(f"screenshots: {message}", file=sys.stderr)
    raise SystemExit(1)


async def build_demo_data(
    data_dir: Path, reports_dir: Path, now: dt.datetime
) -> tuple[Path, Path]:
    """Generate and ingest the demo data with every clock at ``now``, fit the marketing mix
    model as ``pulse demo`` does; write the monthly and quarterly HTML reports of the last
    complete month and quarter. Returns their paths."""
    from pulse_cli.demo import DEMO_HISTORY_WEEKS, DEMO_MMM_GRAIN, DEMO_MMM_SAMPLER, INGEST_ORDER
    from pulse_cli.runtime import open_pipeline
    from pulse_ingest.domain.generator import generate_dataset
    from pulse_ingest.service import IngestService
    from pulse_ingest.settings import IngestSettings
    from pulse_reporting.domain.periods import last_complete
    from pulse_reporting.generate import generate_report
    from pulse_shared.settings import PulseSettings

    today = now.date()
    dataset = generate_dataset(seed=SEED, days=DAYS, accounts=ACCOUNTS,
                               end=today - dt.timedelta(days=1),
                               history_weeks=DEMO_HISTORY_WEEKS, **demo_kinds(generate_dataset))
    async with open_pipeline(PulseSettings(data_dir=data_dir)) as pipeline:
        assert pipeline.store is not None, "screenshots run on the embedded store"
        for component in pipeline.components:
            if hasattr(component, "clock"):
                component.clock = lambda: now
        ingest = IngestService(pipeline.bus, IngestSettings(demo=True, publish_timeout_s=3600))
        for kind in INGEST_ORDER:
            rows: list[dict[str, Any]] = [e.model_dump(mode="json")
                                          for e in getattr(dataset, kind)]
            for start in range(0, len(rows), 2000):
                await ingest.ingest(kind, rows[start:start + 2000], "demo")
            print(f"  ingested {len(rows)} {kind}")
        from pulse_mmm.runner import InsufficientHistory, run_fit
        from pulse_mmm.settings import MmmSettings

        try:
            fitted = await run_fit(
                pipeline.store, MmmSettings(), grain=DEMO_MMM_GRAIN,
                fit_overrides=DEMO_MMM_SAMPLER, clock=lambda: now,
                progress=lambda message: print(f"  marketing mix model: {message}"),
            )
            print(f"  marketing mix model: {fitted.run.status} {fitted.run.reason}")
        except InsufficientHistory as exc:
            print(f"  marketing mix model: not fitted: {exc}")
        month = last_complete("monthly", today)
        report = await generate_report(pipeline.store, "monthly", month, formats="html",
                                       out_dir=reports_dir, now=now)
        quarter = last_complete("quarterly", today)
        quarterly = await generate_report(pipeline.store, "quarterly", quarter,
                                          formats="html", out_dir=reports_dir, now=now)
        return Path(report.paths["html"]), Path(quarterly.paths["html"])


def demo_kinds(generate: Any) -> dict[str, bool]:
    """Every opt-in event kind of the generator on (``martech_tools``, ``product_usage``,
    …: its boolean flags, off by default so tests' datasets stay small), as ``pulse demo``
    turns them on: the pictures show every section the demo fills."""
    import inspect

    return {name: True for name, parameter in inspect.signature(generate).parameters.items()
            if parameter.default is False}


def signed_in(app: Any, token: str) -> Any:
    """``app`` with every request carrying ``token`` (a cmo of the throw-away demo store):
    headless Chromium's command line cannot sign in, and the pictures show a signed-in
    page. The dashboard still checks the token like any other."""
    header = (b"authorization", f"Bearer {token}".encode())

    async def with_token(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            scope = {**scope, "headers": [*scope["headers"], header]}
        await app(scope, receive, send)

    return with_token


def serve_dashboard(
    data_dir: Path, reports_dir: Path, now: dt.datetime, role: str = "cmo"
) -> tuple[str, Any, threading.Thread]:
    """The reporting dashboard over the demo store, its clock at ``now``, every request
    signed in as a user of ``role``."""
    import uvicorn

    from pulse_reporting.main import build
    from pulse_reporting.settings import ReportingSettings
    from pulse_reporting.web import create_dashboard
    from pulse_shared.auth import UserDirectory
    from pulse_shared.bus import Bus, make_broker
    from pulse_shared.settings import PulseSettings
    from pulse_shared.store import open_store
    from pulse_testinfra import free_port

    store = open_store(PulseSettings(data_dir=data_dir))
    settings = ReportingSettings(output_dir=reports_dir, schedule_enabled=False)
    component = build(store, Bus(make_broker(None), "reporting"), settings)
    component.clock = lambda: now
    _, token = UserDirectory(store).add(f"screenshots-{role}", role,
                                        created_by="screenshots", valid_days=1)
    app = signed_in(create_dashboard(component, today=lambda: now.date(), host="127.0.0.1"),
                    token)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                           log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline:
            fail("the dashboard server did not start within 30 s")
        time.sleep(0.05)
    return f"http://127.0.0.1:{port}", server, thread


def capture(url: str, path: Path, width: int, height: int) -> None:
    with tempfile.TemporaryDirectory(prefix="pulse-chromium-") as profile:
        command = [str(CHROMIUM), *CHROMIUM_ARGS, f"--user-data-dir={profile}",
                   f"--window-size={width},{height}", f"--screenshot={path}",
                   "--virtual-time-budget=5000", url]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120,
                              check=False)
    if done.returncode != 0 or not path.is_file():
        fail(f"chromium could not capture {url}: {done.stderr.strip()[-500:]}")
    print(f"  wrote {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")


def capture_elements(url: str, shots: list[tuple[str, Path]], width: int = 1280) -> None:
    """Screenshot the first element matching each CSS selector."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in (*CHROMIUM_ARGS, f"--window-size={width},3000"):
        options.add_argument(arg)
    with tempfile.TemporaryDirectory(prefix="pulse-chromium-") as profile:
        options.add_argument(f"--user-data-dir={profile}")
        driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)),
                                  options=options)
        try:
            driver.set_page_load_timeout(120)
            driver.get(url)
            for selector, path in shots:
                found = driver.find_elements(By.CSS_SELECTOR, selector)
                if not found:
                    fail(f"{url} has no element {selector!r}")
                if not found[0].screenshot(str(path)):
                    fail(f"could not capture {selector!r} of {url}")
                print(f"  wrote {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")
        finally:
            driver.quit()


def capture_present(url: str, shots: list[tuple[str, Path]], width: int = 1280) -> None:
    """Like :func:`capture_elements`, for elements the demo data may not produce (an
    insight section of a kind not generated yet): the missing ones are reported, not
    fatal."""
    import httpx

    page = (httpx.get(url, timeout=300).text if url.startswith("http")
            else Path(url.removeprefix("file://")).read_text())
    present = []
    for selector, path in shots:
        ident = selector.split("#", 1)[-1]
        if f'id="{ident}"' in page:
            present.append((selector, path))
        else:
            print(f"  skipped {path.name}: no {selector} (no demo data for it yet)")
    if present:
        capture_elements(url, present, width)


def insight_sections(html: Path) -> list[str]:
    """The ids of the insight sections (``insight-<key>``) of a rendered report."""
    import re

    return re.findall(r'<section id="(insight-[\w-]+)">', html.read_text())


def warm(url: str) -> None:
    """Load a page once so the forecast (statsforecast import, fits) is cached before
    Chromium's time budget starts."""
    import httpx

    response = httpx.get(url, timeout=300)
    if response.status_code != 200:
        fail(f"{url} answered {response.status_code}: {response.text[:300]}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    parser.add_argument("--today", type=dt.date.fromisoformat, default=DEFAULT_TODAY,
                        help="the dashboard's date (UTC); default %(default)s")
    args = parser.parse_args(argv)
    if not CHROMIUM.is_file():
        fail(f"{CHROMIUM} is missing: install Debian's chromium (make system-deps)")
    now = dt.datetime.combine(args.today, dt.time(9, 0), tzinfo=dt.UTC)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="pulse-screenshots-"))
    try:
        data_dir, reports_dir = work / "data", work / "reports"
        print(f"building the demo data as of {args.today} in {work}")
        report_html, quarterly_html = asyncio.run(build_demo_data(data_dir, reports_dir, now))
        base, server, thread = serve_dashboard(data_dir, reports_dir, now)
        running = f"{args.today.year}-{args.today.month:02d}"
        query = f"grain=month&model={MODEL}"
        overview = f"{base}/?{query}"
        warm(overview)
        warm(f"{base}/?{query}&period={running}")
        capture(overview, out / "dashboard-overview.png", 1280, 2300)
        capture(f"{base}/?{query}&period={running}", out / "dashboard-running-month.png",
                1280, 1100)
        capture(report_html.resolve().as_uri(), out / "report-monthly.png", 1280, 2000)
        capture_elements(overview, [("#to-date", out / "dashboard-month-to-date.png")])
        capture_elements(report_html.resolve().as_uri(),
                         [(FORECAST_SECTION, out / "report-monthly-forecast.png"),
                          (MMM_SECTION, out / "report-monthly-mmm.png")])
        capture_present(report_html.resolve().as_uri(), [
            (f"section#{ident}", out / f"report-monthly-{ident}.png")
            for ident in insight_sections(report_html)])
        capture_present(quarterly_html.resolve().as_uri(), [
            ("section#insight-quarter", out / "report-quarterly-insight-quarter.png")])
        for persona in ("cmo", "ops", "cx"):
            url = f"{base}/persona/{persona}?{query}"
            warm(url)
            capture(url, out / f"dashboard-persona-{persona}.png", 1280, 2000)
        cx_base, cx_server, cx_thread = serve_dashboard(data_dir, reports_dir, now, "cx")
        warm(f"{cx_base}/persona/cx?{query}")
        capture(f"{cx_base}/persona/cx?{query}", out / "dashboard-persona-cx-as-cx.png",
                1280, 2000)
        for running_server, running_thread in ((server, thread), (cx_server, cx_thread)):
            running_server.should_exit = True
            running_thread.join(timeout=10)
    finally:
        from pulse_shared.store.embedded import close_all_embedded

        close_all_embedded()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
