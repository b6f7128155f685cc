"""pulse_mmm.storage on both backends: the dataset a fit reads (exact, hand-checked sums
per ISO week and per day, gaps as 0, FINAL dedup), attribution ROAS, versions, and the
round trip of a run's rows.

Data live in 2016 (no other test writes that year); run ids are unique per test."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from typing import Any

import pytest
from mmm_runs_support import published_run, run_row

from pulse_mmm.domain.model import MmmRunResult, ModelGrain, RunStatus
from pulse_mmm.storage import (
    MmmStorage,
    UnknownTarget,
    complete_window,
    parse_target,
    period_starts,
)
from pulse_shared.store import Store

SPEND_COLUMNS = ["event_id", "date", "channel", "campaign_id", "amount", "currency",
                 "impressions", "clicks"]
PIPELINE_COLUMNS = ["event_id", "occurred_at", "account_id", "stage", "amount", "currency"]
MOVEMENT_COLUMNS = ["event_id", "account_id", "occurred_at", "kind", "mrr_before", "mrr_after",
                    "paying_delta", "computed_at"]
KPI_COLUMNS = ["kpi", "grain", "period", "period_start", "dimension", "dimension_value",
               "value", "unit", "computed_at"]
CREDIT_COLUMNS = ["conversion_id", "milestone", "model", "version", "account_id",
                  "touchpoint_event_id", "channel", "campaign_id", "touched_at",
                  "converted_at", "credit", "credited_revenue", "currency"]

# Three ISO weeks: Mon 2016-01-04, 01-11, 01-18 (window 01-04 .. Sun 01-24).
W1, W2, W3 = dt.date(2016, 1, 4), dt.date(2016, 1, 11), dt.date(2016, 1, 18)
START, END = W1, dt.date(2016, 1, 24)


def day(d: int) -> dt.date:
    return dt.date(2016, 1, d)


def at(d: int) -> dt.datetime:
    return dt.datetime(2016, 1, d, 12, tzinfo=dt.UTC)


def spend(event_id: str, d: dt.date, channel: str, amount: str) -> dict[str, Any]:
    return {"event_id": event_id, "date": d, "channel": channel, "campaign_id": "c",
            "amount": Decimal(amount), "currency": "USD", "impressions": 0, "clicks": 0}


def pipeline(event_id: str, d: int, stage: str, amount: str | None) -> dict[str, Any]:
    return {"event_id": event_id, "occurred_at": at(d), "account_id": f"mmm-{event_id}",
            "stage": stage, "amount": None if amount is None else Decimal(amount),
            "currency": "USD"}


def credit(model: str, version: int, revenue: str) -> dict[str, Any]:
    return {"conversion_id": "mmm-conv-1", "milestone": "won", "model": model,
            "version": version, "account_id": "mmm-a1", "touchpoint_event_id": f"t{version}",
            "channel": "paid_search", "campaign_id": "c", "touched_at": at(5),
            "converted_at": at(6), "credit": 1.0, "credited_revenue": Decimal(revenue),
            "currency": "USD"}


_loaded: set[str] = set()


@pytest.fixture
def store(any_store: Store) -> Store:
    """The backend with this module's 2016 rows (inserted once per backend)."""
    if any_store.backend in _loaded:
        return any_store
    computed = dt.datetime(2016, 2, 1, tzinfo=dt.UTC)
    any_store.insert("spend", [
        spend("mmm-s1", day(4), "paid_search", "100"),
        spend("mmm-s2", day(5), "paid_search", "50"),
        spend("mmm-s3", day(12), "paid_search", "200"),
        spend("mmm-s4", day(19), "paid_social", "30.5"),
        spend("mmm-s5", day(25), "paid_search", "999"),  # after the window
        spend("mmm-s6", day(3), "paid_social", "999"),  # before it
    ], SPEND_COLUMNS)
    # The same event again (a redelivery): spend FINAL counts it once.
    any_store.insert("spend", [spend("mmm-s4", day(19), "paid_social", "30.5")], SPEND_COLUMNS)
    any_store.insert("pipeline_events", [
        pipeline("p1", 6, "won", "1000"),
        pipeline("p2", 7, "won", "500"),
        pipeline("p3", 13, "opportunity", "7777"),  # not won
        pipeline("p4", 14, "won", None),  # won without an amount
        pipeline("p5", 20, "won", "250"),
        pipeline("p6", 25, "won", "4000"),  # after the window
    ], PIPELINE_COLUMNS)
    any_store.insert("kpi_mrr_movements", [
        {"event_id": "mmm-m1", "account_id": "mmm-a1", "occurred_at": at(11), "kind": "new",
         "mrr_before": Decimal(0), "mrr_after": Decimal(100), "paying_delta": 1,
         "computed_at": computed},
        {"event_id": "mmm-m2", "account_id": "mmm-a1", "occurred_at": at(12),
         "kind": "expansion", "mrr_before": Decimal(100), "mrr_after": Decimal(150),
         "paying_delta": 0, "computed_at": computed},
    ], MOVEMENT_COLUMNS)

    def kpi(grain: str, d: dt.date, dimension: str, value: float) -> dict[str, Any]:
        return {"kpi": "leads", "grain": grain, "period": str(d), "period_start": d,
                "dimension": dimension, "dimension_value": "" if dimension == "all" else "x",
                "value": value, "unit": "count", "computed_at": computed}

    any_store.insert("kpi_values", [
        kpi("day", day(4), "all", 3.0), kpi("day", day(5), "all", 2.0),
        kpi("day", day(19), "all", 4.0),
        kpi("week", W1, "all", 100.0),  # another grain
        kpi("day", day(4), "channel", 50.0),  # a breakdown
    ], KPI_COLUMNS)
    any_store.insert("attribution_credits", [
        credit("position_based", 1, "300"),
        credit("position_based", 2, "450"),  # re-credited: only the latest version counts
        credit("last_touch", 1, "9999"),  # another model
    ], CREDIT_COLUMNS)
    _loaded.add(any_store.backend)
    return any_store


