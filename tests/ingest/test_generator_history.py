"""The generator's sales-led history (``history_weeks``): two years of spend and deals for a
weekly marketing mix model, deterministic, coherent, and absent unless asked for."""

from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict

import pytest

from pulse_ingest.domain.generator import (
    CAMPAIGNS,
    HISTORY_RESPONSES,
    SyntheticDataset,
    generate_dataset,
    history_contributions,
)
from pulse_shared.events import Channel, PipelineStage

END = dt.date(2026, 11, 25)  # a Wednesday: the last week is partial
DAYS = 120
ACCOUNTS = 150
WEEKS = 104
FIRST_MONDAY = END - dt.timedelta(days=END.weekday()) - dt.timedelta(weeks=WEEKS)
WINDOW_START = END - dt.timedelta(days=DAYS - 1)


def _monday(day: dt.date) -> dt.date:
    return day - dt.timedelta(days=day.weekday())


@pytest.fixture(scope="module")
def plain() -> SyntheticDataset:
    return generate_dataset(seed=3, days=DAYS, accounts=ACCOUNTS, end=END)


@pytest.fixture(scope="module")
def with_history() -> SyntheticDataset:
    return generate_dataset(seed=3, days=DAYS, accounts=ACCOUNTS, end=END, history_weeks=WEEKS)


def _history_deals(data: SyntheticDataset) -> dict[str, list[tuple[dt.datetime, str, float]]]:
    deals: dict[str, list[tuple[dt.datetime, str, float]]] = defaultdict(list)
    for event in data.pipeline:
        if event.account_id.startswith("acct-h"):
            assert event.amount is not None
            deals[event.account_id].append((event.occurred_at, event.stage, float(event.amount)))
    return deals


def test_zero_history_weeks_is_the_dataset_without_it(plain: SyntheticDataset) -> None:
    explicit = generate_dataset(seed=3, days=DAYS, accounts=ACCOUNTS, end=END, history_weeks=0)
    assert explicit.counts() == plain.counts()
    assert explicit.by_kind() == plain.by_kind()
    assert not any(e.account_id.startswith("acct-h") for e in plain.pipeline)


def test_history_leaves_the_window_as_it_was(
    plain: SyntheticDataset, with_history: SyntheticDataset
) -> None:
    # Spend-alert and pacing inputs of the window: the same rows, ids included.
    window_spend = [s for s in with_history.spend if s.date >= WINDOW_START]
    assert window_spend == plain.spend
    assert with_history.touchpoints == plain.touchpoints
    assert with_history.subscriptions == plain.subscriptions
    window_pipeline = [e for e in with_history.pipeline if not e.account_id.startswith("acct-h")]
    assert window_pipeline == plain.pipeline
    # The window's budgets unchanged; earlier months added.
    months = {b.month for b in plain.budgets}
    assert [b for b in with_history.budgets if b.month in months] == plain.budgets
    assert min(b.month for b in with_history.budgets) == f"{FIRST_MONDAY:%Y-%m}"
    ids = [e.event_id for events in with_history.by_kind().values() for e in events]  # type: ignore[attr-defined]
    assert len(ids) == len(set(ids))


def test_history_is_deterministic_per_seed(with_history: SyntheticDataset) -> None:
    again = generate_dataset(seed=3, days=DAYS, accounts=ACCOUNTS, end=END, history_weeks=WEEKS)
    other = generate_dataset(seed=4, days=DAYS, accounts=ACCOUNTS, end=END, history_weeks=WEEKS)
    assert again.by_kind() == with_history.by_kind()
    assert [s.amount for s in other.spend[:50]] != [s.amount for s in with_history.spend[:50]]


