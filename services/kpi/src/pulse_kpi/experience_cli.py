"""``pulse kpi nps|tickets|nps-churn``: customer experience read from ``feedback_responses``,
``support_tickets`` and the MRR movements.

Every number comes from the raw answers and tickets through the same pure functions as the
KPI service's (:mod:`pulse_kpi.domain.experience`, :mod:`pulse_shared.experience`), so a
table and the KPI of the same period agree. Registered on the ``pulse kpi`` app by
:func:`register` (cli.py); service code is imported inside the commands (start-up time).
The few helpers (store, period parsing, rounding, clock) are this module's own: importing
them from ``pulse_kpi.cli``, which imports this module, would make an import cycle.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Annotated

import typer

from pulse_kpi import cli_support
from pulse_kpi.cli_support import (
    FormatOption,
    OutputOption,
    fixed,
    open_store,
    parse_day_option,
    periods_option,
)
from pulse_shared.cli_output import emit, resolve
from pulse_shared.events import Grain

if TYPE_CHECKING:
    from pulse_shared.periods import Period

FromOption = Annotated[str, typer.Option(
    "--from", metavar="PERIOD", help="First period, e.g. 2026-01 (default: the first day "
    "with data)")]
ToOption = Annotated[str, typer.Option(
    "--to", metavar="PERIOD", help="Last period (inclusive), e.g. 2026-10 (default: the last "
    "day with data)")]
ByOption = Annotated[Grain, typer.Option("--by", help="day, week, month or quarter")]
AsOfOption = Annotated[str, typer.Option(
    "--as-of", metavar="DAY", help="Split churned and retained accounts as of this day "
    "(YYYY-MM-DD, UTC; answers and billing changes before it count; default: today)")]

NPS_COLUMNS = ("period", "nps_responses", "promoters", "passives", "detractors", "nps",
               "csat_responses", "csat")
TICKET_COLUMNS = ("period", "tickets_created", "tickets_resolved", "with_first_response",
                  "first_response_hours", "paying_accounts", "tickets_per_account")
CHURN_COLUMNS = ("group", "accounts", "promoters", "passives", "detractors", "nps")
RATIO_DECIMALS = 4


def _periods(start: str, end: str, grain: Grain, tickets: bool) -> list[Period]:
    """The periods of --from/--to (default: the first and last days with answers, or with
    tickets created)."""
    from pulse_kpi.storage import KpiStorage

    span = None
    if not (start and end):
        with open_store() as store:
            span = KpiStorage(store).experience_span(tickets)
    return periods_option(start, end, grain, span)


def nps(
    start: FromOption = "",
    end: ToOption = "",
    by: ByOption = Grain.MONTH,
    fmt: FormatOption = None,
    output: OutputOption = None,
) -> None:
    """NPS and CSAT per period: NPS answers with promoters (9–10), passives (7–8) and
    detractors (0–6) and the NPS in points (−100…100); CSAT answers and the share of 4–5
    (the KPIs nps, nps_responses and csat)."""
    from pulse_kpi.domain.experience import ExperienceLedger
    from pulse_kpi.storage import KpiStorage
    from pulse_shared.events import Survey
    from pulse_shared.experience import csat_share, nps_counts

    fmt = resolve(fmt, output)
    periods = _periods(start, end, by, tickets=False)
    feedback = []
    if periods:
        with open_store() as store:
            feedback = KpiStorage(store).feedback_rows(periods[0].start, periods[-1].end)
    ledger = ExperienceLedger(feedback, ())
    out = []
    for period in periods:
        answers = ledger.answers_in(period)
        counts = nps_counts(a.score for a in answers if a.survey == Survey.NPS.value)
        csat = [a.score for a in answers if a.survey == Survey.CSAT.value]
        out.append({
            "period": period.label, "nps_responses": counts.responses,
            "promoters": counts.promoters, "passives": counts.passives,
            "detractors": counts.detractors, "nps": fixed(counts.nps, fmt, 1),
            "csat_responses": len(csat), "csat": fixed(csat_share(csat), fmt, RATIO_DECIMALS),
        })
    if not feedback:
        typer.echo("no survey answers in the range (ingest kind feedback)", err=True)
    emit(out, NPS_COLUMNS, fmt, f"NPS and CSAT by {by}", output)


def tickets(
    start: FromOption = "",
    end: ToOption = "",
    by: ByOption = Grain.MONTH,
    fmt: FormatOption = None,
    output: OutputOption = None,
) -> None:
    """Support tickets per period: created, resolved (latest state solved/closed in the
    period), the median hours to first response of the tickets created in the period that
    have one, paying accounts at the period's end and tickets per paying account."""
    from pulse_kpi.domain.experience import ExperienceLedger, paying_accounts
    from pulse_kpi.domain.usage import MrrLookup
    from pulse_kpi.storage import KpiStorage
    from pulse_shared.experience import median

    fmt = resolve(fmt, output)
    periods = _periods(start, end, by, tickets=True)
    rows, changes = [], []
    if periods:
        with open_store() as store:
            storage = KpiStorage(store)
            rows = storage.ticket_rows(periods[0].start, periods[-1].end)
            changes = storage.mrr_changes(periods[-1].end)
    ledger = ExperienceLedger((), rows)
    mrr = MrrLookup(changes)
    accounts = sorted({c.account_id for c in changes})
    today = cli_support.clock().date()
    out = []
    for period in periods:
        created = ledger.created_in(period)
        hours = [h for t in created if (h := t.first_response_hours) is not None]
        paying = paying_accounts(mrr, accounts, min(period.end, max(today, period.start)))
        out.append({
            "period": period.label, "tickets_created": len(created),
            "tickets_resolved": ledger.resolved_in(period), "with_first_response": len(hours),
            "first_response_hours": fixed(median(hours), fmt, 2),
            "paying_accounts": paying,
            "tickets_per_account": fixed(len(created) / paying if paying else None, fmt,
                                          RATIO_DECIMALS),
        })
    if not rows:
        typer.echo("no support tickets in the range (ingest kind tickets)", err=True)
    emit(out, TICKET_COLUMNS, fmt, f"Support tickets by {by}", output)


