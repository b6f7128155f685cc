"""HubSpot contacts export → first-touch ``touchpoints`` + funnel ``pipeline`` stages.

Registered as ``hubspot_contacts``; the column mapping is documented in the service README.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from pulse_ingest.domain.imports.base import (
    MappedRows,
    Row,
    RowProblem,
    csv_import,
    optional_datetime,
    parse_datetime,
    read_export,
    slug,
)
from pulse_ingest.domain.normalize import RowError

HUBSPOT_SOURCES: dict[str, str] = {
    "organic search": "organic_search", "organic_search": "organic_search",
    "paid search": "paid_search", "paid_search": "paid_search",
    "email marketing": "email", "email_marketing": "email",
    "organic social": "organic_social", "social media": "organic_social",
    "social_media": "organic_social", "paid social": "paid_social",
    "paid_social": "paid_social", "referrals": "referral", "referral": "referral",
    "direct traffic": "direct", "direct_traffic": "direct",
    "offline sources": "events", "offline": "events",
    "other campaigns": "other", "other_campaigns": "other",
    "ai referrals": "referral",
}

HUBSPOT_STAGE_DATES: tuple[tuple[str, str], ...] = (
    ("Became a Lead Date", "lead"),
    ("Became a Marketing Qualified Lead Date", "mql"),
    ("Became a Sales Qualified Lead Date", "sql"),
    ("Became an Opportunity Date", "opportunity"),
    ("Became a Customer Date", "won"),
)


def _hubspot_account(row: Row, email: str) -> str:
    company, column = row.cell("Associated Company ID", "Associated Company IDs", "Company ID",
                               "Associated Company IDs (Primary)")
    if company:
        return "hubspot-company-" + company.split(";")[0].strip()
    if "@" in email:
        return "domain-" + email.rsplit("@", 1)[1].lower()
    if not row.has(column):  # the export has no company column: the e-mail is at fault
        column = row.cell("Email", "Record ID", "Contact ID")[1]
    raise RowProblem(column, "no company id and no e-mail domain")


@csv_import("hubspot_contacts", "HubSpot contacts export", ("touchpoints", "pipeline"))
def map_hubspot_contacts(text: str) -> MappedRows:
    """HubSpot contacts export → one first-touch touchpoint per contact + funnel stages.

    Touchpoint: Create Date → occurred_at; Email (else Record ID) → contact (hashed);
    Associated Company ID → account_id ``hubspot-company-<id>`` (else the e-mail domain);
    Original Source → channel (ORGANIC_SEARCH → organic_search, PAID_SEARCH → paid_search,
    EMAIL_MARKETING → email, SOCIAL_MEDIA → organic_social, PAID_SOCIAL → paid_social,
    REFERRALS → referral, DIRECT_TRAFFIC → direct, OFFLINE → events, else other);
    Original Source Drill-Down 1 → source; touch_type form_fill.
    Pipeline: "Became a Lead/Marketing Qualified Lead/Sales Qualified Lead/Opportunity/
    Customer Date" → lead/mql/sql/opportunity/won of the account (earliest contact wins).
    Names, phone numbers, company names, drill-down 2 (keywords) are ignored.
    """
    rows = read_export(text, [("Create Date", "Created Date"), ("Email", "Record ID")])
    first_stage: dict[tuple[str, str], tuple[dt.datetime, int]] = {}
    out = MappedRows(received=len(rows))
    for index, cells in enumerate(rows):
        row = Row(cells)
        try:
            email = row.get("Email")
            record = row.get("Record ID", "Contact ID")
            if not email and not record:
                raise RowProblem(row.cell("Email", "Record ID", "Contact ID")[1],
                                  "neither Email nor Record ID given")
            account = _hubspot_account(row, email)
            created = parse_datetime(*row.required("Create Date", "Created Date"))
            source = row.get("Original Source", "Original source")
            channel = HUBSPOT_SOURCES.get(source.lower().replace("_", " "),
                                          HUBSPOT_SOURCES.get(source.lower(), "other"))
            stages: list[tuple[str, dt.datetime]] = []
            for column, stage in HUBSPOT_STAGE_DATES:
                when = optional_datetime(row, column)
                if when is not None:
                    stages.append((stage, when))
        except RowProblem as problem:
            out.errors.append(RowError(index, problem.column, problem.reason))
            continue
        touch: dict[str, Any] = {"event_id": f"hubspot:contact:{slug(record)}:created"} if record else {}
        out.add("touchpoints", index, {
            **touch,
            "occurred_at": created.isoformat(),
            "account_id": account,
            "contact_email": email or f"hubspot-contact-{record}",
            "channel": channel,
            "source": row.get("Original Source Drill-Down 1")[:256],
            "medium": source.lower(),
            "touch_type": "form_fill",
        })
        for stage, when in stages:
            key = (account, stage)
            if key not in first_stage or when < first_stage[key][0]:
                first_stage[key] = (when, index)
    for (account, stage), (when, index) in sorted(first_stage.items(), key=lambda kv: kv[1]):
        out.add("pipeline", index, {
            "event_id": f"hubspot:{account}:{stage}",
            "occurred_at": when.isoformat(),
            "account_id": account,
            "stage": stage,
        })
    return out
