"""``pulse demo``: seeded synthetic data through every service, in one process (the
marketing mix model's fit in a worker process beside it: :func:`start_fit_worker`)."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from pulse_cli.runtime import open_pipeline
from pulse_shared.safe_text import rich_literal
from pulse_shared.settings import common_settings

# Budgets, tool costs (martech) and spend first so pacing is known when touches arrive; conversions last so
# their journeys are complete (the late-touch path handles the other order in production).
# Product usage after subscriptions: churn risk counts the accounts paying by then.
# Account profiles first: billing is then broken down by segment as it arrives.
# Survey answers and tickets after subscriptions: tickets per account counts paying accounts.
INGEST_ORDER = ("accounts", "budgets", "martech", "spend", "touchpoints", "pipeline",
                "subscriptions", "usage", "deliverability", "feedback", "tickets")
CHUNK = 2000
# In process, "publishing" runs every downstream handler before it returns, so the ingest
# back-pressure timeout (meant for a slow broker) must allow for the whole pipeline.
IN_PROCESS_PUBLISH_TIMEOUT_S = 3600.0
# The demo's marketing mix model is the production one: weekly won revenue over the last
# 104 complete weeks of spend (MmmSettings defaults). The 120 detailed days are 17 weeks,
# under the weekly model's minimum (pulse_mmm.domain.history.MIN_PERIODS), so the demo data
# carries two years of sales-led history (spend and deals driven by it with a known ROI per
# channel: pulse_ingest.domain.generator.HISTORY_RESPONSES). The sampler and the
# diagnostics gate (R-hat, ESS, hold-out MAPE) are the production ones: with 300+300 draws
# the bulk ESS of some seeds fell just under the gate's 100, and a fit that fails the gate is
# shown as rejected, never loosened here.
DEMO_HISTORY_WEEKS = 104
DEMO_MMM_GRAIN = "week"  # the production default (scripts/screenshots.py fits like the demo)
DEMO_MMM_SAMPLER: dict[str, Any] = {}  # no overrides: production draws, tune and chains
# The fit reads spend, won deals and the deals' attribution credits (written as the deals are
# ingested): all stored once this kind is in, so it starts then, beside the later kinds.
MMM_INPUTS_COMPLETE_AFTER = "pipeline"


@dataclass
class PhaseClock:
    """Wall and CPU seconds of each step of the demo (``--timings``, bench/demo).

    CPU is the whole process's (every thread: chDB's queries, the services' worker
    threads), so on a loaded machine it shows the work done where wall time shows the
    waiting too. The model's fit worker is a process of its own: ``children_cpu_s``."""

    phases: list[dict[str, Any]] = field(default_factory=list)
    started: float = field(default_factory=time.perf_counter)
    started_cpu: float = field(default_factory=time.process_time)

    @contextlib.contextmanager
    def phase(self, name: str, **details: Any) -> Iterator[dict[str, Any]]:
        """Times the block; the yielded dict takes more details (events counted …)."""
        since = self.mark()
        entry: dict[str, Any] = {"phase": name, **details}
        try:
            yield entry
        finally:
            self.record(entry, since)

    @staticmethod
    def mark() -> tuple[float, float]:
        return time.perf_counter(), time.process_time()

    def record(self, entry: dict[str, Any], since: tuple[float, float]) -> None:
        """A phase that ``with`` cannot wrap (it ends where a block closes)."""
        entry["wall_s"] = round(time.perf_counter() - since[0], 3)
        entry["cpu_s"] = round(time.process_time() - since[1], 3)
        self.phases.append(entry)

    def as_dict(self) -> dict[str, Any]:
        import resource

        # Child processes (the model's fit worker) count once they have been waited for.
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        return {
            "phases": self.phases,
            "total": {"wall_s": round(time.perf_counter() - self.started, 3),
                      "cpu_s": round(time.process_time() - self.started_cpu, 3),
                      "children_cpu_s": round(children.ru_utime + children.ru_stime, 3)},
        }

    def write(self, path: Path) -> None:
        path.write_text(json.dumps(self.as_dict(), indent=2) + "\n")


