"""Period to date: the running week/month/quarter against the same days of the previous one,
and where it is forecast to land.

On 3 December, December has two complete days. Comparing them with the whole of November
reads "spend −92 %"; comparing them with 1–2 November is like for like. This module builds
that comparison from day-grain ``kpi_values`` rows (never recomputing a KPI's definition:
flows are summed over days, ratios are recomputed from those sums exactly as the KPI
service defines them, e.g. ROAS = attributed revenue / spend, CPL = spend / leads).

- *To date*: complete days only (days before ``today``), days 1..N of the running period,
  against days 1..N of the previous period (N clipped to that period's length: 31 March
  days to date compare with the 28 days of February).
- *Landing*: actual to date + the :mod:`pulse_shared.forecasting` forecast of the days
  left (through :func:`pulse_reporting.domain.forecast.forecast_series`), with its 80 %
  interval (summed daily bounds, conservative). A ratio's landing is the ratio of its
  parts' landings; its interval pairs the parts' opposite bounds (also conservative).
- Missing is not zero: a window without source data (per ``coverage``, or without a single
  day row) is ``None`` with the reason, never 0 or an arrow.

Pure: no I/O, no clock (``today`` is passed in).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict

from pulse_reporting.domain.assemble import Coverage, delta
from pulse_reporting.domain.forecast import LEVEL, forecast_series
from pulse_reporting.domain.kpis import spec as kpi_spec
from pulse_reporting.domain.model import Better, Delta, Fmt, Tone, TrendPoint
from pulse_reporting.domain.periods import BY_GRAIN, Period, ReportKind, containing
from pulse_shared.attribution_models import DEFAULT_MODEL
from pulse_shared.forecasting import MAX_HORIZON

GRAIN_KINDS: dict[str, ReportKind] = {grain.value: kind for grain, kind in BY_GRAIN.items()}
ATTRIBUTED = frozenset({"attributed_revenue"})
_EPSILON = 1e-9


@dataclass(frozen=True)
class FlowSpec:
    """A KPI summed over days."""

    kpi: str
    label: str
    fmt: Fmt
    better: Better
    sources: tuple[str, ...]  # source tables (see assemble.KPI_SOURCES)


@dataclass(frozen=True)
class RatioSpec:
    """A KPI recomputed as numerator sum / denominator sum."""

    kpi: str
    label: str
    fmt: Fmt
    better: Better
    numerator: str
    denominator: str


_ATTR_SOURCES = ("touchpoints", "pipeline_events")


def _flow_spec(kpi: str, sources: tuple[str, ...]) -> FlowSpec:
    shown = kpi_spec(kpi)  # label, format and direction from the catalog
    return FlowSpec(kpi, shown.label, shown.fmt, shown.better, sources)


def _ratio_spec(kpi: str, numerator: str, denominator: str) -> RatioSpec:
    shown = kpi_spec(kpi)
    return RatioSpec(kpi, shown.label, shown.fmt, shown.better, numerator, denominator)


FLOWS: tuple[FlowSpec, ...] = (
    _flow_spec("spend", ("spend",)),
    _flow_spec("leads", ("pipeline_events",)),
    _flow_spec("new_customers", ("subscriptions",)),
    _flow_spec("attributed_revenue", _ATTR_SOURCES),
)
RATIOS: tuple[RatioSpec, ...] = (
    _ratio_spec("roas", "attributed_revenue", "spend"),
    _ratio_spec("cpl", "spend", "leads"),
    _ratio_spec("cac", "spend", "new_customers"),
)


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Landing(_Model):
    """Forecast value at period end: actual to date + forecast of the days left."""

    value: float
    lower: float | None  # at ``level`` %; None when no interval can be given
    upper: float | None
    level: int
    actual_to_date: float | None
    forecast_days: int
    method: str


class ToDateKpi(_Model):
    kpi: str  # the kpi_values name read (a ratio: its own name, e.g. roas__linear)
    label: str
    fmt: Fmt
    better: Better
    value: float | None  # days 1..N of the running period
    comparison: Delta  # against days 1..N of the previous period
    previous_total: float | None  # the whole previous period (what the landing replaces)
    landing: Landing | None
    landing_unavailable: str | None = None
    unavailable: str | None = None  # why ``value`` is None


class ToDate(_Model):
    grain: str
    period: str
    period_start: dt.date
    period_end: dt.date  # last day, inclusive
    period_days: int
    complete: bool  # always False: a running period
    as_of: dt.date | None  # last complete day counted (None: none yet)
    days: int  # N: complete days to date
    previous_period: str
    previous_start: dt.date
    previous_end: dt.date | None  # last day of the compared window (None: empty window)
    previous_days: int  # N clipped to the previous period's length
    model: str
    title: str  # "Month to date (2 days) vs the same 2 days of 2026-11"
    kpis: list[ToDateKpi]
    notes: list[str]


def daily_name(kpi: str, model: str) -> str:
    """The day-grain kpi_values name of ``kpi`` under ``model``."""
    if kpi in ATTRIBUTED:
        return f"{kpi}__{model}"
    return kpi


def daily_names(model: str) -> list[str]:
    """Every day-grain KPI name :func:`period_to_date` reads (un-suffixed attribution KPIs
    as a fallback for the default model, which the KPI service writes without suffix)."""
    names = [daily_name(f.kpi, model) for f in FLOWS]
    if model == DEFAULT_MODEL:
        names += [f.kpi for f in FLOWS if f.kpi in ATTRIBUTED]
    return names


def running_period(grain: str, today: dt.date) -> Period:
    """The period of ``grain`` containing ``today`` (not complete until it ends)."""
    if grain not in GRAIN_KINDS:
        raise ValueError(f"grain must be one of {', '.join(GRAIN_KINDS)}, not {grain!r}")
    return containing(GRAIN_KINDS[grain], today)


def _title(grain: str, days: int, previous_days: int, previous: str) -> str:
    def count(n: int) -> str:
        return f"{n} day" if n == 1 else f"{n} days"

    return (f"{grain.capitalize()} to date ({count(days)}) vs the same "
            f"{count(previous_days)} of {previous}")


def _window_reason(
    coverage: Coverage | None, sources: Sequence[str], start: dt.date, last: dt.date,
    label: str,
) -> str | None:
    """Why the days ``start``..``last`` have no data for a KPI of ``sources`` (None: they
    have some)."""
    if coverage is None:  # unknown coverage: trust the values
        return None
    spans = [coverage.get(source) for source in sources]
    first = max((s[0] for s in spans if s is not None), default=None)
    last_data = min((s[1] for s in spans if s is not None), default=None)
    if None in spans or first is None or last_data is None or first > last_data:
        return f"no data for {label}"
    if last < first or start > last_data:
        return f"no data for {label}"
    if start < first:
        return f"no data before {first.isoformat()}"
    return None


def _sum(by_day: Mapping[dt.date, float | None], start: dt.date, days: int) -> float | None:
    """Sum over the window; None when not a single day has a row (nothing measured)."""
    values = [by_day.get(start + dt.timedelta(days=i)) for i in range(days)]
    known = [v for v in values if v is not None]
    return sum(known) if known else None


def _series(daily: Mapping[str, Sequence[TrendPoint]], kpi: str, model: str) -> list[TrendPoint]:
    points = daily.get(daily_name(kpi, model)) or ()
    if not points and kpi in ATTRIBUTED and model == DEFAULT_MODEL:
        points = daily.get(kpi) or ()
    return sorted(points, key=lambda p: p.day)


def _stored_measurement(reason: str | None, value: float | None) -> bool:
    """A non-zero sum over a window the raw tables do not cover at all is a measurement
    whose raw rows expired (or were loaded as KPI values only), not an empty sum: trusted,
    as the report does. A window only partly covered ("no data before …") stays n/a."""
    return (reason or "").startswith("no data for ") and value is not None and abs(
        value) > _EPSILON


def _ratio(num: float | None, den: float | None) -> float | None:
    if num is None or den is None or abs(den) < _EPSILON:
        return None
    return num / den


@dataclass
class _Flow:
    spec_kpi: str
    name: str
    value: float | None
    previous: float | None
    previous_total: float | None
    landing: Landing | None
    landing_reason: str | None
    value_reason: str | None
    base_reason: str | None


def period_to_date(
    grain: str,
    today: dt.date,
    daily: Mapping[str, Sequence[TrendPoint]],
    *,
    model: str = DEFAULT_MODEL,
    coverage: Coverage | None = None,
    level: int = LEVEL,
) -> ToDate:
    """The running period of ``grain`` on ``today`` against the same days of the previous
    one, with each KPI's landing. ``daily``: day-grain values (kpi name → points) covering
    the previous period and the history the forecast needs (90 days is plenty)."""
    period = running_period(grain, today)
    previous = period.previous()
    days = (today - period.start).days  # complete days: today itself is still running
    as_of = today - dt.timedelta(days=1) if days else None
    previous_days = min(days, previous.days)
    previous_end = previous.start + dt.timedelta(days=previous_days - 1) if days else None
    remaining = period.days - days
    notes: list[str] = []
    if not days:
        notes.append(f"No complete day of {period.label} yet: nothing to compare; the "
                     "landing is a forecast of the whole period.")
    window = f"{period.start.isoformat()} – {as_of.isoformat()}" if as_of else period.label
    base_window = (
        f"{previous.start.isoformat()} – {previous_end.isoformat()}" if previous_end
        else previous.label
    )

    flows: dict[str, _Flow] = {}
    for spec in FLOWS:
        points = _series(daily, spec.kpi, model)
        name = daily_name(spec.kpi, model)
        if not daily.get(name) and daily.get(spec.kpi) and spec.kpi in ATTRIBUTED:
            name = spec.kpi  # the default model's values are written without suffix
        if not points:
            absent = _window_reason(
                coverage, spec.sources, previous.start, today, f"{previous.label} – {window}"
            ) or f"no daily {name} values (has the KPI service computed it?)"
            flows[spec.kpi] = _Flow(spec.kpi, name, None, None, None, None, absent, absent,
                                    absent)
            continue
        by_day = {p.day: p.value for p in points}
        value_reason = (
            _window_reason(coverage, spec.sources, period.start, as_of, window)
            if as_of else "no complete day yet"
        )
        value = _sum(by_day, period.start, days) if days else None
        if value is None and value_reason is None:
            value_reason = f"no data for {window}"
        if value_reason and (value is None or abs(value) < _EPSILON):
            value = None  # an empty sum, not a measurement
        base_reason = (
            _window_reason(coverage, spec.sources, previous.start, previous_end, base_window)
            if previous_end else "no complete day yet"
        )
        base = _sum(by_day, previous.start, previous_days) if previous_days else None
        if base is None and base_reason is None:
            base_reason = f"no data for {base_window}"
        if _stored_measurement(base_reason, base):
            base_reason = None
        if base_reason:
            base = None
        total = _sum(by_day, previous.start, previous.days)
        total_reason = _window_reason(
            coverage, spec.sources, previous.start, previous.last_day, previous.label)
        if total_reason and not _stored_measurement(total_reason, total):
            total = None
        landing, landing_reason = _landing(
            spec, name, points, period, days, value, remaining, as_of, level)
        flows[spec.kpi] = _Flow(spec.kpi, name, value, base, total, landing, landing_reason,
                                value_reason if value is None else None, base_reason)

    out: list[ToDateKpi] = []
    for spec in FLOWS:
        f = flows[spec.kpi]
        out.append(ToDateKpi(
            kpi=f.name, label=spec.label, fmt=spec.fmt, better=spec.better,
            value=f.value,
            comparison=_compare(f.value, f.previous, spec.better, f.base_reason),
            previous_total=f.previous_total,
            landing=f.landing,
            landing_unavailable=f.landing_reason if f.landing is None else None,
            unavailable=f.value_reason,
        ))
    for ratio in RATIOS:
        num, den = flows[ratio.numerator], flows[ratio.denominator]
        name = f"{ratio.kpi}__{model}" if ratio.numerator in ATTRIBUTED else ratio.kpi
        value = _ratio(num.value, den.value)
        value_reason = None
        if value is None:
            value_reason = num.value_reason or den.value_reason or (
                f"{den.name} is 0 to date" if den.value is not None else "n/a")
        base_reason = num.base_reason or den.base_reason
        landing = _ratio_landing(num.landing, den.landing, level)
        out.append(ToDateKpi(
            kpi=name, label=ratio.label, fmt=ratio.fmt, better=ratio.better,
            value=value,
            comparison=_compare(value, _ratio(num.previous, den.previous), ratio.better,
                                base_reason),
            previous_total=_ratio(num.previous_total, den.previous_total),
            landing=landing,
            landing_unavailable=None if landing else (
                num.landing_reason or den.landing_reason or f"{den.name} lands at 0"),
            unavailable=value_reason,
        ))
    return ToDate(
        grain=grain,
        period=period.label,
        period_start=period.start,
        period_end=period.last_day,
        period_days=period.days,
        complete=False,
        as_of=as_of,
        days=days,
        previous_period=previous.label,
        previous_start=previous.start,
        previous_end=previous_end,
        previous_days=previous_days,
        model=model,
        title=_title(grain, days, previous_days, previous.label),
        kpis=out,
        notes=notes,
    )


def _compare(current: float | None, previous: float | None, better: Better,
             reason: str | None) -> Delta:
    if reason and current is not None:
        return Delta(previous=None, change=None, change_pct=None, tone=Tone.NEUTRAL,
                     unavailable=reason)
    return delta(current, previous, better)


def _landing(
    spec: FlowSpec, name: str, points: Sequence[TrendPoint], period: Period, days: int,
    actual: float | None, remaining: int, as_of: dt.date | None, level: int,
) -> tuple[Landing | None, str | None]:
    last_day = as_of or period.start - dt.timedelta(days=1)
    if remaining > MAX_HORIZON:
        return None, f"{remaining} days left is beyond the {MAX_HORIZON}-day forecast horizon"
    if days and actual is None:
        return None, "no actual to date"
    series = forecast_series(name, spec.label, spec.fmt, points, last_day,
                             horizon=remaining, interval=level / 100)
    if series is None:
        return None, f"too little daily history of {name} up to {last_day.isoformat()}"
    base = actual or 0.0
    return Landing(
        value=base + series.total,
        lower=base + series.total_lower,
        upper=base + series.total_upper,
        level=level,
        actual_to_date=actual,
        forecast_days=remaining,
        method=series.method,
    ), None


def _ratio_landing(num: Landing | None, den: Landing | None, level: int) -> Landing | None:
    value = _ratio(num.value if num else None, den.value if den else None)
    if value is None or num is None or den is None:
        return None
    lower = _ratio(num.lower, den.upper)
    upper = _ratio(num.upper, den.lower)
    return Landing(
        value=value, lower=lower, upper=upper, level=level,
        actual_to_date=_ratio(num.actual_to_date, den.actual_to_date),
        forecast_days=num.forecast_days,
        method="ratio of the landings; interval from their opposite bounds (conservative)",
    )