def nps_churn(
    as_of: AsOfOption = "",
    since: Annotated[str, typer.Option(
        "--since", metavar="DAY", help="Only accounts that churned on or after this day "
        "(YYYY-MM-DD; default: every churned account)")] = "",
    fmt: FormatOption = None,
    output: OutputOption = None,
) -> None:
    """NPS of churned vs retained accounts: each account's latest NPS answer before it
    churned (its MRR went to 0 and stayed there) or, for accounts paying at --as-of, its
    latest answer before --as-of. Accounts that never paid or answered only after churning
    are not counted."""
    from pulse_kpi.storage import KpiStorage
    from pulse_shared.experience import nps_by_churn

    fmt = resolve(fmt, output)
    day = parse_day_option(as_of, "--as-of")
    moment = dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)
    churned_since = None
    if since:
        first = parse_day_option(since, "--since")
        churned_since = dt.datetime(first.year, first.month, first.day, tzinfo=dt.UTC)
    with open_store() as store:
        storage = KpiStorage(store)
        split = nps_by_churn(storage.nps_answers(moment), storage.mrr_points(moment), moment,
                             churned_since)
    out = [
        {"group": group, "accounts": counts.responses, "promoters": counts.promoters,
         "passives": counts.passives, "detractors": counts.detractors,
         "nps": fixed(counts.nps, fmt, 1)}
        for group, counts in (("churned", split.churned), ("retained", split.retained))
    ]
    if not split.accounts:
        typer.echo("no paying or churned account has answered an NPS survey before "
                   f"{day}", err=True)
    emit(out, CHURN_COLUMNS, fmt, f"NPS of churned vs retained accounts (as of {day})", output)


def register(app: typer.Typer) -> None:
    """Add the customer experience commands to ``pulse kpi``."""
    app.command("nps")(nps)
    app.command("tickets")(tickets)
    app.command("nps-churn")(nps_churn)
