"""``pulse``: the one command-line entry point to Pulse.

Service-specific commands live in each service package (``pulse_<svc>.cli``) and are
mounted here; cross-cutting ones (migrate, generate, ingest, demo) are defined below.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import SecretStr
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from pulse_alerts.cli import app as alerts_app
from pulse_attribution.cli import app as attribution_app
from pulse_cli.errors import PulseGroup, UserError, debug_state, env_debug
from pulse_ingest.domain.imports import IMPORTS
from pulse_kpi.cli import app as kpi_app
from pulse_reporting.cli import app as report_app
from pulse_shared.logging import configure_logging
from pulse_shared.schema.migrations import migrate as apply_migrations
from pulse_shared.settings import common_settings
from pulse_shared.store import open_store

app = typer.Typer(
    name="pulse",
    help="Pulse: marketing analytics on Kafka and ClickHouse.",
    no_args_is_help=True,
    cls=PulseGroup,  # one line per error, exit codes (pulse_cli.errors)
    pretty_exceptions_enable=False,
    pretty_exceptions_show_locals=False,
)
ingest_app = typer.Typer(help="Validate and publish events from a JSON/NDJSON/CSV file.")
app.add_typer(ingest_app, name="ingest")
app.add_typer(attribution_app, name="attribution", help="Attribution models and runs.")
app.add_typer(kpi_app, name="kpi", help="KPI catalog and values.")
app.add_typer(alerts_app, name="alerts", help="Alert rules, state and silences.")
app.add_typer(report_app, name="report", help="Weekly, monthly and quarterly reports.")

console = Console(stderr=True)
EVENT_KINDS = ("touchpoints", "spend", "subscriptions", "pipeline", "budgets")


@app.callback()
def _setup(
    debug: Annotated[bool, typer.Option(
        "--debug", help="Show the Python traceback of an error (also PULSE_DEBUG=1).")] = False,
) -> None:
    debug_state.enabled = debug or env_debug()
    settings = common_settings()
    # Errors reach the user as one line each (pulse_cli.errors); the services' warnings
    # (a retried batch …) only with --debug or an explicit PULSE_LOG_LEVEL.
    default = "INFO" if debug_state.enabled else "CRITICAL"
    level = settings.log_level if settings.log_level != "INFO" else default
    configure_logging(level, json=False)
    # Libraries set their own logger levels (clickhouse_connect puts urllib3 at WARNING
    # on import): filter at the handlers, which every record goes through.
    for handler in logging.getLogger().handlers:
        handler.setLevel(level.upper())


def progress_bar() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    )


@app.command()
def migrate() -> None:
    """Apply ClickHouse migrations (idempotent) to the configured store."""
    store = open_store()
    applied = apply_migrations(
        store, on_applied=lambda m: console.print(f"applied {m.number:04d}_{m.name}")
    )
    console.print(f"{len(applied)} migration(s) applied on the {store.backend} store")


@app.command()
def generate(
    out_dir: Annotated[Path, typer.Option("--out", help="Directory for the files.")] = Path(
        "generated"
    ),
    days: int = 180,
    accounts: int = 2000,
    seed: int = 7,
    end: Annotated[str | None, typer.Option(help="Last day (YYYY-MM-DD); default yesterday.")]
    = None,
) -> None:
    """Write a seeded synthetic B2B SaaS dataset (all event kinds) as NDJSON files."""
    from pulse_ingest.domain.generator import generate_dataset, write_files

    end_date = dt.date.fromisoformat(end) if end else _yesterday()
    with console.status("generating"):
        dataset = generate_dataset(seed=seed, days=days, accounts=accounts, end=end_date)
        paths = write_files(dataset, out_dir)
    for path in paths.values():
        console.print(f"wrote {path}")


def _yesterday() -> dt.date:
    return dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)


def _ingest_command(kind: str) -> None:
    def command(
        file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)],
        source: Annotated[str, typer.Option(help="Name of the sending tool.")] = "cli",
        atomic: Annotated[bool, typer.Option(help="Reject the whole file on any error.")]
        = False,
    ) -> None:
        from pulse_cli.ingesting import check_file, report

        rows = check_file(kind, file)
        result, unmatched = asyncio.run(_ingest_file(kind, file, rows, source, atomic))
        report(kind, file, result, unmatched)

    command.__doc__ = (
        f"Ingest {kind} from FILE (JSON array, NDJSON or CSV). Invalid rows are reported "
        "one line each (rows counted from 1) and the others are stored; exit 1 if any."
    )
    ingest_app.command(name=kind)(command)


for _kind in EVENT_KINDS:
    _ingest_command(_kind)


# The export names are static: a Choice, so an unknown one is a usage error (exit 2)
# listing the valid names.
ExportName = StrEnum("ExportName", {name: name for name in IMPORTS})  # type: ignore[misc]


@ingest_app.command(name="import")
def ingest_import(
    export: Annotated[ExportName, typer.Argument(
        metavar="EXPORT", help=f"The tool's export: {', '.join(IMPORTS)}.")],
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)],
    atomic: Annotated[bool, typer.Option(help="Reject the whole file on any error.")] = False,
) -> None:
    """Import a CSV export of a marketing, CRM or billing tool (mappings: ingest README)."""
    from pulse_cli.ingesting import report

    result, unmatched = asyncio.run(_import_file(str(export), file, atomic))
    report(str(export), file, result, unmatched)


def _cli_ingest_settings() -> Any:
    from pulse_ingest.settings import IngestSettings

    settings = common_settings()
    ingest_settings = IngestSettings()
    if settings.kafka_bootstrap:
        return ingest_settings
    from pulse_cli.demo import IN_PROCESS_PUBLISH_TIMEOUT_S

    update: dict[str, Any] = {"publish_timeout_s": IN_PROCESS_PUBLISH_TIMEOUT_S}
    if not ingest_settings.pii_salt.get_secret_value():
        # Embedded default: a random salt kept beside the local data, never a fixed one.
        update["pii_salt"] = SecretStr(local_salt(settings.data_dir))
    return ingest_settings.model_copy(update=update)


async def _ingest_file(
    kind: str, file: Path, rows: int, source: str, atomic: bool
) -> tuple[Any, list[Any]]:
    from pulse_cli.ingesting import CliIngestService
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
    from pulse_cli.runtime import open_pipeline
    from pulse_ingest.domain.imports import MappingError
    from pulse_ingest.domain.readers import BodyError
    from pulse_ingest.service import import_file

    async with open_pipeline() as pipeline:
        service = CliIngestService(pipeline, _cli_ingest_settings())
        with console.status(f"importing {export}"):
            try:
                result = await import_file(service, export, file, atomic=atomic)
            except (MappingError, BodyError) as exc:
                raise UserError(f"{file}: not a {export} export: {exc}") from exc
        return result, service.unmatched


def local_salt(data_dir: Path) -> str:
    """The embedded store's PII salt: random, created once, readable by the owner only."""
    import secrets

    path = data_dir / ".pii-salt"
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_hex(32))
        path.chmod(0o600)
    return path.read_text().strip()


