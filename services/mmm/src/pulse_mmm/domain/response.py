"""Steady-state response of a channel under the fitted posterior, vectorised over draws.

The model (pymc-marketing ``GeometricAdstock(normalize=True)`` then ``LogisticSaturation``)
gives a channel's contribution in period t as, in the model's scaled units,

    beta * logistic_saturation(adstock(spend / spend_scale)_t, lam)

and in original units that times ``target_scale``. With a *steady* spend ``s`` per period the
normalised geometric adstock is a weighted average of equal values (its weights sum to 1),
so its steady state is ``s`` itself whatever ``alpha`` is: carry-over shifts *when* spend
pays off, not how much a steady level pays. The steady-state contribution per period is

    target_scale * beta * logistic_saturation(s / spend_scale, lam).

``logistic_saturation`` is pymc-marketing's ``(1 - exp(-lam x)) / (1 + exp(-lam x))``.
The library's function builds a PyTensor graph (``.eval()`` compiles it: tens of
milliseconds per call and a ~7 s import), while the optimiser calls the response hundreds
of times and ``pulse mmm optimize`` must start fast; so this module evaluates the same
closed form with numpy. ``tests/mmm/test_mmm_domain.py`` pins it to the library's
``logistic_saturation`` and ``geometric_adstock`` steady state, so a change in the library's
definition fails the suite instead of silently diverging.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from pulse_mmm.domain.model import PosteriorDrawRow

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class ResponseParameters:
    """One channel's posterior draws as arrays (same order: by draw number)."""

    channel: str
    adstock_alpha: FloatArray
    saturation_lam: FloatArray
    saturation_beta: FloatArray
    spend_scale: FloatArray
    target_scale: FloatArray

    @property
    def draws(self) -> int:
        return int(self.saturation_lam.shape[0])

    def response(self, spend_per_period: float | FloatArray) -> FloatArray:
        """Per-draw expected contribution per period at a steady spend (original units).
        A scalar spend gives shape ``(draws,)``; an array of spends ``(n,)`` gives
        ``(n, draws)``."""
        spend = np.asarray(spend_per_period, dtype=np.float64)
        x = np.maximum(spend, 0.0)[..., None] / self.spend_scale
        return self.target_scale * self.saturation_beta * logistic_saturation(x, self.saturation_lam)

    def marginal(self, spend_per_period: float | FloatArray) -> FloatArray:
        """Per-draw derivative of :meth:`response` with respect to the spend per period:
        the extra contribution of one more unit of steady spend (the marginal ROI)."""
        spend = np.asarray(spend_per_period, dtype=np.float64)
        x = np.maximum(spend, 0.0)[..., None] / self.spend_scale
        e = np.exp(-self.saturation_lam * x)
        slope = 2.0 * self.saturation_lam * e / (1.0 + e) ** 2
        return self.target_scale * self.saturation_beta * slope / self.spend_scale


def logistic_saturation(x: FloatArray, lam: FloatArray) -> FloatArray:
    """pymc-marketing's ``logistic_saturation`` in numpy (0 at 0, rising to 1)."""
    e = np.exp(-lam * x)
    result: FloatArray = (1.0 - e) / (1.0 + e)
    return result


def response_parameters(draws: Iterable[PosteriorDrawRow]) -> dict[str, ResponseParameters]:
    """Group draw rows by channel into arrays (sorted by draw number)."""
    by_channel: dict[str, list[PosteriorDrawRow]] = {}
    for row in draws:
        by_channel.setdefault(row.channel, []).append(row)
    result: dict[str, ResponseParameters] = {}
    for channel, rows in by_channel.items():
        rows.sort(key=lambda r: r.draw)

        def column(name: str, rows: list[PosteriorDrawRow] = rows) -> FloatArray:
            return np.array([getattr(r, name) for r in rows], dtype=np.float64)

        result[channel] = ResponseParameters(
            channel=channel,
            adstock_alpha=column("adstock_alpha"),
            saturation_lam=column("saturation_lam"),
            saturation_beta=column("saturation_beta"),
            spend_scale=column("spend_scale"),
            target_scale=column("target_scale"),
        )
    return result


def channel_response(
    draws: Sequence[PosteriorDrawRow], channel: str, spend_per_period: float
) -> FloatArray:
    """Per-draw expected contribution per period of ``channel`` at a steady
    ``spend_per_period`` (original units). Raises ``KeyError`` for a channel without draws."""
    params = response_parameters(r for r in draws if r.channel == channel)
    if channel not in params:
        raise KeyError(f"no posterior draws for channel {channel!r}")
    return params[channel].response(spend_per_period)
