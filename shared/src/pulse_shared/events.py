"""Versioned event contracts shared by every Pulse service.

Every message on the bus is one of these pydantic models serialised as JSON. Models are
frozen, reject unknown fields, keep money as ``Decimal`` and timestamps as timezone-aware
UTC datetimes, so a consumer never has to guess units or zones.

Every field uses one of the bounded types below, which mirror the ClickHouse columns the
events land in: a value a column cannot hold (or an implausible time, or an invisible
character in an identifier) is a validation error located at the field, so ingest answers
422 naming it and a consumer dead-letters a record produced straight to a topic — it never
reaches ClickHouse to be refused there forever. tests/test_event_bounds.py checks every field
of every model against the column it lands in.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Literal, TypeVar

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
)

from pulse_shared.privacy import is_surely_clean, pii_kinds
from pulse_shared.settings import common_settings

SCHEMA_VERSION = 1

# -- Plausibility windows of times and dates ----------------------------------------------


@dataclass(frozen=True)
class EventWindow:
    """Times and dates an event may carry, as of one moment (bounds inclusive, UTC)."""

    earliest: dt.datetime  # PULSE_EARLIEST_EVENT_DATE, midnight UTC
    latest: dt.datetime  # now + PULSE_MAX_FUTURE_SKEW: when something happened
    latest_planned: dt.datetime  # now + PULSE_MAX_PLAN_AHEAD: a budgeted / planned period


def event_window(now: dt.datetime | None = None) -> EventWindow:
    """The window as of ``now`` (default: the wall clock), from the common settings."""
    settings = common_settings()
    now = dt.datetime.now(dt.UTC) if now is None else now.astimezone(dt.UTC)
    return EventWindow(
        earliest=_midnight(settings.earliest_event_date),
        latest=now + settings.max_future_skew,
        latest_planned=now + settings.max_plan_ahead,
    )


DateT = TypeVar("DateT", dt.datetime, dt.date, str)


class InWindow:
    """Validator: the time, date or ``YYYY-MM`` month lies in the :func:`event_window`.

    ``horizon`` says how far ahead it may be: ``"event"`` for something that happened
    (a few hours of clock skew or time zone), ``"plan"`` for a planned period (a budget
    month, the start of a KPI period that budgets reach into). The window is computed at
    validation time, so it moves with the clock.
    """

    __slots__ = ("horizon",)

    def __init__(self, horizon: Literal["event", "plan"]) -> None:
        self.horizon = horizon

    def __repr__(self) -> str:
        return f"InWindow({self.horizon!r})"

    def __call__(self, value: DateT) -> DateT:
        # Hot path (every event): no window object, one clock read, cached bounds.
        settings = common_settings()
        ahead = settings.max_future_skew if self.horizon == "event" else settings.max_plan_ahead
        earliest = settings.earliest_event_date
        if isinstance(value, dt.datetime):
            if _midnight(earliest) <= value <= dt.datetime.now(dt.UTC) + ahead:
                return value
        elif isinstance(value, dt.date):
            if earliest <= value <= (dt.datetime.now(dt.UTC) + ahead).date():
                return value
        else:  # a Month, already matched against its pattern
            start = dt.date(int(value[:4]), int(value[5:7]), 1)
            if earliest.replace(day=1) <= start <= (dt.datetime.now(dt.UTC) + ahead).date():
                return value
        raise ValueError(self._reason(value))

    def _reason(self, value: DateT) -> str:
        window = event_window()
        shown = _show(value)
        # ISO text with 4-digit years sorts like time (a month is a prefix of a date).
        if shown < _show(window.earliest)[: len(shown)]:
            return (f"{shown} is before {window.earliest.date().isoformat()}, the earliest "
                    "accepted date (PULSE_EARLIEST_EVENT_DATE)")
        latest = window.latest if self.horizon == "event" else window.latest_planned
        setting = "PULSE_MAX_FUTURE_SKEW" if self.horizon == "event" else "PULSE_MAX_PLAN_AHEAD"
        return (f"{shown} is more than {_days(latest - dt.datetime.now(dt.UTC))} ahead of "
                f"now ({setting})")


@functools.lru_cache(maxsize=8)
def _midnight(day: dt.date) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)


def _show(value: dt.date | str) -> str:
    if isinstance(value, dt.datetime):
        return value.isoformat().replace("+00:00", "Z")
    return value.isoformat() if isinstance(value, dt.date) else value


def _days(delta: dt.timedelta) -> str:
    days = round(delta.total_seconds() / 86400, 1)
    return f"{days:g} day" + ("" if days == 1 else "s")


#: What DateTime64 columns hold (the 3-digit ones to the millisecond).
DATETIME64_MIN = dt.datetime(1900, 1, 1, tzinfo=dt.UTC)
DATETIME64_MAX = dt.datetime(2299, 12, 31, 23, 59, 59, 999000, tzinfo=dt.UTC)


@dataclass(frozen=True)
class InRange:
    """Validator: a time between fixed bounds (those of the column it is stored in)."""

    low: dt.datetime
    high: dt.datetime

    def __call__(self, value: dt.datetime) -> dt.datetime:
        if not self.low <= value <= self.high:
            raise ValueError(
                f"{_show(value)} is outside {_show(self.low)} … {_show(self.high)}, the "
                "range a ClickHouse DateTime64 column holds"
            )
        return value


def to_utc(value: dt.datetime) -> dt.datetime:
    try:
        return value.astimezone(dt.UTC)
    except OverflowError as exc:  # e.g. 9999-12-31T23:59:59-05:00 leaves year 9999
        raise ValueError("timestamp out of range once converted to UTC") from exc


# -- Visible text --------------------------------------------------------------------------

#: Unicode categories that never belong in an identifier or label: controls (NUL …),
#: formatting characters (bidi overrides such as U+202E, zero-width U+200B…U+200F, U+2060,
#: U+FEFF, tags), surrogates, private use, and the line / paragraph separators. Unassigned
#: code points (Cn) are allowed: Python's Unicode tables lag behind new emoji and scripts.
FORBIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Zl", "Zp"})


def is_forbidden_char(char: str) -> bool:
    """A control, invisible or formatting character, or a Unicode noncharacter."""
    code = ord(char)
    return (
        unicodedata.category(char) in FORBIDDEN_CATEGORIES
        or 0xFDD0 <= code <= 0xFDEF
        or code & 0xFFFE == 0xFFFE  # U+FFFE, U+FFFF, U+1FFFE, … (noncharacters)
    )


def visible(value: str) -> str:
    """Validator: no :func:`is_forbidden_char` in the string."""
    # C-speed fast path: isprintable() is False for every Cc/Cf/Cs/Co/Cn/Z* but " ".
    return value if value.isprintable() else _check_visible(value, "")


def visible_text(value: str) -> str:
    """Validator: like :func:`visible`, but tabs and line breaks are fine."""
    return value if value.isprintable() else _check_visible(value, "\t\n\r")


def no_raw_pii(value: str) -> str:
    """Validator: no e-mail address or phone number, even disguised (identifiers travel as
    salted hashes or tokens; see :mod:`pulse_shared.privacy`). The value is not repeated."""
    if is_surely_clean(value):  # hot path (every text of every event): C-speed, remembered
        return value
    kinds = pii_kinds(value)
    if kinds:
        what = " and ".join("an e-mail address" if k == "email" else "a phone number"
                            for k in kinds)
        raise ValueError(f"looks like it holds {what}; send a salted hash instead")
    return value


#: The characters each visibility validator lets through (the canonical path mirrors them).
VISIBLE_ALLOW: dict[Callable[[str], str], str] = {visible: "", visible_text: "\t\n\r"}


def _check_visible(value: str, allow: str) -> str:
    for char in value:
        if char not in allow and is_forbidden_char(char):
            category = unicodedata.category(char)
            name = unicodedata.name(char, "control" if category == "Cc" else category)
            raise ValueError(
                f"contains U+{ord(char):04X} ({name}), an invisible, control or "
                "formatting character"
            )
    return value


# -- Bounded types: one per kind of ClickHouse column --------------------------------------

#: DateTime64(3, 'UTC') columns: aware, converted to UTC, within the event window.
EventTime = Annotated[AwareDatetime, AfterValidator(to_utc), AfterValidator(InWindow("event"))]
#: Date columns holding a day something happened.
EventDate = Annotated[dt.date, AfterValidator(InWindow("event"))]
#: Date columns holding the first day of a period that may be planned ahead.
PlannedDate = Annotated[dt.date, AfterValidator(InWindow("plan"))]
#: Budget months ``YYYY-MM`` (stored as the month's first day in a Date column).
Month = Annotated[
    str,
    StringConstraints(pattern=r"^\d{4}-(0[1-9]|1[0-2])$"),
    AfterValidator(InWindow("plan")),
]
#: DateTime64 columns holding a moment Pulse's own services stamp (computed_at, sent_at …)
#: from their clock — which a test may set to any fixed time — so only the column's range
#: applies, not the plausibility window: a stored alert or report is never refused later.
StampTime = Annotated[
    AwareDatetime,
    AfterValidator(to_utc),
    AfterValidator(InRange(DATETIME64_MIN, DATETIME64_MAX)),
]
#: Time stamps outside event tables (dead letters): any aware time, converted to UTC.
UtcDatetime = Annotated[AwareDatetime, AfterValidator(to_utc)]

#: String / LowCardinality(String) columns: ids and names, trimmed, visible characters only.
#: Every one of these text types refuses raw PII (:func:`no_raw_pii`).
Identifier = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=128),
    AfterValidator(visible),
    AfterValidator(no_raw_pii),
]
Label = Annotated[
    str,
    StringConstraints(strip_whitespace=True, max_length=256),
    AfterValidator(visible),
    AfterValidator(no_raw_pii),
]
#: Free text (rendered alert annotations, reasons): tabs and line breaks allowed.
Text = Annotated[
    str,
    StringConstraints(max_length=4096),
    AfterValidator(visible_text),
    AfterValidator(no_raw_pii),
]
#: A file path or URL.
PathOrUrl = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=4096),
    AfterValidator(visible),
    AfterValidator(no_raw_pii),
]
Currency = Annotated[
    str, StringConstraints(strip_whitespace=True, to_upper=True, pattern=r"^[A-Za-z]{3}$")
]
Sha256Hex = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]

#: Decimal(18, 4) columns: at most 14 whole digits and 4 places (more would be rounded).
MONEY_DIGITS, MONEY_PLACES = 18, 4
Money = Annotated[
    Decimal, Field(max_digits=MONEY_DIGITS, decimal_places=MONEY_PLACES, allow_inf_nan=False)
]
NonNegativeMoney = Annotated[Money, Field(ge=0)]

UINT32_MAX = 2**32 - 1
#: Row versions in UInt32 columns, starting at 1.
Version = Annotated[int, Field(ge=1, le=UINT32_MAX)]
#: Counters in UInt64 columns, capped at 2**53 - 1: exact as a JSON number in any consumer
#: (a JavaScript dashboard, a float parser), and a sum of thousands of them still fits the
#: UInt64 that ClickHouse sums into (it would wrap around silently).
COUNT_MAX = 2**53 - 1
Count = Annotated[int, Field(ge=0, le=COUNT_MAX)]
#: Float64 columns: finite only (JSON has no inf/NaN; a non-finite KPI is ``None``).
Float64 = Annotated[float, Field(allow_inf_nan=False)]
Fraction = Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)]


class Event(BaseModel):
    """Base of every bus message: frozen, unknown fields rejected, stable JSON.

    No text field may carry an e-mail address or a phone number, disguised or not: every
    text type (:data:`Identifier`, :data:`Label`, :data:`Text`, :data:`PathOrUrl`) has the
    :func:`no_raw_pii` validator, so raw PII from any producer is rejected (and
    dead-lettered, redacted) on the bus. Ingest replaces what it finds by salted tokens
    before validating (:func:`pulse_shared.privacy.scrub_text`), so its events pass.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, use_enum_values=False)
    kind: ClassVar[str] = "event"

    def to_json(self) -> bytes:
        # model_dump_json() is this, decoded to str (which was then encoded back).
        return self.__pydantic_serializer__.to_json(self)


