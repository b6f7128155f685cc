"""Produce one report: read → assemble (pure) → render every format → record → announce."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from pulse_reporting.domain.annual import AnnualInputs, assemble_annual
from pulse_reporting.domain.assemble import (
    BUDGET_KPIS,
    HISTORY_DAYS,
    ReportInputs,
    assemble_report,
    channel_kpi_names,
    daily_kpi_names,
)
from pulse_reporting.domain.briefing import (
    BRIEFING_KPIS,
    BriefingInputs,
    assemble_briefing,
    compared_day,
    year_ago_day,
)
from pulse_reporting.domain.briefing import HISTORY_DAYS as BRIEFING_HISTORY_DAYS
from pulse_reporting.domain.cohorts import cohort_window
from pulse_reporting.domain.mmm import KINDS_WITH_MODEL
from pulse_reporting.domain.model import AlertRecord, Report
from pulse_reporting.domain.periods import (
    Period,
    ReportKind,
    YearPeriod,
    containing,
    overlapping_labels,
    parse_period,
)
from pulse_reporting.domain.to_date import daily_names as to_date_daily_names
from pulse_reporting.insights import build_insights, insights_for, read_insights
from pulse_reporting.metrics import (
    GENERATION_SECONDS,
    LAST_REPORT_TIMESTAMP,
    REPORT_FAILURES,
    REPORT_FILES,
    REPORTS_GENERATED,
)
from pulse_reporting.render.exports import render_csv, render_json
from pulse_reporting.render.markdown import render_markdown
from pulse_reporting.settings import ALL_FORMATS
from pulse_reporting.storage import ReportingStorage
from pulse_shared.attribution_models import DEFAULT_MODEL, MODEL_NAMES
from pulse_shared.bus import Bus
from pulse_shared.events import Grain, ReportReady
from pulse_shared.logging import get_logger
from pulse_shared.store import Store
from pulse_shared.topics import REPORT_READY

if TYPE_CHECKING:
    from pulse_reporting.render.drawing import Chart

log = get_logger(__name__)

Progress = Callable[[str, int, int], None]
"""``progress(step description, steps done, total steps)``."""


class ReportError(ValueError):
    """Invalid report request (unknown format, bad period, …)."""


@dataclass
class ReportResult:
    report: Report
    paths: dict[str, Path]  # format → file (csv → directory of one file per table)
    seconds: float
    event: ReportReady | None = None
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def report_id(self) -> str:
        return self.report.meta.report_id


def report_dir(out_dir: Path, kind: str, period: str, model: str) -> Path:
    suffix = "" if model == DEFAULT_MODEL else f"-{model}"
    return out_dir / kind / f"{period}{suffix}"


def _budget_periods(period: Period) -> tuple[list[str], list[str]]:
    """(grains, period labels) whose budget KPIs describe ``period``."""
    if ReportKind.of(period) in (ReportKind.DAILY, ReportKind.WEEKLY):
        return ["month"], [containing(ReportKind.MONTHLY, period.last_day).label]
    if ReportKind.of(period) is ReportKind.MONTHLY:
        return ["month"], [period.label]
    return ["quarter", "month"], [period.label, *period.months()]


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    return path


def normalise_formats(formats: Sequence[str] | str) -> list[str]:
    items = [formats] if isinstance(formats, str) else list(formats)
    out: list[str] = []
    for item in items:
        for part in item.split(","):
            fmt = part.strip().lower()
            if fmt == "markdown":
                fmt = "md"
            if fmt == "all":
                out.extend(f for f in ALL_FORMATS if f not in out)
                continue
            if not fmt:
                continue
            if fmt not in ALL_FORMATS:
                raise ReportError(f"unknown format {fmt!r}; choose from {', '.join(ALL_FORMATS)}")
            if fmt not in out:
                out.append(fmt)
    if not out:
        raise ReportError("no output format given")
    return out


def read_inputs(
    storage: ReportingStorage,
    period: Period,
    model: str,
    *,
    path_model: str = "linear",
    path_milestone: str = "won",
    step: Callable[[str], None] = lambda _: None,
    timings: dict[str, float] | None = None,
) -> ReportInputs:
    """All queries one report needs."""
    timings = timings if timings is not None else {}

    def timed(name: str) -> Callable[[], None]:
        started = time.perf_counter()

        def done() -> None:
            timings[name] = time.perf_counter() - started

        return done

    prev, yoy = period.previous(), period.year_ago()
    step("Reading KPI values")
    done = timed("kpis")
    kpis = storage.kpis(
        period.grain, [(p.label, p.start) for p in (period, prev, yoy)]
    )
    done()
    step("Reading budgets and pacing")
    done = timed("budget")
    grains, labels = _budget_periods(period)
    budget = storage.kpis_by_name(BUDGET_KPIS, grains, labels)
    if ReportKind.of(period) is ReportKind.QUARTERLY and any(b.grain == "quarter" for b in budget):
        budget = [b for b in budget if b.grain == "quarter"]
    done()
    step("Reading alerts")
    done = timed("alerts")
    alerts = storage.alerts(period.start, period.end, periods=overlapping_labels(period))
    done()
    step("Reading conversion paths")
    done = timed("paths")
    paths = storage.paths(path_model, path_milestone, period.start, period.end)
    done()
    step("Reading daily trends")
    done = timed("daily")
    # enough history before the period's start too: last period's forecast is re-made
    # from the data up to then and checked against this period's actuals
    history_start = min(period.end, period.start) - dt.timedelta(days=HISTORY_DAYS)
    daily = storage.daily(daily_kpi_names(model), history_start, period.end)
    done()
    step("Reading daily values per channel")
    done = timed("daily_by_channel")
    daily_by_channel = storage.daily_by_dimension(
        channel_kpi_names(model), "channel", history_start, period.end
    )
    done()
    step("Reading data coverage")
    done = timed("coverage")
    coverage = storage.coverage()
    done()
    mmm = None
    if ReportKind.of(period) in KINDS_WITH_MODEL:
        step("Reading marketing mix model results")
        done = timed("mmm")
        mmm = storage.mmm_inputs(period)
        done()
    cohort_ledger = None
    if ReportKind.of(period) is not ReportKind.WEEKLY:
        step("Reading the subscription ledger of the cohorts")
        done = timed("cohort_ledger")
        cohort_ledger = storage.cohort_ledger(*cohort_window(period))
        done()
    return ReportInputs(
        period=period, model=model, kpis=kpis, budget_kpis=budget, alerts=alerts,
        paths=paths, daily=daily, coverage=coverage, daily_by_channel=daily_by_channel,
        mmm=mmm, cohort_ledger=cohort_ledger,
    )


# Alerts resolved on a day (the daily briefing): ``ends_at`` is when the alerts service
# resolved them.
_RESOLVED_ALERTS_SQL = """
SELECT alert_id, rule, state, severity, kpi, labels, annotations, value, threshold,
       starts_at, ends_at
