"""E-mail deliverability at ingest (issue 17, slice S3): the event's count rules, and the
ESP exports SendGrid statistics and Mailchimp campaign reports (tests/data samples)."""

from __future__ import annotations

from pathlib import Path

import pytest
from ingest_support import MemoryBus

from pulse_ingest.domain.imports import map_export
from pulse_ingest.domain.normalize import normalise_rows
from pulse_ingest.service import IngestService, import_file
from pulse_shared.events import EmailDeliveryStats
from pulse_shared.topics import BY_INGEST_KIND, DELIVERABILITY

DATA = Path(__file__).resolve().parents[1] / "data"


def test_kind_topic_and_table_are_registered() -> None:
    assert BY_INGEST_KIND["deliverability"] is DELIVERABILITY
    assert DELIVERABILITY.name == "email.deliverability.v1"
    assert DELIVERABILITY.table == "email_deliverability"
    assert DELIVERABILITY.model is EmailDeliveryStats and EmailDeliveryStats.kind == "email_delivery"


@pytest.mark.parametrize(("row", "field", "reason"), [
    ({"delivered": 1001}, "delivered", "1001 is more than sent (1000)"),
    ({"hard_bounces": 700, "soft_bounces": 400}, "soft_bounces",
     "hard_bounces + soft_bounces (1100) is more than sent (1000)"),
    ({"spam_complaints": 991}, "spam_complaints", "991 is more than delivered (990)"),
    ({"unique_opens": 991}, "unique_opens", "991 is more than delivered (990)"),
    ({"unique_clicks": 991}, "unique_clicks", "991 is more than delivered (990)"),
    ({"unsubscribes": -1}, "unsubscribes", "greater than or equal to 0"),
])
def test_impossible_counts_are_refused_naming_the_field(
    row: dict[str, int], field: str, reason: str
) -> None:
    base = {"day": "2026-11-20", "sending_domain": "Mail.Example.com", "sent": 1000,
            "delivered": 990}
    batch = normalise_rows("deliverability", [{**base, **row}], "salt")
    assert [(e.index, e.field) for e in batch.errors] == [(0, field)]
    assert reason in batch.errors[0].reason
    ok = normalise_rows("deliverability", [{**base, "esp": "SendGrid"}], "salt")
    assert ok.errors == []
    event = ok.events[0]
    assert isinstance(event, EmailDeliveryStats)
    assert (event.sending_domain, event.esp, event.campaign_id) == ("mail.example.com",
                                                                   "sendgrid", "")


def test_sendgrid_stats_export_mapping() -> None:
    mapped = map_export("sendgrid_stats", (DATA / "sendgrid_stats.csv").read_text())
    assert mapped.errors == [] and mapped.received == 5
    rows = mapped.rows["deliverability"]
    assert rows[0] == {
        "event_id": "sendgrid:mail-pulse-demo-io::2026-11-02", "day": "2026-11-02",
        "sending_domain": "mail.pulse-demo.io", "campaign_id": "", "esp": "sendgrid",
        "sent": 10000, "delivered": 9850, "hard_bounces": 100, "soft_bounces": 50,
        "spam_complaints": 5, "unsubscribes": 20, "unique_opens": 3940, "unique_clicks": 610,
    }
    assert [(r["day"], r["sending_domain"], r["sent"]) for r in rows[1:]] == [
        ("2026-11-02", "news.pulse-demo.io", 4000), ("2026-11-03", "mail.pulse-demo.io", 8000),
        ("2026-11-03", "news.pulse-demo.io", 2000), ("2026-11-04", "mail.pulse-demo.io", 0),
    ]
    batch = normalise_rows("deliverability", rows, "salt", indexes=mapped.indexes["deliverability"])
    assert batch.errors == [] and len(batch.events) == 5


def test_mailchimp_campaign_report_mapping() -> None:
    mapped = map_export("mailchimp_campaigns", (DATA / "mailchimp_campaigns.csv").read_text())
    assert mapped.errors == [] and mapped.received == 3
    first, offer, update = mapped.rows["deliverability"]
    assert first == {
        "event_id": "mailchimp:a1b2c3d4e5", "day": "2026-11-03",
        "sending_domain": "news.pulse-demo.io", "campaign_id": "a1b2c3d4e5",
        "esp": "mailchimp", "sent": 12000, "delivered": 11820, "hard_bounces": 120,
        "soft_bounces": 60, "spam_complaints": 6, "unsubscribes": 24, "unique_opens": 4728,
        "unique_clicks": 1182,
    }
    assert (offer["day"], offer["sending_domain"], offer["spam_complaints"]) == (
        "2026-11-27", "mail.pulse-demo.io", 40)
    assert update["day"] == "2026-11-10"  # "Nov 10, 2026 04:15 pm"
    batch = normalise_rows("deliverability", mapped.rows["deliverability"], "salt")
    assert batch.errors == []


