"""User text made safe where a program other than Pulse reads it: a spreadsheet opening a
CSV file and a terminal showing a table. (HTML, Markdown and PDF escape in the reporting
renderers; JSON is data, escaped by the encoder.)

- **Spreadsheets** run a cell starting with ``=``, ``+``, ``-`` or ``@`` as a formula
  (``=HYPERLINK(…)``, ``+cmd|' /C calc'!A0``: CSV injection). :func:`spreadsheet_safe`
  prefixes such text with ``'`` (OWASP's advice) and leaves plain numbers alone, so
  ``-12.5`` stays a number. Every CSV Pulse writes (reports, ``--format csv``) uses it,
  and :func:`csv_text`, which quotes a field holding any line break (Python's writer
  quotes only the characters of its line terminator: a lone CR stayed bare and split the
  row in a reader).
- **Terminals** obey escape sequences: an ESC in a campaign name could recolour the screen,
  retitle the window or plant a hyperlink, a bidi override reorders what is shown.
  :func:`terminal_safe` shows each control or format character as ``\\xNN`` /
  ``\\uNNNN`` instead (line breaks and tabs stay); :func:`rich_literal` also
  escapes Rich markup for text interpolated into a message Rich prints (a ``[…]`` in a
  report note or a path is shown, not read as a style or a link).
"""

from __future__ import annotations

import csv
import io
import re
import unicodedata
from collections.abc import Iterable, Sequence

# what a spreadsheet may read as the start of a formula: = + - @, tab and CR (and LF), and
# their full-width forms, which some spreadsheets fold to ASCII
FORMULA_START = frozenset("=+-@\t\r\n\uff1d\uff0b\uff0d\uff20")
_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")


def spreadsheet_safe(text: str) -> str:
    """``text`` as a CSV cell no spreadsheet runs: prefixed with ``'`` when it would start
    a formula (a plain signed number such as ``-12.5`` is kept)."""
    if text[:1] in FORMULA_START and not _NUMBER.fullmatch(text):
        return "'" + text
    return text


def csv_text(rows: Iterable[Sequence[object]]) -> str:
    """The rows as CSV (RFC 4180 quoting, each row ended by ``\\n``) with every field that
    holds a CR or an LF quoted."""
    out = io.StringIO()
    row_text = io.StringIO()
    # "\r\n" as the writer's terminator makes it quote a field holding either character;
    # each row's own terminator is then replaced by "\n".
    writer = csv.writer(row_text, lineterminator="\r\n")
    for row in rows:
        row_text.seek(0)
        row_text.truncate()
        writer.writerow(row)
        out.write(row_text.getvalue()[:-2])
        out.write("\n")
    return out.getvalue()


def terminal_safe(text: str) -> str:
    """``text`` with every control or format character but tab and line feed written
    ``\\xNN`` / ``\\uNNNN``: escape sequences, and bidi overrides (U+202E) or zero-width
    characters that would make a terminal show something else than the text."""
    if text.isprintable():  # C speed: the common case has none
        return text
    return "".join(
        char if char in "\t\n" or char.isprintable() or unicodedata.category(char) == "Zs"
        else _escaped(char)
        for char in text
    )


def _escaped(char: str) -> str:
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else (
        f"\\U{code:08x}")


def rich_literal(text: str) -> str:
    """``text`` for a Rich message: shown as written (markup escaped), terminal-safe."""
    from rich.markup import escape  # lazy: the CLI imports this module before Rich

    return escape(terminal_safe(text))
