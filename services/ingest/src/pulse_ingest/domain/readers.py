"""JSON array / NDJSON / CSV → row dicts, from text streams (files opened by
:mod:`pulse_ingest.files` for the CLI) or request bodies (HTTP).

Reading is bounded while it happens, never after: a body is read row by row (a JSON array
element by element, not as one document), so the row limit, the nesting-depth limit and
the CSV cell-size limit stop the reader at the offending row, and memory stays a small
multiple of the body. Outcomes:

* An unparsable NDJSON line, or a row nested deeper than the limit, does not abort the
  input: it becomes an :class:`~pulse_ingest.domain.normalize.InvalidRow`, reported as
  that row's error.
* More rows than allowed raise :class:`RowLimitExceeded` as soon as the first extra row
  starts (HTTP 413).
* Input that cannot be read past some row — a CSV cell over the size limit, a JSON array
  element too deep to parse, more than ``max_row_errors`` unparsable lines (a body that
  is not NDJSON at all) — raises :class:`UnreadableRows` naming the row (HTTP 422,
  nothing published).
* A JSON document that is not valid JSON at all raises :class:`BodyError` (HTTP 400).
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Literal

from pulse_ingest.domain.normalize import InvalidRow, RowError

Format = Literal["json", "ndjson", "csv"]

_EXTENSIONS: dict[str, Format] = {
    ".json": "json",
    ".ndjson": "ndjson",
    ".jsonl": "ndjson",
    ".csv": "csv",
}


@dataclass(frozen=True)
class ReadLimits:
    """Bounds applied while reading. ``None`` = unbounded (files given to the CLI)."""

    max_rows: int | None = None
    max_depth: int = 32
    max_field_chars: int = 64 * 1024
    max_row_errors: int | None = None


FILE_LIMITS = ReadLimits()


class BodyError(ValueError):
    """The input as a whole is unreadable (not JSON, not UTF-8, wrong top-level type)."""


class UnsupportedFormat(BodyError):
    """A content type (or file extension) that is not JSON, NDJSON or CSV."""


class RowLimitExceeded(BodyError):
    """More rows than one request may carry (raised when the first extra row starts)."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"more than {limit} rows; at most {limit} per request")
        self.limit = limit


