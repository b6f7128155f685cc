"""Property-based tests: random and malformed rows never cause a 500, every rejection
names its row and field, and no generated e-mail address is ever published raw."""

from __future__ import annotations

import json
from typing import Any

from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ingest_support import KEYS, SALT, ingest_settings

from pulse_ingest.domain.normalize import ALIASES, KIND_TOPICS, KINDS, normalise_rows
from pulse_ingest.main import build_api
from pulse_ingest.service import IngestService
from pulse_shared.privacy import is_hashed


class FakeBus:
    def __init__(self) -> None:
        self.published: list[bytes] = []

    async def publish(self, topic: Any, events: Any) -> None:
        self.published.extend(e.to_json() for e in events)


emails = st.from_regex(r"[a-z]{1,8}\.[a-z]{1,8}@[a-z]{2,8}\.(com|io|org)", fullmatch=True)
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-10**12, 10**12),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=30), emails,
    st.sampled_from(["2026-11-01", "2026-11-01T10:00:00Z", "2026-13-45", "paid_search",
                     "Email", "cpc", "won", "subscription_started", "ad_click", "12.50",
                     "-3", "1e400", "NaN", "USD", "usd", "2026-11", ""]),
)
values = st.one_of(scalars, st.lists(scalars, max_size=3),
                   st.dictionaries(st.text(max_size=5), scalars, max_size=2))


def field_names(kind: str) -> list[str]:
    model = KIND_TOPICS[kind].model
    extra = ["email", "contact_email", "first_name", "phone", "notes", "junk", "kind"]
    return [*model.model_fields, *ALIASES.get(kind, {}), *extra]


@st.composite
def rows_of(draw: st.DrawFn, kind: str) -> list[Any]:
    keys = st.sampled_from(field_names(kind)) | st.text(max_size=10)
    row = st.dictionaries(keys, values, max_size=12)
    return draw(st.lists(st.one_of(row, scalars), max_size=15))


kinds = st.sampled_from(KINDS)


@settings(max_examples=100, deadline=None, database=None)
@given(data=st.data(), kind=kinds)
def test_normalise_never_raises_and_every_row_is_accounted_for(data: st.DataObject, kind: str) -> None:
    rows = data.draw(rows_of(kind))
    batch = normalise_rows(kind, rows, SALT)
    rejected = {e.index for e in batch.errors}
    assert len(batch.events) + len(rejected) == len(rows)
    assert set(batch.indexes).isdisjoint(rejected)
    for error in batch.errors:
        assert 0 <= error.index < len(rows)
        assert error.field and error.reason
    for event in batch.events:
        if kind == "touchpoints":
            assert is_hashed(event.contact_id)  # type: ignore[attr-defined]
        text = event.model_dump_json()
        for row in rows:
            if isinstance(row, dict):
                for value in row.values():
                    if isinstance(value, str) and "@" in value and "." in value.split("@")[-1]:
                        assert value not in text


def client() -> tuple[TestClient, FakeBus]:
    bus = FakeBus()
    service = IngestService(bus, ingest_settings(max_rows=50))  # type: ignore[arg-type]
    return TestClient(build_api(service), raise_server_exceptions=False), bus


HEADERS = {"X-API-Key": KEYS["full"][0]}


@settings(max_examples=60, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), kind=kinds, atomic=st.booleans())
def test_api_rows_never_500_and_rejections_name_row_and_field(
    data: st.DataObject, kind: str, atomic: bool
) -> None:
    rows = data.draw(rows_of(kind))
    http, bus = client()
    with http:
        body = json.dumps(rows, default=str, allow_nan=True)
        r = http.post(f"/v1/{kind}?atomic={str(atomic).lower()}", content=body,
                      headers={**HEADERS, "content-type": "application/json"})
    assert r.status_code in (200, 422), r.text
    result = r.json()
    for error in result["rejected"]:
        assert 0 <= error["index"] < len(rows)
        assert error["field"] and error["reason"]
    if r.status_code == 422:
        assert result["rejected"]
    if atomic and result["rejected"]:
        assert bus.published == []
    assert result["accepted"] == len(bus.published)
    published = b"".join(bus.published)
    for row in rows:
        if isinstance(row, dict):
            for value in row.values():
                if isinstance(value, str) and "@" in value and "." in value.split("@")[-1]:
                    assert value.encode() not in published


@settings(max_examples=60, deadline=None, database=None)
@given(
    body=st.binary(max_size=300) | st.text(max_size=300).map(str.encode),
    content_type=st.sampled_from(["application/json", "application/x-ndjson", "text/csv",
                                  "text/plain", "application/xml", ""]),
    path=st.sampled_from([*(f"/v1/{k}" for k in KINDS), "/v1/import/google_ads",
                          "/v1/import/stripe_subscriptions", "/v1/import/hubspot_contacts"]),
)
def test_api_garbage_bodies_never_500(body: bytes, content_type: str, path: str) -> None:
    http, _ = client()
    with http:
        r = http.post(path, content=body, headers={**HEADERS, "content-type": content_type})
    assert r.status_code in (200, 400, 413, 415, 422), (r.status_code, r.text)


SAMPLE_FILES = {
    "google_ads": "google_ads_campaign_report.csv",
    "linkedin_ads": "linkedin_ads_campaign_export.csv",
    "hubspot_contacts": "hubspot_contacts_export.csv",
    "hubspot_deals": "hubspot_deals_export.csv",
    "stripe_subscriptions": "stripe_subscriptions_export.csv",
    "sendgrid_stats": "sendgrid_stats.csv",
    "mailchimp_campaigns": "mailchimp_campaigns.csv",
}
cells = st.one_of(
    st.text(max_size=12), emails,
    st.sampled_from(["", "--", "2026-11-01", "11/31/2026", "2026-11-01 10:00", "1,234.50",
                     "$12", "abc", "-5", "1e9", "canceled", "active", "trialing", "year",
                     "month", "fortnight", "Closed Won", "Closed Lost", "PAID_SEARCH",
                     "9001;9002", "Total: x"]),
)


def export_header(source: str) -> list[str]:
    import csv
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "data" / SAMPLE_FILES[source]).read_text()
    lines = list(csv.reader(text.splitlines()))
    return max(lines, key=len)  # the header is the widest line of each sample


@settings(max_examples=50, deadline=None, database=None)
@given(data=st.data(), source=st.sampled_from(list(SAMPLE_FILES)))
def test_imports_of_random_cells_never_raise_and_name_row_and_column(
    data: st.DataObject, source: str
) -> None:
    import csv
    import io

    from pulse_ingest.domain.imports import map_export

    header = export_header(source)
    rows = data.draw(st.lists(st.lists(cells, min_size=len(header), max_size=len(header)),
                              max_size=8))
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    writer.writerows(rows)
    mapped = map_export(source, buffer.getvalue())
    assert mapped.received <= len(rows)
    for error in mapped.errors:
        assert 0 <= error.index < max(mapped.received, 1)
        assert error.field in header and error.reason
    for kind, kind_rows in mapped.rows.items():
        batch = normalise_rows(kind, kind_rows, SALT, indexes=mapped.indexes[kind])
        for error in batch.errors:
            assert 0 <= error.index < mapped.received and error.field and error.reason
        for event in batch.events:
            text = event.model_dump_json()
            for row in rows:
                for cell in row:
                    if "@" in cell and "." in cell.split("@")[-1]:
                        assert cell not in text
