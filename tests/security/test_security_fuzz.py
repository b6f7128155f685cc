"""Fuzzing the ingest validation through its HTTP API with ≥ 10k generated rows and
≥ 2k generated raw bodies: never a 5xx, every row accounted for (accepted, duplicate or
rejected), every rejection names its row and field with a reason, atomic batches publish
nothing on any error, and no generated e-mail address is published raw.

(tests/ingest/test_ingest_properties.py covers the same properties with a few hundred
examples; this runs the volume.)"""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pulse_ingest.domain.normalize import ALIASES, KIND_TOPICS, KINDS
from pulse_ingest.main import build_api
from pulse_ingest.service import IngestService
from pulse_ingest.settings import ApiKey, IngestSettings, hash_api_key

KEY = "fuzz-key-0123456789abcdefghijklmnopq"
HEADERS = {"X-API-Key": KEY}
def fuzz(n: int) -> settings:
    return settings(max_examples=n, deadline=None, database=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


class FakeBus:
    def __init__(self) -> None:
        self.published: list[bytes] = []

    async def publish(self, topic: Any, events: Any) -> None:
        self.published.extend(e.to_json() for e in events)


def api() -> tuple[TestClient, FakeBus]:
    bus = FakeBus()
    settings_ = IngestSettings(
        pii_salt="fuzz-salt-0123456789",
        api_keys=[ApiKey(name="fuzz", key_hash=hash_api_key(KEY), kinds=[])],
        max_rows=200, publish_timeout_s=5.0,
    )
    service = IngestService(bus, settings_)  # type: ignore[arg-type]
    return TestClient(build_api(service), raise_server_exceptions=False), bus


emails = st.from_regex(r"[a-z]{1,8}\.[a-z]{1,8}@[a-z]{2,8}\.(com|io|org)", fullmatch=True)
tricky = st.sampled_from([
    "2026-11-01", "2026-11-01T10:00:00Z", "2026-11-01T10:00:00+05:30", "2026-11-01 10:00",
    "2026-13-45", "0000-00-00", "9999-12-31T23:59:59Z", "paid_search", "Paid Search", "Email",
    "cpc", "won", "opportunity", "subscription_started", "ad_click", "12.50", "-3", "1e400",
    "NaN", "Infinity", "USD", "usd", "EURO", "2026-11", "2026-W48", "", " ", "\x00", "\u202e",
    "' OR '1'='1", "'; DROP TABLE touchpoints; --", "{x:String}", "<script>", "𝔘𝔫𝔦",
    "a" * 300, "1" * 40, "0.00001", "99999999999999999999.9999",
])
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-10**20, 10**20),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=40), emails, tricky,
)
values = st.one_of(scalars, st.lists(scalars, max_size=3),
                   st.dictionaries(st.text(max_size=5), scalars, max_size=2))


def field_names(kind: str) -> list[str]:
    model = KIND_TOPICS[kind].model
    extra = ["email", "contact_email", "first_name", "phone", "notes", "junk", "kind", ""]
    return [*model.model_fields, *ALIASES.get(kind, {}), *extra]


@st.composite
def batches(draw: st.DrawFn) -> tuple[str, list[Any]]:
    kind = draw(st.sampled_from(KINDS))
    keys = st.sampled_from(field_names(kind)) | st.text(max_size=10)
    row = st.dictionaries(keys, values, max_size=14)
    return kind, draw(st.lists(st.one_of(row, row, row, scalars), min_size=20, max_size=45))


