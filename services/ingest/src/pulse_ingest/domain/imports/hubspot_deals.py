"""HubSpot deals export → ``pipeline`` (opportunity, won/lost).

Registered as ``hubspot_deals``; the column mapping is documented in the service README.
"""

from __future__ import annotations

from typing import Any

from pulse_ingest.domain.imports.base import (
    MappedRows,
    Row,
    csv_import,
    map_each,
    parse_datetime,
    parse_decimal,
    read_export,
)


@csv_import("hubspot_deals", "HubSpot deals export", ("pipeline",))
def map_hubspot_deals(text: str) -> MappedRows:
    """HubSpot deals export → opportunity (Create Date, Amount) and won/lost (Close Date).

    Associated Company IDs (first) → account_id ``hubspot-company-<id>``; Deal Stage
    containing "closed won"/"closed lost" → won/lost at Close Date; Amount → amount;
    Currency → currency. Deal Name and owner columns are ignored.
    """
    rows = read_export(text, [("Deal Stage",), ("Create Date", "Created Date")])

    def one(row: Row) -> list[tuple[str, dict[str, Any]]]:
        record = row.require("Record ID", "Deal ID")
        company = row.require("Associated Company IDs", "Associated Company ID", "Company ID",
                              "Associated Company IDs (Primary)")
        account = "hubspot-company-" + company.split(";")[0].strip()
        created = parse_datetime(*row.required("Create Date", "Created Date"))
        amount_text, amount_column = row.cell("Amount")
        amount = str(parse_decimal(amount_text, amount_column)) if amount_text else None
        currency = row.get("Currency", "Deal currency code") or "USD"
        base = {"account_id": account, "amount": amount, "currency": currency}
        out = [("pipeline", {**base, "event_id": f"hubspot:deal:{record}:opportunity",
                             "occurred_at": created.isoformat(), "stage": "opportunity"})]
        stage = row.require("Deal Stage").lower()
        closed = "won" if "closed won" in stage else "lost" if "closed lost" in stage else None
        if closed:
            close = parse_datetime(*row.required("Close Date"))
            out.append(("pipeline", {**base, "event_id": f"hubspot:deal:{record}:{closed}",
                                     "occurred_at": close.isoformat(), "stage": closed}))
        return out

    return map_each(rows, one)