def previous_periods(today: dt.date) -> dict[str, str]:
    """The last complete period of every report kind before ``today`` (yesterday for the
    daily briefing, then ISO week, month, quarter and year), by report kind."""
    from pulse_reporting.domain.periods import ReportKind, last_complete

    return {kind.value: last_complete(kind, today).label for kind in ReportKind}


def start_fit_worker() -> Any:
    """The demo's model fit runs in a worker process started now: it imports the model
    libraries while the data is generated and ingested (:mod:`pulse_mmm.worker`). JAX's
    compiled programs are kept under the data directory, so running the demo again the
    same day (same data) skips compiling them."""
    from pulse_mmm.settings import MmmSettings
    from pulse_mmm.worker import FitWorker

    fit = MmmSettings().fit_settings(DEMO_MMM_GRAIN, **DEMO_MMM_SAMPLER)
    return FitWorker(fit, compile_cache=common_settings().data_dir / "cache" / "jax").start()


async def fit_demo_mmm(
    store: Any, bus: Any, progress: Progress, worker: Any = None
) -> tuple[str, float]:
    """Fit the marketing mix model on the demo data (in ``worker`` when given), before
    the reports that show its section. (one-line outcome, seconds)."""
    from pulse_mmm.runner import InsufficientHistory, run_fit
    from pulse_mmm.settings import MmmSettings

    started = time.perf_counter()
    task = progress.add_task("marketing mix model: reading spend and outcomes", total=None)

    def step(message: str) -> None:
        progress.update(task, description=f"marketing mix model: {message}")

    try:
        result = await run_fit(
            store, MmmSettings(), grain=DEMO_MMM_GRAIN, progress=step, bus=bus,
            fit_overrides=DEMO_MMM_SAMPLER, worker=worker,
        )
    except InsufficientHistory as exc:
        outcome = f"not fitted: {exc}"
    else:
        run = result.run
        outcome = (
            f"v{run.version} published ({len(result.channels)} channels, "
            f"{run.periods} {run.grain}s)"
            if result.published else f"v{run.version} rejected: {run.reason}"
        )
    progress.update(task, total=1, completed=1,
                    description=f"marketing mix model: {outcome[:70]}")
    return outcome, time.perf_counter() - started


async def run_demo(
    *,
    days: int,
    accounts: int,
    seed: int,
    reports_dir: Path,
    console: Console,
    progress: Progress,
    history_weeks: int = DEMO_HISTORY_WEEKS,
    timings: Path | None = None,
) -> Table:
    clock = PhaseClock()
    worker = start_fit_worker()
    try:
        return await _run_demo(
            days=days, accounts=accounts, seed=seed, reports_dir=reports_dir,
            console=console, progress=progress, history_weeks=history_weeks,
            clock=clock, worker=worker,
        )
    finally:
        worker.close()
        if timings is not None:
            clock.write(timings)


