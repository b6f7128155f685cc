"""Budget optimiser: the split of a total budget over N periods that maximises the expected
(posterior-mean) contribution under the fitted steady-state response curves.

Each channel's spend total ``T_c`` over ``periods`` is spent evenly, so its contribution is
``periods * response_c(T_c / periods)``. Logistic saturation is concave in spend, so the
problem (maximise a sum of concave functions subject to ``sum T_c = budget`` and per-channel
bounds) has one optimum, which SLSQP finds from the current mix with the analytic gradient.
Uncertainty is carried per draw: a draw index is one joint posterior sample of all channels,
so intervals of the gain are of the per-draw difference, not a difference of intervals.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from pulse_mmm.domain.model import INTERVAL_MASS, AllocationRow, PosteriorDrawRow
from pulse_mmm.domain.response import FloatArray, ResponseParameters, response_parameters

_LOWER_Q = 100 * (1 - INTERVAL_MASS) / 2
_UPPER_Q = 100 - _LOWER_Q


#: A channel's response curve is evidence near the spend it was fitted on: up to its largest
#: spend per period (``spend_scale``), and past twice that it is extrapolation.
EVIDENCE_CAP_FACTOR = 2.0
#: By default a recommended split moves each channel at most this far (as a fraction) from
#: its share of the current mix: advice to move in steps and re-fit, not to bet the budget
#: on one curve's far end (Meridian's optimiser defaults to ±30 %; users widen it with
#: explicit bounds).
DEFAULT_MAX_SHIFT = 0.5


def default_bounds(
    draws: Sequence[PosteriorDrawRow], current_spend: Mapping[str, float], budget: float,
    periods: int, *, minimum: Mapping[str, float] | None = None,
    maximum: Mapping[str, float] | None = None,
) -> tuple[dict[str, float], dict[str, float]]:
    """(minima, maxima), totals over ``periods``, for :func:`optimize_budget`.

    Each channel stays within :data:`DEFAULT_MAX_SHIFT` of its share of the current mix
    scaled to ``budget``, and below :data:`EVIDENCE_CAP_FACTOR` × its largest fitted spend
    per period where that cap leaves room above the minimum. The user's ``minimum`` and
    ``maximum`` replace the defaults of their channels. If the defaults cannot hold the
    budget, only the user's bounds remain."""
    scales = {d.channel: d.spend_scale for d in draws}
    total = sum(max(current_spend.get(c, 0.0), 0.0) for c in scales)
    user_low, user_high = dict(minimum or {}), dict(maximum or {})
    low: dict[str, float] = {}
    high: dict[str, float] = {}
    for channel, scale in scales.items():
        mix = budget * max(current_spend.get(channel, 0.0), 0.0) / total if total > 0 else 0.0
        lo, hi = (1.0 - DEFAULT_MAX_SHIFT) * mix, (1.0 + DEFAULT_MAX_SHIFT) * mix
        cap = EVIDENCE_CAP_FACTOR * scale * periods
        if cap >= lo:
            hi = min(hi, cap)
        if channel in user_low:
            lo = user_low[channel]
            hi = max(hi, lo)
        if channel in user_high:
            hi = user_high[channel]
            lo = min(lo, hi)
        low[channel], high[channel] = lo, hi
    if total <= 0 or sum(low.values()) > budget or sum(high.values()) < budget:
        return user_low, user_high
    return low, high


