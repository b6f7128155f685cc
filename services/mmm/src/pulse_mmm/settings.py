"""Marketing mix model settings (env prefix ``PULSE_MMM_``).

Connection settings (Kafka, ClickHouse, data dir) come from
:class:`pulse_shared.settings.PulseSettings`. The sampler settings and diagnostic
thresholds become the fit's :class:`pulse_mmm.domain.fit.FitSettings`
(:meth:`MmmSettings.fit_settings`); ``pulse mmm fit`` options override them per run.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from pulse_mmm.domain.model import ModelGrain, Target

if TYPE_CHECKING:
    from pulse_mmm.domain.fit import FitSettings

SERVICE = "mmm"
WEEK_S = 7 * 24 * 3600.0


class MmmSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PULSE_MMM_", extra="ignore")

    host: str = Field(
        default="127.0.0.1",
        description="Address to listen on; the container image sets 0.0.0.0.",
    )
    port: int = Field(default=8005, description="HTTP port for /health, /metrics, /asyncapi.")
    refit_interval_s: float = Field(
        default=WEEK_S, ge=0, description="Scheduled refit period (default weekly: spend and "
        "outcomes move slowly, and a fit takes minutes of CPU); 0 disables the schedule."
    )
    refit_initial_delay_s: float = Field(
        default=300.0, ge=0, description="First scheduled refit after start-up (later ones "
        "every PULSE_MMM_REFIT_INTERVAL_S)."
    )
    target: str = Field(
        default=str(Target.WON_REVENUE), description="What the scheduled refit explains: "
        "won_revenue (won pipeline amount), new_mrr, or kpi:<additive KPI>."
    )
    grain: ModelGrain = Field(default=ModelGrain.WEEK, description="week (ISO, Monday) or day.")
    window_weeks: int = Field(
        default=104, ge=1, le=520, description="History a scheduled fit reads: the last this "
        "many complete weeks (× 7 days at day grain) up to the last day with spend."
    )
    draws: int = Field(default=500, ge=10, description="Posterior draws per chain.")
    tune: int = Field(default=500, ge=10, description="Tuning (warm-up) steps per chain.")
    chains: int = Field(default=2, ge=1, le=16, description="MCMC chains (2 cores: 2).")
    sampler: str = Field(
        default="numpyro", description="NUTS implementation: numpyro (JAX, fastest on CPU) "
        "or pymc."
    )
    holdout_periods: int | None = Field(
        default=None, ge=1, description="Last periods held out to measure out-of-sample "
        "MAPE (default: the fit's for the grain, 4 weeks or 14 days)."
    )
    max_rhat: float = Field(
        default=1.05, gt=1, description="A run whose worst R-hat exceeds this is rejected."
    )
    min_ess: float = Field(
        default=100.0, gt=0, description="A run whose smallest bulk effective sample size "
        "(all chains) is below this is rejected."
    )
    max_holdout_mape: float = Field(
        default=0.5, gt=0, description="A run whose out-of-sample MAPE on the held-out "
        "periods exceeds this (0.5 = 50 %) is rejected."
    )
    use_attribution_prior: bool = Field(
        default=False, description="Centre each channel's ROI prior on its position-based "
        "attribution ROAS over the window (informative prior; off = weakly informative)."
    )

    @field_validator("target")
    @classmethod
    def _known_target(cls, value: str) -> str:
        from pulse_mmm.storage import parse_target

        return parse_target(value)

    def fit_settings(self, grain: ModelGrain | str | None = None, **overrides: Any) -> FitSettings:
        """The fit's settings for ``grain`` (default: these settings' grain) from these
        settings, then ``overrides`` (per-run values; None = keep)."""
        from pulse_mmm.domain.fit import FitSettings

        wanted: dict[str, Any] = {
            "draws": self.draws, "tune": self.tune, "chains": self.chains,
            "sampler": self.sampler, "holdout_periods": self.holdout_periods,
            "max_rhat": self.max_rhat, "min_ess": self.min_ess,
            "max_holdout_mape": self.max_holdout_mape,
            "use_attribution_prior": self.use_attribution_prior,
        }
        wanted.update(overrides)
        # An empty dict of prior centres means "the attribution ROAS given to the fit".
        wanted["roas_priors"] = {} if wanted.pop("use_attribution_prior") else None
        return FitSettings.for_grain(
            grain or self.grain, **{k: v for k, v in wanted.items() if v is not None
                                    or k == "roas_priors"})