class TestMmmStorage:
    def test_weekly_won_revenue_dataset(self, store: Store) -> None:
        data = MmmStorage(store).dataset("won_revenue", "week", START, END)
        assert data.grain is ModelGrain.WEEK and data.target == "won_revenue"
        assert data.period_starts == (W1, W2, W3)
        assert data.channels == ("paid_search", "paid_social")
        assert data.spend == {"paid_search": (150.0, 200.0, 0.0),
                              "paid_social": (0.0, 0.0, 30.5)}
        assert data.outcome == (1500.0, 0.0, 250.0)

    def test_daily_grain_fills_gaps_with_zero(self, store: Store) -> None:
        data = MmmStorage(store).dataset("won_revenue", ModelGrain.DAY, day(4), day(7))
        assert data.period_starts == (day(4), day(5), day(6), day(7))
        assert data.channels == ("paid_search",)
        assert data.spend == {"paid_search": (100.0, 50.0, 0.0, 0.0)}
        assert data.outcome == (0.0, 0.0, 1000.0, 500.0)

    def test_new_mrr_and_additive_kpi_targets(self, store: Store) -> None:
        storage = MmmStorage(store)
        assert storage.dataset("new_mrr", "week", START, END).outcome == (0.0, 100.0, 0.0)
        leads = storage.dataset("kpi:leads", "week", START, END)
        assert leads.target == "kpi:leads" and leads.outcome == (5.0, 0.0, 4.0)

    def test_attribution_roas_is_latest_default_model_revenue_over_spend(
        self, store: Store
    ) -> None:
        storage = MmmStorage(store)
        # spend from the first credited touch (day 5) on: paid_search 50 + 200
        assert storage.attribution_roas("won_revenue", START, END) == {
            "paid_search": 450.0 / 250.0, "paid_social": 0.0}
        # no credited conversion in the window: attribution has no evidence, n/a not 0
        assert storage.attribution_roas("new_mrr", START, END) == {
            "paid_search": None, "paid_social": None}
        assert storage.attribution_roas("kpi:leads", START, END) == {}

    def test_spend_span_covers_the_stored_days(self, store: Store) -> None:
        span = MmmStorage(store).spend_span()
        assert span is not None and span[0] <= day(3) and span[1] >= day(25)

    def test_run_round_trip_and_latest_published(self, store: Store) -> None:
        storage = MmmStorage(store)
        target = f"kpi:mqls-{uuid.uuid4().hex[:6]}"  # a target no other test writes
        done = dt.datetime(2016, 4, 1, 9, 30, 15, 250000, tzinfo=dt.UTC)
        first = published_run(f"r1-{uuid.uuid4().hex[:8]}", target, done, version=1)
        rejected = run_row(f"r2-{uuid.uuid4().hex[:8]}", target, version=2,
                           status=RunStatus.REJECTED, reason="max R-hat 1.31 > 1.05",
                           finished_at=done + dt.timedelta(days=7))
        assert storage.next_version(target, "week") == 1
        storage.write_result(first)
        storage.write_result(MmmRunResult(rejected))
        assert storage.next_version(target, "week") == 3
        assert storage.next_version(target, "day") == 1

        latest = storage.latest_published_run(target, "week")
        assert latest == first.run  # the later rejected run is not what readers use
        assert [r.run_id for r in storage.runs(target)] == [rejected.run_id, first.run.run_id]
        assert storage.run(rejected.run_id) == rejected
        rid = first.run.run_id
        assert storage.channel_results(rid) == list(first.channels)
        assert storage.contributions(rid) == sorted(
            first.contributions, key=lambda r: (r.channel, r.period_start))
        assert storage.curves(rid) == list(first.curves)
        assert storage.draws(rid) == list(first.draws)
        assert storage.allocations(rid) == list(first.allocations)
        assert storage.channel_results(rejected.run_id) == []

    def test_recent_spend_is_the_mean_of_the_last_periods(self, store: Store) -> None:
        storage = MmmStorage(store)
        result = published_run(f"r3-{uuid.uuid4().hex[:8]}", "won_revenue",
                               dt.datetime(2016, 4, 2, tzinfo=dt.UTC))
        storage.write_result(result)
        # paid_search spends 10 × i in period i (i = 0..9): the last 8 are 20..90.
        assert storage.recent_spend(result.run.run_id, 8) == {
            "paid_search": 55.0, "paid_social": 50.0}
        assert storage.recent_spend(result.run.run_id, 2) == {
            "paid_search": 85.0, "paid_social": 50.0}


