"""Look through stored text for raw e-mail addresses and phone numbers (``pulse privacy
scan``).

Ingest replaces every identifier it finds by a salted token before anything is stored, and
every bus event refuses raw PII (:mod:`pulse_shared.privacy`). Rows stored before the
detector learnt a disguise (a phone number written right after other digits was missed
before December 2026) are not checked again by anything; this scan checks them with today's
detector, without changing them.

Every text column of every table is read (String, LowCardinality, Nullable, and the
elements of Array columns, the keys and text values of Map columns), all rows as stored
(not ``FINAL``: a replaced version is still on disk until a merge). ClickHouse first keeps
the values the detector's byte pre-check flags
(:data:`pulse_shared.privacy.QUICK_CLEAN_REFUSES`, the very condition of
:func:`~pulse_shared.privacy.quick_clean`), distinct with their row counts; each of those
is then run through :func:`~pulse_shared.privacy.pii_kinds`. A finding never carries a raw
value outward except through :attr:`ColumnFinding.values`; what is shown is redacted.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from pulse_shared.privacy import DEFAULT_PHONE_REGION, QUICK_CLEAN_REFUSES, pii_kinds, redact_pii
from pulse_shared.store import Store

#: Shown examples are cut to this many characters (after redaction).
EXAMPLE_CHARS = 120
#: Flagged distinct values read per query (hash buckets of the column; bounds memory).
PAGE_VALUES = 200_000

_STRING = r"(?:LowCardinality\()?(?:Nullable\()?(?:String|FixedString\(\d+\))\)?\)?"
_PLAIN = re.compile(rf"^{_STRING}$")
_ARRAY = re.compile(rf"^Array\({_STRING}\)$")
_MAP = re.compile(rf"^Map\({_STRING}, {_STRING}\)$")
_MAP_KEYS = re.compile(rf"^Map\({_STRING}, .+\)$")  # text keys, other values


@dataclass(frozen=True, slots=True)
class TextColumn:
    """A stored column that holds text: ``shape`` is ``plain``, ``array``, ``map`` (text
    keys and values) or ``map_keys`` (text keys only)."""

    table: str
    column: str
    type: str
    shape: str
    key: bool  # in the table's sorting or partition key: ALTER … UPDATE cannot change it

    @property
    def text_expression(self) -> str:
        """The SQL giving one text per row (plain) or per element (array and map keys and
        values), the column named by the ``{column:Identifier}`` parameter."""
        if self.shape == "array":
            return "arrayJoin({column:Identifier})"
        if self.shape == "map":
            return ("arrayJoin(arrayConcat(mapKeys({column:Identifier}), "
                    "mapValues({column:Identifier})))")
        if self.shape == "map_keys":
            return "arrayJoin(mapKeys({column:Identifier}))"
        return "toString({column:Identifier})"


@dataclass(slots=True)
class ColumnFinding:
    """The values of one column that hold PII: ``values`` maps each (raw) to its rows."""

    column: TextColumn
    values: dict[str, int] = field(default_factory=dict)
    kinds: set[str] = field(default_factory=set)

    @property
    def rows(self) -> int:
        return sum(self.values.values())

    def example(self, region: str = DEFAULT_PHONE_REGION) -> str:
        """The most frequent value, redacted (``[redacted-phone]``), cut short."""
        most = max(self.values, key=lambda v: (self.values[v], v))
        shown = redact_pii(most, region)
        return shown if len(shown) <= EXAMPLE_CHARS else shown[: EXAMPLE_CHARS - 1] + "…"

    def as_row(self, region: str = DEFAULT_PHONE_REGION) -> dict[str, object]:
        """What ``pulse privacy scan`` prints: no raw value."""
        return {
            "table": self.column.table, "column": self.column.column,
            "kinds": ", ".join(sorted(self.kinds)), "values": len(self.values),
            "rows": self.rows, "key_column": self.column.key,
            "example": self.example(region),
        }


def column_shape(column_type: str) -> str | None:
    """``plain``, ``array``, ``map`` or ``map_keys`` for a type that holds text; None for
    any other (numbers, dates, aggregate states)."""
    for shape, pattern in (("plain", _PLAIN), ("array", _ARRAY), ("map", _MAP),
                           ("map_keys", _MAP_KEYS)):
        if pattern.match(column_type):
            return shape
    return None


def text_columns(store: Store, tables: Sequence[str] = ()) -> list[TextColumn]:
    """Every text column of the database's tables (``tables`` only, when given); views
    store nothing and are skipped."""
    rows = store.query(
        "SELECT c.table AS table, c.name AS column, c.type AS type, "
        "c.is_in_sorting_key OR c.is_in_partition_key OR c.is_in_primary_key AS key "
        "FROM system.columns AS c INNER JOIN system.tables AS t "
        "ON t.database = c.database AND t.name = c.table "
        "WHERE c.database = currentDatabase() AND t.engine NOT IN ('View', 'MaterializedView') "
        "AND (empty({tables:Array(String)}) OR has({tables:Array(String)}, c.table)) "
        "ORDER BY c.table, c.position",
        {"tables": list(tables)},
    )
    out: list[TextColumn] = []
    for row in rows:
        shape = column_shape(row["type"])
        if shape is not None:
            out.append(TextColumn(row["table"], row["column"], row["type"], shape,
                                  bool(row["key"])))
    return out


def flagged_values(store: Store, column: TextColumn) -> Iterator[dict[str, int]]:
    """The column's distinct texts the byte pre-check flags, with their row counts, in
    pages of at most ~:data:`PAGE_VALUES` (a column of ids with dashes can flag millions)."""
    expression = column.text_expression
    params: dict[str, Any] = {"table": column.table, "column": column.column,
                              "flags": QUICK_CLEAN_REFUSES}
    flagged = (f"SELECT {expression} AS text FROM {{table:Identifier}} "  # noqa: S608
               "WHERE match(text, {flags:String})")
    distinct = int(store.query_value(f"SELECT uniq(text) FROM ({flagged})", params) or 0)  # noqa: S608
    pages = math.ceil(distinct / PAGE_VALUES)  # none for a column with nothing flagged
    for page in range(pages):
        rows = store.query(
            f"SELECT text, count() AS rows FROM ({flagged}) "  # noqa: S608
            "WHERE cityHash64(text) % {pages:UInt64} = {page:UInt64} GROUP BY text",
            {**params, "pages": pages, "page": page},
        )
        yield {row["text"]: int(row["rows"]) for row in rows if row["text"] is not None}


def scan_column(
    store: Store, column: TextColumn, region: str = DEFAULT_PHONE_REGION
) -> ColumnFinding | None:
    """The column's values that hold an e-mail address or a phone number, or None."""
    finding = ColumnFinding(column)
    for page in flagged_values(store, column):
        for text, rows in page.items():
            kinds = pii_kinds(text, region)
            if kinds:
                finding.values[text] = rows
                finding.kinds.update(kinds)
    return finding if finding.values else None


def scan(
    store: Store,
    columns: Sequence[TextColumn],
    region: str = DEFAULT_PHONE_REGION,
    on_column: Callable[[TextColumn], None] | None = None,
) -> list[ColumnFinding]:
    """Findings of ``columns`` (:func:`text_columns`), in their order; ``on_column`` is
    told of each column as it is done (progress)."""
    findings: list[ColumnFinding] = []
    for column in columns:
        finding = scan_column(store, column, region)
        if finding is not None:
            findings.append(finding)
        if on_column is not None:
            on_column(column)
    return findings
