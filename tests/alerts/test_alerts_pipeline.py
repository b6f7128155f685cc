"""Walking skeleton: KPI snapshot on the in-memory bus → rule → one alert, state stored."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from typing import Any

from faststream.kafka import TestKafkaBroker

from pulse_alerts import storage
from pulse_alerts.domain.model import Status
from pulse_alerts.domain.rules import load_rules
from pulse_alerts.main import build
from pulse_alerts.settings import AlertsSettings
from pulse_shared.bus import Bus, make_broker
from pulse_shared.events import Alert, Grain, KpiSnapshot
from pulse_shared.store import Store
from pulse_shared.topics import ALERTS, KPI_SNAPSHOTS

NOW = dt.datetime(2026, 11, 25, 12, 0, tzinfo=dt.UTC)


def snapshot(kpi: str, value: float, channel: str = "paid_search", minute: int = 0) -> KpiSnapshot:
    return KpiSnapshot(
        kpi=kpi,
        grain=Grain.DAY,
        period="2026-11-25",
        period_start=dt.date(2026, 11, 25),
        dimension="channel",
        dimension_value=channel,
        value=value,
        unit="USD",
        computed_at=NOW + dt.timedelta(minutes=minute),
    )


async def wait_for(predicate: Any, within: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


async def test_breach_publishes_one_alert_and_stores_state(embedded_store: Store) -> None:
    kpi = f"spend_{uuid.uuid4().hex[:8]}"
    rules = load_rules(
        f"""
rules:
  - name: spend_high_{kpi}
    type: threshold
    kpi: {kpi}
    grain: day
    dimension: channel
    op: above
    threshold: 1000
    severity: warning
    annotations:
      summary: "{{dimension_value}} spent {{value:,.0f}}"
"""
    )
    broker = make_broker(None)
    bus = Bus(broker, "alerts")
    component = build(
        embedded_store, bus, AlertsSettings(tick_interval_s=3600), rules=rules, notifiers=[],
        clock=lambda: NOW,
    )
    broker.include_router(component.router)
    received: list[Alert] = []

    @broker.subscriber(ALERTS.name, group_id="test-alerts-sink")
    async def sink(body: dict[str, Any]) -> None:
        received.append(Alert.model_validate(body))

    async with TestKafkaBroker(broker):
        await component.start()
        try:
            breach = snapshot(kpi, 1500.0)
            await broker.publish(breach.to_json(), KPI_SNAPSHOTS.name, key=kpi.encode())
            await wait_for(lambda: len(received) == 1)
            # The very same snapshot again (redelivery) and a later, still breaching one.
            await broker.publish(breach.to_json(), KPI_SNAPSHOTS.name, key=kpi.encode())
            await broker.publish(
                snapshot(kpi, 1600.0, minute=5).to_json(), KPI_SNAPSHOTS.name, key=kpi.encode()
            )
            await asyncio.sleep(0.2)
        finally:
            await component.stop()

    assert len(received) == 1
    alert = received[0]
    assert alert.state.value == "firing"
    assert alert.rule == f"spend_high_{kpi}"
    assert alert.value == 1500.0 and alert.threshold == 1000.0
    assert alert.labels["channel"] == "paid_search"
    assert alert.annotations["summary"] == "paid_search spent 1,500"
    stored = {s.fingerprint: s for s in storage.load_states(embedded_store)}
    state = stored[alert.fingerprint]
    assert state.status is Status.FIRING
    assert state.notified == "firing"
    assert state.value == 1600.0  # the later snapshot updated the value, no new alert
    events = storage.list_events(embedded_store, fingerprint=alert.fingerprint)
    assert [(e["alert_id"], e["state"], e["delivered"]) for e in events] == [
        (alert.alert_id, "firing", 2)
    ]
