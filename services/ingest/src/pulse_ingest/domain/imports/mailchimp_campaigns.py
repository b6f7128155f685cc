"""Mailchimp campaign reports CSV export (one row per sent campaign) → ``deliverability``.

Registered as ``mailchimp_campaigns``; the column mapping is documented in the service
README.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from pulse_ingest.domain.imports.base import (
    MappedRows,
    Row,
    RowProblem,
    csv_import,
    map_each,
    parse_date,
    read_export,
    slug,
)
from pulse_ingest.domain.imports.esp_common import counts, sending_domain

#: Pulse count field → Mailchimp campaign report columns.
MAILCHIMP_COUNTS: dict[str, tuple[str, ...]] = {
    "sent": ("Total Recipients", "Emails Sent"),
    "delivered": ("Successful Deliveries",),
    "hard_bounces": ("Hard Bounces",),
    "soft_bounces": ("Soft Bounces",),
    "spam_complaints": ("Abuse Complaints", "Abuse Reports"),
    "unsubscribes": ("Unsubscribes", "Unsubscribed"),
    "unique_opens": ("Unique Opens",),
    "unique_clicks": ("Unique Clicks", "Subscribers Clicked"),
}
#: Mailchimp's own date style ("Nov 03, 2026 10:00 am"), beside the ISO/US ones.
_MAILCHIMP_DATES = ("%b %d, %Y %I:%M %p", "%b %d, %Y %H:%M", "%b %d, %Y", "%B %d, %Y %I:%M %p")
_SEND_DATE = ("Send Date", "Send Time", "Sent Date")


def _send_day(row: Row) -> dt.date:
    value, column = row.required(*_SEND_DATE)
    for pattern in _MAILCHIMP_DATES:
        try:
            return dt.datetime.strptime(value.replace(".", ""), pattern).date()
        except ValueError:
            continue
    try:
        return parse_date(value, column)
    except RowProblem:
        raise RowProblem(column, f"not a date: {value!r}") from None


@csv_import("mailchimp_campaigns", "Mailchimp campaign reports export", ("deliverability",))
def map_mailchimp_campaigns(text: str) -> MappedRows:
    """Mailchimp campaign reports export (Reports → Download; one row per campaign) →
    deliverability, counted on the campaign's send day.

    Send Date → day; Unique Id (else a slug of Title) → campaign_id; Total Recipients →
    sent; Successful Deliveries → delivered; Hard Bounces; Soft Bounces; Abuse Complaints
    → spam_complaints; Unsubscribes; Unique Opens; Unique Clicks. Sending domain: a
    Sending Domain column, else the domain of a From Email column. esp = mailchimp.
    """
    rows = read_export(text, [("Title", "Campaign Title", "Unique Id"), _SEND_DATE,
                              ("Total Recipients", "Emails Sent")])

    def one(row: Row) -> list[tuple[str, dict[str, Any]]]:
        day = _send_day(row)
        campaign = row.get("Unique Id", "Campaign ID")
        if not campaign:
            title, column = row.required("Title", "Campaign Title")
            campaign = slug(title)
            if not campaign:
                raise RowProblem(column, f"no campaign id in {title!r} (and no Unique Id)")
        return [("deliverability", {
            "event_id": f"mailchimp:{campaign}",
            "day": day.isoformat(),
            "sending_domain": sending_domain(row),
            "campaign_id": campaign,
            "esp": "mailchimp",
            **counts(row, MAILCHIMP_COUNTS),
        })]

    return map_each(rows, one)