def deterministic_event_id(kind: str, payload: dict[str, Any]) -> str:
    """Content hash used when a client sends no event_id, so re-sends stay idempotent."""
    canonical = "|".join([f"{k}={payload[k]}" for k in sorted(payload) if k != "event_id"])
    return hashlib.sha256(f"{kind}|{canonical}".encode()).hexdigest()[:32]


class Channel(StrEnum):
    """Marketing channels Pulse knows; ``other`` keeps unknown sources visible."""

    PAID_SEARCH = "paid_search"
    PAID_SOCIAL = "paid_social"
    DISPLAY = "display"
    ORGANIC_SEARCH = "organic_search"
    ORGANIC_SOCIAL = "organic_social"
    EMAIL = "email"
    REFERRAL = "referral"
    DIRECT = "direct"
    EVENTS = "events"
    WEBINAR = "webinar"
    CONTENT = "content"
    PARTNER = "partner"
    SALES = "sales"
    AFFILIATE = "affiliate"
    OTHER = "other"


class TouchType(StrEnum):
    AD_IMPRESSION = "ad_impression"
    AD_CLICK = "ad_click"
    EMAIL_OPEN = "email_open"
    EMAIL_CLICK = "email_click"
    WEB_VISIT = "web_visit"
    FORM_FILL = "form_fill"
    CONTENT_DOWNLOAD = "content_download"
    WEBINAR = "webinar"
    EVENT_ATTENDED = "event_attended"
    DEMO_REQUEST = "demo_request"
    SALES_CALL = "sales_call"
    CHAT = "chat"
    OTHER = "other"


