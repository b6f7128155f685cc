"""CSV exports of common tools → rows in Pulse's vocabulary (pure; documented in README).

Each mapping turns the export's rows into raw rows of one or more kinds, which then go
through the normal :mod:`pulse_ingest.domain.normalize` path (hashing, validation).
Errors name the *source* row (0-based index among the export's data rows) and the
export's column. Personal columns (names, phone numbers, company names, deal names) are
never read; e-mail addresses are only used as contact identifiers, which ingest hashes.

Event ids are stable per source object (``google_ads:<campaign>:<day>``,
``stripe:<subscription>:start`` …): re-importing a corrected export replaces the rows
in ClickHouse instead of adding new ones, and an identical re-import is a duplicate.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from pulse_ingest.domain.normalize import RowError


class MappingError(ValueError):
    """The export as a whole does not match the mapping (no recognisable header)."""


@dataclass
class MappedRows:
    """Raw Pulse rows per kind, with the export row each came from, plus row errors."""

    received: int = 0
    rows: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    indexes: dict[str, list[int]] = field(default_factory=dict)
    errors: list[RowError] = field(default_factory=list)

    def add(self, kind: str, index: int, row: dict[str, Any]) -> None:
        self.rows.setdefault(kind, []).append(row)
        self.indexes.setdefault(kind, []).append(index)


class _RowProblem(Exception):
    def __init__(self, column: str, reason: str) -> None:
        super().__init__(f"{column}: {reason}")
        self.column = column
        self.reason = reason


class Row:
    """Case/space-insensitive access to one export row's cells."""

    def __init__(self, cells: dict[str, str]) -> None:
        self.cells = {_key(k): (v or "").strip() for k, v in cells.items()}
        self.names = {_key(k): k for k in cells}

    def cell(self, *columns: str) -> tuple[str, str]:
        """The value of the first of ``columns`` (aliases) that has one, and that column's
        name as the export spells it; when none has a value, the first one the export
        has (else the first alias), so an error names a column the user can find."""
        present = [self.names[_key(c)] for c in columns if _key(c) in self.cells]
        for column in present:
            value = self.cells[_key(column)]
            if value and value not in ("--", " --", "—"):
                return value, column
        return "", present[0] if present else columns[0]

    def required(self, *columns: str) -> tuple[str, str]:
        """:meth:`cell`, raising a row problem on that column when there is no value."""
        value, column = self.cell(*columns)
        if not value:
            raise _RowProblem(column, "required value missing")
        return value, column

    def get(self, *columns: str) -> str:
        return self.cell(*columns)[0]

    def require(self, *columns: str) -> str:
        return self.required(*columns)[0]

    def has(self, column: str) -> bool:
        return _key(column) in self.cells


def _key(column: str) -> str:
    return re.sub(r"[^a-z0-9]+", " ", column.lower().lstrip("\ufeff")).strip()


def slug(value: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", value.lower()).strip("-")[:128]


_NUMBER_JUNK = re.compile(r"[\s,$€£%]|^[A-Z]{3}\s*")


def parse_decimal(value: str, column: str, default: Decimal | None = None) -> Decimal:
    text = _NUMBER_JUNK.sub("", value.strip())
    if text in ("", "--", "-"):
        if default is None:
            raise _RowProblem(column, "required value missing")
        return default
    try:
        number = Decimal(text)
    except InvalidOperation:
        raise _RowProblem(column, f"not a number: {value!r}") from None
    if not number.is_finite():
        raise _RowProblem(column, f"not a finite number: {value!r}")
    return number


def parse_int(value: str, column: str) -> int:
    number = parse_decimal(value, column, Decimal(0))
    return int(number)


_US_DATE = re.compile(r"^(\d{1,2})/(\d{1,2})/(\d{4})(?:[ T](\d{1,2}):(\d{2})(?::(\d{2}))?)?$")


def parse_datetime(value: str, column: str) -> dt.datetime:
    """ISO dates/timestamps, ``YYYY-MM-DD HH:MM[:SS]`` or US ``M/D/YYYY [H:MM]``; UTC."""
    text = value.strip()
    match = _US_DATE.match(text)
    if match:
        month, day, year, hour, minute, second = match.groups()
        try:
            return dt.datetime(int(year), int(month), int(day), int(hour or 0),
                               int(minute or 0), int(second or 0), tzinfo=dt.UTC)
        except ValueError as exc:
            raise _RowProblem(column, f"invalid date {value!r}: {exc}") from None
    try:
        parsed = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise _RowProblem(column, f"not a date/time: {value!r}") from None
    return parsed.astimezone(dt.UTC) if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def parse_date(value: str, column: str) -> dt.date:
    return parse_datetime(value, column).date()


def _when(row: Row, *columns: str) -> dt.datetime | None:
    """The date/time of the first of ``columns`` with a value, else None."""
    value, column = row.cell(*columns)
    return parse_datetime(value, column) if value else None


def _delimiter(text: str) -> str:
    """``,`` unless the lines have more ``;`` or tabs (European Excel, TSV exports)."""
    sample = "\n".join(text.splitlines()[:20])
    counts = {d: sample.count(d) for d in (",", ";", "\t")}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] > counts[","] else ","


