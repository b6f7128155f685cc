"""Fit a Bayesian marketing mix model with pymc-marketing and turn the posterior into the
rows of a run, or reject the run with the reason when its diagnostics fail.

Model (pymc-marketing 0.19 ``pymc_marketing.mmm.multidimensional.MMM``), in scaled units:

    y_t / target_scale = intercept + sum_c beta_c * logistic(adstock_c(x_ct / spend_scale_c), lam_c)
                         + gamma_trend * t / T + Fourier(day of year) + sum_k gamma_k * control_kt
                         + Normal(0, sigma)

``spend_scale_c`` is the channel's maximum spend per period in the fitted window and
``target_scale`` the target's maximum (pymc-marketing's default ``max`` scaling); both are
stored with every posterior draw so curves can be recomputed in original units
(:mod:`pulse_mmm.domain.response`). Priors and thresholds are documented in docs/mmm.md.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import math
import os
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np

from pulse_mmm.domain.history import check_history
from pulse_mmm.domain.model import (
    BASELINE,
    INTERVAL_MASS,
    AllocationRow,
    ChannelResultRow,
    ContributionRow,
    MmmDataset,
    MmmRunResult,
    MmmRunRow,
    ModelGrain,
    PosteriorDrawRow,
    ResponseCurveRow,
    RunStatus,
)
from pulse_mmm.domain.optimize import default_bounds, optimize_budget
from pulse_mmm.domain.response import FloatArray, logistic_saturation, response_parameters

_LOWER_Q = 100 * (1 - INTERVAL_MASS) / 2
_UPPER_Q = 100 - _LOWER_Q
#: Periods whose spend is "the current mix" and the horizon of the stored allocation.
ALLOCATION_PERIODS = 8
#: Periods in a year, by grain: below this the yearly Fourier terms are not identifiable.
_PERIODS_PER_YEAR = {ModelGrain.WEEK: 52, ModelGrain.DAY: 365}
#: pymc-marketing's default saturation priors (LogisticSaturation.default_priors), repeated
#: here so ROI-informed priors can fall back to the same centre for channels without one.
_DEFAULT_LAM_MEAN = 3.0  # Gamma(alpha=3, beta=1)
_HALFNORMAL_2_MEAN, _HALFNORMAL_2_SD = 2.0 * math.sqrt(2 / math.pi), 2.0 * math.sqrt(1 - 2 / math.pi)


@dataclass(frozen=True)
class FitSettings:
    """Sampler settings and the diagnostics gate. Defaults are for a weekly model;
    :meth:`for_grain` gives daily ones."""

    draws: int = 500
    tune: int = 500
    chains: int = 2
    target_accept: float = 0.9
    sampler: str = "numpyro"  # or "pymc" (PyMC's own NUTS; ~3x slower here)
    seed: int = 20
    adstock_l_max: int = 8  # weeks of carry-over; 14 for daily models
    yearly_seasonality: int = 2  # Fourier modes; 0 = none (forced when history < 1 year)
    holdout_periods: int = 4  # the last periods are held out for the out-of-sample MAPE
    max_rhat: float = 1.05
    min_ess: float = 100.0  # bulk ESS, all chains together, of the worst parameter
    #: Held-out MAPE above 50 % means the model misses the weeks it did not see by more than
    #: half on average: no basis for moving budget. Weekly won revenue is lumpy (a few deals
    #: a week), so tighter consumer-MMM gates (10-20 %) would reject sound B2B models.
    max_holdout_mape: float = 0.5
    #: Divergent transitions beyond this share of draws mean the posterior was not explored.
    max_divergence_share: float = 0.01
    response_curve_points: int = 25
    posterior_draws_kept: int = 200
    #: Prior centre of each channel's ROI ("informed by attribution ROAS"): a dict sets the
    #: centres; an empty dict means "use the attribution ROAS passed to fit_mmm"; None = the
    #: library's default priors.
    roas_priors: dict[str, float] | None = None
    allocation_periods: int = ALLOCATION_PERIODS

    @classmethod
    def for_grain(cls, grain: ModelGrain | str, **overrides: Any) -> FitSettings:
        """Defaults for ``grain`` (daily: 14-day carry-over, 14 days held out), then
        ``overrides``."""
        base = cls()
        if ModelGrain(grain) == ModelGrain.DAY:
            base = replace(base, adstock_l_max=14, holdout_periods=14, allocation_periods=56)
        return replace(base, **overrides)


@dataclass(frozen=True)
class _Diagnostics:
    max_rhat: float
    min_ess: float
    divergences: int
    holdout_mape: float | None
    r_squared: float | None


def fit_mmm(
    dataset: MmmDataset,
    settings: FitSettings,
    *,
    run_id: str,
    version: int,
    started_at: dt.datetime,
    clock: Callable[[], dt.datetime],
    attribution_roas: Mapping[str, float | None] | None = None,
    progress: Callable[[str], None] | None = None,
) -> MmmRunResult:
    """Fit on all but the last ``settings.holdout_periods`` periods, check the diagnostics
    and return a published run with its rows, or a rejected run with the reason.
    Raises :class:`~pulse_mmm.domain.history.InsufficientHistory` for too little data."""
    say = progress or (lambda _message: None)
    check_history(dataset, settings.holdout_periods)
    grain = ModelGrain(dataset.grain)
    unit = "weeks" if grain == ModelGrain.WEEK else "days"
    n = len(dataset.period_starts)
    fit_n = n - settings.holdout_periods
    # A channel without spend in the fitted window has no identifiable response.
    channels = [c for c in dataset.channels if any(v > 0 for v in dataset.spend[c][:fit_n])]
    spend = np.array([dataset.spend[c] for c in channels], dtype=np.float64).T  # (n, C)
    outcome = np.array(dataset.outcome, dtype=np.float64)
    seasonality = settings.yearly_seasonality if fit_n >= _PERIODS_PER_YEAR[grain] else 0
    controls, control_scales = _controls(dataset, fit_n)

    say("loading pymc-marketing")
    _set_up_sampler(settings)
    import pandas as pd  # lazy: ~7 s of imports; the CLI must start fast
    from pymc_extras.prior import Prior
    from pymc_marketing.mmm import GeometricAdstock, LogisticSaturation
    from pymc_marketing.mmm.multidimensional import MMM

    columns = [f"ch_{i}" for i in range(len(channels))]  # channel names may not be valid coords
    frame = pd.DataFrame(spend, columns=columns)
    frame.insert(0, "date", pd.to_datetime(list(dataset.period_starts)))
    # The trend is a control column t / T (T = fitted periods) so it continues into the holdout.
    frame["trend"] = np.arange(n, dtype=np.float64) / fit_n
    for name, values in controls.items():
        frame[name] = values
    target = pd.Series(outcome, name="y")

    centres = _roi_centres(settings, attribution_roas)
    beta_mu, beta_sigma = _beta_prior(spend[:fit_n], outcome[:fit_n], channels, centres)
    model_config: dict[str, Any] = {}
    if centres:
        model_config["saturation_beta"] = Prior("Gamma", mu=beta_mu, sigma=beta_sigma, dims="channel")
    with _quiet_library():
        mmm = MMM(
            date_column="date", channel_columns=columns, target_column="y",
            adstock=GeometricAdstock(l_max=settings.adstock_l_max),
            saturation=LogisticSaturation(),
            control_columns=["trend", *controls],
            yearly_seasonality=seasonality or None,
            model_config=model_config or None,
        )
    say(f"fitting {len(channels)} channels × {fit_n} {unit} (last {settings.holdout_periods} "
        f"held out) with {settings.sampler} NUTS, {settings.chains} chains × "
        f"{settings.tune}+{settings.draws} draws")
    with _quiet_library():
        idata: Any = mmm.fit(
            frame.iloc[:fit_n], target.iloc[:fit_n], nuts_sampler=settings.sampler,
            draws=settings.draws, tune=settings.tune, chains=settings.chains,
            target_accept=settings.target_accept, random_seed=settings.seed,
            progressbar=False, cores=min(settings.chains, 2),
            # Our own gate below computes R-hat/ESS; PyMC's checks would only log warnings.
            compute_convergence_checks=False,
        )
    holdout_pred = np.zeros(0)
    if settings.holdout_periods > 0:
        say(f"predicting the {settings.holdout_periods} held-out {unit}")
        with _quiet_library():
            predicted = mmm.sample_posterior_predictive(
                frame.iloc[fit_n:], extend_idata=False, include_last_observations=True,
                progressbar=False, random_seed=settings.seed,
            )
    posterior = idata.posterior
    target_scale = float(np.asarray(idata.constant_data["target_scale"]).reshape(-1)[0])
    spend_scales = np.asarray(idata.constant_data["channel_scale"], dtype=np.float64).reshape(-1)
    free = [rv.name for rv in mmm.model.free_RVs if rv.name in posterior]
    if settings.holdout_periods > 0:
        # The prediction is of the scaled target.
        holdout_pred = np.asarray(predicted["y"].mean(dim="sample"), dtype=np.float64) * target_scale

    say("checking diagnostics")
    channel_contrib = _stack(posterior["channel_contribution"]) * target_scale  # (S, T, C)
    baseline = _baseline(posterior) * target_scale  # (S, T)
    diagnostics = _diagnostics(idata, free, channel_contrib, baseline, outcome[:fit_n],
                               outcome[fit_n:], holdout_pred)
    import pymc_marketing

    sampler_name = "numpyro NUTS" if settings.sampler == "numpyro" else f"{settings.sampler} NUTS"
    library = f"pymc-marketing {pymc_marketing.__version__} ({sampler_name})"
    parameters = _parameters_json(settings, model_config, centres, channels, dataset.channels,
                                  seasonality, control_scales, fit_n)
    reason = _rejection(diagnostics, settings, channel_contrib.shape[0])

    def run(status: RunStatus, why: str) -> MmmRunRow:
        return MmmRunRow(
            run_id=run_id, version=version, target=dataset.target, grain=grain.value,
            date_from=dataset.period_starts[0], date_to=dataset.period_starts[-1], periods=n,
            channels=list(channels), status=status.value, reason=why, library=library,
            parameters=parameters, max_rhat=diagnostics.max_rhat, min_ess=diagnostics.min_ess,
            divergences=diagnostics.divergences, holdout_periods=settings.holdout_periods,
            holdout_mape=diagnostics.holdout_mape, r_squared=diagnostics.r_squared,
            started_at=started_at, finished_at=clock(),
        )

    if reason:
        say(f"rejected: {reason}")
        return MmmRunResult(run=run(RunStatus.REJECTED, reason))

    say("computing ROI, contributions, response curves and the budget allocation")
    all_draws = _draw_rows(posterior, run_id, channels, spend_scales, target_scale, keep=None)
    kept = _draw_rows(posterior, run_id, channels, spend_scales, target_scale,
                      keep=settings.posterior_draws_kept)
    channel_rows = _channel_results(run_id, channels, spend[:fit_n], channel_contrib,
                                    all_draws, attribution_roas)
    contributions = _contribution_rows(run_id, channels, dataset, spend[:fit_n],
                                       channel_contrib, baseline)
    curves = _curve_rows(run_id, channels, spend[:fit_n], kept, settings.response_curve_points)
    allocations = _allocation(run_id, channels, spend, kept, settings.allocation_periods)
    return MmmRunResult(
        run=run(RunStatus.PUBLISHED, ""), channels=tuple(channel_rows),
        contributions=tuple(contributions), curves=tuple(curves), draws=tuple(kept),
        allocations=tuple(allocations),
    )


def _set_up_sampler(settings: FitSettings) -> None:
    if settings.sampler == "numpyro":
        import numpyro

        # XLA sees the CPU as one device, so numpyro would draw the chains one after the
        # other; one device per chain (up to the usable cores) runs them in parallel. Only
        # effective before JAX starts its backend, i.e. on the first fit in a process.
        numpyro.set_host_device_count(max(1, min(settings.chains, len(os.sched_getaffinity(0)))))


def preload(settings: FitSettings) -> None:
    """Set up the sampler and import the model libraries (3-8 s) ahead of a fit, e.g. in a
    worker process while the data it will fit is still being ingested
    (:mod:`pulse_mmm.worker`)."""
    _set_up_sampler(settings)
    with _quiet_library():
        import pandas  # noqa: F401
        import pymc_extras.prior  # noqa: F401
        import pymc_marketing.mmm.multidimensional  # noqa: F401
        if settings.sampler == "numpyro":
            import numpyro.infer  # noqa: F401
            import pymc.sampling.jax  # noqa: F401


@contextlib.contextmanager
def _quiet_library() -> Iterator[None]:
    """Silence the library's deprecation/experimental warnings (not the user's concern).

    stdout is deliberately not redirected here: ``contextlib.redirect_stdout`` swaps
    ``sys.stdout`` for the whole process, and the service runs fits in a worker thread
    while other threads log. PyMC's ``compute_deterministics`` prints one
    "Computing ... 100%" line to stdout; a single-threaded caller (the CLI) that needs a
    clean stdout can redirect around ``fit_mmm`` itself."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def _controls(dataset: MmmDataset, fit_n: int) -> tuple[dict[str, FloatArray], dict[str, float]]:
    """User controls scaled by their maximum absolute value in the fitted window, so the
    Normal(0, 2) prior on their coefficients means the same for any unit; constant ones
    (indistinguishable from the intercept) are left out."""
    result: dict[str, FloatArray] = {}
    scales: dict[str, float] = {}
    for i, (name, values) in enumerate(sorted(dataset.controls.items())):
        series = np.array(values, dtype=np.float64)
        if np.ptp(series[:fit_n]) == 0:
            continue
        scale = float(np.abs(series[:fit_n]).max()) or 1.0
        result[f"ctl_{i}"] = series / scale
        scales[name] = scale
    return result, scales