class Touchpoint(Event):
    """One marketing interaction of one contact of one account."""

    kind: ClassVar[str] = "touchpoint"
    event_id: Identifier = Field(description="Client-given id, else a content hash.")
    occurred_at: EventTime = Field(description="When the interaction happened (UTC).")
    account_id: Identifier = Field(description="B2B account the contact belongs to.")
    contact_id: Sha256Hex = Field(description="Salted SHA-256 of the contact identifier.")
    channel: Channel = Field(description="Normalised marketing channel.")
    source: Label = Field(default="", description="utm_source-like origin, e.g. google.")
    medium: Label = Field(default="", description="utm_medium-like medium, e.g. cpc.")
    campaign_id: Label = Field(default="", description="Campaign identifier, '' if none.")
    touch_type: TouchType = Field(description="Kind of interaction.")
    utm_source: Label = ""
    utm_medium: Label = ""
    utm_campaign: Label = ""
    utm_term: Label = ""
    utm_content: Label = ""
    cost: NonNegativeMoney | None = Field(default=None, description="Direct cost, if known.")
    currency: Currency = "USD"


class Spend(Event):
    """Daily spend of one campaign on one channel, as reported by the ad platform."""

    kind: ClassVar[str] = "spend"
    event_id: Identifier
    date: EventDate = Field(description="Day the money was spent (account time zone = UTC).")
    channel: Channel
    campaign_id: Label = ""
    amount: NonNegativeMoney
    currency: Currency = "USD"
    impressions: Count = 0
    clicks: Count = 0


