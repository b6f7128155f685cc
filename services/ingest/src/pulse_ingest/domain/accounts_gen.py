"""Synthetic account profiles for the demo dataset (``generate_dataset(account_profiles=True)``).

Derived from the generated events, so they are coherent with them:

* every account of the dataset (touchpoints, pipeline or billing) gets a profile effective
  from its first event's day;
* the segment follows the account's billing (the plan it first pays for): starter is SMB,
  growth mostly SMB and some mid-market, scale mid-market and some enterprise, enterprise
  enterprise — so enterprise accounts carry the bigger MRR without changing any MRR;
  accounts that never pay get a segment of the overall mix (:data:`PROSPECT_MIX`);
* each subscription event that changes the plan (an upgrade or downgrade to another plan)
  is a new profile from that day with the new plan; moving up to the enterprise plan makes
  the account an enterprise one (a segment change mid-history);
* industry, region and employee band are drawn once per account (the band within its
  segment); acquisition_channel is left to the first touch (Pulse falls back to it), except
  for accounts without touchpoints (the sales-led history deals): ``sales``.

Own random generator (seeded from the dataset's seed) and ids made of account and day, so
turning profiles on changes no other event of the dataset.
"""

from __future__ import annotations

import datetime as dt
import random
from collections import defaultdict
from collections.abc import Iterable, Sequence

from pulse_shared.events import (
    AccountProfile,
    Channel,
    PipelineEvent,
    Segment,
    Subscription,
    Touchpoint,
)

#: Segment of a plan's accounts: (segment, weight) choices.
PLAN_SEGMENTS: dict[str, tuple[tuple[Segment, float], ...]] = {
    "starter": ((Segment.SMB, 1.0),),
    "growth": ((Segment.SMB, 0.6), (Segment.MID_MARKET, 0.4)),
    "scale": ((Segment.MID_MARKET, 0.75), (Segment.ENTERPRISE, 0.25)),
    "enterprise": ((Segment.ENTERPRISE, 1.0),),
}
#: Segments of accounts that never pay (leads, lost deals).
PROSPECT_MIX: tuple[tuple[Segment, float], ...] = (
    (Segment.SMB, 0.6), (Segment.MID_MARKET, 0.3), (Segment.ENTERPRISE, 0.1),
)
EMPLOYEE_BANDS: dict[Segment, tuple[str, ...]] = {
    Segment.SMB: ("1-10", "11-50"),
    Segment.MID_MARKET: ("51-200", "201-1000"),
    Segment.ENTERPRISE: ("1001-5000", "5000+"),
}
INDUSTRIES: tuple[tuple[str, float], ...] = (
    ("software", 0.24), ("ecommerce", 0.2), ("retail", 0.14), ("media", 0.1),
    ("financial_services", 0.1), ("education", 0.08), ("healthcare", 0.08),
    ("nonprofit", 0.06),
)
REGIONS: tuple[tuple[str, float], ...] = (
    ("na", 0.45), ("emea", 0.35), ("apac", 0.14), ("latam", 0.06),
)


def _pick(rng: random.Random, choices: Sequence[tuple[str, float]] | Sequence[
        tuple[Segment, float]]) -> str:
    values = [c[0] for c in choices]
    return str(rng.choices(values, [c[1] for c in choices])[0])


def account_profiles(
    touchpoints: Sequence[Touchpoint],
    pipeline: Sequence[PipelineEvent],
    subscriptions: Iterable[Subscription],
    seed: int,
    prefix: str,
) -> list[AccountProfile]:
    """One profile per account from its first event's day, plus one per plan change."""
    rng = random.Random(f"{seed}-accounts")
    first: dict[str, dt.date] = {}
    touched: set[str] = set()
    for touch in touchpoints:
        touched.add(touch.account_id)
    for account_id, at in [(t.account_id, t.occurred_at) for t in touchpoints] + [
            (p.account_id, p.occurred_at) for p in pipeline]:
        day = at.date()
        first[account_id] = min(day, first.get(account_id, day))
    billing: dict[str, list[Subscription]] = defaultdict(list)
    for s in sorted(subscriptions, key=lambda e: (e.occurred_at, e.event_id)):
        billing[s.account_id].append(s)
        day = s.occurred_at.date()
        first[s.account_id] = min(day, first.get(s.account_id, day))
    out: list[AccountProfile] = []
    for account in sorted(first):
        events = billing.get(account, [])
        paid = next((e for e in events if e.mrr > 0), None)
        plan = paid.plan if paid is not None else (events[0].plan if events else "")
        mix = PLAN_SEGMENTS.get(plan, PROSPECT_MIX) if paid is not None else PROSPECT_MIX
        segment = Segment(_pick(rng, mix))
        industry, region = _pick(rng, INDUSTRIES), _pick(rng, REGIONS)
        band = rng.choice(EMPLOYEE_BANDS[segment])
        channel = None if account in touched else Channel.SALES
        changes = [(first[account], plan, segment)]
        for event in events:
            if event.mrr <= 0 or not event.plan or event.plan == plan:
                continue
            plan = event.plan
            segment = Segment.ENTERPRISE if plan == "enterprise" else segment
            changes.append((event.occurred_at.date(), plan, segment))
        for n, (day, plan_then, segment_then) in enumerate(changes):
            out.append(AccountProfile(
                event_id=f"gen-{prefix}-account-{account}-{n}", account_id=account,
                effective_from=day, plan=plan_then, segment=segment_then, industry=industry,
                region=region,
                employee_band=(band if band in EMPLOYEE_BANDS[segment_then]
                               else EMPLOYEE_BANDS[segment_then][0]),
                acquisition_channel=channel,
            ))
    out.sort(key=lambda p: (p.effective_from, p.event_id))
    return out
