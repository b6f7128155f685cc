"""The reporting component: schedule catch-up and due runs, ReportReady on the bus, and
the production ASGI app (health, metrics, dashboard routes)."""

from __future__ import annotations

import datetime as dt
import re
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).parent))

from auth_support import issue_token
from reporting_fixtures import bearer, insert_kpis, period_kpis

from pulse_reporting.domain.periods import parse_period
from pulse_reporting.main import ReportingComponent
from pulse_reporting.settings import ReportingSettings
from pulse_shared.events import ReportReady
from pulse_shared.store import Store


class RecordingBus:
    def __init__(self) -> None:
        self.published: list[tuple[str, Any]] = []

    async def publish(self, topic: Any, events: list[Any]) -> None:
        self.published += [(topic.name, e) for e in events]


async def test_schedule_catches_up_then_runs_when_due(
    embedded_store: Store, tmp_path: Path
) -> None:
    insert_kpis(embedded_store, period_kpis(parse_period("weekly", "2036-W10"), 1.0))
    bus = RecordingBus()
    settings = ReportingSettings(output_dir=tmp_path, timezone="America/New_York",
                                 formats=("md", "json"), schedule_hour=6)
    # Thursday 2036-03-13 12:00 UTC: the latest runs were Monday 03-10 (for W10,
    # 03-03..03-09), 1 March (for February) and 1 January (for 2035-Q4).
    clock_now = dt.datetime(2036, 3, 13, 12, tzinfo=dt.UTC)
    component = ReportingComponent(embedded_store, bus, settings,  # type: ignore[arg-type]
                                   clock=lambda: clock_now)
    results = await component.run_due()
    assert sorted((r.report.meta.kind, r.report.meta.period) for r in results) == [
        ("monthly", "2036-02"), ("quarterly", "2035-Q4"), ("weekly", "2036-W10")]
    assert {name for name, _ in bus.published} == {"report.ready.v1"}
    event = next(e for _, e in bus.published if e.report_kind == "weekly")
    assert isinstance(event, ReportReady) and event.period == "2036-W10"
    assert Path(event.paths["md"]).read_text().startswith("# Weekly marketing report 2036-W10")

    # Next check: nothing new until Monday 06:00 New York (= 10:00 UTC in March, EDT).
    assert await component.run_due(dt.datetime(2036, 3, 17, 9, 59, tzinfo=dt.UTC)) == []
    due = await component.run_due(dt.datetime(2036, 3, 17, 10, 0, tzinfo=dt.UTC))
    assert [(r.report.meta.kind, r.report.meta.period) for r in due] == [
        ("weekly", "2036-W11")]

    # A restarted component does not redo what the reports table already holds.
    fresh = ReportingComponent(embedded_store, bus, settings,  # type: ignore[arg-type]
                               clock=lambda: dt.datetime(2036, 3, 17, 11, tzinfo=dt.UTC))
    assert await fresh.run_due() == []


async def test_start_and_stop_the_schedule(embedded_store: Store, tmp_path: Path) -> None:
    settings = ReportingSettings(output_dir=tmp_path, formats=("json",))
    component = ReportingComponent(
        embedded_store, RecordingBus(), settings,  # type: ignore[arg-type]
        clock=lambda: dt.datetime(2037, 1, 1, 5, tzinfo=dt.UTC), poll_seconds=3600,
    )
    await component.start()
    assert component._task is not None and not component._task.done()
    await component.stop()
    assert component._task is None


async def test_production_app_serves_health_metrics_and_dashboard(
    embedded_store: Store, embedded_data_dir: Path, monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    from pulse_reporting.main import create_app
    from pulse_shared.settings import common_settings

    monkeypatch.setenv("PULSE_DATA_DIR", str(embedded_data_dir))
    monkeypatch.delenv("PULSE_CLICKHOUSE_URL", raising=False)
    monkeypatch.delenv("PULSE_KAFKA_BOOTSTRAP", raising=False)
    common_settings.cache_clear()
    try:
        app = create_app(ReportingSettings(output_dir=tmp_path, schedule_enabled=False))
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="http://test") as client:
            metrics = await client.get("/metrics")
            assert "pulse_reporting_generation_seconds" in metrics.text
            health = await client.get("/health")  # open (503 here: no Kafka broker)
            assert health.status_code in (200, 503) and "checks" in health.json()
            # Every dashboard route needs a signed-in user; a browser is sent to sign in.
            assert (await client.get("/api/periods")).status_code == 401
            page = await client.get("/reports", headers={"accept": "text/html"})
            assert page.status_code == 303
            assert page.headers["location"] == "/signin?next=%2Freports"
            signin = await client.get("/signin")
            assert signin.status_code == 200 and 'name="csrf"' in signin.text
            csrf = re.search(r'name="csrf" value="([^"]+)"', signin.text)
            assert csrf is not None
            token = issue_token(embedded_store, "cmo")
            signed = await client.post("/signin", data={"token": token, "next": "/reports",
                                                        "csrf": csrf.group(1)})
            assert signed.status_code == 303 and signed.headers["location"] == "/reports"
            page = await client.get("/reports")  # by the session cookie
            assert page.status_code == 200 and "<h1>Reports</h1>" in page.text
            client.cookies.clear()
            auth = bearer(token)
            page = await client.get("/reports", headers=auth)
            assert page.status_code == 200 and "<h1>Reports</h1>" in page.text
            api = await client.get("/api/periods", params={"grain": "week"}, headers=auth)
            assert api.status_code == 200 and api.json()["grain"] == "week"
            cx = bearer(issue_token(embedded_store, "cx"))
            assert (await client.get("/api/reports", headers=cx)).status_code == 403
            assert (await client.get("/api/periods", headers=cx)).status_code == 200
    finally:
        common_settings.cache_clear()


async def test_in_process_pipelines_do_not_run_the_schedule(
    embedded_store: Store, tmp_path: Path
) -> None:
    bus = RecordingBus()
    bus.in_memory = True  # type: ignore[attr-defined]
    component = ReportingComponent(embedded_store, bus,  # type: ignore[arg-type]
                                   ReportingSettings(output_dir=tmp_path))
    await component.start()
    assert component._task is None
    opted_in = ReportingComponent(
        embedded_store, bus, ReportingSettings(output_dir=tmp_path, schedule_in_process=True),  # type: ignore[arg-type]
        clock=lambda: dt.datetime(2037, 1, 1, 5, tzinfo=dt.UTC), poll_seconds=3600,
    )
    await opted_in.start()
    assert opted_in._task is not None
    await opted_in.stop()