class SubscriptionEventType(StrEnum):
    TRIAL_STARTED = "trial_started"
    SUBSCRIPTION_STARTED = "subscription_started"
    SUBSCRIPTION_UPGRADED = "subscription_upgraded"
    SUBSCRIPTION_DOWNGRADED = "subscription_downgraded"
    SUBSCRIPTION_CANCELED = "subscription_canceled"
    SUBSCRIPTION_REACTIVATED = "subscription_reactivated"


class Subscription(Event):
    """A billing change of one account; ``mrr`` is the account's MRR *after* the event."""

    kind: ClassVar[str] = "subscription"
    event_id: Identifier
    occurred_at: EventTime
    account_id: Identifier
    event_type: SubscriptionEventType
    mrr: NonNegativeMoney = Field(description="Account MRR after the event.")
    currency: Currency = "USD"
    plan: Label = ""


class PipelineStage(StrEnum):
    LEAD = "lead"
    MQL = "mql"
    SQL = "sql"
    OPPORTUNITY = "opportunity"
    WON = "won"
    LOST = "lost"


class PipelineEvent(Event):
    """An account reaching a funnel stage in the CRM."""

    kind: ClassVar[str] = "pipeline"
    event_id: Identifier
    occurred_at: EventTime
    account_id: Identifier
    stage: PipelineStage
    amount: NonNegativeMoney | None = Field(default=None, description="Deal amount, if any.")
    currency: Currency = "USD"


class Budget(Event):
    """Planned monthly budget for a channel (campaign_id '' = whole channel)."""

    kind: ClassVar[str] = "budget"
    event_id: Identifier
    month: Month
    channel: Channel
    campaign_id: Label = ""
    amount: NonNegativeMoney
    currency: Currency = "USD"

    @property
    def month_start(self) -> dt.date:
        year, month = self.month.split("-")
        return dt.date(int(year), int(month), 1)


def _category_slug(value: str) -> str:
    """Tool categories as one spelling (``Marketing Automation`` → ``marketing_automation``)
    so a finance CSV and the demo group the same category together."""
    return re.sub(r"[\s\-/]+", "_", value.strip().lower())


class MartechCost(Event):
    """Monthly cost of one marketing tool or licence (martech), e.g. from a finance CSV.

    Counted in marketing cost beside ad spend (KPIs ``martech_cost``, ``marketing_cost``,
    ``cac_fully_loaded``, ``marketing_roi_fully_loaded``). Several rows of one vendor and
    month add up (two licences); a re-send with the same ``event_id`` replaces its row.
    """

    kind: ClassVar[str] = "martech_cost"
    event_id: Identifier
    month: Month
    vendor: Identifier = Field(description="Tool or licence vendor, e.g. HubSpot.")
    category: Annotated[Identifier, AfterValidator(_category_slug)] = Field(
        description="Tool category, e.g. crm, marketing_automation, analytics, esp, "
        "webinar, enrichment (lower case, spaces as underscores).")
    amount: NonNegativeMoney = Field(description="Cost for the whole month.")
    currency: Currency = "USD"

    @property
    def month_start(self) -> dt.date:
        year, month = self.month.split("-")
        return dt.date(int(year), int(month), 1)


