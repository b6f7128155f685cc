"""End to end on the real Kafka broker and ClickHouse server (plus the subscriber example).

Events in on the real topics → the KPI component (group ``pulse-kpi``) → ``kpi_values`` rows
on the server and snapshots on ``kpi.snapshots.v1``, read back by the downstream example.
Values are checked against numbers computed directly from the events; re-sending the same
events must leave every KPI (and ``computed_at``) unchanged and publish nothing new.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import importlib.util
import sys
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from decimal import Decimal
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from prometheus_client import REGISTRY

from pulse_kpi.main import KpiComponent, build
from pulse_kpi.settings import KpiSettings
from pulse_kpi.storage import KpiStorage
from pulse_shared.bus import Bus, make_broker
from pulse_shared.events import (
    Channel,
    KpiSnapshot,
    PipelineEvent,
    PipelineStage,
    Spend,
    Subscription,
    SubscriptionEventType,
)
from pulse_shared.store import Store
from pulse_shared.topics import KPI_SNAPSHOTS, PIPELINE, SPEND, SUBSCRIPTIONS, all_topic_names

Y = 2009
ROOT = Path(__file__).resolve().parents[2]


def load_example() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "kpi_subscriber_example", ROOT / "examples" / "kpi_subscriber.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


async def poll(check: Callable[[], Awaitable[bool]], within: float = 60.0) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(0.1)
    raise AssertionError("condition not met in time")


def consumed(topic: str) -> float:
    return REGISTRY.get_sample_value(
        "pulse_messages_consumed_total", {"service": "kpi", "topic": topic}
    ) or 0.0


def make_events() -> tuple[list[Spend], list[Subscription], list[PipelineEvent]]:
    spends = [
        Spend(event_id=f"e2e-s{i}", date=dt.date(Y, 5, 1 + i % 3),
              channel=[Channel.PAID_SEARCH, Channel.DISPLAY][i % 2],
              campaign_id=f"e2e-c{i % 4}", amount=Decimal(10 + i),
              impressions=100 * i, clicks=i)
        for i in range(24)
    ]
    t = SubscriptionEventType
    subs = []
    for a in range(6):
        start = dt.datetime(Y, 5, 1 + a % 3, 8, tzinfo=dt.UTC)
        subs.append(Subscription(event_id=f"e2e-m{a}-1", occurred_at=start,
                                 account_id=f"e2e-a{a}", event_type=t.SUBSCRIPTION_STARTED,
                                 mrr=Decimal(100 * (a + 1))))
        if a % 2:
            subs.append(Subscription(event_id=f"e2e-m{a}-2",
                                     occurred_at=start + dt.timedelta(hours=3),
                                     account_id=f"e2e-a{a}",
                                     event_type=t.SUBSCRIPTION_CANCELED, mrr=Decimal(0)))
    pipe = [
        PipelineEvent(event_id=f"e2e-p{i}", occurred_at=dt.datetime(Y, 5, 1 + i % 3, 9,
                      tzinfo=dt.UTC), account_id=f"e2e-a{i}", stage=PipelineStage.LEAD)
        for i in range(9)
    ]
    return spends, subs, pipe


def expected_by_day(spends: list[Spend], subs: list[Subscription],
                    pipe: list[PipelineEvent]) -> dict[tuple[str, str], float | None]:
    """The same KPIs computed directly from the events (no Pulse code)."""
    spend: dict[str, Decimal] = defaultdict(Decimal)
    for s in spends:
        spend[s.date.isoformat()] += s.amount
    leads: dict[str, int] = defaultdict(int)
    for p in pipe:
        leads[p.occurred_at.date().isoformat()] += 1
    new: dict[str, Decimal] = defaultdict(Decimal)
    churn: dict[str, Decimal] = defaultdict(Decimal)
    for s in subs:
        day = s.occurred_at.date().isoformat()
        if s.event_type == SubscriptionEventType.SUBSCRIPTION_STARTED:
            new[day] += s.mrr
        else:
            before = next(x.mrr for x in subs if x.account_id == s.account_id
                          and x.event_type == SubscriptionEventType.SUBSCRIPTION_STARTED)
            churn[day] -= before
    out: dict[tuple[str, str], float | None] = {}
    running = Decimal(0)
    for day in sorted(spend):
        running += new[day] + churn[day]
        out[("spend", day)] = float(spend[day])
        out[("leads", day)] = float(leads[day])
        out[("cpl", day)] = round(float(spend[day] / leads[day]), 9) if leads[day] else None
        out[("mrr_new", day)] = float(new[day])
        out[("mrr_churn", day)] = float(churn[day])
        out[("mrr", day)] = float(running)
    month = f"{Y}-05"
    out[("spend", month)] = float(sum(spend.values()))
    out[("mrr_new", month)] = float(sum(new.values()))
    out[("mrr", month)] = float(running)
    return out


def stored(store: Store) -> dict[str, dict[str, Any]]:
    rows = KpiStorage(store).kpi_values(start=dt.date(Y, 1, 1), end=dt.date(Y + 1, 1, 1))
    return {
        f"{r['kpi']}|{r['grain']}|{r['dimension']}|{r['dimension_value']}|{r['period']}": r
        for r in rows
    }


@pytest.mark.kafka
@pytest.mark.clickhouse
async def test_e2e_real_broker_and_server(kafka_broker: Any, server_store: Store) -> None:
    kafka_broker.create_topics(all_topic_names())
    example = load_example()
    board = example.KpiBoard()
    _, sub_broker = example.build_app(kafka_broker.bootstrap_servers, board, "e2e-kpi-example")

    broker = make_broker(kafka_broker.bootstrap_servers)
    bus = Bus(broker, "kpi")
    settings = KpiSettings(snapshot_min_interval_s=0.2, close_enabled=False)
    component: KpiComponent = build(server_store, bus, settings)
    component.clock = lambda: dt.datetime(Y, 5, 31, 12, tzinfo=dt.UTC)
    # Other tests' later subscriptions share the server: MRR is not carried into their years.
    component.mrr_cap = dt.date(Y, 12, 31)
    broker.include_router(component.router)
    spends, subs, pipe = make_events()
    expected = expected_by_day(spends, subs, pipe)
    # MRR is a running total over every account on the shared server: other tests' MRR
    # movements (all dated before this test's year) carry their MRR in, so add their sum.
    # Movements, not raw subscriptions: some tests store subscriptions without running the
    # KPI service (cohorts), and those never enter the MRR KPI.
    carried = float(server_store.query_value(
        "SELECT sum(mrr_after - mrr_before) FROM kpi_mrr_movements FINAL "
        "WHERE occurred_at < {start:DateTime64(3, 'UTC')}",
        {"start": dt.datetime(Y, 1, 1, tzinfo=dt.UTC)}) or 0)
    expected = {key: (value + carried if key[0] == "mrr" and value is not None else value)
                for key, value in expected.items()}

    async with broker, sub_broker:
        await broker.start()
        await sub_broker.start()
        await component.start()
        try:
            await bus.publish(SPEND, spends)
            await bus.publish(SUBSCRIPTIONS, subs)
            await bus.publish(PIPELINE, pipe)

            def current() -> dict[tuple[str, str], float | None]:
                rows = stored(server_store)
                return {
                    (k, p): rows[f"{k}|{'month' if len(p) == 7 else 'day'}|all||{p}"]["value"]
                    for k, p in expected
                    if f"{k}|{'month' if len(p) == 7 else 'day'}|all||{p}" in rows
                }

            async def kpis_match() -> bool:
                return await asyncio.to_thread(current) == expected

            with contextlib.suppress(AssertionError):
                await poll(kpis_match)
            assert await asyncio.to_thread(current) == expected

            async def idle() -> bool:
                """Every fetched batch processed and committed: the totals can match
                before a batch's follow-up has marked its breakdowns (another consumer's
                recompute already reads the rows the batch wrote)."""
                return not any(v for c in component.consumers for v in c.lag().values())

            await poll(idle)
            # Channel/campaign breakdowns are recomputed in the background: finish them
            # now, so `before` holds every value the batches produce (not a race with it).
            await component.refresh_breakdowns()
            await component.flush(force=True)
            before = await asyncio.to_thread(stored, server_store)

            async def snapshots_match() -> bool:
                return all(
                    key in board.latest and board.latest[key].value == row["value"]
                    for key, row in before.items()
                )

            await poll(snapshots_match)
            assert all(isinstance(s, KpiSnapshot) for s in board.latest.values())
            published = REGISTRY.get_sample_value(
                "pulse_kpi_snapshots_published_total", {"final": "false"}
            )

            # Redelivery: the very same events again → nothing changes, nothing published.
            seen = {t.name: consumed(t.name) for t in (SPEND, SUBSCRIPTIONS, PIPELINE)}
            await bus.publish(SPEND, spends)
            await bus.publish(SUBSCRIPTIONS, subs)
            await bus.publish(PIPELINE, pipe)

            async def redelivered() -> bool:
                return (
                    consumed(SPEND.name) >= seen[SPEND.name] + len(spends)
                    and consumed(SUBSCRIPTIONS.name) >= seen[SUBSCRIPTIONS.name] + len(subs)
                    and consumed(PIPELINE.name) >= seen[PIPELINE.name] + len(pipe)
                )

            await poll(redelivered)
            await poll(idle)
            await component.refresh_breakdowns()
            await component.flush(force=True)
            after = await asyncio.to_thread(stored, server_store)
            assert after == before  # same values, same computed_at: nothing rewritten
            assert await asyncio.to_thread(current) == expected
            assert REGISTRY.get_sample_value(
                "pulse_kpi_snapshots_published_total", {"final": "false"}
            ) == published
        finally:
            await component.stop()


@pytest.mark.kafka
async def test_subscriber_example_on_real_broker(kafka_broker: Any) -> None:
    kafka_broker.create_topics([KPI_SNAPSHOTS.name])
    example = load_example()
    board = example.KpiBoard(kpis=frozenset({"roas"}))
    _, sub_broker = example.build_app(kafka_broker.bootstrap_servers, board, "example-test")
    publisher = make_broker(kafka_broker.bootstrap_servers)
    t0 = dt.datetime(2010, 1, 2, tzinfo=dt.UTC)

    def snap(kpi: str, value: float | None, at: dt.datetime, final: bool = False) -> KpiSnapshot:
        return KpiSnapshot(kpi=kpi, grain="day", period="2010-01-01",
                           period_start=dt.date(2010, 1, 1), value=value, unit="ratio",
                           computed_at=at, final=final)

    async with publisher, sub_broker:
        await publisher.start()
        await sub_broker.start()
        await Bus(publisher, "test").publish(KPI_SNAPSHOTS, [
            snap("roas", None, t0),
            snap("spend", 5.0, t0),  # filtered out by the board
            snap("roas", 2.5, t0 + dt.timedelta(seconds=1)),
            snap("roas", 3.0, t0 + dt.timedelta(seconds=2), final=True),
        ])

        async def done() -> bool:
            return board.value("roas", "day", "2010-01-01") == 3.0

        await poll(done)
    key = "roas|day|all||2010-01-01"
    assert board.closed[key].value == 3.0
    assert "spend|day|all||2010-01-01" not in board.latest
