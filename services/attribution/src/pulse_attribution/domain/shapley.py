"""Shapley-value attribution over the channel coalitions seen in journeys.

Journeys are grouped by their *set* of channels ``T`` (order and repeats ignored), with
``conv(T)`` conversions, ``null(T)`` non-converting journeys and ``value(T)``.

Characteristic functions (``value_function``):

* ``conversions`` (default): ``v(S) = Σ conv(T) for T ⊆ S`` — the conversions the
  channels in ``S`` produce on their own. Monotone, so every Shapley value is ≥ 0 and
  they sum to the total conversions (efficiency).
* ``conversion_rate``: ``v(S) = conv(⊆S) / (conv(⊆S) + null(⊆S))`` (0 without
  journeys) — credits channels that *raise* the conversion rate; negative marginal
  contributions are possible, so shares use ``max(φ, 0)``.

Computation: with ``n ≤ max_exact`` channels (default 15) ``v`` is tabulated on all 2ⁿ
coalitions with a subset-sum (zeta) transform and the Shapley formula
``φ_i = Σ_{S ⊆ N∖{i}} |S|!(n-|S|-1)!/n! · (v(S ∪ {i}) − v(S))`` is evaluated exactly.
Beyond that, **approximation**: ``samples`` random channel orders (seeded, so runs are
reproducible) and the average marginal contribution of each channel along them
(Castro et al. 2009); the standard error of each φ is returned. Coalition values on the
sampled orders are computed exactly from the journey groups.

The value credited to a channel (``total_conversion_value``) uses the same shares.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from pulse_attribution.domain.paths import ChannelCredit, FloatArray, IntArray, PathTable

VALUE_FUNCTIONS = ("conversions", "conversion_rate")


@dataclass(frozen=True)
class ShapleyResult:
    channels: tuple[str, ...]
    shapley_values: FloatArray
    standard_errors: FloatArray  # zero when exact
    exact: bool
    value_function: str
    credit: ChannelCredit


def coalition_groups(table: PathTable) -> tuple[IntArray, FloatArray, FloatArray, FloatArray]:
    """Unique channel-set bitmasks with their summed conversions, nulls and values."""
    n = len(table.channels)
    if n > 62:
        raise ValueError("more than 62 channels are not supported")
    path_of = np.repeat(np.arange(table.n_paths), table.lengths)
    masks = np.zeros(table.n_paths, dtype=np.int64)
    np.bitwise_or.at(masks, path_of, np.left_shift(np.int64(1), table.codes))
    uniq, inverse = np.unique(masks, return_inverse=True)
    conv = np.bincount(inverse, table.conversions, minlength=len(uniq)).astype(np.float64)
    null = np.bincount(inverse, table.nulls, minlength=len(uniq)).astype(np.float64)
    value = np.bincount(inverse, table.values, minlength=len(uniq)).astype(np.float64)
    return uniq.astype(np.int64), conv, null, value


def _subset_sum(dense: FloatArray, n: int) -> FloatArray:
    """Zeta transform: out[S] = Σ_{T ⊆ S} dense[T]."""
    out = dense.copy()
    for i in range(n):
        view = out.reshape(-1, 2, 1 << i)
        view[:, 1, :] += view[:, 0, :]
    return out


def _value_table(
    n: int, masks: IntArray, conv: FloatArray, null: FloatArray, value_function: str
) -> FloatArray:
    size = 1 << n
    conv_dense = np.zeros(size)
    np.add.at(conv_dense, masks, conv)
    conv_sub = _subset_sum(conv_dense, n)
    if value_function == "conversions":
        return conv_sub
    null_dense = np.zeros(size)
    np.add.at(null_dense, masks, null)
    total = conv_sub + _subset_sum(null_dense, n)
    return np.divide(conv_sub, total, out=np.zeros(size), where=total > 0)


def exact_shapley(v: FloatArray, n: int) -> FloatArray:
    """Shapley values of the game ``v`` given on all 2ⁿ coalitions (bitmask-indexed)."""
    all_masks = np.arange(1 << n, dtype=np.int64)
    sizes = np.zeros(1 << n, dtype=np.int64)
    for i in range(n):
        sizes += (all_masks >> i) & 1
    weight = np.array(
        [math.factorial(s) * math.factorial(n - s - 1) / math.factorial(n) for s in range(n)]
    )
    phi = np.zeros(n)
    for i in range(n):
        without = all_masks[((all_masks >> i) & 1) == 0]
        phi[i] = float(np.sum(weight[sizes[without]] * (v[without | (1 << i)] - v[without])))
    return phi


def _coalition_value(
    coalition: int,
    masks: IntArray,
    conv: FloatArray,
    null: FloatArray,
    value_function: str,
) -> float:
    inside = (masks & ~np.int64(coalition)) == 0
    c = float(conv[inside].sum())
    if value_function == "conversions":
        return c
    total = c + float(null[inside].sum())
    return c / total if total > 0 else 0.0


def sampled_shapley(
    n: int,
    masks: IntArray,
    conv: FloatArray,
    null: FloatArray,
    value_function: str,
    samples: int,
    seed: int,
) -> tuple[FloatArray, FloatArray]:
    """Permutation-sampling estimate of the Shapley values and their standard errors."""
    rng = np.random.default_rng(seed)
    contributions = np.zeros((samples, n))
    for s in range(samples):
        order = rng.permutation(n)
        coalition = 0
        previous = _coalition_value(0, masks, conv, null, value_function)
        for i in order:
            coalition |= 1 << int(i)
            current = _coalition_value(coalition, masks, conv, null, value_function)
            contributions[s, i] = current - previous
            previous = current
    phi = contributions.mean(axis=0)
    se = contributions.std(axis=0, ddof=1) / math.sqrt(samples) if samples > 1 else np.zeros(n)
    return phi, se


def shapley_model(
    table: PathTable,
    *,
    value_function: str = "conversions",
    max_exact: int = 15,
    samples: int = 2000,
    seed: int = 0,
) -> ShapleyResult:
    if value_function not in VALUE_FUNCTIONS:
        raise ValueError(f"value_function must be one of {VALUE_FUNCTIONS}")
    n = len(table.channels)
    masks, conv, null, _ = coalition_groups(table)
    if n == 0:
        zero = np.zeros(0)
        credit = ChannelCredit("shapley", table.channels, zero, zero.copy())
        return ShapleyResult(table.channels, zero, zero.copy(), True, value_function, credit)
    exact = n <= max_exact
    if exact:
        phi = exact_shapley(_value_table(n, masks, conv, null, value_function), n)
        se = np.zeros(n)
    else:
        phi, se = sampled_shapley(n, masks, conv, null, value_function, samples, seed)
    positive = np.maximum(phi, 0.0)
    total = positive.sum()
    share = positive / total if total > 0 else np.zeros(n)
    credit = ChannelCredit(
        "shapley",
        table.channels,
        share * float(table.conversions.sum()),
        share * float(table.values.sum()),
    )
    return ShapleyResult(table.channels, phi, se, exact, value_function, credit)

