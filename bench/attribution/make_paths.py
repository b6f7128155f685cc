"""Synthetic journeys in ChannelAttribution's path-file layout.

Journeys are simulated from a seeded ground-truth Markov chain over 15 marketing channels
(start distribution, channel-to-channel transitions, per-channel conversion and drop-out
probabilities), then aggregated to unique paths with ``total_conversions``,
``total_conversion_value`` and ``total_null``. Defaults give ~2M journeys and ~200k
unique paths.

    .venv/bin/python bench/attribution/make_paths.py OUT.csv [--journeys 2000000] [--seed 7]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

CHANNELS = [
    "paid_search", "paid_social", "display", "organic_search", "organic_social", "email",
    "referral", "direct", "events", "webinar", "content", "partner", "sales", "affiliate",
    "video",
]


def simulate(journeys: int, seed: int, max_len: int = 30) -> tuple[np.ndarray, np.ndarray]:
    """Per journey: padded channel codes (-1 = none) and whether it converted."""
    rng = np.random.default_rng(seed)
    n = len(CHANNELS)
    start = rng.dirichlet(np.full(n, 0.7))
    transition = rng.dirichlet(np.full(n, 0.2), size=n)
    p_conv = rng.uniform(0.01, 0.09, size=n)
    p_exit = rng.uniform(0.22, 0.36, size=n)
    codes = np.full((journeys, max_len), -1, dtype=np.int8)
    converted = np.zeros(journeys, dtype=bool)
    state = rng.choice(n, size=journeys, p=start)
    alive = np.ones(journeys, dtype=bool)
    cum = np.cumsum(transition, axis=1)
    for step in range(max_len):
        idx = np.flatnonzero(alive)
        if len(idx) == 0:
            break
        codes[idx, step] = state[idx]
        u = rng.random(len(idx))
        conv = u < p_conv[state[idx]]
        leave = (~conv) & (u < p_conv[state[idx]] + p_exit[state[idx]])
        converted[idx[conv]] = True
        alive[idx[conv | leave]] = False
        if step == max_len - 1:
            alive[:] = False
        moving = idx[~(conv | leave)]
        r = rng.random(len(moving))[:, None]
        state[moving] = (r > cum[state[moving]]).sum(axis=1).clip(0, n - 1)
    return codes, converted


def aggregate(codes: np.ndarray, converted: np.ndarray, seed: int) -> list[tuple[str, int, float, int]]:
    rng = np.random.default_rng(seed + 1)
    uniq, inverse = np.unique(codes, axis=0, return_inverse=True)
    inverse = inverse.ravel()
    conv = np.bincount(inverse, weights=converted, minlength=len(uniq)).astype(np.int64)
    total = np.bincount(inverse, minlength=len(uniq)).astype(np.int64)
    # Deal sizes: lognormal around 1,000 per conversion.
    values = np.bincount(
        inverse,
        weights=converted * rng.lognormal(6.9, 0.6, size=len(converted)),
        minlength=len(uniq),
    )
    rows = []
    for row, c, t, v in zip(uniq, conv, total, values, strict=True):
        path = " > ".join(CHANNELS[x] for x in row if x >= 0)
        rows.append((path, int(c), round(float(v), 2), int(t - c)))
    return rows


def write(path: Path, rows: list[tuple[str, int, float, int]]) -> None:
    with open(path, "w") as out:
        out.write("path;total_conversions;total_conversion_value;total_null\n")
        out.writelines(f"{p};{c};{v};{n}\n" for p, c, v, n in rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("output", type=Path)
    parser.add_argument("--journeys", type=int, default=2_000_000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    started = time.perf_counter()
    codes, converted = simulate(args.journeys, args.seed)
    rows = aggregate(codes, converted, args.seed)
    write(args.output, rows)
    print(
        f"{args.output}: {len(rows):,} unique paths, {args.journeys:,} journeys, "
        f"{int(converted.sum()):,} conversions in {time.perf_counter() - started:.1f}s"
    )


if __name__ == "__main__":
    main()
