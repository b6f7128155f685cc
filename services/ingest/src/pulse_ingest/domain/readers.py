"""JSON array / NDJSON / CSV → row dicts, from files (CLI) or request bodies (HTTP).

An unparsable NDJSON line does not abort the whole input: it becomes an
:class:`~pulse_ingest.domain.normalize.InvalidRow`, reported as that row's error.
A JSON document that is not valid JSON at all raises :class:`BodyError`.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Literal

from pulse_ingest.domain.normalize import InvalidRow

Format = Literal["json", "ndjson", "csv"]

_EXTENSIONS: dict[str, Format] = {
    ".json": "json",
    ".ndjson": "ndjson",
    ".jsonl": "ndjson",
    ".csv": "csv",
}


class BodyError(ValueError):
    """The input as a whole is unreadable (not JSON, not UTF-8, wrong top-level type)."""


class UnsupportedFormat(BodyError):
    """A content type (or file extension) that is not JSON, NDJSON or CSV."""


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


def _json_rows(document: Any) -> list[Any]:
    if isinstance(document, list):
        return document
    if isinstance(document, dict):
        rows = document.get("rows")
        if isinstance(rows, list) and len(document) == 1:
            return rows
        return [document]
    raise BodyError(f"expected a JSON array of objects, got {type(document).__name__}")


def _ndjson_rows(lines: Iterable[str]) -> Iterator[Any]:
    for number, line in enumerate(lines, start=1):
        text = line.strip()
        if not text:
            continue
        try:
            yield json.loads(text)
        except ValueError as exc:
            yield InvalidRow(f"line {number}: invalid JSON ({exc.args[0] if exc.args else exc})")


def _csv_rows(handle: Iterable[str], delimiter: str = ",") -> Iterator[dict[str, Any]]:
    reader = csv.DictReader(handle, delimiter=delimiter)
    for row in reader:
        # columns beyond the header land under the key None: drop them
        yield {k.lstrip("\ufeff"): v for k, v in row.items() if isinstance(k, str)}


def sniff_delimiter(text: str) -> str:
    """``,`` unless the header line has more ``;`` or tabs (Excel in some locales, TSV)."""
    header = next((line for line in text.splitlines()[:20] if line.strip()), "")
    counts = {d: header.count(d) for d in (",", ";", "\t")}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] > counts[","] else ","


def decode_text(body: bytes) -> str:
    """UTF-8 (BOM optional) or UTF-16 with a BOM (Excel "Unicode text" exports)."""
    if body.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return body.decode("utf-16")
        except UnicodeDecodeError as exc:
            raise BodyError(f"body is not valid UTF-16: {exc}") from None
    try:
        return body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise BodyError(f"body is not UTF-8: {exc}") from None


def parse_text(text: str, fmt: Format) -> list[Any]:
    """Rows of an in-memory document (an HTTP body)."""
    if fmt == "json":
        try:
            return _json_rows(json.loads(text))
        except ValueError as exc:
            raise BodyError(f"invalid JSON: {exc}") from None
    if fmt == "ndjson":
        return list(_ndjson_rows(text.splitlines()))
    text = text.lstrip("\ufeff")
    return list(_csv_rows(io.StringIO(text, newline=""), sniff_delimiter(text)))


def parse_body(body: bytes, content_type: str | None) -> list[Any]:
    return parse_text(decode_text(body), format_of_content_type(content_type))


def read_rows(path: Path | str, fmt: Format | None = None) -> Iterator[Any]:
    """Stream the rows of a JSON array, NDJSON or CSV file (format from the extension)."""
    fmt = fmt or format_of_path(path)
    if fmt == "json":
        with Path(path).open("r", encoding="utf-8-sig") as fh:
            try:
                document = json.load(fh)
            except ValueError as exc:
                raise BodyError(f"{path}: invalid JSON: {exc}") from None
        yield from _json_rows(document)
        return
    with Path(path).open("r", encoding="utf-8-sig", newline="") as fh:
        if fmt == "ndjson":
            yield from _ndjson_rows(fh)
        else:
            delimiter = sniff_delimiter("".join(fh.readline() for _ in range(2)))
            fh.seek(0)
            yield from _csv_rows(fh, delimiter)


def count_rows(path: Path | str, fmt: Format | None = None) -> int:
    """Number of rows :func:`read_rows` will yield (for progress bars)."""
    return sum(1 for _ in read_rows(path, fmt))
