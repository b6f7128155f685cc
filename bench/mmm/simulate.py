"""Simulated weekly marketing data with a known truth (geometric adstock, logistic
saturation, ROI per channel), for the MMM benchmark and the library comparison."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np

from pulse_mmm.domain.model import MmmDataset, ModelGrain


@dataclass(frozen=True)
class Truth:
    channels: tuple[str, ...]
    alpha: np.ndarray  # geometric adstock decay per channel
    lam: np.ndarray  # logistic saturation steepness (on spend / max spend)
    beta: np.ndarray  # contribution at full saturation per period
    spend_max: np.ndarray
    l_max: int

    def response(self, channel: int, spend_per_period: float) -> float:
        """True steady-state contribution per period (normalised adstock keeps the level)."""
        x = spend_per_period / self.spend_max[channel]
        e = np.exp(-self.lam[channel] * x)
        return float(self.beta[channel] * (1 - e) / (1 + e))


def adstock(x: np.ndarray, alpha: float, l_max: int) -> np.ndarray:
    weights = alpha ** np.arange(l_max)
    weights = weights / weights.sum()
    out = np.zeros_like(x)
    for lag, w in enumerate(weights):
        out[lag:] += w * x[: len(x) - lag]
    return out


def simulate(channels: int = 4, weeks: int = 104, seed: int = 7) -> tuple[MmmDataset, Truth, np.ndarray]:
    """Weekly dataset, its truth, and each channel's true contribution series (weeks, C)."""
    rng = np.random.default_rng(seed)
    names = tuple(f"channel_{i + 1:02d}" for i in range(channels))
    level = rng.uniform(500, 3000, channels)
    spend = level * rng.gamma(6, 1 / 6, size=(weeks, channels))
    spend *= rng.random((weeks, channels)) > 0.08  # some weeks without spend
    alpha = rng.uniform(0.1, 0.6, channels)
    lam = rng.uniform(0.8, 3.0, channels)
    spend_max = spend.max(axis=0)
    true_roi = rng.uniform(0.8, 4.0, channels)
    contrib = np.zeros((weeks, channels))
    beta = np.zeros(channels)
    for c in range(channels):
        shape = adstock(spend[:, c] / spend_max[c], alpha[c], 8)
        saturated = (1 - np.exp(-lam[c] * shape)) / (1 + np.exp(-lam[c] * shape))
        beta[c] = true_roi[c] * spend[:, c].sum() / saturated.sum()
        contrib[:, c] = beta[c] * saturated
    t = np.arange(weeks)
    base = 0.6 * contrib.sum(axis=1).mean() * 2 + 40 * t + 0.1 * contrib.sum(axis=1).mean() * np.sin(2 * np.pi * t / 52)
    noise = rng.normal(0, 0.05 * (base + contrib.sum(axis=1)).mean(), weeks)
    outcome = base + contrib.sum(axis=1) + noise
    start = dt.date(2024, 1, 1)
    dataset = MmmDataset(
        target="won_revenue", grain=ModelGrain.WEEK,
        period_starts=tuple(start + dt.timedelta(weeks=i) for i in range(weeks)),
        channels=names, spend={n: tuple(float(v) for v in spend[:, i]) for i, n in enumerate(names)},
        outcome=tuple(float(v) for v in outcome),
    )
    return dataset, Truth(names, alpha, lam, beta, spend_max, 8), contrib
