"""Seeded synthetic B2B SaaS dataset: touchpoints, spend, subscriptions, pipeline, budgets.

The model behind it, deliberately simple but shaped like real data:

* Paid channels (search, social, display, events) have campaigns with a daily budget, a
  cost per click and a click-through rate; spend is produced per campaign per day and
  monthly budgets per channel are planned slightly above or below actual spend.
* Every account has 1–5 contacts. Each account is acquired through one channel (weighted
  by reach); its contacts touch several channels before one of them fills a form (lead).
* The funnel lead → mql → sql → opportunity → won/lost advances with probabilities scaled
  by the acquisition channel's *effectiveness* (referral and search convert better than
  display), with realistic delays; nurture touches (email, webinar, sales calls) happen
  between stages.
* Won accounts start a subscription (some after a trial), then upgrade, downgrade,
  cancel and reactivate month by month; ``mrr`` is the account's MRR after each event.
  A share of accounts were already customers before the window, so MRR at the start of
  the window is not zero and churn rates are defined.

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
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal

from pulse_shared.events import (
    Budget,
    Channel,
    Event,
    PipelineEvent,
    PipelineStage,
    Spend,
    Subscription,
    SubscriptionEventType,
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

Kind = Literal["touchpoints", "spend", "subscriptions", "pipeline", "budgets"]
KINDS: tuple[Kind, ...] = ("touchpoints", "spend", "subscriptions", "pipeline", "budgets")


@dataclass
class SyntheticDataset:
    """Events of every input kind, each list sorted by time."""

    touchpoints: list[Touchpoint] = field(default_factory=list)
    spend: list[Spend] = field(default_factory=list)
    subscriptions: list[Subscription] = field(default_factory=list)
    pipeline: list[PipelineEvent] = field(default_factory=list)
    budgets: list[Budget] = field(default_factory=list)

    def by_kind(self) -> dict[str, Sequence[Event]]:
        return {
            "touchpoints": self.touchpoints,
            "spend": self.spend,
            "subscriptions": self.subscriptions,
            "pipeline": self.pipeline,
            "budgets": self.budgets,
        }

    def counts(self) -> dict[str, int]:
        return {kind: len(events) for kind, events in self.by_kind().items()}


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
    def __init__(self, seed: int, days: int, accounts: int, end: dt.date) -> None:
        self.rng = random.Random(seed)
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

    # -- spend and budgets ---------------------------------------------------------------

    def spend_and_budgets(self) -> None:
        rng = self.rng
        planned: dict[tuple[str, Channel], float] = {}
        for offset in range(self.days):
            day = self.start + dt.timedelta(days=offset)
            weekend = day.weekday() >= 5
            for c in CAMPAIGNS:
                factor = rng.uniform(0.85, 1.3) * (0.6 if weekend else 1.0)
                amount = c.daily_budget * factor
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
            for c in CAMPAIGNS:
                key = (month, c.channel)
                planned[key] = planned.get(key, 0.0) + c.daily_budget * _days_in_month(month)
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
        effectiveness = PROFILES[acquisition].effectiveness
        first_day = self.start + dt.timedelta(days=rng.randrange(self.days))
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
        won = rng.random() < min(0.8, 0.34 * effectiveness)
        if not self.stage(close, account_id, PipelineStage.WON if won else PipelineStage.LOST,
                          _money(mrr * 12)):
            return
        if won:
            started = close + dt.timedelta(hours=rng.uniform(1, 72))
            if self.subscription(started, account_id,
                                 SubscriptionEventType.SUBSCRIPTION_STARTED, mrr, plan):
                self.lifecycle(account_id, started, plan, mrr)

    def build(self) -> SyntheticDataset:
        self.spend_and_budgets()
        for index in range(1, self.accounts + 1):
            self.account(index)
        out = self.out
        out.touchpoints.sort(key=lambda e: (e.occurred_at, e.event_id))
        out.pipeline.sort(key=lambda e: (e.occurred_at, e.event_id))
        out.subscriptions.sort(key=lambda e: (e.occurred_at, e.event_id))
        return out


def generate_dataset(seed: int, days: int, accounts: int, end: dt.date) -> SyntheticDataset:
    """A deterministic synthetic B2B SaaS dataset covering ``days`` days up to ``end``."""
    if days < 1:
        raise ValueError("days must be >= 1")
    if accounts < 0:
        raise ValueError("accounts must be >= 0")
    return _Builder(seed, days, accounts, end).build()


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
