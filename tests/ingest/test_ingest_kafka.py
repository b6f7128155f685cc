"""The ingest API and file path against the real Kafka broker.

Covers, on the real broker: each endpoint and CSV mapping, partial acceptance, atomic
mode, duplicate re-sends, auth 401/403, 413, the dead-letter topic for invalid messages
from other producers, no raw PII on any topic for every input format, and 503 +
Retry-After while the broker is stopped (then recovery).
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from ingest_support import KEYS, ingest_settings

from pulse_ingest.main import build_api
from pulse_ingest.service import IngestService, ingest_file
from pulse_shared.bus import Bus, make_broker
from pulse_shared.events import AccountProfile, Channel, DeadLetter, Touchpoint
from pulse_shared.service import broker_health
from pulse_shared.streaming import BatchConsumer, batch_subscription
from pulse_shared.topics import (
    DELIVERABILITY,
    INPUT_TOPICS,
    PIPELINE,
    SPEND,
    SUBSCRIPTIONS,
    TOUCHPOINTS,
)

pytestmark = pytest.mark.kafka

DATA = Path(__file__).resolve().parents[1] / "data"
FULL = {"X-API-Key": KEYS["full"][0]}
RUN = uuid.uuid4().hex[:8]


@dataclass
class Record:
    partition: int
    offset: int
    key: bytes | None
    value: bytes

    def json(self) -> Any:
        return json.loads(self.value)


async def read_topic(bootstrap: str, topic: str, timeout: float = 10.0) -> list[Record]:
    """Every record currently in ``topic`` (no consumer group, nothing committed)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = consumer.partitions_for_topic(topic)
        if partitions is None:
            await consumer._client.force_metadata_update()
            partitions = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in partitions]
        if not tps:
            return []
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        records: list[Record] = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            positions = [await consumer.position(tp) for tp in tps]
            if all(pos >= ends[tp] for pos, tp in zip(positions, tps, strict=True)):
                break
            if loop.time() > deadline:
                raise TimeoutError(f"could not read {topic} to its end")
            batch = await consumer.getmany(timeout_ms=500)
            for msgs in batch.values():
                records.extend(Record(m.partition, m.offset, m.key, m.value) for m in msgs)
        return records
    finally:
        await consumer.stop()


async def events_with(bootstrap: str, topic: str, marker: str) -> list[dict[str, Any]]:
    return [r.json() for r in await read_topic(bootstrap, topic) if marker.encode() in r.value]


@dataclass
class Live:
    bootstrap: str
    broker: KafkaBroker
    service: IngestService
    http: httpx.AsyncClient


@pytest.fixture(scope="module")
async def live(kafka_broker: Any) -> AsyncIterator[Live]:
    bootstrap = kafka_broker.bootstrap_servers
    broker = make_broker(bootstrap, client_id="pulse-ingest-test")
    await broker.start()
    service = IngestService(Bus(broker, "ingest"), ingest_settings(max_rows=100))
    app = build_api(service, health=broker_health(broker))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://ingest") as http:
        yield Live(bootstrap, broker, service, http)
    await broker.stop()


def rows_for(kind: str, marker: str) -> list[dict[str, Any]]:
    rows: dict[str, list[dict[str, Any]]] = {
        "touchpoints": [{"occurred_at": "2026-11-20T10:00:00Z", "account_id": marker,
                         "contact_email": f"{marker}@pii.example", "channel": "email",
                         "touch_type": "email_click"}],
        "spend": [{"date": "2026-11-20", "channel": "display", "campaign_id": marker,
                   "amount": "10.00"}],
        "subscriptions": [{"occurred_at": "2026-11-20T10:00:00Z", "account_id": marker,
                           "event_type": "trial_started", "mrr": 0}],
        "pipeline": [{"occurred_at": "2026-11-20T10:00:00Z", "account_id": marker,
                      "stage": "lead"}],
        "budgets": [{"month": "2026-12", "channel": "display", "campaign_id": marker,
                     "amount": 1000}],
        "martech": [{"month": "2026-11", "vendor": marker, "category": "crm",
                     "amount": "4200"}],
        "deliverability": [{"day": "2026-11-20", "sending_domain": "news.example.com",
                            "campaign_id": marker, "esp": "sendgrid", "sent": 1000,
                            "delivered": 990, "hard_bounces": 6, "soft_bounces": 4,
                            "spam_complaints": 1, "unique_opens": 300, "unique_clicks": 40}],
        "usage": [{"day": "2026-11-20", "account_id": marker, "feature": "Automations",
                   "count": 3}],
        "accounts": [{"account_id": marker, "effective_from": "2026-11-01",
                      "segment": "Mid-Market", "plan": "pro", "region": "emea",
                      "industry": "retail", "employee_band": "51-200"}],
        # The comment is accepted and dropped (never on the topic, never stored).
        "feedback": [{"account_id": marker, "survey": "NPS", "score": 9,
                      "responded_at": "2026-11-20T10:00:00Z",
                      "comment": "call me at +1 415 555 0100"}],
        "tickets": [{"ticket_id": marker, "account_id": marker,
                     "created_at": "2026-11-20T09:00:00Z",
                     "first_response_at": "2026-11-20T09:45:00Z", "status": "open",
                     "channel": "Chat"}],
    }
    return rows[kind]


