"""``pulse kpi …`` commands: the catalog, KPI values and the MRR movements report.

They read the store from the common settings (``PULSE_CLICKHOUSE_URL``, else the embedded
chDB in ``PULSE_DATA_DIR``), so they work with no server running. Rows are printed by
:mod:`pulse_shared.cli_output` (``--format table|csv|json``); service code is imported
inside the commands (start-up time).
"""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from pulse_kpi import cli_support
from pulse_kpi.accounts_cli import register as register_account_commands
from pulse_kpi.cli_support import (
    OutputOption,
    fixed,
    open_store,
    parse_day_option,
    parse_period_option,
)
from pulse_kpi.experience_cli import register as register_experience_commands
from pulse_kpi.usage_cli import register as register_usage_commands
from pulse_shared.cli_output import FORMAT_FILE_HELP, FORMAT_HELP, OutputFormat, emit, resolve
from pulse_shared.events import Grain
from pulse_shared.kpi_catalog import BY_NAME, CATALOG, MODELS

if TYPE_CHECKING:
    pass

app = typer.Typer(help="KPIs: catalog, values, MRR movements.", no_args_is_help=True,
                  rich_markup_mode=None, pretty_exceptions_enable=False)


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
    # The account's profile (ingest kind accounts): kpi_catalog.ACCOUNT_DIMS.
    SEGMENT = "segment"
    PLAN = "plan"
    REGION = "region"
    INDUSTRY = "industry"
    EMPLOYEE_BAND = "employee_band"
    FEATURE = "feature"  # product usage: usage_events, feature_adoption_rate


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
    by: Annotated[By, typer.Option(
        help="all, channel, campaign, or the account's segment, plan, region, industry or "
             "employee_band (week, month and quarter), or feature (product usage)")] = By.ALL,
    kpi: Annotated[list[str] | None, typer.Option(
        metavar="NAME", help="Only these KPIs (repeatable; names: pulse kpi list)")] = None,
    fmt: FileFormatOption = None,
    output: OutputOption = None,
) -> None:
    """KPI values (one row per KPI × dimension value × period).

    In csv and json, complete is false for a period whose last day is today or later
    (UTC), and for a maturing KPI (e.g. trial conversion) until its window has passed; the
    table marks a running period's column "to date".
    """
    from pulse_kpi.storage import KpiStorage
    from pulse_shared.kpi_catalog import ACCOUNT_DIM_GRAINS, ACCOUNT_DIMS, complete_on
    from pulse_shared.periods import period_complete

    kpi = _kpis(kpi)
    if by.value in ACCOUNT_DIMS and grain not in ACCOUNT_DIM_GRAINS:
        raise typer.BadParameter(
            f"breakdowns by {by.value} are computed by "
            f"{', '.join(str(g) for g in ACCOUNT_DIM_GRAINS)}, not by {grain}",
            param_hint="--grain",
        )
    fmt = resolve(fmt, output)
    first = parse_period_option(start, "--from", grain).start if start else None
    last = parse_period_option(end, "--to", grain).end if end else None
    with open_store() as store:
        rows = KpiStorage(store).kpi_values(grain, first, last, str(by), kpi)
    if not rows:
        span = f" from {start or 'the start'} to {end or 'now'}" if start or end else ""
        _nothing(f"no KPI values{' for ' + ', '.join(kpi) if kpi else ''} by {grain}"
                 f"{' and ' + by.value if by != By.ALL else ''}{span}")
    today = cli_support.clock().astimezone(dt.UTC).date()
    for r in rows:
        r["complete"] = complete_on(r["kpi"], r["grain"], r["period_start"], today)
    if fmt != OutputFormat.TABLE:
        emit([{c: r[c] for c in SHOW_COLUMNS} for r in rows], SHOW_COLUMNS, fmt, "KPIs",
             output)
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
          f"KPIs by {grain}", output)


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

    with open_store() as store:
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
    first = parse_period_option(start, "--from", grain).start if start else min(days)
    last = parse_period_option(end, "--to", grain).start if end else max(days)
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


