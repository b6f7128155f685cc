"""The "Customer experience" insight section (monthly, quarterly, annual reports): NPS and
CSAT trend, ticket volume and first response time, and the NPS of churned vs retained
accounts.

Pure: no I/O, no clock. Definitions are the KPI catalog's (family experience), computed
from the raw answers and tickets with the same shared functions as the KPI service
(:mod:`pulse_shared.experience`), so any period (a year too) is exact:

* NPS (points, −100…100): % promoters (9–10) − % detractors (0–6) of the answers given in
  the period; CSAT: share of the CSAT answers that are 4–5;
* tickets created / resolved (latest state solved or closed) in the period; first response
  time: median hours to first response of the tickets created in the period that have one;
* NPS of churned vs retained accounts: each account's latest NPS answer before it churned
  (accounts churned in the trend window, the 12 months ending with the period) or, for
  accounts paying at the period's end, before that end.

No answers and no tickets at all: the section says so (``unavailable``); a number it cannot
compute is n/a, never 0.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from pulse_reporting.domain.formatting import fmt_value
from pulse_reporting.domain.model import (
    Fmt,
    InsightChart,
    InsightColumn,
    InsightSection,
    InsightSeries,
    InsightTable,
)
from pulse_reporting.domain.periods import Period, trend_months
from pulse_shared.experience import (
    MrrPoint,
    NpsAnswer,
    NpsCounts,
    csat_share,
    median,
    nps_by_churn,
    nps_counts,
)
from pulse_shared.periods import Period as SharedPeriod

KEY = "cx"
TITLE = "Customer experience"
KPIS: tuple[str, ...] = ("nps", "nps_responses", "csat", "tickets_created",
                         "tickets_resolved", "first_response_hours")


@dataclass(frozen=True)
class Answer:
    account_id: str
    survey: str  # nps | csat
    score: int
    responded_at: dt.datetime


@dataclass(frozen=True)
class Ticket:
    """A ticket's latest state."""

    created_at: dt.datetime
    first_response_at: dt.datetime | None
    resolved_at: dt.datetime | None  # set only when its latest state is solved or closed


@dataclass(frozen=True)
class CxInputs:
    """What the section reads (ReportingStorage.cx_inputs)."""

    period: Period
    previous: Period
    months: list[SharedPeriod]  # the trend: 12 months ending with the period's last month
    #: answers and tickets created or resolved from the window's start (the first trend
    #: month or the previous period, whichever is earlier) to the period's end
    answers: list[Answer] = field(default_factory=list)
    tickets: list[Ticket] = field(default_factory=list)
    #: every NPS answer and MRR change before the period's end (churned vs retained)
    nps_history: list[NpsAnswer] = field(default_factory=list)
    mrr: list[MrrPoint] = field(default_factory=list)




def window_start(period: Period) -> dt.date:
    return min(trend_months(period)[0].start, period.previous().start)


@dataclass(frozen=True)
class Numbers:
    """The section's numbers of one period."""

    nps: NpsCounts
    csat_answers: int
    csat: float | None
    created: int
    resolved: int
    responded: int
    first_response_hours: float | None


def _within(moment: dt.datetime | None, start: dt.date, end: dt.date) -> bool:
    return moment is not None and start <= moment.date() < end


def numbers(inputs: CxInputs, start: dt.date, end: dt.date) -> Numbers:
    """The numbers of the days ``[start, end)``."""
    answers = [a for a in inputs.answers if _within(a.responded_at, start, end)]
    csat = [a.score for a in answers if a.survey == "csat"]
    created = [t for t in inputs.tickets if _within(t.created_at, start, end)]
    hours = [(t.first_response_at - t.created_at).total_seconds() / 3600
             for t in created if t.first_response_at is not None]
    return Numbers(
        nps=nps_counts(a.score for a in answers if a.survey == "nps"),
        csat_answers=len(csat), csat=csat_share(csat), created=len(created),
        resolved=sum(1 for t in inputs.tickets if _within(t.resolved_at, start, end)),
        responded=len(hours), first_response_hours=median(hours),
    )


def _points(value: float | None) -> str:
    return fmt_value(value, Fmt.POINTS)


def _pct(value: float | None) -> str:
    return fmt_value(value, Fmt.PERCENT)


def _hours(value: float | None) -> str:
    return fmt_value(value, Fmt.HOURS)


def _diff_points(current: float | None, previous: float | None) -> str:
    if current is None or previous is None:
        return "n/a"
    return f"{current - previous:+.0f} points"


def _diff_pp(current: float | None, previous: float | None) -> str:
    if current is None or previous is None:
        return "n/a"
    return f"{(current - previous) * 100:+.1f} pp"


