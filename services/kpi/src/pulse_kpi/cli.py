"""``pulse kpi …`` commands: the catalog, KPI values and the MRR movements report.

They read the store from the common settings (``PULSE_CLICKHOUSE_URL``, else the embedded
chDB in ``PULSE_DATA_DIR``), so they work with no server running. Rows are printed by
:mod:`pulse_shared.cli_output` (``--format table|csv|json``); service code is imported
inside the commands (start-up time).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from pulse_shared.cli_output import FORMAT_HELP, OutputFormat, emit
from pulse_shared.events import Grain
from pulse_shared.kpi_catalog import BY_NAME, CATALOG, MODELS

if TYPE_CHECKING:
    from pulse_shared.periods import Period
    from pulse_shared.store import Store

app = typer.Typer(help="KPIs: catalog, values, MRR movements.", no_args_is_help=True,
                  rich_markup_mode=None, pretty_exceptions_enable=False)


def clock() -> dt.datetime:
    """The CLI's clock (UTC); tests replace it to pin "today"."""
    return dt.datetime.now(dt.UTC)


SHOW_COLUMNS = (
    "kpi", "grain", "period", "period_start", "dimension", "dimension_value", "value", "unit",
    "complete",
)

MRR_COLUMNS = (
    "period", "new", "expansion", "contraction", "churn", "reactivation", "net_new",
    "ending_mrr",
)

FormatOption = Annotated[OutputFormat, typer.Option("--format", help=FORMAT_HELP)]


class By(StrEnum):
    ALL = "all"
    CHANNEL = "channel"
    CAMPAIGN = "campaign"


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


def _period(text: str, option: str, grain: Grain | None = None) -> Period:
    """Parse a --from/--to period; a bad value is a usage error (exit 2), not a crash."""
    from pulse_shared.periods import parse_period

    try:
        return parse_period(text, grain)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint=option) from exc


def kpi_choices() -> list[str]:
    """The catalog's KPI names, the per-attribution-model ones folded (``roas__<model>``)."""
    names: list[str] = []
    for k in CATALOG:
        base, sep, model = k.name.partition("__")
        name = f"{base}__<model>" if sep and model in MODELS else k.name
        if name not in names:
            names.append(name)
    return names


def _kpis(names: list[str] | None) -> list[str] | None:
    """Check --kpi values against the catalog: an unknown KPI is a usage error (exit 2)."""
    for name in names or []:
        if name not in BY_NAME:
            raise typer.BadParameter(
                f"unknown KPI {name!r}; valid: {', '.join(kpi_choices())} "
                f"(<model>: {', '.join(MODELS)})",
                param_hint="--kpi",
            )
    return names


def _nothing(message: str) -> None:
    """A query that matched nothing: say so on stderr (exit 0, it is a valid answer)."""
    typer.echo(message, err=True)


@app.command("list")
def list_kpis(
    fmt: FormatOption = OutputFormat.TABLE,
) -> None:
    """The KPI catalog: name, definition, unit, grains, dimensions, direction of good."""
    rows = [
        {
            "name": k.name, "unit": str(k.unit), "direction": str(k.direction),
            "grains": [str(g) for g in k.grains],
            "dimensions": list(k.dimensions), "definition": k.definition,
        }
        for k in CATALOG
    ]
    emit(rows, ["name", "unit", "direction", "grains", "dimensions", "definition"], fmt,
          "KPI catalog")


@app.command("show")
def show(
    grain: Annotated[Grain, typer.Option(help="day, week, month or quarter")] = Grain.MONTH,
    start: Annotated[str, typer.Option("--from", metavar="PERIOD", help="First period, e.g. 2026-01")] = "",
    end: Annotated[str, typer.Option("--to", metavar="PERIOD", help="Last period (inclusive), e.g. 2026-10")] = "",
    by: Annotated[By, typer.Option(help="all, channel or campaign")] = By.ALL,
    kpi: Annotated[list[str] | None, typer.Option(
        metavar="NAME", help="Only these KPIs (repeatable; names: pulse kpi list)")] = None,
    fmt: FormatOption = OutputFormat.TABLE,
) -> None:
    """KPI values (one row per KPI × dimension value × period).

    In csv and json, complete is false for a period whose last day is today or later
    (UTC); the table marks such a period's column "to date".
    """
    from pulse_kpi.storage import KpiStorage
    from pulse_shared.periods import period_complete

    kpi = _kpis(kpi)
    first = _period(start, "--from", grain).start if start else None
    last = _period(end, "--to", grain).end if end else None
    with _store() as store:
        rows = KpiStorage(store).kpi_values(grain, first, last, str(by), kpi)
    if not rows:
        span = f" from {start or 'the start'} to {end or 'now'}" if start or end else ""
        _nothing(f"no KPI values{' for ' + ', '.join(kpi) if kpi else ''} by {grain}"
                 f"{' and ' + by.value if by != By.ALL else ''}{span}")
    today = clock().astimezone(dt.UTC).date()
    for r in rows:
        r["complete"] = period_complete(r["grain"], r["period_start"], today)
    if fmt != OutputFormat.TABLE:
        emit([{c: r[c] for c in SHOW_COLUMNS} for r in rows], SHOW_COLUMNS, fmt, "KPIs")
        return
    periods = sorted({(r["period_start"], r["period"]) for r in rows})
    heading = {
        label: label if period_complete(grain, start, today) else f"{label} (to date)"
        for start, label in periods
    }
    wide: dict[tuple[str, str], dict[str, Any]] = {}
    for r in rows:
        entry = wide.setdefault(
            (r["kpi"], r["dimension_value"]),
            {"kpi": r["kpi"], by.value: r["dimension_value"], "unit": r["unit"]},
        )
        entry[heading[r["period"]]] = r["value"]
    head = ["kpi"] + ([by.value] if by != By.ALL else []) + ["unit"]
    emit(list(wide.values()), head + [heading[p] for _, p in periods], fmt,
          f"KPIs by {grain}")


