"""The daily briefing: yesterday against the same weekday a week earlier, alerts, and month
to date pacing — short, read first thing (no attribution comparison, no forecasts beyond
the month's landing).

Pure: no I/O, no clock. KPI values are taken from day-grain ``kpi_values`` as they are;
month to date comes from :func:`pulse_reporting.domain.to_date.period_to_date` (the same
numbers as the dashboard's to-date panel), budgets from the month-grain budget KPIs.
Missing is not zero: a day without source data shows n/a with the reason.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from pulse_reporting.domain.assemble import (
    Coverage,
    KpiTable,
    _budget,
    _data_as_of,
    _measured,
    alert_in_period,
    delta,
    footnotes,
    missing_reason,
    model_header,
    report_id,
    unavailable,
)
from pulse_reporting.domain.kpis import KpiSpec
from pulse_reporting.domain.kpis import spec as kpi_spec
from pulse_reporting.domain.model import (
    AlertRecord,
    BriefingSection,
    Delta,
    KpiTile,
    KpiValue,
    ModelComparison,
    MrrBridge,
    PacingRow,
    Report,
    ReportMeta,
    Trend,
    TrendPoint,
)
from pulse_reporting.domain.periods import Period, ReportKind, period_complete
from pulse_reporting.domain.to_date import period_to_date
from pulse_shared.events import Grain
from pulse_shared.periods import period_of

#: The briefing's KPIs, in order: spend, leads, pipeline, won revenue (attributed under
#: the report's model), new MRR, CAC (undefined on a day without new customers: n/a).
BRIEFING_KPIS: tuple[KpiSpec, ...] = tuple(kpi_spec(k) for k in (
    "spend", "leads", "attributed_pipeline", "attributed_revenue", "mrr_new", "cac",
))
#: Days of the sparkline panel (the briefing's one chart).
SPARK_DAYS = 14
#: Day-grain history read for the month-to-date landing forecast (before the month).
HISTORY_DAYS = 120


def compared_day(day: dt.date) -> dt.date:
    """The same weekday a week earlier: what a day is compared with (weekly rhythm: a
    Monday is not comparable with a Sunday)."""
    return day - dt.timedelta(days=7)


def year_ago_day(day: dt.date) -> dt.date:
    """The same weekday 52 weeks earlier."""
    return day - dt.timedelta(days=364)


def day_period(day: dt.date) -> Period:
    return period_of(day, Grain.DAY)


@dataclass
class BriefingInputs:
    """Everything the storage layer read for one daily briefing."""

    period: Period  # the day
    model: str
    kpis: Sequence[KpiValue]  # day grain: the day, a week earlier, 52 weeks earlier
    budget_kpis: Sequence[KpiValue] = ()  # month-grain budget KPIs of the day's month
    alerts: Sequence[AlertRecord] = ()  # firing alerts on the day's data
    alerts_resolved: Sequence[AlertRecord] = ()  # alerts resolved during the day
    # day-grain values (kpi → days) from HISTORY_DAYS before the month to the day
    daily: Mapping[str, Sequence[TrendPoint]] = field(default_factory=dict)
    coverage: Coverage | None = None
    notes: list[str] = field(default_factory=list)


def _tiles(table: KpiTable, period: Period, model: str, coverage: Coverage | None) -> list[KpiTile]:
    tiles: list[KpiTile] = []
    day = period.label
    bases = (day_period(compared_day(period.start)), day_period(year_ago_day(period.start)))
    for spec in BRIEFING_KPIS:
        value = table.get(spec.kpi, day, model=model)
        if not _measured(value) and missing_reason(coverage, spec.kpi, period) is not None:
            value = None  # no source data that day: not $0
        comparisons: list[Delta] = []
        for base in bases:
            previous = table.get(spec.kpi, base.label, model=model)
            reason = missing_reason(coverage, spec.kpi, base)
            if _measured(previous):
                reason = None  # a stored measurement: the raw rows may have expired
            comparisons.append(
                unavailable(previous, reason) if reason and value is not None
                else delta(value, previous, spec.better)
            )
        tiles.append(KpiTile(
            kpi=table.resolved_name(spec.kpi, day, model), label=spec.label, fmt=spec.fmt,
            better=spec.better, value=value, pop=comparisons[0], yoy=comparisons[1],
        ))
    return tiles


def _pacing(inputs: BriefingInputs) -> tuple[str, list[PacingRow]]:
    """Month to date through the briefing day against the same days of the previous month
    (empty on the month's last day: the month is complete, the monthly report has it)."""
    day = inputs.period.start
    month = period_of(day, Grain.MONTH)
    if day == month.last_day:
        return (f"{month.label} is complete with this day: its monthly report has the whole "
                "month against the previous one"), []
    to_date = period_to_date(
        "month", day + dt.timedelta(days=1), inputs.daily, model=inputs.model,
        coverage=inputs.coverage,
    )
    rows = [
        PacingRow(
            kpi=k.kpi, label=k.label, fmt=k.fmt, value=k.value,
            previous=k.comparison.previous, change_pct=k.comparison.change_pct,
            tone=k.comparison.tone,
            landing=k.landing.value if k.landing else None,
            landing_lower=k.landing.lower if k.landing else None,
            landing_upper=k.landing.upper if k.landing else None,
            unavailable=k.unavailable or k.comparison.unavailable,
        )
        for k in to_date.kpis
    ]
    return to_date.title, rows


def _sparklines(inputs: BriefingInputs, table_names: Mapping[str, str]) -> list[Trend]:
    """The last :data:`SPARK_DAYS` days of each briefing KPI that has day values."""
    last = inputs.period.start
    first = last - dt.timedelta(days=SPARK_DAYS - 1)
    out: list[Trend] = []
    for spec in BRIEFING_KPIS:
        name = table_names[spec.kpi]
        points = sorted(
            (p for p in inputs.daily.get(name, ()) if first <= p.day <= last),
            key=lambda p: p.day,
        )
        if any(p.value is not None for p in points):
            out.append(Trend(kpi=name, label=spec.label, fmt=spec.fmt, points=points))
    return out


def assemble_briefing(inputs: BriefingInputs, now: dt.datetime) -> Report:
    """The daily briefing of ``inputs.period`` (a day) under ``inputs.model``."""
    period = inputs.period
    day = period.start
    table = KpiTable(inputs.kpis)
    tiles = _tiles(table, period, inputs.model, inputs.coverage)
    names = {spec.kpi: tile.kpi for spec, tile in zip(BRIEFING_KPIS, tiles, strict=True)}
    pacing_title, pacing = _pacing(inputs)
    kind = ReportKind.DAILY.value
    today = now.date()
    notes = list(inputs.notes)
    if not any(r.period == period.label for r in inputs.kpis):
        notes.append(f"No KPI values found for day {period.label}; has the KPI service run?")
    meta = ReportMeta(
        report_id=report_id(kind, period.label, inputs.model, now),
        kind=kind,
        period=period.label,
        period_start=day,
        period_end=day,
        grain=Grain.DAY.value,
        previous_period=compared_day(day).isoformat(),
        year_ago_period=year_ago_day(day).isoformat(),
        model=inputs.model,
        generated_at=now,
        title=f"Daily marketing briefing {period.label} ({day.strftime('%A')})",
        complete=period_complete(period, today),
        data_as_of=_data_as_of(inputs.coverage, period, today),
        **model_header(inputs.model),
    )
    return Report(
        meta=meta,
        headline=tiles,
        mrr_bridge=MrrBridge(starting=None, new=None, expansion=None, reactivation=None,
                             contraction=None, churn=None, net_new=None, ending=None),
        channels=[], campaigns=[], top_campaigns=[], bottom_campaigns=[],
        model_comparison=ModelComparison(models=[], rows=[]),
        funnel=[],
        budget=_budget(inputs.budget_kpis),
        paths=[],
        alerts=sorted(
            (a for a in inputs.alerts if alert_in_period(a, period)),
            key=lambda a: (a.data_time or a.starts_at, a.alert_id),
        ),
        trends=_sparklines(inputs, names),
        notes=notes,
        footnotes=[f for f in footnotes() if f.kpi in names],
        briefing=BriefingSection(
            day=day, compared_with=compared_day(day), month=period_of(day, Grain.MONTH).label,
            pacing_title=pacing_title, pacing=pacing,
            alerts_resolved=sorted(inputs.alerts_resolved,
                                   key=lambda a: (a.ends_at or a.starts_at, a.alert_id)),
        ),
    )


__all__ = [
    "BRIEFING_KPIS", "HISTORY_DAYS", "BriefingInputs", "assemble_briefing", "compared_day",
    "day_period", "year_ago_day",
]
