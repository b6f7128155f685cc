"""``pulse report {weekly,monthly,quarterly}``: produce a report on demand.

Service code is imported inside the commands (start-up time).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from pulse_reporting.domain.periods import ReportKind

if TYPE_CHECKING:
    from pulse_reporting.generate import ReportResult

app = typer.Typer(help="Produce weekly, monthly and quarterly marketing reports.",
                  no_args_is_help=True, rich_markup_mode=None, pretty_exceptions_enable=False)

DEFAULT_FORMATS = "md"


def _err() -> Any:
    from rich.console import Console

    return Console(stderr=True)


async def _produce(
    kind: ReportKind, period: str | None, formats: list[str], model: str | None,
    out_dir: Path | None, quiet: bool,
) -> ReportResult:
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from pulse_reporting.domain.periods import last_complete, parse_period
    from pulse_reporting.generate import generate_report
    from pulse_reporting.main import open_stores
    from pulse_reporting.settings import ReportingSettings
    from pulse_shared.bus import Bus, make_broker
    from pulse_shared.schema.migrations import migrate
    from pulse_shared.settings import common_settings

    settings = ReportingSettings()
    common = common_settings()
    if period is None:
        today = dt.datetime.now(settings.zone).date()
        the_period = last_complete(kind, today)
    else:
        the_period = parse_period(kind, period)
    reader, writer = open_stores(settings, common)
    if common.embedded:
        migrate(writer)  # idempotent; a fresh local data dir needs the reports table
    broker = None
    bus = None
    if common.kafka_bootstrap:
        broker = make_broker(common.kafka_bootstrap, client_id="pulse-report-cli")
        await broker.connect()
        bus = Bus(broker, "reporting")
    try:
        with Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), TimeElapsedColumn(),
            console=_err(), disable=quiet, transient=True,
        ) as bar:
            task = bar.add_task(f"{kind.value} {the_period.label}", total=1)

            def progress(step: str, done: int, total: int) -> None:
                bar.update(task, description=step, completed=done, total=total)

            return await generate_report(
                reader, kind, the_period, formats=formats,
                out_dir=out_dir or settings.output_dir,
                model=model or settings.model, bus=bus, writer=writer, progress=progress,
                path_model=settings.path_model, path_milestone=settings.path_milestone,
                base_url=settings.base_url,
            )
    finally:
        if broker is not None:
            await broker.stop()
        reader.close()
        writer.close()


def _command(
    kind: ReportKind, period: str | None, formats: list[str], model: str | None,
    out_dir: Path | None, quiet: bool,
) -> None:
    import asyncio

    from pulse_reporting.domain.periods import PeriodError
    from pulse_reporting.generate import ReportError

    try:
        result = asyncio.run(_produce(kind, period, formats, model, out_dir, quiet))
    except (PeriodError, ReportError) as exc:
        _err().print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc
    for fmt, path in result.paths.items():
        typer.echo(f"{fmt}\t{path}")
    if not quiet:
        _err().print(
            f"{result.report.meta.title} ({result.report.meta.model}) in "
            f"{result.seconds:.2f}s · id {result.report_id}"
        )
    for note in result.report.notes:
        _err().print(f"[yellow]note:[/yellow] {note}")


_FORMAT_HELP = "Formats: md, html, pdf, json, csv or all (repeat or comma-separate)."
Formats = Annotated[list[str], typer.Option("--format", "-f", metavar="FORMATS", help=_FORMAT_HELP)]
Model = Annotated[str | None, typer.Option("--model", "-m", metavar="NAME", help="Attribution model.")]
OutDir = Annotated[Path | None, typer.Option(
    "--output", "-o", help="Directory for the report files (default: configured).")]
LegacyOutDir = Annotated[Path | None, typer.Option("--out-dir", hidden=True)]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress output.")]


@app.command()
def weekly(
    period: Annotated[str | None, typer.Option(
        "--period", "--week", "-p", help="ISO week, e.g. 2026-W45 (default: last week).")
    ] = None,
    formats: Formats = [DEFAULT_FORMATS],  # noqa: B006 - typer reads, never mutates
    model: Model = None,
    output: OutDir = None,
    legacy_output: LegacyOutDir = None,
    quiet: Quiet = False,
) -> None:
    """Weekly report (ISO week)."""
    _command(ReportKind.WEEKLY, period, formats, model, legacy_output or output, quiet)


@app.command()
def monthly(
    period: Annotated[str | None, typer.Option(
        "--period", "--month", "-p", help="Month, e.g. 2026-10 (default: last month).")
    ] = None,
    formats: Formats = [DEFAULT_FORMATS],  # noqa: B006
    model: Model = None,
    output: OutDir = None,
    legacy_output: LegacyOutDir = None,
    quiet: Quiet = False,
) -> None:
    """Monthly strategic report."""
    _command(ReportKind.MONTHLY, period, formats, model, legacy_output or output, quiet)


@app.command()
def quarterly(
    period: Annotated[str | None, typer.Option(
        "--period", "--quarter", "-p", help="Quarter, e.g. 2026-Q3 (default: last one).")
    ] = None,
    formats: Formats = [DEFAULT_FORMATS],  # noqa: B006
    model: Model = None,
    output: OutDir = None,
    legacy_output: LegacyOutDir = None,
    quiet: Quiet = False,
) -> None:
    """Quarterly business review."""
    _command(ReportKind.QUARTERLY, period, formats, model, legacy_output or output, quiet)
