"""KPI formulas: facts + scope → one :class:`KpiValue` per KPI × grain × dimension × period.

Every formula is a plain function of the facts, so unit tests can check hand-worked numbers.
A ratio whose denominator is zero (or undefined) is ``None`` (null), never an exception.
KPIs computed from other KPIs (``ctr``, ``ltv_cac`` …) are the catalog's derived KPIs
(:func:`pulse_shared.kpi_catalog.derived_kpi`), added after the base values of each period
and dimension member by :func:`with_derived`.
"""

from __future__ import annotations

import bisect
import datetime as dt
import statistics
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from typing import Protocol

from pulse_kpi.domain import deliverability, experience, usage
from pulse_kpi.domain.facts import ZERO, AccountTrial, Facts, MartechRow, MrrDay, Scope
from pulse_shared import kpi_catalog
from pulse_shared.attribution_models import DEFAULT_MODEL
from pulse_shared.events import Grain, kpi_key
from pulse_shared.kpi_catalog import (
    ACCOUNT_DIMS,
    BUDGET_GRAINS,
    STAGE_KPI,
    STAGE_PAIRS,
    TRIAL_CONVERSION_WINDOW_DAYS,
    TRIAL_DIMS,
    unit_of,
)
from pulse_shared.periods import GRAINS, Period, period_of, periods_between

Number = Decimal | int | float


@dataclass(frozen=True, slots=True)
class KpiValue:
    kpi: str
    grain: Grain
    period: str
    period_start: dt.date
    dimension: str
    dimension_value: str
    value: float | None
    unit: str
    #: :func:`pulse_shared.events.kpi_key`, as its snapshot's. Made once: a pass looks
    #: every value up by key five or six times (changed, known, the throttle's maps), and
    #: a backfill's campaign pass holds ~130k values.
    key: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "key", kpi_key(self.kpi, self.grain, self.dimension,
                                                self.dimension_value, self.period))


@dataclass(frozen=True)
class Params:
    gross_margin: Decimal = Decimal("0.8")
    #: Model of the un-suffixed attribution KPIs: the one executive default, shared with
    #: reports and dashboards (not a per-service setting, or their numbers would disagree).
    default_model: str = DEFAULT_MODEL
    revenue_milestone: str = "won"
    pipeline_milestone: str = "opportunity"
    lead_milestone: str = "lead"
    customer_milestone: str = "new_subscription"
    ltv_churn_months: int = 6
    #: Usage drop (share, month over month) beyond which a paying account is a churn risk.
    churn_risk_drop: float = kpi_catalog.CHURN_RISK_DROP_DEFAULT


def to_float(value: Number | None) -> float | None:
    if value is None:
        return None
    return round(float(value), 9)


def div(num: Number | None, den: Number | None) -> float | None:
    """``num / den``; ``None`` when either is undefined or ``den`` is zero."""
    if num is None or den is None or den == 0:
        return None
    if isinstance(num, float) or isinstance(den, float):
        return to_float(float(num) / float(den))
    return to_float(Decimal(num) / Decimal(den))


def cac(spend: Number, new_customers: Number | None) -> float | None:
    """CAC = spend / new customers: the one formula for every dimension (never spend / wins).

    Without recorded spend it is unknown (None), not $0: an organic channel's customers cost
    something, just nothing Pulse sees, and "$0 CAC" would read as free growth."""
    if not spend:
        return None
    return div(spend, new_customers)


def median_days(durations: Sequence[dt.timedelta]) -> float | None:
    if not durations:
        return None
    return to_float(statistics.median(d.total_seconds() / 86400 for d in durations))


# --------------------------------------------------------------------------- flows


@dataclass
class _Flow:
    spend: Decimal = ZERO
    impressions: int = 0
    clicks: int = 0
    stages: dict[str, int] = field(default_factory=dict)
    #: (model, milestone) → [credit sum, credited revenue sum]
    credits: dict[tuple[str, str], tuple[float, Decimal]] = field(default_factory=dict)

    def credit(self, model: str, milestone: str) -> float:
        return self.credits.get((model, milestone), (0.0, ZERO))[0]

    def revenue(self, model: str, milestone: str) -> Decimal:
        return self.credits.get((model, milestone), (0.0, ZERO))[1]


