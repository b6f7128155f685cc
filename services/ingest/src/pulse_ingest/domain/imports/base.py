"""The mechanism every CSV import shares: the registry of import formats, access to an
export's cells by column aliases, value parsers and the export reader (pure).

A vendor module (:mod:`pulse_ingest.domain.imports.google_ads` …) defines one mapping
function ``text -> MappedRows`` and registers it with :func:`csv_import`. Errors name the
*source* row (0-based index among the export's data rows) and the export's column: a
mapping raises :class:`RowProblem` for a bad row, :class:`MappingError` for an export that
does not match at all.
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


class RowProblem(Exception):
    """One export row cannot be mapped: ``column`` (as the export spells it) and why."""

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
            raise RowProblem(column, "required value missing")
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
            raise RowProblem(column, "required value missing")
        return default
    try:
        number = Decimal(text)
    except InvalidOperation:
        raise RowProblem(column, f"not a number: {value!r}") from None
    if not number.is_finite():
        raise RowProblem(column, f"not a finite number: {value!r}")
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
            raise RowProblem(column, f"invalid date {value!r}: {exc}") from None
    try:
        parsed = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise RowProblem(column, f"not a date/time: {value!r}") from None
    return parsed.astimezone(dt.UTC) if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def parse_date(value: str, column: str) -> dt.date:
    return parse_datetime(value, column).date()


def optional_datetime(row: Row, *columns: str) -> dt.datetime | None:
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


def map_each(
    rows: list[dict[str, str]], one: Callable[[Row], list[tuple[str, dict[str, Any]]]]
) -> MappedRows:
    """Map each row independently with ``one`` (row → (kind, raw row) pairs); a
    :class:`RowProblem` becomes that row's error and the other rows are still mapped."""
    out = MappedRows(received=len(rows))
    for index, cells in enumerate(rows):
        try:
            produced = one(Row(cells))
        except RowProblem as problem:
            out.errors.append(RowError(index, problem.column, problem.reason))
            continue
        for kind, mapped in produced:
            out.add(kind, index, mapped)
    return out



Mapper = Callable[[str], MappedRows]


@dataclass(frozen=True)
class CsvImport:
    """One import format: its name (``POST /v1/import/{name}``), a title for people, the
    event kinds it produces and its mapping function."""

    name: str
    title: str
    kinds: tuple[str, ...]
    mapper: Mapper


#: Every import format by name, in registration order (the order of listings).
IMPORTS: dict[str, CsvImport] = {}


def csv_import(name: str, title: str, kinds: Sequence[str]) -> Callable[[Mapper], Mapper]:
    """Register the decorated ``text -> MappedRows`` function as the import ``name``."""

    def register(mapper: Mapper) -> Mapper:
        if name in IMPORTS:
            raise ValueError(f"import format {name!r} is already registered")
        IMPORTS[name] = CsvImport(name, title, tuple(kinds), mapper)
        return mapper

    return register


def map_export(source: str, text: str) -> MappedRows:
    """Map a CSV export of ``source`` (a key of :data:`IMPORTS`)."""
    try:
        mapping = IMPORTS[source]
    except KeyError:
        raise MappingError(
            f"unknown import source {source!r}; expected one of {', '.join(IMPORTS)}"
        ) from None
    return mapping.mapper(text)
