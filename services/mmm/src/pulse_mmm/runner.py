"""One marketing mix model run, end to end: read the dataset, check there is enough
history, fit (in a worker thread: minutes of CPU), store every result row (the run row
last) and publish :class:`~pulse_shared.events.MmmRunCompleted` on ``mmm.results.v1``.

Called by ``pulse mmm fit``, the service's scheduled refit and ``pulse demo``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import functools
import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pulse_mmm.domain.history import InsufficientHistory, check_history
from pulse_mmm.domain.model import MmmDataset, MmmRunResult, MmmRunRow, ModelGrain, RunStatus
from pulse_mmm.settings import MmmSettings
from pulse_mmm.storage import MmmStorage, complete_window, parse_target
from pulse_shared.bus import Bus
from pulse_shared.events import MmmChannelRoi, MmmRunCompleted
from pulse_shared.logging import get_logger
from pulse_shared.store import Store
from pulse_shared.topics import MMM_RESULTS

if TYPE_CHECKING:
    from pulse_mmm.worker import FitWorker

log = get_logger(__name__)
Clock = Callable[[], dt.datetime]
#: ``MmmRunCompleted.reason`` is Text (at most 4096 characters).
MAX_REASON = 4000

__all__ = ["InsufficientHistory", "completed_event", "fit_window", "millisecond_clock",
           "publish", "refusal", "run_fit", "run_id_of", "utc_now"]


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def millisecond_clock(clock: Clock) -> Clock:
    """``clock`` truncated to the millisecond: run times are DateTime64(3), so the times a
    run is published with equal the ones it is stored with."""

    def now() -> dt.datetime:
        at = clock()
        return at.replace(microsecond=at.microsecond // 1000 * 1000)

    return now


def run_id_of(target: str, grain: str, version: int, started_at: dt.datetime) -> str:
    """``mmm-<target>-<grain>-v<version>-<UTC start>``: readable, unique per start."""
    slug = target.replace(":", "-")
    return f"mmm-{slug}-{grain}-v{version}-{started_at.astimezone(dt.UTC):%Y%m%dT%H%M%S%fZ}"


def fit_window(
    storage: MmmStorage, grain: ModelGrain, window_weeks: int,
    date_from: dt.date | None, date_to: dt.date | None,
) -> tuple[dt.date, dt.date] | None:
    """The inclusive day window a fit reads. Given both ends: those. Otherwise the last
    ``window_weeks`` complete weeks (× 7 days at day grain) of the spend data, cut at
    ``date_to`` / started at ``date_from`` when one is given; None without spend."""
    if date_from is not None and date_to is not None:
        return date_from, date_to
    span = storage.spend_span()
    if span is None:
        return None
    first, last = span
    if date_to is not None:
        last = min(last, date_to)
    if date_from is not None:
        first = max(first, date_from)
    periods = window_weeks if grain is ModelGrain.WEEK else window_weeks * 7
    if date_from is not None:  # an explicit start: everything from there
        periods = (last - first).days + 1
    return complete_window(grain, first, last, periods)


def completed_event(result: MmmRunResult) -> MmmRunCompleted:
    run = result.run
    return MmmRunCompleted(
        run_id=run.run_id,
        version=run.version,
        target=run.target,
        grain=run.grain,
        date_from=run.date_from,
        date_to=run.date_to,
        status=run.status,
        reason=run.reason[:MAX_REASON],
        channels=[
            MmmChannelRoi(
                channel=c.channel, spend=c.spend, contribution=c.contribution, roi=c.roi,
                roi_lower=c.roi_lower, roi_upper=c.roi_upper, marginal_roi=c.marginal_roi,
            )
            for c in result.channels
        ],
        finished_at=run.finished_at,
    )


async def publish(bus: Bus | None, result: MmmRunResult) -> None:
    if bus is not None:
        await bus.publish(MMM_RESULTS, [completed_event(result)])


def refusal(
    *, run_id: str, version: int, target: str, grain: str, window: tuple[dt.date, dt.date],
    periods: int, channels: list[str], reason: str, parameters: dict[str, Any],
    holdout_periods: int, started_at: dt.datetime, finished_at: dt.datetime,
) -> MmmRunResult:
    """A rejected run that never reached the sampler (too little history, a failed fit)."""
    return MmmRunResult(MmmRunRow(
        run_id=run_id, version=version, target=target, grain=grain,
        date_from=window[0], date_to=window[1], periods=periods, channels=channels,
        status=str(RunStatus.REJECTED), reason=reason[:MAX_REASON], library="",
        parameters=json.dumps(parameters, sort_keys=True, default=str),
        max_rhat=None, min_ess=None, divergences=0, holdout_periods=holdout_periods,
        holdout_mape=None, r_squared=None, started_at=started_at, finished_at=finished_at,
    ))


async def run_fit(
    store: Store,
    settings: MmmSettings,
    *,
    target: str | None = None,
    grain: ModelGrain | str | None = None,
    date_from: dt.date | None = None,
    date_to: dt.date | None = None,
    clock: Clock = utc_now,
    progress: Any = None,
    bus: Bus | None = None,
    fit_overrides: dict[str, Any] | None = None,
    record_refusals: bool = False,
    worker: FitWorker | None = None,
) -> MmmRunResult:
    """Fit the model of ``target`` × ``grain`` (default: the settings') over the window
    (default: the last ``window_weeks`` complete weeks of spend), store the run and
    publish it on ``mmm.results.v1`` when ``bus`` is given.

    A fit whose diagnostics fail comes back (stored, published) with status ``rejected``
    and its reason. Too little history raises :class:`InsufficientHistory` (one line),
    storing nothing — unless ``record_refusals`` (the scheduled refit): then the refusal
    is stored and published as a rejected run like any other. ``fit_overrides`` replace
    sampler settings (draws, tune, chains…) for this run; ``progress`` is passed to the
    fit (see :func:`pulse_mmm.domain.fit.fit_mmm`). The fit runs in a worker thread, or in
    ``worker``'s process when given (:mod:`pulse_mmm.worker`; ``finished_at`` is then
    stamped with ``clock`` when the result is back).
    """
    storage = MmmStorage(store)
    clock = millisecond_clock(clock)
    target = parse_target(target or settings.target)
    model_grain = ModelGrain(grain or settings.grain)
    overrides = {k: v for k, v in (fit_overrides or {}).items() if v is not None}
    fit = settings.fit_settings(model_grain, **overrides)
    started_at = clock()
    window = await asyncio.to_thread(
        fit_window, storage, model_grain, settings.window_weeks, date_from, date_to
    )
    version = await asyncio.to_thread(storage.next_version, target, model_grain)
    run_id = run_id_of(target, str(model_grain), version, started_at)
    dataset: MmmDataset | None = None
    try:
        if window is None:
            raise InsufficientHistory(
                "no spend stored: nothing to fit (ingest spend, or give --from/--to)")
        if window[0] > window[1]:
            raise InsufficientHistory(f"empty window {window[0]}..{window[1]}")
        dataset = await asyncio.to_thread(
            storage.dataset, target, model_grain, window[0], window[1])
        check_history(dataset, fit.holdout_periods)
    except InsufficientHistory as exc:
        if not record_refusals:
            raise
        today = started_at.date()
        result = refusal(
            run_id=run_id, version=version, target=target, grain=str(model_grain),
            window=window or (today, today),
            periods=len(dataset.period_starts) if dataset else 0,
            channels=list(dataset.channels) if dataset else [],
            reason=str(exc), parameters={"settings": settings.model_dump(mode="json"),
                                         "overrides": overrides},
            holdout_periods=fit.holdout_periods, started_at=started_at, finished_at=clock(),
        )
        await asyncio.to_thread(storage.write_result, result)
        await publish(bus, result)
        log.warning("mmm_fit_refused", run_id=run_id, target=target, reason=str(exc))
        return result
    assert window is not None and dataset is not None  # checked above
    from pulse_mmm.domain.fit import fit_mmm  # numpy only; PyMC loads inside the fit

    roas = await asyncio.to_thread(storage.attribution_roas, target, window[0], window[1])
    log.info("mmm_fit_started", run_id=run_id, target=target, grain=str(model_grain),
             window=f"{window[0]}..{window[1]}", periods=len(dataset.period_starts),
             channels=len(dataset.channels))
    if worker is None:
        result = await asyncio.to_thread(functools.partial(
            fit_mmm, dataset, fit, run_id=run_id, version=version, started_at=started_at,
            clock=clock, attribution_roas=roas, progress=progress,
        ))
    else:
        result = await worker.fit(dataset, fit, run_id=run_id, version=version,
                                  started_at=started_at, attribution_roas=roas,
                                  progress=progress)
        result = dataclasses.replace(
            result, run=dataclasses.replace(result.run, finished_at=clock()))
    await asyncio.to_thread(storage.write_result, result)
    await publish(bus, result)
    log.info("mmm_fit_finished", run_id=run_id, status=result.run.status,
             reason=result.run.reason, max_rhat=result.run.max_rhat,
             min_ess=result.run.min_ess, holdout_mape=result.run.holdout_mape)
    return result