async def _run_demo(
    *,
    days: int,
    accounts: int,
    seed: int,
    reports_dir: Path,
    console: Console,
    progress: Progress,
    history_weeks: int,
    clock: PhaseClock,
    worker: Any,
) -> Table:
    from pulse_ingest.domain.generator import generate_dataset
    from pulse_ingest.service import IngestService
    from pulse_ingest.settings import IngestSettings
    from pulse_reporting.domain.mmm import KINDS_WITH_MODEL
    from pulse_reporting.generate import generate_report
    from pulse_reporting.settings import ALL_FORMATS
    from pulse_shared import topics

    today = dt.datetime.now(dt.UTC).date()
    with console.status("generating synthetic data"), clock.phase("generate"):
        dataset = generate_dataset(
            seed=seed, days=days, accounts=accounts, end=today - dt.timedelta(days=1),
            history_weeks=history_weeks, martech_tools=True, product_usage=True,
            email_deliverability=True, account_profiles=True, customer_experience=True,
        )
    summary = Table(title="Pulse demo (embedded: in-process bus, chDB)")
    summary.add_column("step")
    summary.add_column("result", justify="right")
    opening = clock.mark()
    async with open_pipeline() as pipeline:
        clock.record({"phase": "open pipeline"}, opening)
        store = pipeline.store
        assert store is not None, "the demo runs in process"
        ingest = IngestService(
            pipeline.bus,
            IngestSettings(demo=True, publish_timeout_s=IN_PROCESS_PUBLISH_TIMEOUT_S),
        )
        with progress:
            fitting: asyncio.Task[tuple[str, float]] | None = None
            try:
                for kind in INGEST_ORDER:
                    with clock.phase(f"ingest {kind}") as entry:
                        rows: list[dict[str, Any]] = [
                            e.model_dump(mode="json") for e in getattr(dataset, kind)
                        ]
                        task = progress.add_task(f"ingest {kind}", total=len(rows))
                        accepted = 0
                        for start in range(0, len(rows), CHUNK):
                            chunk = rows[start : start + CHUNK]
                            accepted += (await ingest.ingest(kind, chunk, "demo")).accepted
                            progress.update(task, advance=len(chunk))
                        entry["events"] = len(rows)
                    summary.add_row(f"{kind} accepted", str(accepted))
                    if kind == MMM_INPUTS_COMPLETE_AFTER:
                        fit_from = time.perf_counter()
                        fitting = asyncio.create_task(
                            fit_demo_mmm(store, pipeline.bus, progress, worker))
                assert fitting is not None, f"{MMM_INPUTS_COMPLETE_AFTER} is an ingested kind"
                # The reports must not depend on how long the steps before them took.
                with clock.phase("settle (scheduled attribution models, KPI breakdowns, "
                                 "alert timers)"):
                    await pipeline.settle()
                periods = previous_periods(today)
                task = progress.add_task("reports", total=len(periods))
                paths: list[str] = []
                # The reports that show no model first, while the model is being fitted.
                ordered = sorted(periods.items(), key=lambda item: item[0] in KINDS_WITH_MODEL)
                for kind, period in ordered:
                    if kind in KINDS_WITH_MODEL and not fitting.done():
                        with clock.phase("wait for the marketing mix model"):
                            await fitting
                    with clock.phase(f"report {kind}", period=period):
                        report = await generate_report(
                            store, kind, period, formats=ALL_FORMATS,  # the whole product
                            out_dir=reports_dir, bus=pipeline.bus,
                        )
                    paths.extend(str(p.absolute()) for p in report.paths.values())
                    progress.advance(task)
                mmm_outcome, mmm_seconds = await fitting
            finally:
                if fitting is not None and not fitting.done():  # the demo failed
                    fitting.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await fitting
            clock.phases.append({
                "phase": "marketing mix model (beside the steps from ingest "
                         f"{INGEST_ORDER[INGEST_ORDER.index(MMM_INPUTS_COMPLETE_AFTER) + 1]} on)",
                "overlapped": True, "wall_s": round(mmm_seconds, 3),
                "started_at_s": round(fit_from - clock.started, 3),
            })
            summary.add_row("marketing mix model", mmm_outcome)
            summary.add_row("model fit", f"{mmm_seconds:.1f} s")
        shown = (topics.TOUCHPOINTS, topics.CREDITS, topics.KPI_SNAPSHOTS, topics.ALERTS)
        for table in (t.stored_table() for t in shown):
            count = store.query_value(f"SELECT count() FROM {table} FINAL")  # noqa: S608
            summary.add_row(f"rows in {table}", str(count))
        # Stopping runs the KPI service's last breakdown pass and snapshot flush.
        closing = clock.mark()
    clock.record({"phase": "close pipeline"}, closing)
    summary.add_row("data directory", str(common_settings().data_dir.absolute()))
    summary.add_row("elapsed", f"{time.perf_counter() - clock.started:.1f} s")
    console.print(summary)
    console.print("reports:")
    for path in paths:
        console.print(f"  {rich_literal(path)}")
    return summary