def _roi_centres(
    settings: FitSettings, attribution_roas: Mapping[str, float | None] | None
) -> dict[str, float]:
    if settings.roas_priors is None:
        return {}
    source: Mapping[str, float | None] = settings.roas_priors or dict(attribution_roas or {})
    return {c: float(v) for c, v in source.items() if v is not None and v > 0 and math.isfinite(v)}


def _beta_prior(
    spend: FloatArray, outcome: FloatArray, channels: list[str], centres: Mapping[str, float]
) -> tuple[FloatArray, FloatArray]:
    """Gamma prior (mean, sd) of each channel's saturation beta whose implied ROI over the
    fitted window is the channel's ROI centre, at the saturation prior's mean lam.

    ROI_c = target_scale * beta_c * sum_t logistic(x_ct / spend_scale_c, lam) / sum_t x_ct
    (normalised adstock keeps the total), so beta_c = ROI_c * sum_t x_ct /
    (target_scale * sum_t logistic(...)). The sd equals mean / sqrt(2) (Gamma shape 2):
    centred on the attribution evidence but wide enough for the data to overrule it.
    Channels without a centre keep the moments of the default HalfNormal(2)."""
    target_scale = float(np.max(outcome)) or 1.0
    mu = np.full(len(channels), _HALFNORMAL_2_MEAN)
    sigma = np.full(len(channels), _HALFNORMAL_2_SD)
    for i, channel in enumerate(channels):
        if channel not in centres:
            continue
        x = spend[:, i]
        scale = float(x.max()) or 1.0
        saturated = float(logistic_saturation(x / scale, np.asarray(_DEFAULT_LAM_MEAN)).sum())
        if saturated <= 0:
            continue
        mu[i] = centres[channel] * float(x.sum()) / (target_scale * saturated)
        sigma[i] = mu[i] / math.sqrt(2)
    return mu, sigma


