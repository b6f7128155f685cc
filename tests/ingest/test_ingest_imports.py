"""CSV exports of Google Ads, LinkedIn Ads, HubSpot and Stripe → Pulse events."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from ingest_support import KEYS, MemoryBus

from pulse_ingest.domain.imports import IMPORTS, MappingError, map_export
from pulse_ingest.domain.normalize import normalise_rows
from pulse_ingest.main import build_api
from pulse_ingest.service import IngestService
from pulse_shared.topics import DELIVERABILITY, PIPELINE, SPEND, SUBSCRIPTIONS, TOUCHPOINTS

DATA = Path(__file__).resolve().parents[1] / "data"
SAMPLES = {
    "google_ads": "google_ads_campaign_report.csv",
    "linkedin_ads": "linkedin_ads_campaign_export.csv",
    "hubspot_contacts": "hubspot_contacts_export.csv",
    "hubspot_deals": "hubspot_deals_export.csv",
    "stripe_subscriptions": "stripe_subscriptions_export.csv",
    "sendgrid_stats": "sendgrid_stats.csv",
    "mailchimp_campaigns": "mailchimp_campaigns.csv",
}
PII = [b"Lovelace", b"Babbage", b"Hopper", b"Turing", b"Katherine", b"ada.lovelace@",
       b"@analytical-engines", b"7946 0958", b"555 0147", b"Sam Seller", b"call Ada"]


def sample(source: str) -> str:
    return (DATA / SAMPLES[source]).read_text()


def test_every_import_has_a_sample() -> None:
    assert set(SAMPLES) == set(IMPORTS)


def test_google_ads_mapping() -> None:
    mapped = map_export("google_ads", sample("google_ads"))
    assert mapped.errors == [] and mapped.received == 9  # preamble and totals skipped
    rows = mapped.rows["spend"]
    first = rows[1]
    assert first == {
        "event_id": "google_ads:1234567802:2026-11-01", "date": "2026-11-01",
        "channel": "paid_search", "campaign_id": "1234567802", "amount": "1540.77",
        "impressions": 8310, "clicks": 241, "currency": "USD",
    }
    assert rows[2]["channel"] == "display"
    assert rows[8]["amount"] == "0"  # "--" means nothing spent
    total = sum(Decimal(r["amount"]) for r in rows)
    assert total == Decimal("5335.29")


def test_linkedin_mapping() -> None:
    mapped = map_export("linkedin_ads", sample("linkedin_ads"))
    assert mapped.errors == []
    rows = mapped.rows["spend"]
    assert [r["date"] for r in rows] == ["2026-11-01", "2026-11-01", "2026-11-02", "2026-11-02"]
    assert rows[2]["amount"] == "1011.02" and rows[2]["impressions"] == 115842
    assert {r["channel"] for r in rows} == {"paid_social"}
    assert rows[0]["campaign_id"] == "612345001"


def test_hubspot_contacts_mapping() -> None:
    mapped = map_export("hubspot_contacts", sample("hubspot_contacts"))
    assert mapped.errors == []
    touches = mapped.rows["touchpoints"]
    assert len(touches) == 5
    assert touches[0]["account_id"] == "hubspot-company-9001"
    assert touches[0]["channel"] == "paid_search" and touches[0]["source"] == "google"
    assert touches[3]["account_id"] == "domain-bletchley.example"  # no company id
    assert touches[4]["channel"] == "organic_social"
    for t in touches:  # only the e-mail (hashed later) is read; names and phones never
        assert not ({"First Name", "Phone Number", "Company Name"} & set(t))
    stages = {(p["account_id"], p["stage"]): p["occurred_at"] for p in mapped.rows["pipeline"]}
    # two contacts of company 9001 became leads: the account's lead is the earliest
    assert stages[("hubspot-company-9001", "lead")].startswith("2026-09-02T09:14")
    assert stages[("hubspot-company-9001", "won")].startswith("2026-10-15T16:45")
    assert ("hubspot-company-9002", "sql") in stages
    assert ("hubspot-company-9002", "opportunity") not in stages


def test_hubspot_deals_mapping() -> None:
    mapped = map_export("hubspot_deals", sample("hubspot_deals"))
    assert mapped.errors == []
    events = [(p["event_id"], p["stage"], p["amount"]) for p in mapped.rows["pipeline"]]
    assert events == [
        ("hubspot:deal:7001:opportunity", "opportunity", "17880"),
        ("hubspot:deal:7001:won", "won", "17880"),
        ("hubspot:deal:7002:opportunity", "opportunity", "46800"),
        ("hubspot:deal:7003:opportunity", "opportunity", "5880"),
        ("hubspot:deal:7003:lost", "lost", "5880"),
    ]
    assert mapped.rows["pipeline"][4]["account_id"] == "hubspot-company-9003"
    assert all("Deal Name" not in r and "Ada" not in str(r) for r in mapped.rows["pipeline"])


def test_stripe_mapping_replays_account_mrr() -> None:
    mapped = map_export("stripe_subscriptions", sample("stripe_subscriptions"))
    assert mapped.errors == []
    by_account: dict[str, list[tuple[str, str]]] = {}
    for r in sorted(mapped.rows["subscriptions"], key=lambda r: r["occurred_at"]):
        by_account.setdefault(r["account_id"], []).append((r["event_type"], r["mrr"]))
    assert by_account["cus_AAA"] == [
        ("trial_started", "0"), ("subscription_started", "1490.00"),
        ("subscription_upgraded", "1590.00"),  # + 5 seats × 20
    ]
    assert by_account["cus_BBB"] == [("subscription_started", "3900.00")]  # 46800 / 12
    assert by_account["cus_CCC"] == [
        ("subscription_started", "490.00"), ("subscription_canceled", "0"),
        ("subscription_reactivated", "1490.00"),
    ]
    assert by_account["cus_DDD"] == [("trial_started", "0")]  # still trialing


def test_every_sample_row_validates_against_the_event_models() -> None:
    for source in IMPORTS:
        mapped = map_export(source, sample(source))
        for kind, rows in mapped.rows.items():
            batch = normalise_rows(kind, rows, "salt", indexes=mapped.indexes[kind])
            assert batch.errors == [], (source, batch.errors)


def test_row_errors_name_export_row_and_column() -> None:
    text = ("Day,Campaign,Cost,Clicks\n2026-11-01,A,10,1\nnot-a-day,B,5,1\n"
            "2026-11-02,C,abc,1\n2026-11-02,,5,1\n")
    mapped = map_export("google_ads", text)
    assert [(e.index, e.field) for e in mapped.errors] == [(1, "Day"), (2, "Cost"), (3, "Campaign")]
    assert len(mapped.rows["spend"]) == 1
    # A column read under one of several names is named as this export spells it.
    aliased = {
        "google_ads": ("Date,Campaign,Cost,Impr.\n,A,1,1\n2026-11-01,A,1,:\n",
                       [(0, "Date"), (1, "Impr.")]),
        "linkedin_ads": ("Day,Campaign,Amount Spent\n2026-11-01,A,x\n", [(0, "Amount Spent")]),
        "hubspot_deals": ("Deal ID,Deal Stage,Created Date,Company ID\n7,x,,1\n8,x,2026-11-01,\n",
                          [(0, "Created Date"), (1, "Company ID")]),
        "hubspot_contacts": ("Record ID,Created Date,Company ID\n,2026-11-01,\n1,,5\n2,2026-11-01,\n",
                             [(0, "Record ID"), (1, "Created Date"), (2, "Company ID")]),
    }
    for source, (text, expected) in aliased.items():
        errors = map_export(source, text).errors
        assert [(e.index, e.field) for e in errors] == expected, (source, errors)
    with pytest.raises(MappingError):
        map_export("google_ads", "foo,bar\n1,2\n")
    with pytest.raises(MappingError):
        map_export("salesforce", "x")


@pytest.fixture
async def client(service: IngestService) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=build_api(service))
    async with httpx.AsyncClient(transport=transport, base_url="http://ingest") as c:
        yield c


@pytest.mark.parametrize("source", list(SAMPLES))
async def test_import_endpoint_publishes_without_pii(
    source: str, client: httpx.AsyncClient, memory_bus: MemoryBus
) -> None:
    headers = {"X-API-Key": KEYS["full"][0], "content-type": "text/csv"}
    r = await client.post(f"/v1/import/{source}", content=sample(source), headers=headers)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["accepted"] > 0 and body["rejected"] == []
    published = memory_bus.recorder.all_bytes()
    for secret in PII:
        assert secret.lower() not in published.lower(), secret
    topic = {"google_ads": SPEND, "linkedin_ads": SPEND, "hubspot_contacts": TOUCHPOINTS,
             "hubspot_deals": PIPELINE, "stripe_subscriptions": SUBSCRIPTIONS,
             "sendgrid_stats": DELIVERABILITY, "mailchimp_campaigns": DELIVERABILITY}[source]
    assert memory_bus.recorder.events(topic.name)
    again = await client.post(f"/v1/import/{source}", content=sample(source), headers=headers)
    assert again.json()["accepted"] == 0 and again.json()["duplicates"] == body["accepted"]


async def test_import_scope_and_errors(client: httpx.AsyncClient, memory_bus: MemoryBus) -> None:
    billing = {"X-API-Key": KEYS["billing"][0], "content-type": "text/csv"}
    r = await client.post("/v1/import/hubspot_contacts", content=sample("hubspot_contacts"),
                          headers=billing)
    assert r.status_code == 403
    r = await client.post("/v1/import/stripe_subscriptions", content="a,b\n1,2\n", headers=billing)
    assert r.status_code == 400
    r = await client.post("/v1/import/nope", content="a\n", headers=billing)
    assert r.status_code == 404
    bad = sample("stripe_subscriptions") + "sub_X,,x@y.z,X,p,p,1,usd,month,10,active,,,,,,,,,\n"
    r = await client.post("/v1/import/stripe_subscriptions?atomic=true", content=bad,
                          headers=billing)
    assert r.status_code == 422
    assert r.json()["rejected"] == [{"index": 6, "field": "Customer ID",
                                     "reason": "required value missing"}]
    assert memory_bus.recorder.count() == 0


async def test_import_file_helper(service: IngestService, memory_bus: MemoryBus) -> None:
    from pulse_ingest.service import import_file

    result = await import_file(service, "linkedin_ads", DATA / SAMPLES["linkedin_ads"])
    assert (result.accepted, result.source, result.by_kind) == (4, "linkedin_ads", {"spend": 4})
    assert len(memory_bus.recorder.events(SPEND.name)) == 4


def test_cli_hash_key_and_sources() -> None:
    from typer.testing import CliRunner

    from pulse_ingest.cli import app
    from pulse_ingest.settings import verify_api_key

    runner = CliRunner()
    key = "s3cret-0123456789abcdefghijklmnopqrstuvwxyz"
    out = runner.invoke(app, ["hash-key", key])
    assert out.exit_code == 0 and verify_api_key(key, out.stdout.strip())
    listed = runner.invoke(app, ["sources"])
    assert all(name in listed.stdout for name in IMPORTS)


def test_tsv_and_semicolon_exports_are_read() -> None:
    text = sample("google_ads")
    import csv
    import io

    rows = list(csv.reader(io.StringIO(text)))
    for delimiter in ("\t", ";"):
        buffer = io.StringIO()
        csv.writer(buffer, delimiter=delimiter).writerows(rows)
        mapped = map_export("google_ads", buffer.getvalue())
        assert mapped.errors == [] and len(mapped.rows["spend"]) == 9, delimiter
        assert mapped.rows["spend"][1]["amount"] == "1540.77"


async def test_utf16_excel_export_and_semicolon_csv_body(
    client: httpx.AsyncClient, memory_bus: MemoryBus
) -> None:
    headers = {"X-API-Key": KEYS["full"][0], "content-type": "text/csv"}
    body = sample("linkedin_ads").encode("utf-16")  # with BOM
    r = await client.post("/v1/import/linkedin_ads", content=body, headers=headers)
    assert r.status_code == 200 and r.json()["accepted"] == 4, r.text
    r = await client.post("/v1/budgets", content="month;channel;amount\n2026-12;email;500\n",
                          headers=headers)
    assert r.status_code == 200 and r.json()["accepted"] == 1, r.text


async def test_import_larger_than_max_rows_is_413(memory_bus: MemoryBus) -> None:
    from ingest_support import ingest_settings

    svc = IngestService(memory_bus.bus, ingest_settings(max_rows=3))
    transport = httpx.ASGITransport(app=build_api(svc))
    async with httpx.AsyncClient(transport=transport, base_url="http://i") as c:
        r = await c.post("/v1/import/google_ads", content=sample("google_ads"),
                         headers={"X-API-Key": KEYS["full"][0], "content-type": "text/csv"})
    assert r.status_code == 413
    assert memory_bus.recorder.count() == 0
