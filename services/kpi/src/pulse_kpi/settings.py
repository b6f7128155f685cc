"""KPI service settings (env prefix ``PULSE_KPI_``).

Connection settings (Kafka, ClickHouse, data dir) come from
:class:`pulse_shared.settings.PulseSettings`.
"""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

GROUP_ID = "pulse-kpi"
SERVICE = "kpi"


class KpiSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PULSE_KPI_", extra="ignore")

    host: str = Field(
        default="127.0.0.1",
        description="Address to listen on; the container image sets 0.0.0.0.",
    )
    port: int = Field(default=8002, description="HTTP port for /health, /metrics, /asyncapi.")
    gross_margin: float = Field(
        default=0.8, gt=0, le=1, description="Gross margin used by LTV and CAC payback."
    )
    churn_risk_drop: float = Field(
        default=0.5, gt=0, le=1, description="A paying account is a churn risk "
        "(churn_risk_accounts) when its usage per day dropped by more than this share "
        "against the previous month (0.5 = 50 %)."
    )
    snapshot_min_interval_s: float = Field(
        default=0.1, ge=0, description="At most one snapshot per total (dimension all) KPI "
        "key per this many seconds (bounds the freshness added by rate limiting)."
    )
    snapshot_dimension_min_interval_s: float = Field(
        default=0.25, ge=0, description="At most one snapshot per breakdown (channel, campaign "
        "…) KPI key per this many seconds (they are far more numerous); a later change waits "
        "and its latest value goes out when the interval has passed. A key that changes "
        "continuously is at most this stale on the topic. (Campaign keys change at most once "
        "per campaign pass anyway; at 1 s the interval alone held a busy campaign's day spend "
        "back ~0.5 s on average.)"
    )
    snapshot_horizon_days: int = Field(
        default=62, ge=0, description="Changes of periods that ended more than this many "
        "days ago (backfills) are stored but not published as snapshots; 0 = publish all."
    )
    breakdown_interval_s: float = Field(
        default=1.0, gt=0, description="How often the breakdowns other than campaign KPIs "
        "(trials by channel, deliverability, segment …) are recomputed (totals are "
        "recomputed with every batch, before its commit)."
    )
    campaign_breakdown_delay_s: float = Field(
        default=0.1, ge=0, description="Channel/campaign KPIs of spend, credits and budgets "
        "are recomputed, for the channels and campaigns a batch touched, this long after the "
        "batch (batches finishing meanwhile join the same pass)."
    )
    flush_interval_s: float = Field(
        default=0.02, gt=0, description="How often deferred (rate-limited) snapshots are sent."
    )
    max_snapshots_per_flush: int = Field(
        default=500, ge=1, description="Pacing of deferred snapshots: at most this many per "
        "flush tick (channel/campaign bursts must not starve the totals)."
    )
    close_enabled: bool = Field(
        default=True, description="Publish daily closes (final=True) after midnight UTC."
    )
    close_delay_s: float = Field(
        default=300.0, ge=0, description="Seconds after midnight UTC when closes are sent."
    )
    max_records: int = Field(default=5000, ge=1, description="Records per consumed batch.")
