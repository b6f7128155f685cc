"""``pulse kpi usage|adoption|launch|churn-risk``: product usage read from ``product_usage``.

Every number comes from the raw usage ledger through the same pure functions as the KPI
service's (:mod:`pulse_kpi.domain.usage`), so a table and the KPI of the same period agree.
Registered on the ``pulse kpi`` app by :func:`register` (cli.py); service code is imported
inside the commands (start-up time).
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Annotated, Any

import typer

from pulse_kpi.cli_support import (
    FormatOption,
    OutputOption,
    fixed,
    open_store,
    parse_day_option,
    parse_period_option,
    periods_option,
)
from pulse_shared.cli_output import OutputFormat, emit, resolve
from pulse_shared.events import Grain
from pulse_shared.kpi_catalog import CHURN_RISK_DROP_DEFAULT

if TYPE_CHECKING:
    from pulse_kpi.domain.usage import UsageLedger
    from pulse_shared.periods import Period

FromOption = Annotated[str, typer.Option(
    "--from", metavar="PERIOD", help="First period of the grain, e.g. 2026-01 (default: the "
    "first day with usage)")]
ToOption = Annotated[str, typer.Option(
    "--to", metavar="PERIOD", help="Last period (inclusive), e.g. 2026-10 (default: the "
    "last day with usage)")]
GrainOption = Annotated[Grain, typer.Option(help="day, week, month or quarter")]
AsOfOption = Annotated[str, typer.Option(
    "--as-of", hidden=True, metavar="DAY", help="Today (YYYY-MM-DD, UTC) instead of the clock.")]

RATIO_DECIMALS = 4
ACTIVITY_COLUMNS = ("period", "active_accounts", "avg_daily_active", "usage_events")
ADOPTION_COLUMNS = ("period", "feature", "adopters", "active_accounts", "adoption_rate")
LAUNCH_COLUMNS = ("days_since_release", "day", "adopters", "active_accounts", "adoption")
CHURN_RISK_COLUMNS = ("account_id", "month", "usage_before", "usage_after", "drop", "mrr")


def _ratio(value: float | None, fmt: OutputFormat) -> Any:
    return fixed(value, fmt, RATIO_DECIMALS)


def _today(as_of: str) -> dt.date:
    return parse_day_option(as_of)



def _ledger(periods: list[Period], before: int = 0) -> UsageLedger:
    """Usage of the periods' days (and ``before`` extra days ahead of them)."""
    from pulse_kpi.domain.usage import UsageLedger
    from pulse_kpi.storage import KpiStorage

    if not periods:
        return UsageLedger(())
    start = periods[0].start - dt.timedelta(days=before)
    with open_store() as store:
        return KpiStorage(store).usage_ledger(start, periods[-1].end)


def _span(feature: str | None = None) -> tuple[dt.date, dt.date] | None:
    from pulse_kpi.storage import KpiStorage

    with open_store() as store:
        return KpiStorage(store).usage_span(feature)


def usage(
    grain: GrainOption = Grain.MONTH,
    start: FromOption = "",
    end: ToOption = "",
    fmt: FormatOption = None,
    output: OutputOption = None,
    as_of: AsOfOption = "",
) -> None:
    """Active accounts per period (DAU by day, WAU by week, MAU by month): distinct
    accounts with usage in the period, the mean daily active accounts over its days (the
    running period: its days before today) and the feature uses."""
    from pulse_kpi.domain.usage import activity

    fmt = resolve(fmt, output)
    today = _today(as_of)
    periods = periods_option(start, end, grain, None if start and end else _span())
    rows = activity(_ledger(periods), periods, today)
    if not rows:
        typer.echo("no product usage yet (ingest kind usage)", err=True)
    out = [
        {"period": r.period, "active_accounts": r.active_accounts,
         "avg_daily_active": _fixed2(r.average_daily_active, fmt),
         "usage_events": r.usage_events}
        for r in rows
    ]
    emit(out, ACTIVITY_COLUMNS, fmt, f"Active accounts by {grain}", output)


def _fixed2(value: Any, fmt: OutputFormat) -> Any:
    return fixed(value, fmt, 2)


def adoption(
    feature: Annotated[list[str] | None, typer.Option(
        metavar="FEATURE", help="Only this feature (repeatable; default: every feature)")] = None,
    grain: GrainOption = Grain.MONTH,
    start: FromOption = "",
    end: ToOption = "",
    fmt: FormatOption = None,
    output: OutputOption = None,
) -> None:
    """Feature adoption per period: accounts that used the feature ÷ accounts active in the
    period (the KPI feature_adoption_rate)."""
    from pulse_kpi.domain.usage import adoption as adoption_rows

    fmt = resolve(fmt, output)
    periods = periods_option(start, end, grain, None if start and end else _span())
    ledger = _ledger(periods)
    if feature:
        known = set(_known_features())
        for name in feature:
            if name not in known:
                raise typer.BadParameter(_unknown_feature(name, known), param_hint="--feature")
    rows = adoption_rows(ledger, periods, feature)
    if not rows:
        typer.echo("no product usage in the range", err=True)
    out = [
        {"period": r.period, "feature": r.feature, "adopters": r.adopters,
         "active_accounts": r.active_accounts, "adoption_rate": _ratio(r.adoption, fmt)}
        for r in rows
    ]
    emit(out, ADOPTION_COLUMNS, fmt, f"Feature adoption by {grain}", output)