@app.command("mrr")
def mrr(
    grain: Annotated[Grain, typer.Option(help="day, week, month or quarter")] = Grain.MONTH,
    start: Annotated[str, typer.Option("--from", metavar="PERIOD", help="First period, e.g. 2026-01")] = "",
    end: Annotated[str, typer.Option("--to", metavar="PERIOD", help="Last period (inclusive), e.g. 2026-10")] = "",
    fmt: FormatOption = OutputFormat.TABLE,
) -> None:
    """MRR movements per period (ChartMogul, event by event; churn/contraction negative)."""
    from decimal import Decimal

    from pulse_kpi.domain.mrr import MrrEvent, movements, mrr_report
    from pulse_shared.periods import periods_between

    with _store() as store:
        rows = store.query(
            "SELECT event_id, account_id, occurred_at, mrr FROM subscriptions FINAL"
        )
    events = [MrrEvent(r["event_id"], r["account_id"], r["occurred_at"], Decimal(r["mrr"]))
              for r in rows]
    moves = movements(events)
    days = [m.occurred_at.date() for m in moves]
    if not start and not days:
        emit([], MRR_COLUMNS, fmt, "MRR movements")
        return
    first = _period(start, "--from", grain).start if start else min(days)
    last = _period(end, "--to", grain).start if end else max(days)
    periods = [(p.label, p.start, p.end) for p in periods_between(first, last, grain)]
    report = mrr_report(moves, periods)
    out = [
        {
            "period": r.period, "new": r.new, "expansion": r.expansion,
            "contraction": r.contraction, "churn": r.churn, "reactivation": r.reactivation,
            "net_new": r.net_new, "ending_mrr": r.ending_mrr,
        }
        for r in report
    ]
    emit(out, MRR_COLUMNS, fmt, f"MRR movements by {grain}")


def catalog_markdown() -> str:
    lines = [
        "# KPI catalog",
        "",
        "Generated by `pulse kpi asyncapi --output docs/asyncapi` from `pulse_shared.kpi_catalog`.",
        "Money in USD, rates as fractions (0.05 = 5 %), null when undefined.",
        "",
        "| KPI | label | unit | direction of good | grains | dimensions | definition | source |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for k in CATALOG:
        if "__" in k.name and not k.name.endswith("__linear"):
            continue
        name = k.name.replace("__linear", "__<model>")
        lines.append(
            f"| `{name}` | {k.label.replace('|', '/')} | {k.unit} | {k.direction} | "
            f"{', '.join(k.grains)} | {', '.join(k.dimensions)} | "
            f"{k.definition.replace('|', '/')} | {k.source.replace('|', '/')} |"
        )
    return "\n".join(lines) + "\n"


@app.command("asyncapi")
def asyncapi(
    output: Annotated[Path | None, typer.Option(
        "--output", "-o", help="Directory for kpi.json, kpi.yaml, kpi-catalog.md.")] = None,
    legacy_output: Annotated[Path | None, typer.Option("--out", hidden=True)] = None,
) -> None:
    """Print (or write) the AsyncAPI document FastStream generates for the KPI service."""
    from pulse_kpi.asyncapi import render

    out = legacy_output or output
    if out is None:
        typer.echo(render("json"), nl=False)
        return
    target = Path(out)
    target.mkdir(parents=True, exist_ok=True)
    (target / "kpi.json").write_text(render("json"))
    (target / "kpi.yaml").write_text(render("yaml"))
    (target / "kpi-catalog.md").write_text(catalog_markdown())
    typer.echo(f"wrote {target}/kpi.json, kpi.yaml, kpi-catalog.md")


@app.command("recompute")
def recompute(
    start: Annotated[str, typer.Option("--from", metavar="PERIOD", help="First period, e.g. 2026-01")],
    end: Annotated[str, typer.Option("--to", metavar="PERIOD", help="Last period (inclusive), e.g. 2026-10")],
) -> None:
    """Recompute every KPI of a range from the raw tables (after a bulk load or a change of
    definitions). Only changed values are written; no snapshots are published."""
    import asyncio

    from pulse_kpi.main import recompute_range

    first, last = _period(start, "--from").start, _period(end, "--to").end
    with _store() as store:
        changed = asyncio.run(recompute_range(store, first, last))
    typer.echo(f"recomputed {first}..{last}: {changed} KPI values changed")