def _stack(array: Any) -> FloatArray:
    """(chain, draw, ...) xarray → numpy (sample, ...)."""
    values = np.asarray(array, dtype=np.float64)
    return values.reshape(values.shape[0] * values.shape[1], *values.shape[2:])


def _baseline(posterior: Any) -> FloatArray:
    """Intercept + trend + seasonality + controls per draw and period (scaled units)."""
    channel = _stack(posterior["channel_contribution"])
    samples, periods = channel.shape[0], channel.shape[1]
    total = _stack(posterior["intercept_contribution"]).reshape(samples, -1)[:, :1] * np.ones(periods)
    if "yearly_seasonality_contribution" in posterior:
        total = total + _stack(posterior["yearly_seasonality_contribution"])
    if "control_contribution" in posterior:
        total = total + _stack(posterior["control_contribution"]).sum(axis=-1)
    result: FloatArray = total
    return result


def _diagnostics(
    idata: Any, free: list[str], channel_contrib: FloatArray, baseline: FloatArray,
    fitted: FloatArray, held_out: FloatArray, predicted: FloatArray,
) -> _Diagnostics:
    import arviz as az

    posterior = idata.posterior[free]
    rhat = az.rhat(posterior)  # type: ignore[no-untyped-call]
    ess = az.ess(posterior, method="bulk")  # type: ignore[no-untyped-call]
    max_rhat = max(float(np.nanmax(np.asarray(rhat[v]))) for v in free)
    min_ess = min(float(np.nanmin(np.asarray(ess[v]))) for v in free)
    divergences = int(np.asarray(idata.sample_stats["diverging"]).sum())
    expected = (channel_contrib.sum(axis=-1) + baseline).mean(axis=0)
    total = float(((fitted - fitted.mean()) ** 2).sum())
    r_squared = 1.0 - float(((fitted - expected) ** 2).sum()) / total if total > 0 else None
    nonzero = held_out != 0
    mape = (float(np.mean(np.abs(held_out[nonzero] - predicted[nonzero]) / np.abs(held_out[nonzero])))
            if nonzero.any() else None)
    return _Diagnostics(max_rhat=max_rhat, min_ess=min_ess, divergences=divergences,
                        holdout_mape=mape, r_squared=r_squared)


