"""Forecast intervals for forecast rules, with statsforecast's AutoETS.

statsforecast is imported lazily (a few seconds) so services without forecast rules never
pay for it; evaluation runs off the event loop.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from pulse_shared.logging import get_logger

log = get_logger(__name__)


def forecast_intervals(
    values: Sequence[float], horizon: int, level: int
) -> list[tuple[float, float, float]]:
    """(mean, lower, upper) for each of the next ``horizon`` periods at ``level`` %."""
    import numpy as np
    from statsforecast.models import AutoETS

    y = np.asarray([v for v in values if math.isfinite(v)], dtype=float)
    if len(y) < 3:
        return []
    if float(np.ptp(y)) == 0.0:  # constant series: no uncertainty to estimate
        last = float(y[-1])
        return [(last, last, last) for _ in range(horizon)]
    season = 7 if len(y) >= 3 * 7 else 1
    try:
        result = AutoETS(season_length=season).forecast(y=y, h=horizon, level=[level])
    except Exception as exc:  # a degenerate series must not stop the other rules
        log.warning("forecast_failed", error=repr(exc), points=len(y))
        return []
    mean, lo, hi = result["mean"], result[f"lo-{level}"], result[f"hi-{level}"]
    return [(float(m), float(a), float(b)) for m, a, b in zip(mean, lo, hi, strict=True)]
