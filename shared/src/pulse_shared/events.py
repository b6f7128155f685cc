"""Versioned event contracts shared by every Pulse service.

Every message on the bus is one of these pydantic models serialised as JSON. Models are
frozen, reject unknown fields, keep money as ``Decimal`` and timestamps as timezone-aware
UTC datetimes, so a consumer never has to guess units or zones.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any, ClassVar

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
)

from pulse_shared.privacy import contains_email

SCHEMA_VERSION = 1


def _to_utc(value: dt.datetime) -> dt.datetime:
    try:
        return value.astimezone(dt.UTC)
    except OverflowError as exc:  # e.g. 9999-12-31T23:59:59-05:00 leaves year 9999
        raise ValueError("timestamp out of range once converted to UTC") from exc


UtcDatetime = Annotated[AwareDatetime, AfterValidator(_to_utc)]
Identifier = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=128)
]
Label = Annotated[str, StringConstraints(strip_whitespace=True, max_length=256)]
Currency = Annotated[
    str, StringConstraints(strip_whitespace=True, to_upper=True, pattern=r"^[A-Za-z]{3}$")
]
Money = Annotated[Decimal, Field(max_digits=18, decimal_places=4, allow_inf_nan=False)]
NonNegativeMoney = Annotated[Money, Field(ge=0)]
Month = Annotated[str, StringConstraints(pattern=r"^\d{4}-(0[1-9]|1[0-2])$")]
Sha256Hex = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]


class Event(BaseModel):
    """Base of every bus message: frozen, unknown fields rejected, stable JSON.

    No text field may carry an e-mail address: identifiers travel as salted hashes, so a
    raw address from any producer is rejected (and dead-lettered, redacted) on the bus.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, use_enum_values=False)
    kind: ClassVar[str] = "event"

    @field_validator("*", mode="after")
    @classmethod
    def _no_raw_email(cls, value: Any) -> Any:
        if isinstance(value, str) and contains_email(value):
            raise ValueError("looks like a raw e-mail address; send a salted hash instead")
        return value

    def to_json(self) -> bytes:
        return self.model_dump_json().encode()


def deterministic_event_id(kind: str, payload: dict[str, Any]) -> str:
    """Content hash used when a client sends no event_id, so re-sends stay idempotent."""
    canonical = "|".join(f"{k}={payload[k]}" for k in sorted(payload) if k != "event_id")
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
    occurred_at: UtcDatetime = Field(description="When the interaction happened (UTC).")
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
    date: dt.date = Field(description="Day the money was spent (account time zone = UTC).")
    channel: Channel
    campaign_id: Label = ""
    amount: NonNegativeMoney
    currency: Currency = "USD"
    impressions: int = Field(default=0, ge=0)
    clicks: int = Field(default=0, ge=0)


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
    occurred_at: UtcDatetime
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
    occurred_at: UtcDatetime
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
    touched_at: UtcDatetime
    converted_at: UtcDatetime
    credit: float = Field(ge=0.0, le=1.0, description="Fraction of the conversion.")
    credited_revenue: Money = Field(description="credit × conversion revenue.")
    currency: Currency = "USD"
    version: int = Field(ge=1, description="Higher versions supersede lower ones.")


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
    period_start: dt.date
    dimension: Identifier = Field(default="all", description="all, channel or campaign.")
    dimension_value: Label = ""
    value: float | None
    unit: Identifier
    computed_at: UtcDatetime
    final: bool = Field(default=False, description="True for the daily close of a period.")
    schema_version: int = SCHEMA_VERSION

    @property
    def key(self) -> str:
        return f"{self.kpi}|{self.grain}|{self.dimension}|{self.dimension_value}|{self.period}"


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
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    value: float | None
    threshold: float | None
    starts_at: UtcDatetime
    ends_at: UtcDatetime | None = None
    sent_at: UtcDatetime


class CampaignAction(Event):
    """A recommendation for manual review (never executed against an ad platform)."""

    kind: ClassVar[str] = "campaign_action"
    action_id: Identifier
    action: Identifier = Field(description="e.g. pause_campaign, shift_budget.")
    channel: Channel
    campaign_id: Label = ""
    reason: Label
    source_alert: Identifier | None = None
    created_at: UtcDatetime


class ReportReady(Event):
    """A report has been produced and can be fetched from ``paths``."""

    kind: ClassVar[str] = "report_ready"
    report_id: Identifier
    report_kind: Identifier = Field(description="weekly, monthly or quarterly.")
    period: Identifier
    paths: dict[str, str] = Field(description="format → file path or URL.")
    created_at: UtcDatetime


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
