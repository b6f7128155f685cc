"""``pulse forecast KPI``: the forecast of one KPI series from ``kpi_values``, through
:mod:`pulse_shared.forecasting` (the module reports and alerts use)."""

from __future__ import annotations

import math
from typing import Any

import typer

from pulse_cli.errors import UserError
from pulse_shared.cli_output import render
from pulse_shared.forecasting import (
    MIN_HISTORY,
    ForecastError,
    backtest,
    forecast,
)
from pulse_shared.store import Store

COLUMNS = ("date", "kpi", "dimension", "dimension_value", "yhat", "lower", "upper", "level")
BACKTEST_COLUMNS = (
    "horizon", "origins", "coverage_80", "coverage_95", "mape", "seasonal_naive_mape",
    "mape_ratio",
)

_SERIES_SQL = """
SELECT period_start AS day, value
FROM kpi_values FINAL
WHERE kpi = {kpi:String} AND grain = {grain:String}
  AND dimension = {dimension:String} AND dimension_value = {member:String}
ORDER BY period_start
"""


#: Breakdowns a series can be read from (kpi_values.dimension; the account's profile ones
#: are weekly and coarser: pulse_shared.kpi_catalog.ACCOUNT_DIMS).
DIMENSIONS = ("channel", "campaign", "segment", "plan", "region", "industry", "employee_band")


def parse_dimension(text: str | None) -> tuple[str, str]:
    if not text:
        return "all", ""
    name, sep, value = text.partition("=")
    if not sep or name not in DIMENSIONS or not value:
        raise typer.BadParameter(
            f"{text!r}: expected NAME=VALUE, NAME one of {', '.join(DIMENSIONS)}",
            param_hint="--dimension"
        )
    return name, value


def read_series(
    store: Store, kpi: str, grain: str, dimension: str, member: str
) -> tuple[list[Any], list[float | None]]:
    rows = store.query(
        _SERIES_SQL, {"kpi": kpi, "grain": grain, "dimension": dimension, "member": member}
    )
    return [r["day"] for r in rows], [
        None if r["value"] is None else float(r["value"]) for r in rows
    ]


def _round(value: float) -> float | str:
    return round(value, 4) if math.isfinite(value) else "inf"


def run_forecast(
    store: Store, kpi: str, grain: str, horizon: int, dimension: str, member: str,
    level: int, fmt: str, with_backtest: bool,
) -> str:
    from datetime import timedelta

    days, values = read_series(store, kpi, grain, dimension, member)
    step = timedelta(days=7 if grain == "week" else 1)
    where = f"{kpi} ({grain}{'' if dimension == 'all' else f', {dimension}={member}'})"
    if with_backtest:
        rows = []
        for h in sorted({min(7, horizon), min(14, horizon), horizon}):
            try:
                score = backtest(values, h, levels=(80, 95))
            except ForecastError as exc:
                raise UserError(f"{where}: {exc}") from exc
            rows.append({
                "horizon": h, "origins": score.origins,
                "coverage_80": _round(score.coverage[80]),
                "coverage_95": _round(score.coverage[95]),
                "mape": _round(score.mape), "seasonal_naive_mape": _round(score.baseline_mape),
                "mape_ratio": _round(score.mape_ratio),
            })
        return render(rows, BACKTEST_COLUMNS, fmt, f"Backtest of {where}")
    try:
        result = forecast(values, horizon, levels=sorted({level, 95}))
    except ForecastError as exc:
        raise UserError(
            f"{where}: {len([v for v in values if v is not None])} value(s) stored; a "
            f"forecast needs at least {MIN_HISTORY} consecutive {grain}s ({exc})"
        ) from exc
    last = days[-1]
    rows = [
        {
            "date": (last + step * s.step).isoformat(), "kpi": kpi, "dimension": dimension,
            "dimension_value": member, "yhat": round(s.yhat, 4),
            "lower": round(s.interval(level)[0], 4), "upper": round(s.interval(level)[1], 4),
            "level": level,
        }
        for s in result.steps
    ]
    return render(rows, COLUMNS, fmt, f"Forecast of {where}")
