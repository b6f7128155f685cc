"""SendGrid Statistics CSV export (daily global, subuser or category stats) →
``deliverability``.

Registered as ``sendgrid_stats``; the column mapping is documented in the service README.
"""

from __future__ import annotations

from typing import Any

from pulse_ingest.domain.imports.base import (
    MappedRows,
    Row,
    csv_import,
    map_each,
    parse_date,
    read_export,
    slug,
)
from pulse_ingest.domain.imports.esp_common import counts, sending_domain

#: Pulse count field → SendGrid stats columns (the Stats export and API metric names).
SENDGRID_COUNTS: dict[str, tuple[str, ...]] = {
    "sent": ("Requests", "Processed"),
    "delivered": ("Delivered",),
    "hard_bounces": ("Bounces",),
    "soft_bounces": ("Blocks",),
    "spam_complaints": ("Spam Reports",),
    "unsubscribes": ("Unsubscribes",),
    "unique_opens": ("Unique Opens",),
    "unique_clicks": ("Unique Clicks",),
}


@csv_import("sendgrid_stats", "SendGrid statistics export", ("deliverability",))
def map_sendgrid_stats(text: str) -> MappedRows:
    """SendGrid "Statistics" CSV export (one row per day) → deliverability.

    Date → day; Requests (else Processed) → sent; Delivered; Bounces → hard_bounces
    (SendGrid's bounces are permanent rejections); Blocks → soft_bounces (temporary or
    policy rejections); Spam Reports → spam_complaints; Unsubscribes; Unique Opens;
    Unique Clicks. Sending domain: a Sending Domain/Domain column, else the domain of a
    From Email column, else the Subuser (one subuser per sending domain). Category (category
    stats) → campaign_id. esp = sendgrid.
    """
    rows = read_export(text, [("Date", "Day"), ("Requests", "Processed"), ("Delivered",)])

    def one(row: Row) -> list[tuple[str, dict[str, Any]]]:
        day = parse_date(*row.required("Date", "Day"))
        domain = sending_domain(row, "Subuser", "Subuser Name")
        campaign = row.get("Category", "Campaign")
        return [("deliverability", {
            "event_id": f"sendgrid:{slug(domain)}:{slug(campaign)}:{day.isoformat()}",
            "day": day.isoformat(),
            "sending_domain": domain,
            "campaign_id": campaign,
            "esp": "sendgrid",
            **counts(row, SENDGRID_COUNTS),
        })]

    return map_each(rows, one)
