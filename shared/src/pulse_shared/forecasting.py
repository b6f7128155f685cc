"""Forecasts of daily KPI series with calibrated intervals, and their rolling-origin backtest.

One module for every forecast Pulse shows (reports, the forecast alert rule, the dashboard,
``pulse forecast``), so a forecast means the same thing everywhere:

- The model is chosen per series among statsforecast's AutoETS (which itself selects error,
  trend and season forms by AICc) and seasonal naive, both with a weekly season once the
  history holds three weeks, by their error on the most recent held-out stretch. Nothing
  is hand-written: the fitting, the state-space intervals and the baseline are the
  library's.
- ETS forecasts start from the fitted level at the last actual, so the line continues the
  series instead of jumping to a regression line.
- Intervals come at every requested level (80 and 95 % by default). Their calibration is a
  measured property, not an assumption: :func:`backtest` counts how often actuals fell
  inside over rolling origins and compares the error with seasonal naive
  (``make bench`` area ``forecast`` prints both).

statsforecast is imported lazily (a few seconds): services that never forecast never pay
for it. Calls are CPU-bound; callers on an event loop run them in a thread.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

WEEK = 7
#: Below this many actuals no forecast is made (an interval from less would be a guess).
MIN_HISTORY = 14
DEFAULT_LEVELS: tuple[int, ...] = (80, 95)
MIN_HORIZON, MAX_HORIZON = 1, 90


class ForecastError(ValueError):
    """The request cannot be forecast (too little history, a horizon out of range...)."""


@dataclass(frozen=True)
class ForecastStep:
    """One future period: the point forecast and an interval per level (lower, upper)."""

    step: int
    yhat: float
    intervals: dict[int, tuple[float, float]]

    def interval(self, level: int) -> tuple[float, float]:
        return self.intervals[level]


@dataclass(frozen=True)
class Forecast:
    model: str
    season_length: int
    history_points: int
    last_actual: float
    steps: list[ForecastStep]
    levels: tuple[int, ...]

    def total(self) -> float:
        """The sum of the point forecasts (a flow KPI's landing over the horizon)."""
        return sum(s.yhat for s in self.steps)


@dataclass(frozen=True)
class HorizonScore:
    """Rolling-origin accuracy for one horizon."""

    horizon: int
    origins: int
    coverage: dict[int, float]
    mape: float
    baseline_mape: float
    model_counts: dict[str, int] = field(default_factory=dict)

    @property
    def mape_ratio(self) -> float:
        """Model MAPE ÷ seasonal-naive MAPE (below 1: better than the baseline)."""
        return self.mape / self.baseline_mape if self.baseline_mape > 0 else math.inf


def _clean(values: Sequence[float | None]) -> list[float]:
    """Missing or non-finite values end the usable history at the last finite run."""
    out: list[float] = []
    for value in values:
        if value is None or not math.isfinite(value):
            out = []  # a gap: only the contiguous tail after it is a series
            continue
        out.append(float(value))
    return out


def _season(points: int) -> int:
    return WEEK if points >= 3 * WEEK else 1


def _candidates(season: int) -> list[tuple[str, Any]]:
    from statsforecast.models import AutoETS, SeasonalNaive

    return [
        ("AutoETS", AutoETS(season_length=season)),
        ("SeasonalNaive" if season > 1 else "Naive", SeasonalNaive(season_length=season)),
    ]


def _fit_forecast(model: Any, y: Any, horizon: int, levels: Sequence[int]) -> dict[str, Any]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # statsforecast warns on short/flat series
        result: dict[str, Any] = model.forecast(y=y, h=horizon, level=list(levels))
    return result


def _mape(actual: Sequence[float], predicted: Sequence[float]) -> float:
    pairs = [(a, p) for a, p in zip(actual, predicted, strict=True) if a != 0]
    if not pairs:
        return math.inf
    return sum(abs(p - a) / abs(a) for a, p in pairs) / len(pairs)


def _choose(y: Any, horizon: int, season: int) -> tuple[str, Any]:
    """The candidate with the lowest error on the last held-out stretch of the history."""
    candidates = _candidates(season)
    holdout = min(horizon, max(WEEK, len(y) // 5))
    if len(y) - holdout < MIN_HISTORY:
        return candidates[0]
    train, test = y[:-holdout], y[-holdout:]
    best: tuple[float, tuple[str, Any]] | None = None
    for name, model in candidates:
        try:
            predicted = _fit_forecast(model, train, holdout, ())["mean"]
        except Exception:  # a candidate that cannot fit this series is skipped
            continue
        error = _mape(list(test), [float(v) for v in predicted])
        if best is None or error < best[0]:
            best = (error, (name, model))
    return best[1] if best else candidates[0]


def forecast(
    values: Sequence[float | None],
    horizon: int,
    *,
    levels: Sequence[int] = DEFAULT_LEVELS,
    non_negative: bool = True,
    model: str | None = None,
) -> Forecast:
    """Forecast the next ``horizon`` periods of ``values`` (oldest first, one per period).

    ``model`` forces a candidate ("AutoETS", "SeasonalNaive"); by default the one with the
    lowest recent hold-out error is used. ``non_negative`` clips point forecasts and
    bounds at 0 (spend, revenue and counts cannot go below it).
    """
    import numpy as np

    if not MIN_HORIZON <= horizon <= MAX_HORIZON:
        raise ForecastError(f"horizon must be {MIN_HORIZON}..{MAX_HORIZON}, got {horizon}")
    bad_levels = [lv for lv in levels if not 0 < lv < 100]
    if bad_levels or not levels:
        raise ForecastError(f"levels must be percentages in 1..99, got {list(levels)}")
    history = _clean(values)
    if len(history) < MIN_HISTORY:
        raise ForecastError(
            f"{len(history)} contiguous actuals; a forecast needs at least {MIN_HISTORY}"
        )
    y = np.asarray(history, dtype=float)
    season = _season(len(y))
    ordered_levels = tuple(sorted(set(levels)))
    if float(np.ptp(y)) == 0.0:  # a constant series: nothing to estimate, no uncertainty
        last = float(y[-1])
        flat = [
            ForecastStep(h, last, {lv: (last, last) for lv in ordered_levels})
            for h in range(1, horizon + 1)
        ]
        return Forecast("Constant", season, len(y), last, flat, ordered_levels)
    if model is None:
        name, chosen = _choose(y, horizon, season)
    else:
        by_name = dict(_candidates(season))
        if model not in by_name:
            raise ForecastError(f"unknown model {model!r}; choose from {sorted(by_name)}")
        name, chosen = model, by_name[model]
    try:
        result = _fit_forecast(chosen, y, horizon, ordered_levels)
    except Exception:
        if name == "AutoETS":  # a degenerate series: the baseline still forecasts
            name, chosen = _candidates(season)[1]
            result = _fit_forecast(chosen, y, horizon, ordered_levels)
        else:
            raise
    floor = 0.0 if non_negative else -math.inf
    steps = [
        ForecastStep(
            step=h + 1,
            yhat=max(floor, float(result["mean"][h])),
            intervals={
                lv: (
                    max(floor, float(result[f"lo-{lv}"][h])),
                    max(floor, float(result[f"hi-{lv}"][h])),
                )
                for lv in ordered_levels
            },
        )
        for h in range(horizon)
    ]
    return Forecast(name, season, len(y), float(y[-1]), steps, ordered_levels)


def backtest(
    values: Sequence[float | None],
    horizon: int,
    *,
    origins: int = 8,
    levels: Sequence[int] = DEFAULT_LEVELS,
    non_negative: bool = True,
) -> HorizonScore:
    """Rolling-origin evaluation: forecast from ``origins`` cut points spaced a week apart
    (the last one ``horizon`` periods before the end), compare with what followed.

    Coverage per level is the share of actuals inside the interval; MAPE is over every
    forecast period of every origin, beside seasonal naive's on the same cuts.
    """
    history = _clean(values)
    cuts = [
        len(history) - horizon - WEEK * k
        for k in range(origins)
        if len(history) - horizon - WEEK * k >= MIN_HISTORY
    ]
    if not cuts:
        raise ForecastError(
            f"{len(history)} actuals leave no origin with {MIN_HISTORY} points of history "
            f"before a {horizon}-period horizon"
        )
    inside = {lv: 0 for lv in levels}
    count = 0
    errors: list[float] = []
    baseline_errors: list[float] = []
    models: dict[str, int] = {}
    for cut in sorted(cuts):
        train, actual = history[:cut], history[cut : cut + horizon]
        predicted = forecast(train, horizon, levels=levels, non_negative=non_negative)
        baseline = forecast(
            train, horizon, levels=levels, non_negative=non_negative,
            model="SeasonalNaive" if predicted.season_length > 1 else "Naive",
        ) if predicted.model != "Constant" else predicted
        models[predicted.model] = models.get(predicted.model, 0) + 1
        for step, value in zip(predicted.steps, actual, strict=True):
            count += 1
            for lv in levels:
                low, high = step.interval(lv)
                inside[lv] += low <= value <= high
        errors.append(_mape(actual, [s.yhat for s in predicted.steps]))
        baseline_errors.append(_mape(actual, [s.yhat for s in baseline.steps]))
    finite = [e for e in errors if math.isfinite(e)]
    finite_baseline = [e for e in baseline_errors if math.isfinite(e)]
    return HorizonScore(
        horizon=horizon,
        origins=len(cuts),
        coverage={lv: inside[lv] / count for lv in levels},
        mape=sum(finite) / len(finite) if finite else math.inf,
        baseline_mape=sum(finite_baseline) / len(finite_baseline) if finite_baseline else math.inf,
        model_counts=models,
    )
