"""The one ingest code path shared by the HTTP API, CSV imports, the CLI and the demo.

raw rows → :mod:`pulse_ingest.domain.normalize` (pseudonymise, validate) → duplicate
window → ``Bus.publish`` (acks=all) → :class:`IngestResult`.
"""

from __future__ import annotations

import asyncio
import csv
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pulse_ingest import metrics
from pulse_ingest.domain.imports import MappedRows, map_export
from pulse_ingest.domain.normalize import (
    KINDS,
    NormalisedBatch,
    RowError,
    normalise_rows,
    topic_for,
)
from pulse_ingest.domain.readers import (
    Format,
    ReadLimits,
    UnreadableRows,
    decode_text,
    format_of_content_type,
    iter_body,
)
from pulse_ingest.files import read_rows
from pulse_ingest.settings import IngestSettings
from pulse_shared.bus import Bus
from pulse_shared.events import Event
from pulse_shared.logging import get_logger

log = get_logger(__name__)
OFFLOAD_ROWS = 500
PROGRESS_ROWS = 1000
YIELD_ROWS = 50


class BackpressureError(RuntimeError):
    """The broker cannot take more right now; retry after ``retry_after`` seconds."""

    def __init__(self, reason: str, retry_after: int) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


class TooManyRows(ValueError):
    """More rows than one request may carry (HTTP 413)."""


@dataclass
class IngestResult:
    """Outcome of one ingest call (or of a whole file, see :meth:`merge`)."""

    kind: str
    source: str
    received: int = 0
    accepted: int = 0
    duplicates: int = 0
    rejected: list[dict[str, Any]] = field(default_factory=list)
    atomic: bool = False
    by_kind: dict[str, int] = field(default_factory=dict)
    ignored_fields: set[str] = field(default_factory=set)

    @property
    def rejected_rows(self) -> int:
        return len({r["index"] for r in self.rejected})

    @property
    def ok(self) -> bool:
        return not self.rejected

    def merge(self, other: IngestResult) -> IngestResult:
        self.received += other.received
        self.accepted += other.accepted
        self.duplicates += other.duplicates
        self.rejected.extend(other.rejected)
        for kind, n in other.by_kind.items():
            self.by_kind[kind] = self.by_kind.get(kind, 0) + n
        self.ignored_fields |= other.ignored_fields
        return self

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "source": self.source,
            "received": self.received,
            "accepted": self.accepted,
            "duplicates": self.duplicates,
            "rejected_rows": self.rejected_rows,
            "rejected": self.rejected,
            "atomic": self.atomic,
            "by_kind": self.by_kind,
            "ignored_fields": sorted(self.ignored_fields),
        }


def fingerprint(event: Event) -> int:
    """Content fingerprint: same id + same content = duplicate; same id + new content =
    a correction, published so the ReplacingMergeTree tables keep the latest version."""
    try:
        return hash(tuple(event.__dict__.values()))
    except TypeError:  # an unhashable field value (not in the input models)
        return hash(event.model_dump_json())


