"""Seeded synthetic B2B SaaS dataset: touchpoints, spend, subscriptions, pipeline, budgets.

The model behind it, deliberately simple but shaped like real data:

* Paid channels (search, social, display, events) have campaigns with a daily budget, a
  cost per click and a click-through rate; spend is produced per campaign per day and
  monthly budgets per channel are planned slightly above or below actual spend. Budget
  moves between paid channels in two-week *flights* (one channel up, others down, the
  day's total unchanged), as marketing teams re-plan: the variation a mix model learns from.
* Spend causes demand (see :class:`SpendResponse`): each paid channel's spend, carried
  over (geometric adstock) and saturating, draws new accounts on the days it runs and lifts
  the chance that open deals close; channels differ in strength and saturation, so their
  incremental returns differ. Organic channels bring a steady share.
* Every account has 1–5 contacts. Each account is acquired through one channel (paid by the
  day's spend response, the others by reach); its contacts touch several channels before
  one of them fills a form (lead).
* The funnel lead → mql → sql → opportunity → won/lost advances with probabilities scaled
  by the acquisition channel's *effectiveness* (referral and search convert better than
  display), with realistic delays; nurture touches (email, webinar, sales calls) happen
  between stages.
* Won accounts start a subscription (some after a trial), then upgrade, downgrade,
  cancel and reactivate month by month; ``mrr`` is the account's MRR after each event.
  A share of accounts were already customers before the window, so MRR at the start of
  the window is not zero and churn rates are defined.
* Optionally (``history_weeks``, see :class:`HistoryResponse`), a sales-led CRM history
  for a marketing mix model: daily spend per campaign over the weeks before the window,
  and won/lost deals over the history and the window whose weekly won revenue is caused
  by each paid channel's adstocked, saturating spend with a known ROI.

Everything is derived from one :class:`random.Random` seeded with ``seed``: the same
arguments give the same dataset, event ids included. Contact ids are salted hashes of
synthetic e-mail addresses, exactly as ingest would produce them.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import json
import math
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal

from pulse_ingest.domain.accounts_gen import account_profiles
from pulse_ingest.domain.deliverability_gen import email_deliverability as deliverability_events
from pulse_ingest.domain.experience_gen import customer_experience
from pulse_ingest.domain.usage_gen import product_usage as usage_events
from pulse_shared.events import (
    AccountProfile,
    Budget,
    Channel,
    EmailDeliveryStats,
    Event,
    FeedbackResponse,
    MartechCost,
    PipelineEvent,
    PipelineStage,
    ProductUsage,
    Spend,
    Subscription,
    SubscriptionEventType,
    SupportTicket,
    Touchpoint,
    TouchType,
)
from pulse_shared.privacy import hash_identifier

GENERATOR_SALT = "pulse-synthetic-generator-salt"
"""Salt used to hash the synthetic contacts (the data is fake; the salt need not be secret)."""

CENT = Decimal("0.01")


@dataclass(frozen=True)
class Campaign:
    campaign_id: str
    channel: Channel
    source: str
    medium: str
    daily_budget: float
    cpc: float
    ctr: float


@dataclass(frozen=True)
class ChannelProfile:
    channel: Channel
    reach: float  # relative weight as the account's acquisition channel
    effectiveness: float  # multiplies funnel conversion probabilities
    source: str
    medium: str
    touch_types: tuple[TouchType, ...]


CAMPAIGNS: tuple[Campaign, ...] = (
    Campaign("gads-brand", Channel.PAID_SEARCH, "google", "cpc", 180.0, 2.1, 0.085),
    Campaign("gads-nonbrand", Channel.PAID_SEARCH, "google", "cpc", 420.0, 6.4, 0.032),
    Campaign("gads-competitor", Channel.PAID_SEARCH, "google", "cpc", 150.0, 9.5, 0.021),
    Campaign("li-abm-enterprise", Channel.PAID_SOCIAL, "linkedin", "paid_social", 350.0, 8.9, 0.006),
    Campaign("li-leadgen-webinar", Channel.PAID_SOCIAL, "linkedin", "paid_social", 220.0, 6.2, 0.008),
    Campaign("meta-retargeting", Channel.PAID_SOCIAL, "facebook", "paid_social", 90.0, 1.4, 0.011),
    Campaign("gdn-retargeting", Channel.DISPLAY, "google", "display", 120.0, 0.9, 0.004),
    Campaign("capterra-listing", Channel.AFFILIATE, "capterra", "cpc", 60.0, 4.0, 0.02),
    Campaign("saastr-sponsorship", Channel.EVENTS, "saastr", "event", 250.0, 25.0, 0.01),
)

# Campaigns of non-paid channels (no spend), still tagged so touches are attributable.
FREE_CAMPAIGNS: dict[Channel, tuple[str, ...]] = {
    Channel.EMAIL: ("nurture-sequence", "monthly-newsletter", "product-launch"),
    Channel.WEBINAR: ("webinar-roi-masterclass", "webinar-product-tour"),
    Channel.CONTENT: ("ebook-attribution-guide", "report-state-of-b2b"),
}

PROFILES: dict[Channel, ChannelProfile] = {
    p.channel: p
    for p in (
        ChannelProfile(Channel.PAID_SEARCH, 22, 1.25, "google", "cpc", (TouchType.AD_CLICK,)),
        ChannelProfile(Channel.PAID_SOCIAL, 16, 0.85, "linkedin", "paid_social", (TouchType.AD_CLICK,)),
        ChannelProfile(Channel.DISPLAY, 8, 0.45, "google", "display", (TouchType.AD_IMPRESSION, TouchType.AD_CLICK)),
        ChannelProfile(Channel.ORGANIC_SEARCH, 18, 1.1, "google", "organic", (TouchType.WEB_VISIT,)),
        ChannelProfile(Channel.ORGANIC_SOCIAL, 5, 0.7, "linkedin", "social", (TouchType.WEB_VISIT,)),
        ChannelProfile(Channel.EMAIL, 6, 0.9, "hubspot", "email", (TouchType.EMAIL_OPEN, TouchType.EMAIL_CLICK)),
        ChannelProfile(Channel.REFERRAL, 6, 1.6, "g2", "referral", (TouchType.WEB_VISIT,)),
        ChannelProfile(Channel.DIRECT, 7, 1.0, "(direct)", "(none)", (TouchType.WEB_VISIT,)),
        ChannelProfile(Channel.WEBINAR, 4, 1.2, "zoom", "webinar", (TouchType.WEBINAR,)),
        ChannelProfile(Channel.EVENTS, 2, 1.15, "saastr", "event", (TouchType.EVENT_ATTENDED,)),
        ChannelProfile(Channel.CONTENT, 4, 0.75, "website", "content", (TouchType.CONTENT_DOWNLOAD,)),
        ChannelProfile(Channel.PARTNER, 2, 1.4, "partner-portal", "partner", (TouchType.WEB_VISIT,)),
        ChannelProfile(Channel.AFFILIATE, 2, 0.8, "capterra", "cpc", (TouchType.AD_CLICK,)),
        # Sales touches happen during the funnel, never as the acquisition channel.
        ChannelProfile(Channel.SALES, 0, 1.0, "crm", "sales", (TouchType.SALES_CALL,)),
    )
}

PLANS: tuple[tuple[str, int, float], ...] = (
    # plan, MRR (USD), weight
    ("starter", 490, 0.45),
    ("growth", 1490, 0.38),
    ("scale", 3900, 0.13),
    ("enterprise", 9500, 0.04),
)

#: Budget flights: every FLIGHT_DAYS the paid channels' shares are re-drawn in this range
#: (then scaled so the day's total budget is unchanged).
FLIGHT_DAYS = 14
FLIGHT_RANGE = (0.35, 1.65)


@dataclass(frozen=True)
class ChannelResponse:
    """How a paid channel's spend causes outcomes: ``adstock`` is the share of a day's
    effect carried to the next; ``half_saturation`` the adstocked daily spend (USD) at
    which it gives half its maximum; ``strength`` scales its pull on new accounts and
    ``close_lift`` its lift on deals closing (at saturation)."""

    adstock: float
    half_saturation: float
    strength: float
    close_lift: float


#: Incremental return differs by channel on purpose: search saturates late and converts,
#: social carries over longest, display is weak, events strong but small and saturated.
RESPONSES: dict[Channel, ChannelResponse] = {
    Channel.PAID_SEARCH: ChannelResponse(0.35, 900.0, 1.0, 0.9),
    Channel.PAID_SOCIAL: ChannelResponse(0.6, 500.0, 0.55, 0.45),
    Channel.DISPLAY: ChannelResponse(0.3, 400.0, 0.15, 0.1),
    Channel.EVENTS: ChannelResponse(0.5, 150.0, 0.5, 0.6),
    Channel.AFFILIATE: ChannelResponse(0.2, 80.0, 0.2, 0.2),
}


class SpendResponse:
    """Per day and paid channel, the saturated adstock of its spend (0..1) — what the
    synthetic outcomes respond to. Built from the generated spend, so it is the same data
    a mix model reads."""

    def __init__(self, start: dt.date, days: int, spend: Sequence[Spend]) -> None:
        self.start = start
        daily: dict[Channel, list[float]] = {c: [0.0] * days for c in RESPONSES}
        for row in spend:
            if row.channel in daily:
                daily[row.channel][(row.date - start).days] += float(row.amount)
        self.level: dict[Channel, list[float]] = {}
        for channel, amounts in daily.items():
            response, carried, levels = RESPONSES[channel], 0.0, []
            for amount in amounts:
                carried = amount + response.adstock * carried
                # adstock normalised to a steady daily spend, then x / (x + half)
                steady = carried * (1 - response.adstock)
                levels.append(steady / (steady + response.half_saturation))
            self.level[channel] = levels
        self.mean = {c: sum(v) / len(v) if v else 0.0 for c, v in self.level.items()}

    def _index(self, day: dt.date) -> int | None:
        i = (day - self.start).days
        return i if 0 <= i < len(next(iter(self.level.values()), [])) else None

    def pull(self, day: dt.date) -> dict[Channel, float]:
        """Each paid channel's pull on new accounts that day (relative weights)."""
        i = self._index(day)
        return {c: (RESPONSES[c].strength * self.level[c][i] if i is not None else 0.0)
                for c in RESPONSES}

    def close_multiplier(self, day: dt.date) -> float:
        """Factor on a deal's chance to close won that day: 1 at the window's average
        spend, above it when channels spend more than usual (and below when less)."""
        i = self._index(day)
        if i is None:
            return 1.0
        lift = sum(RESPONSES[c].close_lift * (self.level[c][i] - self.mean[c])
                   for c in RESPONSES)
        return max(0.2, 1.0 + 2.5 * lift)