class UnreadableRows(BodyError):
    """Reading stopped at a row: ``errors`` name it (and earlier unparsable rows);
    ``rows_read`` rows were read before; ``unchecked_lines`` lines after it were not read."""

    def __init__(
        self, detail: str, errors: list[RowError], rows_read: int, unchecked_lines: int = 0
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = errors
        self.rows_read = rows_read
        self.unchecked_lines = unchecked_lines


def format_of_path(path: Path | str) -> Format:
    suffix = Path(path).suffix.lower()
    try:
        return _EXTENSIONS[suffix]
    except KeyError:
        raise UnsupportedFormat(
            f"cannot tell the format of {Path(path).name!r}: use .json, .ndjson/.jsonl or .csv"
        ) from None


def format_of_content_type(content_type: str | None) -> Format:
    """``application/json`` (default), ``application/x-ndjson``/jsonl, ``text/csv``."""
    media = (content_type or "application/json").split(";")[0].strip().lower()
    if media in ("application/x-ndjson", "application/ndjson", "application/jsonl",
                 "application/x-jsonlines", "application/jsonlines"):
        return "ndjson"
    if media in ("text/csv", "application/csv"):
        return "csv"
    if media in ("application/json", "text/json", "") or media.endswith("+json"):
        return "json"
    raise UnsupportedFormat(
        f"unsupported content type {media!r}: use application/json, "
        "application/x-ndjson or text/csv"
    )


# -- nesting depth ------------------------------------------------------------------------


def _too_deep(value: Any, limit: int) -> bool:
    """Whether ``value`` nests more than ``limit`` containers (iterative: no recursion)."""
    if not isinstance(value, dict | list):
        return False
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        container, depth = stack.pop()
        if depth > limit:
            return True
        children = container.values() if isinstance(container, dict) else container
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


def _too_deep_reason(limit: int) -> str:
    return f"nested more than {limit} levels deep"


# -- NDJSON -------------------------------------------------------------------------------


def _ndjson_rows(lines: Iterable[str], limits: ReadLimits = FILE_LIMITS) -> Iterator[Any]:
    """One row per non-blank line; bad lines become :class:`InvalidRow` (row errors)."""
    errors: list[RowError] = []
    index = 0
    line_iter = iter(lines)
    for number, line in enumerate(line_iter, start=1):
        text = line.strip()
        if not text:
            continue
        if limits.max_rows is not None and index >= limits.max_rows:
            raise RowLimitExceeded(limits.max_rows)
        row: Any
        try:
            row = json.loads(text)
        except RecursionError:
            row = InvalidRow(f"line {number}: {_too_deep_reason(limits.max_depth)}")
        except ValueError as exc:
            row = InvalidRow(f"line {number}: invalid JSON ({exc.args[0] if exc.args else exc})")
        else:
            if _too_deep(row, limits.max_depth):
                row = InvalidRow(f"line {number}: {_too_deep_reason(limits.max_depth)}")
        if isinstance(row, InvalidRow) and limits.max_row_errors is not None:
            if len(errors) >= limits.max_row_errors:
                unchecked = sum(chunk.count("\n") for chunk in _rest(line_iter))
                raise UnreadableRows(
                    f"more than {limits.max_row_errors} lines are not valid NDJSON rows; "
                    f"reading stopped at line {number} ({unchecked} more lines not checked)"
                    "; the first errors are listed, nothing was published",
                    errors, index, unchecked,
                )
            errors.append(RowError(index, "(row)", row.reason))
        yield row
        index += 1


def _rest(lines: Iterator[str]) -> Iterator[str]:
    """What is left of a text stream (read in big chunks when it is one)."""
    if isinstance(lines, io.TextIOBase):
        yield from iter(lambda: lines.read(1 << 20), "")
    else:
        yield from (line if line.endswith("\n") else line + "\n" for line in lines)


# -- CSV ----------------------------------------------------------------------------------


class _RecordLines:
    """Feeds the csv reader line by line and keeps the lines of the record being read,
    so that the column of a cell over the size limit can be named."""

    def __init__(self, lines: Iterable[str]) -> None:
        self._lines = iter(lines)
        self.current: list[str] = []

    def __iter__(self) -> _RecordLines:
        return self

    def __next__(self) -> str:
        line = next(self._lines)
        self.current.append(line)
        return line


def _long_cell_position(record: str, delimiter: str, limit: int) -> int | None:
    """0-based position of the first cell of ``record`` longer than ``limit`` characters
    (the record may be cut short inside that cell)."""
    d = re.escape(delimiter)
    cell = re.compile(rf'"[^"]*(?:""[^"]*)*"?[^{d}\r\n]*|[^{d}\r\n]*')
    pos, position = 0, 0
    while True:
        match = cell.match(record, pos)
        if match is None:  # pragma: no cover - the pattern matches the empty string
            return None
        if match.end() - match.start() > limit:
            return position
        pos = match.end()
        if pos >= len(record) or record[pos] != delimiter:
            return None
        pos += 1
        position += 1


def _csv_error(
    exc: csv.Error, lines: _RecordLines, header: list[str] | None, index: int,
    delimiter: str, limits: ReadLimits,
) -> UnreadableRows:
    reason = str(exc)
    where = "header" if header is None else f"row {index}"
    column = "(row)"
    if "field larger than field limit" in reason:
        reason = f"cell longer than {limits.max_field_chars} characters"
        position = _long_cell_position("".join(lines.current), delimiter,
                                       limits.max_field_chars)
        if position is not None:
            named = header[position] if header is not None and position < len(header) else None
            column = named.lstrip("\ufeff").strip() if named else f"column {position + 1}"
    else:
        reason = f"unreadable CSV ({reason})"
    detail = f"{where}, column {column!r}: {reason}" if column != "(row)" else f"{where}: {reason}"
    return UnreadableRows(f"{detail}; nothing was published",
                          [RowError(max(index, 0), column, reason)], index)


def _csv_rows(
    handle: Iterable[str], delimiter: str = ",", limits: ReadLimits = FILE_LIMITS
) -> Iterator[dict[str, Any]]:
    # The limit is process-wide in the csv module; every reader here sets the same value.
    csv.field_size_limit(limits.max_field_chars)
    lines = _RecordLines(handle)
    reader = csv.reader(lines, delimiter=delimiter)
    header: list[str] | None = None
    try:
        for cells in reader:
            if cells:
                header = cells
                break
    except csv.Error as exc:
        raise _csv_error(exc, lines, None, 0, delimiter, limits) from None
    if header is None:
        return
    keys = [k.lstrip("\ufeff") for k in header]
    index = 0
    while True:
        lines.current.clear()
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise _csv_error(exc, lines, header, index, delimiter, limits) from None
        if not cells:
            continue
        if limits.max_rows is not None and index >= limits.max_rows:
            raise RowLimitExceeded(limits.max_rows)
        # cells beyond the header are dropped; missing ones are absent (not "")
        yield dict(zip(keys, cells, strict=False))
        index += 1


def sniff_delimiter(text: str) -> str:
    """``,`` unless the header line has more ``;`` or tabs (Excel in some locales, TSV)."""
    header = next((line for line in text[: 64 * 1024].splitlines()[:20] if line.strip()), "")
    counts = {d: header.count(d) for d in (",", ";", "\t")}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] > counts[","] else ","