def check_response(r: Any, rows: list[Any], atomic: bool, published: list[bytes]) -> None:
    assert r.status_code in (200, 422), (r.status_code, r.text[:500])
    result = r.json()
    rejected_rows = {e["index"] for e in result["rejected"]}
    for error in result["rejected"]:
        assert 0 <= error["index"] < len(rows), error
        assert error["field"] and error["reason"], error
    assert result["rejected_rows"] == len(rejected_rows)
    assert result["accepted"] + result["duplicates"] + result["rejected_rows"] == len(rows)
    assert (r.status_code == 422) == bool(rejected_rows)
    if atomic and rejected_rows:
        assert published == [] and result["accepted"] == 0
    else:
        assert result["accepted"] == len(published)
    blob = b"".join(published)
    for row in rows:
        if isinstance(row, dict):
            for value in row.values():
                if isinstance(value, str) and "@" in value and "." in value.split("@")[-1]:
                    assert value.encode() not in blob, value


def test_fuzz_ingest_rows_10k() -> None:
    http, bus = api()
    seen = {"rows": 0, "requests": 0}

    @fuzz(420)
    @given(batch=batches(), atomic=st.booleans())
    def one(batch: tuple[str, list[Any]], atomic: bool) -> None:
        kind, rows = batch
        before = len(bus.published)
        body = json.dumps(rows, default=str, allow_nan=True)
        r = http.post(f"/v1/{kind}?atomic={str(atomic).lower()}", content=body,
                      headers={**HEADERS, "content-type": "application/json"})
        check_response(r, rows, atomic, bus.published[before:])
        seen["rows"] += len(rows)
        seen["requests"] += 1

    with http:
        one()
    print(f"fuzzed {seen['rows']} rows in {seen['requests']} requests")
    assert seen["rows"] >= 10_000, seen


CONTENT_TYPES = ["application/json", "application/x-ndjson", "text/csv", "text/plain",
                 "application/xml", "", "multipart/form-data; boundary=x",
                 "application/json; charset=latin-1"]


def test_fuzz_ingest_raw_bodies_never_5xx() -> None:
    http, _bus = api()
    seen = {"bodies": 0}
    json_like = st.recursive(
        scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
        max_leaves=12,
    ).map(lambda v: json.dumps(v, default=str, allow_nan=True).encode())
    csv_like = st.lists(st.lists(st.text(max_size=12), min_size=1, max_size=6), min_size=1,
                        max_size=8).map(lambda rows: "\n".join(",".join(r) for r in rows).encode())
    bodies = st.one_of(st.binary(max_size=300), json_like, csv_like)
    paths = st.sampled_from([*(f"/v1/{k}" for k in KINDS), "/v1/import/hubspot_contacts",
                             "/v1/import/stripe_subscriptions", "/v1/import/google_ads"])

    @fuzz(2100)
    @given(path=paths, body=bodies, ctype=st.sampled_from(CONTENT_TYPES))
    def one(path: str, body: bytes, ctype: str) -> None:
        r = http.post(path, content=body, headers={**HEADERS, "content-type": ctype})
        assert r.status_code < 500, (path, ctype, body[:100], r.status_code, r.text[:300])
        assert r.status_code in (200, 400, 413, 415, 422), (r.status_code, r.text[:300])
        if r.status_code >= 400:
            detail = r.json()
            assert detail, r.text  # every rejection says why
        seen["bodies"] += 1

    with http:
        one()
    assert seen["bodies"] >= 2000, seen


@pytest.mark.parametrize("kind,row", [
    ("touchpoints", {"occurred_at": "9999-12-31T23:59:59-05:00", "account_id": "a",
                     "contact_email": "x@y.com", "channel": "email", "touch_type": "ad_click"}),
    ("pipeline", {"occurred_at": "0001-01-01T00:00:00+05:00", "account_id": "a",
                  "stage": "won", "amount": "1"}),
])
def test_out_of_range_timestamps_are_422_not_500(kind: str, row: dict[str, Any]) -> None:
    http, bus = api()
    with http:
        r = http.post(f"/v1/{kind}", json=[row], headers=HEADERS)
    assert r.status_code == 422, (r.status_code, r.text[:300])
    assert r.json()["rejected"][0]["field"] == "occurred_at"
    assert bus.published == []
