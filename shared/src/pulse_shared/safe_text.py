"""User text made safe where a program other than Pulse reads it: a spreadsheet opening a
CSV file and a terminal showing a table. (HTML, Markdown and PDF escape in the reporting
renderers; JSON is data, escaped by the encoder.)

- **Spreadsheets** run a cell starting with ``=``, ``+``, ``-`` or ``@`` as a formula
  (``=HYPERLINK(…)``, ``+cmd|' /C calc'!A0``: CSV injection). :func:`spreadsheet_safe`
  prefixes such text with ``'`` (OWASP's advice) and leaves plain numbers alone, so
  ``-12.5`` stays a number. Every CSV Pulse writes (reports, ``--format csv``) uses it.
- **Terminals** obey escape sequences: an ESC in a campaign name could recolour the screen,
  retitle the window or plant a hyperlink. :func:`terminal_safe` shows each control
  character as ``\\xNN`` instead (line breaks and tabs stay); :func:`rich_literal` also
  escapes Rich markup for text interpolated into a message Rich prints (a ``[…]`` in a
  report note or a path is shown, not read as a style or a link).
"""

from __future__ import annotations

import re

# what a spreadsheet may read as the start of a formula: = + - @, tab and CR (and LF), and
# their full-width forms, which some spreadsheets fold to ASCII
FORMULA_START = frozenset("=+-@\t\r\n\uff1d\uff0b\uff0d\uff20")
_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")
# C0 controls but tab and line feed, DEL, C1 controls (ESC, CSI … start escape sequences)
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def spreadsheet_safe(text: str) -> str:
    """``text`` as a CSV cell no spreadsheet runs: prefixed with ``'`` when it would start
    a formula (a plain signed number such as ``-12.5`` is kept)."""
    if text[:1] in FORMULA_START and not _NUMBER.fullmatch(text):
        return "'" + text
    return text


def terminal_safe(text: str) -> str:
    """``text`` with every control character but tab and line feed written ``\\xNN``."""
    if text.isprintable():  # C speed: the common case has none
        return text
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def rich_literal(text: str) -> str:
    """``text`` for a Rich message: shown as written (markup escaped), terminal-safe."""
    from rich.markup import escape  # lazy: the CLI imports this module before Rich

    return escape(terminal_safe(text))
