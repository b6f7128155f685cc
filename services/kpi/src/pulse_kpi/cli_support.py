"""What every ``pulse kpi …`` command module shares: the clock, the store, option parsing
and number formatting. Its own module so the command modules (cli.py and the
usage/experience/accounts commands it registers) import it without importing each other.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from pulse_shared.cli_output import FORMAT_FILE_HELP, OutputFormat
from pulse_shared.events import Grain

if TYPE_CHECKING:
    from pulse_shared.periods import Period
    from pulse_shared.store import Store


#: ``--format`` of a command that can also write a file (the format follows the file's
#: extension when not given) and its ``--output``.
FormatOption = Annotated[OutputFormat | None, typer.Option("--format", help=FORMAT_FILE_HELP)]
OutputOption = Annotated[Path | None, typer.Option(
    "--output", "-o", metavar="FILE", help="Write to FILE instead of printing.")]


def clock() -> dt.datetime:
    """The commands' clock (UTC); tests replace it to pin "today"."""
    return dt.datetime.now(dt.UTC)


@contextmanager
def open_store() -> Iterator[Store]:
    """The store of the common settings (``PULSE_CLICKHOUSE_URL``, else embedded chDB),
    migrated: the commands work on a fresh data directory."""
    from pulse_shared.schema.migrations import migrate
    from pulse_shared.settings import common_settings
    from pulse_shared.store import open_store as open_configured_store

    store = open_configured_store(common_settings())
    try:
        migrate(store)  # idempotent
        yield store
    finally:
        store.close()


def parse_period_option(text: str, option: str, grain: Grain | None = None) -> Period:
    """A --from/--to period; a bad value is a usage error (exit 2) naming the option."""
    from pulse_shared.periods import parse_period

    try:
        return parse_period(text, grain)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint=option) from exc


def periods_option(
    start: str, end: str, grain: Grain, span: tuple[dt.date, dt.date] | None,
) -> list[Period]:
    """The ``grain`` periods of --from/--to, each side defaulting to ``span`` (the data's
    first and last days; None without data: no periods). --to before --from is a usage
    error naming --to."""
    from pulse_shared.periods import periods_between

    first = parse_period_option(start, "--from", grain).start if start else (
        span[0] if span else None)
    last = parse_period_option(end, "--to", grain).start if end else (span[1] if span else None)
    if first is None or last is None:
        return []
    if last < first:
        raise typer.BadParameter(f"{end or last} is before --from {start or first}",
                                 param_hint="--to")
    return periods_between(first, last, grain)


def parse_day_option(text: str, option: str = "--as-of") -> dt.date:
    """A YYYY-MM-DD day option; empty: today on :func:`clock`."""
    if not text:
        return clock().astimezone(dt.UTC).date()
    try:
        return dt.date.fromisoformat(text)
    except ValueError as exc:
        raise typer.BadParameter(f"{text!r} is not a YYYY-MM-DD day", param_hint=option) from exc


def fixed(value: Any, fmt: OutputFormat, places: int) -> Any:
    """A number rounded half up to ``places``: Decimal in JSON, text with fixed decimals in
    CSV and tables; None is n/a in a table (empty in CSV, null in JSON). Floats round as
    written (``2.675`` → ``2.68``), not as their binary value."""
    if value is None:
        return "n/a" if fmt is OutputFormat.TABLE else None
    exact = value if isinstance(value, Decimal | int) else Decimal(str(value))
    rounded = Decimal(exact).quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)
    return rounded if fmt is OutputFormat.JSON else format(rounded, "f")