def _rejection(diagnostics: _Diagnostics, settings: FitSettings, samples: int) -> str:
    """One sentence naming every failed diagnostic with its value and threshold ('' = pass)."""
    failures = []
    if not diagnostics.max_rhat <= settings.max_rhat:
        failures.append(f"max R-hat {diagnostics.max_rhat:.3f} is above {settings.max_rhat:g}")
    if not diagnostics.min_ess >= settings.min_ess:
        failures.append(f"min bulk ESS {diagnostics.min_ess:.0f} is below {settings.min_ess:g}")
    allowed = settings.max_divergence_share * samples
    if diagnostics.divergences > allowed:
        failures.append(f"{diagnostics.divergences} divergent transitions exceed "
                        f"{settings.max_divergence_share:.0%} of {samples} draws")
    mape = diagnostics.holdout_mape
    if mape is not None and not mape <= settings.max_holdout_mape:
        failures.append(f"out-of-sample MAPE {mape:.1%} on the last {settings.holdout_periods} "
                        f"periods is above {settings.max_holdout_mape:.0%}")
    if not failures:
        return ""
    return "diagnostics failed: " + "; ".join(failures) + "; results not published"


def _draw_rows(
    posterior: Any, run_id: str, channels: list[str], spend_scales: FloatArray,
    target_scale: float, keep: int | None,
) -> list[PosteriorDrawRow]:
    alpha = _stack(posterior["adstock_alpha"])
    lam = _stack(posterior["saturation_lam"])
    beta = _stack(posterior["saturation_beta"])
    samples = alpha.shape[0]
    indices = (np.arange(samples) if keep is None or keep >= samples
               else np.unique(np.linspace(0, samples - 1, keep).round().astype(int)))
    return [
        PosteriorDrawRow(
            run_id=run_id, channel=channel, draw=k, adstock_alpha=float(alpha[s, i]),
            saturation_lam=float(lam[s, i]), saturation_beta=float(beta[s, i]),
            spend_scale=float(spend_scales[i]), target_scale=target_scale,
        )
        for i, channel in enumerate(channels)
        for k, s in enumerate(indices)
    ]


