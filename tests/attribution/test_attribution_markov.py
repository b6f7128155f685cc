"""Markov order k: hand-worked cases, exactness against an independent dense solution,
order 2, invariants; Shapley: exact vs closed form and brute force, sampling beyond 15."""

from __future__ import annotations

import itertools
import math
import random

import numpy as np
import pytest

from pulse_attribution.domain.markov import markov_model
from pulse_attribution.domain.paths import PathTable, heuristic_model
from pulse_attribution.domain.shapley import exact_shapley, shapley_model


def dense_removal_effects(
    paths: list[list[str]], conv: list[float], null: list[float], order: int
) -> tuple[float, dict[str, float]]:
    """Independent reference: states as tuples, dense matrices, fundamental matrix."""
    counts: dict[tuple[object, object], float] = {}

    def add(a: object, b: object, w: float) -> None:
        counts[(a, b)] = counts.get((a, b), 0.0) + w

    for path, c, n in zip(paths, conv, null, strict=True):
        if c + n == 0:
            continue
        states = [tuple(path[max(0, i - order + 1) : i + 1]) for i in range(len(path))]
        add("START", states[0], c + n)
        for a, b in itertools.pairwise(states):
            add(a, b, c + n)
        add(states[-1], "CONV", c)
        add(states[-1], "NULL", n)
    transient = sorted({a for a, _ in counts} - {"START"}, key=str) + ["START"]
    channels = sorted({ch for p in paths for ch in p})

    def p_conv(removed: str | None) -> float:
        kept = [s for s in transient if s == "START" or removed not in s]  # type: ignore[operator]
        idx = {s: i for i, s in enumerate(kept)}
        size = len(kept)
        q = np.zeros((size, size))
        r = np.zeros(size)
        totals: dict[object, float] = {}
        for (a, _), w in counts.items():
            totals[a] = totals.get(a, 0.0) + w
        for (a, b), w in counts.items():
            if a not in idx:
                continue
            if b == "CONV":
                r[idx[a]] += w / totals[a]
            elif b in idx:
                q[idx[a], idx[b]] += w / totals[a]
        fundamental = np.linalg.inv(np.eye(size) - q)
        return float((fundamental @ r)[idx["START"]])

    base = p_conv(None)
    return base, {ch: max(0.0, 1 - p_conv(ch) / base) for ch in channels}


def random_paths(seed: int, n: int, channels: str = "abcdef") -> tuple[list[list[str]], list[float], list[float]]:
    rng = random.Random(seed)
    paths = [[rng.choice(channels) for _ in range(rng.randint(1, 6))] for _ in range(n)]
    conv = [float(rng.randint(0, 3)) for _ in range(n)]
    null = [float(rng.randint(0, 5)) for _ in range(n)]
    return paths, conv, null


def test_hand_worked_order_1_and_2() -> None:
    table = PathTable.from_strings(["a > b", "c > b"], [1, 0], [0, 1])
    first = markov_model(table, order=1)
    assert first.channels == ("a", "b", "c")
    assert first.conversion_probability == pytest.approx(0.5)
    # Remove a: 0.5·0.5 → RE 0.5; remove c: same; remove b: 0 → RE 1.
    assert first.removal_effects == pytest.approx([0.5, 1.0, 0.5])
    assert first.credit.conversions == pytest.approx([0.25, 0.5, 0.25])
    second = markov_model(table, order=2)
    # Order 2 remembers where b came from: only a→b converts, c never contributes.
    assert second.n_states == 4
    assert second.removal_effects == pytest.approx([1.0, 1.0, 0.0])
    assert second.credit.conversions == pytest.approx([0.5, 0.5, 0.0])


@pytest.mark.parametrize("order", [1, 2, 3])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_exact_against_dense_reference(order: int, seed: int) -> None:
    paths, conv, null = random_paths(seed, 60)
    table = PathTable.from_sequences(paths, conv, null)
    result = markov_model(table, order=order)
    base, effects = dense_removal_effects(paths, conv, null, order)
    assert result.conversion_probability == pytest.approx(base, rel=1e-10)
    assert dict(zip(result.channels, result.removal_effects, strict=True)) == pytest.approx(
        effects, rel=1e-9, abs=1e-12
    )


