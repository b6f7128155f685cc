"""HTTP API on the in-memory bus: formats, 422 row errors, auth, limits, 503, metrics."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from ingest_support import KEYS, MemoryBus, ingest_settings

from pulse_ingest.main import build_api
from pulse_ingest.service import IngestService
from pulse_shared.topics import BUDGETS, PIPELINE, SPEND, SUBSCRIPTIONS, TOUCHPOINTS

FULL = {"X-API-Key": KEYS["full"][0]}
CRM = {"Authorization": f"Bearer {KEYS['crm'][0]}"}

ROWS: dict[str, list[dict[str, Any]]] = {
    "touchpoints": [{"occurred_at": "2026-11-20T10:00:00Z", "account_id": "a1",
                     "contact_email": "x@y.com", "channel": "email",
                     "touch_type": "email_open"}],
    "spend": [{"date": "2026-11-20", "channel": "paid_search", "campaign_id": "c1",
               "amount": "12.30", "impressions": 1000, "clicks": 12}],
    "subscriptions": [{"occurred_at": "2026-11-20T10:00:00Z", "account_id": "a1",
                       "event_type": "subscription_started", "mrr": 490, "plan": "starter"}],
    "pipeline": [{"occurred_at": "2026-11-20T10:00:00Z", "account_id": "a1",
                  "stage": "opportunity", "amount": "5880"}],
    "budgets": [{"month": "2026-12", "channel": "paid_social", "amount": 9000}],
}
TOPICS = {"touchpoints": TOUCHPOINTS, "spend": SPEND, "subscriptions": SUBSCRIPTIONS,
          "pipeline": PIPELINE, "budgets": BUDGETS}


@pytest.fixture
async def client(service: IngestService) -> AsyncIterator[httpx.AsyncClient]:
    app = build_api(service)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://ingest") as c:
        yield c


@pytest.mark.parametrize("kind", list(ROWS))
async def test_each_endpoint_accepts_json_and_publishes(
    kind: str, client: httpx.AsyncClient, memory_bus: MemoryBus
) -> None:
    response = await client.post(f"/v1/{kind}", json=ROWS[kind], headers=FULL)
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["accepted"], body["duplicates"], body["rejected"]) == (1, 0, [])
    assert len(memory_bus.recorder.events(TOPICS[kind].name)) == 1
    again = await client.post(f"/v1/{kind}", json=ROWS[kind], headers=FULL)
    assert again.json()["duplicates"] == 1
    assert len(memory_bus.recorder.events(TOPICS[kind].name)) == 1


async def test_ndjson_and_csv_bodies(client: httpx.AsyncClient, memory_bus: MemoryBus) -> None:
    ndjson = "\n".join(json.dumps({**ROWS["pipeline"][0], "account_id": f"n{i}"})
                       for i in range(3))
    r = await client.post("/v1/pipeline", content=ndjson,
                          headers={**FULL, "content-type": "application/x-ndjson"})
    assert r.status_code == 200 and r.json()["accepted"] == 3
    csv_body = "date,channel,campaign_id,amount,clicks\n2026-11-01,cpc,c9,10.5,3\n"
    r = await client.post("/v1/spend", content=csv_body,
                          headers={**FULL, "content-type": "text/csv"})
    assert r.status_code == 200, r.text
    [spend] = memory_bus.recorder.events(SPEND.name)
    assert spend["channel"] == "paid_search" and spend["clicks"] == 3


async def test_422_lists_row_errors_and_still_publishes_valid_rows(
    client: httpx.AsyncClient, memory_bus: MemoryBus
) -> None:
    rows = [ROWS["pipeline"][0], {"account_id": "a2", "stage": "won"},
            {**ROWS["pipeline"][0], "amount": "-5"}]
    r = await client.post("/v1/pipeline", json=rows, headers=FULL)
    assert r.status_code == 422
    body = r.json()
    assert body["accepted"] == 1 and body["rejected_rows"] == 2
    assert {(e["index"], e["field"]) for e in body["rejected"]} == {(1, "occurred_at"), (2, "amount")}
    assert all(e["reason"] for e in body["rejected"])
    assert len(memory_bus.recorder.events(PIPELINE.name)) == 1


async def test_atomic_publishes_nothing_on_any_error(
    client: httpx.AsyncClient, memory_bus: MemoryBus
) -> None:
    rows = [ROWS["pipeline"][0], {"account_id": "a2", "stage": "won"}]
    r = await client.post("/v1/pipeline?atomic=true", json=rows, headers=FULL)
    assert r.status_code == 422 and r.json()["accepted"] == 0
    assert memory_bus.recorder.count() == 0


async def test_bad_body_is_400_not_500(client: httpx.AsyncClient) -> None:
    r = await client.post("/v1/spend", content=b"{not json", headers={**FULL, "content-type": "application/json"})
    assert r.status_code == 400
    r = await client.post("/v1/spend", content=b"a,b\n\xc3\x28", headers={**FULL, "content-type": "text/csv"})
    assert r.status_code == 400
    r = await client.post("/v1/spend", content=b"42", headers={**FULL, "content-type": "application/json"})
    assert r.status_code == 400


async def test_auth_401_and_403(client: httpx.AsyncClient, memory_bus: MemoryBus) -> None:
    assert (await client.post("/v1/spend", json=ROWS["spend"])).status_code == 401
    bad = await client.post("/v1/spend", json=ROWS["spend"], headers={"X-API-Key": "nope"})
    assert bad.status_code == 401
    forbidden = await client.post("/v1/spend", json=ROWS["spend"], headers=CRM)
    assert forbidden.status_code == 403
    allowed = await client.post("/v1/pipeline", json=ROWS["pipeline"], headers=CRM)
    assert allowed.status_code == 200
    assert memory_bus.recorder.count() == 1


async def test_413_too_many_rows_or_bytes(memory_bus: MemoryBus) -> None:
    svc = IngestService(memory_bus.bus, ingest_settings(max_rows=5, max_body_bytes=2048))
    transport = httpx.ASGITransport(app=build_api(svc))
    async with httpx.AsyncClient(transport=transport, base_url="http://i") as c:
        r = await c.post("/v1/budgets", json=ROWS["budgets"] * 6, headers=FULL)
        assert r.status_code == 413
        r = await c.post("/v1/budgets", content=b"[" + b" " * 4096 + b"]",
                         headers={**FULL, "content-type": "application/json"})
        assert r.status_code == 413
    assert memory_bus.recorder.count() == 0


class StuckBus:
    async def publish(self, topic: Any, events: Any) -> None:
        await asyncio.sleep(30)


async def test_503_with_retry_after_when_broker_is_slow() -> None:
    svc = IngestService(StuckBus(), ingest_settings(publish_timeout_s=0.1, retry_after_s=7))  # type: ignore[arg-type]
    transport = httpx.ASGITransport(app=build_api(svc))
    async with httpx.AsyncClient(transport=transport, base_url="http://i") as c:
        r = await c.post("/v1/budgets", json=ROWS["budgets"], headers=FULL)
    assert r.status_code == 503
    assert r.headers["retry-after"] == "7"


async def test_health_metrics_and_openapi(service: IngestService) -> None:
    async def down() -> bool:
        return False

    transport = httpx.ASGITransport(app=build_api(service, health=down))
    async with httpx.AsyncClient(transport=transport, base_url="http://i") as c:
        await c.post("/v1/budgets", json=ROWS["budgets"], headers=FULL)
        health = await c.get("/health")
        assert health.status_code == 503 and health.json()["checks"]["kafka"] is False
        text = (await c.get("/metrics")).text
        assert 'pulse_ingest_rows_accepted_total{kind="budgets",source="key-1"}' in text
        assert "pulse_ingest_request_seconds_bucket" in text
        assert "pulse_ingest_publish_seconds_bucket" in text
        assert (await c.get("/openapi.json")).status_code == 401  # documents need a key
        spec = (await c.get("/openapi.json", headers=FULL)).json()
        assert {f"/v1/{k}" for k in ROWS} <= set(spec["paths"])
        assert (await c.get("/docs")).status_code == 404  # no interactive pages


async def test_unsupported_content_type_is_415(client: httpx.AsyncClient) -> None:
    r = await client.post("/v1/spend", content=b"<xml/>", headers={**FULL, "content-type": "application/xml"})
    assert r.status_code == 415


@pytest.fixture
def no_kafka_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    from pulse_shared.settings import common_settings

    monkeypatch.delenv("PULSE_KAFKA_BOOTSTRAP", raising=False)
    common_settings.cache_clear()
    yield
    common_settings.cache_clear()


@pytest.mark.usefixtures("no_kafka_env")
def test_demo_app_runs_on_the_in_memory_bus() -> None:
    from fastapi.testclient import TestClient

    from pulse_ingest.main import create_app
    from pulse_ingest.settings import IngestSettings

    app = create_app(IngestSettings(demo=True))
    with TestClient(app) as http:  # runs the lifespan (in-memory broker)
        r = http.post("/v1/budgets", json=ROWS["budgets"])
        assert r.status_code == 200 and r.json()["accepted"] == 1
        assert http.get("/health").status_code == 200


async def test_openapi_examples_are_accepted(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json", headers=FULL)).json()
    for kind in ROWS:
        content = spec["paths"][f"/v1/{kind}"]["post"]["requestBody"]["content"]
        for media, body in content.items():
            example = body["example"]
            payload = json.dumps(example) if media == "application/json" else example
            r = await client.post(f"/v1/{kind}", content=payload,
                                  headers={**FULL, "content-type": media})
            assert r.status_code == 200, (kind, media, r.text)


@pytest.mark.usefixtures("no_kafka_env")
def test_create_app_refuses_unsafe_configuration() -> None:
    from pulse_ingest.main import create_app
    from pulse_ingest.settings import ConfigurationError, IngestSettings
    from pulse_shared.bus import make_broker

    with pytest.raises(ConfigurationError, match="PII_SALT"):
        create_app(IngestSettings(pii_salt=""), broker=make_broker(None))
    with pytest.raises(ConfigurationError, match="KAFKA_BOOTSTRAP"):
        create_app(IngestSettings(pii_salt="test-salt-0123456789"))


async def test_build_gives_a_component_around_the_service(memory_bus: MemoryBus) -> None:
    from pulse_ingest.main import build

    component = build(None, memory_bus.bus, ingest_settings())
    assert component.name == "ingest" and component.router is not None
    await component.start()
    result = await component.service.ingest("budgets", ROWS["budgets"], source="t")
    await component.stop()
    assert result.accepted == 1


@pytest.mark.usefixtures("no_kafka_env")
def test_app_starts_without_kafka_and_answers_503() -> None:
    from fastapi.testclient import TestClient

    from pulse_ingest.main import create_app
    from pulse_ingest.settings import IngestSettings
    from pulse_shared.bus import make_broker
    from pulse_testinfra import free_port

    port = free_port()  # a port nobody listens on
    app = create_app(IngestSettings(pii_salt="test-salt-0123456789", auth_required=False,
                                    connect_retry_s=0.2, retry_after_s=2),
                     broker=make_broker(f"127.0.0.1:{port}"))
    with TestClient(app) as http:
        r = http.post("/v1/budgets", json=ROWS["budgets"])
        assert r.status_code == 503 and r.headers["retry-after"] == "2"
        assert http.get("/health").status_code == 503
