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
    HOURS = "hours"
    POINTS = "points"  # a score such as NPS: signed, whole points


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
    # Where the advice comes from when it is not attribution ("marketing mix model run v3
    # of 2026-11-30"); empty for the attribution rules.
    evidence: str = ""


class MmmRunInfo(_Model):
    """One marketing mix model fit (``mmm_runs``), published or rejected with its reason."""

    run_id: str
    version: int
    target: str  # won_revenue, new_mrr or kpi:<name>
    grain: str  # week or day: the period of the model, its curves and its allocation
    date_from: dt.date
    date_to: dt.date
    periods: int
    channels: list[str] = Field(default_factory=list)
    status: str  # published | rejected
    reason: str = ""
    library: str = ""
    max_rhat: float | None = None
    min_ess: float | None = None
    divergences: int = 0
    holdout_periods: int = 0
    holdout_mape: float | None = None
    r_squared: float | None = None
    finished_at: dt.datetime

    @property
    def published(self) -> bool:
        return self.status == "published"


class MmmChannel(_Model):
    """A channel's incremental return over the run's window (``mmm_channel_results``):
    ROI = modelled contribution / spend with its 90 % credible interval, beside the
    attribution ROAS of the same window (what touches were credited, not what spend caused)."""

    channel: str
    spend: float
    contribution: float
    contribution_lower: float
    contribution_upper: float
    roi: float | None
    roi_lower: float | None
    roi_upper: float | None
    marginal_roi: float | None
    attribution_roas: float | None


class MmmCurvePoint(_Model):
    spend: float  # steady spend per model period
    contribution: float  # expected contribution per model period
    lower: float  # 90 % interval
    upper: float


class MmmCurve(_Model):
    """A channel's response curve, with where its spend is now and where the optimiser
    would put it (both per model period; None when unknown)."""

    channel: str
    points: list[MmmCurvePoint]
    current_spend: float | None = None
    recommended_spend: float | None = None


class MmmAllocation(_Model):
    """One channel of the optimiser's split of the current budget (``mmm_allocations``):
    spend over ``MmmSection.allocation_periods`` periods, current mix vs recommended."""

    channel: str
    current_spend: float
    recommended_spend: float
    current_contribution: float
    expected_contribution: float
    expected_contribution_lower: float
    expected_contribution_upper: float
    # 90 % interval of the whole allocation's gain, per posterior draw (the same on each
    # channel of one allocation); None for allocations stored before it was (0079).
    gain_lower: float | None = None
    gain_upper: float | None = None


class MmmStatus(StrEnum):
    CURRENT = "current"  # a published run covers the report period: results shown
    REJECTED = "rejected"  # the latest fit for the period failed its diagnostics
    NONE = "none"  # no fit covers the period


class MmmSection(_Model):
    """Incrementality (marketing mix model) section of monthly and quarterly reports."""

    status: MmmStatus
    statement: str  # one plain sentence: which run, or why there are no results
    run: MmmRunInfo | None = None  # the published run shown (status current)
    rejected: MmmRunInfo | None = None  # a later (or the only) rejected fit, with reason
    channels: list[MmmChannel] = Field(default_factory=list)
    curves: list[MmmCurve] = Field(default_factory=list)
    allocation: list[MmmAllocation] = Field(default_factory=list)
    allocation_budget: float | None = None
    allocation_periods: int | None = None
    # Expected gain of the recommended split over the current mix (same budget and
    # horizon), with its 90 % interval; None without an allocation.
    expected_gain: float | None = None
    expected_gain_lower: float | None = None
    expected_gain_upper: float | None = None


class CohortCell(_Model):
    """One heat-map cell: a cohort ``months_since`` its first paid month (an ended month).

    ``mrr_retention`` is None when the cohort had no MRR at the end of its first month
    (every account churned within it): n/a, never 0."""

    months_since: int
    accounts: int
    retained_accounts: int
    mrr: float
    starting_mrr: float
    logo_retention: float
    mrr_retention: float | None


class CohortLine(_Model):
    """One first-paid-month cohort: its size, starting MRR and cells ``months_since`` 0, 1, …
    up to the last month that had ended by the section's ``as_of`` (later cells are absent:
    not observed yet, shown blank)."""

    cohort: str  # YYYY-MM
    accounts: int
    starting_mrr: float
    cells: list[CohortCell]

    def cell(self, months_since: int) -> CohortCell | None:
        return next((c for c in self.cells if c.months_since == months_since), None)


class CohortSection(_Model):
    """Cohort retention (monthly and quarterly reports): the last ``COHORTS`` first-paid-month
    cohorts as of the report period's end, by the shared definition
    (:mod:`pulse_shared.cohorts`, the same numbers as ``pulse kpi cohorts``)."""

    as_of: dt.date  # the day after the period's last day: only ended months count
    first_cohort: str
    last_cohort: str
    months: list[int]  # months_since columns of the heat-map (0 … 11)
    # months_since columns of the report's table: every month (monthly) or quarter over
    # quarter (quarterly: 0, 3, 6, 9)
    table_months: list[int]
    cohorts: list[CohortLine]
    statement: str


class TrialMetric(_Model):
    """A trial KPI of the period (funnel area). ``provisional`` while its value can still
    change (``kpi_catalog.complete_on`` false: trials started in the period may still
    convert until ``final_on``); a provisional number is marked, never shown as final."""

    kpi: str
    label: str
    fmt: Fmt
    value: float | None
    previous: float | None = None  # the previous period's value
    provisional: bool
    final_on: dt.date  # first day the period's value is final


