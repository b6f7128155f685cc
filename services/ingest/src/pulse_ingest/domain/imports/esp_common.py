"""What the ESP imports (SendGrid stats, Mailchimp campaign reports) share: where the
sending domain of a row comes from, and its counts as deliverability fields (pure)."""

from __future__ import annotations

from typing import Any

from pulse_ingest.domain.imports.base import Row, RowProblem, parse_int

#: Columns naming the sending domain directly (ESP exports have none: add one, or export
#: per subuser / sender, see the service README).
DOMAIN_COLUMNS = ("Sending Domain", "Domain", "From Domain")
#: Sender address columns: only the domain after ``@`` is kept (the company's own sender,
#: never a recipient; the address itself is not read into any event).
SENDER_COLUMNS = ("From Email", "From Address", "Sender", "Reply To Address")


def sending_domain(row: Row, *fallback: str) -> str:
    """The row's sending domain: a domain column, else the domain of a sender address,
    else the first of ``fallback`` columns with a value (e.g. SendGrid's Subuser)."""
    domain = row.get(*DOMAIN_COLUMNS)
    if domain:
        return domain.lower().rstrip(".")
    sender, column = row.cell(*SENDER_COLUMNS)
    if sender:
        if "@" not in sender:
            raise RowProblem(column, "not a sender address (no @)")
        return sender.rsplit("@", 1)[1].lower().rstrip(".")
    if fallback:
        value = row.get(*fallback)
        if value:
            return value.lower()
    raise RowProblem(DOMAIN_COLUMNS[0], "required value missing (the export has no sending "
                     "domain: add a 'Sending Domain' column)")


def count(row: Row, *columns: str) -> int:
    """A non-negative whole count from the first of ``columns`` with a value (``--`` and
    empty = 0), or a row problem naming the column."""
    value, column = row.cell(*columns)
    number = parse_int(value, column)
    if number < 0:
        raise RowProblem(column, f"negative count {value!r}")
    return number


def counts(row: Row, columns: dict[str, tuple[str, ...]]) -> dict[str, Any]:
    """Pulse count field → its value, from the export columns listed per field."""
    return {name: count(row, *aliases) for name, aliases in columns.items()}
