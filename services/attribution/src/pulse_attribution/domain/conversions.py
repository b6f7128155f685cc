"""Which input events are conversions, and what each conversion is worth."""

from __future__ import annotations

from decimal import Decimal

from pulse_attribution.domain.model import Conversion, Milestone, Touch
from pulse_shared.events import (
    PipelineEvent,
    PipelineStage,
    Subscription,
    SubscriptionEventType,
    Touchpoint,
)

_STAGE_MILESTONES: dict[PipelineStage, Milestone] = {
    PipelineStage.LEAD: Milestone.LEAD,
    PipelineStage.OPPORTUNITY: Milestone.OPPORTUNITY,
    PipelineStage.WON: Milestone.WON,
}
MONTHS_PER_YEAR = Decimal(12)


def from_pipeline(event: PipelineEvent) -> Conversion | None:
    """lead/opportunity/won stages are milestones worth the deal amount (0 if none)."""
    milestone = _STAGE_MILESTONES.get(event.stage)
    if milestone is None:
        return None
    return Conversion(
        conversion_id=event.event_id,
        account_id=event.account_id,
        milestone=milestone,
        converted_at=event.occurred_at,
        revenue=event.amount if event.amount is not None else Decimal(0),
        currency=event.currency,
    )


def from_subscription(event: Subscription) -> Conversion | None:
    """A started subscription is a ``new_subscription`` worth MRR × 12."""
    if event.event_type != SubscriptionEventType.SUBSCRIPTION_STARTED:
        return None
    return Conversion(
        conversion_id=event.event_id,
        account_id=event.account_id,
        milestone=Milestone.NEW_SUBSCRIPTION,
        converted_at=event.occurred_at,
        revenue=event.mrr * MONTHS_PER_YEAR,
        currency=event.currency,
    )


def touch_of(event: Touchpoint) -> Touch:
    return Touch(
        event_id=event.event_id,
        occurred_at=event.occurred_at,
        channel=event.channel,
        campaign_id=event.campaign_id,
        contact_id=event.contact_id,
    )
