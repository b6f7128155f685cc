"""LinkedIn Campaign Manager campaign performance export → ``spend``.

Registered as ``linkedin_ads``; the column mapping is documented in the service README.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from pulse_ingest.domain.imports.base import (
    MappedRows,
    Row,
    csv_import,
    map_each,
    parse_date,
    parse_decimal,
    parse_int,
    read_export,
    slug,
)


@csv_import("linkedin_ads", "LinkedIn Ads campaign export", ("spend",))
def map_linkedin_ads(text: str) -> MappedRows:
    """LinkedIn Campaign Manager campaign performance export (daily) → spend.

    Start Date (in UTC) → date (M/D/YYYY); Campaign ID (else slug of Campaign Name) →
    campaign_id; channel paid_social; Total Spent / Amount Spent → amount; Impressions,
    Clicks; Currency (default USD).
    """
    rows = read_export(
        text,
        [("Start Date (in UTC)", "Date", "Day"), ("Campaign Name", "Campaign"),
         ("Total Spent", "Amount Spent", "Spend")],
    )

    def one(row: Row) -> list[tuple[str, dict[str, Any]]]:
        day = parse_date(*row.required("Start Date (in UTC)", "Date", "Day"))
        campaign = row.get("Campaign ID") or slug(row.require("Campaign Name", "Campaign"))
        return [("spend", {
            "event_id": f"linkedin_ads:{campaign}:{day.isoformat()}",
            "date": day.isoformat(),
            "channel": "paid_social",
            "campaign_id": campaign,
            "amount": str(parse_decimal(*row.cell("Total Spent", "Amount Spent", "Spend"),
                                        Decimal(0))),
            "impressions": parse_int(*row.cell("Impressions")),
            "clicks": parse_int(*row.cell("Clicks")),
            "currency": row.get("Currency") or "USD",
        })]

    return map_each(rows, one)