class Segment(StrEnum):
    """Customer segments of an account (firmographic size class)."""

    SMB = "smb"
    MID_MARKET = "mid_market"
    ENTERPRISE = "enterprise"


#: How CRMs spell the segments, separators and case removed (``Mid-Market`` → ``midmarket``).
SEGMENT_SPELLINGS: dict[str, Segment] = {
    **dict.fromkeys(("smb", "sme", "small", "smallbusiness", "smallandmedium",
                     "smallmediumbusiness", "smallandmediumbusiness", "selfserve",
                     "startup"), Segment.SMB),
    **dict.fromkeys(("midmarket", "mid", "mm", "midsize", "midsized", "middlemarket",
                     "commercial"), Segment.MID_MARKET),
    **dict.fromkeys(("enterprise", "ent", "large", "largeenterprise", "strategic",
                     "corporate"), Segment.ENTERPRISE),
}


def normalise_segment(value: Any) -> Any:
    """A segment as CRMs write it (``SMB``, ``Mid-Market``, ``mid market``, ``Enterprise``)
    → its :class:`Segment` value; anything else is left for the enum to refuse."""
    if isinstance(value, str):
        return SEGMENT_SPELLINGS.get(re.sub(r"[\s\-_/.&]+", "", value.lower()), value)
    return value


class AccountProfile(Event):
    """An account's firmographic profile from its ``effective_from`` day on (CRM).

    History is kept: a later ``effective_from`` of the same account is a change (a plan
    upgrade, a new segment) that applies from its day; KPI breakdowns by segment, plan,
    region, industry and employee band use the profile in force on each event's day
    (accounts without one count as ``unknown``). A re-send with the same ``event_id``
    replaces its row. Ids and categories only: no company names or people.
    """

    kind: ClassVar[str] = "account_profile"
    event_id: Identifier
    account_id: Identifier
    effective_from: EventDate = Field(description="Day (UTC) from which this profile holds.")
    plan: Label = Field(default="", description="Plan the account is on, e.g. pro.")
    segment: Annotated[Segment, BeforeValidator(normalise_segment)] = Field(
        description="smb, mid_market or enterprise (SMB, Mid-Market, Enterprise … accepted).")
    industry: Label = Field(default="", description="Industry, e.g. retail.")
    region: Label = Field(default="", description="Sales region, e.g. emea.")
    employee_band: Label = Field(default="", description="Company size, e.g. 51-200.")
    acquisition_channel: Channel | None = Field(
        default=None, description="How the account was acquired; absent: its first-touch "
        "channel (from touchpoints).")


def _domain_slug(value: str) -> str:
    """Sending domains in one spelling (``News.Example.com.`` → ``news.example.com``)."""
    return value.strip().lower().rstrip(".")


#: Each count and the count it is part of: validated ``count <= whole`` (and hard + soft
#: bounces <= sent), so a row whose numbers cannot be true is refused at the field that is
#: too large, with both numbers in the reason.
_DELIVERY_WHOLE: dict[str, str] = {
    "delivered": "sent", "hard_bounces": "sent", "soft_bounces": "sent",
    "spam_complaints": "delivered", "unsubscribes": "delivered",
    "unique_opens": "delivered", "unique_clicks": "delivered",
}