FlowKey = tuple[Grain, Period, str, str]


def _dims(channel: str, campaign_id: str) -> list[tuple[str, str]]:
    dims = [("all", ""), ("channel", channel)]
    if campaign_id:
        dims.append(("campaign", campaign_id))
    return dims


def _flows(
    facts: Facts, wanted: dict[Grain, set[Period]], dims: tuple[str, ...]
) -> dict[FlowKey, _Flow]:
    buckets: dict[FlowKey, _Flow] = defaultdict(_Flow)

    def targets(day: dt.date, channel: str, campaign: str) -> Iterable[_Flow]:
        for grain in GRAINS:
            period = period_of(day, grain)
            if period not in wanted[grain]:
                continue
            for dim, value in _dims(channel, campaign):
                if dim in dims:
                    yield buckets[(grain, period, dim, value)]

    for s in facts.spend:
        for b in targets(s.day, s.channel, s.campaign_id):
            b.spend += s.amount
            b.impressions += s.impressions
            b.clicks += s.clicks
    for st in facts.stages:
        for grain in GRAINS:
            period = period_of(st.day, grain)
            if period in wanted[grain]:
                b = buckets[(grain, period, "all", "")]
                b.stages[st.stage] = b.stages.get(st.stage, 0) + st.count
    for c in facts.credits:
        for b in targets(c.day, c.channel, c.campaign_id):
            credit, revenue = b.credits.get((c.model, c.milestone), (0.0, ZERO))
            b.credits[(c.model, c.milestone)] = (credit + c.credit, revenue + c.revenue)
    return buckets


def _flow_values(flow: _Flow, dim: str, models: Sequence[str], p: Params) -> dict[str, float | None]:
    out: dict[str, float | None] = {
        "spend": to_float(flow.spend),
        "impressions": to_float(flow.impressions),
        "clicks": to_float(flow.clicks),
    }
    dm = p.default_model
    leads: Number
    opportunities: Number
    if dim == "all":
        for stage, kpi in STAGE_KPI.items():
            out[kpi] = to_float(flow.stages.get(stage, 0))
        leads = flow.stages.get("lead", 0)
        opportunities = flow.stages.get("opportunity", 0)
    else:
        leads = flow.credit(dm, p.lead_milestone)
        opportunities = flow.credit(dm, p.pipeline_milestone)
        out["leads"] = to_float(leads)
        out["opportunities"] = to_float(opportunities)
        out["wins"] = to_float(flow.credit(dm, p.revenue_milestone))
        new_customers = flow.credit(dm, p.customer_milestone)
        out["new_customers"] = to_float(new_customers)
        out["cac"] = cac(flow.spend, new_customers)
    out["cpl"] = div(flow.spend, leads)
    out["cost_per_opportunity"] = div(flow.spend, opportunities)
    for model in models:
        pipeline = flow.revenue(model, p.pipeline_milestone)
        revenue = flow.revenue(model, p.revenue_milestone)
        suffixes = [f"__{model}"] + ([""] if model == dm else [])
        for suffix in suffixes:
            out[f"attributed_pipeline{suffix}"] = to_float(pipeline)
            out[f"attributed_revenue{suffix}"] = to_float(revenue)
            out[f"roas{suffix}"] = div(revenue, flow.spend)
            out[f"marketing_roi{suffix}"] = div(revenue - flow.spend, flow.spend)
    return out


# --------------------------------------------------------------------------- MRR


