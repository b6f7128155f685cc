"""pulse_shared.forecasting: model choice, anchoring, intervals, refusals and backtests.

Series are generated from fixed seeds, so every figure is reproducible; none depends on
the date (a forecast is indexed by steps, not calendar days).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from pulse_shared.forecasting import (
    MIN_HISTORY,
    ForecastError,
    backtest,
    forecast,
)

WEEKLY = np.array([1.0, 1.1, 1.15, 1.1, 1.0, 0.6, 0.5])


def weekly_series(days: int, seed: int = 3, noise: float = 0.05) -> list[float]:
    rng = np.random.default_rng(seed)
    t = np.arange(days)
    return list((1000 + 2.0 * t) * WEEKLY[t % 7] * (1 + rng.normal(0, noise, days)))


def test_forecast_follows_the_weekly_pattern() -> None:
    history = weekly_series(140)
    result = forecast(history, 14)
    assert result.season_length == 7
    predicted = np.array([s.yhat for s in result.steps])
    expected_shape = WEEKLY[np.arange(140, 154) % 7]
    # Weekends forecast low, weekdays high: the shape of the pattern is reproduced.
    assert np.corrcoef(predicted, expected_shape)[0, 1] > 0.9


def test_forecast_starts_from_the_last_actual_not_a_fitted_line() -> None:
    # A level shift late in the series: a regression line over the whole history would
    # start far below the last values; the forecast continues from where the series is.
    rng = np.random.default_rng(5)
    history = [100.0 + rng.normal(0, 1) for _ in range(40)]
    history += [200.0 + rng.normal(0, 1) for _ in range(20)]
    result = forecast(history, 7)
    assert abs(result.steps[0].yhat - history[-1]) < 15
    assert result.last_actual == history[-1]


def test_intervals_are_nested_and_contain_the_point_forecast() -> None:
    result = forecast(weekly_series(90), 30, levels=(80, 95))
    for step in result.steps:
        low80, high80 = step.interval(80)
        low95, high95 = step.interval(95)
        assert low95 <= low80 <= step.yhat <= high80 <= high95
    # Uncertainty grows with the horizon.
    width = [s.interval(80)[1] - s.interval(80)[0] for s in result.steps]
    assert width[-1] > width[0]


def test_non_negative_kpis_never_forecast_below_zero() -> None:
    rng = np.random.default_rng(9)
    falling = [max(0.0, 50 - 2.5 * t + rng.normal(0, 3)) for t in range(30)]
    result = forecast(falling, 30)
    assert all(s.yhat >= 0 and s.interval(95)[0] >= 0 for s in result.steps)
    free = forecast(falling, 30, non_negative=False)
    assert min(s.interval(95)[0] for s in free.steps) < 0


def test_constant_series_has_no_uncertainty() -> None:
    result = forecast([42.0] * 30, 7)
    assert result.model == "Constant"
    assert all(s.yhat == 42.0 and s.interval(95) == (42.0, 42.0) for s in result.steps)


def test_gaps_end_the_usable_history() -> None:
    history: list[float | None] = [*weekly_series(30), None, *weekly_series(MIN_HISTORY - 1)]
    with pytest.raises(ForecastError, match=f"{MIN_HISTORY - 1} contiguous actuals"):
        forecast(history, 7)
    assert forecast([*history, 1000.0], 7).history_points == MIN_HISTORY


@pytest.mark.parametrize(
    ("horizon", "levels", "message"),
    [(0, (80,), "horizon"), (91, (80,), "horizon"), (7, (100,), "levels"), (7, (), "levels")],
)
def test_bad_requests_are_refused_with_the_reason(
    horizon: int, levels: tuple[int, ...], message: str
) -> None:
    with pytest.raises(ForecastError, match=message):
        forecast(weekly_series(60), horizon, levels=levels)


def test_unknown_model_names_the_choices() -> None:
    with pytest.raises(ForecastError, match="AutoETS"):
        forecast(weekly_series(60), 7, model="Prophet")


def test_backtest_is_calibrated_and_beats_seasonal_naive() -> None:
    history = weekly_series(200, seed=11, noise=0.08)
    score = backtest(history, 14, origins=8)
    assert score.origins == 8
    assert sum(score.model_counts.values()) == 8
    assert 0.6 <= score.coverage[80] <= 0.97
    assert score.coverage[95] >= score.coverage[80]
    assert math.isfinite(score.mape) and score.mape < score.baseline_mape
    assert score.mape_ratio < 1


def test_backtest_needs_history_before_its_origins() -> None:
    with pytest.raises(ForecastError, match="no origin"):
        backtest(weekly_series(MIN_HISTORY + 5), 14)
