"""A fit in a worker process (``pulse demo``: pulse_mmm.worker) is the same fit as in a
thread: same numbers for the same data and seed, progress relayed, failures reported with
the worker's traceback, and the worker gone once closed."""

from __future__ import annotations

import asyncio
import datetime as dt
import math

import pytest

from pulse_mmm.domain.fit import FitSettings, fit_mmm
from pulse_mmm.domain.model import MmmDataset, ModelGrain
from pulse_mmm.worker import FitFailed, FitWorker

STARTED = dt.datetime(2027, 1, 4, 6, 0, tzinfo=dt.UTC)
#: Few draws: the test is about where the fit runs, not about convergence (a rejected run
#: is compared as closely as a published one).
SETTINGS = FitSettings(draws=30, tune=30, yearly_seasonality=0, seed=5)


def dataset(weeks: int = 40) -> MmmDataset:
    """Two channels with spend that swings, and an outcome that follows it (no sampler
    needed to make it: the test compares two fits of the same data)."""
    search = [1000.0 + 400.0 * math.sin(i / 3) for i in range(weeks)]
    social = [500.0 + 300.0 * math.cos(i / 5) for i in range(weeks)]
    outcome = [5000.0 + 2.0 * s + 1.0 * c + 150.0 * math.sin(i) for i, (s, c)
               in enumerate(zip(search, social, strict=True))]
    return MmmDataset(
        target="won_revenue", grain=ModelGrain.WEEK,
        period_starts=tuple(dt.date(2025, 1, 6) + dt.timedelta(weeks=i) for i in range(weeks)),
        channels=("search", "social"), spend={"search": tuple(search), "social": tuple(social)},
        outcome=tuple(outcome),
    )


def test_a_fit_in_the_worker_equals_the_fit_in_this_process() -> None:
    data = dataset()
    here = fit_mmm(data, SETTINGS, run_id="r", version=1, started_at=STARTED,
                   clock=lambda: STARTED)
    messages: list[str] = []
    worker = FitWorker(SETTINGS).start()
    try:
        there = asyncio.run(worker.fit(data, SETTINGS, run_id="r", version=1,
                                       started_at=STARTED, progress=messages.append))
    finally:
        worker.close()
    assert not worker._process.is_alive()
    assert messages[0] == "loading pymc-marketing" and len(messages) >= 3, messages
    assert there.run.status == here.run.status
    assert there.run.reason == here.run.reason
    for field in ("max_rhat", "min_ess", "holdout_mape", "r_squared", "divergences"):
        assert getattr(there.run, field) == pytest.approx(getattr(here.run, field), rel=1e-6)
    assert [c.channel for c in there.channels] == [c.channel for c in here.channels]
    for a, b in zip(there.channels, here.channels, strict=True):
        assert (a.roi, a.roi_lower, a.roi_upper) == pytest.approx(
            (b.roi, b.roi_lower, b.roi_upper), rel=1e-6)


def test_a_failing_fit_reports_the_workers_traceback() -> None:
    worker = FitWorker(SETTINGS).start()
    try:
        with pytest.raises(FitFailed, match="InsufficientHistory"):
            asyncio.run(worker.fit(dataset(weeks=5), SETTINGS, run_id="r", version=1,
                                   started_at=STARTED))
    finally:
        worker.close()
    assert not worker._process.is_alive()


def test_closing_a_worker_that_never_started_does_nothing() -> None:
    FitWorker(SETTINGS).close()