class EmailDeliveryStats(Event):
    """One day's e-mail delivery counts of one sending domain (and ESP campaign), as an
    ESP reports them (SendGrid stats, a Mailchimp campaign report …).

    Rates are computed by the KPI service (family ``deliverability``): delivery, bounce
    and complaint rates over ``sent``, open and click rates over ``delivered``. A re-sent
    or corrected row with the same ``event_id`` replaces the earlier one; distinct rows of
    one day and domain add up (two campaigns, two ESPs).
    """

    kind: ClassVar[str] = "email_delivery"
    event_id: Identifier
    day: EventDate = Field(description="Day the e-mails were sent (UTC).")
    sending_domain: Annotated[Identifier, AfterValidator(_domain_slug)] = Field(
        description="Domain the e-mails were sent from, e.g. news.example.com.")
    campaign_id: Label = Field(default="", description="ESP campaign id, '' for all.")
    esp: Annotated[Identifier, AfterValidator(_category_slug)] = Field(
        default="other", description="E-mail service provider, e.g. sendgrid, mailchimp.")
    sent: Count = Field(description="E-mails handed to the ESP for delivery (requests).")
    delivered: Count = Field(description="Accepted by the receiving servers (≤ sent).")
    hard_bounces: Count = Field(default=0, description="Permanent failures (≤ sent).")
    soft_bounces: Count = Field(default=0, description="Temporary failures or blocks (≤ sent).")
    spam_complaints: Count = Field(default=0, description="Marked as spam (≤ delivered).")
    unsubscribes: Count = Field(default=0, description="Recipients who unsubscribed.")
    unique_opens: Count = Field(default=0, description="Recipients who opened (≤ delivered).")
    unique_clicks: Count = Field(default=0, description="Recipients who clicked (≤ delivered).")

    @field_validator("delivered", "hard_bounces", "soft_bounces", "spam_complaints",
                     "unsubscribes", "unique_opens", "unique_clicks")
    @classmethod
    def _within_whole(cls, value: int, info: ValidationInfo) -> int:
        # Fields validate in declaration order, so the whole (sent, delivered) is known
        # here unless it was itself invalid (then that field carries the error).
        whole = _DELIVERY_WHOLE[info.field_name or ""]
        limit = info.data.get(whole)
        if limit is not None and value > limit:
            raise ValueError(f"{value} is more than {whole} ({limit})")
        if info.field_name == "soft_bounces":
            hard = info.data.get("hard_bounces")
            sent = info.data.get("sent")
            if hard is not None and sent is not None and hard + value > sent:
                raise ValueError(f"hard_bounces + soft_bounces ({hard + value}) is more than "
                                 f"sent ({sent})")
        return value


class ProductUsage(Event):
    """How often one account used one product feature on one day (a daily aggregate from
    the product's analytics; several rows of one account, feature and day add up).

    Feeds the product KPIs (``active_accounts_daily``/``_weekly``/``_monthly``,
    ``usage_events``, ``feature_adoption_rate``, ``churn_risk_accounts``): an account is
    active on a day it has any usage. Ids only: no user names or free text.
    """

    kind: ClassVar[str] = "product_usage"
    event_id: Identifier
    account_id: Identifier
    feature: Annotated[Identifier, AfterValidator(_category_slug)] = Field(
        description="Feature slug, e.g. campaigns, automations, ab_testing (lower case, "
        "spaces as underscores).")
    day: EventDate = Field(description="Day of use (UTC).")
    count: Annotated[int, Field(ge=1, le=COUNT_MAX)] = Field(
        default=1, description="Uses of the feature that day (at least 1).")


class Survey(StrEnum):
    """Customer feedback surveys and their score scales."""

    NPS = "nps"
    """Net Promoter Score question: 0–10 (promoters 9–10, detractors 0–6)."""
    CSAT = "csat"
    """Customer satisfaction: 1–5 (satisfied 4–5)."""


#: Score range (inclusive) of each survey; a score outside it is refused at ``score``.
SURVEY_SCALES: dict[Survey, tuple[int, int]] = {Survey.NPS: (0, 10), Survey.CSAT: (1, 5)}


class FeedbackResponse(Event):
    """One answer of one account to an NPS or CSAT survey (from the survey tool).

    Feeds the customer experience KPIs (``nps``, ``nps_responses``, ``csat``). Scores only:
    free-text comments are personal data in practice (names, e-mail addresses, complaints
    about people), so the event has no comment field; ingest drops a ``comment`` column of a
    survey export before validating (:mod:`pulse_ingest.domain.normalize`). A re-send with
    the same ``event_id`` replaces its row.
    """

    kind: ClassVar[str] = "feedback_response"
    event_id: Identifier
    account_id: Identifier
    survey: Annotated[Survey, BeforeValidator(lambda v: v.strip().lower()
                                              if isinstance(v, str) else v)] = Field(
        description="nps (score 0–10) or csat (score 1–5).")
    score: Annotated[int, Field(ge=0, le=10)] = Field(
        description="The answer: 0–10 for nps, 1–5 for csat.")
    responded_at: EventTime = Field(description="When the account answered (UTC).")

    @field_validator("score")
    @classmethod
    def _score_on_scale(cls, value: int, info: ValidationInfo) -> int:
        survey = info.data.get("survey")  # absent when survey itself was invalid
        if survey is not None:
            low, high = SURVEY_SCALES[Survey(survey)]
            if not low <= value <= high:
                raise ValueError(f"{value} is outside the {Survey(survey).value} scale "
                                 f"{low}–{high}")
        return value


class TicketStatus(StrEnum):
    OPEN = "open"
    PENDING = "pending"
    SOLVED = "solved"
    CLOSED = "closed"


#: Statuses of a resolved ticket (they carry ``resolved_at``).
RESOLVED_STATUSES: frozenset[TicketStatus] = frozenset({TicketStatus.SOLVED,
                                                        TicketStatus.CLOSED})