def cx_section(inputs: CxInputs, period: Period, now: dt.datetime) -> InsightSection | None:
    if not inputs.answers and not inputs.tickets and not inputs.nps_history:
        return InsightSection(
            key=KEY, title=TITLE, kpis=list(KPIS),
            unavailable="No survey answers or support tickets yet (ingest kinds feedback: "
            "account, survey nps|csat, score, responded_at; tickets: ticket, account, "
            "created, first response, resolved, status, channel).")
    current = numbers(inputs, period.start, period.end)
    before = numbers(inputs, inputs.previous.start, inputs.previous.end)
    label, previous = period.label, inputs.previous.label
    notes = [
        "NPS: % promoters (9–10) − % detractors (0–6) of the answers given in the period, in "
        "points (−100…100). CSAT: share of the answers 4–5 on 1–5. First response time: "
        "median hours to the first agent response of the tickets created in the period that "
        "have one. Survey comments are not stored.",
    ]
    today = now.astimezone(dt.UTC).date()
    if period.end > today:
        notes.append(f"{label} is still running: numbers to {today - dt.timedelta(days=1)}.")
    loaded = [a.responded_at for a in inputs.answers] + [t.created_at for t in inputs.tickets]
    first_day = min(loaded).date() if loaded else None
    if first_day is not None and first_day > period.start:
        notes.append(f"Survey answers and tickets start on {first_day}: {label} is only "
                     "partly covered.")
    statements = [
        f"NPS {label}: {_points(current.nps.nps)} from {current.nps.responses} answers "
        f"({current.nps.promoters} promoters, {current.nps.passives} passives, "
        f"{current.nps.detractors} detractors); {previous}: {_points(before.nps.nps)} from "
        f"{before.nps.responses} answers ({_diff_points(current.nps.nps, before.nps.nps)}).",
        f"CSAT {label}: {_pct(current.csat)} satisfied of {current.csat_answers} answers; "
        f"{previous}: {_pct(before.csat)} of {before.csat_answers} "
        f"({_diff_pp(current.csat, before.csat)}).",
        f"Support tickets {label}: {current.created} created, {current.resolved} resolved, "
        f"median first response {_hours(current.first_response_hours)} over "
        f"{current.responded} answered tickets; {previous}: {before.created} created, "
        f"{before.resolved} resolved, median first response "
        f"{_hours(before.first_response_hours)}.",
    ]

    # Trend: NPS and CSAT (as % satisfied, on the same −100…100 axis) by month.
    monthly = [(m.label, numbers(inputs, m.start, m.end)) for m in inputs.months]
    charts = [InsightChart(
        name="cx_nps_csat", title="NPS (points) and CSAT (% satisfied) by month", kind="line",
        labels=[m for m, _ in monthly],
        series=[
            InsightSeries(name="NPS", values=[n.nps.nps for _, n in monthly]),
            InsightSeries(name="CSAT %", values=[None if n.csat is None else n.csat * 100
                                                 for _, n in monthly]),
        ],
        fmt=Fmt.COUNT)]
    tables = [InsightTable(
        name="cx_tickets", title="Support tickets and first response time by month",
        columns=[InsightColumn(key="month", title="Month"),
                 InsightColumn(key="created", title="Created", fmt=Fmt.COUNT),
                 InsightColumn(key="resolved", title="Resolved", fmt=Fmt.COUNT),
                 InsightColumn(key="first_response", title="Median first response",
                               fmt=Fmt.HOURS),
                 InsightColumn(key="nps", title="NPS", fmt=Fmt.POINTS),
                 InsightColumn(key="nps_answers", title="NPS answers", fmt=Fmt.COUNT)],
        rows=[[m, n.created, n.resolved, n.first_response_hours, n.nps.nps, n.nps.responses]
              for m, n in monthly],
    )]

    # NPS of churned vs retained accounts.
    end = dt.datetime(period.end.year, period.end.month, period.end.day, tzinfo=dt.UTC)
    as_of = min(end, now.astimezone(dt.UTC))
    first = inputs.months[0].start
    since = dt.datetime(first.year, first.month, first.day, tzinfo=dt.UTC)
    split = nps_by_churn(inputs.nps_history, inputs.mrr, as_of, churned_since=since)
    window = f"{inputs.months[0].label} … {inputs.months[-1].label}"
    churned, retained = split.churned, split.retained
    if churned.nps is not None and retained.nps is not None:
        gap = retained.nps - churned.nps
        statements.append(
            f"NPS of churned vs retained accounts: accounts that churned in {window} had an "
            f"NPS of {_points(churned.nps)} ({churned.responses} accounts, their last answer "
            f"before churning) against {_points(retained.nps)} for the accounts still paying "
            f"at the end of {label} ({retained.responses} accounts, their latest answer): "
            f"{gap:+.0f} points {'higher' if gap >= 0 else 'lower'} for retained accounts.")
    else:
        statements.append(
            f"NPS of churned vs retained accounts: n/a ({churned.responses} churned accounts "
            f"in {window} and {retained.responses} paying accounts with an NPS answer).")
    tables.append(InsightTable(
        name="cx_nps_churn", title=f"NPS of churned vs retained accounts ({window})",
        columns=[InsightColumn(key="group", title="Accounts"),
                 InsightColumn(key="accounts", title="With an answer", fmt=Fmt.COUNT),
                 InsightColumn(key="promoters", title="Promoters", fmt=Fmt.COUNT),
                 InsightColumn(key="passives", title="Passives", fmt=Fmt.COUNT),
                 InsightColumn(key="detractors", title="Detractors", fmt=Fmt.COUNT),
                 InsightColumn(key="nps", title="NPS", fmt=Fmt.POINTS)],
        rows=[[name, c.responses, c.promoters, c.passives, c.detractors, c.nps]
              for name, c in (("churned", churned), ("retained", retained))],
    ))
    notes.append(
        "Churned vs retained: an account's latest NPS answer before it churned (MRR to 0, "
        f"churned in {window}) or, still paying at the end of {label}, before that end; "
        "accounts without such an answer are not counted.")
    return InsightSection(key=KEY, title=TITLE, statements=statements, charts=charts,
                          tables=tables, notes=notes, kpis=list(KPIS))

