"""``pulse mmm …`` commands: fit the marketing mix model, read its incremental ROI, and
optimise a budget under its response curves.

They read the store from the common settings (``PULSE_CLICKHOUSE_URL``, else the embedded
chDB in ``PULSE_DATA_DIR``), so they work with no server running. Rows are printed by
:mod:`pulse_shared.cli_output` (``--format table|csv|json``); service code is imported
inside the commands (start-up time: ``pulse --help`` imports none of it).

Errors are one line on stderr: a bad option value exits 2 (naming the option), too little
history, a rejected run or no published run exit 1.
"""

from __future__ import annotations

import datetime as dt
import sys
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stdout
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

from pulse_shared.cli_output import FORMAT_FILE_HELP, FORMAT_HELP, OutputFormat, emit, resolve

if TYPE_CHECKING:
    from pulse_mmm.domain.model import MmmRunResult, MmmRunRow
    from pulse_shared.store import Store

app = typer.Typer(help="Marketing mix model: fit, incremental ROI, budget optimiser.",
                  no_args_is_help=True, rich_markup_mode=None, pretty_exceptions_enable=False)

ROI_COLUMNS = ("channel", "spend", "contribution", "roi", "roi_lower", "roi_upper",
               "marginal_roi")
OPTIMIZE_COLUMNS = ("channel", "current_spend", "recommended_spend", "expected_contribution",
                    "expected_contribution_lower", "expected_contribution_upper")
RUN_COLUMNS = ("run_id", "version", "target", "grain", "date_from", "date_to", "periods",
               "channels", "status", "reason", "max_rhat", "min_ess", "divergences",
               "holdout_mape", "r_squared", "seconds")
#: The current mix the optimiser compares with: the shares of the run's last periods.
CURRENT_MIX_PERIODS = 8

FormatOption = Annotated[OutputFormat, typer.Option("--format", help=FORMAT_HELP)]
FileFormatOption = Annotated[
    OutputFormat | None, typer.Option("--format", help=FORMAT_FILE_HELP)]
OutputOption = Annotated[
    Path | None, typer.Option("--output", "-o", help="Write to this file instead of stdout.")]
TargetOption = Annotated[str | None, typer.Option(
    "--target", metavar="TARGET",
    help="won_revenue (won pipeline amount), new_mrr or kpi:NAME of an additive KPI "
         "(default: PULSE_MMM_TARGET, won_revenue).")]


