"""What the KPI formulas need, as loaded from ClickHouse (already deduplicated)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from pulse_kpi.domain.accounts import AccountFacts
from pulse_kpi.domain.deliverability import DeliverabilityRow
from pulse_kpi.domain.experience import FeedbackRow, TicketRow
from pulse_kpi.domain.usage import MrrChange, UsageRow

ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class SpendRow:
    day: dt.date
    channel: str
    campaign_id: str
    amount: Decimal
    impressions: int = 0
    clicks: int = 0


@dataclass(frozen=True, slots=True)
class StageCount:
    """Pipeline events reaching ``stage`` on ``day``."""

    day: dt.date
    stage: str
    count: int


@dataclass(frozen=True, slots=True)
class CreditRow:
    """Latest-version attribution credits of one day × model × milestone × channel × campaign."""

    day: dt.date
    model: str
    milestone: str
    channel: str
    campaign_id: str
    credit: float
    revenue: Decimal


@dataclass(frozen=True, slots=True)
class MrrDay:
    """Sums of one day's MRR movements (contraction and churn negative)."""

    day: dt.date
    new: Decimal = ZERO
    expansion: Decimal = ZERO
    contraction: Decimal = ZERO
    churn: Decimal = ZERO
    reactivation: Decimal = ZERO
    paying_delta: int = 0
    new_logos: int = 0
    churned_logos: int = 0

    @property
    def net(self) -> Decimal:
        return self.new + self.expansion + self.contraction + self.churn + self.reactivation


@dataclass(frozen=True, slots=True)
class BudgetRow:
    month: dt.date  # first day of the month
    channel: str
    campaign_id: str
    amount: Decimal


@dataclass(frozen=True, slots=True)
class MartechRow:
    """One month's cost of one marketing tool (its category's, summed over its rows)."""

    month: dt.date  # first day of the month
    vendor: str
    category: str
    amount: Decimal


@dataclass(frozen=True, slots=True)
class AccountStages:
    """When one account first reached each funnel stage."""

    account_id: str
    firsts: Mapping[str, dt.datetime]


@dataclass(frozen=True, slots=True)
class AccountTrial:
    """One account's trial: its first ``trial_started`` event, its first paid event
    (MRR > 0) after it if any, and its first-touch channel (``unknown`` without one)."""

    account_id: str
    started_at: dt.datetime
    paid_at: dt.datetime | None
    channel: str


@dataclass(frozen=True)
class Facts:
    spend: Sequence[SpendRow] = ()
    stages: Sequence[StageCount] = ()
    credits: Sequence[CreditRow] = ()
    mrr_days: Sequence[MrrDay] = ()
    #: MRR and paying accounts before the first day of ``mrr_days``' range.
    mrr_opening: Decimal = ZERO
    paying_opening: int = 0
    budgets: Sequence[BudgetRow] = ()
    funnel: Sequence[AccountStages] = ()
    #: Trials started in the loaded range (with their conversions, whenever they happened).
    trials: Sequence[AccountTrial] = ()
    #: Tool costs of the months overlapping the loaded range (totals only).
    martech: Sequence[MartechRow] = ()
    #: Product usage of the usage range (pulse_kpi.domain.usage.usage_range; totals pass
    #: only) and every MRR change before its end (paying accounts, for churn risk).
    usage: Sequence[UsageRow] = ()
    usage_mrr: Sequence[MrrChange] = ()
    #: First day with any usage (None: none yet): no usage KPIs for periods before it.
    usage_since: dt.date | None = None
    #: E-mail delivery counts per day × sending domain × ESP campaign.
    deliverability: Sequence[DeliverabilityRow] = ()
    #: Customer experience of the experience range (pulse_kpi.domain.experience; totals
    #: pass only): survey answers, tickets' latest states, MRR changes before its end.
    feedback: Sequence[FeedbackRow] = ()
    tickets: Sequence[TicketRow] = ()
    cx_mrr: Sequence[MrrChange] = ()
    #: Per-account MRR and profiles for the breakdowns by segment, plan … (breakdown pass).
    accounts: AccountFacts | None = None
    #: Models of every credit in the loaded range, when ``credits`` holds some channels'
    #: and campaigns' rows only (pulse_kpi.domain.campaigns): every member still gets the
    #: per-model KPIs of every model credited in the range, as with all rows loaded.
    credit_models: Sequence[str] = ()


@dataclass(frozen=True)
class Scope:
    """Which periods to (re)compute.

    - ``flow_days``: days whose additive facts changed (spend, pipeline, credits): every
      period containing one of them is recomputed for flow KPIs;
    - ``mrr_from``..``mrr_to``: MRR changed from ``mrr_from`` on; stock KPIs of every period
      intersecting the range are recomputed;
    - ``funnel_days``: days of stage entries of affected accounts (cohorts change);
    - ``budget_months``: months whose budget changed (pacing depends on ``as_of`` too);
    - ``trial_days``: start days of trials whose outcome changed (a conversion, or the
      window closing at the daily close): trial KPIs are counted by start day.
    """

    flow_days: frozenset[dt.date] = frozenset()
    mrr_from: dt.date | None = None
    mrr_to: dt.date | None = None
    funnel_days: frozenset[dt.date] = frozenset()
    budget_months: frozenset[dt.date] = frozenset()
    trial_days: frozenset[dt.date] = frozenset()
    #: Days whose product usage changed: usage KPIs of their periods (and the next month's
    #: churn risk) are recomputed, in the totals pass (with their feature members).
    usage_days: frozenset[dt.date] = frozenset()
    #: Days whose survey answers or tickets changed: experience KPIs of their periods are
    #: recomputed in the totals pass (pulse_kpi.domain.experience).
    cx_days: frozenset[dt.date] = frozenset()
    #: Which dimensions to emit: totals (``all``) and/or breakdowns (channel, campaign).
    dimensions: tuple[str, ...] = field(default=("all", "channel", "campaign"))
    #: (grain, period start, dimension, value) breakdowns that had values before: they are
    #: recomputed even when no fact supports them any more (e.g. a newer credit version
    #: moved the credit to another channel), so they drop to 0 instead of going stale.
    known_members: frozenset[tuple[str, dt.date, str, str]] = frozenset()
    #: The same for trial KPIs, whose channels are the trials' first-touch channels (kept
    #: apart: a channel with spend only must not get trial rows, nor the reverse).
    known_trial_members: frozenset[tuple[str, dt.date, str, str]] = frozenset()
    #: The same for deliverability KPIs (sending domains and ESP campaigns, kept apart
    #: from ad campaigns so neither gets the other's KPI rows).
    known_deliverability_members: frozenset[tuple[str, dt.date, str, str]] = frozenset()

    def is_empty(self) -> bool:
        return not (
            self.flow_days or self.mrr_from or self.funnel_days or self.budget_months
            or self.trial_days or self.usage_days or self.cx_days
        )
