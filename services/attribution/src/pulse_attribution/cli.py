"""``pulse attribution …`` subcommands (mounted by ``pulse_cli``)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from pulse_attribution.domain.datadriven import ModelRun
    from pulse_attribution.domain.model import Milestone

app = typer.Typer(help="Multi-touch attribution: credits, data-driven runs, path files.",
                  pretty_exceptions_enable=False)


@app.command("credits")
def credits_command(
    conversion_id: Annotated[str | None, typer.Option(help="One conversion.")] = None,
    account_id: Annotated[str | None, typer.Option(help="All conversions of an account.")] = None,
) -> None:
    """Print the latest-version credits (JSON lines) of a conversion or an account."""
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
        return
    for row in rows:
        typer.echo(json.dumps(row, default=str))


@app.command("paths")
def paths_command(
    input_file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, metavar="INPUT")],
    model: Annotated[
        str, typer.Option(help="first, last, linear, last_non_direct, position_based, "
                               "markov or shapley.")
    ] = "markov",
    order: Annotated[int, typer.Option(min=1, max=6, help="Markov order k.")] = 1,
    sep: Annotated[str, typer.Option(help="Channel separator inside a path.")] = ">",
    output: Annotated[Path | None, typer.Option(help="CSV file (default: stdout).")] = None,
) -> None:
    """Attribute a ChannelAttribution-layout path file (path;total_conversions;...)."""
    from pulse_attribution.pathfile import format_credit, read_path_file, run_path_model

    try:
        table = read_path_file(input_file, sep=sep)
        credit, extra = run_path_model(table, model, order=order)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    text = format_credit(credit, extra)
    if output is None:
        typer.echo(text, nl=False)
    else:
        output.write_text(text)
        typer.echo(f"{len(credit.channels)} channels written to {output}", err=True)


@app.command("recompute")
def recompute_command(
    model: Annotated[
        list[str] | None, typer.Option(help="markov and/or shapley (default both).")
    ] = None,
    milestone: Annotated[
        list[str] | None,
        typer.Option(help="lead, opportunity, won, new_subscription (default all)."),
    ] = None,
    order: Annotated[int | None, typer.Option(min=1, max=4, help="Markov order k.")] = None,
) -> None:
    """Recompute the data-driven models from all stored journeys, now."""
    from pulse_attribution.domain.model import Milestone as MilestoneEnum
    from pulse_shared.attribution_models import DATA_DRIVEN_MODELS

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
