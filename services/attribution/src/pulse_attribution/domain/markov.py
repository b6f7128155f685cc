"""Markov-chain attribution of order k, solved exactly as an absorbing chain.

States are the last ``k`` channels of a journey (shorter at the start of a journey, as if
padded with the start state). Transient states are ``start`` plus every observed k-gram;
``conversion`` and ``null`` absorb. Transition probabilities are the maximum-likelihood
estimates from the journeys (each unique path weighted by its conversions + nulls).

``P(conversion)`` is the absorption probability into ``conversion`` from ``start``:
solve ``(I - Q) x = r`` with ``Q`` the transient-to-transient block and ``r`` the
one-step conversion probabilities (no simulation): a dense numpy solve while the chain is
small (order 1 and 2 on dozens of channels: a few hundred states), scipy's sparse LU
beyond that. Removing channel
``c`` deletes every state that contains ``c`` — transitions into them go to ``null`` —
and the same system is solved on the remaining states. Removal effect
``RE(c) = 1 - P(conversion | c removed) / P(conversion)``; each channel receives the
total conversions (and value) in proportion to its removal effect.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from pulse_attribution.domain.paths import ChannelCredit, FloatArray, IntArray, PathTable

if TYPE_CHECKING:
    import scipy.sparse as sp

# Up to this many transient states the chain is solved densely with numpy. scipy is then
# never imported: importing scipy.sparse costs ~0.4 s, more than reading and solving a
# 200k-path file (the `pulse attribution paths` CLI is benchmarked end to end against
# ChannelAttribution). A dense 1,500² solve is ~0.1 s; past that, sparse LU wins.
DENSE_MAX_STATES = 1500


@dataclass(frozen=True)
class MarkovChain:
    """The estimated chain: transient states ``0..n_states-1`` plus ``start``."""

    order: int
    channels: tuple[str, ...]
    state_channels: IntArray  # (n_states, order) channel codes per state, -1 = padding
    transient: FloatArray | sp.csr_matrix  # (n+1, n+1) Q, last row/column = start
    to_conversion: FloatArray  # (n+1,) r

    @property
    def n_states(self) -> int:
        return int(self.state_channels.shape[0])

    @property
    def start(self) -> int:
        return self.n_states


@dataclass(frozen=True)
class MarkovResult:
    order: int
    channels: tuple[str, ...]
    conversion_probability: float
    removal_effects: FloatArray
    credit: ChannelCredit
    n_states: int


def state_codes(table: PathTable, order: int) -> tuple[IntArray, IntArray]:
    """Per touch: its state id; and per state: its channel codes (k columns, -1 padded)."""
    if order < 1:
        raise ValueError("order must be >= 1")
    n_channels = max(len(table.channels), 1)
    base = n_channels + 1
    lengths = table.lengths
    n_touch = len(table.codes)
    path_of = np.repeat(np.arange(table.n_paths), lengths)
    pos = np.arange(n_touch) - table.offsets[:-1][path_of]
    key = np.zeros(n_touch, dtype=np.int64)
    for j in range(order):
        shifted = np.zeros(n_touch, dtype=np.int64)
        if j < n_touch:
            shifted[j:] = table.codes[: n_touch - j] + 1
        key += np.where(pos >= j, shifted, 0) * base**j
    if base**order <= 1 << 24:
        # Small key space: factorise with a presence table instead of sorting.
        present = np.zeros(base**order, dtype=bool)
        present[key] = True
        unique_keys = np.flatnonzero(present).astype(np.int64)
        position = np.cumsum(present) - 1
        state_of = position[key]
    else:
        unique_keys, state_of = np.unique(key, return_inverse=True)
    digits = np.stack(
        [(unique_keys // base**j) % base - 1 for j in range(order)], axis=1
    ).astype(np.int64)
    return state_of.astype(np.int64), digits


def estimate_chain(table: PathTable, order: int = 1) -> MarkovChain:
    """Maximum-likelihood transition probabilities of the order-k chain."""
    weight = table.conversions + table.nulls
    used = weight > 0
    if not used.all():
        table = PathTable(
            table.channels,
            np.concatenate(([0], np.cumsum(table.lengths[used]))).astype(np.int64),
            table.codes[np.repeat(used, table.lengths)],
            table.conversions[used],
            table.nulls[used],
            table.values[used],
        )
        weight = weight[used]
    state_of, state_channels = state_codes(table, order)
    n = int(state_channels.shape[0])
    start, conv, null = n, n + 1, n + 2
    lengths = table.lengths
    firsts = table.offsets[:-1]
    lasts = table.offsets[1:] - 1
    touch_weight = np.repeat(weight, lengths)
    not_last = np.ones(len(table.codes), dtype=bool)
    not_last[lasts] = False
    src = np.concatenate(
        [np.full(table.n_paths, start), state_of[not_last], state_of[lasts], state_of[lasts]]
    )
    dst = np.concatenate(
        [
            state_of[firsts],
            state_of[np.flatnonzero(not_last) + 1],
            np.full(table.n_paths, conv),
            np.full(table.n_paths, null),
        ]
    )
    w = np.concatenate([weight, touch_weight[not_last], table.conversions, table.nulls])
    if n + 1 <= DENSE_MAX_STATES:
        counts = np.bincount(src * (n + 3) + dst, weights=w, minlength=(n + 1) * (n + 3))
        dense = counts.astype(np.float64).reshape(n + 1, n + 3)  # int64 when w is empty
        out = dense.sum(axis=1)
        inv = np.divide(1.0, out, out=np.zeros_like(out), where=out > 0)
        probs = dense * inv[:, None]
        return MarkovChain(
            order, table.channels, state_channels, probs[:, : n + 1], probs[:, conv].copy()
        )
    import scipy.sparse as sp

    sparse_counts = sp.csr_matrix(sp.coo_matrix((w, (src, dst)), shape=(n + 1, n + 3)))
    out = np.asarray(sparse_counts.sum(axis=1), dtype=np.float64).ravel()
    inv = np.divide(1.0, out, out=np.zeros_like(out), where=out > 0)
    sparse_probs = sp.csr_matrix(sp.diags(inv) @ sparse_counts)
    # Start is already the last transient index (index n).
    transient = sp.csr_matrix(sparse_probs[:, : n + 1])
    to_conversion = np.asarray(sparse_probs[:, conv].todense()).ravel()
    return MarkovChain(order, table.channels, state_channels, transient, to_conversion)


def absorption_probability(chain: MarkovChain, keep: npt.NDArray[np.bool_] | None = None) -> float:
    """P(reaching conversion from start) using only the transient states in ``keep``."""
    q: Any = chain.transient
    r = chain.to_conversion
    if keep is not None:
        idx = np.flatnonzero(keep)
        q = q[np.ix_(idx, idx)] if isinstance(q, np.ndarray) else q[idx][:, idx]
        r = r[idx]
        start = len(idx) - 1  # start is always kept and is the last index
    else:
        start = chain.start
    size = q.shape[0]
    if isinstance(q, np.ndarray):
        x = np.linalg.solve(np.eye(size) - q, r)
        return float(x[start])
    import scipy.sparse as sp
    from scipy.sparse.linalg import splu

    system = sp.csc_matrix(sp.identity(size, format="csc") - q)
    return float(splu(system).solve(r)[start])


def markov_model(table: PathTable, order: int = 1) -> MarkovResult:
    """Removal effects and channel credits of the order-k Markov model (exact)."""
    chain = estimate_chain(table, order)
    n_channels = len(table.channels)
    total_conv = float(table.conversions.sum())
    total_value = float(table.values.sum())
    if chain.n_states == 0:
        zero = np.zeros(n_channels)
        return MarkovResult(
            order, table.channels, 0.0, zero,
            ChannelCredit("markov", table.channels, zero, zero.copy(), zero.copy()), 0,
        )
    p_conv = absorption_probability(chain)
    effects = np.zeros(n_channels)
    if p_conv > 0:
        for c in range(n_channels):
            contains = (chain.state_channels == c).any(axis=1)
            if not contains.any():
                continue
            keep = np.append(~contains, True)
            p_removed = absorption_probability(chain, keep) if keep[:-1].any() else 0.0
            effects[c] = max(0.0, 1.0 - p_removed / p_conv)
    total_effect = effects.sum()
    share = effects / total_effect if total_effect > 0 else np.zeros(n_channels)
    credit = ChannelCredit(
        "markov", table.channels, share * total_conv, share * total_value, effects
    )
    return MarkovResult(order, table.channels, p_conv, effects, credit, chain.n_states)