class MrrSeries:
    """Prefix sums over daily MRR movements: MRR and paying accounts at any day boundary."""

    def __init__(self, days: Sequence[MrrDay], opening: Decimal, paying_opening: int) -> None:
        self.days = sorted(days, key=lambda d: d.day)
        self.keys = [d.day for d in self.days]
        self.opening = opening
        self.paying_opening = paying_opening
        self._prefix: dict[str, list[Decimal]] = {}
        for name in ("new", "expansion", "contraction", "churn", "reactivation"):
            acc, running = [ZERO], ZERO
            for d in self.days:
                running += getattr(d, name)
                acc.append(running)
            self._prefix[name] = acc
        self._paying = [0]
        self._new_logos = [0]
        self._churned = [0]
        for d in self.days:
            self._paying.append(self._paying[-1] + d.paying_delta)
            self._new_logos.append(self._new_logos[-1] + d.new_logos)
            self._churned.append(self._churned[-1] + d.churned_logos)

    def _i(self, day: dt.date) -> int:
        """Number of series days strictly before ``day``."""
        return bisect.bisect_left(self.keys, day)

    def movement(self, name: str, start: dt.date, end: dt.date) -> Decimal:
        prefix = self._prefix[name]
        return prefix[self._i(end)] - prefix[self._i(start)]

    def mrr_at(self, day: dt.date) -> Decimal:
        """MRR at the start of ``day`` (after every movement of earlier days)."""
        i = self._i(day)
        return self.opening + sum((self._prefix[n][i] for n in self._prefix), ZERO)

    def paying_at(self, day: dt.date) -> int:
        return self.paying_opening + self._paying[self._i(day)]

    def new_logos(self, start: dt.date, end: dt.date) -> int:
        return self._new_logos[self._i(end)] - self._new_logos[self._i(start)]

    def churned_logos(self, start: dt.date, end: dt.date) -> int:
        return self._churned[self._i(end)] - self._churned[self._i(start)]

    def logo_churn_rate(self, start: dt.date, end: dt.date) -> float | None:
        return div(self.churned_logos(start, end), self.paying_at(start))

    def customer_churn_rate(self, period: Period, months: int) -> float | None:
        """Average monthly logo churn of the ``months`` months ending with the period's last."""
        last = period_of(period.end - dt.timedelta(days=1), Grain.MONTH)
        rates: list[float] = []
        month = last
        for _ in range(months):
            rate = self.logo_churn_rate(month.start, month.end)
            if rate is not None:
                rates.append(rate)
            month = period_of(month.start - dt.timedelta(days=1), Grain.MONTH)
        if not rates:
            return None
        return sum(rates) / len(rates)


def mrr_values(series: MrrSeries, period: Period, spend: Decimal, p: Params) -> dict[str, float | None]:
    s, e = period.start, period.end
    new = series.movement("new", s, e)
    expansion = series.movement("expansion", s, e)
    contraction = series.movement("contraction", s, e)
    churn = series.movement("churn", s, e)
    reactivation = series.movement("reactivation", s, e)
    start_mrr, end_mrr = series.mrr_at(s), series.mrr_at(e)
    paying_end = series.paying_at(e)
    arpa = div(end_mrr, paying_end)
    # Total new customers are billing's (first paid subscriptions), not CRM wins.
    new_customers = series.new_logos(s, e)
    cac_value = cac(spend, new_customers)
    churn_rate = series.customer_churn_rate(period, p.ltv_churn_months)
    gm = float(p.gross_margin)
    ltv = None if arpa is None or not churn_rate else to_float(arpa * gm / churn_rate)
    gross = -(churn + contraction)
    net = gross - expansion - reactivation
    return {
        "mrr": to_float(end_mrr),
        "arr": to_float(end_mrr * 12),
        "mrr_new": to_float(new),
        "mrr_expansion": to_float(expansion),
        "mrr_contraction": to_float(contraction),
        "mrr_churn": to_float(churn),
        "mrr_reactivation": to_float(reactivation),
        "mrr_net_new": to_float(new + expansion + contraction + churn + reactivation),
        "gross_mrr_churn_rate": div(gross, start_mrr),
        "net_mrr_churn_rate": div(net, start_mrr),
        "nrr": div(start_mrr - net, start_mrr),
        "logo_churn_rate": series.logo_churn_rate(s, e),
        "paying_accounts": to_float(paying_end),
        "arpa": arpa,
        "new_customers": to_float(new_customers),
        "cac": cac_value,
        "cac_payback_months": (
            None if cac_value is None or arpa is None else div(cac_value, arpa * gm)
        ),
        "ltv": ltv,
    }


