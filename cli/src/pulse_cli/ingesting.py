"""``pulse ingest``: checking a file before sending it, and reporting what was refused.

A file that is not what the command expects (another format, another kind's columns, an
export of another tool) is refused as a whole with one line naming the file and what is
missing. A file with some invalid rows is ingested: the valid rows are stored, each
invalid row is one ``error: FILE row N: FIELD: REASON`` line (row numbers count data
rows from 1) and the exit status is 1. In process, rows that pass validation but that a
consumer dead-letters (ClickHouse refused them) are reported the same way (see
:mod:`pulse_cli.runtime`).
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer

from pulse_cli.errors import UserError, emit
from pulse_cli.runtime import Pipeline, Refusal
from pulse_ingest.domain.normalize import (
    ALIASES,
    CONTACT_FIELDS,
    KIND_TOPICS,
    InvalidRow,
    NormalisedBatch,
    RowError,
)
from pulse_ingest.domain.readers import BodyError, format_of_path, sniff_delimiter
from pulse_ingest.files import read_rows
from pulse_ingest.service import IngestResult, IngestService

MAX_ROW_LINES = 20
GENERATED = ("kind", "event_id")  # never required from the file: event_id is derived


def required_fields(kind: str) -> list[str]:
    fields = KIND_TOPICS[kind].model.model_fields
    return [n for n, f in fields.items() if f.is_required() and n not in GENERATED]


def optional_fields(kind: str) -> list[str]:
    fields = KIND_TOPICS[kind].model.model_fields
    return [n for n, f in fields.items() if not f.is_required() and n != "kind"] + ["event_id"]


def fields_covered(kind: str, keys: Iterable[Any]) -> set[str]:
    """Model fields that input keys (columns / JSON keys, aliases included) provide."""
    fields = KIND_TOPICS[kind].model.model_fields
    aliases = ALIASES.get(kind, {})
    covered: set[str] = set()
    for key in keys:
        if not isinstance(key, str):
            continue
        name = key.strip().lower().lstrip("\ufeff")
        if name in fields:
            covered.add(name)
        elif name in aliases:
            covered.add(aliases[name])
        elif kind == "touchpoints" and name in CONTACT_FIELDS:
            covered.add("contact_id")
    return covered


def _missing_message(path: Path, kind: str, what: str, missing: Sequence[str]) -> str:
    return (
        f"{path}: not a {kind} file: {what} {', '.join(missing)} "
        f"(required: {', '.join(required_fields(kind))}; "
        f"optional: {', '.join(optional_fields(kind))})"
    )


def check_file(kind: str, path: Path) -> int:
    """Refuse a file that cannot be a ``kind`` file; else the number of rows it holds."""
    try:
        fmt = format_of_path(path)
    except BodyError:
        raise UserError(
            f"{path}: cannot tell the format from the name: use .json, .ndjson/.jsonl or .csv"
        ) from None
    try:
        if fmt == "csv":
            return _check_csv(kind, path)
        return _check_json_rows(kind, path, fmt)
    except UnicodeDecodeError as exc:
        raise UserError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None


def _check_csv(kind: str, path: Path) -> int:
    with path.open("r", encoding="utf-8-sig", newline="") as fh:
        head = "".join(fh.readline() for _ in range(2))
        if not head.strip():
            raise UserError(f"{path}: empty CSV file: expected a header row with the columns "
                            f"{', '.join(required_fields(kind))}")
        fh.seek(0)
        reader = csv.reader(fh, delimiter=sniff_delimiter(head))
        header = next(reader, [])
        missing = [f for f in required_fields(kind) if f not in fields_covered(kind, header)]
        if missing:
            raise UserError(_missing_message(path, kind, "missing column(s)", missing))
        return sum(1 for _ in reader)


def _check_json_rows(kind: str, path: Path, fmt: Any) -> int:
    rows = 0
    unparsable = 0
    first_problem = ""
    covered: set[str] = set()
    for row in read_rows(path, fmt):
        rows += 1
        if isinstance(row, InvalidRow):
            unparsable += 1
            first_problem = first_problem or row.reason
        elif isinstance(row, Mapping):
            covered |= fields_covered(kind, row.keys())
    if rows and unparsable == rows:
        raise UserError(f"{path}: not {fmt.upper()}: no line is JSON ({first_problem})")
    objects = rows - unparsable
    missing = [f for f in required_fields(kind) if f not in covered]
    if objects and missing:
        raise UserError(_missing_message(path, kind, "no record has the field(s)", missing))
    return rows


@dataclass
class Unmatched:
    """A refusal that is not about one of this command's rows (a derived event)."""

    refusal: Refusal


