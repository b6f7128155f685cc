"""Value types of the marketing mix model: the dataset a fit reads, and the rows a run
writes. Each row type's fields are its table's insert columns (migration 0070_mmm.sql;
``pulse_mmm.storage`` derives the column lists with ``model_columns``)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from enum import StrEnum

#: Intervals are central 90 % credible intervals (5th and 95th posterior percentiles).
INTERVAL_MASS = 0.90
#: The contribution series of everything that is not media (intercept, trend, seasonality).
BASELINE = "baseline"


class Target(StrEnum):
    """What the model explains. Any additive KPI of the catalog can be a target too
    (``kpi:<name>``); these are the built-in ones."""

    WON_REVENUE = "won_revenue"  # won pipeline amount (default)
    NEW_MRR = "new_mrr"


class ModelGrain(StrEnum):
    WEEK = "week"
    DAY = "day"


class RunStatus(StrEnum):
    PUBLISHED = "published"
    REJECTED = "rejected"


@dataclass(frozen=True, slots=True)
class MmmDataset:
    """Spend per channel and the target per period, aligned: ``spend[c][i]`` and
    ``target[i]`` belong to ``period_starts[i]``. Periods without spend or outcome are 0
    (the reader fills gaps), so every series has ``len(period_starts)`` values."""

    target: str
    grain: ModelGrain
    period_starts: tuple[dt.date, ...]
    channels: tuple[str, ...]
    spend: dict[str, tuple[float, ...]]
    outcome: tuple[float, ...]
    controls: dict[str, tuple[float, ...]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class MmmRunRow:
    """``mmm_runs``: one fit, published or rejected (with the reason)."""

    run_id: str
    version: int
    target: str
    grain: str
    date_from: dt.date
    date_to: dt.date
    periods: int
    channels: list[str]
    status: str
    reason: str
    library: str
    parameters: str  # JSON
    max_rhat: float | None
    min_ess: float | None
    divergences: int
    holdout_periods: int
    holdout_mape: float | None
    r_squared: float | None
    started_at: dt.datetime
    finished_at: dt.datetime


@dataclass(frozen=True, slots=True)
class ChannelResultRow:
    """``mmm_channel_results``: ROI = contribution ÷ spend over the window; marginal ROI =
    extra contribution per extra unit of spend at the current spend level."""

    run_id: str
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


@dataclass(frozen=True, slots=True)
class ContributionRow:
    """``mmm_contributions``: one channel (or :data:`BASELINE`) in one period."""

    run_id: str
    channel: str
    period_start: dt.date
    spend: float
    contribution: float
    lower: float
    upper: float


@dataclass(frozen=True, slots=True)
class ResponseCurveRow:
    """``mmm_response_curves``: expected contribution per period at a steady spend."""

    run_id: str
    channel: str
    spend: float
    contribution: float
    lower: float
    upper: float


@dataclass(frozen=True, slots=True)
class PosteriorDrawRow:
    """``mmm_posterior_draws``: one posterior draw of one channel's response parameters
    (geometric adstock, logistic saturation) with the scales the model was fitted on."""

    run_id: str
    channel: str
    draw: int
    adstock_alpha: float
    saturation_lam: float
    saturation_beta: float
    spend_scale: float
    target_scale: float


@dataclass(frozen=True, slots=True)
class AllocationRow:
    """``mmm_allocations``: one channel of an optimised split of ``budget`` over
    ``periods`` periods against the current mix scaled to the same budget."""

    run_id: str
    budget: float
    periods: int
    channel: str
    current_spend: float
    recommended_spend: float
    current_contribution: float
    expected_contribution: float
    expected_contribution_lower: float
    expected_contribution_upper: float
    # 90 % interval of the whole allocation's gain (sum over channels of recommended minus
    # current contribution), per posterior draw: the same on every channel row of one
    # allocation. None on rows stored before the interval was (migration 0079).
    gain_lower: float | None = None
    gain_upper: float | None = None


@dataclass(frozen=True, slots=True)
class MmmRunResult:
    """Everything one fit produced. A rejected run carries only ``run``."""

    run: MmmRunRow
    channels: tuple[ChannelResultRow, ...] = ()
    contributions: tuple[ContributionRow, ...] = ()
    curves: tuple[ResponseCurveRow, ...] = ()
    draws: tuple[PosteriorDrawRow, ...] = ()
    allocations: tuple[AllocationRow, ...] = ()

    @property
    def published(self) -> bool:
        return self.run.status == RunStatus.PUBLISHED