def _channel_results(
    run_id: str, channels: list[str], spend: FloatArray, contrib: FloatArray,
    draws: list[PosteriorDrawRow], attribution_roas: Mapping[str, float | None] | None,
) -> list[ChannelResultRow]:
    params = response_parameters(draws)
    rows = []
    for i, channel in enumerate(channels):
        total_spend = float(spend[:, i].sum())
        per_draw = contrib[:, :, i].sum(axis=1)
        roi = per_draw / total_spend if total_spend > 0 else None
        marginal = params[channel].marginal(float(spend[:, i].mean()))
        rows.append(ChannelResultRow(
            run_id=run_id, channel=channel, spend=total_spend,
            contribution=float(per_draw.mean()),
            contribution_lower=float(np.percentile(per_draw, _LOWER_Q)),
            contribution_upper=float(np.percentile(per_draw, _UPPER_Q)),
            roi=None if roi is None else float(roi.mean()),
            roi_lower=None if roi is None else float(np.percentile(roi, _LOWER_Q)),
            roi_upper=None if roi is None else float(np.percentile(roi, _UPPER_Q)),
            marginal_roi=float(marginal.mean()),
            attribution_roas=_roas(attribution_roas, channel),
        ))
    return rows


def _roas(attribution_roas: Mapping[str, float | None] | None, channel: str) -> float | None:
    value = None if attribution_roas is None else attribution_roas.get(channel)
    return None if value is None else float(value)