COHORT_COLUMNS = ("cohort", "months_since", "accounts", "logo_retention", "mrr_retention")
ECONOMICS_COLUMNS = (
    "cohort", "accounts", "spend", "cac", "months_observed", "revenue_per_account", "ltv_cac",
    "payback_months",
)
COHORT_DIMENSIONS = ("first_paid_month", "first_touch_channel", "plan", "segment")
RATIO_DECIMALS = 4  # ratios in cohort output: fixed decimals in csv and table
FileFormatOption = Annotated[OutputFormat | None, typer.Option("--format", help=FORMAT_FILE_HELP)]
AsOfOption = Annotated[str, typer.Option(
    "--as-of", hidden=True, metavar="DAY", help="Today (YYYY-MM-DD, UTC) instead of the clock.")]
CohortFromOption = Annotated[str, typer.Option(
    "--from", metavar="MONTH", help="First cohort (first paid month), e.g. 2026-01")]
CohortToOption = Annotated[str, typer.Option(
    "--to", metavar="MONTH", help="Last cohort (first paid month, inclusive), e.g. 2026-10")]


def _cohort_by(text: str) -> str:
    if text not in COHORT_DIMENSIONS:
        raise typer.BadParameter(
            f"unknown cohort dimension {text!r}; valid: {', '.join(COHORT_DIMENSIONS)}",
            param_hint="--by",
        )
    return text


def _cohort_months(start: str, end: str) -> tuple[dt.date | None, dt.date | None]:
    """--from/--to as the first days of the first and last cohort months."""
    first = parse_period_option(start, "--from", Grain.MONTH).start if start else None
    last = parse_period_option(end, "--to", Grain.MONTH).start if end else None
    if first is not None and last is not None and last < first:
        raise typer.BadParameter(f"{end} is before --from {start}", param_hint="--to")
    return first, last


@app.command("cohorts")
def cohorts(
    by: Annotated[str, typer.Option(
        metavar="DIMENSION",
        help="first_paid_month, first_touch_channel, plan or segment (plan and segment: "
             "the account's profile on the last day of its first paid month; plan falls "
             "back to the billing plan). For all but the first, months_since counts from "
             "each account's own first paid month.")] = "first_paid_month",
    start: CohortFromOption = "",
    end: CohortToOption = "",
    fmt: FileFormatOption = None,
    output: OutputOption = None,
    as_of: AsOfOption = "",
) -> None:
    """Cohort retention: cohort, months_since, accounts, logo_retention, mrr_retention.

    The cohort of an account is its first paid month (MRR > 0; reactivations stay in it).
    Retention is read at the end of each month that has ended (UTC): the running month is
    not a retention point. mrr_retention is n/a (empty in csv) when the cohort had no MRR at
    the end of its first month. Ratios have 4 decimals.
    """
    from pulse_kpi.domain.accounts import cohort_profiles
    from pulse_kpi.domain.cohorts import CohortBy, cohort_retention
    from pulse_kpi.storage import KpiStorage

    dimension = CohortBy(_cohort_by(by))
    first, last = _cohort_months(start, end)
    today = parse_day_option(as_of)
    fmt = resolve(fmt, output)
    with open_store() as store:
        storage = KpiStorage(store)
        ledger = storage.cohort_ledger(first, last)
        touches = (storage.first_touch_channels(sorted({e.account_id for e in ledger}))
                   if dimension is CohortBy.FIRST_TOUCH_CHANNEL else {})
        profiles = (cohort_profiles(storage.account_profiles())
                    if dimension in (CohortBy.PLAN, CohortBy.SEGMENT) else {})
    rows = cohort_retention(ledger, today, dimension, touches, first, last, profiles)
    if not rows:
        _nothing(f"no cohort with an ended first paid month{_span(start, end)} (as of {today})")
    out = [
        {
            "cohort": r.cohort, "months_since": r.months_since, "accounts": r.accounts,
            "logo_retention": fixed(r.logo_retention, fmt, RATIO_DECIMALS),
            "mrr_retention": fixed(r.mrr_retention, fmt, RATIO_DECIMALS),
        }
        for r in rows
    ]
    emit(out, COHORT_COLUMNS, fmt, f"Cohort retention by {dimension}", output)