def _fail(message: str) -> NoReturn:
    """A user error: one line on stderr, exit 1."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code=1)


@contextmanager
def _store() -> Iterator[Store]:
    from pulse_shared.schema.migrations import migrate
    from pulse_shared.settings import common_settings
    from pulse_shared.store import open_store

    store = open_store(common_settings())
    try:
        migrate(store)  # idempotent; lets the commands run on a fresh data dir
        yield store
    finally:
        store.close()


def _day(text: str | None, option: str) -> dt.date | None:
    if not text:
        return None
    try:
        return dt.date.fromisoformat(text)
    except ValueError as exc:
        raise typer.BadParameter(f"{text!r} is not a YYYY-MM-DD day", param_hint=option) from exc


def _target(text: str | None) -> str | None:
    if text is None:
        return None
    from pulse_mmm.storage import UnknownTarget, parse_target

    try:
        return parse_target(text)
    except UnknownTarget as exc:
        raise typer.BadParameter(str(exc), param_hint="--target") from exc


def _bounds(values: list[str] | None, option: str) -> dict[str, float] | None:
    """``CH=AMT`` pairs of --min/--max; a malformed one is a usage error naming the option."""
    if not values:
        return None
    bounds: dict[str, float] = {}
    for value in values:
        channel, sep, amount = value.partition("=")
        channel = channel.strip()
        try:
            number = float(amount)
        except ValueError:
            number = float("nan")
        if not sep or not channel or number != number or number < 0:
            raise typer.BadParameter(
                f"{value!r} is not CHANNEL=AMOUNT (a channel name, '=', an amount >= 0)",
                param_hint=option)
        bounds[channel] = number
    return bounds


def _run_row(run: MmmRunRow) -> dict[str, Any]:
    return {
        "run_id": run.run_id, "version": run.version, "target": run.target,
        "grain": run.grain, "date_from": run.date_from, "date_to": run.date_to,
        "periods": run.periods, "channels": list(run.channels), "status": run.status,
        "reason": run.reason, "max_rhat": run.max_rhat, "min_ess": run.min_ess,
        "divergences": run.divergences, "holdout_mape": run.holdout_mape,
        "r_squared": run.r_squared,
        "seconds": round((run.finished_at - run.started_at).total_seconds(), 1),
    }


def _latest(store: Store, target: str | None) -> MmmRunRow:
    from pulse_mmm.storage import MmmStorage

    run = MmmStorage(store).latest_published_run(target)
    if run is None:
        which = f" of {target}" if target else ""
        _fail(f"no published MMM run{which} yet: run `pulse mmm fit` first")
    return run


def _roi_rows(result_channels: Any) -> list[dict[str, Any]]:
    return [{c: getattr(row, c) for c in ROI_COLUMNS} for row in result_channels]


class _Progress:
    """The fit's progress messages (``progress(message)``) as a Rich status line on stderr:
    a spinner, the current step and the time elapsed."""

    def __init__(self, progress: Any) -> None:
        self.progress = progress
        self.task = progress.add_task("reading spend and outcomes", total=None)

    def __call__(self, message: str) -> None:
        self.progress.update(self.task, description=str(message))


@app.command("fit")
def fit(
    target: TargetOption = None,
    grain: Annotated[str | None, typer.Option(
        "--grain", metavar="GRAIN", help="week (default) or day.")] = None,
    date_from: Annotated[str | None, typer.Option(
        "--from", metavar="DAY", help="First day, YYYY-MM-DD (default: the window of "
        "PULSE_MMM_WINDOW_WEEKS complete weeks ending with the spend data).")] = None,
    date_to: Annotated[str | None, typer.Option(
        "--to", metavar="DAY", help="Last day (inclusive), YYYY-MM-DD.")] = None,
    draws: Annotated[int | None, typer.Option(
        "--draws", min=10, metavar="N", help="Posterior draws per chain.")] = None,
    tune: Annotated[int | None, typer.Option(
        "--tune", min=10, metavar="N", help="Tuning steps per chain.")] = None,
    chains: Annotated[int | None, typer.Option(
        "--chains", min=1, max=16, metavar="N", help="MCMC chains.")] = None,
    attribution_prior: Annotated[bool | None, typer.Option(
        "--attribution-prior/--no-attribution-prior",
        help="Centre ROI priors on attribution ROAS (position-based) (default: "
             "PULSE_MMM_USE_ATTRIBUTION_PRIOR).")] = None,
    fmt: FormatOption = OutputFormat.TABLE,
) -> None:
    """Fit the marketing mix model on the stored spend and target, store the run and print
    its summary. A run whose diagnostics fail is stored as rejected and exits 1 with the
    reason; too little history exits 1 without storing anything."""
    import asyncio

    from pulse_mmm.domain.history import InsufficientHistory
    from pulse_mmm.domain.model import ModelGrain
    from pulse_mmm.runner import run_fit
    from pulse_mmm.settings import MmmSettings

    chosen = _target(target)
    try:
        model_grain = ModelGrain(grain) if grain else None
    except ValueError as exc:
        raise typer.BadParameter(f"{grain!r} is not week or day", param_hint="--grain") from exc
    first, last = _day(date_from, "--from"), _day(date_to, "--to")
    if first and last and last < first:
        raise typer.BadParameter(f"{last} is before --from {first}", param_hint="--to")
    settings = MmmSettings()
    overrides = {"draws": draws, "tune": tune, "chains": chains,
                 "use_attribution_prior": attribution_prior}
    from rich.console import Console
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    bar = Progress(SpinnerColumn(), TextColumn("[bold]{task.description}"), TimeElapsedColumn(),
                   console=Console(stderr=True), transient=True)
    result: MmmRunResult
    # PyMC draws a progress bar of its own on stdout while computing deterministics; stdout
    # carries this command's csv/json, so the library's output goes to stderr (the CLI is
    # single-threaded here, so swapping sys.stdout cannot catch anyone else's output).
    with _store() as store, bar, redirect_stdout(sys.stderr):
        try:
            result = asyncio.run(run_fit(
                store, settings, target=chosen, grain=model_grain, date_from=first,
                date_to=last, progress=_Progress(bar), fit_overrides=overrides,
            ))
        except InsufficientHistory as exc:
            bar.stop()
            _fail(f"too little history: {exc}")
    summary = _run_row(result.run)
    if fmt is OutputFormat.TABLE:  # one run: a field / value table fits a terminal
        emit([{"field": k, "value": v} for k, v in summary.items()], ("field", "value"), fmt,
             f"MMM run {result.run.run_id}")
    else:
        emit([summary], RUN_COLUMNS, fmt, "MMM run")
    if result.published and fmt is OutputFormat.TABLE:
        emit(_roi_rows(result.channels), ROI_COLUMNS, fmt, "Incremental ROI (90 % interval)")
    if not result.published:
        _fail(f"run {result.run.run_id} rejected: {result.run.reason}")


@app.command("roi")
def roi(
    target: TargetOption = None,
    fmt: FileFormatOption = None,
    output: OutputOption = None,
) -> None:
    """Incremental ROI per channel of the latest published run: spend and contribution
    over its window, ROI = contribution / spend with its 90 % credible interval, and the
    marginal ROI (the return of one more unit of spend at the current level)."""
    from pulse_mmm.storage import MmmStorage

    chosen = _target(target)
    with _store() as store:
        run = _latest(store, chosen)
        rows = MmmStorage(store).channel_results(run.run_id)
    title = (f"Incremental ROI, {run.target} by {run.grain}, {run.date_from}..{run.date_to} "
             f"(run {run.run_id}, 90 % interval)")
    emit(_roi_rows(rows), ROI_COLUMNS, resolve(fmt, output), title, output)


@app.command("optimize")
def optimize(
    budget: Annotated[float, typer.Option(
        "--budget", metavar="AMOUNT", min=0.0, help="Total budget over the horizon (USD).")],
    weeks: Annotated[int, typer.Option(
        "--weeks", metavar="N", min=1, max=520, help="Horizon in weeks.")],
    minimum: Annotated[list[str] | None, typer.Option(
        "--min", metavar="CHANNEL=AMOUNT",
        help="Least total spend of a channel over the horizon (repeatable).")] = None,
    maximum: Annotated[list[str] | None, typer.Option(
        "--max", metavar="CHANNEL=AMOUNT",
        help="Most total spend of a channel over the horizon (repeatable).")] = None,
    target: TargetOption = None,
    fmt: FileFormatOption = None,
    output: OutputOption = None,
) -> None:
    """The split of a budget over N weeks that maximises the expected outcome under the
    latest published run's response curves, against the current mix (the last 8 periods'
    shares scaled to the same budget). Amounts are totals over the horizon. A channel
    without --min/--max moves at most ±50 % from its share of the current mix, and not past
    twice the largest spend per period the model saw (a response curve is evidence near the
    spend it was fitted on): widen with explicit bounds. The table is
    followed by the expected gain over the current mix with its 90 % interval; JSON is an
    object with the rows under "allocations" and the gain under "expected_gain"; CSV has
    the rows only."""
    import json

    from pulse_mmm.domain.model import ModelGrain
    from pulse_mmm.domain.optimize import default_bounds, expected_gain, optimize_budget
    from pulse_mmm.storage import MmmStorage
    from pulse_shared.cli_output import json_value

    low, high = _bounds(minimum, "--min"), _bounds(maximum, "--max")
    chosen = _target(target)
    with _store() as store:
        run = _latest(store, chosen)
        storage = MmmStorage(store)
        draws = storage.draws(run.run_id)
        current = storage.recent_spend(run.run_id, CURRENT_MIX_PERIODS)
    channels = sorted({d.channel for d in draws})
    for option, bounds in (("--min", low), ("--max", high)):
        unknown = sorted(set(bounds or {}) - set(channels))
        if unknown:
            raise typer.BadParameter(
                f"unknown channel(s) {', '.join(unknown)}; the run's channels: "
                f"{', '.join(channels)}", param_hint=option)
    periods = weeks if run.grain == ModelGrain.WEEK else weeks * 7
    try:
        floors, ceilings = default_bounds(
            draws, current, budget, periods, minimum=low, maximum=high)
        allocations = optimize_budget(
            draws, current, budget, periods, minimum=floors, maximum=ceilings,
            run_id=run.run_id)
    except ValueError as exc:
        _fail(str(exc))
    gain = expected_gain(draws, allocations)
    rows = [{c: getattr(a, c) for c in OPTIMIZE_COLUMNS} for a in allocations]
    chosen_format = resolve(fmt, output)
    title = (f"Budget {budget:,.0f} over {weeks} week(s), {run.target} "
             f"(run {run.run_id}, 90 % interval)")
    if chosen_format is OutputFormat.JSON:
        document = {
            "run_id": run.run_id, "target": run.target, "budget": budget, "weeks": weeks,
            "allocations": rows,
            "expected_gain": {"mean": gain[0], "lower": gain[1], "upper": gain[2]},
        }
        text = json.dumps(document, default=json_value, indent=2) + "\n"
        if output is not None:
            output.write_text(text)
        else:
            typer.echo(text, nl=False)
        return
    emit(rows, OPTIMIZE_COLUMNS, chosen_format, title, output)
    if chosen_format is OutputFormat.TABLE:
        line = (f"Expected gain over the current mix: {gain[0]:+,.0f} "
                f"(90 % interval {gain[1]:+,.0f} to {gain[2]:+,.0f})")
        if output is not None:
            with output.open("a") as handle:
                handle.write(line + "\n")
        else:
            typer.echo(line)


@app.command("asyncapi")
def asyncapi(
    output: Annotated[Path | None, typer.Option(
        "--output", "-o", help="Directory for mmm.json and mmm.yaml.")] = None,
) -> None:
    """Print (or write) the AsyncAPI document FastStream generates for the MMM service."""
    from pulse_mmm.asyncapi import render

    if output is None:
        typer.echo(render("json"), nl=False)
        return
    output.mkdir(parents=True, exist_ok=True)
    (output / "mmm.json").write_text(render("json"))
    (output / "mmm.yaml").write_text(render("yaml"))
    typer.echo(f"wrote {output}/mmm.json, mmm.yaml")
