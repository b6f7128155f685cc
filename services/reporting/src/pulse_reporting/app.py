"""The reporting component: the weekly/monthly/quarterly schedule and on-demand reports
(files, the ``reports`` table and ``report.ready.v1``)."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from collections.abc import Callable
from pathlib import Path

from faststream.kafka import KafkaRouter

from pulse_reporting.domain.periods import Period, ReportKind
from pulse_reporting.domain.schedule import ScheduledRun, due_runs, latest_runs
from pulse_reporting.generate import ReportResult, generate_report
from pulse_reporting.settings import ReportingSettings
from pulse_reporting.storage import ReportingStorage
from pulse_shared.bus import Bus
from pulse_shared.consumers import build_router
from pulse_shared.logging import get_logger
from pulse_shared.store import Store

log = get_logger(__name__)
#: Its consumer group, should it ever consume a topic.
GROUP_ID = "pulse-reporting"

Clock = Callable[[], dt.datetime]


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class ReportingComponent:
    """Runs the weekly/monthly/quarterly schedule; produces reports on demand."""

    name = "reporting"
    # It reads ClickHouse on a schedule and consumes no topic: its router stays empty.
    consumers: tuple[()] = ()

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
        self.router: KafkaRouter = build_router(self, GROUP_ID)
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
        kinds = tuple(self.settings.scheduled_kinds)
        hours = {ReportKind.DAILY: self.settings.daily_briefing_hour}
        if self._last_check is None:
            runs = [r for r in latest_runs(now, self.settings.zone, self.settings.schedule_hour,
                                           kinds=kinds, hours=hours)
                    if not await asyncio.to_thread(self._exists, r)]
        else:
            runs = due_runs(
                self._last_check, now, self.settings.zone, self.settings.schedule_hour,
                kinds=kinds, hours=hours,
            )
        self._last_check = now
        results: list[ReportResult] = []
        for run in runs:
            try:
                results.append(await self.generate(run.kind, run.period, trigger="schedule"))
            except Exception:
                log.exception("scheduled_report_failed", kind=run.kind.value,
                              period=run.period.label)
                continue
            # to the report's subscribers (pulse_reporting.delivery); logs, never raises
            from pulse_reporting.delivery.service import deliver_to_subscribers

            await deliver_to_subscribers(
                self.settings, self.writer, self.store, self.clock, results[-1])
        return results

    def _exists(self, run: ScheduledRun) -> bool:
        return self.storage.report_exists(run.kind.value, run.period.label, self.settings.model)

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
