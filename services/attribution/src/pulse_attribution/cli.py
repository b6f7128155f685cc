"""``pulse attribution …`` subcommands (mounted by ``pulse_cli``).

Read commands print rows through :mod:`pulse_shared.cli_output` (``--format
table|csv|json``). Service code is imported inside the commands (start-up time).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from pulse_shared.attribution_models import DATA_DRIVEN_MODELS
from pulse_shared.cli_output import (
    FORMAT_FILE_HELP,
    FORMAT_HELP,
    OutputFormat,
    emit,
    resolve,
)

if TYPE_CHECKING:
    from pulse_attribution.domain.datadriven import ModelRun
    from pulse_attribution.domain.model import Milestone

app = typer.Typer(help="Multi-touch attribution: credits, data-driven runs, path files.",
                  no_args_is_help=True, rich_markup_mode=None, pretty_exceptions_enable=False)

# The table shows these; csv and json every column of attribution_credits_latest.
CREDIT_TABLE_COLUMNS = (
    "conversion_id", "milestone", "model", "channel", "campaign_id", "touched_at", "credit",
    "credited_revenue",
)


@app.command("credits")
def credits_command(
    conversion_id: Annotated[str | None, typer.Option(metavar="ID", help="One conversion.")] = None,
    account_id: Annotated[str | None, typer.Option(metavar="ID", help="All conversions of an account.")] = None,
    fmt: Annotated[OutputFormat, typer.Option("--format", help=FORMAT_HELP)]
    = OutputFormat.TABLE,
) -> None:
    """Print the latest-version credits of a conversion or an account."""
    from pulse_attribution.storage import AttributionStorage
    from pulse_shared.schema.migrations import migrate
    from pulse_shared.store import open_store

    if not conversion_id and not account_id:
        raise typer.BadParameter("give --conversion-id or --account-id")
    with open_store() as store:
        if store.backend == "embedded":
            migrate(store)  # idempotent; lets the command run on a fresh data dir
        rows = AttributionStorage(store).credits_latest(
            conversion_id=conversion_id, account_id=account_id
        )
    if not rows:
        # No credits is a valid answer (nothing converted yet): say so, exit 0.
        what = f"conversion {conversion_id}" if conversion_id else f"account {account_id}"
        typer.echo(f"no credits for {what}", err=True)
    columns = list(rows[0]) if rows else list(CREDIT_TABLE_COLUMNS)
    if fmt == OutputFormat.TABLE:
        if not rows:
            return
        columns = [c for c in CREDIT_TABLE_COLUMNS if c in rows[0]]
    emit(rows, columns, fmt, "Attribution credits (latest version)")


@app.command("paths")
def paths_command(
    input_file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, metavar="INPUT")],
    model: Annotated[
        str, typer.Option(help="first, last, linear, last_non_direct, position_based, "
                               "markov or shapley.")
    ] = "markov",
    order: Annotated[int, typer.Option(min=1, max=6, help="Markov order k.")] = 1,
    sep: Annotated[str, typer.Option(help="Channel separator inside a path.")] = ">",
    fmt: Annotated[OutputFormat | None, typer.Option("--format", help=FORMAT_FILE_HELP)]
    = None,
    output: Annotated[Path | None, typer.Option(
        "--output", "-o", help="Write to this file instead of stdout.")] = None,
) -> None:
    """Attribute a ChannelAttribution-layout path file (path;total_conversions;...)."""
    from pulse_attribution.pathfile import read_path_file, run_path_model

    try:
        table = read_path_file(input_file, sep=sep)
        credit, extra = run_path_model(table, model, order=order)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    columns = ["channel_name", "total_conversions", "total_conversion_value", *extra]
    rows: list[dict[str, Any]] = [
        {
            "channel_name": channel,
            "total_conversions": float(credit.conversions[i]),
            "total_conversion_value": float(credit.values[i]),
            **{name: float(values[i]) for name, values in extra.items()},
        }
        for i, channel in enumerate(credit.channels)
    ]
    emit(rows, columns, resolve(fmt, output), f"{model} attribution of {input_file.name}",
         output=output)
    if output is not None:
        typer.echo(f"{len(credit.channels)} channels written to {output}", err=True)


@app.command("recompute")
def recompute_command(
    model: Annotated[
        list[str] | None, typer.Option(
            help=f"{' and/or '.join(DATA_DRIVEN_MODELS)} (default: all; repeatable).")
    ] = None,
    milestone: Annotated[
        list[str] | None,
        typer.Option(help="lead, opportunity, won, new_subscription (default all)."),
    ] = None,
    order: Annotated[int | None, typer.Option(min=1, max=4, help="Markov order k.")] = None,
) -> None:
    """Recompute the data-driven models from all stored journeys, now."""
    import asyncio

    from pulse_attribution.domain.model import Milestone as MilestoneEnum

    models = model or list(DATA_DRIVEN_MODELS)
    for name in models:
        if name not in DATA_DRIVEN_MODELS:
            raise typer.BadParameter(f"unknown data-driven model {name!r}")
    try:
        milestones = [MilestoneEnum(m) for m in milestone] if milestone else None
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    runs = asyncio.run(_recompute(models, milestones, order))
    for run in runs:
        typer.echo(
            f"{run.model:8} {run.milestone.value:17} journeys={run.journeys} "
            f"conversions={run.conversions} channels={len(run.credit.channels)}"
            f"{' (approximate)' if run.approximate else ''}"
        )
    if not runs:
        typer.echo("no converting journeys yet: nothing to recompute")


async def _recompute(
    models: list[str], milestones: list[Milestone] | None, order: int | None
) -> list[ModelRun]:
    from pulse_attribution.main import build
    from pulse_attribution.settings import SERVICE, AttributionSettings
    from pulse_shared.bus import Bus, make_broker
    from pulse_shared.schema.migrations import migrate
    from pulse_shared.settings import common_settings
    from pulse_shared.store import open_store

    common = common_settings()
    store = open_store(common)
    migrate(store)
    broker = make_broker(common.kafka_bootstrap, client_id=f"pulse-{SERVICE}-cli")
    component = build(store, Bus(broker, SERVICE), AttributionSettings())
    publish = common.kafka_bootstrap is not None
    if publish:
        await broker.connect()
    try:
        return await component.recompute_data_driven(
            models, milestones, order=order, publish=publish
        )
    finally:
        if publish:
            await broker.stop()
        store.close()
