"""Attribution settings (env prefix ``PULSE_ATTRIBUTION_``).

Connection settings (Kafka, ClickHouse, data dir) come from
:class:`pulse_shared.settings.PulseSettings`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from pulse_attribution.domain.model import Milestone

GROUP_ID = "pulse-attribution"
SERVICE = "attribution"


class AttributionSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PULSE_ATTRIBUTION_", extra="ignore")

    host: str = Field(
        default="127.0.0.1",
        description="Address to listen on; the container image sets 0.0.0.0.",
    )
    port: int = Field(default=8001, description="HTTP port for /health and /metrics.")
    max_records: int = Field(
        default=20000, ge=1, description="Records per consumed batch (bench/pipeline: "
        "20000 gives ~100k touchpoints/s at ~210 MB peak RSS; 5000 ~64k/s at ~130 MB)."
    )
    conversion_flush_after_s: float = Field(
        default=0.02, ge=0, lt=60, description="How long the conversion consumers (pipeline "
        "events, subscriptions) top a polled batch up before computing its credits: "
        "conversions are few and each waits the whole top-up (PULSE_CONSUMER_FLUSH_AFTER_S, "
        "0.1 s, still applies to touchpoints)."
    )
    lookback_days: float = Field(default=90.0, gt=0, description="Default lookback window.")
    lookback_days_by_milestone: dict[Milestone, float] = Field(
        default_factory=dict,
        description='Per-milestone lookback, e.g. {"won": 180} (JSON in the env var).',
    )
    time_decay_half_life_days: float = Field(default=7.0, gt=0)
    markov_order: int = Field(default=1, ge=1, le=4)
    shapley_exact_max_channels: int = Field(default=15, ge=1, le=20)
    shapley_samples: int = Field(default=2000, ge=10, description="Permutations beyond exact.")
    recompute_interval_s: float = Field(
        default=3600.0, ge=0, description="Data-driven recompute period; 0 disables the timer."
    )
    recompute_initial_delay_s: float = Field(
        default=60.0, ge=0, description="First scheduled run after start-up."
    )
    shapley_value_function: Literal["conversions", "conversion_rate"] = "conversions"
    recompute_milestones: list[Milestone] = Field(
        default_factory=lambda: list(Milestone),
        description="Milestones the data-driven models are recomputed for.",
    )

    def lookback_for(self, milestone: Milestone) -> float:
        return self.lookback_days_by_milestone.get(milestone, self.lookback_days)