@app.command(name="config-reference")
def config_reference(
    output: Annotated[Path | None, typer.Option(help="Write here instead of stdout.")] = None,
) -> None:
    """Print the configuration reference (every environment variable of every service)."""
    from pulse_cli.config_reference import render

    text = render()
    if output:
        output.write_text(text)
    else:
        typer.echo(text)


@app.command()
def replay(
    topic: Annotated[str, typer.Option(help="Topic to replay, e.g. marketing.touchpoints.v1.")],
    since: Annotated[
        dt.datetime, typer.Option("--from", help="Replay records from this time (UTC).")
    ],
) -> None:
    """Rebuild ClickHouse tables from a topic (idempotent: tables dedupe on event ids)."""
    settings = common_settings()
    if not settings.kafka_bootstrap:
        console.print("replay reads Kafka: set PULSE_KAFKA_BOOTSTRAP")
        raise typer.Exit(code=2)
    since_utc = since.replace(tzinfo=dt.UTC) if since.tzinfo is None else since
    count = asyncio.run(_replay(settings.kafka_bootstrap, topic, since_utc))
    console.print(f"replayed {count} record(s) of {topic}")


async def _replay(bootstrap: str, topic: str, since: dt.datetime) -> int:
    from pulse_cli.replay import batch_consumers, replay_topic
    from pulse_cli.runtime import build_components
    from pulse_shared.bus import make_broker

    store = open_store()
    broker = make_broker(bootstrap, client_id="pulse-replay")
    await broker.connect()
    try:
        consumers = batch_consumers(build_components(store, broker, in_memory=False), topic)
        with progress_bar() as progress:
            task = progress.add_task(f"replay {topic}", total=None)
            return await replay_topic(
                bootstrap, topic, since, consumers,
                on_batch=lambda n: progress.advance(task, n),
            )
    finally:
        await broker.stop()


