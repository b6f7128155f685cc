"""Product usage (kind ``usage``) through the ingest API onto the real Kafka broker, then
what the KPI service's usage consumer does with the records it reads back: rows in
``product_usage`` and the usage KPIs on the real ClickHouse server.

2019 (a year no other test writes): three accounts use two features on two days.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from ingest_support import KEYS, ingest_settings

from pulse_ingest.main import build_api
from pulse_ingest.service import IngestService
from pulse_kpi.app import SilentBus
from pulse_kpi.main import build
from pulse_kpi.settings import SERVICE, KpiSettings
from pulse_kpi.storage import KpiStorage, usage_processor
from pulse_shared.bus import Bus, make_broker
from pulse_shared.events import ProductUsage
from pulse_shared.service import broker_health
from pulse_shared.store import Store
from pulse_shared.topics import USAGE

pytestmark = [pytest.mark.kafka, pytest.mark.clickhouse]

Y = 2019
RUN = uuid.uuid4().hex[:6]
CSV = (
    "account,feature_name,date,uses\n"
    f"ku{RUN}-a,Campaigns,{Y}-06-03,4\n"
    f"ku{RUN}-b,Campaigns,{Y}-06-03,2\n"
    f"ku{RUN}-b,AB Testing,{Y}-06-04,1\n"
    f"ku{RUN}-c,campaigns,{Y}-06-04,0\n"  # count must be at least 1: rejected
    f"ku{RUN}-c,campaigns,{Y}-06-05,7\n"
)


async def records(bootstrap: str, topic: str, marker: str) -> list[tuple[bytes | None, bytes]]:
    """(key, value) of every record of ``topic`` holding ``marker`` (no consumer group)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        await consumer._client.force_metadata_update()
        tps = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        out: list[tuple[bytes | None, bytes]] = []
        while True:
            positions = {tp: await consumer.position(tp) for tp in tps}
            if all(positions[tp] >= ends[tp] for tp in tps):
                break
            for msgs in (await consumer.getmany(timeout_ms=500)).values():
                out += [(m.key, m.value) for m in msgs if marker.encode() in m.value]
        return out
    finally:
        await consumer.stop()


async def test_usage_csv_over_kafka_to_the_usage_kpis(
    kafka_broker: Any, server_store: Store
) -> None:
    kafka_broker.create_topics([USAGE.name, USAGE.dead_letter])
    broker = make_broker(kafka_broker.bootstrap_servers, client_id="pulse-ingest-usage-test")
    await broker.start()
    try:
        service = IngestService(Bus(broker, "ingest"), ingest_settings(max_rows=100))
        app = build_api(service, health=broker_health(broker))
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="http://ingest") as http:
            r = await http.post("/v1/usage", content=CSV, headers={
                "X-API-Key": KEYS["full"][0], "content-type": "text/csv"})
        assert r.status_code == 422, r.text  # one row rejected, the others published
        body = r.json()
        assert body["accepted"] == 4
        assert [(e["index"], e["field"]) for e in body["rejected"]] == [(3, "count")]
        found = await records(kafka_broker.bootstrap_servers, USAGE.name, f"ku{RUN}-")
    finally:
        await broker.stop()
    events = [ProductUsage.model_validate_json(value) for _, value in found]
    assert len(events) == 4
    assert all(key == e.account_id.encode() for (key, _), e in zip(found, events, strict=True))
    assert sorted((e.account_id[-1], e.feature, e.day.day, e.count) for e in events) == [
        ("a", "campaigns", 3, 4), ("b", "ab_testing", 4, 1), ("b", "campaigns", 3, 2),
        ("c", "campaigns", 5, 7)]

    # The KPI service's usage consumer: its processor's rows, then its follow-up.
    for table_rows in usage_processor(events):
        server_store.insert(table_rows.table, table_rows.rows, list(table_rows.columns))
    kpi = build(server_store, SilentBus(make_broker(None), SERVICE),
                KpiSettings(close_enabled=False, snapshot_min_interval_s=0))
    kpi.clock = lambda: dt.datetime(Y, 7, 15, tzinfo=dt.UTC)
    await kpi.after_usage(events)
    stored = server_store.query_value(
        "SELECT count() FROM product_usage FINAL WHERE account_id LIKE {p:String}",
        {"p": f"ku{RUN}-%"})
    assert stored == 4
    rows = KpiStorage(server_store).kpi_values(
        start=dt.date(Y, 6, 1), end=dt.date(Y, 7, 1),
        kpis=["active_accounts_monthly", "active_accounts_daily", "feature_adoption_rate"])
    values = {(r["kpi"], r["dimension_value"], r["period"]): r["value"] for r in rows}
    assert values[("active_accounts_daily", "", f"{Y}-06-03")] == 2.0
    assert values[("active_accounts_monthly", "", f"{Y}-06")] == 3.0
    assert values[("feature_adoption_rate", "ab_testing", f"{Y}-06")] == pytest.approx(1 / 3)
