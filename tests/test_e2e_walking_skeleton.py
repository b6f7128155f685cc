"""Walking skeleton, end to end on the real servers.

One touchpoint and one subscription are POSTed to the ingest API; the attribution, KPI and
alerts services run as separate asyncio apps (each with its own broker connection and
ClickHouse client, as in production) on the real Kafka broker and ClickHouse server. The
events must come out as ClickHouse rows, a KPI snapshot, an alert on ``alerts.v1`` and a
report file.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer

from pulse_shared.bus import Bus, make_broker
from pulse_shared.store.server import ServerStore
from pulse_shared.topics import ALERTS, KPI_SNAPSHOTS, all_topic_names

pytestmark = [pytest.mark.kafka, pytest.mark.clickhouse, pytest.mark.timeout(240)]


async def eventually(check: Callable[[], Any], timeout: float = 60.0) -> Any:
    """Poll ``check`` (sync or async) until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.25)


class TopicTail:
    """Reads a topic from its current end, collecting decoded JSON messages."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.consumer = AIOKafkaConsumer(
            topic, bootstrap_servers=bootstrap, auto_offset_reset="latest",
            enable_auto_commit=False, group_id=None,
        )
        self.messages: list[dict[str, Any]] = []
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.consumer.start()
        # Pin positions to the log end now, so nothing published later is missed.
        await self.consumer.seek_to_end()
        for tp in self.consumer.assignment():
            await self.consumer.position(tp)
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        async for record in self.consumer:
            self.messages.append(json.loads(record.value))

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
        await self.consumer.stop()


@pytest.fixture
async def services(kafka_broker, clickhouse_server, server_store, isolated_consumer_groups, tmp_path: Path) -> AsyncIterator[dict[str, Any]]:  # type: ignore[no-untyped-def]
    from pulse_alerts.main import build as build_alerts
    from pulse_alerts.settings import AlertsSettings
    from pulse_attribution.main import build as build_attribution
    from pulse_kpi.main import build as build_kpi

    kafka_broker.create_topics(all_topic_names())
    rule = f"e2e_mrr_{uuid.uuid4().hex[:8]}"
    rules_file = tmp_path / "rules.yaml"
    rules_file.write_text(
        "rules:\n"
        f"  - name: {rule}\n"
        "    type: threshold\n    kpi: mrr\n    grain: day\n    dimension: all\n"
        "    op: above\n    threshold: 0\n    severity: critical\n"
    )
    builders = {
        "attribution": lambda store, bus: build_attribution(store, bus),
        "kpi": lambda store, bus: build_kpi(store, bus),
        "alerts": lambda store, bus: build_alerts(store, bus, AlertsSettings(rules_file=rules_file)),
    }
    running = []
    for name, builder in builders.items():
        broker = make_broker(kafka_broker.bootstrap_servers, client_id=f"pulse-{name}")
        store = ServerStore(clickhouse_server.url)  # each service its own client
        component = builder(store, Bus(broker, name))
        broker.include_router(component.router)
        await broker.start()
        await component.start()
        running.append((broker, component, store))
    yield {"rule": rule}
    for broker, component, store in running:
        await component.stop()
        await broker.stop()
        store.close()


async def test_events_travel_ingest_to_report(kafka_broker, clickhouse_server, server_store, services, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from pulse_ingest.main import create_app
    from pulse_ingest.settings import IngestSettings
    from pulse_reporting.generate import generate_report

    bootstrap = kafka_broker.bootstrap_servers
    snapshots, alerts = TopicTail(bootstrap, KPI_SNAPSHOTS.name), TopicTail(bootstrap, ALERTS.name)
    await snapshots.start()
    await alerts.start()

    account = f"acct-e2e-{uuid.uuid4().hex[:10]}"
    touch_id, sub_id = f"tp-{uuid.uuid4().hex}", f"sub-{uuid.uuid4().hex}"
    day = dt.date(2026, 11, 4)  # ISO week 2026-W45
    touch = {
        "event_id": touch_id, "occurred_at": "2026-11-03T10:00:00Z", "account_id": account,
        "contact_email": "Jane.Doe@example.com", "channel": "paid_search", "source": "google",
        "medium": "cpc", "campaign_id": "brand-search", "touch_type": "ad_click",
    }
    subscription = {
        "event_id": sub_id, "occurred_at": "2026-11-04T09:00:00Z", "account_id": account,
        "event_type": "subscription_started", "mrr": "1250.00", "currency": "USD", "plan": "pro",
    }
    ingest_broker = make_broker(bootstrap, client_id="pulse-ingest")
    app = create_app(IngestSettings(pii_salt="e2e-salt-0123456789", auth_required=False), broker=ingest_broker)
    await ingest_broker.start()
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://ingest") as http:
            first = await http.post("/v1/touchpoints", json=[touch])
            second = await http.post("/v1/subscriptions", json=[subscription])
        assert first.status_code in (200, 202), first.text
        assert second.status_code in (200, 202), second.text

        # 1. the touchpoint lands in ClickHouse, pseudonymised
        rows = await eventually(lambda: server_store.query(
            "SELECT contact_id, channel FROM touchpoints FINAL WHERE event_id = {id:String}",
            {"id": touch_id}))
        assert rows[0]["channel"] == "paid_search"
        assert "example.com" not in rows[0]["contact_id"] and len(rows[0]["contact_id"]) == 64

        # consumer lag is exported per service, topic and partition once a batch commits
        from prometheus_client import REGISTRY

        def lag_samples() -> list[Any]:
            return [sample for metric in REGISTRY.collect() if metric.name == "pulse_consumer_lag"
                    for sample in metric.samples
                    if sample.labels["service"] == "attribution"
                    and sample.labels["topic"] == "marketing.touchpoints.v1"]

        lag = await eventually(lag_samples, timeout=30)  # exported right after the commit
        assert lag and all(sample.value >= 0 for sample in lag)

        # 2. the conversion gets last-touch credit for that touchpoint
        credits = await eventually(lambda: server_store.query(
            "SELECT touchpoint_event_id, credit, credited_revenue FROM attribution_credits FINAL "
            "WHERE conversion_id = {id:String} AND model = 'last_touch'", {"id": sub_id}))
        assert credits[0]["touchpoint_event_id"] == touch_id
        assert credits[0]["credit"] == pytest.approx(1.0)
        assert float(credits[0]["credited_revenue"]) == pytest.approx(1250.0 * 12)

        # 3. a daily KPI row and its snapshot on kpi.snapshots.v1
        # Other tests' accounts share the server, so the day's MRR may already have a value:
        # wait for one that includes this account's 1,250.
        def day_mrr() -> float:
            value = server_store.query_value(
                "SELECT value FROM kpi_values FINAL WHERE kpi = 'mrr' AND grain = 'day' "
                "AND dimension = 'all' AND period_start = {d:Date}", {"d": day})
            return float(value or 0.0)

        mrr = await eventually(lambda: day_mrr() >= 1250.0 and day_mrr())
        assert mrr >= 1250.0
        snapshot = await eventually(lambda: [
            m for m in snapshots.messages
            if m["kpi"] == "mrr" and m["grain"] == "day" and m["period"] == day.isoformat()])
        assert snapshot[-1]["value"] == pytest.approx(mrr)

        # 4. exactly one alert for the rule on alerts.v1
        fired = await eventually(lambda: [m for m in alerts.messages if m["rule"] == services["rule"]])
        assert fired[0]["state"] == "firing"
        await asyncio.sleep(1.0)
        assert len({m["fingerprint"] for m in alerts.messages if m["rule"] == services["rule"]}) >= 1
        assert len([m for m in alerts.messages
                    if m["rule"] == services["rule"] and m["state"] == "firing"]) == len(
            {m["fingerprint"] for m in alerts.messages if m["rule"] == services["rule"]})

        # 5. the weekly report, read through the read-only user
        reader = ServerStore(clickhouse_server.url, user=clickhouse_server.reader_user,
                             password=clickhouse_server.reader_password, readonly=True)
        result = await generate_report(reader, "weekly", "2026-W45", formats=("md",),
                                       out_dir=tmp_path / "reports", writer=server_store)
        report = Path(result.paths["md"]).read_text()
        assert "2026-W45" in report
        assert "MRR" in report or "mrr" in report
    finally:
        await ingest_broker.stop()
        await snapshots.stop()
        await alerts.stop()
