"""Account journeys: which conversions a touch belongs to, and milestone times."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Sequence

from pulse_attribution.domain.model import MILESTONE_RANK, Conversion, Milestone, Touch

LookbackFor = Callable[[Milestone], float]


def in_window(touch: Touch, conversion: Conversion, lookback_days: float) -> bool:
    start = conversion.converted_at - dt.timedelta(days=lookback_days)
    return start <= touch.occurred_at <= conversion.converted_at


def affected_conversions(
    conversions: Iterable[Conversion],
    touches_by_account: dict[str, list[Touch]],
    lookback_for: LookbackFor,
) -> list[Conversion]:
    """Conversions whose lookback window contains at least one of the given touches."""
    affected: list[Conversion] = []
    for conversion in conversions:
        lookback = lookback_for(conversion.milestone)
        if any(
            in_window(t, conversion, lookback)
            for t in touches_by_account.get(conversion.account_id, ())
        ):
            affected.append(conversion)
    return affected


def milestone_times(
    conversion: Conversion, account_conversions: Sequence[Conversion]
) -> dict[Milestone, dt.datetime]:
    """Earliest time the account reached each milestone, up to this conversion."""
    times: dict[Milestone, dt.datetime] = {}
    for other in account_conversions:
        if other.account_id != conversion.account_id:
            continue
        if other.converted_at > conversion.converted_at:
            continue
        current = times.get(other.milestone)
        if current is None or other.converted_at < current:
            times[other.milestone] = other.converted_at
    return times


def dependent_conversions(
    known: Iterable[Conversion], new: Sequence[Conversion]
) -> list[Conversion]:
    """Already-known conversions whose milestone roles a new conversion can move: same
    account, higher milestone, at or after it (excluding the new ones themselves)."""
    new_ids = {c.conversion_id for c in new}
    out: dict[str, Conversion] = {}
    for conversion in known:
        if conversion.conversion_id in new_ids:
            continue
        for added in new:
            if (
                added.account_id == conversion.account_id
                and MILESTONE_RANK[conversion.milestone] > MILESTONE_RANK[added.milestone]
                and conversion.converted_at >= added.converted_at
            ):
                out[conversion.conversion_id] = conversion
                break
    return list(out.values())
