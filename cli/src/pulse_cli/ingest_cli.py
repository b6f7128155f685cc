"""``pulse ingest …``: ingest event files and tool exports through the pipeline, plus the
ingest service's own utilities (``pulse_ingest.cli``: sources, hash-key, serve).

Imported when ``pulse ingest`` runs; the service code is imported inside the commands.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated, Any

import typer

from pulse_cli.errors import UserError
from pulse_ingest.cli import app as ingest_service_app
from pulse_shared.cli_output import FORMAT_HELP, OutputFormat

EVENT_KINDS = ("touchpoints", "spend", "subscriptions", "pipeline", "budgets", "martech", "deliverability",
               "usage", "accounts", "feedback", "tickets")

app = typer.Typer(help="Validate and publish events from a JSON/NDJSON/CSV file.",
                  no_args_is_help=True, rich_markup_mode=None, pretty_exceptions_enable=False)

FormatOption = Annotated[OutputFormat, typer.Option(
    "--format", help="How to print the outcome: " + FORMAT_HELP)]


def _ingest_command(kind: str) -> None:
    def command(
        file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)],
        source: Annotated[str, typer.Option(help="Name of the sending tool.")] = "cli",
        atomic: Annotated[bool, typer.Option(help="Reject the whole file on any error.")]
        = False,
        fmt: FormatOption = OutputFormat.TABLE,
    ) -> None:
        from pulse_cli.ingesting import check_file, report

        rows = check_file(kind, file)
        result, unmatched = asyncio.run(_ingest_file(kind, file, rows, source, atomic))
        report(kind, file, result, unmatched, fmt.value)

    command.__doc__ = (
        f"Ingest {kind} from FILE (JSON array, NDJSON or CSV). Invalid rows are reported "
        "one line each (rows counted from 1) and the others are stored; exit 1 if any."
    )
    app.command(name=kind)(command)


for _kind in EVENT_KINDS:
    _ingest_command(_kind)


@app.command(name="import")
def ingest_import(
    export: Annotated[str, typer.Argument(
        metavar="EXPORT", help="The tool's export (list: pulse ingest sources).")],
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)],
    atomic: Annotated[bool, typer.Option(help="Reject the whole file on any error.")] = False,
    fmt: FormatOption = OutputFormat.TABLE,
) -> None:
    """Import a CSV export of a marketing, CRM or billing tool (mappings: ingest README)."""
    from pulse_cli.ingesting import report
    from pulse_ingest.domain.imports import IMPORTS

    if export not in IMPORTS:
        # A usage error (exit 2) listing the valid names, as a Choice would.
        raise typer.BadParameter(
            f"{export!r} is not one of {', '.join(IMPORTS)}", param_hint="EXPORT")
    result, unmatched = asyncio.run(_import_file(export, file, atomic))
    report(export, file, result, unmatched, fmt.value)


# The ingest service's utilities (`pulse ingest sources`, `hash-key`, `serve`).
app.registered_commands.extend(ingest_service_app.registered_commands)


def _cli_ingest_settings() -> Any:
    from pydantic import SecretStr

    from pulse_cli.demo import IN_PROCESS_PUBLISH_TIMEOUT_S
    from pulse_ingest.settings import IngestSettings
    from pulse_shared.settings import common_settings

    settings = common_settings()
    ingest_settings = IngestSettings()
    if settings.kafka_bootstrap:
        return ingest_settings
    update: dict[str, Any] = {"publish_timeout_s": IN_PROCESS_PUBLISH_TIMEOUT_S}
    if not ingest_settings.pii_salt.get_secret_value():
        # Embedded default: a random salt kept beside the local data, never a fixed one.
        update["pii_salt"] = SecretStr(local_salt(settings.data_dir))
    return ingest_settings.model_copy(update=update)


def local_salt(data_dir: Path) -> str:
    """The embedded store's PII salt: random, created once, readable by the owner only."""
    import secrets

    path = data_dir / ".pii-salt"
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_hex(32))
        path.chmod(0o600)
    return path.read_text().strip()


async def _ingest_file(
    kind: str, file: Path, rows: int, source: str, atomic: bool
) -> tuple[Any, list[Any]]:
    from pulse_cli.ingesting import CliIngestService
    from pulse_cli.main import progress_bar
    from pulse_cli.runtime import open_pipeline
    from pulse_ingest.service import ingest_file

    async with open_pipeline() as pipeline:
        service = CliIngestService(pipeline, _cli_ingest_settings())
        with progress_bar() as progress:
            task = progress.add_task(f"ingest {kind}", total=rows)
            result = await ingest_file(
                service, kind, file, source=source, atomic=atomic,
                on_progress=lambda chunk: progress.advance(task, chunk.received),
            )
        return result, service.unmatched


async def _import_file(export: str, file: Path, atomic: bool) -> tuple[Any, list[Any]]:
    from pulse_cli.ingesting import CliIngestService
    from pulse_cli.main import console
    from pulse_cli.runtime import open_pipeline
    from pulse_ingest.domain.imports import MappingError
    from pulse_ingest.domain.readers import BodyError
    from pulse_ingest.service import import_file

    async with open_pipeline() as pipeline:
        service = CliIngestService(pipeline, _cli_ingest_settings())
        with console().status(f"importing {export}"):
            try:
                result = await import_file(service, export, file, atomic=atomic)
            except (MappingError, BodyError) as exc:
                raise UserError(f"{file}: not a {export} export: {exc}") from exc
        return result, service.unmatched