# --------------------------------------------------------------------------- funnel


def funnel_values(
    facts: Facts, wanted: dict[Grain, set[Period]]
) -> dict[tuple[Grain, Period], dict[str, float | None]]:
    entered: dict[tuple[Grain, Period, int], int] = defaultdict(int)
    converted: dict[tuple[Grain, Period, int], int] = defaultdict(int)
    durations: dict[tuple[Grain, Period, int], list[dt.timedelta]] = defaultdict(list)
    for account in facts.funnel:
        firsts = account.firsts
        for i, (a, b) in enumerate(STAGE_PAIRS):
            ta, tb = firsts.get(a), firsts.get(b)
            reached = ta is not None and tb is not None and tb >= ta
            for grain in GRAINS:
                if ta is not None:
                    pa = period_of(ta.date(), grain)
                    if pa in wanted[grain]:
                        entered[(grain, pa, i)] += 1
                        converted[(grain, pa, i)] += int(reached)
                if reached and tb is not None and ta is not None:
                    pb = period_of(tb.date(), grain)
                    if pb in wanted[grain]:
                        durations[(grain, pb, i)].append(tb - ta)
    out: dict[tuple[Grain, Period], dict[str, float | None]] = {}
    for grain in GRAINS:
        for period in wanted[grain]:
            values: dict[str, float | None] = {}
            for i, (a, b) in enumerate(STAGE_PAIRS):
                k = (grain, period, i)
                values[f"conv_{a}_to_{b}"] = div(converted.get(k, 0), entered.get(k, 0))
                values[f"velocity_{a}_to_{b}_days"] = median_days(durations.get(k, []))
            out[(grain, period)] = values
    return out


# --------------------------------------------------------------------------- trials

TrialKey = tuple[Grain, Period, str, str]
TRIAL_STARTED = "trial_started"
NO_CHANNEL = "unknown"


class SubscriptionLike(Protocol):
    @property
    def account_id(self) -> str: ...
    @property
    def occurred_at(self) -> dt.datetime: ...
    @property
    def event_type(self) -> str: ...
    @property
    def mrr(self) -> Decimal: ...


def account_trials(
    events: Iterable[SubscriptionLike], channels: Mapping[str, str] | None = None
) -> list[AccountTrial]:
    """The trials in a subscription ledger (what the storage query computes in SQL): per
    account its first ``trial_started`` event and its first paid event (MRR > 0); an
    account that paid before its first trial has no (acquisition) trial. ``channels``:
    first-touch channel per account (``unknown`` when absent)."""
    first_trial: dict[str, dt.datetime] = {}
    first_paid: dict[str, dt.datetime] = {}
    for e in events:
        if e.event_type == TRIAL_STARTED:
            first_trial[e.account_id] = min(e.occurred_at, first_trial.get(e.account_id, e.occurred_at))
        if e.mrr > 0:
            first_paid[e.account_id] = min(e.occurred_at, first_paid.get(e.account_id, e.occurred_at))
    channels = channels or {}
    out: list[AccountTrial] = []
    for account, started in sorted(first_trial.items()):
        paid = first_paid.get(account)
        if paid is not None and paid < started:
            continue
        out.append(AccountTrial(account, started, paid, channels.get(account) or NO_CHANNEL))
    return out


class TrialOutcome(StrEnum):
    CONVERTED = "converted"
    EXPIRED = "expired"
    RUNNING = "running"


def trial_outcome(
    trial: AccountTrial, as_of: dt.date, window_days: int = TRIAL_CONVERSION_WINDOW_DAYS
) -> TrialOutcome:
    """Where ``trial`` stands on ``as_of`` (UTC days; events after ``as_of`` are not known
    yet). Its window runs from its start day to ``window_days`` days later, inclusive:
    converted when the first paid event falls in it, expired once it is over (``as_of``
    after its last day) without one, running until then."""
    window_end = trial.started_at.date() + dt.timedelta(days=window_days)
    paid = trial.paid_at
    if paid is not None and paid.date() <= min(as_of, window_end):
        return TrialOutcome.CONVERTED
    return TrialOutcome.EXPIRED if as_of > window_end else TrialOutcome.RUNNING