def optimize_budget(
    draws: Sequence[PosteriorDrawRow],
    current_spend: Mapping[str, float],
    budget: float,
    periods: int,
    *,
    minimum: Mapping[str, float] | None = None,
    maximum: Mapping[str, float] | None = None,
    run_id: str,
) -> list[AllocationRow]:
    """Recommended split of ``budget`` (total over ``periods``) across the channels of
    ``current_spend`` (current spend per period by channel; its shares scaled to the budget
    are the "current mix"). ``minimum``/``maximum`` bound a channel's total over the horizon.
    Raises ``ValueError`` (one line) when the constraints cannot be met."""
    channels = sorted(current_spend)
    params = _parameters_for(draws, channels)
    lower, upper = _bounds(channels, budget, periods, minimum or {}, maximum or {})
    current = _current_mix(channels, current_spend, budget)
    recommended = _maximise(channels, params, budget, periods, current, lower, upper)
    total_gain = _total_gain(
        params, periods, dict(zip(channels, current, strict=True)),
        dict(zip(channels, recommended, strict=True)),
    )
    gain_lower = float(np.percentile(total_gain, _LOWER_Q))
    gain_upper = float(np.percentile(total_gain, _UPPER_Q))
    rows = []
    for i, channel in enumerate(channels):
        now = periods * params[channel].response(current[i] / periods)
        best = periods * params[channel].response(recommended[i] / periods)
        rows.append(AllocationRow(
            run_id=run_id, budget=float(budget), periods=periods, channel=channel,
            current_spend=float(current[i]), recommended_spend=float(recommended[i]),
            current_contribution=float(now.mean()),
            expected_contribution=float(best.mean()),
            expected_contribution_lower=float(np.percentile(best, _LOWER_Q)),
            expected_contribution_upper=float(np.percentile(best, _UPPER_Q)),
            gain_lower=gain_lower, gain_upper=gain_upper,
        ))
    return rows


def _total_gain(
    params: Mapping[str, ResponseParameters], periods: int,
    current: Mapping[str, float], recommended: Mapping[str, float],
) -> FloatArray:
    """Per posterior draw: the total contribution of ``recommended`` minus that of
    ``current`` (totals over ``periods``) summed over channels. Quantiles of this, not
    sums of per-channel quantiles, are the interval of the gain."""
    gain: FloatArray | float = 0.0
    for channel in current:
        response = params[channel].response
        gain = gain + periods * (
            response(recommended[channel] / periods) - response(current[channel] / periods)
        )
    return np.asarray(gain, dtype=np.float64)


def expected_gain(
    draws: Sequence[PosteriorDrawRow], allocations: Sequence[AllocationRow]
) -> tuple[float, float, float]:
    """Mean and 90 % interval of the total gain (recommended − current mix) over the
    allocation's horizon, from the per-draw difference."""
    if not allocations:
        return 0.0, 0.0, 0.0
    params = _parameters_for(draws, [a.channel for a in allocations])
    per_draw = _total_gain(
        params, allocations[0].periods,
        {a.channel: a.current_spend for a in allocations},
        {a.channel: a.recommended_spend for a in allocations},
    )
    return (float(per_draw.mean()), float(np.percentile(per_draw, _LOWER_Q)),
            float(np.percentile(per_draw, _UPPER_Q)))


def _parameters_for(
    draws: Sequence[PosteriorDrawRow], channels: Sequence[str]
) -> dict[str, ResponseParameters]:
    params = response_parameters(draws)
    missing = [c for c in channels if c not in params]
    if missing:
        raise ValueError(f"no posterior draws for channel(s) {', '.join(missing)} in this run")
    counts = {params[c].draws for c in channels}
    if len(counts) > 1:
        raise ValueError(f"channels have different numbers of posterior draws ({sorted(counts)})")
    return {c: params[c] for c in channels}