@dataclass(frozen=True)
class HistoryResponse:
    """The truth behind the sales-led history, per paid channel and ISO week, in the form a
    weekly mix model fits: the week's spend, carried over by a *normalised* geometric
    adstock (``adstock`` = share carried to the next week, 8 weeks) and saturated
    logistically (``(1 - e^-λx) / (1 + e^-λx)`` with ``x`` = adstocked spend / the
    channel's largest weekly spend and λ = ``saturation``), scaled so that over the whole
    history the channel's incremental won revenue / its spend = ``roi``."""

    roi: float
    adstock: float
    saturation: float


#: Known incremental ROI (won revenue per USD of spend) of the history, different per channel
#: and two below 1: search 5.0 > events 2.5 > affiliate 1.2 > social 0.8 > display 0.5.
#: A weekly mix model fitted on the demo recovers the big channels' order and level; affiliate
#: and display spend too little to be told apart (docs/mmm.md, "Demo data").
HISTORY_RESPONSES: dict[Channel, HistoryResponse] = {
    Channel.PAID_SEARCH: HistoryResponse(roi=5.0, adstock=0.2, saturation=1.5),
    Channel.PAID_SOCIAL: HistoryResponse(roi=0.8, adstock=0.5, saturation=1.5),
    Channel.EVENTS: HistoryResponse(roi=2.5, adstock=0.4, saturation=2.0),
    Channel.AFFILIATE: HistoryResponse(roi=1.2, adstock=0.1, saturation=1.0),
    Channel.DISPLAY: HistoryResponse(roi=0.5, adstock=0.1, saturation=1.0),
}
#: Carry-over of the history's adstock, in weeks (the weekly model's ``adstock_l_max``).
HISTORY_ADSTOCK_WEEKS = 8
#: Won revenue per week without paid media (USD), before trend and seasonality: about 70 %
#: of a week's won revenue, the rest caused by spend (~12.5k USD a week).
HISTORY_BASELINE = 80_000.0
HISTORY_TREND = 0.12  # baseline growth over the history
HISTORY_SEASONALITY = 0.1  # amplitude of the yearly cycle of the baseline
HISTORY_NOISE = 0.025  # sd of the weekly multiplicative (log-normal) noise
#: Chance that a channel other than search is paused for a two-week history flight (its
#: budget goes to the others): the on/off weeks that let a mix model tell small channels'
#: returns apart.
HISTORY_PAUSE = 0.2
#: Range of a channel's multiplier in a history flight: wider than the window's
#: (:data:`FLIGHT_RANGE`), two years of re-planning move budgets further than four months.
HISTORY_FLIGHT_RANGE = (0.2, 1.8)
#: Range of a history flight's total budget, relative to the campaigns' daily budgets.
HISTORY_TOTAL_RANGE = (0.6, 1.4)
#: Sales-led deals: mostly starter and growth plans (annual contract value = MRR × 12).
HISTORY_PLAN_WEIGHTS: dict[str, float] = {"starter": 0.6, "growth": 0.33, "scale": 0.07}
#: A week's won revenue is split into deals; the last one takes the remainder rather than
#: leave less than this (a week's revenue below it gets no sales-led deal).
HISTORY_MIN_DEAL = 3000.0
#: Each won deal comes with 1 or 2 lost ones (mean 1.6): an opportunity win rate of ~38 %.
HISTORY_EXTRA_LOSS = 0.6
#: Days from opportunity to close (velocity opportunity → won around 40 days).
HISTORY_CYCLE_DAYS = (14.0, 70.0)


