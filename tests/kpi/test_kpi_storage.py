"""KpiStorage against both backends: exact (deduplicated, latest-version) facts."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest

from pulse_kpi.domain.facts import CreditRow, SpendRow, StageCount
from pulse_kpi.domain.mrr import MovementKind, movements
from pulse_kpi.storage import (
    MOVEMENT_COLUMNS,
    PIPELINE_COLUMNS,
    SPEND_COLUMNS,
    SUBSCRIPTION_COLUMNS,
    KpiStorage,
    movement_rows,
)
from pulse_shared.store import Store

Y = 2004
D = dt.date(Y, 7, 1)
T = dt.datetime(Y, 7, 1, 10, tzinfo=dt.UTC)


def credit(conv: str, version: int, channel: str, revenue: int) -> dict[str, Any]:
    return {"conversion_id": conv, "milestone": "won", "model": "last_touch",
            "version": version, "account_id": "st-a", "touchpoint_event_id": f"t{version}",
            "channel": channel, "campaign_id": "", "touched_at": T, "converted_at": T,
            "credit": 1.0, "credited_revenue": Decimal(revenue), "currency": "USD"}


class TestKpiStorage:
    """One contract, run on the embedded store and the real server."""

    @pytest.fixture
    def store(self, any_store: Store) -> Store:
        return any_store

    def test_facts_are_exact(self, store: Store) -> None:
        spend = [{"event_id": f"st-s{i}", "date": D, "channel": "email", "campaign_id": "st",
                  "amount": Decimal("12.5"), "currency": "USD", "impressions": 10,
                  "clicks": 1} for i in range(3)]
        store.insert("spend", spend + spend[:1], SPEND_COLUMNS)  # a redelivered row
        pipe = [{"event_id": f"st-p{i}", "occurred_at": T, "account_id": f"st-a{i}",
                 "stage": "lead", "amount": None, "currency": "USD"} for i in range(2)]
        store.insert("pipeline_events", pipe + pipe, PIPELINE_COLUMNS)
        # Version 2 of the conversion's credits supersedes version 1.
        rows = [credit("st-c", 1, "email", 100), credit("st-c", 2, "display", 300)]
        store.insert("attribution_credits", rows, list(rows[0]))
        subs = [{"event_id": "st-m1", "occurred_at": T, "account_id": "st-a",
                 "event_type": "subscription_started", "mrr": Decimal(70),
                 "currency": "USD", "plan": ""}]
        store.insert("subscriptions", subs + subs, SUBSCRIPTION_COLUMNS)
        storage = KpiStorage(store)
        history = storage.subscription_history(["st-a", "nobody"])
        assert [(e.event_id, e.mrr) for e in history] == [("st-m1", Decimal(70))]
        store.insert("kpi_mrr_movements",
                     movement_rows(movements(history), dt.datetime.now(dt.UTC)),
                     MOVEMENT_COLUMNS)
        facts = storage.load_facts(D, D + dt.timedelta(days=1))
        assert [s for s in facts.spend if s.campaign_id == "st"] == [
            SpendRow(D, "email", "st", Decimal("37.5"), 30, 3)]
        assert [s for s in facts.stages if s.stage == "lead"] == [StageCount(D, "lead", 2)]
        assert [c for c in facts.credits if c.day == D] == [
            CreditRow(D, "last_touch", "won", "display", "", 1.0, Decimal(300))]
        assert [(m.day, m.new, m.new_logos, m.paying_delta) for m in facts.mrr_days] == [
            (D, Decimal(70), 1, 1)]
        assert {a.account_id for a in facts.funnel} == {"st-a0", "st-a1"}
        assert storage.account_stage_days(["st-a0"]) == {D}
        assert movements(history)[0].kind == MovementKind.NEW
