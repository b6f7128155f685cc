"""Forecast calibration benchmark: interval coverage and accuracy over rolling origins.

Generates daily series shaped like Pulse's KPIs — a level, a trend, a weekly pattern
(weekdays busy, weekends quiet) and multiplicative noise — and backtests
:mod:`pulse_shared.forecasting` on each at horizons 7, 14 and 30 days from rolling origins
a week apart. Prints, per horizon, how often the actuals fell inside the 80 % and 95 %
intervals and the MAPE against seasonal naive's on the same cuts (the baseline measured in
the same run; ratio < 1 = better than the baseline).

    .venv/bin/python bench/forecast/bench_forecast.py           # 12 series × 12 origins
    .venv/bin/python bench/forecast/bench_forecast.py --quick   # 2 series × 2 origins

Goals (issue 16): 80 % coverage within 70–90 % and MAPE below seasonal naive per horizon.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import numpy as np

from bench.common import figure, table, write_results
from pulse_shared.forecasting import backtest

HORIZONS = (7, 14, 30)
COVERAGE_GOAL = (0.70, 0.90)
WEEKLY_SHAPE = np.array([1.0, 1.1, 1.15, 1.1, 1.0, 0.6, 0.5])


def generated_series(seed: int, days: int) -> list[float]:
    """Level × (1 + trend) × weekday factor × (1 + noise), with per-series parameters."""
    rng = np.random.default_rng(seed)
    level = rng.uniform(500, 20_000)
    trend = rng.uniform(-0.001, 0.004)  # per day, relative to the level
    noise = rng.uniform(0.04, 0.15)
    amplitude = rng.uniform(0.5, 1.5)  # how pronounced the weekly pattern is
    t = np.arange(days)
    weekly = 1 + amplitude * (WEEKLY_SHAPE[(t + seed) % 7] - 1)
    values = level * (1 + trend * t) * weekly * (1 + rng.normal(0, noise, days))
    return [float(max(v, 0.0)) for v in values]


def figures(horizons: dict[str, Any]) -> list[dict[str, Any]]:
    """Per horizon: MAPE against seasonal naive's, and the 80 % interval's coverage."""
    out = []
    low, high = COVERAGE_GOAL
    for horizon, h in horizons.items():
        out.append(figure(f"forecast MAPE, {horizon}-day horizon", h["mape"], "fraction",
                          baseline=h["seasonal_naive_mape"], baseline_is="seasonal naive MAPE",
                          goal="< baseline", met=h["mape"] < h["seasonal_naive_mape"]))
        out.append(figure(f"forecast 80 % interval coverage, {horizon}-day horizon",
                          h["coverage_80"], "fraction", goal=f"{low:.0%}–{high:.0%}",
                          met=low <= h["coverage_80"] <= high))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    series_count, origins = (2, 2) if args.quick else (12, 12)
    days = 30 + max(HORIZONS) + 7 * origins + 60

    rows: list[list[Any]] = []
    results: dict[str, Any] = {}
    for horizon in HORIZONS:
        started = time.perf_counter()
        inside80 = inside95 = 0.0
        mapes: list[float] = []
        baselines: list[float] = []
        models: dict[str, int] = {}
        for seed in range(series_count):
            score = backtest(generated_series(seed, days), horizon, origins=origins)
            # Coverage is pooled over every forecast period (each origin weighs equally).
            inside80 += score.coverage[80] * score.origins
            inside95 += score.coverage[95] * score.origins
            mapes.append(score.mape)
            baselines.append(score.baseline_mape)
            for name, n in score.model_counts.items():
                models[name] = models.get(name, 0) + n
        forecasts = series_count * origins
        coverage80, coverage95 = inside80 / forecasts, inside95 / forecasts
        mape, baseline = float(np.mean(mapes)), float(np.mean(baselines))
        met = COVERAGE_GOAL[0] <= coverage80 <= COVERAGE_GOAL[1] and mape < baseline
        results[str(horizon)] = {
            "series": series_count, "origins_per_series": origins,
            "coverage_80": round(coverage80, 4), "coverage_95": round(coverage95, 4),
            "mape": round(mape, 4), "seasonal_naive_mape": round(baseline, 4),
            "mape_ratio_vs_seasonal_naive": round(mape / baseline, 3),
            "models_chosen": models, "goal_met": met,
            "seconds": round(time.perf_counter() - started, 1),
        }
        rows.append([
            horizon, f"{coverage80:.1%}", f"{coverage95:.1%}", f"{mape:.2%}",
            f"{baseline:.2%}", f"{mape / baseline:.2f}x", "yes" if met else "NO",
        ])
    print(table(
        ["horizon (days)", "80% coverage", "95% coverage", "MAPE", "seasonal-naive MAPE",
         "ratio", "goal met"],
        rows,
    ))
    path = write_results("forecast_calibration", {
        "goal": {"coverage_80": COVERAGE_GOAL, "mape_below": "seasonal naive"},
        "series_days": days,
        "horizons": results,
    }, quick=args.quick, figures=figures(results))
    print(f"results: {path}")


if __name__ == "__main__":
    main()