async def test_each_endpoint_publishes_keyed_events(live: Live) -> None:
    for topic, kind in zip(INPUT_TOPICS, ("touchpoints", "spend", "subscriptions",
                                          "pipeline", "budgets", "martech",
                                          "deliverability", "usage", "accounts",
                                          "feedback", "tickets"),
                                         strict=True):
        marker = f"ep-{kind}-{RUN}"
        r = await live.http.post(f"/v1/{kind}", json=rows_for(kind, marker), headers=FULL)
        assert r.status_code == 200, r.text
        records = [x for x in await read_topic(live.bootstrap, topic.name)
                   if marker.encode() in x.value]
        assert len(records) == 1, kind
        event = topic.model.model_validate_json(records[0].value)
        assert records[0].key == topic.key_of(event)


async def test_account_profiles_reach_the_broker_normalised_and_keyed_by_account(
    live: Live,
) -> None:
    """CRM spellings (``Mid-Market``, ``SMB``, a channel alias) arrive normalised; a CSV
    of profiles goes through the same path; an unknown segment is a row error."""
    marker = f"acct-{RUN}"
    csv_body = (
        "account,effective_date,segment,plan,region,industry,company_size,channel\n"
        f"{marker}-a,2026-10-01,SMB,starter,na,media,1-10,\n"
        f"{marker}-a,2026-11-15,Mid-Market,pro,na,media,51-200,LinkedIn Ads\n"
        f"{marker}-b,2026-11-15,Giant,pro,na,media,51-200,\n"
    )
    r = await live.http.post("/v1/accounts", content=csv_body,
                             headers={**FULL, "content-type": "text/csv"})
    assert r.status_code == 422, r.text
    assert [(e["index"], e["field"]) for e in r.json()["rejected"]] == [(2, "segment")]
    records = [x for x in await read_topic(live.bootstrap, "crm.accounts.v1")
               if marker.encode() in x.value]
    events = sorted((AccountProfile.model_validate_json(x.value) for x in records),
                    key=lambda e: e.effective_from)
    assert [(e.segment.value, e.plan, str(e.effective_from)) for e in events] == [
        ("smb", "starter", "2026-10-01"), ("mid_market", "pro", "2026-11-15")]
    assert [e.acquisition_channel for e in events] == [None, Channel.PAID_SOCIAL]
    assert {x.key for x in records} == {f"{marker}-a".encode()}


@pytest.mark.parametrize("source", ["google_ads", "linkedin_ads", "hubspot_contacts",
                                    "hubspot_deals", "stripe_subscriptions",
                                    "sendgrid_stats", "mailchimp_campaigns"])
async def test_each_csv_mapping_reaches_the_broker(live: Live, source: str) -> None:
    name = {"google_ads": "google_ads_campaign_report.csv",
            "linkedin_ads": "linkedin_ads_campaign_export.csv",
            "hubspot_contacts": "hubspot_contacts_export.csv",
            "hubspot_deals": "hubspot_deals_export.csv",
            "stripe_subscriptions": "stripe_subscriptions_export.csv",
            "sendgrid_stats": "sendgrid_stats.csv",
            "mailchimp_campaigns": "mailchimp_campaigns.csv"}[source]
    r = await live.http.post(f"/v1/import/{source}", content=(DATA / name).read_text(),
                             headers={**FULL, "content-type": "text/csv"})
    assert r.status_code == 200, r.text
    by_kind = r.json()["by_kind"] or {}
    topics = {"spend": SPEND, "touchpoints": TOUCHPOINTS, "pipeline": PIPELINE,
              "subscriptions": SUBSCRIPTIONS, "deliverability": DELIVERABILITY}
    prefix = {"google_ads": "google_ads:", "linkedin_ads": "linkedin_ads:",
              "hubspot_contacts": "hubspot:", "hubspot_deals": "hubspot:deal:",
              "stripe_subscriptions": "stripe:", "sendgrid_stats": "sendgrid:",
              "mailchimp_campaigns": "mailchimp:"}[source]
    published = r.json()["accepted"] + r.json()["duplicates"]
    assert published > 0
    for kind in by_kind:
        found = await events_with(live.bootstrap, topics[kind].name, f'"event_id":"{prefix}')
        assert len({e["event_id"] for e in found}) >= by_kind[kind]