def _span(start: str, end: str) -> str:
    return f" from {start or 'the start'} to {end or 'now'}" if start or end else ""


@app.command("cohort-economics")
def cohort_economics(
    start: CohortFromOption = "",
    end: CohortToOption = "",
    fmt: FileFormatOption = None,
    output: OutputOption = None,
    as_of: AsOfOption = "",
) -> None:
    """LTV to date and CAC payback per first-paid-month cohort.

    Revenue of a month = the account's MRR at its end (gross, no proration); CAC = spend of
    the cohort month / accounts of the cohort; payback_months = first months_since whose
    cumulative revenue per account reaches CAC (empty until it does). Ended months only.
    """
    from pulse_kpi.domain.cohorts import cohort_economics as economics
    from pulse_kpi.storage import KpiStorage

    first, last = _cohort_months(start, end)
    today = parse_day_option(as_of)
    fmt = resolve(fmt, output)
    with open_store() as store:
        storage = KpiStorage(store)
        ledger = storage.cohort_ledger(first, last)
        spend = {}
        if ledger:
            since = min(e.occurred_at for e in ledger).date().replace(day=1)
            spend = storage.monthly_spend(since, today)
    rows = economics(ledger, today, spend, first, last)
    if not rows:
        _nothing(f"no cohort with an ended first paid month{_span(start, end)} (as of {today})")
    out = [
        {
            "cohort": r.cohort, "accounts": r.accounts, "spend": fixed(r.spend, fmt, 2),
            "cac": fixed(r.cac, fmt, 2), "months_observed": r.months_observed,
            "revenue_per_account": fixed(r.revenue_per_account, fmt, 2),
            "ltv_cac": fixed(r.ltv_cac, fmt, RATIO_DECIMALS),
            "payback_months": r.payback_months,
        }
        for r in rows
    ]
    emit(out, ECONOMICS_COLUMNS, fmt, "Cohort economics by first paid month", output)


class MartechBy(StrEnum):
    CATEGORY = "category"
    VENDOR = "vendor"


MARTECH_MONEY_DECIMALS = 2


@app.command("martech")
def martech(
    by: Annotated[MartechBy, typer.Option(help="category or vendor")] = MartechBy.CATEGORY,
    start: Annotated[str, typer.Option(
        "--from", metavar="MONTH", help="First month, e.g. 2026-01")] = "",
    end: Annotated[str, typer.Option(
        "--to", metavar="MONTH", help="Last month (inclusive), e.g. 2026-10")] = "",
    fmt: FormatOption = OutputFormat.TABLE,
) -> None:
    """Martech (tool and licence) cost per month by tool category or vendor, with its share
    of the month's martech cost (the KPI martech_cost is the month's total; KPI dimensions
    are channel and campaign, which tools do not have, so the breakdown lives here)."""
    from decimal import Decimal

    from pulse_shared.periods import period_of

    first, last = _cohort_months(start, end)
    # Without bounds: ClickHouse Date's whole range (1970 to 2149).
    lower = first or dt.date(1970, 1, 1)
    upper = period_of(last, Grain.MONTH).end if last else dt.date(2149, 1, 1)
    with open_store() as store:
        from pulse_kpi.storage import KpiStorage

        rows = KpiStorage(store).martech_breakdown(lower, upper, by.value)
    totals: dict[dt.date, Decimal] = {}
    for r in rows:
        totals[r["month"]] = totals.get(r["month"], Decimal(0)) + Decimal(r["amount"])
    columns = ("month", by.value, "cost", "share")
    out = [
        {
            "month": r["month"].isoformat()[:7], by.value: r["member"],
            "cost": fixed(r["amount"], fmt, MARTECH_MONEY_DECIMALS),
            "share": fixed(Decimal(r["amount"]) / totals[r["month"]]
                            if totals[r["month"]] else None, fmt, RATIO_DECIMALS),
        }
        for r in rows
    ]
    if not out:
        _nothing("no martech costs in the range")
    emit(out, columns, fmt, f"Martech cost by {by.value}")