class TicketChannel(StrEnum):
    EMAIL = "email"
    CHAT = "chat"
    PHONE = "phone"


class SupportTicket(Event):
    """The state of one support ticket (help desk export or webhook). Each update of a
    ticket is sent again with the same ``ticket_id``: the latest state wins (the one with
    the latest ``updated_at``, which defaults to the ticket's latest time).

    Feeds ``tickets_created``, ``tickets_resolved``, ``first_response_hours`` and
    ``tickets_per_account``. Ids, times and categories only: no subject, body or requester.
    """

    kind: ClassVar[str] = "support_ticket"
    event_id: Identifier
    ticket_id: Identifier = Field(description="Help desk ticket id.")
    account_id: Identifier
    created_at: EventTime = Field(description="When the ticket was opened (UTC).")
    first_response_at: EventTime | None = Field(
        default=None, description="First agent response (UTC), absent if none yet.")
    resolved_at: EventTime | None = Field(
        default=None, description="When it was solved (UTC); required for solved and "
        "closed, absent for open and pending (a reopened ticket is not resolved).")
    status: Annotated[TicketStatus, BeforeValidator(lambda v: v.strip().lower()
                                                    if isinstance(v, str) else v)]
    channel: Annotated[TicketChannel, BeforeValidator(lambda v: v.strip().lower()
                                                      if isinstance(v, str) else v)] = Field(
        description="email, chat or phone.")
    updated_at: EventTime | None = Field(
        default=None, description="When this state was recorded; default: the latest of "
        "created_at, first_response_at and resolved_at.")

    @field_validator("first_response_at", "resolved_at")
    @classmethod
    def _not_before_created(cls, value: dt.datetime | None,
                            info: ValidationInfo) -> dt.datetime | None:
        created = info.data.get("created_at")
        if value is not None and created is not None and value < created:
            raise ValueError(f"{_show(value)} is before created_at ({_show(created)})")
        return value

    @field_validator("status")
    @classmethod
    def _resolved_matches_status(cls, value: TicketStatus,
                                 info: ValidationInfo) -> TicketStatus:
        resolved = info.data.get("resolved_at")
        if value in RESOLVED_STATUSES and resolved is None and "resolved_at" in info.data:
            raise ValueError(f"a {value.value} ticket needs resolved_at")
        if value not in RESOLVED_STATUSES and resolved is not None:
            raise ValueError(f"a {value.value} ticket has no resolved_at (it is not resolved)")
        return value

    @property
    def state_at(self) -> dt.datetime:
        """When this state was recorded (the version of the stored row)."""
        if self.updated_at is not None:
            return self.updated_at
        return max(t for t in (self.created_at, self.first_response_at, self.resolved_at)
                   if t is not None)


class ConversionMilestone(StrEnum):
    LEAD = "lead"
    OPPORTUNITY = "opportunity"
    WON = "won"
    NEW_SUBSCRIPTION = "new_subscription"


class AttributionCredit(Event):
    """Share of one conversion credited to one touchpoint under one model."""

    kind: ClassVar[str] = "attribution_credit"
    conversion_id: Identifier = Field(description="event_id of the converting event.")
    milestone: ConversionMilestone
    model: Identifier = Field(description="Attribution model name, e.g. last_touch.")
    account_id: Identifier
    touchpoint_event_id: Identifier
    channel: Channel
    campaign_id: Label = ""
    touched_at: EventTime
    converted_at: EventTime
    credit: Fraction = Field(description="Fraction of the conversion.")
    credited_revenue: Money = Field(description="credit × conversion revenue.")
    currency: Currency = "USD"
    version: Version = Field(description="Higher versions supersede lower ones.")


class Grain(StrEnum):
    DAY = "day"
    WEEK = "week"
    MONTH = "month"
    QUARTER = "quarter"


class KpiSnapshot(Event):
    """Value of one KPI for one grain × dimension × period (``value`` null when undefined)."""

    kind: ClassVar[str] = "kpi_snapshot"
    kpi: Identifier
    grain: Grain
    period: Identifier = Field(description="2026-11-25, 2026-W48, 2026-11 or 2026-Q4.")
    period_start: PlannedDate = Field(description="First day of the period; budgets reach "
                                      "into planned months.")
    dimension: Identifier = Field(default="all", description="all, channel or campaign.")
    dimension_value: Label = ""
    value: Float64 | None
    unit: Identifier
    computed_at: StampTime
    final: bool = Field(default=False, description="True for the daily close of a period.")
    complete: bool = Field(
        default=False,
        description="True when the period's last day was before computed_at's UTC date "
        "and, for a maturing KPI (catalog matures_after_days, e.g. trial conversion's "
        "window), that many more days have passed (pulse_shared.kpi_catalog.complete_on); "
        "false for a period still running or still maturing.",
    )
    schema_version: Version = SCHEMA_VERSION

    @property
    def key(self) -> str:
        return kpi_key(self.kpi, self.grain, self.dimension, self.dimension_value, self.period)