async def test_partial_atomic_and_duplicates_on_the_broker(live: Live) -> None:
    marker = f"pa-{RUN}"
    good = {"event_id": f"{marker}-1", "occurred_at": "2026-11-01T00:00:00Z",
            "account_id": marker, "stage": "mql"}
    bad = {"event_id": f"{marker}-2", "account_id": marker, "stage": "mql"}
    atomic = await live.http.post("/v1/pipeline?atomic=true", json=[good, bad], headers=FULL)
    assert atomic.status_code == 422 and atomic.json()["accepted"] == 0
    assert await events_with(live.bootstrap, PIPELINE.name, marker) == []
    partial = await live.http.post("/v1/pipeline", json=[good, bad], headers=FULL)
    assert partial.status_code == 422
    assert partial.json()["rejected"] == [
        {"index": 1, "field": "occurred_at", "reason": "Field required"}]
    again = await live.http.post("/v1/pipeline", json=[good], headers=FULL)
    assert again.status_code == 200 and again.json()["duplicates"] == 1
    assert [e["event_id"] for e in await events_with(live.bootstrap, PIPELINE.name, marker)] == [
        f"{marker}-1"]


async def test_auth_and_size_limits_on_the_live_app(live: Live) -> None:
    marker = f"auth-{RUN}"
    rows = rows_for("spend", marker)
    assert (await live.http.post("/v1/spend", json=rows)).status_code == 401
    assert (await live.http.post("/v1/spend", json=rows,
                                 headers={"X-API-Key": "wrong"})).status_code == 401
    assert (await live.http.post("/v1/spend", json=rows,
                                 headers={"X-API-Key": KEYS["crm"][0]})).status_code == 403
    assert (await live.http.post("/v1/spend", json=rows * 101, headers=FULL)).status_code == 413
    assert await events_with(live.bootstrap, SPEND.name, marker) == []


async def test_no_raw_pii_on_any_topic_for_every_format(live: Live, tmp_path: Path) -> None:
    email, name, phone = f"zebulon.{RUN}@pii.example", f"Zebulon{RUN}", f"+1 555 {RUN}"
    row = {"occurred_at": "2026-11-20T10:00:00Z", "account_id": f"pii-{RUN}",
           "email": email, "first_name": name, "full_name": f"{name} Quux", "phone": phone,
           "channel": "webinar", "touch_type": "webinar", "utm_content": f"hi {email}",
           "notes": f"{name} said hello"}
    headers = {**FULL}
    json_rows = [dict(row, account_id=f"pii-json-{RUN}")]
    nd_rows = [dict(row, account_id=f"pii-nd-{RUN}")]
    csv_row = dict(row, account_id=f"pii-csv-{RUN}")
    csv_text = ",".join(csv_row) + "\n" + ",".join(f'"{v}"' for v in csv_row.values()) + "\n"
    assert (await live.http.post("/v1/touchpoints", json=json_rows, headers=headers)).status_code == 200
    r = await live.http.post("/v1/touchpoints", content="\n".join(json.dumps(x) for x in nd_rows),
                             headers={**headers, "content-type": "application/x-ndjson"})
    assert r.status_code == 200, r.text
    r = await live.http.post("/v1/touchpoints", content=csv_text,
                             headers={**headers, "content-type": "text/csv"})
    assert r.status_code == 200, r.text
    # the CLI file path, each file format
    for fmt in ("json", "ndjson", "csv"):
        path = tmp_path / f"pii.{fmt}"
        file_row = dict(row, account_id=f"pii-file-{fmt}-{RUN}")
        if fmt == "json":
            path.write_text(json.dumps([file_row]))
        elif fmt == "ndjson":
            path.write_text(json.dumps(file_row) + "\n")
        else:
            path.write_text(",".join(file_row) + "\n"
                            + ",".join(f'"{v}"' for v in file_row.values()) + "\n")
        result = await ingest_file(live.service, "touchpoints", path)
        assert result.accepted == 1, result.rejected
    for source, name_ in (("hubspot_contacts", "hubspot_contacts_export.csv"),
                          ("hubspot_deals", "hubspot_deals_export.csv"),
                          ("stripe_subscriptions", "stripe_subscriptions_export.csv")):
        r = await live.http.post(f"/v1/import/{source}", content=(DATA / name_).read_text(),
                                 headers={**FULL, "content-type": "text/csv"})
        assert r.status_code == 200
    secrets = [email.encode(), name.encode(), phone.encode(), b"Lovelace", b"Babbage",
               b"ada.lovelace@", b"grace@cobol", b"7946 0958", b"Sam Seller"]
    seen = 0
    for topic in INPUT_TOPICS:
        for record in await read_topic(live.bootstrap, topic.name):
            seen += 1
            for secret in secrets:
                assert secret.lower() not in record.value.lower(), (topic.name, secret)
    assert seen > 0
    ours = await events_with(live.bootstrap, TOUCHPOINTS.name, "pii-")
    ours = [e for e in ours if e["account_id"].endswith(RUN)]
    assert len(ours) == 6
    assert all(Touchpoint.model_validate(e).contact_id == ours[0]["contact_id"] for e in ours)