class DeliverabilityBy(StrEnum):
    ALL = "all"
    SENDING_DOMAIN = "sending_domain"
    CAMPAIGN = "campaign"


DELIVERABILITY_RATES = (
    "delivery_rate", "bounce_rate", "hard_bounce_rate", "complaint_rate", "unsubscribe_rate",
    "open_rate", "click_rate",
)


@app.command("deliverability")
def deliverability(
    start: Annotated[str, typer.Option(
        "--from", metavar="PERIOD", help="First day or period, e.g. 2026-11-01, 2026-W45, 2026-11")] = "",
    end: Annotated[str, typer.Option(
        "--to", metavar="PERIOD", help="Last day or period (inclusive), e.g. 2026-11-30")] = "",
    by: Annotated[DeliverabilityBy, typer.Option(
        help="all (one total row), sending_domain or campaign (the ESP campaign)")
    ] = DeliverabilityBy.ALL,
    fmt: FileFormatOption = None,
    output: OutputOption = None,
) -> None:
    """E-mail deliverability over a range: sent, delivered and the rates (delivery, bounce,
    hard bounce, complaint and unsubscribe over sent; open and click over delivered), in
    total or per sending domain or ESP campaign. A rate is n/a (empty in csv, null in json)
    when nothing was sent (or delivered); ratios have 4 decimals (json: 9)."""
    from pulse_kpi.domain.deliverability import DeliveryCounts
    from pulse_kpi.storage import KpiStorage

    lower = parse_period_option(start, "--from").start if start else dt.date(1970, 1, 1)
    upper = parse_period_option(end, "--to").end if end else dt.date(2149, 1, 1)
    if upper <= lower:
        raise typer.BadParameter(f"{end} is before --from {start}", param_hint="--to")
    fmt = resolve(fmt, output)
    with open_store() as store:
        rows = KpiStorage(store).deliverability_rows(lower, upper)
    members: dict[str, DeliveryCounts] = {}
    for row in rows:
        if by is DeliverabilityBy.ALL:
            member = "all"
        elif by is DeliverabilityBy.SENDING_DOMAIN:
            member = row.sending_domain
        else:
            if not row.campaign_id:
                continue  # rows without an ESP campaign count in totals and domains only
            member = row.campaign_id
        members.setdefault(member, DeliveryCounts()).add(row)
    places = 9 if fmt is OutputFormat.JSON else RATIO_DECIMALS
    out = []
    for member, counts in sorted(members.items()):
        values = counts.values()
        out.append({
            by.value: member, "sent": counts.sent, "delivered": counts.delivered,
            **{name: fixed(values[name], fmt, places) for name in DELIVERABILITY_RATES},
        })
    if not out:
        _nothing("no e-mail deliverability data in the range")
    columns = (by.value, "sent", "delivered", *DELIVERABILITY_RATES)
    title = "E-mail deliverability" + ("" if by is DeliverabilityBy.ALL else f" by {by.value}")
    emit(out, columns, fmt, title, output)


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

    first, last = parse_period_option(start, "--from").start, parse_period_option(end, "--to").end
    with open_store() as store:
        changed = asyncio.run(recompute_range(store, first, last))
    typer.echo(f"recomputed {first}..{last}: {changed} KPI values changed")


register_usage_commands(app)  # pulse kpi usage|adoption|launch|churn-risk
register_account_commands(app)  # pulse kpi accounts
register_experience_commands(app)  # pulse kpi nps|tickets|nps-churn