class ForecastGrain(StrEnum):
    DAY = "day"
    WEEK = "week"


class ForecastFormat(StrEnum):
    TABLE = "table"
    CSV = "csv"
    JSON = "json"


@app.command()
def forecast(
    kpi: Annotated[str, typer.Argument(help="KPI name from `pulse kpi list`.")],
    grain: Annotated[ForecastGrain, typer.Option(help="day or week")] = ForecastGrain.DAY,
    horizon: Annotated[int, typer.Option(min=7, max=30, help="Periods ahead (7..30).")] = 14,
    dimension: Annotated[
        str | None, typer.Option(help="channel=VALUE or campaign=VALUE (default: total).")
    ] = None,
    level: Annotated[int, typer.Option(min=50, max=99, help="Interval level, %.")] = 80,
    fmt: Annotated[ForecastFormat, typer.Option("--format")] = ForecastFormat.TABLE,
    output: Annotated[Path | None, typer.Option(help="Write to this file.")] = None,
    backtest: Annotated[bool, typer.Option(
        "--backtest", help="Rolling-origin coverage and MAPE vs seasonal naive instead.")] = False,
) -> None:
    """Forecast a KPI (AutoETS or seasonal naive, weekly season) with intervals."""
    from pulse_cli.forecast import parse_dimension, run_forecast
    from pulse_kpi.cli import _store, kpi_choices
    from pulse_shared.kpi_catalog import BY_NAME

    if kpi not in BY_NAME:
        raise typer.BadParameter(
            f"unknown KPI {kpi!r}; valid: {', '.join(kpi_choices())}", param_hint="KPI"
        )
    dim, member = parse_dimension(dimension)
    with _store() as store:
        text = run_forecast(
            store, kpi, grain.value, horizon, dim, member, level, fmt.value, backtest
        )
    if output is not None:
        output.write_text(text)
    else:
        typer.echo(text, nl=False)


@app.command()
def demo(
    days: int = 120,
    accounts: int = 400,
    seed: int = 7,
    reports_dir: Annotated[Path, typer.Option("--reports")] = Path("reports"),
) -> None:
    """Generate data and run the whole pipeline in this process on embedded chDB."""
    from pulse_cli.demo import run_demo

    settings = common_settings()
    if settings.kafka_bootstrap or settings.clickhouse_url:
        console.print("demo runs on the embedded default: unset PULSE_KAFKA_BOOTSTRAP and "
                      "PULSE_CLICKHOUSE_URL")
        raise typer.Exit(code=2)
    asyncio.run(
        run_demo(days=days, accounts=accounts, seed=seed, reports_dir=reports_dir,
                 console=console, progress=progress_bar())
    )


def run() -> None:
    """Console entry point: the Typer app, then a clean exit.

    chDB's native static destructors can crash at interpreter exit; once the command is
    done the embedded store is closed and the process leaves with the command's status.
    """
    import os
    import sys

    try:
        app()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    if "chdb" in sys.modules:
        from pulse_shared.store.embedded import close_all_embedded

        close_all_embedded()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


if __name__ == "__main__":
    run()