class DedupWindow:
    """The last ``size`` event ids seen per kind (LRU) with their content fingerprint."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._seen: dict[str, OrderedDict[str, int]] = {}

    def seen(self, kind: str, event_id: str, print_: int) -> bool:
        seen = self._seen.get(kind)
        return seen is not None and seen.get(event_id) == print_

    def add(self, kind: str, items: Iterable[tuple[str, int]]) -> None:
        if self.size <= 0:
            return
        seen = self._seen.setdefault(kind, OrderedDict())
        for event_id, print_ in items:
            seen[event_id] = print_
            seen.move_to_end(event_id)
        while len(seen) > self.size:
            seen.popitem(last=False)

    def __len__(self) -> int:
        return sum(len(s) for s in self._seen.values())


class IngestService:
    """Validates, pseudonymises, deduplicates and publishes rows of any input kind."""

    name = "ingest"

    def __init__(self, bus: Bus, settings: IngestSettings | None = None) -> None:
        self.bus = bus
        self.settings = settings or IngestSettings()
        self.salt = self.settings.salt()  # raises without a salt outside the demo
        self.settings.validate_kinds()
        self.window = DedupWindow(self.settings.dedup_window)
        self._inflight = 0
        # The csv module's cell limit is process-wide (CSV bodies and exports alike).
        csv.field_size_limit(self.settings.max_csv_field_chars)
        self.read_progress: Callable[[int], None] | None = None
        """Called from the reading thread with the rows read so far (0 at the start, then
        every :data:`PROGRESS_ROWS`); lets tests observe a read in flight."""

    @property
    def read_limits(self) -> ReadLimits:
        """Bounds of one request body (rows, nesting depth, CSV cell size, parse errors)."""
        s = self.settings
        return ReadLimits(max_rows=s.max_rows, max_depth=s.max_depth,
                          max_field_chars=s.max_csv_field_chars,
                          max_row_errors=s.max_row_errors)

    @property
    def file_limits(self) -> ReadLimits:
        """Bounds of a file given to the CLI: no row limit, every row error reported."""
        s = self.settings
        return ReadLimits(max_depth=s.max_depth, max_field_chars=s.max_csv_field_chars)

    # -- reading --------------------------------------------------------------------------

    async def read_body(self, body: bytes | bytearray, content_type: str | None) -> list[Any]:
        """Rows of a request body, read in a worker thread so that the event loop keeps
        serving (``/health``, other requests) while a big body is parsed.

        Raises the :mod:`~pulse_ingest.domain.readers` errors: ``UnsupportedFormat``,
        ``RowLimitExceeded`` (at the first row over ``max_rows``), ``UnreadableRows``,
        ``BodyError``."""
        fmt = format_of_content_type(content_type)
        return await asyncio.to_thread(self._read_rows, body, fmt)

    def _read_rows(self, body: bytes | bytearray, fmt: Format) -> list[Any]:
        progress = self.read_progress
        rows: list[Any] = []
        if progress is not None:
            progress(0)
        for row in iter_body(body, fmt, self.read_limits):
            rows.append(row)
            if len(rows) % YIELD_ROWS == 0:
                # Hand the GIL to the event loop now and then: a thread that only parses
                # would otherwise keep it for whole switch intervals (5 ms) at a time, and
                # each of the loop's many short waits for it adds up on /health.
                time.sleep(0)
                if progress is not None and len(rows) % PROGRESS_ROWS == 0:
                    progress(len(rows))
        return rows

    # -- pure part ------------------------------------------------------------------------

    def prepare(self, kind: str, rows: Sequence[Any], start_index: int = 0) -> NormalisedBatch:
        """Normalise and validate (no I/O)."""
        return normalise_rows(kind, list(rows), self.salt, start_index)

    async def import_export(
        self,
        export: str,
        text: str,
        source: str,
        atomic: bool = False,
        max_rows: int | None = None,
    ) -> IngestResult:
        """Map a CSV export (``google_ads``, ``hubspot_contacts`` …) and publish it.

        Raises :class:`~pulse_ingest.domain.imports.MappingError` when the text is not
        such an export. Row indexes in errors are the export's data rows (0-based).
        """
        try:
            mapped, batches = await asyncio.to_thread(self.prepare_export, export, text)
        except csv.Error as exc:
            detail = str(exc)
            if "field larger than field limit" in detail:
                detail = f"a cell is longer than {self.settings.max_csv_field_chars} characters"
            raise UnreadableRows(f"unreadable CSV export: {detail}; nothing was published",
                                 [], 0) from None
        if max_rows is not None and mapped.received > max_rows:
            raise TooManyRows(f"{mapped.received} rows; at most {max_rows} per request")
        return await self.commit(
            batches, source, kind=f"import:{export}", received=mapped.received,
            atomic=atomic, extra_errors=mapped.errors,
        )

    def prepare_export(self, export: str, text: str) -> tuple[MappedRows, list[NormalisedBatch]]:
        """Map and validate a CSV export (pure, no I/O)."""
        mapped = map_export(export, text)
        batches = [
            normalise_rows(kind, rows, self.salt, indexes=mapped.indexes[kind])
            for kind, rows in mapped.rows.items()
        ]
        return mapped, batches

    # -- publishing -----------------------------------------------------------------------

    async def ingest(
        self,
        kind: str,
        rows: Sequence[Any],
        source: str,
        atomic: bool = False,
        start_index: int = 0,
    ) -> IngestResult:
        """Validate ``rows`` of ``kind`` and publish the valid, new ones.

        Partial acceptance by default; with ``atomic`` nothing is published unless every
        row is valid. Raises :class:`BackpressureError` when the broker is too slow.
        """
        if kind not in KINDS:
            raise ValueError(f"unknown kind {kind!r}; expected one of {', '.join(KINDS)}")
        batch = await self.prepare_async(kind, rows, start_index)
        return await self.commit([batch], source, kind=kind, received=len(rows), atomic=atomic)

    async def prepare_async(
        self, kind: str, rows: Sequence[Any], start_index: int = 0
    ) -> NormalisedBatch:
        """:meth:`prepare` off the event loop for big batches (keeps /health responsive
        and lets other requests' publishes progress meanwhile)."""
        if len(rows) < OFFLOAD_ROWS:
            return self.prepare(kind, rows, start_index)
        return await asyncio.to_thread(self.prepare, kind, rows, start_index)

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
        """Publish already-validated batches (one per kind) as one unit of work."""
        errors = [*extra_errors, *(e for b in batches for e in b.errors)]
        errors.sort(key=lambda e: e.index)
        result = IngestResult(
            kind=kind,
            source=source,
            received=received,
            rejected=[e.as_dict() for e in errors],
            atomic=atomic,
            ignored_fields={name for b in batches for name in b.ignored},
        )
        if atomic and errors:
            for b in batches:
                metrics.ROWS_REJECTED.labels(b.kind, source).inc(len(b.events) + b.rejected_rows)
            log.info("ingest_atomic_rejected", kind=kind, source=source, errors=len(errors))
            return result
        to_publish: list[tuple[NormalisedBatch, list[Event]]] = []
        remember: dict[str, list[tuple[str, int]]] = {}
        total = 0
        if extra_errors:
            metrics.ROWS_REJECTED.labels(kind, source).inc(len({e.index for e in extra_errors}))
        for b in batches:
            fresh: list[Event] = []
            in_batch: set[tuple[str, int]] = set()
            for event in b.events:
                item = (str(getattr(event, "event_id", "")), fingerprint(event))
                if item in in_batch or self.window.seen(b.kind, *item):
                    result.duplicates += 1
                    metrics.ROWS_DUPLICATE.labels(b.kind, source).inc()
                    continue
                in_batch.add(item)
                fresh.append(event)
            to_publish.append((b, fresh))
            remember.setdefault(b.kind, []).extend(in_batch)
            total += len(fresh)
            metrics.ROWS_REJECTED.labels(b.kind, source).inc(b.rejected_rows)
        await self._publish_all(to_publish, total, kind)
        for kind_name, items in remember.items():
            self.window.add(kind_name, items)
        for b, fresh in to_publish:
            metrics.ROWS_ACCEPTED.labels(b.kind, source).inc(len(fresh))
            if fresh:
                result.by_kind[b.kind] = result.by_kind.get(b.kind, 0) + len(fresh)
        result.accepted = total
        log.info(
            "ingested",
            kind=kind,
            source=source,
            received=received,
            accepted=result.accepted,
            duplicates=result.duplicates,
            rejected_rows=result.rejected_rows,
        )
        return result

    async def _publish_all(
        self, batches: Sequence[tuple[NormalisedBatch, list[Event]]], total: int, kind: str
    ) -> None:
        if total == 0:
            return
        limit = self.settings.max_inflight_rows
        if self._inflight > 0 and self._inflight + total > limit:
            metrics.BACKPRESSURE.labels(kind, "inflight").inc()
            raise BackpressureError(
                f"{self._inflight} rows already being published (limit {limit})",
                self.settings.retry_after_s,
            )
        self._inflight += total
        metrics.INFLIGHT_ROWS.inc(total)
        try:
            for b, fresh in batches:
                if not fresh:
                    continue
                started = time.perf_counter()
                try:
                    await asyncio.wait_for(
                        self.bus.publish(topic_for(b.kind), fresh),
                        timeout=self.settings.publish_timeout_s,
                    )
                except TimeoutError:
                    metrics.BACKPRESSURE.labels(b.kind, "timeout").inc()
                    log.warning("publish_timeout", kind=b.kind, rows=len(fresh))
                    raise BackpressureError(
                        f"broker did not acknowledge within {self.settings.publish_timeout_s}s",
                        self.settings.retry_after_s,
                    ) from None
                except BackpressureError:
                    raise
                except Exception as exc:
                    metrics.BACKPRESSURE.labels(b.kind, "error").inc()
                    log.warning("publish_failed", kind=b.kind, rows=len(fresh), error=repr(exc))
                    raise BackpressureError(
                        f"broker unavailable: {exc!r}", self.settings.retry_after_s
                    ) from exc
                metrics.PUBLISH_SECONDS.labels(b.kind).observe(time.perf_counter() - started)
        finally:
            self._inflight -= total
            metrics.INFLIGHT_ROWS.dec(total)


ProgressCallback = Callable[[IngestResult], None]


async def ingest_file(
    service: IngestService,
    kind: str,
    path: Path | str,
    chunk_size: int = 5000,
    on_progress: ProgressCallback | None = None,
    source: str = "cli",
    atomic: bool = False,
) -> IngestResult:
    """Ingest a JSON / NDJSON / CSV file in chunks through :meth:`IngestService.ingest`.

    ``on_progress`` is called after each chunk with that chunk's result (advance a
    progress bar by ``result.received``; :func:`~pulse_ingest.files.count_rows`
    gives the total). With ``atomic`` the whole file is validated before anything is
    published. Row indexes in errors are 0-based positions in the file.
    """
    rows = read_rows(path, limits=service.file_limits)
    return await ingest_rows(service, kind, rows, chunk_size, on_progress, source, atomic)


async def ingest_rows(
    service: IngestService,
    kind: str,
    rows: Iterable[Any],
    chunk_size: int = 5000,
    on_progress: ProgressCallback | None = None,
    source: str = "cli",
    atomic: bool = False,
) -> IngestResult:
    """:func:`ingest_file` of rows read already (or read lazily by ``rows``)."""
    if chunk_size < 1:
        raise ValueError("chunk_size must be >= 1")
    total = IngestResult(kind=kind, source=source, atomic=atomic)
    if atomic:
        batches: list[NormalisedBatch] = []
        index = 0
        for chunk in _chunks(rows, chunk_size):
            batches.append(service.prepare(kind, chunk, index))
            index += len(chunk)
        if any(b.errors for b in batches):
            result = await service.commit(batches, source, kind=kind, received=index, atomic=True)
        else:
            result = IngestResult(kind=kind, source=source, atomic=True)
            for b in batches:
                result.merge(
                    await service.commit([b], source, kind=kind, received=len(b.events))
                )
        if on_progress:
            on_progress(result)
        return total.merge(result)
    # Pipelined: chunk k is published while chunk k+1 is read and normalised (in a
    # thread); commits stay strictly in file order.
    index = 0
    pending: asyncio.Task[IngestResult] | None = None
    try:
        for chunk in _chunks(rows, chunk_size):
            batch = await service.prepare_async(kind, chunk, index)
            index += len(chunk)
            if pending is not None:
                result = await pending
                total.merge(result)
                if on_progress:
                    on_progress(result)
            pending = asyncio.create_task(
                service.commit([batch], source, kind=kind, received=len(chunk))
            )
        if pending is not None:
            result = await pending
            pending = None
            total.merge(result)
            if on_progress:
                on_progress(result)
    finally:
        if pending is not None and not pending.done():
            pending.cancel()
    return total


def _chunks(rows: Iterable[Any], size: int) -> Iterable[list[Any]]:
    chunk: list[Any] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


async def import_file(
    service: IngestService,
    export: str,
    path: Path | str,
    source: str | None = None,
    atomic: bool = False,
) -> IngestResult:
    """Import a CSV export file (``google_ads``, ``hubspot_contacts`` …; see README).

    For a ``pulse ingest import SOURCE FILE`` command; ``source`` (the metrics label)
    defaults to the export name.
    """
    text = decode_text(await asyncio.to_thread(Path(path).read_bytes))
    return await service.import_export(export, text, source or export, atomic=atomic)
