"""``pulse``: the one command-line entry point to Pulse.

Service-specific commands live in each service package (``pulse_<svc>.cli``) and are
mounted here as groups imported on first use (:mod:`pulse_cli.group`); cross-cutting ones
(migrate, generate, forecast, replay, demo, config-reference) are defined below. Nothing
heavy is imported at module level: ``pulse --help`` must start about as fast as typer
itself (``bench/cli/bench_cli_startup.py``).
"""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from pulse_cli.errors import debug_state, env_debug
from pulse_cli.group import LazyGroup, LazySubgroup
from pulse_shared.cli_output import FORMAT_FILE_HELP, OutputFormat, resolve
from pulse_shared.safe_text import rich_literal

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress


class PulseRoot(LazyGroup):
    lazy_subgroups = {
        "ingest": LazySubgroup(
            "pulse_cli.ingest_cli:app", "Validate and publish events from a JSON/NDJSON/CSV file."),
        "attribution": LazySubgroup("pulse_attribution.cli:app", "Attribution models and runs."),
        "kpi": LazySubgroup("pulse_kpi.cli:app", "KPI catalog and values."),
        "alerts": LazySubgroup("pulse_alerts.cli:app", "Alert rules, state and silences."),
        "report": LazySubgroup("pulse_reporting.cli:app", "Reports (daily briefing, weekly, monthly, quarterly, annual) and their delivery."),
        "mmm": LazySubgroup(
            "pulse_mmm.cli:app", "Marketing mix model: fit, incremental ROI, budget optimiser."),
        "privacy": LazySubgroup(
            "pulse_cli.privacy:app",
            "Erase a subject's data; the erasure audit log; scan stored text for raw PII."),
        "users": LazySubgroup(
            "pulse_cli.users:app", "Dashboard and API users: add (issues a token), list, revoke."),
    }


app = typer.Typer(
    name="pulse",
    help="Pulse: marketing analytics on Kafka and ClickHouse.",
    no_args_is_help=True,
    cls=PulseRoot,  # lazy groups; one line per error, exit codes (pulse_cli.errors)
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
    pretty_exceptions_show_locals=False,
)

_console: list[Console] = []


def console() -> Console:
    """The CLI's stderr console (created on first use: Rich's progress is not free)."""
    if not _console:
        from rich.console import Console

        _console.append(Console(stderr=True))
    return _console[0]


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        typer.echo(f"pulse {version('pulse-cli')}")
        raise typer.Exit()


# File-in, file-out commands that touch no service, store or bus and never log: they skip
# the settings and logging set-up (pydantic-settings and structlog with Rich cost ~0.4 s
# of start-up, as much as the work itself). `pulse attribution paths` is benchmarked end
# to end against ChannelAttribution (bench/attribution).
OFFLINE_COMMANDS = frozenset({("attribution", "paths")})


def _offline_command() -> bool:
    argv = debug_state.argv
    words = [w for w in (argv[: argv.index("--")] if "--" in argv else argv)
             if not w.startswith("-")]
    return tuple(words[:2]) in OFFLINE_COMMANDS


def _help_requested() -> bool:
    """Whether this run only prints a help text (then logging set-up is skipped)."""
    argv = debug_state.argv
    words = argv[: argv.index("--")] if "--" in argv else argv
    return "--help" in words


@app.callback()
def _setup(
    debug: Annotated[bool, typer.Option(
        "--debug", help="Show the Python traceback of an error (also PULSE_DEBUG=1).")] = False,
    version: Annotated[bool, typer.Option(
        "--version", callback=_version, is_eager=True, help="Print the version and exit.")]
    = False,
) -> None:
    debug_state.enabled = debug or env_debug()
    if _help_requested() or _offline_command():
        return
    import logging

    from pulse_shared.logging import configure_logging
    from pulse_shared.settings import common_settings

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
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console(),
    )


Output = Annotated[Path | None, typer.Option(
    "--output", "-o", help="Write to this file instead of stdout.")]


@app.command()
def migrate() -> None:
    """Apply ClickHouse migrations (idempotent) to the configured store."""
    from pulse_shared.schema.migrations import migrate as apply_migrations
    from pulse_shared.store import open_store

    store = open_store()
    applied = apply_migrations(
        store, on_applied=lambda m: console().print(f"applied {m.number:04d}_{m.name}")
    )
    console().print(f"{len(applied)} migration(s) applied on the {store.backend} store")


@app.command()
def generate(
    output: Annotated[Path, typer.Option(
        "--output", "-o", help="Directory for the files.")] = Path("generated"),
    legacy_output: Annotated[Path | None, typer.Option("--out", hidden=True)] = None,
    days: Annotated[int, typer.Option(help="Days of data.")] = 180,
    accounts: Annotated[int, typer.Option(help="Number of accounts.")] = 2000,
    seed: Annotated[int, typer.Option(help="Random seed (same seed, same data).")] = 7,
    end: Annotated[str | None, typer.Option(help="Last day (YYYY-MM-DD); default yesterday.")]
    = None,
) -> None:
    """Write a seeded synthetic B2B SaaS dataset (all event kinds) as NDJSON files."""
    from pulse_ingest.domain.generator import generate_dataset
    from pulse_ingest.files import write_files

    end_date = dt.date.fromisoformat(end) if end else _yesterday()
    with console().status("generating"):
        dataset = generate_dataset(seed=seed, days=days, accounts=accounts, end=end_date)
        paths = write_files(dataset, legacy_output or output)
    for path in paths.values():
        console().print(f"wrote {rich_literal(str(path))}")