def _known_features() -> list[str]:

    with open_store() as store:
        rows = store.query("SELECT DISTINCT feature FROM product_usage ORDER BY feature")
    return [r["feature"] for r in rows]


def _unknown_feature(name: str, known: set[str]) -> str:
    listed = ", ".join(sorted(known)) or "none yet"
    return f"no usage of feature {name!r}; features with usage: {listed}"


def launch(
    feature: Annotated[str, typer.Argument(metavar="FEATURE", help="Feature slug")],
    released: Annotated[str, typer.Option(
        "--released", metavar="YYYY-MM-DD",
        help="Release day (default: the first day any account used the feature)")] = "",
    days: Annotated[int, typer.Option(
        min=1, max=3660, help="Days since the release to show")] = 30,
    fmt: FormatOption = None,
    output: OutputOption = None,
    as_of: AsOfOption = "",
) -> None:
    """Launch curve: by day k since the release (day 0), the share of the accounts active
    on days 0…k that used the feature on one of them."""
    from pulse_kpi.domain.usage import launch_curve

    fmt = resolve(fmt, output)
    today = _today(as_of)
    span = _span(feature)
    if span is None:
        raise typer.BadParameter(_unknown_feature(feature, set(_known_features())),
                                 param_hint="FEATURE")
    if released:
        try:
            release_day = dt.date.fromisoformat(released)
        except ValueError as exc:
            raise typer.BadParameter(f"{released!r} is not a YYYY-MM-DD day",
                                     param_hint="--released") from exc
    else:
        release_day = span[0]
    if release_day >= today:
        raise typer.BadParameter(f"{release_day} is not before today ({today})",
                                 param_hint="--released")
    last = min(today - dt.timedelta(days=1), release_day + dt.timedelta(days=days - 1))
    from pulse_kpi.storage import KpiStorage

    with open_store() as store:
        ledger = KpiStorage(store).usage_ledger(release_day, last + dt.timedelta(days=1))
    points = launch_curve(ledger, feature, release_day, days, last)
    out = [
        {"days_since_release": p.days_since_release, "day": p.day.isoformat(),
         "adopters": p.adopters, "active_accounts": p.active_accounts,
         "adoption": _ratio(p.adoption, fmt)}
        for p in points
    ]
    emit(out, LAUNCH_COLUMNS, fmt, f"Launch of {feature} (released {release_day})", output)


def churn_risk(
    month: Annotated[str, typer.Option(
        metavar="YYYY-MM", help="Month to check (default: the last complete month)")] = "",
    drop: Annotated[float, typer.Option(
        metavar="SHARE",
        help="Usage drop per day against the previous month beyond which an account is at "
             "risk (0.5 = 50 %)")] = CHURN_RISK_DROP_DEFAULT,
    fmt: FormatOption = None,
    output: OutputOption = None,
    as_of: AsOfOption = "",
) -> None:
    """Paying accounts whose usage per day dropped by more than --drop month over month,
    with their uses before (previous month) and after (the month; the running month to
    yesterday), the drop and their MRR at the month's end: the list CX works from. Largest
    drop first."""
    from pulse_kpi.domain.usage import MrrLookup, UsageLedger, churn_risks
    from pulse_kpi.storage import KpiStorage
    from pulse_shared.periods import period_of

    if not 0 < drop <= 1:
        raise typer.BadParameter(f"{drop:g} is not a share above 0 and at most 1 (0.5 = 50 %)",
                                 param_hint="--drop")
    fmt = resolve(fmt, output)
    today = _today(as_of)
    if month:
        period = parse_period_option(month, "--month", Grain.MONTH)
        if period.start >= today:
            raise typer.BadParameter(f"{month} has no complete day yet (today is {today})",
                                     param_hint="--month")
    else:
        period = period_of(period_of(today, Grain.MONTH).start - dt.timedelta(days=1),
                           Grain.MONTH)
    previous = period_of(period.start - dt.timedelta(days=1), Grain.MONTH)
    with open_store() as store:
        storage = KpiStorage(store)
        ledger = UsageLedger(storage.usage_rows(previous.start, period.end))
        mrr = MrrLookup(storage.mrr_changes(period.end))
    risks = churn_risks(ledger, mrr, period, today, drop)
    if not risks:
        typer.echo(f"no paying account's usage dropped by more than {drop:.0%} in "
                   f"{period.label}", err=True)
    out = [
        {"account_id": r.account_id, "month": r.month, "usage_before": r.usage_before,
         "usage_after": r.usage_after, "drop": _ratio(float(r.drop), fmt),
         "mrr": _fixed2(r.mrr, fmt)}
        for r in risks
    ]
    emit(out, CHURN_RISK_COLUMNS, fmt, f"Churn risk {period.label} (usage drop > {drop:.0%})",
         output)


def register(app: typer.Typer) -> None:
    """Add the product usage commands to ``pulse kpi``."""
    app.command("usage")(usage)
    app.command("adoption")(adoption)
    app.command("launch")(launch)
    app.command("churn-risk")(churn_risk)
