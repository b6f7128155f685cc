"""Security of the HTTP APIs: authentication of the ingest API, SQL-injection and markup
strings in every user-supplied field and filter (ingest rows, reporting dashboard/JSON API):
they are data — never a 5xx, never executed, never reflected as markup."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from auth_support import bearer
from faststream.kafka import KafkaMessage, TestKafkaBroker

from pulse_ingest.main import build_api
from pulse_ingest.service import IngestService
from pulse_ingest.settings import ApiKey, IngestSettings, hash_api_key
from pulse_shared.bus import Bus, make_broker
from pulse_shared.store import Store
from pulse_shared.topics import INPUT_TOPICS

INJECTIONS = [
    "' OR '1'='1",
    "'; DROP TABLE touchpoints; --",
    "1; TRUNCATE TABLE kpi_values",
    "x') UNION ALL SELECT name FROM system.tables --",
    "{id:String}",
    "\\'; SELECT sleep(3); --",
    '" OR ""="',
    "<script>alert(1)</script>",
    "../../../../etc/passwd",
    "a\x00b",
]

KEYS = {"full": ("sec-full-key-0123456789abcdefghijklm", []),
        "crm": ("sec-crm-key-0123456789abcdefghijklmn", ["touchpoints", "pipeline"])}
ROWS: dict[str, dict[str, Any]] = {
    "touchpoints": {"occurred_at": "2026-11-20T10:00:00Z", "account_id": "a1",
                    "contact_email": "x@y.com", "channel": "email", "touch_type": "email_open",
                    "source": "s", "medium": "m", "campaign_id": "c", "utm_source": "u",
                    "utm_medium": "u", "utm_campaign": "u", "utm_term": "u",
                    "utm_content": "u", "cost": "1.5", "currency": "USD"},
    "spend": {"date": "2026-11-20", "channel": "paid_search", "campaign_id": "c1",
              "amount": "12.30", "impressions": 1000, "clicks": 12, "currency": "USD"},
    "subscriptions": {"occurred_at": "2026-11-20T10:00:00Z", "account_id": "a1",
                      "event_type": "subscription_started", "mrr": 490, "plan": "starter"},
    "pipeline": {"occurred_at": "2026-11-20T10:00:00Z", "account_id": "a1",
                 "stage": "opportunity", "amount": "5880"},
    "budgets": {"month": "2026-12", "channel": "paid_social", "amount": 9000},
}


@pytest.fixture
async def ingest() -> AsyncIterator[tuple[httpx.AsyncClient, dict[str, list[bytes]]]]:
    broker = make_broker(None)
    published: dict[str, list[bytes]] = {t.name: [] for t in INPUT_TOPICS}
    for topic in INPUT_TOPICS:
        def make(name: str) -> Any:
            async def record(msg: KafkaMessage) -> None:
                published[name].append(msg.body)
            return record
        broker.subscriber(topic.name)(make(topic.name))
    settings = IngestSettings(
        pii_salt="security-salt-0123456789",
        api_keys=[ApiKey(name=n, key_hash=hash_api_key(k), kinds=kinds)
                  for n, (k, kinds) in KEYS.items()],
        publish_timeout_s=5.0,
    )
    async with TestKafkaBroker(broker) as test_broker:
        app = build_api(IngestService(Bus(test_broker, "ingest"), settings))
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="http://ingest") as client:
            yield client, published


WRONG_CREDENTIALS: list[dict[str, str]] = [
    {},
    {"X-API-Key": ""},
    {"X-API-Key": "wrong"},
    {"X-API-Key": KEYS["full"][0][:-1]},  # near miss
    {"X-API-Key": KEYS["full"][0].upper()},
    {"X-API-Key": hash_api_key(KEYS["full"][0])},  # the stored hash is not a key
    {"X-API-Key": "' OR '1'='1"},
    {"Authorization": "Bearer wrong"},
    {"Authorization": f"Basic {KEYS['full'][0]}"},
    {"Authorization": f"bearer{KEYS['full'][0]}"},
    {"Authorization": "Bearer "},
]


@pytest.mark.parametrize("kind", list(ROWS))
async def test_ingest_rejects_missing_and_wrong_keys_with_401(
    kind: str, ingest: tuple[httpx.AsyncClient, dict[str, list[bytes]]]
) -> None:
    client, published = ingest
    for headers in WRONG_CREDENTIALS:
        r = await client.post(f"/v1/{kind}", json=[ROWS[kind]], headers=headers)
        assert r.status_code == 401, (headers, r.status_code, r.text)
        assert "sec-full-key" not in r.text
    r = await client.post("/v1/import/hubspot_contacts", content=b"Email\nx@y.com\n",
                          headers={"content-type": "text/csv"})
    assert r.status_code == 401, r.text
    assert sum(len(v) for v in published.values()) == 0
    ok = await client.post(f"/v1/{kind}", json=[ROWS[kind]], headers={"X-API-Key": KEYS["full"][0]})
    assert ok.status_code == 200, ok.text


@pytest.mark.parametrize("kind", ["spend", "subscriptions", "budgets"])
async def test_ingest_scoped_key_gets_403_outside_its_kinds(
    kind: str, ingest: tuple[httpx.AsyncClient, dict[str, list[bytes]]]
) -> None:
    client, published = ingest
    for headers in ({"X-API-Key": KEYS["crm"][0]}, {"Authorization": f"Bearer {KEYS['crm'][0]}"}):
        r = await client.post(f"/v1/{kind}", json=[ROWS[kind]], headers=headers)
        assert r.status_code == 403, r.text
    assert sum(len(v) for v in published.values()) == 0


@pytest.mark.parametrize("kind", list(ROWS))
async def test_ingest_injection_strings_in_every_field_are_data(
    kind: str, ingest: tuple[httpx.AsyncClient, dict[str, list[bytes]]]
) -> None:
    client, published = ingest
    headers = {"X-API-Key": KEYS["full"][0]}
    rows = [{**ROWS[kind], field: text} for field in ROWS[kind] for text in INJECTIONS]
    for atomic in ("false", "true"):
        r = await client.post(f"/v1/{kind}?atomic={atomic}", json=rows, headers=headers)
        assert r.status_code in (200, 422), r.text
        body = r.json()
        for error in body.get("rejected", []):
            assert 0 <= error["index"] < len(rows) and error["field"] and error["reason"]
    # query-string injection in the atomic flag and the import source
    for text in INJECTIONS:
        r = await client.post(f"/v1/{kind}?atomic={quote(text)}", json=[ROWS[kind]],
                              headers=headers)
        assert r.status_code < 500, r.text
        r = await client.post(f"/v1/import/{quote(text, safe='')}", content=b"a\n1\n",
                              headers={**headers, "content-type": "text/csv"})
        assert r.status_code < 500 and r.status_code != 200, r.text
    # accepted rows carry the strings verbatim as data (or hashed, for contact fields)
    for raw in published[f"{next(t.name for t in INPUT_TOPICS if t.model.kind in kind)}"]:
        json.loads(raw)


# -- reporting dashboard and its JSON API ---------------------------------------------


@pytest.fixture(scope="module")
def dashboard(embedded_store: Store, tmp_path_factory: pytest.TempPathFactory) -> Any:
    from starlette.testclient import TestClient

    from pulse_reporting.main import build
    from pulse_reporting.settings import ReportingSettings
    from pulse_reporting.web import create_dashboard

    out: Path = tmp_path_factory.mktemp("sec-reports")
    settings = ReportingSettings(output_dir=out, schedule_enabled=False)
    component = build(embedded_store, Bus(make_broker(None), "reporting"), settings)
    # Signed in as a CMO (every page): the injection strings reach the handlers.
    with TestClient(create_dashboard(component), raise_server_exceptions=False,
                    headers=bearer(embedded_store, "cmo")) as client:
        yield client


def test_dashboard_filters_treat_injection_as_data(
    dashboard: Any, embedded_store: Store, row_counts: Callable[[Store], dict[str, int]]
) -> None:
    before = row_counts(embedded_store)
    paths = ["/", "/campaigns", "/api/overview", "/api/campaigns", "/api/periods"]
    for text in INJECTIONS:
        for path in paths:
            for param in ("grain", "period", "model"):
                query = {"grain": "month", "period": "2026-11", "model": "linear", param: text}
                r = dashboard.get(path, params=query)
                assert r.status_code < 500, (path, param, text, r.status_code, r.text[:500])
                if r.status_code == 400 and path.startswith("/api"):
                    assert "error" in r.json()
        r = dashboard.get("/reports/file", params={"report_id": text, "format": text})
        assert r.status_code == 404, (text, r.status_code)
        r = dashboard.get("/reports/file", params={"report_id": "x", "format": text})
        assert r.status_code == 404
    after = row_counts(embedded_store)
    assert set(after) == set(before)
    assert all(after[t] >= before[t] for t in before), "a filter deleted rows"


def test_dashboard_html_pages_do_not_reflect_markup(dashboard: Any) -> None:
    script = "<script>alert(1)</script>"
    for path in ("/", "/campaigns"):
        for param in ("grain", "period", "model"):
            query = {"grain": "month", "period": "2026-11", "model": "linear", param: script}
            r = dashboard.get(path, params=query)
            assert r.status_code < 500
            assert script not in r.text, (path, param)


def test_report_file_does_not_serve_files_outside_the_output_dir(dashboard: Any) -> None:
    for report_id in ("../../../../etc/passwd", "/etc/passwd", "..", "%2e%2e%2fetc%2fpasswd"):
        for fmt in ("md", "../../../../etc/passwd", "html/../../x"):
            r = dashboard.get("/reports/file", params={"report_id": report_id, "format": fmt})
            assert r.status_code == 404, (report_id, fmt)
            assert "root:" not in r.text