def test_order_2_differs_from_order_1_and_matches_reference() -> None:
    paths = [["a", "b", "c"], ["b", "a", "c"], ["a", "b"], ["b", "a"], ["c"]]
    conv, null = [3.0, 0.0, 1.0, 0.0, 1.0], [1.0, 4.0, 2.0, 2.0, 5.0]
    table = PathTable.from_sequences(paths, conv, null)
    one, two = markov_model(table, 1), markov_model(table, 2)
    assert not np.allclose(one.removal_effects, two.removal_effects)
    _, ref = dense_removal_effects(paths, conv, null, 2)
    assert dict(zip(two.channels, two.removal_effects, strict=True)) == pytest.approx(ref)


def test_invariants_on_random_data() -> None:
    paths, conv, null = random_paths(7, 300, "abcdefghij")
    values = [c * 10.0 for c in conv]
    table = PathTable.from_sequences(paths, conv, null, values)
    for order in (1, 2):
        result = markov_model(table, order)
        assert result.credit.conversions.sum() == pytest.approx(sum(conv))
        assert result.credit.values.sum() == pytest.approx(sum(values))
        assert (result.credit.conversions >= 0).all() and (result.removal_effects >= 0).all()
        assert (result.removal_effects <= 1).all()


def test_channel_that_never_converts_gets_nothing() -> None:
    table = PathTable.from_strings(
        ["a > b", "b", "x > x", "x", "a"], [2, 1, 0, 0, 1], [1, 3, 4, 2, 0]
    )
    result = markov_model(table)
    by = dict(zip(result.channels, result.credit.conversions, strict=True))
    assert by["x"] == 0.0
    assert sum(by.values()) == pytest.approx(4.0)
    # Order 1 has no memory: a channel that only appears in non-converting journeys but
    # leads into a converting channel does get credit (it raises P(conversion)).
    leading = markov_model(
        PathTable.from_strings(["a > b", "b", "x > b"], [2, 1, 0], [1, 3, 2])
    )
    assert dict(zip(leading.channels, leading.removal_effects, strict=True))["x"] > 0


def test_single_channel_and_no_conversions() -> None:
    solo = markov_model(PathTable.from_strings(["a", "a > a"], [1, 2], [5, 1]))
    assert solo.removal_effects == pytest.approx([1.0])
    assert solo.credit.conversions == pytest.approx([3.0])
    none = markov_model(PathTable.from_strings(["a > b", "b"], [0, 0], [3, 1]))
    assert none.conversion_probability == 0.0
    assert (none.credit.conversions == 0).all()
    empty = markov_model(PathTable.from_strings([], [], []))
    assert empty.channels == ()


def test_zero_weight_paths_do_not_change_the_chain() -> None:
    base = PathTable.from_strings(["a > b", "b"], [1, 1], [1, 2])
    padded = PathTable.from_strings(["a > b", "b", "a > a > b"], [1, 1, 0], [1, 2, 0])
    assert markov_model(padded).removal_effects == pytest.approx(
        markov_model(base).removal_effects
    )


def test_path_parsing_strips_and_drops_empty() -> None:
    table = PathTable.from_strings(["a > b >c", "", "b"], [1, 5, 2], [0, 5, 1], sep=">")
    assert table.channels == ("a", "b", "c")
    assert table.n_paths == 2
    assert table.path(0) == ["a", "b", "c"]
    assert table.conversions.tolist() == [1.0, 2.0]


