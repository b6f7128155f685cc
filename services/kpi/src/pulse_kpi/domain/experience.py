"""Customer experience KPIs (pure): NPS, CSAT, ticket volume, first response time.

Input is the survey answers (:class:`FeedbackRow`, ``feedback_responses``), the tickets'
latest states (:class:`TicketRow`, ``support_tickets`` FINAL) and, for tickets per account,
every account's MRR over time (:class:`pulse_kpi.domain.usage.MrrChange`). Definitions (the
catalog's ``pulse_shared.kpi_catalog._experience`` says the same for people):

* ``nps`` (points, −100…100) and ``nps_responses`` over the NPS answers given in the
  period; ``csat`` the share of the period's CSAT answers that are 4–5 (None without any);
* ``tickets_created``: tickets created in the period; ``tickets_resolved``: tickets whose
  latest state is solved/closed with ``resolved_at`` in the period;
* ``first_response_hours``: median hours from creation to first response of the tickets
  created in the period that have one (None when none has);
* ``tickets_per_account``: tickets created ÷ accounts paying (MRR > 0) at the period's end
  (the running period: at the start of ``as_of``); None without paying accounts.

Totals only (dimension ``all``), every grain, computed in the totals pass.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from pulse_kpi.domain.usage import MrrChange, MrrLookup
from pulse_shared.events import Grain, Survey
from pulse_shared.experience import csat_share, median, nps_counts
from pulse_shared.periods import GRAINS, Period, period_of


@dataclass(frozen=True, slots=True)
class FeedbackRow:
    account_id: str
    survey: str
    score: int
    responded_at: dt.datetime


@dataclass(frozen=True, slots=True)
class TicketRow:
    """A ticket's latest state."""

    ticket_id: str
    account_id: str
    created_at: dt.datetime
    first_response_at: dt.datetime | None
    resolved_at: dt.datetime | None
    status: str
    channel: str

    @property
    def resolved(self) -> bool:
        return self.status in ("solved", "closed") and self.resolved_at is not None

    @property
    def first_response_hours(self) -> float | None:
        if self.first_response_at is None:
            return None
        return (self.first_response_at - self.created_at).total_seconds() / 3600


def experience_periods(days: Iterable[dt.date]) -> dict[Grain, set[Period]]:
    """Every period of every grain containing one of ``days``."""
    wanted: dict[Grain, set[Period]] = {g: set() for g in GRAINS}
    for day in days:
        for grain in GRAINS:
            wanted[grain].add(period_of(day, grain))
    return wanted


def experience_range(days: Iterable[dt.date]) -> tuple[dt.date, dt.date] | None:
    """Half-open day range of facts needed for :func:`experience_values` of ``days``."""
    periods = [p for ps in experience_periods(days).values() for p in ps]
    if not periods:
        return None
    return min(p.start for p in periods), max(p.end for p in periods)


def paying_accounts(mrr: MrrLookup, accounts: Iterable[str], day: dt.date) -> int:
    """Accounts with MRR > 0 at the start of ``day``."""
    return sum(1 for a in accounts if mrr.at_start_of(a, day) > 0)


class ExperienceLedger:
    """Answers and tickets indexed by day, for period queries."""

    def __init__(self, feedback: Iterable[FeedbackRow], tickets: Iterable[TicketRow]) -> None:
        self.answers: dict[dt.date, list[FeedbackRow]] = {}
        self.created: dict[dt.date, list[TicketRow]] = {}
        self.resolved: dict[dt.date, int] = {}
        for f in feedback:
            self.answers.setdefault(f.responded_at.date(), []).append(f)
        for t in tickets:
            self.created.setdefault(t.created_at.date(), []).append(t)
            if t.resolved and t.resolved_at is not None:
                day = t.resolved_at.date()
                self.resolved[day] = self.resolved.get(day, 0) + 1

    def __bool__(self) -> bool:
        return bool(self.answers or self.created)

    @staticmethod
    def _days(period: Period) -> Iterable[dt.date]:
        day = period.start
        while day < period.end:
            yield day
            day += dt.timedelta(days=1)

    def answers_in(self, period: Period) -> list[FeedbackRow]:
        return [f for d in self._days(period) for f in self.answers.get(d, ())]

    def created_in(self, period: Period) -> list[TicketRow]:
        return [t for d in self._days(period) for t in self.created.get(d, ())]

    def resolved_in(self, period: Period) -> int:
        return sum(self.resolved.get(d, 0) for d in self._days(period))

    def period_values(self, period: Period, paying: int | None) -> dict[str, float | None]:
        """The experience KPIs of one period (``paying``: accounts paying at its end)."""
        answers = self.answers_in(period)
        created = self.created_in(period)
        nps = nps_counts(f.score for f in answers if f.survey == Survey.NPS.value)
        csat = csat_share(f.score for f in answers if f.survey == Survey.CSAT.value)
        hours = [h for t in created if (h := t.first_response_hours) is not None]
        return {
            "nps": nps.nps,
            "nps_responses": float(nps.responses),
            "csat": csat,
            "tickets_created": float(len(created)),
            "tickets_resolved": float(self.resolved_in(period)),
            "first_response_hours": median(hours),
            "tickets_per_account": (round(len(created) / paying, 9) if paying else None),
        }


def experience_values(
    feedback: Sequence[FeedbackRow], tickets: Sequence[TicketRow],
    mrr_changes: Sequence[MrrChange], days: Iterable[dt.date], as_of: dt.date,
) -> dict[tuple[Grain, Period, str, str], dict[str, float | None]]:
    """Every experience KPI of the periods containing ``days`` (totals). The rows must
    cover :func:`experience_range`; nothing is emitted without any answer or ticket there
    (a deployment without customer experience data gets no rows of zeros)."""
    ledger = ExperienceLedger(feedback, tickets)
    if not ledger:
        return {}
    mrr = MrrLookup(mrr_changes)
    accounts = sorted({c.account_id for c in mrr_changes})
    out: dict[tuple[Grain, Period, str, str], dict[str, float | None]] = {}
    for grain, periods in experience_periods(days).items():
        for period in sorted(periods, key=lambda p: p.start):
            if period.start > as_of:
                continue  # a period still to come (a planned or future-dated row)
            paying = paying_accounts(mrr, accounts, min(period.end, as_of))
            out[(grain, period, "all", "")] = ledger.period_values(period, paying)
    return out
