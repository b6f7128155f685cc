"""Report forecasts of daily KPIs through :mod:`pulse_shared.forecasting` (one module for
every forecast Pulse shows), and last period's forecast checked against what happened.

- Per day: the module's point forecast (AutoETS or seasonal naive with a weekly season,
  chosen per series, continuing from the last actual) with 80 % and 95 % intervals.
- Flow KPIs (spend, revenue, leads) land as the **sum** over the horizon; stock KPIs
  (MRR) as the **last day's** value and interval.
- The interval of a sum: we add the per-step bounds. That is conservative (it assumes
  every day misses on the same side). Measured on generated trend + weekly + random-walk
  series (40 origins, 30-day sums): summed bounds covered 97.5 % (80 % level) / 100 %
  (95 %); statsforecast's path simulator (2.1) gave 47.5 % / 57.5 %, and a covariance
  built from the per-step widths 57.5 % / 67.5 % — both overconfident, because they
  leave out the uncertainty of the fitted trend, which a 30-day sum magnifies. For
  advice a CMO acts on, too wide is the safer error; the report says "conservative".
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from pulse_reporting.domain.model import (
    Fmt,
    ForecastCheck,
    ForecastPoint,
    ForecastSeries,
    TrendPoint,
)
from pulse_shared.forecasting import MAX_HORIZON, MIN_HISTORY, ForecastError, forecast

HORIZON_DAYS = 30
LEVEL, WIDE_LEVEL = 80, 95
SUM_INTERVAL_NOTE = "sum interval = summed daily bounds (conservative)"


def _history(points: Sequence[TrendPoint], last_day: dt.date) -> list[float | None]:
    """Daily values up to ``last_day``, one per day, gaps as None (the module then uses
    the contiguous tail after the last gap)."""
    by_day = {p.day: p.value for p in points if p.day <= last_day}
    if not by_day:
        return []
    first = min(by_day)
    days = (last_day - first).days + 1
    return [by_day.get(first + dt.timedelta(days=i)) for i in range(days)]


def forecast_series(
    kpi: str,
    label: str,
    fmt: Fmt,
    history: Sequence[TrendPoint],
    last_day: dt.date,
    *,
    horizon: int = HORIZON_DAYS,
    interval: float = LEVEL / 100,
    stock: bool = False,
    non_negative: bool = True,
) -> ForecastSeries | None:
    """Forecast ``horizon`` days after ``last_day`` (None with too little history)."""
    values = _history(history, last_day)
    level = round(interval * 100)
    levels = sorted({level, WIDE_LEVEL})
    if len([v for v in values if v is not None]) < MIN_HISTORY:
        return None
    try:
        result = forecast(values, horizon, levels=levels, non_negative=non_negative)
    except ForecastError:
        return None
    points = [
        ForecastPoint(
            day=last_day + dt.timedelta(days=s.step),
            value=s.yhat,
            lower=s.interval(level)[0],
            upper=s.interval(level)[1],
            lower_95=s.interval(WIDE_LEVEL)[0],
            upper_95=s.interval(WIDE_LEVEL)[1],
        )
        for s in result.steps
    ]
    if stock:
        end = points[-1]
        total, lower, upper = end.value, end.lower, end.upper
        lower_95, upper_95 = end.lower_95, end.upper_95
        method = result.model
    else:
        total = sum(p.value for p in points)
        lower, upper = sum(p.lower for p in points), sum(p.upper for p in points)
        lower_95 = sum(p.lower_95 or 0.0 for p in points)
        upper_95 = sum(p.upper_95 or 0.0 for p in points)
        method = f"{result.model}; {SUM_INTERVAL_NOTE}"
    season = ", weekly season" if result.season_length > 1 else ""
    return ForecastSeries(
        kpi=kpi,
        label=label,
        fmt=fmt,
        method=f"{method}{season}",
        aggregate="last" if stock else "sum",
        history_days=result.history_points,
        interval=level / 100,
        points=points,
        total=total,
        total_lower=lower,
        total_upper=upper,
        total_lower_95=lower_95,
        total_upper_95=upper_95,
        horizon_days=horizon,
    )


def forecast_check(
    kpi: str,
    label: str,
    fmt: Fmt,
    history: Sequence[TrendPoint],
    start: dt.date,
    last_day: dt.date,
    *,
    stock: bool = False,
) -> ForecastCheck | None:
    """What the forecast made at the end of the day before ``start`` said about
    ``start``..``last_day``, beside what happened (None without enough data on either
    side: every day of the period must have an actual)."""
    days = (last_day - start).days + 1
    actual_by_day = {p.day: p.value for p in history if start <= p.day <= last_day}
    actuals = [actual_by_day.get(start + dt.timedelta(days=i)) for i in range(days)]
    if any(v is None for v in actuals) or not 1 <= days <= MAX_HORIZON:
        return None
    series = forecast_series(
        kpi, label, fmt, history, start - dt.timedelta(days=1), horizon=days, stock=stock
    )
    if series is None:
        return None
    known = [v for v in actuals if v is not None]
    actual = known[-1] if stock else sum(known)
    return ForecastCheck(
        kpi=kpi,
        label=label,
        fmt=fmt,
        method=series.method,
        aggregate=series.aggregate,
        days=days,
        forecast=series.total,
        lower=series.total_lower,
        upper=series.total_upper,
        lower_95=series.total_lower_95,
        upper_95=series.total_upper_95,
        actual=actual,
        inside=series.total_lower <= actual <= series.total_upper,
        error_pct=(series.total - actual) / actual if actual else None,
    )
