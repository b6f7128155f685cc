"""Walking skeleton: events in through the in-memory bus → kpi_values rows + snapshots."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest
from faststream.kafka import TestKafkaBroker

from pulse_kpi.main import build
from pulse_kpi.settings import KpiSettings
from pulse_kpi.storage import KpiStorage
from pulse_shared.attribution_models import DEFAULT_MODEL
from pulse_shared.bus import Bus, make_broker
from pulse_shared.events import (
    AttributionCredit,
    Budget,
    Channel,
    ConversionMilestone,
    KpiSnapshot,
    PipelineEvent,
    PipelineStage,
    Spend,
    Subscription,
    SubscriptionEventType,
)
from pulse_shared.store import Store
from pulse_shared.topics import BUDGETS, CREDITS, KPI_SNAPSHOTS, PIPELINE, SPEND, SUBSCRIPTIONS

Y = 2007  # a year no other test uses: the embedded store is shared by the session


def at(day: int, hour: int = 12, month: int = 3) -> dt.datetime:
    return dt.datetime(Y, month, day, hour, tzinfo=dt.UTC)


def d(day: int, month: int = 3) -> dt.date:
    return dt.date(Y, month, day)


SPENDS = [
    Spend(event_id="kpi-s1", date=d(2), channel=Channel.PAID_SEARCH, campaign_id="kpi-A",
          amount=Decimal("100.00"), impressions=1000, clicks=50),
    Spend(event_id="kpi-s2", date=d(2), channel=Channel.PAID_SEARCH, campaign_id="kpi-B",
          amount=Decimal("50.00"), impressions=500, clicks=10),
    Spend(event_id="kpi-s3", date=d(3), channel=Channel.EMAIL, amount=Decimal("30.00")),
]
PIPE = [
    PipelineEvent(event_id="kpi-p1", occurred_at=at(2), account_id="kpi-acc1",
                  stage=PipelineStage.LEAD),
    PipelineEvent(event_id="kpi-p2", occurred_at=at(2), account_id="kpi-acc2",
                  stage=PipelineStage.LEAD),
    PipelineEvent(event_id="kpi-p3", occurred_at=at(3), account_id="kpi-acc1",
                  stage=PipelineStage.MQL),
]
T = SubscriptionEventType
SUBS = [
    Subscription(event_id="kpi-m1", occurred_at=at(2), account_id="kpi-acc1",
                 event_type=T.SUBSCRIPTION_STARTED, mrr=Decimal(100)),
    Subscription(event_id="kpi-m2", occurred_at=at(2, 9), account_id="kpi-acc2",
                 event_type=T.TRIAL_STARTED, mrr=Decimal(0)),
    Subscription(event_id="kpi-m3", occurred_at=at(3), account_id="kpi-acc2",
                 event_type=T.SUBSCRIPTION_STARTED, mrr=Decimal(50)),
    Subscription(event_id="kpi-m4", occurred_at=at(3, 15), account_id="kpi-acc1",
                 event_type=T.SUBSCRIPTION_UPGRADED, mrr=Decimal(150)),
]
CREDIT = AttributionCredit(
    conversion_id="kpi-c1", milestone=ConversionMilestone.WON, model=DEFAULT_MODEL,
    account_id="kpi-acc1", touchpoint_event_id="kpi-t1", channel=Channel.PAID_SEARCH,
    campaign_id="kpi-A", touched_at=at(1), converted_at=at(3), credit=1.0,
    credited_revenue=Decimal(600), version=1,
)
BUDGET = Budget(event_id="kpi-b1", month=f"{Y}-03", channel=Channel.PAID_SEARCH,
                amount=Decimal(3100))


def credit_row(c: AttributionCredit) -> dict[str, Any]:
    return c.model_dump(exclude={"kind"})


def mrr_before(store: Store, day: dt.date) -> float:
    """MRR of every account before ``day`` (other tests may share the embedded store)."""
    value = store.query_value(
        "SELECT sum(mrr_after - mrr_before) FROM kpi_mrr_movements FINAL "
        "WHERE toDate(occurred_at) < {d:Date}", {"d": day},
    )
    return float(value or 0)


def values(store: Store, dimension: str = "all", value: str = "") -> dict[tuple[str, str], Any]:
    rows = KpiStorage(store).kpi_values(start=d(1), end=d(1, 4), dimension=dimension)
    return {(r["kpi"], r["period"]): r["value"] for r in rows if r["dimension_value"] == value}


async def test_events_in_kpi_rows_and_snapshots_out(embedded_store: Store) -> None:
    broker = make_broker(None)
    bus = Bus(broker, "kpi", in_memory=True)
    settings = KpiSettings(snapshot_min_interval_s=0, close_enabled=False)
    component = build(embedded_store, bus, settings)
    component.clock = lambda: dt.datetime(Y, 3, 31, 12, tzinfo=dt.UTC)
    # Other tests' later subscriptions share the store: MRR is not carried into their years.
    component.mrr_cap = dt.date(Y, 12, 31)
    broker.include_router(component.router)
    received: list[KpiSnapshot] = []

    @broker.subscriber(KPI_SNAPSHOTS.name)
    async def sink(snapshot: KpiSnapshot) -> None:
        received.append(snapshot)

    embedded_store.insert("attribution_credits", [credit_row(CREDIT)],
                          list(credit_row(CREDIT)))
    base = mrr_before(embedded_store, d(2))
    async with TestKafkaBroker(broker):
        await component.start()
        await bus.publish(SPEND, SPENDS)
        await bus.publish(PIPELINE, PIPE)
        await bus.publish(SUBSCRIPTIONS, SUBS)
        await bus.publish(CREDITS, [CREDIT])
        await bus.publish(BUDGETS, [BUDGET])
        await component.stop()

    kpis = values(embedded_store)
    day2, day3 = f"{Y}-03-02", f"{Y}-03-03"
    assert kpis[("spend", day2)] == 150.0
    assert kpis[("spend", day3)] == 30.0
    assert kpis[("impressions", day2)] == 1500.0
    assert kpis[("ctr", day2)] == pytest.approx(60 / 1500)
    assert kpis[("leads", day2)] == 2.0
    assert kpis[("leads", day3)] == 0.0
    assert kpis[("mqls", day3)] == 1.0
    assert kpis[("cpl", day2)] == 75.0
    assert kpis[("cpl", day3)] is None  # 30 spend, no leads: division by zero → null
    assert kpis[("mrr_new", day2)] == 100.0
    assert kpis[("mrr_new", day3)] == 50.0
    assert kpis[("mrr_expansion", day3)] == 50.0
    assert kpis[("mrr", day2)] == base + 100.0
    assert kpis[("mrr", day3)] == base + 200.0  # acc1 150 + acc2 50
    assert kpis[("attributed_revenue", day3)] == 600.0
    assert kpis[(f"attributed_revenue__{DEFAULT_MODEL}", day3)] == 600.0
    assert kpis[("new_customers", day2)] == 1.0  # billing: acc1 starts paying
    assert kpis[("new_customers", day3)] == 1.0  # acc2 after its trial
    assert kpis[("cac", day3)] == 30.0  # 30 spend / 1 new customer
    assert kpis[("roas", day3)] == 20.0
    assert kpis[("roas", day2)] == 0.0
    month = f"{Y}-03"
    assert kpis[("spend", month)] == 180.0
    assert kpis[("mrr_new", month)] == 150.0
    assert kpis[("roas", month)] == pytest.approx(600 / 180)
    assert kpis[("budget", month)] == 3100.0
    assert kpis[("pacing", month)] == pytest.approx(180 / (3100 * 31 / 31))

    channel = values(embedded_store, "channel", "paid_search")
    assert channel[("spend", day2)] == 150.0
    assert channel[("attributed_revenue", day3)] == 600.0
    assert channel[("roas", day3)] is None  # revenue credited on a day without spend
    campaign = values(embedded_store, "campaign", "kpi-A")
    assert campaign[("spend", day2)] == 100.0
    assert campaign[("ctr", day2)] == 0.05

    # Every stored value was published, and the last snapshot of each key equals it.
    latest = {s.key: s.value for s in received}
    stored = KpiStorage(embedded_store).kpi_values(start=d(1), end=d(1, 4))
    assert stored
    for row in stored:
        key = f"{row['kpi']}|{row['grain']}|{row['dimension']}|{row['dimension_value']}|{row['period']}"
        assert latest[key] == row["value"], key
    assert all(not s.final for s in received)