def test_history_spend_spans_the_weeks_asked(with_history: SyntheticDataset) -> None:
    days = {s.date for s in with_history.spend}
    span = (END - FIRST_MONDAY).days + 1
    assert days == {FIRST_MONDAY + dt.timedelta(days=i) for i in range(span)}
    per_day = Counter(s.date for s in with_history.spend)
    assert set(per_day.values()) == {len(CAMPAIGNS)}
    # Before the window a channel spends at the window's level (flights move it, the mean
    # stays), so the history is the same business.
    by_channel: dict[tuple[Channel, bool], float] = defaultdict(float)
    for s in with_history.spend:
        by_channel[(s.channel, s.date >= WINDOW_START)] += float(s.amount)
    history_days = (WINDOW_START - FIRST_MONDAY).days
    for channel in HISTORY_RESPONSES:
        before = by_channel[(channel, False)] / history_days
        during = by_channel[(channel, True)] / DAYS
        assert 0.5 < before / during < 2.0, channel


def test_deals_per_week_and_pipeline_coherence(with_history: SyntheticDataset) -> None:
    deals = _history_deals(with_history)
    won_per_week: Counter[dt.date] = Counter()
    closed = Counter[str]()
    for events in deals.values():
        # Each deal: an opportunity with its amount, then one close with the same amount,
        # 2-10 weeks later, never after the last day.
        assert [stage for _, stage, _ in events] == [PipelineStage.OPPORTUNITY, events[1][1]]
        (opened, _, amount), (close, outcome, close_amount) = events
        assert outcome in (PipelineStage.WON, PipelineStage.LOST)
        assert amount == close_amount > 0
        assert dt.timedelta(days=14) <= close - opened <= dt.timedelta(days=70)
        assert FIRST_MONDAY <= close.date() <= END
        closed[outcome] += 1
        if outcome is PipelineStage.WON:
            won_per_week[_monday(close.date())] += 1
    full_weeks = [FIRST_MONDAY + dt.timedelta(weeks=w) for w in range(WEEKS)]
    counts = sorted(won_per_week[w] for w in full_weeks)
    assert all(counts), "a week without a won deal"
    median = counts[len(counts) // 2]
    assert 7 <= median <= 15, counts
    win_rate = closed[PipelineStage.WON] / (closed[PipelineStage.WON] + closed[PipelineStage.LOST])
    assert 0.3 < win_rate < 0.45


def test_weekly_won_revenue_follows_spend_with_the_known_roi(
    with_history: SyntheticDataset,
) -> None:
    weeks = WEEKS + 1
    spend = {c: [0.0] * weeks for c in HISTORY_RESPONSES}
    for s in with_history.spend:
        if s.channel in spend:
            spend[s.channel][(s.date - FIRST_MONDAY).days // 7] += float(s.amount)
    contributions = history_contributions(spend)
    for channel, truth in HISTORY_RESPONSES.items():
        assert sum(contributions[channel]) / sum(spend[channel]) == pytest.approx(truth.roi)
    won = [0.0] * weeks
    for e in with_history.pipeline:
        if e.stage is PipelineStage.WON and e.amount is not None:
            won[(e.occurred_at.date() - FIRST_MONDAY).days // 7] += float(e.amount)
    # Not lumpy: weekly won revenue within a narrow band around its mean (full weeks before
    # the window, where no window deal adds to it).
    before = [won[w] for w in range((WINDOW_START - FIRST_MONDAY).days // 7)]
    mean = sum(before) / len(before)
    assert all(0.6 * mean < v < 1.4 * mean for v in before)
    # Marketing moves it: weeks with more search spend (the strongest channel) win more.
    search = spend[Channel.PAID_SEARCH][: len(before)]
    order = sorted(range(len(before)), key=lambda w: search[w])
    low, high = order[: len(order) // 4], order[-(len(order) // 4):]
    assert sum(before[w] for w in high) > sum(before[w] for w in low)


def test_negative_history_is_refused() -> None:
    with pytest.raises(ValueError, match="history_weeks"):
        generate_dataset(seed=1, days=10, accounts=1, end=END, history_weeks=-1)