def _contribution_rows(
    run_id: str, channels: list[str], dataset: MmmDataset, spend: FloatArray,
    contrib: FloatArray, baseline: FloatArray,
) -> list[ContributionRow]:
    rows: list[ContributionRow] = []
    series = [(c, contrib[:, :, i], spend[:, i]) for i, c in enumerate(channels)]
    series.append((BASELINE, baseline, np.zeros(baseline.shape[1])))
    for channel, values, spent in series:
        mean = values.mean(axis=0)
        lower = np.percentile(values, _LOWER_Q, axis=0)
        upper = np.percentile(values, _UPPER_Q, axis=0)
        for t in range(values.shape[1]):
            rows.append(ContributionRow(
                run_id=run_id, channel=channel, period_start=dataset.period_starts[t],
                spend=float(spent[t]), contribution=float(mean[t]), lower=float(lower[t]),
                upper=float(upper[t]),
            ))
    return rows


def _curve_rows(
    run_id: str, channels: list[str], spend: FloatArray, draws: list[PosteriorDrawRow],
    points: int,
) -> list[ResponseCurveRow]:
    params = response_parameters(draws)
    rows: list[ResponseCurveRow] = []
    for i, channel in enumerate(channels):
        grid = np.linspace(0.0, 2.0 * float(spend[:, i].max()), max(points, 2))
        values = params[channel].response(grid)  # (points, draws)
        mean = values.mean(axis=1)
        lower = np.percentile(values, _LOWER_Q, axis=1)
        upper = np.percentile(values, _UPPER_Q, axis=1)
        rows.extend(
            ResponseCurveRow(run_id=run_id, channel=channel, spend=float(grid[k]),
                             contribution=float(mean[k]), lower=float(lower[k]),
                             upper=float(upper[k]))
            for k in range(len(grid))
        )
    return rows


def _allocation(
    run_id: str, channels: list[str], spend: FloatArray, draws: list[PosteriorDrawRow],
    periods: int,
) -> list[AllocationRow]:
    """The current budget (spend of the last ``periods`` periods, holdout included: it is
    the most recent mix) split optimally over the same horizon.

    Each channel moves within :func:`~pulse_mmm.domain.optimize.default_bounds` (±50 % of
    its current share, and not past twice its largest fitted spend per period): a curve is
    evidence near the spend it was fitted on."""
    periods = min(periods, spend.shape[0])
    recent = spend[-periods:].sum(axis=0)
    budget = float(recent.sum())
    if budget <= 0:
        return []
    current = {c: float(recent[i]) / periods for i, c in enumerate(channels)}
    low, high = default_bounds(draws, current, budget, periods)
    return optimize_budget(draws, current, budget, periods, minimum=low, maximum=high,
                           run_id=run_id)


def _parameters_json(
    settings: FitSettings, model_config: Mapping[str, Any], centres: Mapping[str, float],
    channels: list[str], all_channels: tuple[str, ...], seasonality: int,
    control_scales: Mapping[str, float], fit_n: int,
) -> str:
    priors = {
        "intercept": "Normal(0, 2)", "likelihood_sigma": "HalfNormal(2)",
        "adstock_alpha": "Beta(1, 3)", "saturation_lam": "Gamma(alpha=3, beta=1)",
        "saturation_beta": "HalfNormal(2)", "gamma_control (trend, controls)": "Normal(0, 2)",
        "gamma_fourier": "Laplace(0, 1)",
    }
    if "saturation_beta" in model_config:
        prior = model_config["saturation_beta"]
        priors["saturation_beta"] = (
            "Gamma(mu, sigma) by channel, centred on ROI "
            + json.dumps({c: round(v, 4) for c, v in centres.items()})
            + ": mu=" + json.dumps([round(float(v), 6) for v in np.atleast_1d(prior.parameters["mu"])])
            + " sigma=" + json.dumps([round(float(v), 6) for v in np.atleast_1d(prior.parameters["sigma"])])
        )
    settings_dict = asdict(settings)
    return json.dumps({
        "model": "geometric adstock (normalised) -> logistic saturation; intercept, linear trend, "
                 "yearly Fourier seasonality, controls; Normal likelihood; max scaling",
        "priors": priors,
        "adstock_l_max": settings.adstock_l_max,
        "yearly_seasonality": seasonality,
        "fitted_periods": fit_n,
        "channels_without_spend": [c for c in all_channels if c not in channels],
        "control_scales": dict(control_scales),
        "sampler": {k: settings_dict[k] for k in ("sampler", "draws", "tune", "chains",
                                                   "target_accept", "seed")},
        "thresholds": {k: settings_dict[k] for k in ("max_rhat", "min_ess", "max_holdout_mape",
                                                      "max_divergence_share")},
        "posterior_draws_kept": settings.posterior_draws_kept,
    }, sort_keys=True)