def history_contributions(
    weekly_spend: dict[Channel, list[float]],
) -> dict[Channel, list[float]]:
    """Each channel's true incremental won revenue per week of ``weekly_spend`` (see
    :class:`HistoryResponse`); over all the weeks, contribution / spend = the ROI."""
    out: dict[Channel, list[float]] = {}
    for channel, spend in weekly_spend.items():
        truth = HISTORY_RESPONSES[channel]
        weights = [truth.adstock**lag for lag in range(HISTORY_ADSTOCK_WEEKS)]
        largest = max(spend, default=0.0)
        if largest <= 0:
            out[channel] = [0.0] * len(spend)
            continue
        shape: list[float] = []
        for week in range(len(spend)):
            carried = sum(w * spend[week - lag] for lag, w in enumerate(weights) if week >= lag)
            x = truth.saturation * carried / sum(weights) / largest
            shape.append((1 - math.exp(-x)) / (1 + math.exp(-x)))
        scale = truth.roi * sum(spend) / sum(shape)
        out[channel] = [scale * v for v in shape]
    return out


Kind = Literal["touchpoints", "spend", "subscriptions", "pipeline", "budgets", "martech",
               "usage", "deliverability", "accounts", "feedback", "tickets"]
#: Every kind the generator can make (martech only with ``martech_tools=True``, usage only
#: with ``product_usage=True``).
KINDS: tuple[Kind, ...] = (
    "touchpoints", "spend", "subscriptions", "pipeline", "budgets", "martech", "deliverability",
    "usage", "accounts", "feedback", "tickets",
)


@dataclass
class SyntheticDataset:
    """Events of every input kind, each list sorted by time."""

    touchpoints: list[Touchpoint] = field(default_factory=list)
    spend: list[Spend] = field(default_factory=list)
    subscriptions: list[Subscription] = field(default_factory=list)
    pipeline: list[PipelineEvent] = field(default_factory=list)
    budgets: list[Budget] = field(default_factory=list)
    #: Tool costs per month (only with ``generate_dataset(martech_tools=True)``).
    martech: list[MartechCost] = field(default_factory=list)
    #: Daily feature usage per paying account (only with ``product_usage=True``).
    usage: list[ProductUsage] = field(default_factory=list)
    #: Daily e-mail delivery counts (only with ``email_deliverability=True``).
    deliverability: list[EmailDeliveryStats] = field(default_factory=list)
    #: Account profiles (only with ``account_profiles=True``).
    accounts: list[AccountProfile] = field(default_factory=list)
    #: NPS / CSAT answers and support tickets (only with ``customer_experience=True``).
    feedback: list[FeedbackResponse] = field(default_factory=list)
    tickets: list[SupportTicket] = field(default_factory=list)

    def by_kind(self) -> dict[str, Sequence[Event]]:
        kinds: dict[str, Sequence[Event]] = {
            "touchpoints": self.touchpoints,
            "spend": self.spend,
            "subscriptions": self.subscriptions,
            "pipeline": self.pipeline,
            "budgets": self.budgets,
        }
        if self.martech:  # opt-in: without it the dataset (and its files) are as before
            kinds["martech"] = self.martech
        if self.usage:  # opt-in, like martech
            kinds["usage"] = self.usage
        if self.deliverability:  # opt-in, like martech
            kinds["deliverability"] = self.deliverability
        if self.accounts:  # opt-in, like martech
            kinds["accounts"] = self.accounts
        if self.feedback:  # opt-in, like martech
            kinds["feedback"] = self.feedback
        if self.tickets:  # opt-in, like martech
            kinds["tickets"] = self.tickets
        return kinds

    def counts(self) -> dict[str, int]:
        return {kind: len(events) for kind, events in self.by_kind().items()}


#: The demo's marketing tools (martech): vendor, category, monthly licence cost in USD —
#: a mid-size B2B SaaS stack (CRM, marketing automation, analytics, ESP, webinars, data
#: enrichment), about $11.7k a month beside the ad spend.
MARTECH_TOOLS: tuple[tuple[str, str, Decimal], ...] = (
    ("Salesforce", "crm", Decimal("4200.00")),
    ("HubSpot", "marketing_automation", Decimal("3200.00")),
    ("Amplitude", "analytics", Decimal("1500.00")),
    ("SendGrid", "esp", Decimal("890.00")),
    ("Zoom Webinars", "webinar", Decimal("690.00")),
    ("Clearbit", "enrichment", Decimal("1250.00")),
)