def test_bad_export_rows_name_the_row_and_the_export_column() -> None:
    sendgrid = ("Date,Sending Domain,Requests,Delivered,Bounces,Unique Opens\n"
                "2026-11-02,mail.example.com,100,90,5,40\n"
                "2026-11-02,mail.example.com,lots,90,5,40\n"
                "2026-11-31,mail.example.com,100,90,5,40\n"
                "2026-11-03,,100,90,5,40\n"
                "2026-11-04,mail.example.com,100,90,-5,40\n")
    mapped = map_export("sendgrid_stats", sendgrid)
    assert [(e.index, e.field) for e in mapped.errors] == [
        (1, "Requests"), (2, "Date"), (3, "Sending Domain"), (4, "Bounces")]
    assert "not a number: 'lots'" in mapped.errors[0].reason
    # Numbers that cannot be true pass the mapping and are refused by the event model,
    # still naming the export's row.
    impossible = sendgrid.splitlines()[0] + "\n2026-11-05,mail.example.com,100,120,0,10\n"
    mapped = map_export("sendgrid_stats", impossible)
    batch = normalise_rows("deliverability", mapped.rows["deliverability"], "salt",
                           indexes=mapped.indexes["deliverability"])
    assert [(e.index, e.field, e.reason) for e in batch.errors] == [
        (0, "delivered", "Value error, 120 is more than sent (100)")]
    mailchimp = ("Title,Send Date,Total Recipients,Successful Deliveries,Unique Id,From Email\n"
                 "A,\"Nov 03, 2026 10:00 am\",10,10,u1,news@Mail.Example.com\n"
                 "B,someday,10,10,u2,news@mail.example.com\n"
                 "C,\"Nov 03, 2026 10:00 am\",10,10,u3,\n")
    mapped = map_export("mailchimp_campaigns", mailchimp)
    assert mapped.rows["deliverability"][0]["sending_domain"] == "mail.example.com"
    assert [(e.index, e.field) for e in mapped.errors] == [(1, "Send Date"), (2, "Sending Domain")]


async def test_import_file_publishes_on_the_deliverability_topic(
    service: IngestService, memory_bus: MemoryBus
) -> None:
    result = await import_file(service, "mailchimp_campaigns", DATA / "mailchimp_campaigns.csv")
    assert (result.accepted, result.by_kind) == (3, {"deliverability": 3})
    events = memory_bus.recorder.events(DELIVERABILITY.name)
    assert len(events) == 3


def test_demo_dataset_has_two_domains_and_one_bad_week_above_the_thresholds() -> None:
    import datetime as dt

    from pulse_ingest.domain.deliverability_gen import LIFECYCLE_DOMAIN, bad_week
    from pulse_ingest.domain.generator import generate_dataset
    from pulse_shared.kpi_catalog import BOUNCE_RATE_THRESHOLD, COMPLAINT_RATE_THRESHOLD

    end = dt.date(2026, 11, 29)
    plain = generate_dataset(seed=3, days=56, accounts=5, end=end)
    data = generate_dataset(seed=3, days=56, accounts=5, end=end, email_deliverability=True)
    assert plain.deliverability == [] and "deliverability" not in plain.by_kind()
    assert data.touchpoints == plain.touchpoints and data.spend == plain.spend  # opt-in only
    assert {e.sending_domain for e in data.deliverability} == {
        "mail.pulse-demo.io", "news.pulse-demo.io"}
    bad = bad_week(end - dt.timedelta(days=55), end)
    weekly: dict[tuple[dt.date, str], list[int]] = {}
    for e in data.deliverability:
        monday = e.day - dt.timedelta(days=e.day.weekday())
        sums = weekly.setdefault((monday, e.sending_domain), [0, 0, 0])
        sums[0] += e.sent
        sums[1] += e.hard_bounces + e.soft_bounces
        sums[2] += e.spam_complaints
    for (monday, domain), (sent, bounced, complaints) in weekly.items():
        above = (bounced / sent > BOUNCE_RATE_THRESHOLD, complaints / sent > COMPLAINT_RATE_THRESHOLD)
        assert above == ((True, True) if (monday, domain) == (bad, LIFECYCLE_DOMAIN)
                         else (False, False)), (monday, domain)