def kpi_key(kpi: str, grain: str, dimension: str, dimension_value: str, period: str) -> str:
    """Identity of one KPI value (kpi × grain × dimension member × period): the key of
    :class:`KpiSnapshot`, of the KPI service's values and of what it remembers it sent."""
    return f"{kpi}|{grain}|{dimension}|{dimension_value}|{period}"


class AlertState(StrEnum):
    PENDING = "pending"
    FIRING = "firing"
    RESOLVED = "resolved"


class Severity(StrEnum):
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


class Alert(Event):
    """A transition of one alert (fingerprint = rule + labels)."""

    kind: ClassVar[str] = "alert"
    alert_id: Identifier
    fingerprint: Identifier
    rule: Identifier
    state: AlertState
    severity: Severity
    kpi: Identifier
    labels: dict[Identifier, Label] = Field(default_factory=dict)
    annotations: dict[Identifier, Text] = Field(default_factory=dict)
    value: Float64 | None
    threshold: Float64 | None
    starts_at: StampTime
    ends_at: StampTime | None = None
    sent_at: StampTime


class CampaignAction(Event):
    """A recommendation for manual review (never executed against an ad platform)."""

    kind: ClassVar[str] = "campaign_action"
    action_id: Identifier
    action: Identifier = Field(description="e.g. pause_campaign, shift_budget.")
    channel: Channel
    campaign_id: Label = ""
    reason: Text
    source_alert: Identifier | None = None
    created_at: StampTime


class ReportReady(Event):
    """A report has been produced and can be fetched from ``paths``."""

    kind: ClassVar[str] = "report_ready"
    report_id: Identifier
    report_kind: Identifier = Field(description="weekly, monthly or quarterly.")
    period: Identifier
    paths: dict[Identifier, PathOrUrl] = Field(description="format → file path or URL.")
    created_at: StampTime


class MmmChannelRoi(BaseModel):
    """One channel of a marketing mix model run: incremental ROI with its 90 % interval."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    channel: Identifier
    spend: Float64
    contribution: Float64
    roi: Float64 | None
    roi_lower: Float64 | None
    roi_upper: Float64 | None
    marginal_roi: Float64 | None


class MmmRunCompleted(Event):
    """A marketing mix model fit finished: published (results stored) or rejected (its
    diagnostics failed; ``reason`` says which)."""

    kind: ClassVar[str] = "mmm_run"
    run_id: Identifier
    version: Version
    target: Identifier = Field(description="won_revenue, new_mrr or kpi:<name>.")
    grain: Identifier = Field(description="week or day.")
    date_from: PlannedDate
    date_to: PlannedDate
    status: Identifier = Field(description="published or rejected.")
    reason: Text = ""
    channels: list[MmmChannelRoi] = Field(
        default_factory=list, max_length=64,
        description="ROI per channel of a published run (empty when rejected).")
    finished_at: StampTime
    schema_version: Version = SCHEMA_VERSION


class ErasureSubjectKind(StrEnum):
    ACCOUNT = "account"
    CONTACT = "contact"


class Erasure(Event):
    """A subject's rows were erased (``pulse privacy erase``): a tombstone. Consumers must
    not store records of this subject again (a replay, a late redelivery); the writers of
    Pulse's tables check the ``erasures`` table (:mod:`pulse_shared.erasure`).

    ``subject`` is the account id, or the contact's salted hash (never the raw address).
    """

    kind: ClassVar[str] = "erasure"
    erasure_id: Identifier
    subject_kind: ErasureSubjectKind
    subject: Identifier
    requested_at: StampTime


class FieldError(BaseModel):
    """One problem with one field of one record."""

    model_config = ConfigDict(frozen=True)
    field: str
    reason: str


class DeadLetter(BaseModel):
    """What a consumer could not process, with enough context to replay it."""

    model_config = ConfigDict(frozen=True)
    source_topic: str
    partition: int
    offset: int
    key: str | None
    payload: str = Field(description="Original message body (UTF-8, replaced if invalid).")
    reason: str
    errors: list[FieldError] = Field(default_factory=list)
    consumer: str
    failed_at: UtcDatetime

    @field_validator("payload", mode="before")
    @classmethod
    def _decode(cls, value: Any) -> Any:
        if isinstance(value, bytes):
            return value.decode("utf-8", errors="replace")
        return value