def read_export(text: str, header_columns: Sequence[Sequence[str]]) -> list[dict[str, str]]:
    """Rows of an export, skipping report preambles (title/date-range lines) and totals.

    The header is the first line containing, for each entry of ``header_columns``, one of
    its alternatives.
    """
    text = text.lstrip("\ufeff")
    lines = list(csv.reader(io.StringIO(text, newline=""), delimiter=_delimiter(text)))
    for position, line in enumerate(lines):
        keys = {_key(cell) for cell in line}
        if all(any(_key(alt) in keys for alt in alts) for alts in header_columns):
            header = [cell.strip() for cell in line]
            body = lines[position + 1 :]
            break
    else:
        wanted = " + ".join("/".join(alts) for alts in header_columns)
        raise MappingError(f"no header row with the columns {wanted}")
    rows: list[dict[str, str]] = []
    for line in body:
        if not any(cell.strip() for cell in line):
            continue
        first = line[0].strip().lower() if line else ""
        if first.startswith("total"):
            continue  # "Total: account", "Total: campaigns" summary lines
        rows.append(dict(zip(header, line, strict=False)))
    return rows


# -- ad platforms → spend ---------------------------------------------------------------

GOOGLE_CAMPAIGN_TYPES: dict[str, str] = {
    "search": "paid_search", "shopping": "paid_search", "performance max": "paid_search",
    "display": "display", "video": "display", "demand gen": "display",
    "discovery": "display", "app": "paid_search",
}


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

    return _map_each(rows, one)


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

    return _map_each(rows, one)


# -- HubSpot → touchpoints + pipeline ---------------------------------------------------

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
    raise _RowProblem(column, "no company id and no e-mail domain")


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
                raise _RowProblem(row.cell("Email", "Record ID", "Contact ID")[1],
                                  "neither Email nor Record ID given")
            account = _hubspot_account(row, email)
            created = parse_datetime(*row.required("Create Date", "Created Date"))
            source = row.get("Original Source", "Original source")
            channel = HUBSPOT_SOURCES.get(source.lower().replace("_", " "),
                                          HUBSPOT_SOURCES.get(source.lower(), "other"))
            stages: list[tuple[str, dt.datetime]] = []
            for column, stage in HUBSPOT_STAGE_DATES:
                when = _when(row, column)
                if when is not None:
                    stages.append((stage, when))
        except _RowProblem as problem:
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

    return _map_each(rows, one)


# -- Stripe → subscriptions -------------------------------------------------------------

MONTHLY_FACTOR: dict[str, Decimal] = {
    "month": Decimal(1), "year": Decimal(1) / Decimal(12), "week": Decimal(52) / Decimal(12),
    "day": Decimal(365) / Decimal(12),
}


@dataclass(order=True)
class _Change:
    at: dt.datetime
    order: int
    index: int = field(compare=False)
    subscription: str = field(compare=False)
    what: str = field(compare=False)  # trial | start | end
    mrr: Decimal = field(compare=False)
    plan: str = field(compare=False)
    currency: str = field(compare=False)


def map_stripe_subscriptions(text: str) -> MappedRows:
    """Stripe Billing subscriptions export → subscription events with account MRR.

    Customer ID → account_id; MRR of a subscription = Amount × Quantity normalised to a
    month by Interval (year ÷ 12, week × 52/12); Plan (else Product) → plan; Currency.
    Timeline per subscription: Trial Start → trial_started; paid start at Trial End (if
    it had a trial and did not end during it) else Start (UTC)/Created (UTC); status
    canceled → end at Ended At (UTC) else Canceled At (UTC). Per customer the changes are
    replayed in time order so each event carries the *account's* MRR after it:
    0 → >0 is subscription_started (reactivated if it paid before), increases are
    upgrades, decreases to >0 downgrades, to 0 cancellations. Mid-life plan changes are
    not in this export (use the subscriptions endpoint or webhooks for those).
    """
    rows = read_export(text, [("Customer ID", "Customer"), ("Status",)])
    out = MappedRows(received=len(rows))
    changes: dict[str, list[_Change]] = {}
    for index, cells in enumerate(rows):
        try:
            customer, row_changes = _stripe_changes(Row(cells), index)
        except _RowProblem as problem:
            out.errors.append(RowError(index, problem.column, problem.reason))
            continue
        changes.setdefault(customer, []).extend(row_changes)
    for customer, timeline in sorted(changes.items()):
        account_mrr = Decimal(0)
        paid_before = False
        for change in sorted(timeline):
            before = account_mrr
            if change.what == "trial":
                if before > 0 or paid_before:
                    continue
                event_type = "trial_started"
            elif change.what == "start":
                account_mrr = before + change.mrr
                if before > 0:
                    event_type = "subscription_upgraded"
                else:
                    event_type = "subscription_reactivated" if paid_before else "subscription_started"
                paid_before = True
            else:
                account_mrr = max(Decimal(0), before - change.mrr)
                event_type = "subscription_canceled" if account_mrr == 0 else "subscription_downgraded"
            out.add("subscriptions", change.index, {
                "event_id": f"stripe:{change.subscription}:{change.what}",
                "occurred_at": change.at.isoformat(),
                "account_id": customer,
                "event_type": event_type,
                "mrr": str(account_mrr),
                "currency": change.currency,
                "plan": change.plan,
            })
    return out


