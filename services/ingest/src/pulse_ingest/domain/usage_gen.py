"""Synthetic product usage for the demo dataset (``generate_dataset(product_usage=True)``).

Derived from the generated subscription events, so it is coherent with billing:

* an account uses the product on the days it pays (MRR > 0 at the start of the day),
  more on weekdays, bigger plans more (counts scale with the square root of MRR);
* every paying account uses the core feature (:data:`CORE_FEATURE`); each other feature is
  adopted by a share of the accounts (:data:`FEATURES`);
* :data:`LAUNCH_FEATURE` is released in the middle of the window
  (:func:`launch_day`): nobody uses it before; each adopting account starts after a delay
  (exponential, mean :data:`LAUNCH_DELAY_MEAN_DAYS` days from the release or from the day
  it started paying, whichever is later), so its adoption curve rises and flattens;
* in the :data:`DECLINE_DAYS` days before an account cancels (MRR → 0), its activity
  falls steeply (:func:`decline`): usage drops month over month ahead of churn, the
  signal ``churn_risk_accounts`` picks up.

Own random generator (seeded from the dataset's seed) and ids made of account, feature and
day, so turning usage on changes no other event of the dataset.
"""

from __future__ import annotations

import datetime as dt
import math
import random
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal

from pulse_shared.events import ProductUsage, Subscription


@dataclass(frozen=True)
class Feature:
    slug: str
    adoption: float  # share of paying accounts that use it at all
    daily: float  # chance an adopting account uses it on a weekday
    mean_uses: float  # mean uses on a day it is used (starter plan)


CORE_FEATURE = "campaigns"
LAUNCH_FEATURE = "ab_testing"
FEATURES: tuple[Feature, ...] = (
    Feature(CORE_FEATURE, 1.0, 0.85, 6.0),
    Feature("templates", 0.7, 0.45, 3.0),
    Feature("automations", 0.45, 0.6, 4.0),
    Feature(LAUNCH_FEATURE, 0.6, 0.4, 2.0),
)
LAUNCH_DELAY_MEAN_DAYS = 12.0
WEEKEND = 0.25  # activity on Saturdays and Sundays, relative to weekdays
DECLINE_DAYS = 75
BASE_MRR = 490.0  # the starter plan: counts scale with sqrt(MRR / BASE_MRR)


def launch_day(start: dt.date, end: dt.date) -> dt.date:
    """Release day of :data:`LAUNCH_FEATURE`: the middle of the window."""
    return start + dt.timedelta(days=(end - start).days // 2)


def decline(days_to_churn: int) -> float:
    """Activity left ``days_to_churn`` days before a cancellation (1 = normal): it falls
    with the square of the distance over :data:`DECLINE_DAYS` days, to 5 % at the end."""
    if days_to_churn >= DECLINE_DAYS or days_to_churn < 0:
        return 1.0
    return 0.05 + 0.95 * (days_to_churn / DECLINE_DAYS) ** 2


@dataclass
class _Billing:
    """One account's MRR per day and its cancellation days."""

    changes: list[tuple[dt.date, Decimal]]  # (day, MRR after that day's last event)
    cancellations: list[dt.date]

    def mrr_at_start(self, day: dt.date) -> Decimal:
        mrr = Decimal(0)
        for when, value in self.changes:
            if when >= day:
                break
            mrr = value
        return mrr


def _billing(subscriptions: Iterable[Subscription]) -> dict[str, _Billing]:
    events: dict[str, list[Subscription]] = defaultdict(list)
    for s in subscriptions:
        events[s.account_id].append(s)
    out: dict[str, _Billing] = {}
    for account, items in events.items():
        items.sort(key=lambda s: (s.occurred_at, s.event_id))
        changes: list[tuple[dt.date, Decimal]] = []
        cancellations: list[dt.date] = []
        previous = Decimal(0)
        for s in items:
            day = s.occurred_at.date()
            if previous > 0 and s.mrr == 0:
                cancellations.append(day)
            previous = s.mrr
            if changes and changes[-1][0] == day:
                changes[-1] = (day, s.mrr)
            else:
                changes.append((day, s.mrr))
        out[account] = _Billing(changes, cancellations)
    return out


def _uses(rng: random.Random, mean: float) -> int:
    """At least one use, around ``mean`` (a geometric-like spread)."""
    return max(1, int(round(rng.expovariate(1 / mean))))


def product_usage(
    subscriptions: Sequence[Subscription], start: dt.date, end: dt.date, seed: int,
    id_prefix: str,
) -> list[ProductUsage]:
    """Daily usage per paying account and feature over ``start`` … ``end`` (inclusive),
    sorted by day then event id."""
    rng = random.Random(f"{seed}-product-usage")
    released = launch_day(start, end)
    out: list[ProductUsage] = []
    for account, billing in sorted(_billing(subscriptions).items()):
        paying_from: dt.date | None = None
        adopted = {f.slug: rng.random() < f.adoption for f in FEATURES}
        launch_delay = rng.expovariate(1 / LAUNCH_DELAY_MEAN_DAYS)
        day = start
        while day <= end:
            mrr = billing.mrr_at_start(day)
            if mrr <= 0:
                paying_from = None
                day += dt.timedelta(days=1)
                continue
            paying_from = paying_from or day
            upcoming = [c for c in billing.cancellations if c >= day]
            activity = decline((upcoming[0] - day).days) if upcoming else 1.0
            if day.weekday() >= 5:
                activity *= WEEKEND
            size = math.sqrt(float(mrr) / BASE_MRR)
            for feature in FEATURES:
                if not adopted[feature.slug]:
                    continue
                if feature.slug == LAUNCH_FEATURE:
                    first = max(released, paying_from) + dt.timedelta(days=launch_delay)
                    if day < first:
                        continue
                if rng.random() >= feature.daily * activity:
                    continue
                out.append(ProductUsage(
                    event_id=f"gen-{id_prefix}-usage-{account}-{feature.slug}-{day:%Y%m%d}",
                    account_id=account, feature=feature.slug, day=day,
                    count=_uses(rng, feature.mean_uses * size),
                ))
            day += dt.timedelta(days=1)
    out.sort(key=lambda e: (e.day, e.event_id))
    return out