def test_heuristic_models_on_paths() -> None:
    table = PathTable.from_strings(
        ["a > b > direct", "direct", "b > a"], [2, 1, 1], [0, 0, 0], [20, 10, 5]
    )
    def by(model: str) -> dict[str, float]:
        r = heuristic_model(table, model)
        return dict(zip(r.channels, r.conversions.tolist(), strict=True))

    assert by("first_touch") == {"a": 2.0, "b": 1.0, "direct": 1.0}
    assert by("last_touch") == {"a": 1.0, "b": 0.0, "direct": 3.0}
    assert by("last_non_direct") == {"a": 1.0, "b": 2.0, "direct": 1.0}
    assert by("linear") == pytest.approx({"a": 2 / 3 + 0.5, "b": 2 / 3 + 0.5, "direct": 2 / 3 + 1})
    assert by("position_based") == pytest.approx({"a": 0.8 + 0.5, "b": 0.4 + 0.5, "direct": 0.8 + 1})
    values = heuristic_model(table, "linear").values
    assert values.sum() == pytest.approx(35.0)
    with pytest.raises(ValueError):
        heuristic_model(table, "w_shaped")


# -- Shapley ---------------------------------------------------------------------------


def test_shapley_exact_matches_closed_form_for_conversion_counts() -> None:
    paths, conv, null = random_paths(11, 200, "abcdefgh")
    table = PathTable.from_sequences(paths, conv, null)
    result = shapley_model(table)
    assert result.exact
    # v(S) = Σ_{T⊆S} conv(T) is a sum of unanimity games: φ_c = Σ_{T∋c} conv(T)/|T|.
    closed: dict[str, float] = {}
    for path, c in zip(paths, conv, strict=True):
        distinct = set(path)
        for ch in distinct:
            closed[ch] = closed.get(ch, 0.0) + c / len(distinct)
    assert dict(zip(result.channels, result.shapley_values, strict=True)) == pytest.approx(closed)
    assert result.credit.conversions.sum() == pytest.approx(sum(conv))


def test_shapley_conversion_rate_matches_permutation_brute_force() -> None:
    paths, conv, null = random_paths(5, 40, "abcd")
    table = PathTable.from_sequences(paths, conv, null)
    result = shapley_model(table, value_function="conversion_rate")

    def v(coalition: set[str]) -> float:
        c = sum(x for p, x in zip(paths, conv, strict=True) if set(p) <= coalition)
        n = sum(x for p, x in zip(paths, null, strict=True) if set(p) <= coalition)
        return c / (c + n) if c + n else 0.0

    players = list(result.channels)
    brute = dict.fromkeys(players, 0.0)
    for order in itertools.permutations(players):
        seen: set[str] = set()
        for p in order:
            brute[p] += v(seen | {p}) - v(seen)
            seen.add(p)
    brute = {p: x / math.factorial(len(players)) for p, x in brute.items()}
    assert dict(zip(players, result.shapley_values, strict=True)) == pytest.approx(brute)
    assert result.credit.conversions.sum() == pytest.approx(sum(conv))
    assert (result.credit.conversions >= 0).all()


def test_shapley_never_converting_channel_gets_zero() -> None:
    table = PathTable.from_strings(["a > b", "z", "z > z"], [3, 0, 0], [1, 5, 5])
    result = shapley_model(table)
    assert dict(zip(result.channels, result.shapley_values, strict=True)) == pytest.approx(
        {"a": 1.5, "b": 1.5, "z": 0.0}
    )


def test_shapley_beyond_15_channels_is_sampled_close_to_exact() -> None:
    names = [f"ch{i:02d}" for i in range(16)]
    paths, conv, null = random_paths(3, 150, "".join(chr(65 + i) for i in range(16)))
    paths = [[names[ord(c) - 65] for c in p] for p in paths]
    table = PathTable.from_sequences(paths, conv, null)
    approx = shapley_model(table, value_function="conversion_rate", samples=400, seed=1)
    assert not approx.exact
    assert (approx.standard_errors > 0).any()
    # Reference: the exact formula over all 2^16 coalitions.
    from pulse_attribution.domain.shapley import _value_table, coalition_groups

    masks, c, n, _ = coalition_groups(table)
    exact = exact_shapley(_value_table(16, masks, c, n, "conversion_rate"), 16)
    err = np.abs(approx.shapley_values - exact)
    assert (err <= 5 * approx.standard_errors + 1e-9).all()
    # Same seed, same answer.
    again = shapley_model(table, value_function="conversion_rate", samples=400, seed=1)
    assert np.array_equal(again.shapley_values, approx.shapley_values)
