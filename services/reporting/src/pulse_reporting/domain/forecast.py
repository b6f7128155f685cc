"""30-day forecasts of daily KPIs: ordinary least squares trend with prediction intervals.

Flow KPIs (spend, revenue, leads) are forecast as the 30-day sum; stock KPIs (MRR) as the
value on the 30th day. Intervals are normal-theory OLS prediction intervals, exact for the
sum (the uncertainty of the fitted trend is counted once, not 30 times).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from statistics import NormalDist

from pulse_reporting.domain.model import Fmt, ForecastPoint, ForecastSeries, TrendPoint

HORIZON_DAYS = 30
MIN_HISTORY = 14


def forecast_series(
    kpi: str,
    label: str,
    fmt: Fmt,
    history: Sequence[TrendPoint],
    last_day: dt.date,
    *,
    horizon: int = HORIZON_DAYS,
    interval: float = 0.8,
    stock: bool = False,
    non_negative: bool = True,
) -> ForecastSeries | None:
    """Forecast ``horizon`` days after ``last_day`` from the daily ``history`` (≤ last_day)."""
    points = [(p.day, p.value) for p in history if p.value is not None and p.day <= last_day]
    if len(points) < MIN_HISTORY:
        return None
    xs = [float((day - last_day).days) for day, _ in points]
    ys = [float(v) for _, v in points if v is not None]
    n = len(xs)
    mean_x, mean_y = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mean_x) ** 2 for x in xs)
    slope = (
        sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / sxx
        if sxx > 0 else 0.0
    )
    intercept = mean_y - slope * mean_x
    residual_ss = sum(
        (y - (intercept + slope * x)) ** 2 for x, y in zip(xs, ys, strict=True)
    )
    sigma = math.sqrt(residual_ss / (n - 2)) if n > 2 else 0.0
    z = NormalDist().inv_cdf(0.5 + interval / 2)
    floor = 0.0 if non_negative else -math.inf

    out: list[ForecastPoint] = []
    for h in range(1, horizon + 1):
        x = float(h)
        yhat = intercept + slope * x
        se = sigma * math.sqrt(1 + 1 / n + ((x - mean_x) ** 2 / sxx if sxx > 0 else 0.0))
        out.append(
            ForecastPoint(
                day=last_day + dt.timedelta(days=h),
                value=max(yhat, floor),
                lower=max(yhat - z * se, floor),
                upper=max(yhat + z * se, floor),
            )
        )
    if stock:
        end = out[-1]
        total, lower, upper = end.value, end.lower, end.upper
    else:
        hs = [float(h) for h in range(1, horizon + 1)]
        raw_total = sum(intercept + slope * h for h in hs)
        spread = sum(h - mean_x for h in hs)
        var_total = sigma**2 * (
            horizon + horizon**2 / n + (spread**2 / sxx if sxx > 0 else 0.0)
        )
        half = z * math.sqrt(var_total)
        total = max(raw_total, floor)
        lower, upper = max(raw_total - half, floor), max(raw_total + half, floor)
    return ForecastSeries(
        kpi=kpi,
        label=label,
        fmt=fmt,
        method="linear trend (OLS), normal prediction interval",
        aggregate="last" if stock else "sum",
        history_days=n,
        interval=interval,
        points=out,
        total=total,
        total_lower=lower,
        total_upper=upper,
    )
