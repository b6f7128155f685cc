"""MMM domain without sampling: the history check, the steady-state response (pinned to
pymc-marketing's transforms) and the budget optimiser on hand-made posterior draws."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from pulse_mmm.domain.history import MIN_PERIODS, InsufficientHistory, check_history
from pulse_mmm.domain.model import AllocationRow, MmmDataset, ModelGrain, PosteriorDrawRow
from pulse_mmm.domain.optimize import default_bounds, expected_gain, optimize_budget
from pulse_mmm.domain.response import channel_response, response_parameters


def weekly(weeks: int, start: dt.date = dt.date(2026, 8, 3), *, spend: float = 100.0,
           grain: ModelGrain = ModelGrain.WEEK) -> MmmDataset:
    step = dt.timedelta(weeks=1) if grain == ModelGrain.WEEK else dt.timedelta(days=1)
    return MmmDataset(
        target="won_revenue", grain=grain,
        period_starts=tuple(start + i * step for i in range(weeks)),
        channels=("search", "social"),
        spend={"search": (spend,) * weeks, "social": (spend / 2,) * weeks},
        outcome=(1000.0,) * weeks,
    )


# --- history -------------------------------------------------------------------------------

def test_short_weekly_history_names_the_minimum_what_there_is_and_the_span() -> None:
    with pytest.raises(InsufficientHistory) as error:
        check_history(weekly(9), holdout_periods=4)
    assert str(error.value) == (
        "need at least 26 weeks with spend and outcome for a weekly model; "
        "have 9 (2026-08-03..2026-09-28)"
    )
    assert "\n" not in str(error.value)


def test_daily_history_has_its_own_minimum() -> None:
    with pytest.raises(InsufficientHistory, match=r"need at least 60 days .* daily model; have 40"):
        check_history(weekly(40, grain=ModelGrain.DAY), holdout_periods=14)
    check_history(weekly(MIN_PERIODS[ModelGrain.DAY], grain=ModelGrain.DAY), holdout_periods=14)


def test_enough_weeks_pass_and_a_long_holdout_raises_the_minimum() -> None:
    check_history(weekly(26), holdout_periods=4)
    with pytest.raises(InsufficientHistory, match="need at least 33 weeks"):
        check_history(weekly(30), holdout_periods=20)


def test_empty_leading_weeks_are_not_history() -> None:
    data = weekly(30)
    silent = 10
    padded = MmmDataset(
        target=data.target, grain=data.grain, period_starts=data.period_starts,
        channels=data.channels,
        spend={c: (0.0,) * silent + v[silent:] for c, v in data.spend.items()},
        outcome=(0.0,) * silent + data.outcome[silent:],
    )
    with pytest.raises(InsufficientHistory, match=r"have 20 \(2026-10-12\.\.2027-02-22\)"):
        check_history(padded, holdout_periods=4)


def test_no_channel_with_spend_is_insufficient_history() -> None:
    with pytest.raises(InsufficientHistory, match="no channel has spend in 30 weeks"):
        check_history(weekly(30, spend=0.0), holdout_periods=4)


# --- response ------------------------------------------------------------------------------

def draws_for(channel: str, lam: float, beta: float, *, spend_scale: float = 1000.0,
              target_scale: float = 10_000.0, n: int = 50, spread: float = 0.0,
              seed: int = 0) -> list[PosteriorDrawRow]:
    """``n`` draws around (lam, beta); ``spread`` is the relative sd of the jitter."""
    rng = np.random.default_rng(seed)
    return [
        PosteriorDrawRow(run_id="r", channel=channel, draw=i, adstock_alpha=0.3,
                         saturation_lam=lam * float(np.exp(spread * rng.normal())),
                         saturation_beta=beta * float(np.exp(spread * rng.normal())),
                         spend_scale=spend_scale, target_scale=target_scale)
        for i in range(n)
    ]


def test_numpy_response_matches_pymc_marketing_transforms() -> None:
    """The closed form in response.py is the library's: logistic saturation of the
    steady-state normalised geometric adstock (whose steady state is the spend itself)."""
    from pymc_marketing.mmm.transformers import geometric_adstock, logistic_saturation
    from pytensor.xtensor import as_xtensor

    draws = draws_for("search", lam=2.5, beta=0.4, spread=0.3, n=5)
    params = response_parameters(draws)["search"]
    spend = 730.0
    steady = as_xtensor(np.full(60, spend / 1000.0), dims=("date",))
    for k, row in enumerate(draws):
        adstocked = geometric_adstock(steady, alpha=row.adstock_alpha, l_max=8, dim="date",
                                      normalize=True).eval()
        expected = row.target_scale * row.saturation_beta * logistic_saturation(
            adstocked[-1], row.saturation_lam).eval()
        assert params.response(spend)[k] == pytest.approx(float(expected), rel=1e-9)


def test_response_is_zero_at_zero_and_increasing_and_concave() -> None:
    draws = draws_for("search", lam=3.0, beta=0.5, spread=0.2)
    grid = np.linspace(0, 3000, 61)
    curve = np.array([channel_response(draws, "search", s) for s in grid])  # (grid, draws)
    assert np.allclose(curve[0], 0.0)
    assert (np.diff(curve, axis=0) > 0).all()
    assert (np.diff(curve, n=2, axis=0) < 1e-9).all()
    # Marginal response is the derivative of the response.
    params = response_parameters(draws)["search"]
    h = 1e-3
    numeric = (params.response(500 + h) - params.response(500 - h)) / (2 * h)
    assert np.allclose(params.marginal(500.0), numeric, rtol=1e-5)


def test_unknown_channel_has_no_response() -> None:
    with pytest.raises(KeyError, match="tv"):
        channel_response(draws_for("search", 3.0, 0.5), "tv", 100.0)


# --- optimiser -----------------------------------------------------------------------------

def two_channels(spread: float = 0.0) -> list[PosteriorDrawRow]:
    """'search' saturates early (lam 6 on a 1,000 scale), 'display' is almost linear up to
    its scale (lam 0.5): the current search-heavy mix leaves money on the table."""
    return (draws_for("search", lam=6.0, beta=0.3, spread=spread, seed=1)
            + draws_for("display", lam=0.5, beta=1.0, spread=spread, seed=2))


def total_expected(draws: list[PosteriorDrawRow], split: dict[str, float], periods: int) -> float:
    return sum(periods * float(channel_response(draws, c, t / periods).mean()) for c, t in split.items())


def test_recommended_split_beats_the_current_mix_and_spends_the_budget() -> None:
    draws = two_channels(spread=0.1)
    rows = optimize_budget(draws, {"search": 900.0, "display": 100.0}, budget=8000.0, periods=8,
                           run_id="r")
    by_channel = {r.channel: r for r in rows}
    assert sum(r.recommended_spend for r in rows) == pytest.approx(8000.0)
    assert sum(r.current_spend for r in rows) == pytest.approx(8000.0)
    assert by_channel["search"].current_spend == pytest.approx(7200.0)  # 90 % of the budget
    assert by_channel["display"].recommended_spend > by_channel["display"].current_spend
    recommended = sum(r.expected_contribution for r in rows)
    current = sum(r.current_contribution for r in rows)
    assert recommended > current * 1.05
    for r in rows:
        assert r.expected_contribution_lower <= r.expected_contribution <= r.expected_contribution_upper
        assert (r.run_id, r.budget, r.periods) == ("r", 8000.0, 8)
    # It is the optimum: no nearby feasible split does better.
    best = {r.channel: r.recommended_spend for r in rows}
    for shift in (-200.0, 200.0):
        moved = {"search": best["search"] + shift, "display": best["display"] - shift}
        assert total_expected(draws, moved, 8) <= recommended + 1e-6
    mean, lower, upper = expected_gain(draws, rows)
    assert mean == pytest.approx(recommended - current)
    assert 0 < lower <= mean <= upper
    # each row carries the whole split's interval (per draw), not per-channel bounds summed
    assert {(r.gain_lower, r.gain_upper) for r in rows} == {(lower, upper)}
    summed = (sum(r.expected_contribution_lower for r in rows) - current,
              sum(r.expected_contribution_upper for r in rows) - current)
    assert summed[0] < lower and upper < summed[1]


def test_identical_channels_split_evenly() -> None:
    draws = draws_for("a", 2.0, 0.5) + draws_for("b", 2.0, 0.5)
    rows = optimize_budget(draws, {"a": 10.0, "b": 990.0}, budget=4000.0, periods=4, run_id="r")
    assert [r.recommended_spend for r in rows] == pytest.approx([2000.0, 2000.0], rel=1e-4)


def test_minimum_and_maximum_bound_the_recommendation() -> None:
    draws = two_channels()
    rows = optimize_budget(draws, {"search": 900.0, "display": 100.0}, budget=8000.0, periods=8,
                           minimum={"search": 3000.0}, maximum={"display": 4000.0}, run_id="r")
    by_channel = {r.channel: r.recommended_spend for r in rows}
    assert by_channel["search"] >= 3000.0 - 1e-6
    assert by_channel["display"] <= 4000.0 + 1e-6
    assert sum(by_channel.values()) == pytest.approx(8000.0)
    # The display cap binds (unconstrained it would take more).
    assert by_channel["display"] == pytest.approx(4000.0, rel=1e-6)


def test_no_gain_when_the_current_mix_is_already_optimal() -> None:
    draws = draws_for("a", 2.0, 0.5) + draws_for("b", 2.0, 0.5)
    rows = optimize_budget(draws, {"a": 1.0, "b": 1.0}, budget=4000.0, periods=4, run_id="r")
    mean, lower, upper = expected_gain(draws, rows)
    assert mean == pytest.approx(0.0, abs=1e-6)
    assert lower == pytest.approx(0.0, abs=1e-6) and upper == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"minimum": {"search": 5000.0, "display": 4000.0}},
     r"^the minimums add up to 9,000.00, more than the budget 8,000.00$"),
    ({"minimum": {"search": 3000.0}, "maximum": {"search": 2000.0}},
     r"^minimum for search \(3,000.00\) is above its maximum \(2,000.00\)$"),
    ({"maximum": {"tv": 100.0}}, r"^unknown channel\(s\) tv in --min/--max; known: display, search$"),
    ({"maximum": {"search": 1000.0, "display": 1000.0}},
     r"^the maximums add up to 2,000.00, less than the budget 8,000.00$"),
    ({"budget": 0.0}, r"^budget must be positive; got 0$"),
])
def test_infeasible_constraints_are_one_line_errors(kwargs: dict[str, object], message: str) -> None:
    arguments: dict[str, object] = {"budget": 8000.0, **kwargs}
    with pytest.raises(ValueError, match=message):
        optimize_budget(two_channels(), {"search": 900.0, "display": 100.0}, periods=8,
                        run_id="r", **arguments)  # type: ignore[arg-type]


def test_a_channel_without_draws_cannot_be_allocated() -> None:
    with pytest.raises(ValueError, match=r"no posterior draws for channel\(s\) tv"):
        optimize_budget(two_channels(), {"search": 1.0, "tv": 1.0}, budget=10.0, periods=1, run_id="r")


def test_expected_gain_of_no_allocation_is_zero() -> None:
    empty: list[AllocationRow] = []
    assert expected_gain(two_channels(), empty) == (0.0, 0.0, 0.0)


def test_default_bounds_keep_each_channel_near_its_current_share_and_the_evidence() -> None:
    draws = (draws_for("search", 1.0, 0.5, spend_scale=1000.0)
             + draws_for("social", 1.0, 0.5, spend_scale=300.0))
    current = {"search": 600.0, "social": 400.0}  # per period: shares 60 % / 40 %
    # 4 periods, budget 4000: mix 2400 / 1600, ±50 %; social's evidence cap 2 × 300 × 4
    low, high = default_bounds(draws, current, 4000.0, 4)
    assert low == pytest.approx({"search": 1200.0, "social": 800.0})
    assert high == pytest.approx({"search": 3600.0, "social": 2400.0})
    # the user's bounds replace the defaults of their channels
    low, high = default_bounds(draws, current, 4000.0, 4, minimum={"social": 3000.0},
                               maximum={"search": 1000.0})
    assert (low["social"], high["social"]) == (3000.0, 3000.0)
    assert (low["search"], high["search"]) == (1000.0, 1000.0)
    # past the evidence cap the ±50 % band still holds (the cap would leave no room)
    assert default_bounds(draws, current, 40_000.0, 4)[1] == pytest.approx(
        {"search": 36_000.0, "social": 24_000.0})
    # bounds that cannot hold the budget give way to the user's bounds alone (which the
    # optimiser then refuses in one line)
    cramped = {"search": 1000.0, "social": 1000.0}
    assert default_bounds(draws, current, 40_000.0, 4, maximum=cramped) == ({}, cramped)
    rows = optimize_budget(draws, current, 4000.0, 4, minimum=low, maximum=high, run_id="r")
    assert sum(r.recommended_spend for r in rows) == pytest.approx(4000.0)


@pytest.mark.parametrize("magnitude", [1.0, 1_000.0, 100_000.0])
def test_the_split_does_not_depend_on_the_currency_magnitude(magnitude: float) -> None:
    """The same problem in cents or in millions: the optimiser moves the same shares (at
    large magnitudes SLSQP once stopped at the start, recommending the current mix)."""
    draws = [
        PosteriorDrawRow(run_id="r", channel=d.channel, draw=d.draw,
                         adstock_alpha=d.adstock_alpha, saturation_lam=d.saturation_lam,
                         saturation_beta=d.saturation_beta,
                         spend_scale=d.spend_scale * magnitude,
                         target_scale=d.target_scale * magnitude)
        for d in two_channels()
    ]
    rows = optimize_budget(draws, {"search": 900.0 * magnitude, "display": 100.0 * magnitude},
                           budget=8000.0 * magnitude, periods=8, run_id="r")
    reference = optimize_budget(two_channels(), {"search": 900.0, "display": 100.0},
                                budget=8000.0, periods=8, run_id="r")
    assert [r.recommended_spend / magnitude for r in rows] == pytest.approx(
        [r.recommended_spend for r in reference], rel=1e-3)
    moved = {r.channel: r.recommended_spend - r.current_spend for r in rows}
    assert moved["display"] > 0.1 * 8000.0 * magnitude
