"""One way for every ``pulse`` read command to print rows: ``--format table|csv|json``.

- ``json``: a JSON array of objects; numbers stay numbers (``Decimal`` money included),
  dates and times are ISO text, enums their value.
- ``csv``: a header row, then one row per record (money to the cent, other numbers at
  full precision, booleans ``true``/``false``, missing values empty); text a spreadsheet
  would run as a formula is prefixed with ``'`` (:mod:`pulse_shared.safe_text`).
- ``table``: a Rich table for a person; every cell literal text (no Rich markup: a
  ``[redacted-phone]`` or ``[link=…]`` in a value is shown as written) with control
  characters shown as ``\\xNN`` (no escape sequence reaches the terminal).

Light on purpose (standard library only at import; Rich is imported when a table is
drawn): the CLI imports it before it knows which command runs.
"""

from __future__ import annotations

import datetime as dt
import io
import json
from collections.abc import Mapping, Sequence
from decimal import Decimal
from enum import Enum, StrEnum
from pathlib import Path
from typing import Any

from pulse_shared.safe_text import csv_text, spreadsheet_safe, terminal_safe


class OutputFormat(StrEnum):
    TABLE = "table"
    CSV = "csv"
    JSON = "json"


FORMAT_HELP = "table, csv or json (JSON numbers are numbers)."
FORMAT_FILE_HELP = "table, csv or json (default: table, csv with --output)."


def json_value(value: Any) -> Any:
    """``json.dumps`` ``default=``: what the standard encoder does not know."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, dt.date | dt.datetime | dt.time):
        return value.isoformat()
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    if isinstance(value, Path):
        return str(value)
    return str(value)


def csv_cell(value: Any) -> str:
    """A value as CSV text: floats at full precision (whole ones without ``.0``), text no
    spreadsheet runs as a formula."""
    if isinstance(value, float) and not isinstance(value, bool):
        if value.is_integer() and abs(value) < 1e15:
            return str(int(value))
        return repr(value)
    return spreadsheet_safe(text_cell(value))


def text_cell(value: Any) -> str:
    """A value as table text (floats to 6 significant digits)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        return format(value.quantize(Decimal("0.01")), "f")
    if isinstance(value, float):
        return f"{value:.6g}" if abs(value) < 1e6 else f"{value:.2f}"
    if isinstance(value, Enum):
        return str(value.value)
    if isinstance(value, dt.date | dt.datetime | dt.time):
        return value.isoformat()
    if isinstance(value, Mapping):
        return " ".join(f"{k}={v}" for k, v in sorted(value.items()))
    if isinstance(value, list | tuple | set | frozenset):
        return ",".join(text_cell(v) for v in value)
    return str(value)


def to_json(rows: Sequence[Mapping[str, Any]]) -> str:
    return json.dumps([dict(r) for r in rows], default=json_value, indent=2) + "\n"


def to_csv(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> str:
    return csv_text([columns, *([csv_cell(row.get(c)) for c in columns] for row in rows)])


def _rich_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str], title: str) -> Any:
    from rich.table import Table
    from rich.text import Text

    # Text, not str: Rich would read "[…]" in a value as markup (a [redacted-phone] token
    # vanished, a [link=…] became a hyperlink).
    table = Table(title=title or None)
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*[Text(terminal_safe(text_cell(row.get(c)))) for c in columns])
    return table


def to_table(
    rows: Sequence[Mapping[str, Any]], columns: Sequence[str], title: str = "",
    width: int = 200,
) -> str:
    """The table as plain text (no colours), e.g. for a file."""
    from rich.console import Console

    buffer = io.StringIO()
    Console(file=buffer, width=width, no_color=True, highlight=False).print(
        _rich_table(rows, columns, title))
    return buffer.getvalue()


def resolve(fmt: str | OutputFormat | None, output: Path | None = None) -> OutputFormat:
    """The format asked for; by default a table on the terminal and CSV in a file."""
    if fmt is not None:
        return OutputFormat(fmt)
    return OutputFormat.TABLE if output is None else OutputFormat.CSV


def render(
    rows: Sequence[Mapping[str, Any]], columns: Sequence[str], fmt: str | OutputFormat,
    title: str = "",
) -> str:
    """``rows`` (only ``columns``, in order, for csv and table; every key for json)."""
    fmt = OutputFormat(fmt)
    if fmt is OutputFormat.JSON:
        return to_json(rows)
    if fmt is OutputFormat.CSV:
        return to_csv(rows, columns)
    return to_table(rows, columns, title)


def emit(
    rows: Sequence[Mapping[str, Any]], columns: Sequence[str], fmt: str | OutputFormat,
    title: str = "", output: Path | None = None,
) -> None:
    """Write ``rows`` to ``output`` or print them on stdout (a table to the terminal's
    width)."""
    fmt = OutputFormat(fmt)
    if output is not None:
        output.write_text(render(rows, columns, fmt, title))
        return
    if fmt is OutputFormat.TABLE:
        from rich.console import Console

        Console(highlight=False).print(_rich_table(rows, columns, title))
        return
    import sys

    sys.stdout.write(render(rows, columns, fmt, title))
    sys.stdout.flush()
