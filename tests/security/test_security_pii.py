"""No raw e-mail address or personal name reaches ClickHouse.

Raw rows carrying e-mails, names and phone numbers (in the contact fields, in free-text
fields and as extra columns) plus the HubSpot/Stripe CSV exports go through the real
pipeline — ingest API → Kafka → attribution and KPI consumers → ClickHouse — on a
DEDICATED broker and server (so the scan sees only this run's data); then every
String/Map/Array column of every table is scanned."""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from pulse_shared.bus import Bus, make_broker
from pulse_shared.schema.migrations import migrate
from pulse_shared.store.server import ServerStore
from pulse_shared.topics import all_topic_names
from pulse_testinfra.clickhouse import ClickHouseServer
from pulse_testinfra.kafka import KafkaBroker

pytestmark = [pytest.mark.kafka, pytest.mark.clickhouse, pytest.mark.timeout(240)]

DATA = Path(__file__).resolve().parents[1] / "data"
EMAIL_RE = r"[A-Za-z0-9._%+'-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}"
NAMES = ["Zebulon", "Quixotefield", "Lovelace", "Babbage", "Sam Seller", "7946 0958"]


@pytest.fixture(scope="module")
def pii_servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[KafkaBroker, ClickHouseServer]]:
    kafka = KafkaBroker(tmp_path_factory.mktemp("pii-kafka"))
    ch = ClickHouseServer(tmp_path_factory.mktemp("pii-clickhouse"))
    try:
        kafka.start()
        ch.start()
        kafka.create_topics(all_topic_names())
        yield kafka, ch
    finally:
        kafka.stop()
        ch.stop()


@pytest.fixture
async def pipeline(pii_servers: tuple[KafkaBroker, ClickHouseServer]) -> AsyncIterator[ServerStore]:
    from pulse_attribution.main import build as build_attribution
    from pulse_kpi.main import build as build_kpi

    kafka, ch = pii_servers
    store = ServerStore(ch.url)
    migrate(store)
    running = []
    for name, builder in (("attribution", build_attribution), ("kpi", build_kpi)):
        broker = make_broker(kafka.bootstrap_servers, client_id=f"pulse-{name}")
        own = ServerStore(ch.url)
        component = builder(own, Bus(broker, name))
        broker.include_router(component.router)
        await broker.start()
        await component.start()
        running.append((broker, component, own))
    try:
        yield store
    finally:
        for broker, component, own in running:
            await component.stop()
            await broker.stop()
            own.close()
        store.close()


def rows_with_pii(tag: str) -> dict[str, list[dict[str, Any]]]:
    email = "zebulon.quixotefield@private-mail.example"
    extra = {"first_name": "Zebulon", "last_name": "Quixotefield", "name": "Zebulon Quixotefield",
             "phone": "+44 20 7946 0958", "notes": f"call Zebulon at {email}"}
    return {
        "touchpoints": [
            {"event_id": f"{tag}-t{i}", "occurred_at": f"2026-11-0{1 + i}T10:00:00Z",
             "account_id": f"acct-{tag}", "contact_email": email, "channel": "email",
             "touch_type": "email_click", "source": "newsletter", "medium": "email",
             "campaign_id": "nov-nurture", "utm_content": f"sent to {email}",
             "utm_term": f"zq {email.upper()}", **extra}
            for i in range(3)
        ],
        "pipeline": [
            {"event_id": f"{tag}-p1", "occurred_at": "2026-11-05T10:00:00Z",
             "account_id": f"acct-{tag}", "stage": "opportunity", "amount": "9000",
             "contact_email": email, **extra},
        ],
        "subscriptions": [
            {"event_id": f"{tag}-s1", "occurred_at": "2026-11-06T10:00:00Z",
             "account_id": f"acct-{tag}", "event_type": "subscription_started",
             "mrr": "990", "plan": f"pro ({email})", "customer_email": email, **extra},
        ],
    }


async def eventually(check: Any, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = await asyncio.to_thread(check)
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.3)


