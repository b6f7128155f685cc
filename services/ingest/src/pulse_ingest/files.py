"""Files in and out of ingest: the file I/O kept out of :mod:`pulse_ingest.domain`.

Reading parses with :func:`pulse_ingest.domain.readers.iter_stream` and writing renders
with :func:`pulse_ingest.domain.generator.format_events`; this module only opens files.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pulse_ingest.domain.generator import FileFormat, SyntheticDataset, format_events
from pulse_ingest.domain.readers import (
    FILE_LIMITS,
    BodyError,
    Format,
    ReadLimits,
    format_of_path,
    iter_stream,
)


def read_rows(
    path: Path | str, fmt: Format | None = None, limits: ReadLimits = FILE_LIMITS
) -> Iterator[Any]:
    """Stream the rows of a JSON array, NDJSON or CSV file (format from the extension)."""
    fmt = fmt or format_of_path(path)
    with Path(path).open("r", encoding="utf-8-sig", newline="") as fh:
        try:
            yield from iter_stream(fh, fmt, limits)
        except BodyError as exc:
            if fmt == "json" and type(exc) is BodyError:  # name the file of a bad document
                raise BodyError(f"{path}: {exc}") from None
            raise


def count_rows(path: Path | str, fmt: Format | None = None) -> int:
    """Number of rows :func:`read_rows` will yield (for progress bars)."""
    return sum(1 for _ in read_rows(path, fmt))


def write_files(
    dataset: SyntheticDataset, directory: Path | str, fmt: FileFormat = "ndjson"
) -> dict[str, Path]:
    """Write one file per kind (``touchpoints.ndjson`` …); returns kind → path."""
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    for kind, events in dataset.by_kind().items():
        path = folder / f"{kind}.{fmt}"
        with path.open("w", encoding="utf-8", newline="") as fh:
            fh.writelines(format_events(events, fmt))
        paths[kind] = path
    return paths