@dataclass
class _TrialCounts:
    started: int = 0
    outcomes: dict[TrialOutcome, int] = field(default_factory=dict)
    days_to_convert: list[dt.timedelta] = field(default_factory=list)

    def values(self) -> dict[str, float | None]:
        return {
            "trials_started": to_float(self.started),
            "trials_converted": to_float(self.outcomes.get(TrialOutcome.CONVERTED, 0)),
            "trial_expired": to_float(self.outcomes.get(TrialOutcome.EXPIRED, 0)),
            "trials_running": to_float(self.outcomes.get(TrialOutcome.RUNNING, 0)),
            "days_to_convert": median_days(self.days_to_convert),
        }


def trial_values(
    trials: Iterable[AccountTrial],
    wanted: dict[Grain, set[Period]],
    as_of: dt.date,
    dims: Sequence[str] = TRIAL_DIMS,
    known_members: Iterable[tuple[str, dt.date, str, str]] = (),
    window_days: int = TRIAL_CONVERSION_WINDOW_DAYS,
) -> dict[TrialKey, dict[str, float | None]]:
    """Trial KPIs (base values, before the derived ``trial_to_paid_rate``) of the wanted
    periods, cohort style: a trial counts in the period of its START day, whatever the day
    of its conversion. Totals (``all``) for every wanted period, zeros included; a channel
    for the periods where it has trials or had values before (``known_members``), so a
    channel left without trials drops to 0 instead of going stale."""
    counts: dict[TrialKey, _TrialCounts] = defaultdict(_TrialCounts)
    dims = [d for d in dims if d in TRIAL_DIMS]
    if "all" in dims:
        for grain in GRAINS:
            for period in wanted[grain]:
                counts.setdefault((grain, period, "all", ""), _TrialCounts())
    if "channel" in dims:
        for grain_name, start, dim, member in known_members:
            grain = Grain(grain_name)
            period = period_of(start, grain)
            if dim == "channel" and period in wanted[grain]:
                counts.setdefault((grain, period, dim, member), _TrialCounts())
    for trial in trials:
        start_day = trial.started_at.date()
        if start_day > as_of:  # not started yet on as_of (a recompute "as of" a past day)
            continue
        outcome = trial_outcome(trial, as_of, window_days)
        members = [(dim, "" if dim == "all" else trial.channel) for dim in dims]
        for grain in GRAINS:
            period = period_of(start_day, grain)
            if period not in wanted[grain]:
                continue
            for dim, member in members:
                c = counts[(grain, period, dim, member)]
                c.started += 1
                c.outcomes[outcome] = c.outcomes.get(outcome, 0) + 1
                if outcome is TrialOutcome.CONVERTED and trial.paid_at is not None:
                    c.days_to_convert.append(trial.paid_at - trial.started_at)
    return {key: c.values() for key, c in counts.items()}


# --------------------------------------------------------------------------- budget


def elapsed_fraction(period: Period, as_of: dt.date) -> Decimal:
    """Elapsed share of the period, counting ``as_of`` itself as elapsed (0 before, 1 after)."""
    elapsed = min(period.days, max(0, (as_of - period.start).days + 1))
    return Decimal(elapsed) / Decimal(period.days)


