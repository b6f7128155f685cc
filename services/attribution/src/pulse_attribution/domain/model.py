"""Value types of the attribution domain."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from pulse_shared.attribution_models import DATA_DRIVEN_MODELS, RULE_MODELS
from pulse_shared.events import Channel, ConversionMilestone

Milestone = ConversionMilestone

#: Funnel order of milestones; won and new_subscription are both "closed-won".
MILESTONE_RANK: dict[Milestone, int] = {
    Milestone.LEAD: 0,
    Milestone.OPPORTUNITY: 1,
    Milestone.WON: 2,
    Milestone.NEW_SUBSCRIPTION: 2,
}

ALL_MODELS: tuple[str, ...] = (*RULE_MODELS, *DATA_DRIVEN_MODELS)


@dataclass(frozen=True, slots=True)
class Touch:
    """One touchpoint of any contact of an account, as the models need it."""

    event_id: str
    occurred_at: dt.datetime
    channel: Channel
    campaign_id: str = ""
    contact_id: str = ""

    @property
    def sort_key(self) -> tuple[dt.datetime, str]:
        # Ties on the timestamp are broken by event id so results are deterministic.
        return (self.occurred_at, self.event_id)


@dataclass(frozen=True, slots=True)
class Conversion:
    """An account reaching a milestone, with the revenue the milestone is worth."""

    conversion_id: str
    account_id: str
    milestone: Milestone
    converted_at: dt.datetime
    revenue: Decimal
    currency: str = "USD"


@dataclass(frozen=True, slots=True)
class TouchCredit:
    """Fraction of one conversion credited to one touch under one model."""

    touch: Touch
    credit: float