class CliIngestService(IngestService):
    """The ingest service, plus: rows the in-process pipeline refused become row errors."""

    def __init__(self, pipeline: Pipeline, settings: Any) -> None:
        super().__init__(pipeline.bus, settings)
        self.pipeline = pipeline
        self.unmatched: list[Unmatched] = []

    async def commit(
        self,
        batches: Sequence[NormalisedBatch],
        source: str,
        *,
        kind: str,
        received: int,
        atomic: bool = False,
        extra_errors: Sequence[RowError] = (),
    ) -> IngestResult:
        pipeline = self.pipeline
        pipeline.take_refusals()  # earlier ones belong to no row of this commit
        result = await super().commit(batches, source, kind=kind, received=received,
                                      atomic=atomic, extra_errors=extra_errors)
        # Only the in-process pipeline records refusals; with Kafka the list stays empty.
        refusals = pipeline.take_refusals()
        if refusals:
            self._as_row_errors(result, batches, refusals)
        return result

    def _as_row_errors(
        self, result: IngestResult, batches: Sequence[NormalisedBatch],
        refusals: Sequence[Refusal],
    ) -> None:
        by_id: dict[tuple[str, str], tuple[str, int]] = {}
        for b in batches:
            topic = KIND_TOPICS[b.kind].name
            for event, index in zip(b.events, b.indexes, strict=True):
                by_id.setdefault((topic, str(getattr(event, "event_id", ""))), (b.kind, index))
        seen: set[tuple[int, str]] = set()
        lost: set[int] = set()
        for refusal in refusals:
            found = (
                by_id.get((refusal.topic, refusal.event_id))
                if refusal.event_id is not None else None
            )
            if found is None:
                self.unmatched.append(Unmatched(refusal))
                continue
            kind, index = found
            reason = refusal.reason
            if refusal.consumer:
                reason = f"dead-lettered by {refusal.consumer}: {reason}"
            if (index, refusal.field) in seen:
                continue
            seen.add((index, refusal.field))
            result.rejected.append(RowError(index, refusal.field, reason).as_dict())
            if index not in lost:
                lost.add(index)
                result.accepted -= 1
                if result.by_kind.get(kind):
                    result.by_kind[kind] -= 1
        result.rejected.sort(key=lambda e: e["index"])


REPORT_COLUMNS = ("file", "kind", "received", "accepted", "rejected", "duplicates")


def report(label: str, path: Path, result: IngestResult,
           unmatched: Sequence[Unmatched] = (), fmt: str = "table") -> None:
    """The outcome, one line per invalid row (capped) on stderr, exit 1 if anything failed.

    ``table``: the summary line on stderr, as before; ``csv`` / ``json``: one summary
    record on stdout (JSON adds every row error and refusal).
    """
    by_row: dict[int, list[str]] = {}
    for error in result.rejected:
        by_row.setdefault(int(error["index"]), []).append(
            f"{error['field']}: {error['reason']}"
        )
    if fmt == "table":
        typer.echo(
            f"{label}: accepted {result.accepted}, rejected {result.rejected_rows}, "
            f"duplicates {result.duplicates}",
            err=True,
        )
    else:
        from pulse_shared.cli_output import emit as emit_rows

        summary = {
            "file": str(path), "kind": label, "received": result.received,
            "accepted": result.accepted, "rejected": result.rejected_rows,
            "duplicates": result.duplicates,
            "errors": [
                {"row": int(e["index"]) + 1, "field": e["field"], "reason": e["reason"]}
                for e in result.rejected
            ],
            "refused": [
                {"topic": u.refusal.topic, "event_id": u.refusal.event_id,
                 "field": u.refusal.field, "reason": u.refusal.reason}
                for u in unmatched
            ],
        }
        emit_rows([summary], REPORT_COLUMNS, fmt)
    for index in sorted(by_row)[:MAX_ROW_LINES]:
        emit(f"{path} row {index + 1}: {'; '.join(by_row[index])}")
    if len(by_row) > MAX_ROW_LINES:
        emit(f"{path}: and {len(by_row) - MAX_ROW_LINES} more invalid rows")
    for item in unmatched[:MAX_ROW_LINES]:
        r = item.refusal
        emit(f"{path}: {r.topic} event {r.event_id or '?'}: {r.field}: {r.reason}")
    if by_row or unmatched:
        raise typer.Exit(code=1)