FROM alert_events FINAL
WHERE state = 'resolved'
  AND ends_at IS NOT NULL AND toDate(ends_at, 'UTC') = {day:Date}
ORDER BY ends_at, alert_id
LIMIT {limit:UInt32}
"""


def _resolved_alerts(storage: ReportingStorage, day: Period, limit: int = 200) -> list[AlertRecord]:
    rows = storage.store.query(_RESOLVED_ALERTS_SQL, {"day": day.start, "limit": limit})
    return [
        AlertRecord(
            alert_id=r["alert_id"], rule=r["rule"], state=r["state"], severity=r["severity"],
            kpi=r["kpi"], labels=dict(r["labels"] or {}),
            summary=(r["annotations"] or {}).get("summary", ""),
            value=r["value"], threshold=r["threshold"], starts_at=r["starts_at"],
            ends_at=r["ends_at"], period=(r["annotations"] or {}).get("period", ""),
        )
        for r in rows
    ]


def read_briefing_inputs(
    storage: ReportingStorage, period: Period, model: str,
    step: Callable[[str], None] = lambda _: None,
) -> BriefingInputs:
    """All queries a daily briefing needs (``period``: the day)."""
    day = period.start
    bases = [containing(ReportKind.DAILY, d) for d in (compared_day(day), year_ago_day(day))]
    step("Reading the day's KPI values")
    kpis = storage.kpis(Grain.DAY.value, [(p.label, p.start) for p in (period, *bases)])
    step("Reading budgets and pacing")
    grains, labels = _budget_periods(period)
    budget = storage.kpis_by_name(BUDGET_KPIS, grains, labels)
    step("Reading alerts")
    alerts = storage.alerts(period.start, period.end, periods=overlapping_labels(period))
    resolved = _resolved_alerts(storage, period)
    step("Reading daily values")
    month_start = containing(ReportKind.MONTHLY, day).start
    history_start = min(month_start - dt.timedelta(days=BRIEFING_HISTORY_DAYS),
                        day - dt.timedelta(days=14))
    names = sorted({
        *to_date_daily_names(model),
        *(name for s in BRIEFING_KPIS for name in (s.kpi, f"{s.kpi}__{model}")),
    })
    daily = storage.daily(names, history_start, period.end)
    step("Reading data coverage")
    return BriefingInputs(
        period=period, model=model, kpis=kpis, budget_kpis=budget, alerts=alerts,
        alerts_resolved=resolved, daily=daily, coverage=storage.coverage(),
    )


def read_annual_inputs(
    storage: ReportingStorage, period: YearPeriod, model: str,
    step: Callable[[str], None] = lambda _: None,
) -> AnnualInputs:
    """All queries an annual report needs: the months of the year and the year before."""
    months = [*period.previous().month_periods(), *period.month_periods()]
    step("Reading monthly KPI values")
    kpis = storage.kpis(Grain.MONTH.value, [(m.label, m.start) for m in months])
    step("Reading daily trends")
    daily = storage.daily(
        daily_kpi_names(model), period.last_day - dt.timedelta(days=HISTORY_DAYS * 2), period.end
    )
    step("Reading data coverage")
    coverage = storage.coverage()
    step("Reading marketing mix model results")
    mmm = storage.mmm_inputs(period)
    step("Reading the subscription ledger of the cohorts")
    ledger = storage.cohort_ledger(*cohort_window(period))
    return AnnualInputs(
        period=period, model=model, kpis=kpis, coverage=coverage, daily=daily, mmm=mmm,
        cohort_ledger=ledger,
    )


def produce_report(
    store: Store,
    kind: ReportKind | str,
    period: Period | str,
    formats: Sequence[str] | str = ("md",),
    out_dir: Path | str = Path("reports"),
    model: str = DEFAULT_MODEL,
    *,
    writer: Store | None = None,
    now: dt.datetime | None = None,
    progress: Progress | None = None,
    path_model: str = "linear",
    path_milestone: str = "won",
    trigger: str = "on_demand",
) -> ReportResult:
    """Synchronous core of :func:`generate_report` (everything but the bus)."""
    started = time.perf_counter()
    kind = ReportKind(kind)
    fmts = normalise_formats(formats)
    if model not in MODEL_NAMES:
        raise ReportError(
            f"unknown attribution model {model!r}; choose from {', '.join(MODEL_NAMES)}"
        )
    the_period = parse_period(kind, period) if isinstance(period, str) else period
    if ReportKind.of(the_period) is not kind:
        raise ReportError(f"period {the_period} is not {kind.value}")
    now = now or dt.datetime.now(dt.UTC)
    storage = ReportingStorage(store, writer)
    if kind in (ReportKind.DAILY, ReportKind.ANNUAL):  # 5 reads, assembly, charts, record
        total = 5 + 2 + len(fmts) + 1
    else:
        total = 9 + len(fmts) + 1 + (0 if kind is ReportKind.WEEKLY else 1)
    total += 1 if insights_for(kind) else 0
    counter = [0]

    def step(description: str) -> None:
        if progress is not None:
            progress(description, counter[0], total)
        counter[0] += 1

    log_ctx = {"kind": kind.value, "period": the_period.label, "model": model}
    try:
        timings: dict[str, float] = {}
        t0 = time.perf_counter()
        if kind is ReportKind.DAILY:
            briefing = read_briefing_inputs(storage, the_period, model, step=step)
            timings["read"] = time.perf_counter() - t0
            step("Assembling report")
            t0 = time.perf_counter()
            report = assemble_briefing(briefing, now)
        elif isinstance(the_period, YearPeriod):
            annual = read_annual_inputs(storage, the_period, model, step=step)
            timings["read"] = time.perf_counter() - t0
            step("Assembling report")
            t0 = time.perf_counter()
            report = assemble_annual(annual, now)
        else:
            inputs = read_inputs(
                storage, the_period, model, path_model=path_model,
                path_milestone=path_milestone, step=step, timings=timings,
            )
            step("Assembling report")
            t0 = time.perf_counter()
            report = assemble_report(inputs, now)
        timings["assemble"] = time.perf_counter() - t0
        if insights_for(kind):
            step("Reading and assembling insight sections")
            t0 = time.perf_counter()
            insight_inputs = read_insights(storage, the_period, kind)
            report = report.model_copy(update={
                "insights": build_insights(insight_inputs, the_period, kind, now),
            })
            timings["insights"] = time.perf_counter() - t0
        directory = report_dir(Path(out_dir), kind.value, the_period.label, model)
        paths: dict[str, Path] = {}
        rendered = None
        if "html" in fmts or "pdf" in fmts:
            step("Drawing charts")
            t0 = time.perf_counter()
            from pulse_reporting.render.drawing import report_charts

            rendered = report_charts(report)
            timings["charts"] = time.perf_counter() - t0
        for fmt in fmts:
            step(f"Rendering {fmt.upper()}")
            t0 = time.perf_counter()
            paths[fmt] = _render(report, fmt, directory, rendered)
            timings[f"render_{fmt}"] = time.perf_counter() - t0
            REPORT_FILES.labels(kind.value, fmt).inc()
        step("Recording report")
        _record(storage, report, paths, now)
        if progress is not None:
            progress("Done", total, total)
    except Exception:
        REPORT_FAILURES.labels(kind.value, trigger).inc()
        log.exception("report_failed", **log_ctx)
        raise
    seconds = time.perf_counter() - started
    GENERATION_SECONDS.labels(kind.value).observe(seconds)
    REPORTS_GENERATED.labels(kind.value, trigger).inc()
    LAST_REPORT_TIMESTAMP.labels(kind.value).set(now.timestamp())
    log.info(
        "report_generated", report_id=report.meta.report_id, seconds=round(seconds, 3),
        formats=fmts, **log_ctx,
    )
    return ReportResult(report=report, paths=paths, seconds=seconds, timings=timings)


def _render(
    report: Report, fmt: str, directory: Path, rendered: list[Chart] | None = None
) -> Path:
    stem = f"pulse-{report.meta.kind}-{report.meta.period}"
    if fmt == "md":
        return _write(directory / f"{stem}.md", render_markdown(report))
    if fmt == "json":
        return _write(directory / f"{stem}.json", render_json(report))
    if fmt == "csv":
        csv_dir = directory / "csv"
        for name, text in render_csv(report).items():
            _write(csv_dir / f"{name}.csv", text)
        return csv_dir
    if fmt == "html":
        from pulse_reporting.render.html import render_html

        return _write(directory / f"{stem}.html", render_html(report, rendered))
    if fmt == "pdf":
        from pulse_reporting.render.pdf import write_pdf

        path = directory / f"{stem}.pdf"
        path.parent.mkdir(parents=True, exist_ok=True)
        write_pdf(report, path, rendered)
        return path
    raise ReportError(f"unknown format {fmt!r}")


def _size(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.iterdir() if p.is_file())
    return path.stat().st_size


def _record(
    storage: ReportingStorage, report: Report, paths: dict[str, Path], now: dt.datetime
) -> None:
    if storage.writer.readonly:
        log.warning("report_not_recorded", reason="read-only store", report=report.meta.report_id)
        return
    storage.record_reports(
        [
            {
                "report_id": report.meta.report_id,
                "report_kind": report.meta.kind,
                "period": report.meta.period,
                "model": report.meta.model,
                "format": fmt,
                "path": str(path.resolve()),
                "size_bytes": _size(path),
                "created_at": now,
            }
            for fmt, path in paths.items()
        ]
    )


def ready_event(result: ReportResult, base_url: str = "") -> ReportReady:
    meta = result.report.meta
    paths = {
        fmt: (f"{base_url.rstrip('/')}/{p.resolve()}" if base_url else str(p.resolve()))
        for fmt, p in result.paths.items()
    }
    return ReportReady(
        report_id=meta.report_id,
        report_kind=meta.kind,
        period=meta.period,
        paths=paths,
        created_at=meta.generated_at,
    )


async def generate_report(
    store: Store,
    kind: ReportKind | str,
    period: Period | str,
    formats: Sequence[str] | str = ("md",),
    out_dir: Path | str = Path("reports"),
    model: str = DEFAULT_MODEL,
    bus: Bus | None = None,
    *,
    writer: Store | None = None,
    now: dt.datetime | None = None,
    progress: Progress | None = None,
    path_model: str = "linear",
    path_milestone: str = "won",
    trigger: str = "on_demand",
    base_url: str = "",
) -> ReportResult:
    """Produce a report in ``formats`` under ``out_dir``, record it in ``reports`` and,
    with a ``bus``, announce it on ``report.ready.v1``. Blocking work runs off the loop."""
    result = await asyncio.to_thread(
        produce_report, store, kind, period, formats, out_dir, model,
        writer=writer, now=now, progress=progress, path_model=path_model,
        path_milestone=path_milestone, trigger=trigger,
    )
    result.event = ready_event(result, base_url)
    if bus is not None:
        await bus.publish(REPORT_READY, [result.event])
    return result


def generate_report_sync(
    store: Store,
    kind: ReportKind | str,
    period: Period | str,
    formats: Sequence[str] | str = ("md",),
    out_dir: Path | str = Path("reports"),
    model: str = DEFAULT_MODEL,
    **kwargs: object,
) -> ReportResult:
    """:func:`produce_report` for scripts without an event loop (no bus)."""
    result = produce_report(store, kind, period, formats, out_dir, model, **kwargs)  # type: ignore[arg-type]
    result.event = ready_event(result)
    return result
