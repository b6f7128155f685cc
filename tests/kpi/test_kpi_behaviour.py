"""Component behaviour on the in-memory bus + embedded store: redelivery, late events,
rate limiting, daily closes, crash-safe breakdowns, and the served AsyncAPI document."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from auth_support import bearer
from faststream.kafka import TestKafkaBroker

from pulse_kpi.main import KpiComponent, build
from pulse_kpi.settings import KpiSettings
from pulse_kpi.storage import KpiStorage
from pulse_shared.attribution_models import DEFAULT_MODEL
from pulse_shared.bus import Bus, make_broker
from pulse_shared.events import (
    AttributionCredit,
    Channel,
    ConversionMilestone,
    DeadLetter,
    KpiSnapshot,
    Spend,
    Subscription,
    SubscriptionEventType,
)
from pulse_shared.settings import common_settings
from pulse_shared.store import Store
from pulse_shared.topics import CREDITS, KPI_SNAPSHOTS, SPEND, SUBSCRIPTIONS


@asynccontextmanager
async def running(
    store: Store, year: int, stop: bool = True, dead: list[DeadLetter] | None = None,
    **overrides: Any,
) -> AsyncIterator[tuple[KpiComponent, Bus, list[KpiSnapshot]]]:
    broker = make_broker(None)
    bus = Bus(broker, "kpi", in_memory=True)
    options: dict[str, Any] = {"snapshot_min_interval_s": 0,
                               "snapshot_dimension_min_interval_s": 0,
                               "close_enabled": False, "breakdown_interval_s": 3600,
                               "campaign_breakdown_delay_s": 3600,
                               "snapshot_horizon_days": 0}
    options.update(overrides)
    component = build(store, bus, KpiSettings(**options))
    component.clock = lambda: dt.datetime(year, 12, 31, 12, tzinfo=dt.UTC)
    # The session store holds other tests' later subscriptions: MRR (a running total) of
    # this year's accounts is not carried through their years (years of days to compute,
    # and rows written into days other tests check).
    component.mrr_cap = dt.date(year, 12, 31)
    broker.include_router(component.router)
    received: list[KpiSnapshot] = []

    @broker.subscriber(KPI_SNAPSHOTS.name)
    async def sink(snapshot: KpiSnapshot) -> None:
        received.append(snapshot)

    if dead is not None:

        @broker.subscriber(SPEND.dead_letter)
        async def dlq(letter: DeadLetter) -> None:
            dead.append(letter)

    async with TestKafkaBroker(broker):
        await component.start()
        yield component, bus, received
        if stop:
            await component.stop()
        else:  # a crash: background tasks die, nothing is flushed or recomputed
            for task in component._tasks:
                task.cancel()


def spend(i: int, day: dt.date, amount: int, campaign: str = "") -> Spend:
    return Spend(event_id=f"{day}-{i}", date=day, channel=Channel.EMAIL, campaign_id=campaign,
                 amount=Decimal(amount))


def stored(store: Store, year: int) -> dict[str, Any]:
    rows = KpiStorage(store).kpi_values(start=dt.date(year, 1, 1), end=dt.date(year + 1, 1, 1))
    return {
        f"{r['kpi']}|{r['grain']}|{r['dimension']}|{r['dimension_value']}|{r['period']}":
            (r["value"], r["computed_at"])
        for r in rows
    }


async def test_redelivery_leaves_kpis_and_snapshots_unchanged(embedded_store: Store) -> None:
    y = 2012
    events = [spend(i, dt.date(y, 2, 1 + i % 2), 10 * (i + 1), f"rd-{i % 3}") for i in range(6)]
    async with running(embedded_store, y) as (component, bus, received):
        await bus.publish(SPEND, events)
        await component.refresh_breakdowns()
        await component.flush(force=True)  # breakdown snapshots are paced by the flusher
        before, published = stored(embedded_store, y), len(received)
        await bus.publish(SPEND, events)  # the same batch again (e.g. after a crash)
        await bus.publish(SPEND, list(reversed(events[:3])))
        await component.refresh_breakdowns()
        await component.flush(force=True)
        assert stored(embedded_store, y) == before  # values and computed_at untouched
        assert len(received) == published
    assert before[f"spend|day|all||{y}-02-01"][0] == 10 + 30 + 50
    assert before[f"spend|month|campaign|rd-0|{y}-02"][0] == 10 + 40


async def test_late_subscription_event_reclassifies_movements(embedded_store: Store) -> None:
    y = 2013
    t = SubscriptionEventType

    def sub(eid: str, day: int, mrr: int, kind: SubscriptionEventType) -> Subscription:
        return Subscription(event_id=eid, occurred_at=dt.datetime(y, 3, day, tzinfo=dt.UTC),
                            account_id="late-A", event_type=kind, mrr=Decimal(mrr))

    async with running(embedded_store, y) as (_, bus, _received):
        await bus.publish(SUBSCRIPTIONS, [sub("late-2", 20, 200, t.SUBSCRIPTION_UPGRADED)])
        first = stored(embedded_store, y)
        assert first[f"mrr_new|day|all||{y}-03-20"][0] == 200  # looked new on its own
        await bus.publish(SUBSCRIPTIONS, [sub("late-1", 10, 100, t.SUBSCRIPTION_STARTED)])
    kpis = {k: v for k, (v, _) in stored(embedded_store, y).items()}
    assert kpis[f"mrr_new|day|all||{y}-03-10"] == 100
    assert kpis[f"mrr_new|day|all||{y}-03-20"] == 0
    assert kpis[f"mrr_expansion|day|all||{y}-03-20"] == 100
    assert kpis[f"mrr_new|month|all||{y}-03"] == 100
    assert kpis[f"mrr_expansion|month|all||{y}-03"] == 100


async def test_rate_limit_defers_then_publishes_latest(embedded_store: Store) -> None:
    y = 2014
    day = dt.date(y, 4, 7)
    key = f"spend|day|all||{day}"
    async with running(embedded_store, y, snapshot_min_interval_s=3600) as (c, bus, received):
        await bus.publish(SPEND, [spend(1, day, 5)])
        await bus.publish(SPEND, [spend(2, day, 7)])
        await bus.publish(SPEND, [spend(3, day, 11)])
        values = [s.value for s in received if s.key == key]
        assert values == [5.0]  # the later changes wait for the key's interval
        assert c.throttle.pending[key].value == 23.0  # only the latest value waits
        assert await c.flush() == 0  # not due yet
    # stop() publishes what was still waiting: the latest value, once.
    assert [s.value for s in received if s.key == key] == [5.0, 23.0]
    assert stored(embedded_store, y)[key][0] == 23.0  # kpi_values is never throttled


async def test_daily_close_publishes_final_snapshots(embedded_store: Store) -> None:
    y = 2015
    last = dt.date(y, 3, 31)  # closes that day, March and Q1 (a Tuesday: not a week end)
    async with running(embedded_store, y) as (c, bus, received):
        await bus.publish(SPEND, [spend(1, last, 40, "cl-1"), spend(2, dt.date(y, 3, 2), 2)])
        received.clear()
        finals = await c.close_day(last)
    assert finals and all(s.final for s in finals)
    by_key = {s.key: s.value for s in finals}
    assert by_key[f"spend|day|all||{last}"] == 40
    assert by_key[f"spend|month|all||{y}-03"] == 42
    assert by_key[f"spend|quarter|all||{y}-Q1"] == 42
    assert by_key[f"spend|day|campaign|cl-1|{last}"] == 40
    assert f"mrr|day|all||{last}" in by_key  # stock KPIs brought up to the closed day
    assert not any(s.grain == "week" for s in finals)
    assert {s.period for s in finals} == {str(last), f"{y}-03", f"{y}-Q1"}


async def test_breakdowns_survive_a_crash(embedded_store: Store) -> None:
    y = 2005
    day = dt.date(y, 6, 1)
    async with running(embedded_store, y, stop=False) as (_, bus, _received):
        await bus.publish(SPEND, [spend(1, day, 9, "crash-c")])  # totals done, then "crash"
    assert f"spend|day|campaign|crash-c|{day}" not in stored(embedded_store, y)
    async with running(embedded_store, y) as (restarted, _, _received):
        assert restarted._dirty_dims.flow_days >= {day}  # replayed from kpi_pending
        await restarted.refresh_breakdowns()
    assert stored(embedded_store, y)[f"spend|day|campaign|crash-c|{day}"][0] == 9


async def test_app_serves_asyncapi_and_health(
    embedded_data_dir: Path, embedded_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    import httpx

    from pulse_kpi.main import create_app

    monkeypatch.setenv("PULSE_DATA_DIR", str(embedded_data_dir))
    monkeypatch.delenv("PULSE_CLICKHOUSE_URL", raising=False)
    monkeypatch.delenv("PULSE_KAFKA_BOOTSTRAP", raising=False)
    common_settings.cache_clear()
    try:
        app = create_app()
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://kpi") as client:
            anonymous = await client.get("/asyncapi")
            doc = await client.get("/asyncapi", headers=bearer(embedded_store, "platform"))
            metrics = await client.get("/metrics")
    finally:
        common_settings.cache_clear()
    assert anonymous.status_code == 401  # API documents need a signed-in user
    assert doc.status_code == 200
    assert "kpi.snapshots.v1" in doc.text
    assert "pulse_kpi_recompute_seconds" in metrics.text


async def test_superseded_credit_version_moves_revenue_between_channels(
    embedded_store: Store,
) -> None:
    y = 2003
    at = dt.datetime(y, 5, 5, 12, tzinfo=dt.UTC)

    def credit(version: int, channel: Channel, revenue: int) -> AttributionCredit:
        return AttributionCredit(
            conversion_id="sv-c", milestone=ConversionMilestone.WON, model=DEFAULT_MODEL,
            account_id="sv-a", touchpoint_event_id=f"sv-t{version}", channel=channel,
            touched_at=at, converted_at=at, credit=1.0, credited_revenue=Decimal(revenue),
            version=version,
        )

    async with running(embedded_store, y) as (component, bus, _received):
        for c in (credit(1, Channel.EMAIL, 100), credit(2, Channel.DISPLAY, 300)):
            row = c.model_dump()
            embedded_store.insert("attribution_credits", [row], list(row))
            await bus.publish(CREDITS, [c])
            await component.refresh_breakdowns()
    kpis = {k: v for k, (v, _) in stored(embedded_store, y).items()}
    assert kpis[f"attributed_revenue|day|all||{y}-05-05"] == 300
    assert kpis[f"attributed_revenue|day|channel|display|{y}-05-05"] == 300
    assert kpis[f"attributed_revenue|month|channel|email|{y}-05"] == 0  # not stale 100


async def test_invalid_records_are_dead_lettered_and_the_rest_counted(
    embedded_store: Store,
) -> None:
    y = 2001
    day = dt.date(y, 8, 8)
    dead: list[DeadLetter] = []
    async with running(embedded_store, y, dead=dead) as (_, bus, _received):
        good = spend(1, day, 12)
        await bus.broker.publish_batch(
            good.to_json(), b'{"event_id": "bad", "amount": -1}', b"not json",
            topic=SPEND.name,
        )
    assert stored(embedded_store, y)[f"spend|day|all||{day}"][0] == 12
    assert len(dead) == 2
    assert all(letter.consumer == "kpi" and letter.source_topic == SPEND.name for letter in dead)
    assert {letter.payload for letter in dead} == {'{"event_id": "bad", "amount": -1}', "not json"}