_STRIPE_START = ("Start (UTC)", "Start Date (UTC)", "Created (UTC)", "Created")


def _stripe_changes(row: Row, index: int) -> tuple[str, list[_Change]]:
    """One subscription row → (customer, its MRR changes)."""
    customer = row.require("Customer ID", "Customer")
    sub_id = row.get("id", "Subscription ID") or f"row{index}"
    status = row.require("Status").lower()
    interval = (row.get("Interval") or "month").lower()
    if interval not in MONTHLY_FACTOR:
        raise _RowProblem("Interval", f"unknown interval {interval!r}")
    count = parse_decimal(*row.cell("Interval Count"), Decimal(1)) or Decimal(1)
    quantity = parse_decimal(*row.cell("Quantity"), Decimal(1))
    amount = parse_decimal(*row.required("Amount"))
    mrr = (amount * quantity * MONTHLY_FACTOR[interval] / count).quantize(Decimal("0.01"))
    plan = row.get("Plan", "Plan Name", "Price", "Product")[:256]
    currency = row.get("Currency") or "USD"
    trial_start = _when(row, "Trial Start (UTC)", "Trial Start")
    trial_end = _when(row, "Trial End (UTC)", "Trial End")
    start = _when(row, *_STRIPE_START)
    ended = _when(row, "Ended At (UTC)", "Ended At") or _when(
        row, "Canceled At (UTC)", "Canceled At"
    )
    if start is None and trial_start is None:
        raise _RowProblem(row.cell(*_STRIPE_START)[1], "required value missing")
    changes: list[_Change] = []
    paid_start: dt.datetime | None = None
    if trial_start is not None:
        changes.append(_Change(trial_start, 0, index, sub_id, "trial", Decimal(0), plan, currency))
        trial_converted = trial_end is not None and (ended is None or ended > trial_end)
        if status != "trialing" and trial_converted:
            paid_start = trial_end
    elif status != "trialing":
        paid_start = start
    if paid_start is not None and status not in ("incomplete", "incomplete_expired"):
        changes.append(_Change(paid_start, 1, index, sub_id, "start", mrr, plan, currency))
        if status == "canceled":
            changes.append(
                _Change(ended or paid_start, 2, index, sub_id, "end", mrr, plan, currency)
            )
    return customer, changes


def _map_each(
    rows: list[dict[str, str]], one: Callable[[Row], list[tuple[str, dict[str, Any]]]]
) -> MappedRows:
    out = MappedRows(received=len(rows))
    for index, cells in enumerate(rows):
        try:
            produced = one(Row(cells))
        except _RowProblem as problem:
            out.errors.append(RowError(index, problem.column, problem.reason))
            continue
        for kind, mapped in produced:
            out.add(kind, index, mapped)
    return out


@dataclass(frozen=True)
class CsvImport:
    name: str
    title: str
    kinds: tuple[str, ...]
    mapper: Callable[[str], MappedRows]


IMPORTS: dict[str, CsvImport] = {
    i.name: i
    for i in (
        CsvImport("google_ads", "Google Ads campaign report", ("spend",), map_google_ads),
        CsvImport("linkedin_ads", "LinkedIn Ads campaign export", ("spend",), map_linkedin_ads),
        CsvImport("hubspot_contacts", "HubSpot contacts export", ("touchpoints", "pipeline"),
                  map_hubspot_contacts),
        CsvImport("hubspot_deals", "HubSpot deals export", ("pipeline",), map_hubspot_deals),
        CsvImport("stripe_subscriptions", "Stripe subscriptions export", ("subscriptions",),
                  map_stripe_subscriptions),
    )
}


def map_export(source: str, text: str) -> MappedRows:
    """Map a CSV export of ``source`` (a key of :data:`IMPORTS`)."""
    try:
        csv_import = IMPORTS[source]
    except KeyError:
        raise MappingError(
            f"unknown import source {source!r}; expected one of {', '.join(IMPORTS)}"
        ) from None
    return csv_import.mapper(text)
