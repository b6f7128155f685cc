"""Forecast intervals for forecast rules, from :mod:`pulse_shared.forecasting`.

The same model choice and intervals as reports and ``pulse forecast``, so an alert that
says "the upper 90 % bound crosses 150" agrees with the forecast a person looks up.
statsforecast is imported lazily (a few seconds) so services without forecast rules never
pay for it; evaluation runs off the event loop.
"""

from __future__ import annotations

from collections.abc import Sequence

from pulse_shared.forecasting import ForecastError, forecast
from pulse_shared.logging import get_logger

log = get_logger(__name__)


def forecast_intervals(
    values: Sequence[float], horizon: int, level: int
) -> list[tuple[float, float, float]]:
    """(mean, lower, upper) for each of the next ``horizon`` periods at ``level`` %;
    empty when the history cannot be forecast (too short, a degenerate series)."""
    try:
        result = forecast(values, horizon, levels=(level,), non_negative=False)
    except ForecastError as exc:
        log.info("forecast_skipped", reason=str(exc), points=len(values))
        return []
    except Exception as exc:  # a degenerate series must not stop the other rules
        log.warning("forecast_failed", error=repr(exc), points=len(values))
        return []
    return [(s.yhat, *s.interval(level)) for s in result.steps]