def _bounds(
    channels: Sequence[str], budget: float, periods: int,
    minimum: Mapping[str, float], maximum: Mapping[str, float],
) -> tuple[FloatArray, FloatArray]:
    if periods < 1:
        raise ValueError(f"periods must be at least 1; got {periods}")
    if not budget > 0:
        raise ValueError(f"budget must be positive; got {budget:g}")
    if not channels:
        raise ValueError("no channels to allocate the budget to")
    unknown = sorted((set(minimum) | set(maximum)) - set(channels))
    if unknown:
        raise ValueError(
            f"unknown channel(s) {', '.join(unknown)} in --min/--max; known: {', '.join(channels)}"
        )
    lower = np.array([float(minimum.get(c, 0.0)) for c in channels])
    upper = np.array([float(maximum.get(c, budget)) for c in channels])
    for c, lo, hi in zip(channels, lower, upper, strict=True):
        if lo < 0 or hi < 0:
            raise ValueError(f"minimum and maximum for {c} must not be negative")
        if lo > hi:
            raise ValueError(f"minimum for {c} ({lo:,.2f}) is above its maximum ({hi:,.2f})")
    if lower.sum() > budget * (1 + 1e-9):
        raise ValueError(
            f"the minimums add up to {lower.sum():,.2f}, more than the budget {budget:,.2f}"
        )
    upper = np.minimum(upper, budget)
    if upper.sum() < budget * (1 - 1e-9):
        raise ValueError(
            f"the maximums add up to {upper.sum():,.2f}, less than the budget {budget:,.2f}"
        )
    return lower, upper


def _current_mix(channels: Sequence[str], current_spend: Mapping[str, float], budget: float) -> FloatArray:
    spend = np.array([max(float(current_spend[c]), 0.0) for c in channels])
    total = spend.sum()
    shares = spend / total if total > 0 else np.full(len(channels), 1.0 / len(channels))
    result: FloatArray = shares * budget
    return result


def _maximise(
    channels: Sequence[str], params: Mapping[str, ResponseParameters], budget: float,
    periods: int, start: FloatArray, lower: FloatArray, upper: FloatArray,
) -> FloatArray:
    # Work in budget shares so the variables are O(1) whatever the currency amounts.
    lo, hi = lower / budget, upper / budget
    scale = budget

    def negative_expected(shares: FloatArray) -> tuple[float, FloatArray]:
        per_period = shares * scale / periods
        value = 0.0
        grad = np.empty(len(channels))
        for i, channel in enumerate(channels):
            p = params[channel]
            value += periods * float(p.response(per_period[i]).mean())
            # d/d share of periods * r(share * budget / periods) = budget * r'(.)
            grad[i] = scale * float(p.marginal(per_period[i]).mean())
        return -value, -grad

    from scipy.optimize import minimize  # lazy: keeps `import pulse_mmm...` light for the CLI

    x0 = _feasible_start(start / budget, lo, hi)
    # ... and the objective O(1) too: SLSQP's tolerances are absolute, and at currency
    # magnitudes (1e5-1e7) it stops at the start as "converged" without moving.
    norm = max(abs(negative_expected(x0)[0]), 1e-12)

    def normalised(shares: FloatArray) -> tuple[float, FloatArray]:
        value, grad = negative_expected(shares)
        return value / norm, grad / norm

    result = minimize(
        normalised, x0, jac=True, method="SLSQP",
        bounds=list(zip(lo, hi, strict=True)),
        constraints=[{"type": "eq", "fun": lambda s: s.sum() - 1.0, "jac": lambda s: np.ones_like(s)}],
        options={"maxiter": 500, "ftol": 1e-12},
    )
    candidate = _feasible_start(np.asarray(result.x, dtype=np.float64), lo, hi)
    # Keep the start if SLSQP stopped somewhere worse (it cannot on a concave objective,
    # but a failed run must never recommend less than the feasible start).
    if negative_expected(candidate)[0] > negative_expected(x0)[0]:
        candidate = x0
    allocation: FloatArray = candidate * budget
    return allocation


def _feasible_start(shares: FloatArray, lo: FloatArray, hi: FloatArray) -> FloatArray:
    """The point nearest ``shares`` inside the bounds that sums to 1 (clip, then spread the
    remainder over the channels with room, repeatedly)."""
    x = np.clip(shares, lo, hi)
    for _ in range(len(x) + 1):
        gap = 1.0 - x.sum()
        if abs(gap) < 1e-12:
            break
        room = (hi - x) if gap > 0 else (x - lo)
        total_room = room.sum()
        if total_room <= 0:
            break
        x = np.clip(x + gap * room / total_room, lo, hi)
    return x
