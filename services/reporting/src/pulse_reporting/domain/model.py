"""The report as data: what every renderer (Markdown, HTML, PDF, JSON, CSV) draws from.

Numbers are carried exactly as read from ``kpi_values`` (floats, no rounding); renderers
format them. ``None`` means the KPI service has no value for it (undefined or not computed).
"""

from __future__ import annotations

import datetime as dt
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

RECOMMENDATION_LABEL = "Recommendation for manual review (not applied automatically)"


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Better(StrEnum):
    """Which direction of change is good news for a KPI."""

    UP = "up"
    DOWN = "down"
    NEUTRAL = "neutral"


class Tone(StrEnum):
    """Colour of a delta: good (green), bad (red), neutral (grey)."""

    GOOD = "good"
    BAD = "bad"
    NEUTRAL = "neutral"


class Fmt(StrEnum):
    """How a number is displayed."""

    MONEY = "money"
    RATIO = "ratio"  # 3.2x
    PERCENT = "percent"  # fraction 0.05 -> 5.0 %
    COUNT = "count"
    MONTHS = "months"
    DAYS = "days"


class KpiValue(_Model):
    """One row of ``kpi_values`` (read with FINAL)."""

    kpi: str
    grain: str
    period: str
    dimension: str = "all"
    dimension_value: str = ""
    value: float | None
    unit: str = ""


class AlertRecord(_Model):
    """An alert that fired on the period's data (from ``alert_events``).

    ``period`` is the KPI period whose data fired it (``2026-11``, ``2026-W48``, a day);
    ``data_time`` when that data was computed. ``starts_at`` is only when the alerts service
    processed it, which can be days later (a recompute in December of November's data)."""

    alert_id: str
    rule: str
    state: str
    severity: str
    kpi: str
    labels: dict[str, str] = Field(default_factory=dict)
    summary: str = ""
    value: float | None = None
    threshold: float | None = None
    starts_at: dt.datetime
    ends_at: dt.datetime | None = None
    period: str = ""
    data_time: dt.datetime | None = None


class PathRecord(_Model):
    """A conversion path (channel sequence) with how many conversions followed it."""

    path: tuple[str, ...]
    conversions: int
    revenue: float = 0.0


class Delta(_Model):
    previous: float | None
    change: float | None
    change_pct: float | None
    tone: Tone
    # Why there is no comparison although a value exists ("no data before 2025-11-03"):
    # a base period without source data is missing, not zero.
    unavailable: str | None = None


class KpiTile(_Model):
    kpi: str  # the kpi_values name actually read (e.g. roas__linear)
    label: str
    fmt: Fmt
    better: Better
    value: float | None
    pop: Delta  # period over period
    yoy: Delta  # year over year
    # The same KPI under the model shown beside the report's (last touch), for
    # attribution KPIs: ad platforms report last touch, readers compare with it.
    beside_model: str | None = None
    beside_value: float | None = None


class KpiFootnote(_Model):
    """Where a headline number comes from (the KPI catalog's ``source``)."""

    kpi: str
    label: str
    source: str


class DimensionRow(_Model):
    """Channel or campaign performance under the chosen attribution model."""

    name: str
    spend: float | None = None
    impressions: float | None = None
    clicks: float | None = None
    leads: float | None = None
    wins: float | None = None
    attributed_pipeline: float | None = None
    attributed_revenue: float | None = None
    roas: float | None = None
    cac: float | None = None
    spend_share: float | None = None
    # ROAS under every attribution model the report shows, and their median (the
    # consensus used to rank campaigns and to decide recommendations).
    roas_by_model: dict[str, float | None] = Field(default_factory=dict)
    consensus_roas: float | None = None


class ModelComparisonRow(_Model):
    name: str  # channel name, or "all" for the total
    revenue: dict[str, float | None]
    roas: dict[str, float | None]


class ModelComparison(_Model):
    models: list[str]
    rows: list[ModelComparisonRow]


class MrrBridge(_Model):
    starting: float | None
    new: float | None
    expansion: float | None
    reactivation: float | None
    contraction: float | None  # magnitude (shown as a decrease)
    churn: float | None  # magnitude (shown as a decrease)
    net_new: float | None
    ending: float | None


class FunnelStep(_Model):
    stage: str
    count: float | None
    conversion_to_next: float | None = None
    days_to_next: float | None = None
    next_stage: str | None = None


