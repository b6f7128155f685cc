"""Google Ads campaign report (daily segments) → ``spend``.

Registered as ``google_ads``; the column mapping is documented in the service README.
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

GOOGLE_CAMPAIGN_TYPES: dict[str, str] = {
    "search": "paid_search", "shopping": "paid_search", "performance max": "paid_search",
    "display": "display", "video": "display", "demand gen": "display",
    "discovery": "display", "app": "paid_search",
}


@csv_import("google_ads", "Google Ads campaign report", ("spend",))
def map_google_ads(text: str) -> MappedRows:
    """Google Ads "Campaign report" (daily segments) → spend.

    Day → date; Campaign ID (else a slug of Campaign) → campaign_id; Campaign type →
    channel (Search/Shopping/Performance Max → paid_search, Display/Video/Demand Gen →
    display; default paid_search); Cost → amount; Impr./Impressions → impressions;
    Clicks → clicks; Currency code → currency (default USD).
    """
    rows = read_export(text, [("Day", "Date"), ("Campaign",), ("Cost",)])

    def one(row: Row) -> list[tuple[str, dict[str, Any]]]:
        day = parse_date(*row.required("Day", "Date"))
        campaign = row.get("Campaign ID") or slug(row.require("Campaign"))
        channel = GOOGLE_CAMPAIGN_TYPES.get(row.get("Campaign type").lower(), "paid_search")
        return [("spend", {
            "event_id": f"google_ads:{campaign}:{day.isoformat()}",
            "date": day.isoformat(),
            "channel": channel,
            "campaign_id": campaign,
            "amount": str(parse_decimal(*row.cell("Cost"), Decimal(0))),
            "impressions": parse_int(*row.cell("Impr.", "Impressions")),
            "clicks": parse_int(*row.cell("Clicks")),
            "currency": row.get("Currency code", "Currency") or "USD",
        })]

    return map_each(rows, one)
