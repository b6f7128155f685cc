"""The synthetic dataset: deterministic, fast, internally consistent, privacy-safe."""

from __future__ import annotations

import datetime as dt
import json
import time
from collections import Counter, defaultdict
from decimal import Decimal
from pathlib import Path

import pytest

from pulse_ingest.domain.generator import (
    CAMPAIGNS,
    SyntheticDataset,
    generate_dataset,
)
from pulse_ingest.files import read_rows, write_files
from pulse_shared.events import PipelineStage, SubscriptionEventType
from pulse_shared.privacy import is_hashed

END = dt.date(2026, 11, 24)
ORDER = ["lead", "mql", "sql", "opportunity"]


@pytest.fixture(scope="module")
def dataset() -> SyntheticDataset:
    return generate_dataset(seed=7, days=120, accounts=600, end=END)


def test_same_seed_same_dataset_other_seed_differs() -> None:
    a = generate_dataset(seed=1, days=30, accounts=100, end=END)
    b = generate_dataset(seed=1, days=30, accounts=100, end=END)
    c = generate_dataset(seed=2, days=30, accounts=100, end=END)
    assert a.by_kind() == b.by_kind()
    assert a.touchpoints != c.touchpoints


def test_full_size_is_fast_and_has_every_kind() -> None:
    started = time.perf_counter()
    data = generate_dataset(seed=42, days=180, accounts=2000, end=END)
    elapsed = time.perf_counter() - started
    assert elapsed < 5.0
    counts = data.counts()
    assert counts["touchpoints"] > 8000
    assert counts["spend"] == 180 * len(CAMPAIGNS)
    assert all(n > 0 for n in counts.values()), counts


def test_events_are_inside_the_window_and_ids_unique(dataset: SyntheticDataset) -> None:
    start = END - dt.timedelta(days=119)
    for tp in dataset.touchpoints:
        assert start <= tp.occurred_at.date() <= END
        assert is_hashed(tp.contact_id)
        assert tp.occurred_at.microsecond % 1000 == 0
    assert {s.date for s in dataset.spend} == {start + dt.timedelta(days=i) for i in range(120)}
    ids = [e.event_id for events in dataset.by_kind().values() for e in events]  # type: ignore[attr-defined]
    assert len(ids) == len(set(ids))


def test_funnel_stages_in_order_and_narrowing(dataset: SyntheticDataset) -> None:
    stages: dict[str, list[tuple[dt.datetime, str]]] = defaultdict(list)
    for p in dataset.pipeline:
        stages[p.account_id].append((p.occurred_at, p.stage.value))
    for account, seq in stages.items():
        names = [s for _, s in sorted(seq)]
        funnel = [s for s in names if s in ORDER]
        assert funnel == ORDER[: len(funnel)], (account, names)
        if names[-1] in ("won", "lost"):
            assert funnel == ORDER
    counts = Counter(p.stage for p in dataset.pipeline)
    assert counts[PipelineStage.LEAD] > counts[PipelineStage.MQL] > counts[PipelineStage.SQL]
    assert counts[PipelineStage.SQL] > counts[PipelineStage.OPPORTUNITY] > counts[PipelineStage.WON]
    opportunities = [p for p in dataset.pipeline if p.stage is PipelineStage.OPPORTUNITY]
    assert all(p.amount and p.amount > 0 for p in opportunities)


def test_mrr_follows_event_types(dataset: SyntheticDataset) -> None:
    last: dict[str, Decimal] = {}
    for s in dataset.subscriptions:
        before = last.get(s.account_id, Decimal(0))
        t = s.event_type
        if t is SubscriptionEventType.SUBSCRIPTION_CANCELED:
            assert s.mrr == 0 and before > 0
        elif t is SubscriptionEventType.SUBSCRIPTION_UPGRADED:
            assert s.mrr > before
        elif t is SubscriptionEventType.SUBSCRIPTION_DOWNGRADED:
            assert 0 < s.mrr < before
        elif t is SubscriptionEventType.SUBSCRIPTION_REACTIVATED:
            assert before == 0 and s.mrr > 0
        elif t is SubscriptionEventType.TRIAL_STARTED:
            assert s.mrr == 0
        last[s.account_id] = s.mrr
    types = Counter(s.event_type for s in dataset.subscriptions)
    assert types[SubscriptionEventType.SUBSCRIPTION_STARTED] > 0
    assert types[SubscriptionEventType.SUBSCRIPTION_CANCELED] > 0
    # some customers already paid before the window, so starting MRR is not zero
    start = dt.datetime.combine(END - dt.timedelta(days=119), dt.time(), tzinfo=dt.UTC)
    assert any(s.occurred_at < start for s in dataset.subscriptions)


def test_channels_differ_in_cost_and_accounts_have_several_contacts(
    dataset: SyntheticDataset,
) -> None:
    spend: defaultdict[str, Decimal] = defaultdict(Decimal)
    clicks: Counter[str] = Counter()
    for s in dataset.spend:
        spend[s.channel.value] += s.amount
        clicks[s.channel.value] += s.clicks
    cpc = {c: spend[c] / clicks[c] for c in spend if clicks[c]}
    assert cpc["paid_social"] > cpc["display"]
    contacts = defaultdict(set)
    for tp in dataset.touchpoints:
        contacts[tp.account_id].add(tp.contact_id)
    assert max(len(c) for c in contacts.values()) >= 3
    budgets = {(b.month, b.channel.value) for b in dataset.budgets}
    assert ("2026-11", "paid_search") in budgets


@pytest.mark.parametrize("fmt", ["ndjson", "json", "csv"])
def test_write_files_round_trip(tmp_path: Path, fmt: str) -> None:
    data = generate_dataset(seed=3, days=10, accounts=30, end=END)
    paths = write_files(data, tmp_path, fmt=fmt)  # type: ignore[arg-type]
    assert set(paths) == {"touchpoints", "spend", "subscriptions", "pipeline", "budgets"}
    rows = list(read_rows(paths["touchpoints"]))
    assert len(rows) == len(data.touchpoints)
    assert rows[0]["event_id"] == data.touchpoints[0].event_id
    if fmt == "ndjson":
        first = json.loads(paths["spend"].read_text().splitlines()[0])
        assert first["amount"] == str(data.spend[0].amount)