# -- JSON ---------------------------------------------------------------------------------

_WHITESPACE = re.compile(r"[ \t\n\r]*")
_ROWS_WRAPPER = re.compile(r'\{[ \t\n\r]*"rows"[ \t\n\r]*:[ \t\n\r]*(?=\[)')
_DECODER = json.JSONDecoder()


class _JsonStream:
    """A window over a text stream for reading one JSON value at a time.

    ``json.JSONDecoder.raw_decode`` parses a value that starts at an index of a string;
    the window grows (doubling) when a value runs past its end, and drops what was
    consumed, so a huge array never exists as one string or one Python list.
    """

    CHUNK = 1 << 20

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream
        self.buf = ""
        self.pos = 0
        self.consumed = 0  # characters dropped from the front of the window
        self.eof = False
        self._more()

    def _more(self) -> bool:
        if self.eof:
            return False
        data = self.stream.read(max(self.CHUNK, len(self.buf) - self.pos))
        if not data:
            self.eof = True
            return False
        if self.pos:
            self.consumed += self.pos
            self.buf = self.buf[self.pos :]
            self.pos = 0
        self.buf += data
        return True

    @property
    def offset(self) -> int:
        return self.consumed + self.pos

    def peek(self) -> str:
        """The next non-whitespace character ('' at the end)."""
        while True:
            match = _WHITESPACE.match(self.buf, self.pos)
            self.pos = match.end() if match else self.pos
            if self.pos < len(self.buf) or not self._more():
                return self.buf[self.pos : self.pos + 1]

    def skip(self, count: int = 1) -> None:
        self.pos += count

    def match(self, pattern: re.Pattern[str]) -> bool:
        """Consume ``pattern`` (a short prefix: up to 256 characters) if it is next."""
        self.peek()
        while len(self.buf) - self.pos < 256 and self._more():
            pass
        found = pattern.match(self.buf, self.pos)
        if found is None:
            return False
        self.pos = found.end()
        return True

    def value(self, what: str) -> Any:
        """Decode the JSON value at the current position (RecursionError if too deep)."""
        self.peek()
        while True:
            try:
                value, end = _DECODER.raw_decode(self.buf, self.pos)
            except json.JSONDecodeError as exc:
                if self._more():
                    continue
                raise BodyError(
                    f"invalid JSON at character {self.consumed + exc.pos} ({what}): {exc.msg}"
                ) from None
            # a number or literal that ends with the window may continue after it
            if end == len(self.buf) and self._more():
                continue
            self.pos = end
            return value


def _json_rows_stream(stream: IO[str], limits: ReadLimits = FILE_LIMITS) -> Iterator[Any]:
    """Rows of a JSON array (or ``{"rows": [...]}``, or one object), element by element."""
    reader = _JsonStream(stream)
    first = reader.peek()
    if first == "":
        raise BodyError("invalid JSON: the document is empty")
    wrapped = first == "{" and reader.match(_ROWS_WRAPPER)
    if first == "[" or wrapped:
        yield from _json_array(reader, limits)
        if wrapped:
            if reader.peek() != "}":
                raise BodyError(
                    f"invalid JSON at character {reader.offset}: a {{\"rows\": [...]}} "
                    "document has no other keys"
                )
            reader.skip()
    else:
        try:
            document = reader.value("the document")
        except RecursionError:
            raise _deep_element(0, limits) from None
        if not isinstance(document, dict):
            raise BodyError(f"expected a JSON array of objects, got {type(document).__name__}")
        yield _checked_depth(document, 0, limits)
    if reader.peek() != "":
        raise BodyError(f"invalid JSON at character {reader.offset}: extra data after the rows")


def _json_array(reader: _JsonStream, limits: ReadLimits) -> Iterator[Any]:
    reader.skip()  # "["
    if reader.peek() == "]":
        reader.skip()
        return
    index = 0
    while True:
        if limits.max_rows is not None and index >= limits.max_rows:
            raise RowLimitExceeded(limits.max_rows)
        try:
            row = reader.value(f"row {index}")
        except RecursionError:
            raise _deep_element(index, limits) from None
        yield _checked_depth(row, index, limits)
        index += 1
        after = reader.peek()
        if after == "]":
            reader.skip()
            return
        if after != ",":
            raise BodyError(
                f"invalid JSON at character {reader.offset}: expected ',' or ']' after "
                f"row {index - 1}"
            )
        reader.skip()