class TrendPoint(_Model):
    day: dt.date
    value: float | None


class Trend(_Model):
    kpi: str
    label: str
    fmt: Fmt
    points: list[TrendPoint]
    # "day": one point per day; "month": one per month (dated its first day, the annual
    # report's trends), never overlaid with a daily forecast.
    grain: str = "day"


class PacingRow(_Model):
    """One KPI month to date in the daily briefing (:mod:`pulse_reporting.domain.to_date`):
    days 1..N of the month through the briefing day against the same days of the previous
    month, and where the month is forecast to land (80 % interval)."""

    kpi: str
    label: str
    fmt: Fmt
    value: float | None
    previous: float | None
    change_pct: float | None
    tone: Tone
    landing: float | None = None
    landing_lower: float | None = None
    landing_upper: float | None = None
    unavailable: str | None = None  # why value or comparison is missing (never 0)


class BriefingSection(_Model):
    """What only the daily briefing has: the day compared with the same weekday a week
    earlier (the headline's "previous"), month-to-date pacing, alerts resolved that day."""

    day: dt.date
    compared_with: dt.date  # the same weekday a week earlier
    month: str  # YYYY-MM the pacing is about
    pacing_title: str
    pacing: list[PacingRow]
    alerts_resolved: list[AlertRecord] = Field(default_factory=list)


class AnnualKpiRow(_Model):
    """One headline KPI month by month over the year, beside the previous year's months."""

    kpi: str
    label: str
    fmt: Fmt
    better: Better
    values: list[float | None]  # January … December
    previous: list[float | None]  # the previous year's January … December (None: no data)
    total: float | None  # year value (flows: sum of months; stocks and ratios: December)
    previous_total: float | None
    aggregate: str  # "sum" or "december"


class AnnualSection(_Model):
    """What only the annual (board) report has: twelve months of headline KPIs against
    the previous year's, and the quarter the forecast is about."""

    year: str
    previous_year: str
    months: list[str]  # YYYY-MM, January … December
    rows: list[AnnualKpiRow]
    forecast_quarter: str  # the quarter after the year (YYYY-Q1)
    forecast_days: int  # days of that quarter the forecast covers


class InsightColumn(_Model):
    key: str
    title: str
    fmt: Fmt | None = None  # None: text
    # Numbers in this column take their row's format (InsightTable.row_fmts): a table
    # with one KPI per row (money, counts and rates in one column).
    row_fmt: bool = False


class InsightTable(_Model):
    """A table of an insight section; ``rows`` are raw values (None: n/a), one per column."""

    name: str  # file-safe, unique in the report (the CSV export's file name)
    title: str
    columns: list[InsightColumn]
    rows: list[list[str | float | int | None]]
    row_fmts: list[Fmt] = Field(default_factory=list)  # per row, for row_fmt columns


class InsightSeries(_Model):
    name: str
    values: list[float | None]  # one per label of the chart; None: no value (a gap, never 0)


class InsightChart(_Model):
    """A chart of an insight section, drawn the same way in every format (HTML/PDF/e-mail
    PNG; Markdown links the PNG). ``bar``: grouped bars per label; ``line``: one line per
    series over the labels (e.g. days or months, in order)."""

    name: str  # file-safe, unique in the report
    title: str
    kind: str  # "bar" | "line"
    labels: list[str]
    series: list[InsightSeries]
    fmt: Fmt = Fmt.COUNT
    # Optional horizontal reference line (an alert threshold, say) and its caption.
    threshold: float | None = None
    threshold_label: str = ""


class InsightSection(_Model):
    """A self-contained report section (product usage, deliverability, customer experience,
    martech, segments, quarter over quarter …): statements, charts and tables. Every
    renderer draws any insight section the same generic way, so a new section is one pure
    builder in ``domain/`` and one registration, never a change to the renderers."""

    key: str  # file-safe, e.g. "usage"
    title: str
    statements: list[str] = Field(default_factory=list)  # evidence-carrying sentences
    charts: list[InsightChart] = Field(default_factory=list)
    tables: list[InsightTable] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)  # definitions, partial-data warnings
    # Why the section has no numbers (no events of this kind yet): shown instead of n/a tables.
    unavailable: str | None = None
    # The KPIs (kpi_values names) and dimensions the section shows, for role scoping
    # (domain/scoping.py): a narrowed role (cx) gets the section only if it may see every
    # one of them at every dimension; a section naming none is cut by its key's default.
    kpis: list[str] = Field(default_factory=list)
    dimensions: list[str] = Field(default_factory=lambda: ["all"])


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
    # Monthly and quarterly reports only (None in weekly ones).
    mmm: MmmSection | None = None
    # Monthly and quarterly reports only (None in weekly ones or when not read).
    cohorts: CohortSection | None = None
    # Trial KPIs of the period, shown with the funnel (empty: the KPI service has none).
    trials: list[TrialMetric] = Field(default_factory=list)
    # Daily briefings only (None otherwise).
    briefing: BriefingSection | None = None
    # Annual (board) reports only (None otherwise).
    annual: AnnualSection | None = None
    # Generic sections (usage, deliverability, CX, martech, segments, quarter over quarter),
    # in display order; see InsightSection.
    insights: list[InsightSection] = Field(default_factory=list)
