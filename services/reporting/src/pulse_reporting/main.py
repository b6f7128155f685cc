"""Reporting service wiring: scheduled reports, ReportReady events, dashboard."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from collections.abc import Callable
from pathlib import Path

from faststream.asgi import AsgiFastStream
from faststream.kafka import KafkaRouter

from pulse_reporting.domain.periods import Period, ReportKind
from pulse_reporting.domain.schedule import ScheduledRun, due_runs, latest_runs
from pulse_reporting.generate import ReportResult, generate_report
from pulse_reporting.handlers import build_router
from pulse_reporting.settings import ReportingSettings
from pulse_reporting.storage import ReportingStorage
from pulse_shared.bus import Bus, make_broker
from pulse_shared.logging import configure_logging, get_logger
from pulse_shared.settings import PulseSettings, common_settings
from pulse_shared.store import Store, open_store

log = get_logger(__name__)

Clock = Callable[[], dt.datetime]


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class ReportingComponent:
    """Runs the weekly/monthly/quarterly schedule; produces reports on demand."""

    name = "reporting"
    consumers: tuple[()] = ()  # it reads ClickHouse on a schedule, it consumes no topic

    def __init__(
        self,
        store: Store,
        bus: Bus,
        settings: ReportingSettings,
        *,
        writer: Store | None = None,
        clock: Clock = _utcnow,
        poll_seconds: float = 60.0,
    ) -> None:
        self.store = store
        self.writer = writer if writer is not None else store
        self.bus = bus
        self.settings = settings
        self.storage = ReportingStorage(store, self.writer)
        self.clock = clock
        self.poll_seconds = poll_seconds
        self.router: KafkaRouter = build_router(self)
        self._task: asyncio.Task[None] | None = None
        self._last_check: dt.datetime | None = None

    @property
    def output_dir(self) -> Path:
        return self.settings.output_dir

    async def generate(
        self, kind: ReportKind | str, period: Period | str, *,
        formats: tuple[str, ...] | None = None, model: str | None = None,
        trigger: str = "on_demand",
    ) -> ReportResult:
        return await generate_report(
            self.store, kind, period,
            formats=formats or self.settings.formats,
            out_dir=self.settings.output_dir,
            model=model or self.settings.model,
            bus=self.bus,
            writer=self.writer,
            path_model=self.settings.path_model,
            path_milestone=self.settings.path_milestone,
            trigger=trigger,
            base_url=self.settings.base_url,
        )

    async def run_due(self, now: dt.datetime | None = None) -> list[ReportResult]:
        """Produce every scheduled report due since the last check (catch-up at start)."""
        now = now or self.clock()
        if self._last_check is None:
            runs = [r for r in latest_runs(now, self.settings.zone, self.settings.schedule_hour)
                    if not await asyncio.to_thread(self._exists, r)]
        else:
            runs = due_runs(
                self._last_check, now, self.settings.zone, self.settings.schedule_hour
            )
        self._last_check = now
        results: list[ReportResult] = []
        for run in runs:
            try:
                results.append(await self.generate(run.kind, run.period, trigger="schedule"))
            except Exception:
                log.exception("scheduled_report_failed", kind=run.kind.value,
                              period=run.period.label)
        return results

    def _exists(self, run: ScheduledRun) -> bool:
        rows = self.storage.store.query(
            "SELECT count() AS n FROM reports FINAL WHERE report_kind = {kind:String} "
            "AND period = {period:String} AND model = {model:String}",
            {"kind": run.kind.value, "period": run.period.label, "model": self.settings.model},
        )
        return bool(rows and rows[0]["n"])

    async def _loop(self) -> None:
        while True:
            try:
                await self.run_due()
            except Exception:
                log.exception("schedule_check_failed")
            await asyncio.sleep(self.poll_seconds)

    @property
    def schedule_active(self) -> bool:
        in_process = bool(getattr(self.bus, "in_memory", False))
        return self.settings.schedule_enabled and (
            not in_process or self.settings.schedule_in_process
        )

    async def start(self) -> None:
        if not self.schedule_active:
            log.info("reporting_schedule_disabled", enabled=self.settings.schedule_enabled)
            return
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name="pulse-reporting-schedule")
            log.info("reporting_schedule_started", timezone=self.settings.timezone,
                     hour=self.settings.schedule_hour)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None


def build(
    store: Store, bus: Bus, settings: ReportingSettings | None = None, *,
    writer: Store | None = None,
) -> ReportingComponent:
    return ReportingComponent(store, bus, settings or ReportingSettings(), writer=writer)


def open_stores(
    settings: ReportingSettings, common: PulseSettings | None = None
) -> tuple[Store, Store]:
    """(read-only store as the reporting user, writer store for the ``reports`` table)."""
    common = common or common_settings()
    password = (
        settings.clickhouse_password.get_secret_value()
        if settings.clickhouse_password is not None
        else None
    )
    reader = open_store(
        common, readonly=True, user=settings.clickhouse_user, password=password
    )
    writer = open_store(common)
    return reader, writer


def create_app(settings: ReportingSettings | None = None) -> AsgiFastStream:
    from pulse_shared.service import create_service_app

    settings = settings or ReportingSettings()
    common = common_settings()
    configure_logging(common.log_level, common.log_json)
    broker = make_broker(common.kafka_bootstrap, client_id="pulse-reporting")
    reader, writer = open_stores(settings, common)
    component = build(reader, Bus(broker, "reporting"), settings, writer=writer)
    broker.include_router(component.router)
    routes = []
    with contextlib.suppress(ImportError):
        from pulse_reporting.web import dashboard_routes

        routes = dashboard_routes(component)
    return create_service_app(
        "reporting", broker, reader,
        after_startup=[component.start], on_shutdown=[component.stop], extra_routes=routes,
    )


def run() -> None:
    import uvicorn

    settings = ReportingSettings()
    uvicorn.run(create_app(settings), host="0.0.0.0", port=settings.port)