def text_columns(store: ServerStore) -> list[tuple[str, str, str]]:
    return [(r["table"], r["name"], r["type"]) for r in store.query(
        "SELECT table, name, type FROM system.columns WHERE database = currentDatabase() "
        "AND (type LIKE '%String%' OR type LIKE 'Map%' OR type LIKE 'Array%' "
        "OR type LIKE '%JSON%')")]


async def test_no_raw_email_or_name_in_any_clickhouse_table(
    pii_servers: tuple[KafkaBroker, ClickHouseServer], pipeline: ServerStore
) -> None:
    from pulse_ingest.main import create_app
    from pulse_ingest.settings import IngestSettings

    kafka, _ch = pii_servers
    store = pipeline
    tag = f"pii{uuid.uuid4().hex[:6]}"
    broker = make_broker(kafka.bootstrap_servers, client_id="pulse-ingest")
    app = create_app(IngestSettings(pii_salt="pii-test-salt-0123456789", auth_required=False),
                     broker=broker)
    await broker.start()
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="http://ingest") as http:
            for kind, rows in rows_with_pii(tag).items():
                r = await http.post(f"/v1/{kind}", json=rows)
                assert r.status_code in (200, 202), r.text
            for source, file in (("hubspot_contacts", "hubspot_contacts_export.csv"),
                                 ("hubspot_deals", "hubspot_deals_export.csv"),
                                 ("stripe_subscriptions", "stripe_subscriptions_export.csv")):
                r = await http.post(f"/v1/import/{source}", content=(DATA / file).read_bytes(),
                                    headers={"content-type": "text/csv"})
                assert r.status_code in (200, 202, 422), r.text
                assert r.json().get("accepted", 0) > 0, r.text
    finally:
        await broker.stop()

    # the pipeline has written what it will write
    await eventually(lambda: store.query_value(
        "SELECT count() FROM touchpoints FINAL WHERE account_id = {a:String}",
        {"a": f"acct-{tag}"}) == 3)
    await eventually(lambda: store.query_value(
        "SELECT count() FROM subscriptions FINAL WHERE account_id = {a:String}",
        {"a": f"acct-{tag}"}) >= 1)
    await eventually(lambda: store.query_value("SELECT count() FROM attribution_credits") > 0)
    await eventually(lambda: store.query_value("SELECT count() FROM kpi_values") > 0)

    # the scanner finds what it looks for (a canary table, dropped again)
    store.command("CREATE TABLE IF NOT EXISTS pii_canary (s String, m Map(String, String), "
                  "a Array(String)) ENGINE = Memory")
    store.insert("pii_canary", [{"s": "x", "m": {"k": "mail ada@x.example"}, "a": ["Lovelace"]}],
                 ["s", "m", "a"])
    try:
        canary, _ = scan(store)
    finally:
        store.command("DROP TABLE IF EXISTS pii_canary")
    assert {(h[0], h[1]) for h in canary} >= {("pii_canary", "m"), ("pii_canary", "a")}

    hits, scanned = scan(store)
    assert scanned > 0
    assert not hits, "raw PII in ClickHouse:\n" + "\n".join(map(str, hits))
    # and the hashes are there instead
    contact = store.query_value(
        "SELECT any(contact_id) FROM touchpoints WHERE account_id = {a:String}",
        {"a": f"acct-{tag}"})
    assert re.fullmatch(r"[0-9a-f]{64}", contact)


def scan(store: ServerStore) -> tuple[list[tuple[str, str, str, str]], int]:
    """(table, column, type, sample) of every value with an e-mail or a known name."""
    columns = text_columns(store)
    assert len(columns) > 20, columns
    hits = []
    scanned = 0
    for table, column, ctype in columns:
        expr = f"toString(`{column}`)"
        rows = store.query(
            f"SELECT {expr} AS v FROM `{table}` WHERE match({expr}, {{re:String}}) "
            f"OR multiSearchAnyCaseInsensitive({expr}, {{names:Array(String)}}) LIMIT 3",
            {"re": EMAIL_RE, "names": NAMES},
        )
        scanned += int(store.query_value(f"SELECT count() FROM `{table}`") or 0)
        hits.extend((table, column, ctype, r["v"][:200]) for r in rows)
    return hits, scanned