def _checked_depth(row: Any, index: int, limits: ReadLimits) -> Any:
    if _too_deep(row, limits.max_depth):
        return InvalidRow(_too_deep_reason(limits.max_depth))
    return row


def _deep_element(index: int, limits: ReadLimits) -> UnreadableRows:
    reason = _too_deep_reason(limits.max_depth)
    return UnreadableRows(
        f"row {index}: {reason} (too deep to read past); nothing was published",
        [RowError(index, "(row)", reason)], index,
    )


# -- bodies and files ---------------------------------------------------------------------


class _BufferReader(io.RawIOBase):
    """A raw stream over a bytes-like object, without copying it (``io.BytesIO`` copies
    a ``bytearray``)."""

    def __init__(self, data: bytes | bytearray | memoryview) -> None:
        self._view = memoryview(data).cast("B")
        self._pos = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        n = min(len(buffer), len(self._view) - self._pos)
        buffer[:n] = self._view[self._pos : self._pos + n]
        self._pos += n
        return n

    def close(self) -> None:
        self._view.release()
        super().close()


def _encoding_of(body: bytes | bytearray) -> str:
    return "utf-16" if body[:2] in (b"\xff\xfe", b"\xfe\xff") else "utf-8-sig"


def open_body(body: bytes | bytearray) -> io.TextIOWrapper:
    """The body as a text stream decoded on the fly: UTF-8 (BOM optional) or UTF-16 with
    a BOM. Lines end at \\n, \\r\\n or \\r, as in files."""
    raw = io.BufferedReader(_BufferReader(body), buffer_size=1 << 16)
    return io.TextIOWrapper(raw, encoding=_encoding_of(body), newline="")


def decode_text(body: bytes | bytearray) -> str:
    """UTF-8 (BOM optional) or UTF-16 with a BOM (Excel "Unicode text" exports)."""
    encoding = _encoding_of(body)
    try:
        return body.decode(encoding)
    except UnicodeDecodeError as exc:
        name = "UTF-16" if encoding == "utf-16" else "UTF-8"
        raise BodyError(f"body is not {name}: {exc}") from None


def _csv_delimiter_of(body: bytes | bytearray) -> str:
    head = body[: 64 * 1024].decode(_encoding_of(body), errors="replace")
    return sniff_delimiter(head.lstrip("\ufeff"))


def iter_body(body: bytes | bytearray, fmt: Format, limits: ReadLimits) -> Iterator[Any]:
    """Rows of a request body, read (and bounded by ``limits``) one at a time."""
    stream = open_body(body)
    try:
        if fmt == "json":
            yield from _json_rows_stream(stream, limits)
        elif fmt == "ndjson":
            yield from _ndjson_rows(stream, limits)
        else:
            yield from _csv_rows(stream, _csv_delimiter_of(body), limits)
    except UnicodeDecodeError as exc:
        name = "UTF-16" if _encoding_of(body) == "utf-16" else "UTF-8"
        raise BodyError(f"body is not {name}: {exc}") from None
    finally:
        stream.close()


def read_body(
    body: bytes | bytearray, content_type: str | None, limits: ReadLimits
) -> list[Any]:
    """All rows of a request body (at most ``limits.max_rows``). CPU-bound: call it off
    the event loop for big bodies."""
    return list(iter_body(body, format_of_content_type(content_type), limits))


def parse_text(text: str, fmt: Format, limits: ReadLimits = FILE_LIMITS) -> list[Any]:
    """Rows of an in-memory document."""
    stream = io.StringIO(text, newline="")
    if fmt == "json":
        return list(_json_rows_stream(stream, limits))
    if fmt == "ndjson":
        return list(_ndjson_rows(stream, limits))
    text = text.lstrip("\ufeff")
    return list(_csv_rows(io.StringIO(text, newline=""), sniff_delimiter(text), limits))


def parse_body(
    body: bytes | bytearray, content_type: str | None, limits: ReadLimits = FILE_LIMITS
) -> list[Any]:
    return read_body(body, content_type, limits)


def iter_stream(stream: IO[str], fmt: Format, limits: ReadLimits = FILE_LIMITS) -> Iterator[Any]:
    """Rows of a text stream the caller opened (files: :func:`pulse_ingest.files.read_rows`).

    CSV: the delimiter is sniffed from the first two lines, which are then read again.
    """
    if fmt == "json":
        yield from _json_rows_stream(stream, limits)
    elif fmt == "ndjson":
        yield from _ndjson_rows(stream, limits)
    else:
        head = [line for line in (stream.readline(), stream.readline()) if line]
        delimiter = sniff_delimiter("".join(head))
        yield from _csv_rows(itertools.chain(head, stream), delimiter, limits)
