"""Simulated recovery: weekly data generated here from a known truth (geometric adstock,
logistic saturation, ROI per channel), fitted with the real sampler. The true ROI must lie
inside the reported 90 % intervals for at least 3 of 4 channels, and the optimiser's split of
the current budget must beat the current mix under the TRUE response curves. Also: a run
whose diagnostics cannot pass is rejected with the reason and no results."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass

import numpy as np
import pytest

from pulse_mmm.domain.fit import FitSettings, fit_mmm
from pulse_mmm.domain.history import InsufficientHistory
from pulse_mmm.domain.model import BASELINE, MmmDataset, MmmRunResult, ModelGrain, RunStatus
from pulse_mmm.domain.optimize import expected_gain

WEEKS = 104
HOLDOUT = 4
L_MAX = 8
START = dt.date(2025, 1, 6)
STARTED = dt.datetime(2027, 1, 4, 6, 0, tzinfo=dt.UTC)
FINISHED = dt.datetime(2027, 1, 4, 6, 1, tzinfo=dt.UTC)


@dataclass(frozen=True)
class TrueChannel:
    name: str
    level: float  # typical weekly spend
    active_share: float  # share of weeks with spend
    alpha: float  # geometric adstock decay
    lam: float  # logistic saturation steepness on spend / max spend
    roi: float  # true ROI over the whole simulated window


#: search is big and saturated, display small and almost linear: the current mix overspends
#: search, so a correct model moves budget to display and social.
TRUTH = (
    TrueChannel("search", 3000.0, 1.0, 0.2, 3.5, 1.0),
    TrueChannel("social", 1500.0, 1.0, 0.5, 1.0, 2.0),
    TrueChannel("display", 700.0, 1.0, 0.4, 0.7, 3.0),
    TrueChannel("events", 2000.0, 0.35, 0.3, 1.5, 1.5),
)


def adstock(x: np.ndarray, alpha: float) -> np.ndarray:
    weights = alpha ** np.arange(L_MAX)
    weights /= weights.sum()
    out = np.zeros_like(x)
    for lag, weight in enumerate(weights):
        out[lag:] += weight * x[: len(x) - lag]
    return out


def logistic(x: np.ndarray | float, lam: float) -> np.ndarray:
    e = np.exp(-lam * np.asarray(x))
    return np.asarray((1 - e) / (1 + e))


@dataclass(frozen=True)
class Simulation:
    dataset: MmmDataset
    spend: np.ndarray  # (weeks, channels)
    contribution: np.ndarray  # (weeks, channels)
    beta: np.ndarray
    spend_max: np.ndarray

    def true_response(self, channel: int, spend_per_week: float) -> float:
        """Steady-state weekly contribution (normalised adstock keeps a steady level)."""
        c = TRUTH[channel]
        return float(self.beta[channel] * logistic(spend_per_week / self.spend_max[channel], c.lam))


def simulate(weeks: int = WEEKS, seed: int = 2027) -> Simulation:
    rng = np.random.default_rng(seed)
    t = np.arange(weeks)
    spend = np.zeros((weeks, len(TRUTH)))
    contribution = np.zeros_like(spend)
    beta = np.zeros(len(TRUTH))
    for i, c in enumerate(TRUTH):
        # Slow swings (campaign flights) times weekly noise, so spend spans its range.
        swing = 1 + 0.5 * np.sin(2 * np.pi * t / rng.uniform(20, 40) + rng.uniform(0, 6))
        spend[:, i] = c.level * swing * rng.gamma(5, 1 / 5, weeks) * (rng.random(weeks) < c.active_share)
    spend_max = spend.max(axis=0)
    for i, c in enumerate(TRUTH):
        saturated = logistic(adstock(spend[:, i] / spend_max[i], c.alpha), c.lam)
        beta[i] = c.roi * spend[:, i].sum() / saturated.sum()
        contribution[:, i] = beta[i] * saturated
    media = contribution.sum(axis=1)
    baseline = media.mean() * (1.0 + 0.3 * t / weeks + 0.15 * np.sin(2 * np.pi * t / 52))
    outcome = baseline + media + rng.normal(0, 0.04 * (baseline + media).mean(), weeks)
    names = tuple(c.name for c in TRUTH)
    dataset = MmmDataset(
        target="won_revenue", grain=ModelGrain.WEEK,
        period_starts=tuple(START + dt.timedelta(weeks=i) for i in range(weeks)),
        channels=names,
        spend={n: tuple(float(v) for v in spend[:, i]) for i, n in enumerate(names)},
        outcome=tuple(float(v) for v in outcome),
    )
    return Simulation(dataset, spend, contribution, beta, spend_max)


def fit(dataset: MmmDataset, settings: FitSettings, messages: list[str] | None = None) -> MmmRunResult:
    return fit_mmm(dataset, settings, run_id="run-1", version=3, started_at=STARTED,
                   clock=lambda: FINISHED, attribution_roas={"search": 4.0, "display": None},
                   progress=None if messages is None else messages.append)


@pytest.fixture(scope="module")
def simulation() -> Simulation:
    return simulate()


@pytest.fixture(scope="module")
def recovered(simulation: Simulation) -> tuple[MmmRunResult, list[str]]:
    messages: list[str] = []
    # Fewer draws than the production default keep this under a minute on 2 cores; the
    # diagnostics gate still applies (R-hat, bulk ESS >= 100, holdout MAPE).
    settings = FitSettings(draws=400, tune=400, seed=11)
    return fit(simulation.dataset, settings, messages), messages


def test_true_roi_lies_inside_the_90_percent_interval_for_most_channels(
    simulation: Simulation, recovered: tuple[MmmRunResult, list[str]],
) -> None:
    result, _ = recovered
    assert result.published, result.run.reason
    fitted = WEEKS - HOLDOUT
    by_channel = {row.channel: row for row in result.channels}
    inside = []
    for i, c in enumerate(TRUTH):
        row = by_channel[c.name]
        true_roi = simulation.contribution[:fitted, i].sum() / simulation.spend[:fitted, i].sum()
        assert row.spend == pytest.approx(simulation.spend[:fitted, i].sum())
        assert row.roi_lower is not None and row.roi_upper is not None and row.roi is not None
        assert row.roi_lower <= row.roi <= row.roi_upper
        assert row.contribution_lower <= row.contribution <= row.contribution_upper
        inside.append(row.roi_lower <= true_roi <= row.roi_upper)
    assert sum(inside) >= 3, [(r.channel, r.roi_lower, r.roi_upper) for r in result.channels]
    # The saturated channel's marginal ROI is below its average ROI; display's is not far off.
    assert by_channel["search"].marginal_roi is not None and by_channel["search"].roi is not None
    assert by_channel["search"].marginal_roi < by_channel["search"].roi
    assert by_channel["search"].attribution_roas == 4.0
    assert by_channel["display"].attribution_roas is None


def test_the_recommended_split_beats_the_current_mix_under_the_true_response(
    simulation: Simulation, recovered: tuple[MmmRunResult, list[str]],
) -> None:
    result, _ = recovered
    allocations = result.allocations
    assert {a.channel for a in allocations} == {c.name for c in TRUTH}
    periods = allocations[0].periods
    assert periods == 8
    budget = simulation.spend[-8:].sum()
    assert allocations[0].budget == pytest.approx(budget)
    assert sum(a.recommended_spend for a in allocations) == pytest.approx(budget)
    index = {c.name: i for i, c in enumerate(TRUTH)}

    def true_total(spend_of: str) -> float:
        return sum(periods * simulation.true_response(index[a.channel], getattr(a, spend_of) / periods)
                   for a in allocations)

    assert true_total("recommended_spend") > true_total("current_spend")
    by_channel = {a.channel: a for a in allocations}
    assert by_channel["search"].recommended_spend < by_channel["search"].current_spend
    # No channel is pushed beyond twice its largest observed weekly spend (the curves' range).
    for a in allocations:
        observed = simulation.spend[: WEEKS - HOLDOUT, index[a.channel]].max()
        assert a.recommended_spend <= 2 * observed * periods * (1 + 1e-6)
    mean, lower, upper = expected_gain(result.draws, allocations)
    assert lower <= mean <= upper and mean > 0


def test_a_published_run_carries_diagnostics_and_every_result_table(
    recovered: tuple[MmmRunResult, list[str]],
) -> None:
    result, messages = recovered
    run = result.run
    assert (run.status, run.reason, run.run_id, run.version) == (RunStatus.PUBLISHED, "", "run-1", 3)
    assert (run.date_from, run.date_to, run.periods) == (START, START + dt.timedelta(weeks=WEEKS - 1), WEEKS)
    assert run.library.startswith("pymc-marketing 0.19") and "numpyro NUTS" in run.library
    assert run.max_rhat is not None and run.max_rhat <= 1.05
    assert run.min_ess is not None and run.min_ess >= 100
    assert run.holdout_periods == HOLDOUT and run.holdout_mape is not None and run.holdout_mape <= 0.5
    assert run.r_squared is not None and 0.5 < run.r_squared <= 1
    assert (run.started_at, run.finished_at) == (STARTED, FINISHED)
    parameters = json.loads(run.parameters)
    assert parameters["thresholds"]["max_rhat"] == 1.05 and parameters["sampler"]["sampler"] == "numpyro"
    channels = [c.name for c in TRUTH]
    assert run.channels == channels
    fitted = WEEKS - HOLDOUT
    assert len(result.contributions) == (len(channels) + 1) * fitted
    assert {r.channel for r in result.contributions} == {*channels, BASELINE}
    assert len(result.curves) == len(channels) * 25
    search_curve = [r.contribution for r in result.curves if r.channel == "search"]
    assert search_curve[0] == 0 and all(b > a for a, b in zip(search_curve, search_curve[1:], strict=False))
    assert len(result.draws) == len(channels) * 200
    assert {d.draw for d in result.draws} == set(range(200))
    assert any("fitting 4 channels × 100 weeks" in m for m in messages)


def test_a_run_whose_diagnostics_cannot_pass_is_rejected_with_the_reason() -> None:
    short = simulate(weeks=40, seed=5).dataset
    # roas_priors={} centres the beta priors on the attribution ROAS passed by fit().
    settings = FitSettings(draws=60, tune=60, max_rhat=0.5, yearly_seasonality=0, roas_priors={})
    result = fit(short, settings)
    assert result.run.status == RunStatus.REJECTED and not result.published
    assert "max R-hat" in result.run.reason and "is above 0.5" in result.run.reason
    assert "\n" not in result.run.reason
    assert result.run.max_rhat is not None and result.run.max_rhat > 0.5
    priors = json.loads(result.run.parameters)["priors"]
    assert priors["saturation_beta"].startswith('Gamma(mu, sigma) by channel, centred on ROI {"search": 4.0}')
    assert (result.channels, result.contributions, result.curves, result.draws,
            result.allocations) == ((), (), (), (), ())


def test_roi_centred_beta_prior_implies_the_centre_roi(simulation: Simulation) -> None:
    """Prior beta mean × target scale × Σ logistic(x / max x, lam=3) / Σ x = the ROI centre."""
    from pulse_mmm.domain.fit import _beta_prior

    spend, outcome = simulation.spend[:100], np.array(simulation.dataset.outcome[:100])
    names = [c.name for c in TRUTH]
    mu, sigma = _beta_prior(spend, outcome, names, {"social": 2.5})
    x = spend[:, 1]
    implied = mu[1] * outcome.max() * logistic(x / x.max(), 3.0).sum() / x.sum()
    assert implied == pytest.approx(2.5)
    assert sigma[1] == pytest.approx(mu[1] / np.sqrt(2))
    assert mu[0] == pytest.approx(2 * np.sqrt(2 / np.pi))  # HalfNormal(2)'s mean, unchanged


def test_too_little_history_fails_before_sampling() -> None:
    with pytest.raises(InsufficientHistory, match="need at least 26 weeks"):
        fit(simulate(weeks=12).dataset, FitSettings())
