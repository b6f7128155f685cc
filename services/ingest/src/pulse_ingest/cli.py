"""Ingest service subcommands (mounted by ``pulse_cli`` if it wants them).

``pulse ingest KIND FILE`` and ``pulse generate`` live in ``pulse_cli`` (they need its
pipeline runtime); they call :func:`pulse_ingest.service.ingest_file`,
:func:`pulse_ingest.service.import_file` and
:func:`pulse_ingest.domain.generator.generate_dataset` / ``write_files``.
"""

from __future__ import annotations

from typing import Annotated

import typer

from pulse_ingest.domain.imports import IMPORTS
from pulse_ingest.settings import hash_api_key

app = typer.Typer(help="Ingest service utilities.", no_args_is_help=True,
                  pretty_exceptions_enable=False)


@app.command("hash-key")
def hash_key(key: Annotated[str, typer.Argument(help="The API key to hash.")]) -> None:
    """Print the SHA-256 to put in PULSE_INGEST_API_KEYS (the key itself is never stored)."""
    typer.echo(hash_api_key(key))


@app.command("sources")
def sources() -> None:
    """List the CSV exports POST /v1/import/{source} understands."""
    for name, csv_import in IMPORTS.items():
        typer.echo(f"{name:<22} {csv_import.title} → {', '.join(csv_import.kinds)}")


@app.command("serve")
def serve() -> None:
    """Run the HTTP API (same as the pulse-ingest console script)."""
    from pulse_ingest.main import run

    run()
