"""The KPI catalog: every KPI Pulse computes (one list, read by the KPI service, alerts,
reports, Grafana generation and AsyncAPI), with label, definition, source, unit, grains
and direction. Un-suffixed attribution KPIs use
:data:`pulse_shared.attribution_models.DEFAULT_MODEL`; ``<kpi>__<model>`` each model.

``kpi_values`` rows and ``kpi.snapshots.v1`` messages use these names. Money is in account
currency (USD); rates are fractions (0.05 = 5 %). MRR movements are signed as ChartMogul
shows them: churn and contraction are negative, so net new MRR is their plain sum.

A KPI computed from other KPIs of the same period and dimension member (a ratio of two
KPIs, say) is a *derived* KPI: one :func:`derived_kpi` registration (its :class:`KpiDef`
and a pure formula over the already-computed values) lists it here and makes the KPI
service compute it wherever its inputs are computed.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from decimal import Decimal
from enum import StrEnum

from pulse_shared.attribution_models import DEFAULT_MODEL, MODEL_NAMES, label
from pulse_shared.events import Grain
from pulse_shared.periods import GRAINS, period_complete

ALL_GRAINS: tuple[Grain, ...] = GRAINS
BUDGET_GRAINS: tuple[Grain, ...] = (Grain.MONTH, Grain.QUARTER)
ALL_DIMS: tuple[str, ...] = ("all", "channel", "campaign")
TOTAL_ONLY: tuple[str, ...] = ("all",)
#: Breakdowns by the account's profile (ingest kind accounts): the member of a movement, new
#: customer or trial is the profile in force on its day, the member of a stock (MRR,
#: paying accounts at a period's end) the profile on the period's last day; accounts
#: without a profile then are ``unknown``. Computed by week, month and quarter (not by
#: day: a segment's day-by-day MRR says nothing its week does not, at 5 × the rows).
ACCOUNT_DIMS: tuple[str, ...] = ("segment", "plan", "region", "industry", "employee_band")
ACCOUNT_DIM_GRAINS: tuple[Grain, ...] = (Grain.WEEK, Grain.MONTH, Grain.QUARTER)
#: Billing KPIs broken down by ACCOUNT_DIMS (the trial KPIs are too, see TRIAL_KPI_DIMS).
ACCOUNT_DIM_KPIS: tuple[str, ...] = (
    "mrr", "arr", "mrr_new", "mrr_expansion", "mrr_contraction", "mrr_churn",
    "mrr_reactivation", "mrr_net_new", "gross_mrr_churn_rate", "net_mrr_churn_rate", "nrr",
    "logo_churn_rate", "paying_accounts", "arpa", "ltv", "new_customers",
)

MODELS: tuple[str, ...] = MODEL_NAMES
#: Funnel stages in order, and the stage pairs whose conversion and velocity are KPIs.
STAGES: tuple[str, ...] = ("lead", "mql", "sql", "opportunity", "won")
STAGE_PAIRS: tuple[tuple[str, str], ...] = (
    ("lead", "mql"), ("mql", "sql"), ("sql", "opportunity"), ("opportunity", "won"),
    ("lead", "won"),
)
STAGE_KPI: dict[str, str] = {
    "lead": "leads", "mql": "mqls", "sql": "sqls", "opportunity": "opportunities", "won": "wins",
}
MODEL_KPIS: tuple[str, ...] = (
    "attributed_pipeline", "attributed_revenue", "roas", "marketing_roi",
)


class Family(StrEnum):
    """What a KPI is about; access scopes (:mod:`pulse_shared.access`) are granted by family."""

    ACQUISITION = "acquisition"
    """Spend and acquisition economics: cost, CAC, attribution, ROAS."""
    FUNNEL = "funnel"
    """Pipeline stages, conversion and velocity (CRM)."""
    REVENUE = "revenue"
    """Recurring revenue and retention of paying customers (billing): MRR, churn, NRR."""
    BUDGET = "budget"
    """Budgets and pacing."""
    DELIVERABILITY = "deliverability"
    """E-mail deliverability: sent, delivered, bounces, complaints, opens, clicks (ESP)."""
    PRODUCT = "product"
    """Product usage: active accounts, feature adoption, launches, usage-based churn risk."""
    EXPERIENCE = "experience"
    """Customer experience: NPS and CSAT survey answers, support tickets and response times."""


class Direction(StrEnum):
    UP = "higher_is_better"
    DOWN = "lower_is_better"
    NEUTRAL = "neutral"


class Unit(StrEnum):
    USD = "USD"
    COUNT = "count"
    RATIO = "ratio"
    MONTHS = "months"
    DAYS = "days"
    HOURS = "hours"
    POINTS = "points"  # a score on a fixed scale, e.g. NPS −100…100


@dataclass(frozen=True, slots=True)
class KpiDef:
    name: str
    definition: str
    unit: Unit
    direction: Direction
    grains: tuple[Grain, ...] = ALL_GRAINS
    dimensions: tuple[str, ...] = TOTAL_ONLY
    label: str = ""
    """Name for people (reports, dashboards, tooltips)."""
    source: str = ""
    """Where the number comes from (which events / system), shown in footnotes and tooltips."""
    family: Family = Family.ACQUISITION
    """What the KPI is about (who may see it: :mod:`pulse_shared.access`)."""
    matures_after_days: int = 0
    """Days after the period's end until its value is final (0: as soon as it ends). A
    cohort KPI counted by a start date but resolved within a window (trial conversion) keeps
    changing until the window of the period's last start has passed: snapshots say
    ``complete`` only then (:func:`complete_on`)."""


def complete_on(kpi: str, grain: Grain | str, period_start: dt.date, today: dt.date) -> bool:
    """True when the period of ``kpi`` is final on ``today``: it ended before ``today`` and,
    for a maturing KPI, :attr:`KpiDef.matures_after_days` more days have passed. Unknown
    KPIs mature when the period ends (:func:`pulse_shared.periods.period_complete`)."""
    entry = BY_NAME.get(kpi)
    lag = entry.matures_after_days if entry is not None else 0
    return period_complete(grain, period_start, today - dt.timedelta(days=lag))


def _d(
    name: str, label: str, definition: str, unit: Unit, direction: Direction, source: str,
    grains: tuple[Grain, ...] = ALL_GRAINS, dimensions: tuple[str, ...] = TOTAL_ONLY,
    family: Family | None = None, matures_after_days: int = 0,
) -> KpiDef:
    if family is None:  # billing's numbers are revenue; the rest says so where it differs
        family = Family.REVENUE if source == BILLING_MRR else Family.ACQUISITION
    return KpiDef(name, definition, unit, direction, grains, dimensions, label, source, family,
                  matures_after_days)


U, C, R = Unit.USD, Unit.COUNT, Unit.RATIO
UP, DOWN, NEUTRAL = Direction.UP, Direction.DOWN, Direction.NEUTRAL

# Where numbers come from (shown in report footnotes and dashboard tooltips).
AD_SPEND = "Ad platforms: spend events"
BILLING_MRR = "Billing: subscription events (MRR movements)"
NEW_CUSTOMERS_SOURCE = (
    "Billing: subscription events (first paid MRR of an account); by channel/campaign: "
    f"new-subscription credits, {label(DEFAULT_MODEL)} model"
)
BUDGETS = "Budgets: budget events"
MARTECH = "Martech: monthly tool/licence cost events (ingest kind martech)"
#: How a monthly tool cost lands in periods shorter than a month (catalog definitions).
MARTECH_SPREAD = (
    "A month's tool cost is spread evenly over the month's calendar days (cost ÷ days in "
    "the month per day), so a day or a week carries its days' share and a month or quarter "
    "carries the whole costs of its months."
)


def crm_stage(stage: str) -> str:
    return f"CRM: pipeline events (stage = {stage})"


def credits_of(model: str, milestone: str) -> str:
    return f"Attribution credits of {milestone} conversions, {label(model)} model"


def _by_dimension(stage: str, milestone: str) -> str:
    """Source of a stage count: CRM in total, default-model credits by channel/campaign."""
    credits = credits_of(DEFAULT_MODEL, milestone)
    return f"{crm_stage(stage)}; by channel/campaign: {credits[0].lower()}{credits[1:]}"


def _attributed(kpi: str, model: str) -> str:
    if kpi == "attributed_pipeline":
        return credits_of(model, "opportunity")
    if kpi == "attributed_revenue":
        return credits_of(model, "won")
    return f"{credits_of(model, 'won')} ÷ {AD_SPEND}"


_BASE: tuple[KpiDef, ...] = (
    _d("spend", "Spend", "Ad spend in the period (sum of spend events).", U, NEUTRAL,
       AD_SPEND, dimensions=ALL_DIMS),
    _d("impressions", "Impressions", "Ad impressions in the period.", C, UP, AD_SPEND,
       dimensions=ALL_DIMS),
    _d("clicks", "Clicks", "Ad clicks in the period.", C, UP, AD_SPEND, dimensions=ALL_DIMS),
    _d("ctr", "Click-through rate", "Click-through rate = clicks / impressions.", R, UP,
       AD_SPEND, dimensions=ALL_DIMS),
    _d("leads", "Leads", "Accounts reaching the lead stage in the period (by channel/campaign: "
       "lead credits of the default attribution model).", C, UP,
       _by_dimension("lead", "lead"), dimensions=ALL_DIMS, family=Family.FUNNEL),
    _d("mqls", "MQLs", "Accounts reaching MQL in the period.", C, UP, crm_stage("mql"),
       family=Family.FUNNEL),
    _d("sqls", "SQLs", "Accounts reaching SQL in the period.", C, UP, crm_stage("sql"),
       family=Family.FUNNEL),
    _d("opportunities", "Opportunities", "Accounts reaching opportunity in the period (by "
       "channel/campaign: opportunity credits of the default model).", C, UP,
       _by_dimension("opportunity", "opportunity"), dimensions=ALL_DIMS, family=Family.FUNNEL),
    _d("wins", "Deals won (CRM)", "Deals won in the CRM in the period (by channel/campaign: "
       "won credits of the default model). Not the CAC denominator: a won deal is not a "
       "paying customer until billing starts its subscription (see new_customers).", C, UP,
       _by_dimension("won", "won"), dimensions=ALL_DIMS, family=Family.FUNNEL),
    _d("new_customers", "New customers", "Accounts whose first paid subscription (a new MRR "
       "movement) falls in the period (by channel/campaign: new-subscription credits of the "
       "default model). The CAC denominator.", C, UP, NEW_CUSTOMERS_SOURCE,
       dimensions=ALL_DIMS),
    _d("cpl", "Cost per lead", "Cost per lead = spend / leads.", U, DOWN,
       f"{AD_SPEND} ÷ leads ({_by_dimension('lead', 'lead')})", dimensions=ALL_DIMS),
    _d("cost_per_opportunity", "Cost per opportunity", "Spend / opportunities.", U, DOWN,
       f"{AD_SPEND} ÷ opportunities ({_by_dimension('opportunity', 'opportunity')})",
       dimensions=ALL_DIMS),
    _d("cac", "CAC", "Customer acquisition cost = spend / new_customers, at every dimension "
       "(not spend / wins).", U, DOWN, f"{AD_SPEND} ÷ new customers ({NEW_CUSTOMERS_SOURCE})",
       dimensions=ALL_DIMS),
    _d("cac_payback_months", "CAC payback", "CAC / (ARPA × gross margin), ARPA at period end.",
       Unit.MONTHS, DOWN, f"CAC ({AD_SPEND} ÷ new customers) and ARPA ({BILLING_MRR})"),
    _d("attributed_pipeline", "Attributed pipeline", "Opportunity amount credited to "
       "marketing touches (default model; `attributed_pipeline__<model>` per model).", U, UP,
       _attributed("attributed_pipeline", DEFAULT_MODEL), dimensions=ALL_DIMS),
    _d("attributed_revenue", "Attributed revenue", "Won revenue credited to marketing "
       "touches (default model; `attributed_revenue__<model>` per model).", U, UP,
       _attributed("attributed_revenue", DEFAULT_MODEL), dimensions=ALL_DIMS),
    _d("roas", "ROAS", "Return on ad spend = attributed revenue / spend (default model).", R,
       UP, _attributed("roas", DEFAULT_MODEL), dimensions=ALL_DIMS),
    _d("marketing_roi", "Marketing ROI", "(Attributed revenue − spend) / spend (default "
       "model).", R, UP, _attributed("marketing_roi", DEFAULT_MODEL), dimensions=ALL_DIMS),
    _d("martech_cost", "Martech cost", "Marketing tool and licence costs (martech) in the "
       f"period. {MARTECH_SPREAD} By tool category or vendor: `pulse kpi martech --by "
       "category` (KPI dimensions are channel and campaign; tools belong to neither).", U,
       NEUTRAL, MARTECH, family=Family.BUDGET),
    _d("mrr", "MRR", "Monthly recurring revenue at period end (sum of every account's MRR).",
       U, UP, BILLING_MRR),
    _d("arr", "ARR", "Annual recurring revenue = 12 × MRR at period end.", U, UP,
       BILLING_MRR),
    _d("mrr_new", "New MRR", "MRR of accounts' first paid subscription in the period.", U, UP,
       BILLING_MRR),
    _d("mrr_expansion", "Expansion MRR", "MRR increases of paying accounts in the period.",
       U, UP, BILLING_MRR),
    _d("mrr_contraction", "Contraction MRR", "MRR decreases of still-paying accounts "
       "(negative).", U, UP, BILLING_MRR),
    _d("mrr_churn", "Churned MRR", "MRR lost by accounts going to zero (negative).", U, UP,
       BILLING_MRR),
    _d("mrr_reactivation", "Reactivation MRR", "MRR of accounts paying again after having "
       "churned.", U, UP, BILLING_MRR),
    _d("mrr_net_new", "Net new MRR", "new + expansion + contraction + churn + reactivation.",
       U, UP, BILLING_MRR),
    _d("gross_mrr_churn_rate", "Gross MRR churn rate", "(churn + contraction) / MRR at "
       "period start (magnitudes).", R, DOWN, BILLING_MRR),
    _d("net_mrr_churn_rate", "Net MRR churn rate", "(churn + contraction − expansion − "
       "reactivation) / MRR at period start (magnitudes).", R, DOWN, BILLING_MRR),
    _d("nrr", "Net revenue retention", "Net revenue retention = 1 − net MRR churn rate.", R,
       UP, BILLING_MRR),
    _d("logo_churn_rate", "Logo churn rate", "Accounts churned in the period / paying "
       "accounts at period start.", R, DOWN, BILLING_MRR),
    _d("paying_accounts", "Paying accounts", "Accounts with MRR > 0 at period end.", C, UP,
       BILLING_MRR),
    _d("arpa", "ARPA", "Average revenue per account = MRR / paying accounts at period end.",
       U, UP, BILLING_MRR),
    _d("ltv", "LTV", "ARPA × gross margin / customer churn rate (average monthly logo churn "
       "of the 6 months ending with the period's last month).", U, UP, BILLING_MRR),
    _d("ltv_cac", "LTV:CAC", "LTV / CAC (≥ 3 is healthy).", R, UP,
       f"LTV ({BILLING_MRR}) ÷ CAC ({AD_SPEND} ÷ new customers)"),
    _d("budget", "Budget", "Planned budget (channel budget, else the sum of its campaign "
       "budgets).", U, NEUTRAL, BUDGETS, BUDGET_GRAINS, ALL_DIMS, Family.BUDGET),
    _d("spend_to_date", "Spend to date", "Spend in the period up to the as-of day.", U,
       NEUTRAL, AD_SPEND, BUDGET_GRAINS, ALL_DIMS, Family.BUDGET),
    _d("pacing", "Budget pacing", "Spend to date / (budget × elapsed fraction of the "
       "period); 1 = on plan.", R, NEUTRAL, f"{AD_SPEND} ÷ {BUDGETS}", BUDGET_GRAINS,
       ALL_DIMS, Family.BUDGET),
    _d("projected_spend", "Projected spend", "Projected period-end spend = spend to date / "
       "elapsed fraction.", U, NEUTRAL, AD_SPEND, BUDGET_GRAINS, ALL_DIMS, Family.BUDGET),
)
_BASE = tuple(
    replace(k, dimensions=(*k.dimensions, *ACCOUNT_DIMS)) if k.name in ACCOUNT_DIM_KPIS else k
    for k in _BASE
)

#: Funnel stages for people.
STAGE_LABELS: dict[str, str] = {
    "lead": "Lead", "mql": "MQL", "sql": "SQL", "opportunity": "Opportunity", "won": "Won",
}
FUNNEL_SOURCE = "CRM: pipeline events (first time each account reaches a stage)"


def _funnel() -> tuple[KpiDef, ...]:
    out: list[KpiDef] = []
    for a, b in STAGE_PAIRS:
        pair = f"{STAGE_LABELS[a]} → {STAGE_LABELS[b]}"
        out.append(_d(f"conv_{a}_to_{b}", f"{pair} conversion", f"Of the accounts reaching "
                      f"{a} in the period, the fraction that reached {b} (so far).", R, UP,
                      FUNNEL_SOURCE, family=Family.FUNNEL))
        out.append(_d(f"velocity_{a}_to_{b}_days", f"{pair} velocity", f"Median days from "
                      f"{a} to {b} of the accounts reaching {b} in the period.", Unit.DAYS,
                      DOWN, FUNNEL_SOURCE, family=Family.FUNNEL))
    return tuple(out)


def _per_model() -> tuple[KpiDef, ...]:
    base = {k.name: k for k in _BASE}
    return tuple(
        _d(f"{kpi}__{model}", f"{base[kpi].label} ({label(model)})",
           f"{base[kpi].definition.split(' (')[0]} — model {model}.",
           base[kpi].unit, base[kpi].direction, _attributed(kpi, model), dimensions=ALL_DIMS)
        for kpi in MODEL_KPIS
        for model in MODELS
    )


# --------------------------------------------------------------------------- trials

#: Days after its start within which a trial must reach MRR > 0 to count as converted.
TRIAL_CONVERSION_WINDOW_DAYS = 30
#: Trials by channel: the account's first-touch channel (``unknown`` without touchpoints).
TRIAL_DIMS: tuple[str, ...] = ("all", "channel")
#: The trial KPIs' catalog dimensions: TRIAL_DIMS and the account's profile on the trial's
#: start day (computed with the other ACCOUNT_DIMS breakdowns).
TRIAL_KPI_DIMS: tuple[str, ...] = (*TRIAL_DIMS, *ACCOUNT_DIMS)
TRIAL_SOURCE = (
    "Billing: subscription events (trial_started, first MRR > 0); by channel: the account's "
    "first touchpoint"
)
_TRIAL_COHORT = (
    "Trials are counted in the period their trial STARTED (cohort style, what 'trial-to-paid "
    f"rate of the trials started in P' means), each resolved within {TRIAL_CONVERSION_WINDOW_DAYS}"
    " days of its start; a period is final (complete) only once the window of its last day's "
    f"trials has passed ({TRIAL_CONVERSION_WINDOW_DAYS} days after the period's end), until "
    "then trials_running says how many are still open."
)
_TRIAL_DEF = (
    "A trial is an account's first trial_started event, unless the account paid (MRR > 0) "
    "before it; it converts when the account's first MRR > 0 (subscription_started) is at "
    f"most {TRIAL_CONVERSION_WINDOW_DAYS} days (calendar days) after the trial's start day. "
    "By channel: the account's first-touch channel, whole trials (no attribution credits: "
    "trials are not an attribution milestone); by segment, plan, region, industry or "
    "employee band: the account's profile on the trial's start day (unknown without one)."
)


def _trials() -> tuple[KpiDef, ...]:
    lag = TRIAL_CONVERSION_WINDOW_DAYS
    window = f"within {lag} days"

    def trial(name: str, label: str, definition: str, unit: Unit, direction: Direction,
              matures: int = lag) -> KpiDef:
        return _d(name, label, definition, unit, direction, TRIAL_SOURCE,
                  dimensions=TRIAL_KPI_DIMS, family=Family.FUNNEL, matures_after_days=matures)

    return (
        trial("trials_started", "Trials started", f"Trials started in the period. {_TRIAL_DEF}",
              C, UP, matures=0),
        trial("trials_converted", "Trials converted", "Trials started in the period whose "
              f"account started paying {window} of the trial start (counted in the START "
              f"period, not the conversion period). {_TRIAL_COHORT}", C, UP),
        trial("trial_expired", "Trials expired", "Trials started in the period whose "
              f"{lag}-day window has passed without the account paying (a later conversion "
              "stays expired: it is not a trial conversion).", C, DOWN),
        trial("trials_running", "Trials still running", "Trials started in the period that "
              f"have neither converted nor expired yet (window of {lag} days still open): "
              "trials_started = converted + expired + running; the period's trial numbers "
              "are provisional while this is above 0.", C, NEUTRAL),
        trial("days_to_convert", "Days to convert", "Median days (fractional, from the "
              "trial_started event to the first paid event) of the trials started in the "
              f"period that converted {window}. Median like the funnel velocities: a few slow "
              "conversions do not move it.", Unit.DAYS, DOWN),
    )


# --------------------------------------------------------------------------- product usage

#: Default share by which an account's usage must drop month over month to count as a churn
#: risk (the KPI service's PULSE_KPI_CHURN_RISK_DROP, `pulse kpi churn-risk --drop`).
CHURN_RISK_DROP_DEFAULT = 0.5
USAGE_SOURCE = "Product: daily feature usage per account (ingest kind usage)"
USAGE_DIMS: tuple[str, ...] = ("all", "feature")
_ACTIVE = "An account is active on a day it has any usage (any feature, count ≥ 1)."


def _usage() -> tuple[KpiDef, ...]:
    def kpi(name: str, label: str, definition: str, unit: Unit, direction: Direction,
            grains: tuple[Grain, ...] = ALL_GRAINS, dimensions: tuple[str, ...] = TOTAL_ONLY,
            source: str = USAGE_SOURCE) -> KpiDef:
        return _d(name, label, definition, unit, direction, source, grains, dimensions,
                  Family.PRODUCT)

    return (
        kpi("active_accounts_daily", "Daily active accounts (DAU)", "Distinct accounts "
            f"with usage on the day. {_ACTIVE}", C, UP, (Grain.DAY,)),
        kpi("active_accounts_weekly", "Weekly active accounts (WAU)", "Distinct accounts "
            f"with usage in the ISO week. {_ACTIVE}", C, UP, (Grain.WEEK,)),
        kpi("active_accounts_monthly", "Monthly active accounts (MAU)", "Distinct accounts "
            f"with usage in the calendar month. {_ACTIVE}", C, UP, (Grain.MONTH,)),
        kpi("usage_events", "Feature uses", "Uses of product features in the period (sum "
            "of the usage counts); by feature: that feature's.", C, UP,
            dimensions=USAGE_DIMS),
        kpi("feature_adoption_rate", "Feature adoption rate", "Accounts that used the "
            "feature in the period / active accounts in the period (by feature only). "
            "Launch curves since a release: `pulse kpi launch FEATURE`.", R, UP,
            dimensions=("feature",)),
        kpi("churn_risk_accounts", "Accounts at churn risk", "Paying accounts (MRR > 0 at "
            "the month's end, or today in the running month) whose usage per day dropped by "
            f"more than PULSE_KPI_CHURN_RISK_DROP (default {CHURN_RISK_DROP_DEFAULT:.0%}) "
            "against the previous month (uses ÷ days of the month, elapsed days for the "
            "running month; accounts without usage the previous month are not counted). "
            "The accounts with their usage and MRR: `pulse kpi churn-risk`.", C, DOWN,
            (Grain.MONTH,), source=f"{USAGE_SOURCE}; {BILLING_MRR}"),
    )


#: Every product usage KPI (computed together from product usage, totals pass).
USAGE_KPIS: tuple[str, ...] = tuple(k.name for k in _usage())

# --------------------------------------------------------------------------- deliverability

#: Deliverability KPIs by sending domain and ESP campaign (the campaign dimension holds the
#: ESP's campaign id for these KPIs).
DELIVERABILITY_DIMS: tuple[str, ...] = ("all", "sending_domain", "campaign")
#: Industry thresholds (mailbox providers' guidance) of the shipped alert rule templates
#: (pulse_alerts/rules/default.yaml; a rules file changes them for alerts) and of the
#: report's breach statements: bounce rate 2 %, spam complaint rate 0.1 % of sent.
BOUNCE_RATE_THRESHOLD = 0.02
COMPLAINT_RATE_THRESHOLD = 0.001
DELIVERABILITY_SOURCE = (
    "ESP: daily e-mail delivery counts (ingest kind deliverability; SendGrid stats or "
    "Mailchimp campaign report imports)"
)
_OVER_SENT = "of the e-mails sent in the period (n/a when nothing was sent)"
_OVER_DELIVERED = "of the e-mails delivered in the period (n/a when nothing was delivered)"


def _deliverability() -> tuple[KpiDef, ...]:
    def kpi(name: str, label: str, definition: str, unit: Unit, direction: Direction) -> KpiDef:
        return _d(name, label, definition, unit, direction, DELIVERABILITY_SOURCE,
                  dimensions=DELIVERABILITY_DIMS, family=Family.DELIVERABILITY)

    return (
        kpi("emails_sent", "E-mails sent", "E-mails handed to the ESP for delivery in the "
            "period (SendGrid requests, Mailchimp emails sent).", C, NEUTRAL),
        kpi("emails_delivered", "E-mails delivered", "E-mails accepted by the receiving "
            "servers in the period.", C, UP),
        kpi("delivery_rate", "Delivery rate", f"delivered / sent {_OVER_SENT}.", R, UP),
        kpi("bounce_rate", "Bounce rate", "(hard + soft bounces) / sent "
            f"{_OVER_SENT}. Industry threshold: keep it under 2 %.", R, DOWN),
        kpi("hard_bounce_rate", "Hard bounce rate", f"hard bounces / sent {_OVER_SENT}.", R,
            DOWN),
        kpi("complaint_rate", "Spam complaint rate", f"spam complaints / sent {_OVER_SENT}. "
            "Industry threshold: keep it under 0.1 % (mailbox providers filter or block "
            "above 0.3 %).", R, DOWN),
        kpi("unsubscribe_rate", "Unsubscribe rate", f"unsubscribes / sent {_OVER_SENT}.", R,
            DOWN),
        kpi("open_rate", "Open rate", f"unique opens / delivered {_OVER_DELIVERED}.", R, UP),
        kpi("click_rate", "Click rate", f"unique clicks / delivered {_OVER_DELIVERED}.", R,
            UP),
    )


#: Every deliverability KPI (the KPI service tracks their breakdown members apart: their
#: campaigns are ESP campaigns, not ad campaigns).
DELIVERABILITY_KPIS: tuple[str, ...] = tuple(k.name for k in _deliverability())

# --------------------------------------------------------------------------- experience

FEEDBACK_SOURCE = "Surveys: NPS and CSAT answers per account (ingest kind feedback)"
TICKETS_SOURCE = "Help desk: support ticket states, latest per ticket (ingest kind tickets)"


def _experience() -> tuple[KpiDef, ...]:
    def kpi(name: str, label: str, definition: str, unit: Unit, direction: Direction,
            source: str) -> KpiDef:
        return _d(name, label, definition, unit, direction, source, family=Family.EXPERIENCE)

    return (
        kpi("nps", "NPS", "Net Promoter Score of the NPS answers given in the period, in "
            "points (−100…100): % promoters (9–10) − % detractors (0–6); passives (7–8) "
            "count in the base only. Every answer counts (an account answering twice counts "
            "twice). n/a without answers.", Unit.POINTS, UP, FEEDBACK_SOURCE),
        kpi("nps_responses", "NPS responses", "NPS answers given in the period.", C, UP,
            FEEDBACK_SOURCE),
        kpi("csat", "CSAT", "Share of the CSAT answers given in the period that are 4 or 5 "
            "(on 1–5). n/a without answers.", R, UP, FEEDBACK_SOURCE),
        kpi("tickets_created", "Tickets created", "Support tickets opened in the period "
            "(by created_at).", C, DOWN, TICKETS_SOURCE),
        kpi("tickets_resolved", "Tickets resolved", "Tickets whose latest state is solved or "
            "closed with resolved_at in the period (a reopened ticket is not resolved).", C,
            UP, TICKETS_SOURCE),
        kpi("first_response_hours", "First response time", "Median hours from creation to "
            "first response of the tickets created in the period that have a first "
            "response. n/a when none has.", Unit.HOURS, DOWN, TICKETS_SOURCE),
        kpi("tickets_per_account", "Tickets per account", "tickets_created / paying accounts "
            "(MRR > 0) at the period's end (for the running period: at the start of today). "
            "n/a without paying accounts.", R, DOWN, f"{TICKETS_SOURCE}; {BILLING_MRR}"),
    )


#: Every customer experience KPI (computed together from feedback and tickets, totals pass).
EXPERIENCE_KPIS: tuple[str, ...] = tuple(k.name for k in _experience())

CATALOG: tuple[KpiDef, ...] = (
    *_BASE, *_funnel(), *_per_model(), *_trials(), *_deliverability(), *_usage(),
    *_experience(),
)
#: Every trial KPI (the derived trial_to_paid_rate included): their channel members come
#: from trials, not spend or credits, so the KPI service tracks them apart.
TRIAL_KPIS: tuple[str, ...] = (*(k.name for k in _trials()), "trial_to_paid_rate")
BY_NAME: dict[str, KpiDef] = {k.name: k for k in CATALOG}


def unit_of(kpi: str) -> str:
    return str(BY_NAME[kpi].unit)


# --------------------------------------------------------------------------- derived KPIs

Values = Mapping[str, float | None]
"""The KPI values already computed for one period × grain × dimension member."""
Formula = Callable[[Values], float | None]


@dataclass(frozen=True, slots=True)
class DerivedKpi:
    kpi: KpiDef
    inputs: tuple[str, ...]
    """KPIs the formula reads: it is computed wherever all of them are (and the KPI's own
    grains and dimensions allow it)."""
    formula: Formula


#: Derived KPIs by name, in registration order (a formula may read an earlier one).
DERIVED: dict[str, DerivedKpi] = {}


def derived_kpi(kpi: KpiDef, inputs: Sequence[str]) -> Callable[[Formula], Formula]:
    """Register the decorated formula as the derived KPI ``kpi`` and list ``kpi`` in the
    catalog (:data:`CATALOG`, :data:`BY_NAME`) unless it is already there."""

    def register(formula: Formula) -> Formula:
        global CATALOG
        if kpi.name in DERIVED:
            raise ValueError(f"derived KPI {kpi.name!r} is already registered")
        listed = BY_NAME.get(kpi.name)
        if listed is None:
            CATALOG = (*CATALOG, kpi)
            BY_NAME[kpi.name] = kpi
        elif listed != kpi:
            raise ValueError(f"KPI {kpi.name!r} is already in the catalog with another definition")
        DERIVED[kpi.name] = DerivedKpi(kpi, tuple(inputs), formula)
        return formula

    return register


def ratio(num: float | None, den: float | None) -> float | None:
    """``num / den`` rounded to 9 decimals like every KPI value; ``None`` when either is
    undefined or ``den`` is zero (a ratio is never an exception)."""
    if num is None or den is None or den == 0:
        return None
    return round(num / den, 9)


@derived_kpi(BY_NAME["ctr"], ("clicks", "impressions"))
def _ctr(values: Values) -> float | None:
    clicks, impressions = values["clicks"], values["impressions"]
    if clicks is None or not impressions:
        return None
    # Counts divide exactly in Decimal (whole floats convert exactly), as before the registry.
    return round(float(Decimal(clicks) / Decimal(impressions)), 9)


@derived_kpi(BY_NAME["ltv_cac"], ("ltv", "cac"))
def _ltv_cac(values: Values) -> float | None:
    return ratio(values["ltv"], values["cac"])


@derived_kpi(
    _d("trial_to_paid_rate", "Trial-to-paid rate", "trials_converted / trials_started of the "
       f"trials started in the period. {_TRIAL_COHORT}", R, UP, TRIAL_SOURCE,
       dimensions=TRIAL_KPI_DIMS, family=Family.FUNNEL,
       matures_after_days=TRIAL_CONVERSION_WINDOW_DAYS),
    ("trials_converted", "trials_started"),
)
def _trial_to_paid_rate(values: Values) -> float | None:
    return ratio(values["trials_converted"], values["trials_started"])


# --------------------------------------------------------------------------- martech


def _money_sum(*amounts: float) -> float:
    """Sum of money values exactly (Decimal of their shortest repr), to 9 decimals."""
    return round(float(sum((Decimal(repr(a)) for a in amounts), Decimal(0))), 9)


@derived_kpi(
    _d("marketing_cost", "Marketing cost", "Fully loaded marketing cost = ad spend + martech "
       f"cost (tools and licences). {MARTECH_SPREAD}", U, NEUTRAL, f"{AD_SPEND} + {MARTECH}"),
    ("spend", "martech_cost"),
)
def _marketing_cost(values: Values) -> float | None:
    spend, martech = values["spend"], values["martech_cost"]
    if spend is None or martech is None:
        return None
    return _money_sum(spend, martech)


@derived_kpi(
    _d("cac_fully_loaded", "CAC (fully loaded)", "Customer acquisition cost with tools = "
       "marketing_cost (ad spend + martech) / new_customers; `cac` is ad spend only. Unknown "
       "without any recorded cost, like cac.", U, DOWN,
       f"({AD_SPEND} + {MARTECH}) ÷ new customers ({NEW_CUSTOMERS_SOURCE})"),
    ("marketing_cost", "new_customers"),
)
def _cac_fully_loaded(values: Values) -> float | None:
    if not values["marketing_cost"]:
        return None
    return ratio(values["marketing_cost"], values["new_customers"])


@derived_kpi(
    _d("marketing_roi_fully_loaded", "Marketing ROI (fully loaded)", "(Attributed revenue − "
       "marketing_cost) / marketing_cost (default model; marketing cost = ad spend + martech). "
       "`marketing_roi` is the same over ad spend only.", R, UP,
       f"{credits_of(DEFAULT_MODEL, 'won')} ÷ ({AD_SPEND} + {MARTECH})"),
    ("attributed_revenue", "marketing_cost"),
)
def _marketing_roi_fully_loaded(values: Values) -> float | None:
    revenue, cost = values["attributed_revenue"], values["marketing_cost"]
    if revenue is None or not cost:
        return None
    return ratio(_money_sum(revenue, -cost), cost)