def test_targets_are_checked_with_one_line_reasons() -> None:
    assert parse_target(" won_revenue ") == "won_revenue"
    assert parse_target("kpi:attributed_revenue__linear") == "kpi:attributed_revenue__linear"
    with pytest.raises(UnknownTarget, match="^KPI 'mrr' is not additive"):
        parse_target("kpi:mrr")
    with pytest.raises(UnknownTarget, match="^unknown KPI 'nope'"):
        parse_target("kpi:nope")
    with pytest.raises(UnknownTarget, match="^unknown target 'revenue'"):
        parse_target("revenue")
    for reason in ("kpi:roas", "kpi:cac", "kpi:velocity_lead_to_won_days"):
        with pytest.raises(UnknownTarget) as caught:
            parse_target(reason)
        assert "\n" not in str(caught.value)


def test_windows_are_whole_iso_weeks() -> None:
    assert period_starts("week", day(6), day(19)) == [W1, W2, W3]
    assert period_starts("day", day(30), dt.date(2016, 2, 1)) == [
        day(30), day(31), dt.date(2016, 2, 1)]
    # Spend from Wed 01-06 to Wed 01-27: complete weeks are those of 01-11 and 01-18.
    assert complete_window("week", day(6), day(27), 52) == (W2, END)
    assert complete_window("week", day(6), day(27), 1) == (W3, END)
    assert complete_window("week", day(6), day(10), 4) is None
    assert complete_window("day", day(6), day(27), 3) == (day(25), day(27))