class BudgetRow(_Model):
    period: str
    channel: str
    budget: float | None
    spend_to_date: float | None
    pacing: float | None
    projected_spend: float | None
    tone: Tone


class ForecastPoint(_Model):
    day: dt.date
    value: float
    lower: float  # at ``ForecastSeries.interval`` (80 %)
    upper: float
    lower_95: float | None = None
    upper_95: float | None = None


class ForecastSeries(_Model):
    kpi: str
    label: str
    dimension: str = "all"  # or "channel" (forecast_by_channel)
    dimension_value: str = ""
    fmt: Fmt
    method: str
    aggregate: str = "sum"  # "sum" over the horizon (flows) or "last" day (stocks)
    history_days: int
    interval: float  # e.g. 0.8 for an 80 % prediction interval
    points: list[ForecastPoint]
    total: float
    total_lower: float
    total_upper: float
    total_lower_95: float | None = None
    total_upper_95: float | None = None
    horizon_days: int = 30


class ForecastCheck(_Model):
    """Last period's forecast against what happened: forecast from the data up to the
    previous period's end, compared with this period's actual."""

    kpi: str
    label: str
    fmt: Fmt
    method: str
    aggregate: str
    days: int
    forecast: float
    lower: float
    upper: float
    lower_95: float | None = None
    upper_95: float | None = None
    actual: float
    inside: bool  # actual within the 80 % interval
    error_pct: float | None  # (forecast - actual) / actual


class Action(StrEnum):
    SCALE = "scale"
    REDUCE = "reduce"
    PAUSE = "pause"
    SHIFT_BUDGET = "shift_budget"
    FIX_PACING = "fix_pacing"
    INVESTIGATE = "investigate"


class Confidence(StrEnum):
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"


class Recommendation(_Model):
    """One piece of advice with its evidence (see ``domain/recommend.py`` for the rules)."""

    label: str = RECOMMENDATION_LABEL
    action: Action
    campaign_id: str | None = None
    channel: str | None = None  # the campaign's/channel's own channel; a shift's source
    to_channel: str | None = None  # a shift's target
    amount: float | None = None  # dollars to move/cut/add this period
    roas_by_model: dict[str, float | None] = Field(default_factory=dict)
    consensus_roas: float | None = None  # median over roas_by_model
    confidence: Confidence
    reason: str  # one line
    spend: float | None = None
    spend_at_risk: float = 0.0  # what ranks recommendations (then spend)
    numbers: dict[str, float | None] = Field(default_factory=dict)


class TrendPoint(_Model):
    day: dt.date
    value: float | None


class Trend(_Model):
    kpi: str
    label: str
    fmt: Fmt
    points: list[TrendPoint]


class ReportMeta(_Model):
    report_id: str
    kind: str
    period: str
    period_start: dt.date
    period_end: dt.date  # last day, inclusive
    grain: str
    previous_period: str
    year_ago_period: str
    model: str
    currency: str = "USD"
    generated_at: dt.datetime
    title: str
    # The attribution model, said in every header: label, one-line summary, whether it is
    # the executive default (and why), and the model shown beside it.
    model_label: str = ""
    model_summary: str = ""
    default_model: str = ""
    default_model_label: str = ""
    default_reason: str = ""
    beside_model: str = ""
    beside_model_label: str = ""
    # False while the period is still running (on the generation clock): its figures are
    # partial and must not be compared with whole periods as they are.
    complete: bool = True
    data_as_of: dt.date | None = None  # last day of data the figures include


class Report(_Model):
    meta: ReportMeta
    headline: list[KpiTile]
    mrr_bridge: MrrBridge
    channels: list[DimensionRow]
    campaigns: list[DimensionRow]
    top_campaigns: list[DimensionRow]
    bottom_campaigns: list[DimensionRow]
    model_comparison: ModelComparison
    funnel: list[FunnelStep]
    budget: list[BudgetRow]
    paths: list[PathRecord]
    alerts: list[AlertRecord]
    trends: list[Trend] = Field(default_factory=list)
    forecast: list[ForecastSeries] = Field(default_factory=list)
    forecast_check: list[ForecastCheck] = Field(default_factory=list)
    recommendations: list[Recommendation] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)
    footnotes: list[KpiFootnote] = Field(default_factory=list)
    forecast_by_channel: list[ForecastSeries] = Field(default_factory=list)
