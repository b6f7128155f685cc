"""Ingest service utilities, mounted as ``pulse ingest sources | hash-key | serve``.

``pulse ingest KIND FILE`` and ``pulse ingest import`` live in ``pulse_cli`` (they need
its pipeline runtime); they call :func:`pulse_ingest.service.ingest_file` and
:func:`pulse_ingest.service.import_file`. Service code is imported inside the commands
so that mounting this app costs nothing at start-up.
"""

from __future__ import annotations

from typing import Annotated

import typer

from pulse_shared.cli_output import FORMAT_HELP, OutputFormat

app = typer.Typer(help="Ingest service utilities.", no_args_is_help=True,
                  rich_markup_mode=None, pretty_exceptions_enable=False)

SOURCE_COLUMNS = ("name", "title", "kinds")


@app.command("hash-key")
def hash_key(key: Annotated[str, typer.Argument(help="The API key to hash.")]) -> None:
    """Print the salted scrypt hash to put in PULSE_INGEST_API_KEYS as "key_hash" (the key
    itself is never stored); keys shorter than 32 characters or placeholders are refused."""
    from pulse_ingest.settings import hash_api_key

    typer.echo(hash_api_key(key))


@app.command("sources")
def sources(
    fmt: Annotated[OutputFormat, typer.Option("--format", help=FORMAT_HELP)]
    = OutputFormat.TABLE,
) -> None:
    """List the tool exports that POST /v1/import/{source} and pulse ingest import read."""
    from pulse_ingest.domain.imports import IMPORTS
    from pulse_shared.cli_output import emit

    rows = [{"name": name, "title": csv_import.title, "kinds": list(csv_import.kinds)}
            for name, csv_import in IMPORTS.items()]
    emit(rows, SOURCE_COLUMNS, fmt, "Import formats")


@app.command("serve")
def serve() -> None:
    """Run the HTTP API (same as the pulse-ingest console script)."""
    from pulse_ingest.main import run

    run()
