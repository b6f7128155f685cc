"""Deliverability KPIs (pure): daily ESP delivery counts → sent, delivered and the rates.

Rates over the e-mails *sent* (delivery, bounce, hard bounce, complaint, unsubscribe) and
over the e-mails *delivered* (open, click), as ESPs and mailbox providers define them. A
rate whose denominator is 0 is ``None`` (n/a: nothing was sent), never 0, which would read
as a perfect (or a dead) sender. Counts of a period are the sums of its days, so a week or
a month is exact however the days were reported.

Breakdowns: ``sending_domain`` and ``campaign`` (the ESP campaign id; rows without one
count in the totals and their domain only).
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal

from pulse_shared.events import Grain
from pulse_shared.kpi_catalog import (
    BOUNCE_RATE_THRESHOLD,
    COMPLAINT_RATE_THRESHOLD,
    DELIVERABILITY_DIMS,
)
from pulse_shared.periods import GRAINS, Period, period_of

__all__ = [
    "BOUNCE_RATE_THRESHOLD", "COMPLAINT_RATE_THRESHOLD", "DeliverabilityRow", "DeliveryCounts",
    "breakdowns", "rate", "totals",
]


@dataclass(frozen=True, slots=True)
class DeliverabilityRow:
    """One day's counts of one sending domain × ESP campaign (summed over ESPs and rows)."""

    day: dt.date
    sending_domain: str
    campaign_id: str
    sent: int = 0
    delivered: int = 0
    hard_bounces: int = 0
    soft_bounces: int = 0
    spam_complaints: int = 0
    unsubscribes: int = 0
    unique_opens: int = 0
    unique_clicks: int = 0


COUNT_FIELDS: tuple[str, ...] = (
    "sent", "delivered", "hard_bounces", "soft_bounces", "spam_complaints", "unsubscribes",
    "unique_opens", "unique_clicks",
)


@dataclass(slots=True)
class DeliveryCounts:
    """Summed counts of a period (and dimension member)."""

    sent: int = 0
    delivered: int = 0
    hard_bounces: int = 0
    soft_bounces: int = 0
    spam_complaints: int = 0
    unsubscribes: int = 0
    unique_opens: int = 0
    unique_clicks: int = 0

    def add(self, row: DeliverabilityRow) -> None:
        for name in COUNT_FIELDS:
            setattr(self, name, getattr(self, name) + getattr(row, name))

    def values(self) -> dict[str, float | None]:
        """The nine deliverability KPIs of these counts."""
        bounces = self.hard_bounces + self.soft_bounces
        return {
            "emails_sent": float(self.sent),
            "emails_delivered": float(self.delivered),
            "delivery_rate": rate(self.delivered, self.sent),
            "bounce_rate": rate(bounces, self.sent),
            "hard_bounce_rate": rate(self.hard_bounces, self.sent),
            "complaint_rate": rate(self.spam_complaints, self.sent),
            "unsubscribe_rate": rate(self.unsubscribes, self.sent),
            "open_rate": rate(self.unique_opens, self.delivered),
            "click_rate": rate(self.unique_clicks, self.delivered),
        }


def rate(part: int, whole: int) -> float | None:
    """``part / whole`` exactly (Decimal) to 9 places; None (n/a) when ``whole`` is 0."""
    if whole == 0:
        return None
    return round(float(Decimal(part) / Decimal(whole)), 9)


def totals(rows: Iterable[DeliverabilityRow], period: Period) -> dict[str, float | None]:
    """The deliverability KPIs of ``period`` in total (every domain and campaign)."""
    counts = DeliveryCounts()
    for row in rows:
        if period.contains(row.day):
            counts.add(row)
    return counts.values()


def _members(row: DeliverabilityRow, dims: Sequence[str]) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    if "sending_domain" in dims:
        out.append(("sending_domain", row.sending_domain))
    if "campaign" in dims and row.campaign_id:
        out.append(("campaign", row.campaign_id))
    return out


Breakdown = tuple[Grain, Period, str, str]


def breakdowns(
    rows: Iterable[DeliverabilityRow],
    wanted: Mapping[Grain, set[Period]],
    dims: Sequence[str],
    known_members: Iterable[tuple[str, dt.date, str, str]] = (),
) -> dict[Breakdown, dict[str, float | None]]:
    """KPIs by sending domain and by ESP campaign of the wanted periods: a member for each
    period where it has rows or had deliverability values before (``known_members``, so a
    member whose rows moved away drops to 0 and n/a instead of going stale)."""
    dims = [d for d in dims if d != "all" and d in DELIVERABILITY_DIMS]
    counts: dict[Breakdown, DeliveryCounts] = defaultdict(DeliveryCounts)
    for grain_name, start, dim, member in known_members:
        grain = Grain(grain_name)
        period = period_of(start, grain)
        if dim in dims and period in wanted.get(grain, ()):
            counts.setdefault((grain, period, dim, member), DeliveryCounts())
    for row in rows:
        members = _members(row, dims)
        if not members:
            continue
        for grain in GRAINS:
            period = period_of(row.day, grain)
            if period not in wanted.get(grain, ()):
                continue
            for dim, member in members:
                counts[(grain, period, dim, member)].add(row)
    return {key: c.values() for key, c in sorted(counts.items(), key=lambda kv: kv[0])}