def _yesterday() -> dt.date:
    return dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)


@app.command(name="config-reference")
def config_reference(output: Output = None) -> None:
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
        dt.datetime, typer.Option("--from", metavar="TIME",
                                  help="Replay records from this time (UTC).")
    ],
) -> None:
    """Rebuild ClickHouse tables from a topic (idempotent: tables dedupe on event ids)."""
    import asyncio

    from pulse_shared.settings import common_settings

    settings = common_settings()
    if not settings.kafka_bootstrap:
        console().print("replay reads Kafka: set PULSE_KAFKA_BOOTSTRAP")
        raise typer.Exit(code=2)
    since_utc = since.replace(tzinfo=dt.UTC) if since.tzinfo is None else since
    count = asyncio.run(_replay(settings.kafka_bootstrap, topic, since_utc))
    console().print(f"replayed {count} record(s) of {rich_literal(topic)}")


async def _replay(bootstrap: str, topic: str, since: dt.datetime) -> int:
    from pulse_cli.replay import batch_consumers, replay_topic
    from pulse_cli.runtime import build_components
    from pulse_shared.bus import make_broker
    from pulse_shared.store import open_store

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


@app.command()
def forecast(
    kpi: Annotated[str, typer.Argument(help="KPI name from pulse kpi list.")],
    grain: Annotated[ForecastGrain, typer.Option(help="day or week")] = ForecastGrain.DAY,
    horizon: Annotated[int, typer.Option(min=7, max=30, help="Periods ahead (7..30).")] = 14,
    dimension: Annotated[
        str | None, typer.Option(help="channel=VALUE, campaign=VALUE or segment=VALUE "
                                 "(also plan, region, industry, employee_band; default: "
                                 "total).")
    ] = None,
    level: Annotated[int, typer.Option(min=50, max=99, help="Interval level, %.")] = 80,
    fmt: Annotated[OutputFormat | None, typer.Option("--format", help=FORMAT_FILE_HELP)]
    = None,
    output: Output = None,
    backtest: Annotated[bool, typer.Option(
        "--backtest", help="Rolling-origin coverage and MAPE vs seasonal naive instead.")] = False,
) -> None:
    """Forecast a KPI (AutoETS or seasonal naive, weekly season) with intervals."""
    from pulse_cli.forecast import parse_dimension, run_forecast
    from pulse_kpi.cli import kpi_choices
    from pulse_kpi.cli_support import open_store as _store
    from pulse_shared.kpi_catalog import BY_NAME

    if kpi not in BY_NAME:
        raise typer.BadParameter(
            f"unknown KPI {kpi!r}; valid: {', '.join(kpi_choices())}", param_hint="KPI"
        )
    dim, member = parse_dimension(dimension)
    with _store() as store:
        text = run_forecast(
            store, kpi, grain.value, horizon, dim, member, level, resolve(fmt, output), backtest
        )
    if output is not None:
        output.write_text(text)
    else:
        typer.echo(text, nl=False)


@app.command()
def demo(
    days: Annotated[int, typer.Option(help="Days of synthetic data.")] = 120,
    accounts: Annotated[int, typer.Option(help="Number of accounts.")] = 400,
    seed: Annotated[int, typer.Option(help="Random seed (same seed, same data).")] = 7,
    output: Annotated[Path, typer.Option(
        "--output", "-o", help="Directory for the reports.")] = Path("reports"),
    legacy_output: Annotated[Path | None, typer.Option("--reports", hidden=True)] = None,
    timings: Annotated[Path | None, typer.Option(
        help="Write each step's wall and CPU seconds to this JSON file.")] = None,
) -> None:
    """Generate data and run the whole pipeline in this process on embedded chDB."""
    import asyncio

    from pulse_cli.demo import run_demo
    from pulse_shared.settings import common_settings

    settings = common_settings()
    if settings.kafka_bootstrap or settings.clickhouse_url:
        console().print("demo runs on the embedded default: unset PULSE_KAFKA_BOOTSTRAP and "
                        "PULSE_CLICKHOUSE_URL")
        raise typer.Exit(code=2)
    asyncio.run(
        run_demo(days=days, accounts=accounts, seed=seed, reports_dir=legacy_output or output,
                 console=console(), progress=progress_bar(), timings=timings)
    )


@app.command()
def dashboard(
    port: Annotated[int | None, typer.Option(
        help="Port to listen on (default PULSE_REPORTING_PORT, 8004).")] = None,
    host: Annotated[str, typer.Option(
        help="Address to listen on; 127.0.0.1 keeps it on this machine.")] = "127.0.0.1",
) -> None:
    """Serve the dashboard on the configured store (no Kafka needed); sign in with a token
    from `pulse users add`."""
    from pulse_cli.dashboard import serve

    serve(host, port)


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
