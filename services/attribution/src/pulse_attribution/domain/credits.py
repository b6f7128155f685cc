"""Turning touch credits into versioned :class:`AttributionCredit` events."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import ROUND_HALF_EVEN, Decimal

from pulse_attribution.domain.model import Conversion, TouchCredit
from pulse_shared.events import AttributionCredit

MONEY_QUANTUM = Decimal("0.0001")


def split_revenue(revenue: Decimal, credits: Sequence[float]) -> list[Decimal]:
    """``credit × revenue`` rounded to 4 dp; the rounding remainder goes to the largest
    share so the parts add up to the revenue exactly."""
    if not credits:
        return []
    parts = [
        (revenue * Decimal(repr(c))).quantize(MONEY_QUANTUM, ROUND_HALF_EVEN) for c in credits
    ]
    total_credit = sum(credits)
    if abs(total_credit - 1.0) < 1e-9:
        remainder = revenue.quantize(MONEY_QUANTUM) - sum(parts, Decimal(0))
        biggest = max(range(len(parts)), key=lambda i: credits[i])
        parts[biggest] += remainder
    return parts


def credit_events(
    conversion: Conversion, model: str, credits: Sequence[TouchCredit], version: int
) -> list[AttributionCredit]:
    revenues = split_revenue(conversion.revenue, [c.credit for c in credits])
    return [
        AttributionCredit(
            conversion_id=conversion.conversion_id,
            milestone=conversion.milestone,
            model=model,
            account_id=conversion.account_id,
            touchpoint_event_id=c.touch.event_id,
            channel=c.touch.channel,
            campaign_id=c.touch.campaign_id,
            touched_at=c.touch.occurred_at,
            converted_at=conversion.converted_at,
            credit=min(1.0, max(0.0, c.credit)),
            credited_revenue=revenue,
            currency=conversion.currency,
            version=version,
        )
        for c, revenue in zip(credits, revenues, strict=True)
    ]


def signature(credits: Sequence[tuple[str, float]]) -> tuple[tuple[str, float], ...]:
    """Comparable form of one conversion × model's credits (touch id, rounded credit)."""
    return tuple(sorted((touch_id, round(credit, 9)) for touch_id, credit in credits))


def versioned_credits(
    conversion: Conversion,
    model_credits: dict[str, list[TouchCredit]],
    latest: dict[str, tuple[int, list[tuple[str, float]]]],
    *,
    include_unchanged: bool = False,
) -> list[AttributionCredit]:
    """Credit events for the models whose credits differ from their latest version.

    A model whose credits are unchanged (redelivery, a touch that moves nothing) gets no
    new version; a changed one gets ``latest + 1`` (1 for the first computation). With
    ``include_unchanged`` an unchanged model is returned again under its current version
    (an idempotent re-send). Empty credit lists (no touch in the window yet) produce
    nothing.
    """
    events: list[AttributionCredit] = []
    for model, credits in model_credits.items():
        if not credits:
            continue
        previous = latest.get(model)
        if previous is not None and signature(previous[1]) == signature(
            [(c.touch.event_id, c.credit) for c in credits]
        ):
            if include_unchanged:
                events.extend(credit_events(conversion, model, credits, previous[0]))
            continue
        version = previous[0] + 1 if previous is not None else 1
        events.extend(credit_events(conversion, model, credits, version))
    return events