def budget_values(
    facts: Facts, periods: Iterable[Period], as_of: dt.date, dims: tuple[str, ...]
) -> list[tuple[Period, str, str, dict[str, float | None]]]:
    # Budget per month and channel: the channel-level row, else the sum of its campaigns.
    channel_level: dict[tuple[dt.date, str], Decimal] = {}
    campaign_sum: dict[tuple[dt.date, str], Decimal] = defaultdict(lambda: ZERO)
    campaign_budget: dict[tuple[dt.date, str], Decimal] = defaultdict(lambda: ZERO)
    for b in facts.budgets:
        if b.campaign_id:
            campaign_sum[(b.month, b.channel)] += b.amount
            campaign_budget[(b.month, b.campaign_id)] += b.amount
        else:
            channel_level[(b.month, b.channel)] = b.amount
    channel_budget: dict[tuple[dt.date, str], Decimal] = dict(campaign_sum)
    channel_budget.update(channel_level)
    out: list[tuple[Period, str, str, dict[str, float | None]]] = []
    for period in periods:
        budgets: dict[tuple[str, str], Decimal] = defaultdict(lambda: ZERO)
        budgets[("all", "")] = ZERO
        for (month, channel), amount in channel_budget.items():
            if period.contains(month):
                budgets[("all", "")] += amount
                budgets[("channel", channel)] += amount
        for (month, campaign), amount in campaign_budget.items():
            if period.contains(month):
                budgets[("campaign", campaign)] += amount
        spent: dict[tuple[str, str], Decimal] = defaultdict(lambda: ZERO)
        for s in facts.spend:
            if period.contains(s.day) and s.day <= as_of:
                for dim, value in _dims(s.channel, s.campaign_id):
                    spent[(dim, value)] += s.amount
        keys = set(budgets) | {k for k in spent if k[0] in ("all", "channel")}
        fraction = elapsed_fraction(period, as_of)
        for dim, value in sorted(keys):
            if dim not in dims:
                continue
            budget, to_date = budgets.get((dim, value), ZERO), spent.get((dim, value), ZERO)
            out.append((period, dim, value, {
                "budget": to_float(budget),
                "spend_to_date": to_float(to_date),
                "pacing": div(to_date, budget * fraction),
                "projected_spend": div(to_date, fraction),
            }))
    return out


# --------------------------------------------------------------------------- martech


def martech_cost(rows: Iterable[MartechRow], start: dt.date, end: dt.date) -> Decimal:
    """Tool cost of the half-open day range ``[start, end)``: each month's cost spread
    evenly over its calendar days (whole months count their exact cost, so a month,
    quarter or year is the plain sum and only days and weeks carry shares)."""
    total = ZERO
    for row in rows:
        month = period_of(row.month, Grain.MONTH)
        overlap = (min(end, month.end) - max(start, month.start)).days
        if overlap <= 0:
            continue
        days = (month.end - month.start).days
        total += row.amount if overlap == days else row.amount * overlap / days
    return total


# --------------------------------------------------------------------------- all


def wanted_periods(scope: Scope) -> dict[Grain, set[Period]]:
    """Periods of every grain touched by the scope's days and MRR range."""
    days = set(scope.flow_days) | set(scope.funnel_days) | set(scope.trial_days)
    wanted: dict[Grain, set[Period]] = {g: {period_of(d, g) for d in days} for g in GRAINS}
    if scope.mrr_from is not None:
        last = scope.mrr_to or scope.mrr_from
        for grain in GRAINS:
            wanted[grain].update(periods_between(scope.mrr_from, max(last, scope.mrr_from), grain))
    return wanted


def data_range(scope: Scope, p: Params = Params()) -> tuple[dt.date, dt.date] | None:
    """Half-open day range of facts needed to compute ``scope`` (MRR looks back for LTV)."""
    wanted = wanted_periods(scope)
    periods = [period for ps in wanted.values() for period in ps]
    periods += [period_of(m, g) for m in scope.budget_months for g in BUDGET_GRAINS]
    if not periods:
        return None
    start = min(x.start for x in periods)
    end = max(x.end for x in periods)
    look = period_of(start, Grain.MONTH).start
    for _ in range(p.ltv_churn_months):
        look = period_of(look - dt.timedelta(days=1), Grain.MONTH).start
    return look, end


def with_derived(
    values: dict[str, float | None], grain: Grain, dimension: str
) -> dict[str, float | None]:
    """``values`` plus every registered derived KPI of ``grain`` and ``dimension`` whose
    inputs are among them (in registration order, so one may read an earlier one)."""
    for derived in kpi_catalog.DERIVED.values():
        kpi = derived.kpi
        if grain in kpi.grains and dimension in kpi.dimensions and all(
            name in values for name in derived.inputs
        ):
            values[kpi.name] = derived.formula(values)
    return values


