"""The marketing mix model component: no consumers, one background schedule that refits
the model every ``PULSE_MMM_REFIT_INTERVAL_S`` (weekly by default).

A refit that is rejected (diagnostics, too little history) or fails (an error) is logged,
counted (``pulse_mmm_fits_total``) and published on ``mmm.results.v1`` as a rejected run
with its reason; the schedule carries on, the service never stops for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import time
from collections.abc import Callable
from typing import Any

from pulse_mmm import metrics
from pulse_mmm.domain.model import MmmRunResult
from pulse_mmm.runner import millisecond_clock, publish, refusal, run_fit, run_id_of, utc_now
from pulse_mmm.settings import SERVICE, MmmSettings
from pulse_mmm.storage import MmmStorage
from pulse_shared.bus import Bus
from pulse_shared.consumers import build_router
from pulse_shared.logging import get_logger
from pulse_shared.store import Store
from pulse_shared.streaming import BatchConsumer

log = get_logger(__name__)
GROUP_ID = "pulse-mmm"


class MmmComponent:
    """The scheduled refit (a component without consumers: an empty router)."""

    name = SERVICE

    def __init__(
        self,
        store: Store,
        bus: Bus,
        settings: MmmSettings,
        clock: Callable[[], dt.datetime] = utc_now,
    ) -> None:
        self.store = store
        self.bus = bus
        self.settings = settings
        self.clock = clock
        self.consumers: list[BatchConsumer[Any]] = []
        self.router = build_router(self, GROUP_ID, label="MMM")
        self._schedule: asyncio.Task[None] | None = None
        #: The outcome of each scheduled refit, latest last (operations, tests).
        self.results: list[MmmRunResult] = []

    async def start(self) -> None:
        interval = self.settings.refit_interval_s
        if interval > 0 and self._schedule is None:
            self._schedule = asyncio.create_task(self._refit_forever(interval), name="mmm-refit")
        log.info("mmm_started", refit_interval_s=interval, target=self.settings.target,
                 grain=str(self.settings.grain))

    async def stop(self) -> None:
        if self._schedule is not None:
            self._schedule.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._schedule
            self._schedule = None
        log.info("mmm_stopped")

    async def _refit_forever(self, interval: float) -> None:
        # Due times come from the clock (not a sleep per run), so a long fit does not push
        # every later refit back by its duration.
        due = self.clock() + dt.timedelta(
            seconds=min(interval, self.settings.refit_initial_delay_s))
        while True:
            await asyncio.sleep(max(0.0, (due - self.clock()).total_seconds()))
            await self.refit()
            due = max(due + dt.timedelta(seconds=interval), self.clock())

    async def refit(self) -> MmmRunResult | None:
        """One scheduled fit: stored and published whatever its outcome; never raises
        (except cancellation)."""
        started = time.perf_counter()
        started_at = millisecond_clock(self.clock)()
        result: MmmRunResult | None
        try:
            result = await run_fit(
                self.store, self.settings, clock=self.clock, bus=self.bus,
                record_refusals=True,
            )
            status = result.run.status
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.error("mmm_refit_failed", error=repr(exc))
            status = "failed"
            result = await self._publish_failure(exc, started_at)
        metrics.FITS.labels(status).inc()
        metrics.FIT_SECONDS.observe(time.perf_counter() - started)
        metrics.LAST_FIT.set(time.time())
        if result is not None:
            if result.published:
                metrics.LAST_PUBLISHED.set(time.time())
            self.results.append(result)
            del self.results[:-10]
        return result

    async def _publish_failure(
        self, exc: Exception, started_at: dt.datetime
    ) -> MmmRunResult | None:
        """Tell the topic's readers the refit produced nothing (best effort: the store or
        the broker may be what failed)."""
        target, grain = self.settings.target, str(self.settings.grain)
        try:
            version = await asyncio.to_thread(
                MmmStorage(self.store).next_version, target, grain)
        except Exception:
            version = 1
        today = started_at.date()
        result = refusal(
            run_id=run_id_of(target, grain, version, started_at), version=version,
            target=target, grain=grain, window=(today, today), periods=0, channels=[],
            reason=f"fit failed: {type(exc).__name__}: {exc}", parameters={},
            holdout_periods=self.settings.holdout_periods or 0, started_at=started_at,
            finished_at=millisecond_clock(self.clock)(),
        )
        storage = MmmStorage(self.store)
        try:
            await asyncio.to_thread(storage.write_result, result)
        except Exception as again:
            log.error("mmm_failure_not_stored", error=repr(again))
        try:
            await publish(self.bus, result)
        except Exception as again:
            log.error("mmm_failure_not_published", error=repr(again))
        return result