async def test_invalid_messages_from_other_producers_go_to_the_dead_letter_topic(
    live: Live,
) -> None:
    """Raw topics are validated by the consumers' BatchConsumer (same models)."""
    producer = AIOKafkaProducer(bootstrap_servers=live.bootstrap)
    await producer.start()
    marker = f"dlq-{RUN}"
    try:
        bad_json = await producer.send_and_wait(TOUCHPOINTS.name, f"not json {marker}".encode(),
                                                key=marker.encode())
        raw_contact = {"event_id": marker, "occurred_at": "2026-11-20T10:00:00Z",
                       "account_id": marker, "contact_id": "someone@raw.example",
                       "channel": "email", "touch_type": "email_open"}
        bad_contact = await producer.send_and_wait(
            TOUCHPOINTS.name, json.dumps(raw_contact).encode(), key=marker.encode())
    finally:
        await producer.stop()
    consumed: list[Any] = []

    async def consume(events: list[Any]) -> None:
        consumed.extend(events)

    broker = make_broker(live.bootstrap, client_id="pulse-ingest-dlq-test")
    consumer = BatchConsumer("ingest-dlq-test", TOUCHPOINTS, consume, Bus(broker, "ingest"))

    @broker.subscriber(TOUCHPOINTS.name, **batch_subscription(f"pulse-ingest-dlq-{RUN}"))  # type: ignore[untyped-decorator]
    async def handle_batch(body: Any, message: KafkaMessage) -> None:
        await consumer.handle(message)

    await broker.start()
    try:
        letters: list[DeadLetter] = []
        for _ in range(60):
            letters = [DeadLetter.model_validate_json(r.value)
                       for r in await read_topic(live.bootstrap, TOUCHPOINTS.dead_letter)
                       if marker.encode() in r.value]
            if len(letters) >= 2:
                break
            await asyncio.sleep(0.5)
    finally:
        await broker.stop()
    by_offset = {(d.partition, d.offset): d for d in letters}
    not_json = by_offset[(bad_json.partition, bad_json.offset)]
    assert not_json.payload == f"not json {marker}" and not_json.source_topic == TOUCHPOINTS.name
    assert not_json.reason
    raw = by_offset[(bad_contact.partition, bad_contact.offset)]
    assert [e.field for e in raw.errors] == ["contact_id"]
    assert "contact_id" in raw.reason and json.loads(raw.payload)["event_id"] == marker
    assert all(getattr(e, "event_id", "") != marker for e in consumed)


async def test_503_with_retry_after_while_the_broker_is_stopped(kafka_broker: Any) -> None:
    bootstrap = kafka_broker.bootstrap_servers
    broker = make_broker(bootstrap, client_id="pulse-ingest-503-test")
    await broker.start()
    service = IngestService(Bus(broker, "ingest"), ingest_settings(publish_timeout_s=2.0,
                                                                   retry_after_s=3))
    app = build_api(service, health=broker_health(broker, timeout=1.0))
    marker = f"down-{RUN}"
    rows = rows_for("budgets", marker)
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="http://ingest") as http:
            assert (await http.get("/health")).status_code == 200
            await asyncio.to_thread(kafka_broker.stop)
            try:
                r = await http.post("/v1/budgets", json=rows, headers=FULL)
                assert r.status_code == 503, r.text
                assert r.headers["retry-after"] == "3"
                assert (await http.get("/health")).json()["checks"]["kafka"] is False
            finally:
                await asyncio.to_thread(kafka_broker.start)
            for _ in range(30):  # the same producer recovers once the broker is back
                r = await http.post("/v1/budgets", json=rows, headers=FULL)
                if r.status_code == 200:
                    break
                await asyncio.sleep(1)
            assert r.status_code == 200, r.text
    finally:
        await broker.stop()
    assert await events_with(bootstrap, "marketing.budgets.v1", marker)