def compute(facts: Facts, scope: Scope, as_of: dt.date, p: Params = Params()) -> list[KpiValue]:
    """Every KPI value of the periods in ``scope`` (facts must cover :func:`data_range`)."""
    wanted = wanted_periods(scope)
    flow_wanted = {g: {period_of(d, g) for d in scope.flow_days} for g in GRAINS}
    dims = scope.dimensions
    out: list[KpiValue] = []

    def emit(grain: Grain, period: Period, dim: str, value: str, values: dict[str, float | None]) -> None:
        for kpi, v in with_derived(values, grain, dim).items():
            out.append(KpiValue(kpi, grain, period.label, period.start, dim, value, v, unit_of(kpi)))

    models = sorted({c.model for c in facts.credits} | set(facts.credit_models)
                    | {p.default_model})
    buckets = _flows(facts, wanted, dims)
    for grain_name, start, dim, member in scope.known_members:
        grain = Grain(grain_name)
        period = period_of(start, grain)
        # Account dimensions (segment …) have no flows (spend, credits): segments.py.
        if dim in dims and period in flow_wanted[grain] and dim not in ACCOUNT_DIMS:
            buckets.setdefault((grain, period, dim, member), _Flow())
    totals = "all" in dims
    series = MrrSeries(facts.mrr_days, facts.mrr_opening, facts.paying_opening)
    funnel = funnel_values(facts, wanted) if totals else {}
    trials = trial_values(facts.trials, wanted, as_of, dims, scope.known_trial_members)
    for grain in GRAINS if totals else ():
        for period in sorted(wanted[grain]):
            flow = buckets.get((grain, period, "all", "")) or _Flow()
            values = _flow_values(flow, "all", models, p)
            values.update(mrr_values(series, period, flow.spend, p))
            values.update(funnel[(grain, period)])
            values.update(trials.get((grain, period, "all", ""), {}))
            if facts.martech:  # without tool costs: n/a (and no fully loaded KPIs), not $0
                values["martech_cost"] = to_float(
                    martech_cost(facts.martech, period.start, period.end))
            if facts.deliverability:  # without ESP data: no rows (n/a), not "0 e-mails sent"
                values.update(deliverability.totals(facts.deliverability, period))
            emit(grain, period, "all", "", values)
    for (grain, period, dim, value), flow in sorted(buckets.items(), key=lambda kv: kv[0]):
        if dim != "all" and dim in dims and period in flow_wanted[grain]:
            emit(grain, period, dim, value, _flow_values(flow, dim, models, p))
    for (grain, period, dim, value), trial_kpis in sorted(trials.items(), key=lambda kv: kv[0]):
        if dim != "all":
            emit(grain, period, dim, value, trial_kpis)
    for (grain, period, dim, value), delivery_kpis in deliverability.breakdowns(
        facts.deliverability, flow_wanted, dims, scope.known_deliverability_members
    ).items():
        emit(grain, period, dim, value, delivery_kpis)
    budget_periods: set[Period] = set()
    for grain in BUDGET_GRAINS:
        budget_periods |= wanted[grain]
        budget_periods |= {period_of(m, grain) for m in scope.budget_months}
    for period, dim, value, values in budget_values(facts, sorted(budget_periods), as_of, dims):
        emit(period.grain, period, dim, value, values)
    if totals and scope.usage_days:  # product usage: totals and features (domain/usage.py)
        ledger, mrr = usage.UsageLedger(facts.usage), usage.MrrLookup(facts.usage_mrr)
        for (grain, period, dim, value), usage_kpis in usage.usage_values(
            ledger, mrr, scope.usage_days, as_of, p.churn_risk_drop, facts.usage_since
        ).items():
            emit(grain, period, dim, value, usage_kpis)
    if totals and scope.cx_days:  # customer experience: totals (domain/experience.py)
        for (grain, period, dim, value), cx_kpis in experience.experience_values(
            facts.feedback, facts.tickets, facts.cx_mrr, scope.cx_days, as_of
        ).items():
            emit(grain, period, dim, value, cx_kpis)
    return out
