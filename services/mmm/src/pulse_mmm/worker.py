"""A marketing mix model fit in a process of its own, started ahead of time.

``pulse demo`` starts one before it generates its data: the worker imports PyMC, PyTensor
and JAX (3-8 s) while the events are ingested, and fits as soon as spend, deals and
attribution credits are stored, while the other kinds are ingested and the daily and
weekly reports (which show no model) are written. In a process of its own the fit's Python
work (imports, graph rewriting) does not hold the event loop's GIL, and its CPU adds to the
pipeline's instead of taking turns with it.

The worker runs the very same :func:`pulse_mmm.domain.fit.fit_mmm` as a fit in a thread:
only where it runs differs. It may also keep JAX's compiled programs in a directory
(``compile_cache``), so a later fit of the same data (``pulse demo`` run again the same
day) skips XLA compilation; programs depend on the data, so another data set compiles
afresh.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import multiprocessing
import os
import queue
import sys
import traceback
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from pulse_mmm.domain.fit import FitSettings
from pulse_mmm.domain.model import MmmDataset, MmmRunResult

#: How often the waiting side looks for progress messages and the result (seconds).
POLL_S = 0.05
#: Seconds a worker gets to leave on its own once closed, before it is terminated.
STOP_WAIT_S = 5.0


class FitFailed(RuntimeError):
    """The fit raised in the worker; the message carries the worker's traceback."""


class FitWorker:
    """One worker process: :meth:`start` it early, :meth:`fit` once, :meth:`close`."""

    def __init__(self, settings: FitSettings, compile_cache: Path | None = None) -> None:
        # spawn: a fresh interpreter. Forking would copy a process holding chDB and threads.
        context = multiprocessing.get_context("spawn")
        self._jobs: Any = context.Queue()
        self._messages: Any = context.Queue()
        self._process = context.Process(
            target=_serve, name="pulse-mmm-fit",
            args=(self._jobs, self._messages, settings,
                  str(compile_cache) if compile_cache else None),
            daemon=True,
        )
        self._busy = False

    def start(self) -> FitWorker:
        self._process.start()
        return self

    async def fit(
        self,
        dataset: MmmDataset,
        settings: FitSettings,
        *,
        run_id: str,
        version: int,
        started_at: dt.datetime,
        attribution_roas: Mapping[str, float | None] | None = None,
        progress: Callable[[str], None] | None = None,
    ) -> MmmRunResult:
        """:func:`~pulse_mmm.domain.fit.fit_mmm` in the worker; ``progress`` gets its
        messages here. The run's ``finished_at`` is the worker's clock (UTC, to the
        millisecond, as stored)."""
        self._busy = True
        self._jobs.put((dataset, settings, {
            "run_id": run_id, "version": version, "started_at": started_at,
            "attribution_roas": dict(attribution_roas) if attribution_roas else None,
        }))
        while True:
            try:
                kind, payload = self._messages.get_nowait()
            except queue.Empty:
                if not self._process.is_alive():
                    raise FitFailed(
                        f"the fit worker exited (code {self._process.exitcode})") from None
                await asyncio.sleep(POLL_S)
                continue
            if kind == "progress":
                if progress is not None:
                    progress(payload)
            elif kind == "result":
                self._busy = False
                result: MmmRunResult = payload
                return result
            else:
                self._busy = False
                raise FitFailed(payload)

    def close(self) -> None:
        """Stop the worker: an idle one leaves on its own, a busy one (the fit was given
        up, e.g. the demo failed) is terminated, since nobody waits for its result."""
        if self._process.pid is None:  # never started
            return
        if self._process.is_alive():
            self._jobs.put(None)
            self._process.join(0 if self._busy else STOP_WAIT_S)
        if self._process.is_alive():
            self._process.terminate()
            self._process.join()
        for channel in (self._jobs, self._messages):
            channel.close()
            channel.cancel_join_thread()


def _utc_ms() -> dt.datetime:
    now = dt.datetime.now(dt.UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def _serve(jobs: Any, messages: Any, settings: FitSettings, compile_cache: str | None) -> None:
    """The worker: preload, then fit each job until told to stop (None)."""
    # PyMC prints a progress line on stdout; the parent's stdout is its own output.
    sys.stdout = open(os.devnull, "w")  # for the life of the process
    from pulse_mmm.domain.fit import fit_mmm, preload

    if compile_cache:
        import jax

        config: Any = jax.config  # untyped
        config.update("jax_compilation_cache_dir", compile_cache)
        # Every program, however quick to compile: a fit compiles ~100 small ones.
        config.update("jax_persistent_cache_min_compile_time_secs", 0)
        config.update("jax_persistent_cache_min_entry_size_bytes", -1)
    preload(settings)
    while (job := jobs.get()) is not None:
        dataset, fit_settings, kwargs = job
        try:
            result = fit_mmm(dataset, fit_settings, clock=_utc_ms,
                             progress=lambda m: messages.put(("progress", m)), **kwargs)
        except BaseException:
            messages.put(("error", traceback.format_exc()))
        else:
            messages.put(("result", result))
