"""Demo account profiles (``generate_dataset(account_profiles=True)``): every account gets
one, segments follow billing (enterprise carries the bigger MRR), plan changes are new
profiles dated at the upgrade, and nothing else in the dataset changes."""

from __future__ import annotations

import datetime as dt
import statistics
from collections import Counter, defaultdict

from pulse_ingest.domain.generator import generate_dataset
from pulse_shared.events import Segment

END = dt.date(2026, 6, 30)


def test_every_account_has_a_profile_from_its_first_event_and_nothing_else_changes() -> None:
    plain = generate_dataset(seed=3, days=90, accounts=150, end=END)
    with_profiles = generate_dataset(seed=3, days=90, accounts=150, end=END,
                                     account_profiles=True)
    assert with_profiles.by_kind().keys() - plain.by_kind().keys() == {"accounts"}
    for kind, events in plain.by_kind().items():
        assert with_profiles.by_kind()[kind] == events, kind
    profiles = with_profiles.accounts
    accounts = {e.account_id for kind in ("touchpoints", "pipeline", "subscriptions")
                for e in getattr(plain, kind)}
    assert {p.account_id for p in profiles} == accounts
    first_event: dict[str, dt.date] = {}
    for kind in ("touchpoints", "pipeline", "subscriptions"):
        for e in getattr(plain, kind):
            day = e.occurred_at.date()
            first_event[e.account_id] = min(day, first_event.get(e.account_id, day))
    first_profile = {}
    for p in sorted(profiles, key=lambda p: p.effective_from):
        first_profile.setdefault(p.account_id, p.effective_from)
    assert first_profile == first_event
    assert len({p.event_id for p in profiles}) == len(profiles)
    mix = Counter(p.segment for p in profiles if p.effective_from == first_profile[p.account_id])
    assert mix[Segment.SMB] > mix[Segment.MID_MARKET] > mix[Segment.ENTERPRISE] > 0


def test_segments_follow_mrr_and_plan_changes_are_dated_at_upgrades() -> None:
    data = generate_dataset(seed=7, days=120, accounts=400, end=END, account_profiles=True)
    by_account = defaultdict(list)
    for p in sorted(data.accounts, key=lambda p: p.effective_from):
        by_account[p.account_id].append(p)
    first_mrr: dict[str, float] = {}
    for s in data.subscriptions:
        if s.mrr > 0:
            first_mrr.setdefault(s.account_id, float(s.mrr))
    by_segment = defaultdict(list)
    for account, mrr in first_mrr.items():
        by_segment[by_account[account][0].segment].append(mrr)
    medians = {segment: statistics.median(v) for segment, v in by_segment.items()}
    assert medians[Segment.ENTERPRISE] > medians[Segment.MID_MARKET] > medians[Segment.SMB]
    changes = [p for history in by_account.values() for p in history[1:]]
    assert changes, "some accounts change plan"
    upgrades = {(s.account_id, s.occurred_at.date(), s.plan) for s in data.subscriptions
                if s.mrr > 0}
    for p in changes:
        assert (p.account_id, p.effective_from, p.plan) in upgrades