class _Ids:
    """Deterministic, collision-free event ids for one generator run."""

    def __init__(self, seed: int, days: int, accounts: int, end: dt.date) -> None:
        self.prefix = hashlib.sha256(f"{seed}|{days}|{accounts}|{end}".encode()).hexdigest()[:8]
        self.counter = 0

    def next(self, kind: str) -> str:
        self.counter += 1
        return f"gen-{self.prefix}-{kind}-{self.counter:08d}"


def _money(value: float) -> Decimal:
    return Decimal(str(round(value, 2))).quantize(CENT)


def _at(day: dt.date, rng: random.Random) -> dt.datetime:
    """A business-hours-ish moment of ``day`` (UTC)."""
    seconds = int(rng.triangular(7 * 3600, 21 * 3600, 14 * 3600))
    return dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC) + dt.timedelta(
        seconds=seconds, milliseconds=rng.randrange(1000)
    )


def _ms(when: dt.datetime) -> dt.datetime:
    """Millisecond precision, like the DateTime64(3) columns that store it."""
    return when.replace(microsecond=when.microsecond // 1000 * 1000)


def _months_between(start: dt.date, end: dt.date) -> list[str]:
    months: list[str] = []
    y, m = start.year, start.month
    while (y, m) <= (end.year, end.month):
        months.append(f"{y:04d}-{m:02d}")
        y, m = (y + 1, 1) if m == 12 else (y, m + 1)
    return months


def _days_in_month(month: str) -> int:
    y, m = (int(p) for p in month.split("-"))
    nxt = dt.date(y + 1, 1, 1) if m == 12 else dt.date(y, m + 1, 1)
    return (nxt - dt.date(y, m, 1)).days


class _Builder:
    def __init__(
        self, seed: int, days: int, accounts: int, end: dt.date, history_weeks: int = 0
    ) -> None:
        self.rng = random.Random(seed)
        self.seed = seed
        self.ids = _Ids(seed, days, accounts, end)
        self.start = end - dt.timedelta(days=days - 1)
        self.end = end
        self.days = days
        self.accounts = accounts
        self.out = SyntheticDataset()
        self.campaigns_by_channel: dict[Channel, list[Campaign]] = {}
        for c in CAMPAIGNS:
            self.campaigns_by_channel.setdefault(c.channel, []).append(c)
        self.channels = list(PROFILES)
        self.reach = [PROFILES[c].reach for c in self.channels]
        self.nurture = [Channel.EMAIL, Channel.WEBINAR, Channel.CONTENT, Channel.DIRECT,
                        Channel.ORGANIC_SEARCH, Channel.PAID_SOCIAL, Channel.DISPLAY]
        self.nurture_weights = [30, 8, 8, 14, 12, 8, 6]
        # Flights and the spend-driven draws use their own generator, so every other draw
        # (funnel, plans, timing) is the same one as without them.
        self.response_rng = random.Random(f"{seed}-spend-response")
        self.response: SpendResponse | None = None
        self.flights: dict[tuple[int, Channel], float] = {}
        self.pulls: list[dict[Channel, float]] | None = None  # per day, built once
        # The history has its own generator too (and its events are made last, so their ids
        # follow the window's): history_weeks=0 gives exactly the dataset without it.
        self.history_weeks = history_weeks
        self.history_rng = random.Random(f"{seed}-history")
        monday = end - dt.timedelta(days=end.weekday())
        self.history_start = monday - dt.timedelta(weeks=history_weeks)
        self.history_flights: dict[tuple[int, Channel], float] = {}

    # -- spend and budgets ---------------------------------------------------------------

    def flight(self, offset: int, channel: Channel) -> float:
        """The channel's budget multiplier on day ``offset`` of the window (1 outside it).
        Each flight re-draws the paid channels' multipliers and scales them so the sum of
        daily budgets is unchanged: the day's total spend keeps its range."""
        if not 0 <= offset < self.days:
            return 1.0
        block = offset // FLIGHT_DAYS
        if (block, channel) not in self.flights:
            budgets: dict[Channel, float] = {}
            for c in CAMPAIGNS:
                budgets[c.channel] = budgets.get(c.channel, 0.0) + c.daily_budget
            raw = {ch: self.response_rng.uniform(*FLIGHT_RANGE) for ch in sorted(budgets)}
            scale = sum(budgets.values()) / sum(budgets[ch] * raw[ch] for ch in budgets)
            for ch in budgets:
                self.flights[(block, ch)] = raw[ch] * scale
        return self.flights[(block, channel)]

    def spend_and_budgets(self) -> None:
        rng = self.rng
        planned: dict[tuple[str, Channel], float] = {}
        for offset in range(self.days):
            day = self.start + dt.timedelta(days=offset)
            weekend = day.weekday() >= 5
            for c in CAMPAIGNS:
                factor = rng.uniform(0.85, 1.3) * (0.6 if weekend else 1.0)
                amount = c.daily_budget * factor * self.flight(offset, c.channel)
                clicks = max(0, int(amount / (c.cpc * rng.uniform(0.85, 1.15))))
                impressions = max(clicks, int(clicks / (c.ctr * rng.uniform(0.8, 1.25))))
                self.out.spend.append(
                    Spend(
                        event_id=self.ids.next("spend"),
                        date=day,
                        channel=c.channel,
                        campaign_id=c.campaign_id,
                        amount=_money(amount),
                        impressions=impressions,
                        clicks=clicks,
                    )
                )
        for month in _months_between(self.start, self.end):
            first = dt.date.fromisoformat(f"{month}-01")
            for c in CAMPAIGNS:
                key = (month, c.channel)
                # planned with the flights (the plan moves budget, spend follows it)
                planned[key] = planned.get(key, 0.0) + sum(
                    c.daily_budget * self.flight((first - self.start).days + d, c.channel)
                    for d in range(_days_in_month(month))
                )
        for (month, channel), amount in sorted(planned.items(), key=lambda kv: (kv[0][0], kv[0][1].value)):
            plan = amount * rng.uniform(0.85, 1.1)
            self.out.budgets.append(
                Budget(
                    event_id=self.ids.next("budget"),
                    month=month,
                    channel=channel,
                    amount=_money(round(plan / 100) * 100),
                )
            )
        self.response = SpendResponse(self.start, self.days, self.out.spend)

    # -- touchpoints ---------------------------------------------------------------------

    def touch(
        self,
        when: dt.datetime,
        account_id: str,
        contact_id: str,
        channel: Channel,
        touch_type: TouchType | None = None,
    ) -> None:
        if when.date() > self.end or when.date() < self.start:
            return
        when = _ms(when)
        rng = self.rng
        profile = PROFILES[channel]
        source, medium, campaign_id = profile.source, profile.medium, ""
        paid = self.campaigns_by_channel.get(channel)
        if paid:
            campaign = rng.choice(paid)
            source, medium, campaign_id = campaign.source, campaign.medium, campaign.campaign_id
        elif channel in FREE_CAMPAIGNS:
            campaign_id = rng.choice(FREE_CAMPAIGNS[channel])
        tagged = bool(campaign_id)
        self.out.touchpoints.append(
            Touchpoint(
                event_id=self.ids.next("tp"),
                occurred_at=when,
                account_id=account_id,
                contact_id=contact_id,
                channel=channel,
                source=source,
                medium=medium,
                campaign_id=campaign_id,
                touch_type=touch_type or rng.choice(profile.touch_types),
                utm_source=source if tagged else "",
                utm_medium=medium if tagged else "",
                utm_campaign=campaign_id,
            )
        )

    def nurture_touches(
        self, account_id: str, contacts: list[str], start: dt.datetime, stop: dt.datetime, n: int
    ) -> None:
        span = (stop - start).total_seconds()
        if span <= 0:
            return
        for _ in range(n):
            channel = self.rng.choices(self.nurture, self.nurture_weights)[0]
            when = start + dt.timedelta(seconds=self.rng.uniform(0, span))
            self.touch(when, account_id, self.rng.choice(contacts), channel)

    # -- accounts ------------------------------------------------------------------------

    def stage(
        self, when: dt.datetime, account_id: str, stage: PipelineStage, amount: Decimal | None = None
    ) -> bool:
        if when.date() > self.end:
            return False
        when = _ms(when)
        self.out.pipeline.append(
            PipelineEvent(
                event_id=self.ids.next("pipe"),
                occurred_at=when,
                account_id=account_id,
                stage=stage,
                amount=amount,
            )
        )
        return True

    def subscription(
        self, when: dt.datetime, account_id: str, event_type: SubscriptionEventType, mrr: int, plan: str
    ) -> bool:
        if when.date() > self.end:
            return False
        when = _ms(when)
        self.out.subscriptions.append(
            Subscription(
                event_id=self.ids.next("sub"),
                occurred_at=when,
                account_id=account_id,
                event_type=event_type,
                mrr=Decimal(mrr),
                plan=plan,
            )
        )
        return True

    def pick_plan(self) -> tuple[str, int]:
        plan, mrr, _ = self.rng.choices(PLANS, [p[2] for p in PLANS])[0]
        return plan, mrr

    def lifecycle(self, account_id: str, started: dt.datetime, plan: str, mrr: int) -> None:
        """Month-by-month billing changes after a subscription starts."""
        rng = self.rng
        plan_index = next(i for i, p in enumerate(PLANS) if p[0] == plan)
        paying = True
        when = started
        while True:
            when = when + dt.timedelta(days=rng.uniform(26, 34))
            if when.date() > self.end:
                return
            r = rng.random()
            if paying:
                if r < 0.022:
                    paying = False
                    self.subscription(when, account_id, SubscriptionEventType.SUBSCRIPTION_CANCELED, 0, plan)
                elif r < 0.062 and plan_index < len(PLANS) - 1:
                    plan_index += 1
                    plan, mrr = PLANS[plan_index][0], PLANS[plan_index][1]
                    self.subscription(when, account_id, SubscriptionEventType.SUBSCRIPTION_UPGRADED, mrr, plan)
                elif r < 0.085 and plan_index > 0:
                    plan_index -= 1
                    plan, mrr = PLANS[plan_index][0], PLANS[plan_index][1]
                    self.subscription(when, account_id, SubscriptionEventType.SUBSCRIPTION_DOWNGRADED, mrr, plan)
                elif r < 0.12:
                    # seat expansion within the plan
                    mrr = int(mrr * rng.choice((1.1, 1.2, 1.25)))
                    self.subscription(when, account_id, SubscriptionEventType.SUBSCRIPTION_UPGRADED, mrr, plan)
            elif r < 0.12:
                paying = True
                self.subscription(when, account_id, SubscriptionEventType.SUBSCRIPTION_REACTIVATED, mrr, plan)

    def arrival(self, day: dt.date, channel: Channel) -> tuple[dt.date, Channel]:
        """When and through which channel a new account arrives. Organic arrivals (the
        share of reach of the channels without spend) keep the uniform ``day`` drawn
        before, through an organic channel; paid ones come on a day and through a channel
        in proportion to the channels' spend response that day, so more (carried-over,
        saturating) spend brings more accounts."""
        response = self.response
        if response is None:
            return day, channel
        rng = self.response_rng
        organic = [c for c in self.channels if c not in RESPONSES and PROFILES[c].reach]
        organic_reach = [PROFILES[c].reach for c in organic]
        if rng.random() < sum(organic_reach) / sum(self.reach):
            return day, channel if channel in organic else rng.choices(organic, organic_reach)[0]
        if self.pulls is None:
            self.pulls = [response.pull(self.start + dt.timedelta(days=i))
                          for i in range(self.days)]
        weights = [sum(p.values()) for p in self.pulls]
        if not any(weights):
            return day, channel
        i = rng.choices(range(self.days), weights)[0]
        pulls = self.pulls[i]
        return self.start + dt.timedelta(days=i), rng.choices(list(pulls), list(pulls.values()))[0]

    def account(self, index: int) -> None:
        rng = self.rng
        account_id = f"acct-{index:05d}"
        domain = f"company{index:05d}.example"
        n_contacts = rng.choices((1, 2, 3, 4, 5), (25, 30, 25, 13, 7))[0]
        contacts = [
            hash_identifier(f"contact{k}@{domain}", GENERATOR_SALT) for k in range(n_contacts)
        ]
        window_start = dt.datetime.combine(self.start, dt.time(), tzinfo=dt.UTC)

        if rng.random() < 0.2:
            # An existing customer from before the window: billing history, a few touches.
            started = window_start - dt.timedelta(days=rng.uniform(20, 400))
            plan, mrr = self.pick_plan()
            self.subscription(started, account_id, SubscriptionEventType.SUBSCRIPTION_STARTED, mrr, plan)
            self.lifecycle(account_id, started, plan, mrr)
            self.nurture_touches(
                account_id, contacts, window_start,
                window_start + dt.timedelta(days=self.days), rng.randint(0, 4),
            )
            return

        acquisition = rng.choices(self.channels, self.reach)[0]
        first_day = self.start + dt.timedelta(days=rng.randrange(self.days))
        first_day, acquisition = self.arrival(first_day, acquisition)
        effectiveness = PROFILES[acquisition].effectiveness
        t = _at(first_day, rng)
        primary = contacts[0]
        self.touch(t, account_id, primary, acquisition)
        for _ in range(rng.randint(1, 5)):
            t += dt.timedelta(hours=rng.uniform(4, 24 * 6))
            channel = acquisition if rng.random() < 0.5 else rng.choices(self.channels, self.reach)[0]
            self.touch(t, account_id, rng.choice(contacts), channel)

        if rng.random() > min(0.92, 0.62 * effectiveness):
            # never converted into a lead: a few more anonymous-ish visits, retargeting
            self.nurture_touches(account_id, contacts, t, t + dt.timedelta(days=40),
                                 rng.randint(0, 4))
            return
        t += dt.timedelta(hours=rng.uniform(0.05, 48))
        lead_channel = acquisition if rng.random() < 0.6 else rng.choices(self.channels, self.reach)[0]
        self.touch(t, account_id, primary, lead_channel,
                   rng.choice((TouchType.FORM_FILL, TouchType.FORM_FILL, TouchType.DEMO_REQUEST)))
        if not self.stage(t, account_id, PipelineStage.LEAD):
            return

        steps = (
            (PipelineStage.MQL, 0.58, (1, 12), 3),
            (PipelineStage.SQL, 0.52, (2, 18), 4),
            (PipelineStage.OPPORTUNITY, 0.62, (2, 15), 4),
        )
        plan, mrr = self.pick_plan()
        for stage, probability, (lo, hi), touches in steps:
            if rng.random() > min(0.95, probability * effectiveness):
                return
            nxt = t + dt.timedelta(days=rng.uniform(lo, hi))
            self.nurture_touches(account_id, contacts, t, nxt, rng.randint(0, touches))
            if stage is PipelineStage.OPPORTUNITY:
                self.touch(nxt - dt.timedelta(hours=rng.uniform(1, 30)), account_id,
                           rng.choice(contacts), Channel.SALES, TouchType.SALES_CALL)
            t = nxt
            amount = _money(mrr * 12) if stage is PipelineStage.OPPORTUNITY else None
            if not self.stage(t, account_id, stage, amount):
                return

        trial = rng.random() < 0.4
        if trial:
            self.subscription(t + dt.timedelta(days=rng.uniform(0.5, 5)), account_id,
                              SubscriptionEventType.TRIAL_STARTED, 0, plan)
        close = t + dt.timedelta(days=rng.uniform(10, 55))
        self.nurture_touches(account_id, contacts, t, close, rng.randint(1, 4))
        self.touch(close - dt.timedelta(hours=rng.uniform(2, 72)), account_id,
                   rng.choice(contacts), Channel.SALES, TouchType.SALES_CALL)
        lift = self.response.close_multiplier(close.date()) if self.response else 1.0
        won = rng.random() < min(0.8, 0.34 * effectiveness * lift)
        if not self.stage(close, account_id, PipelineStage.WON if won else PipelineStage.LOST,
                          _money(mrr * 12)):
            return
        if won:
            started = close + dt.timedelta(hours=rng.uniform(1, 72))
            if self.subscription(started, account_id,
                                 SubscriptionEventType.SUBSCRIPTION_STARTED, mrr, plan):
                self.lifecycle(account_id, started, plan, mrr)

    # -- sales-led history (history_weeks) -----------------------------------------------

    def history_flight(self, day: dt.date, channel: Channel) -> float:
        """Budget multiplier of a history day: two-week flights drawn like the window's
        (:meth:`flight`), from the history's own generator; over two years a channel other
        than search is also paused now and then for a flight (:data:`HISTORY_PAUSE`)."""
        block = (day - self.history_start).days // FLIGHT_DAYS
        if (block, channel) not in self.history_flights:
            budgets: dict[Channel, float] = {}
            for c in CAMPAIGNS:
                budgets[c.channel] = budgets.get(c.channel, 0.0) + c.daily_budget
            rng = self.history_rng
            raw = {ch: rng.uniform(*HISTORY_FLIGHT_RANGE) for ch in sorted(budgets)}
            for ch in raw:
                if ch is not Channel.PAID_SEARCH and rng.random() < HISTORY_PAUSE:
                    raw[ch] = 0.0
            # Unlike the window's flights, the history's also move the total (re-planned
            # quarters, pushes and freezes): with a constant total, more of one channel is
            # always less of the others and a mix model cannot tell the level of the returns
            # from the baseline, only their differences.
            total = rng.uniform(*HISTORY_TOTAL_RANGE)
            scale = total * sum(budgets.values()) / sum(budgets[ch] * raw[ch] for ch in budgets)
            for ch in budgets:
                self.history_flights[(block, ch)] = raw[ch] * scale
        return self.history_flights[(block, channel)]

    def history_spend_and_budgets(self) -> None:
        """Daily spend per campaign on the history days before the window (same campaigns,
        budgets and noise as the window's, so a channel spends alike before and in it) and
        the monthly budgets of the months the window's budgets do not cover."""
        rng = self.history_rng
        spend: list[Spend] = []
        day = self.history_start
        while day < self.start:
            weekend = day.weekday() >= 5
            for c in CAMPAIGNS:
                factor = rng.uniform(0.85, 1.3) * (0.6 if weekend else 1.0)
                amount = c.daily_budget * factor * self.history_flight(day, c.channel)
                clicks = max(0, int(amount / (c.cpc * rng.uniform(0.85, 1.15))))
                impressions = max(clicks, int(clicks / (c.ctr * rng.uniform(0.8, 1.25))))
                spend.append(Spend(
                    event_id=self.ids.next("spend"), date=day, channel=c.channel,
                    campaign_id=c.campaign_id, amount=_money(amount),
                    impressions=impressions, clicks=clicks,
                ))
            day += dt.timedelta(days=1)
        self.out.spend = spend + self.out.spend
        if self.history_start >= self.start:
            return
        first_window_month = f"{self.start:%Y-%m}"
        budgets: list[Budget] = []
        for month in _months_between(self.history_start, self.start):
            if month >= first_window_month:
                continue
            first = dt.date.fromisoformat(f"{month}-01")
            planned: dict[Channel, float] = {}
            for d in range(_days_in_month(month)):
                day = first + dt.timedelta(days=d)
                for c in CAMPAIGNS:
                    flight = self.history_flight(day, c.channel) if day >= self.history_start else 1.0
                    planned[c.channel] = planned.get(c.channel, 0.0) + c.daily_budget * flight
            for channel in sorted(planned, key=lambda ch: ch.value):
                plan = planned[channel] * rng.uniform(0.85, 1.1)
                budgets.append(Budget(
                    event_id=self.ids.next("budget"), month=month, channel=channel,
                    amount=_money(round(plan / 100) * 100),
                ))
        self.out.budgets = budgets + self.out.budgets

    def history_weekly_spend(self) -> dict[Channel, list[float]]:
        """Spend per paid channel and ISO week from the history's first Monday to ``end``
        (the last week may be partial): the history days' spend, then the window's actual
        spend, so deals in the window respond to the spend the window shows."""
        weeks = self.history_weeks + 1
        weekly = {c: [0.0] * weeks for c in HISTORY_RESPONSES}
        for row in self.out.spend:
            week = (row.date - self.history_start).days // 7
            if row.channel in weekly and 0 <= week < weeks:
                weekly[row.channel][week] += float(row.amount)
        return weekly

    def history_amount(self) -> float:
        plans = {name: mrr for name, mrr, _ in PLANS}
        plan = self.history_rng.choices(
            list(HISTORY_PLAN_WEIGHTS), list(HISTORY_PLAN_WEIGHTS.values()))[0]
        return round(plans[plan] * 12 * self.history_rng.uniform(0.8, 1.25), -1)

    def history_deal(self, index: int, week_start: dt.date, won: bool, amount: float) -> None:
        """One sales-led deal closing in the week of ``week_start`` (never after ``end``):
        its opportunity some weeks before, then won or lost, both with the amount.

        History accounts get no touchpoints and no subscriptions: they exist for the mix
        model (which reads spend and won revenue only) and the funnel KPIs; touchpoints
        would make attribution credit channels for deals the spend history, not journeys,
        explains, and billing would double the window's customers' MRR history — both are
        described by the window's accounts alone."""
        rng = self.history_rng
        last = min(6, (self.end - week_start).days)
        weekday_weights = [1.0 if (week_start + dt.timedelta(days=d)).weekday() < 5 else 0.15
                           for d in range(last + 1)]
        close_day = week_start + dt.timedelta(
            days=rng.choices(range(last + 1), weekday_weights)[0])
        close = _ms(_at(close_day, rng))
        opened = _ms(close - dt.timedelta(days=rng.uniform(*HISTORY_CYCLE_DAYS)))
        account_id = f"acct-h{index:05d}"
        money = _money(amount)
        for when, stage in ((opened, PipelineStage.OPPORTUNITY),
                            (close, PipelineStage.WON if won else PipelineStage.LOST)):
            self.out.pipeline.append(PipelineEvent(
                event_id=self.ids.next("pipe"), occurred_at=when, account_id=account_id,
                stage=stage, amount=money,
            ))

    def history(self) -> None:
        """The sales-led history: per ISO week, the company's won revenue = baseline
        (trend, yearly season) + each channel's true contribution
        (:func:`history_contributions`), times log-normal noise. The window's own accounts
        are part of that revenue: their won deals are counted first and sales-led deals make
        up the rest (so the window's few large deals do not stack on top of it). Lost deals
        alongside, for the win rate."""
        self.history_spend_and_budgets()
        rng = self.history_rng
        contributions = history_contributions(self.history_weekly_spend())
        weeks = self.history_weeks + 1
        window_won = [0.0] * weeks
        for event in self.out.pipeline:
            week = (event.occurred_at.date() - self.history_start).days // 7
            if event.stage is PipelineStage.WON and event.amount is not None and 0 <= week < weeks:
                window_won[week] += float(event.amount)
        index = 0
        for week in range(weeks):
            week_start = self.history_start + dt.timedelta(weeks=week)
            days = min(7, (self.end - week_start).days + 1)  # the last week may be partial
            season = math.sin(2 * math.pi * week_start.timetuple().tm_yday / 365.25)
            baseline = (HISTORY_BASELINE * (1 + HISTORY_TREND * week / weeks)
                        * (1 + HISTORY_SEASONALITY * season))
            expected = baseline + sum(c[week] for c in contributions.values())
            remaining = (expected * math.exp(rng.gauss(0, HISTORY_NOISE)) * days / 7
                         - window_won[week])
            won_deals = 0
            while remaining >= HISTORY_MIN_DEAL:
                amount = self.history_amount()
                if remaining - amount < HISTORY_MIN_DEAL:
                    amount = round(remaining, -1)
                remaining -= amount
                index += 1
                self.history_deal(index, week_start, True, amount)
                won_deals += 1
            for _ in range(won_deals):
                for _ in range(1 + (rng.random() < HISTORY_EXTRA_LOSS)):
                    index += 1
                    self.history_deal(index, week_start, False, self.history_amount())

    def martech(self) -> None:
        """Every tool's cost for each month the window (and the sales-led history, when
        there is one) touches: the tools were paid for all along, so a year-ago comparison
        is fully loaded too. No random draws and ids of their own (month and vendor), so
        every other event is the same as without them."""
        first = min(self.start, self.history_start)
        month = dt.date(first.year, first.month, 1)
        while month <= self.end:
            label = month.strftime("%Y-%m")
            for vendor, category, amount in MARTECH_TOOLS:
                slug = vendor.lower().replace(" ", "-")
                self.out.martech.append(MartechCost(
                    event_id=f"gen-{self.ids.prefix}-martech-{label}-{slug}", month=label,
                    vendor=vendor, category=category, amount=amount,
                ))
            month = (month + dt.timedelta(days=32)).replace(day=1)

    def usage(self) -> None:
        """Product usage of the paying accounts (:mod:`pulse_ingest.domain.usage_gen`),
        read from the subscriptions: their own random draws, so nothing else changes."""
        self.out.usage = usage_events(self.out.subscriptions, self.start, self.end,
                                       self.seed, self.ids.prefix)

    def deliverability(self) -> None:
        """Daily e-mail delivery counts of two sending domains with one bad week
        (:mod:`pulse_ingest.domain.deliverability_gen`; own random generator)."""
        self.out.deliverability = deliverability_events(self.start, self.end, self.seed)

    def accounts_profiles(self) -> None:
        """A profile per account and plan change (:mod:`pulse_ingest.domain.accounts_gen`;
        own random generator, read from the other events)."""
        self.out.accounts = account_profiles(self.out.touchpoints, self.out.pipeline,
                                             self.out.subscriptions, self.seed,
                                             self.ids.prefix)

    def experience(self) -> None:
        """NPS / CSAT answers and support tickets of the paying accounts, churners less
        happy and with more tickets ahead of cancelling
        (:mod:`pulse_ingest.domain.experience_gen`; own random generator)."""
        self.out.feedback, self.out.tickets = customer_experience(
            self.out.subscriptions, self.end, self.seed, self.ids.prefix)

    def build(self, martech_tools: bool = False, usage: bool = False,
              deliverability: bool = False, accounts: bool = False,
              experience: bool = False) -> SyntheticDataset:
        self.spend_and_budgets()
        for index in range(1, self.accounts + 1):
            self.account(index)
        if self.history_weeks:
            self.history()
        if martech_tools:
            self.martech()
        if usage:
            self.usage()
        if deliverability:
            self.deliverability()
        if accounts:
            self.accounts_profiles()
        if experience:
            self.experience()
        out = self.out
        out.touchpoints.sort(key=lambda e: (e.occurred_at, e.event_id))
        out.pipeline.sort(key=lambda e: (e.occurred_at, e.event_id))
        out.subscriptions.sort(key=lambda e: (e.occurred_at, e.event_id))
        return out


def generate_dataset(
    seed: int, days: int, accounts: int, end: dt.date, history_weeks: int = 0,
    martech_tools: bool = False, product_usage: bool = False, email_deliverability: bool = False,
    account_profiles: bool = False, customer_experience: bool = False,
) -> SyntheticDataset:
    """A deterministic synthetic B2B SaaS dataset covering ``days`` days up to ``end``.

    ``history_weeks`` > 0 adds a sales-led history for a weekly mix model: spend on the
    ``history_weeks`` ISO weeks before ``end``'s week (those before the window), and won and
    lost deals (accounts ``acct-h…``) over those weeks and ``end``'s, driven by the spend
    with the known ROI of :data:`HISTORY_RESPONSES`. 0 (the default) leaves the dataset
    exactly as without it.

    ``martech_tools`` adds the monthly costs of :data:`MARTECH_TOOLS` for every month the
    window touches (the demo turns it on); off (the default) the dataset is unchanged.

    ``product_usage`` adds daily feature usage of the paying accounts (a feature released
    mid-window, usage falling ahead of cancellations: :mod:`pulse_ingest.domain.usage_gen`);
    off (the default) the dataset is unchanged.

    ``email_deliverability`` adds daily e-mail delivery counts of two sending domains with
    one bad week above the bounce and complaint thresholds
    (:mod:`pulse_ingest.domain.deliverability_gen`); off (the default) the dataset is
    unchanged.

    ``account_profiles`` adds a profile per account (segment following its plan) and per
    plan change (:mod:`pulse_ingest.domain.accounts_gen`); off (the default) the dataset is
    unchanged.

    ``customer_experience`` adds NPS / CSAT answers and support tickets of the paying
    accounts, accounts about to churn answering lower and opening more tickets
    (:mod:`pulse_ingest.domain.experience_gen`); off (the default) the dataset is
    unchanged."""
    if days < 1:
        raise ValueError("days must be >= 1")
    if accounts < 0:
        raise ValueError("accounts must be >= 0")
    if history_weeks < 0:
        raise ValueError("history_weeks must be >= 0")
    return _Builder(seed, days, accounts, end, history_weeks).build(
        martech_tools, usage=product_usage, deliverability=email_deliverability,
        accounts=account_profiles, experience=customer_experience)


# -- file contents (written by pulse_ingest.files.write_files) ------------------------

FileFormat = Literal["ndjson", "json", "csv"]


def event_to_row(event: Event) -> dict[str, Any]:
    """JSON-compatible row of an event (what the HTTP API and the CLI accept back)."""
    row: dict[str, Any] = event.model_dump(mode="json")
    return row


def format_events(events: Sequence[Event], fmt: FileFormat = "ndjson") -> Iterator[str]:
    """The text of a file of ``events`` in ``fmt``, in pieces (to write one after another):
    NDJSON lines, one JSON array, or CSV with the model's fields as the header (``\r\n``
    line ends, as :mod:`csv` writes them)."""
    if fmt not in ("ndjson", "json", "csv"):
        raise ValueError(f"unknown format {fmt!r} (ndjson, json or csv)")
    rows = [event_to_row(e) for e in events]
    if fmt == "ndjson":
        for row in rows:
            yield json.dumps(row, separators=(",", ":")) + "\n"
    elif fmt == "json":
        yield json.dumps(rows, separators=(",", ":"))
    else:
        model = type(events[0]) if events else None
        columns = list(model.model_fields) if model else []
        buffer = io.StringIO(newline="")
        writer = csv.DictWriter(buffer, fieldnames=columns)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: "" if v is None else v for k, v in row.items()})
            if buffer.tell() > 1 << 16:
                yield buffer.getvalue()
                buffer.seek(0)
                buffer.truncate()
        yield buffer.getvalue()
