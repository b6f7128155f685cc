"""Cohort retention and cohort economics from the subscription ledger.

One definition for every service: ``pulse kpi cohorts`` (``pulse_kpi.domain.cohorts``
re-exports this module) and the reporting service's cohort section compute with it, each
reading the ledger with its own SQL.

An account's **first paid month** is the month of its first event with MRR > 0 (the ``new``
MRR movement of ``pulse_kpi.domain.mrr``: the first 0 → >0 of an account that never paid),
so a reactivated account stays in its first cohort.
The MRR of an account at the end of a month is the MRR after its last event before the
first day of the next month (UTC days, ordered by time then event id) — the same ledger
reading as ``mrr_report``'s ending MRR.

Cohort dimensions (:class:`CohortBy`):

- ``first_paid_month``: the cohort is the first paid month ``c`` (``YYYY-MM``);
- ``plan``: the plan of the account's profile (ingest kind ``accounts``) in force on the last
  day of its first paid month; for an account without a profile by then, the plan of its
  last *paid* event (MRR > 0) up to that month's end — the plan it paid for at that month's
  end, or the last one it paid for if it churned within that month ("unknown" when the
  events carry no plan either);
- ``segment``: the segment of the account's profile in force on the last day of its first
  paid month ("unknown" without one);
- ``first_touch_channel``: the channel of the account's first touchpoint ("unknown" when it
  has none).

For ``plan``, ``segment`` and ``first_touch_channel`` the accounts of one value started in different
months, so ``months_since`` counts from each account's *own* first paid month.

Only months that have ended by ``as_of`` (the caller's today, UTC) are retention points: the
running month is never one (its end is unknown), so a cohort appears once its first month has
ended. An account is *observed* at ``months_since = k`` when its month ``c + k`` has ended;
each row is over the accounts observed at ``k`` (for ``first_paid_month`` that is the whole
cohort; for the other dimensions later ``k`` see fewer accounts):

- ``logo_retention(k)`` = observed accounts with MRR > 0 at the end of month ``c + k`` ÷
  observed accounts;
- ``mrr_retention(k)`` = their MRR at the end of month ``c + k`` ÷ their MRR at the end of
  month ``c`` (None when that is 0: every account churned within its first month).

Economics by first-paid-month cohort (:func:`cohort_economics`): a month's revenue of an
account is its MRR at the end of the month (no proration: the month's run rate); revenue per
account to date is the cohort's summed monthly revenue over its ended months ÷ cohort size
(gross, before margin); CAC = spend of the cohort month ÷ cohort size (the catalog's CAC of
that month); payback = the first ``k`` whose cumulative revenue per account ≥ CAC.
"""

from __future__ import annotations

import bisect
import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum

from pulse_shared.events import Grain
from pulse_shared.periods import Period, period_of

UNKNOWN = "unknown"
ZERO = Decimal(0)


class CohortBy(StrEnum):
    FIRST_PAID_MONTH = "first_paid_month"
    FIRST_TOUCH_CHANNEL = "first_touch_channel"
    PLAN = "plan"
    SEGMENT = "segment"


#: Account → its profiles as ``(effective_from, {"plan": …, "segment": …})``, in the order
#: they hold (the last one effective on a day is the one in force).
Profiles = Mapping[str, Sequence[tuple[dt.date, Mapping[str, str]]]]


def profile_value(
    profiles: Profiles, account_id: str, day: dt.date, field: str
) -> str | None:
    """``field`` of the account's profile in force on ``day`` ("" counts as absent); None
    without one."""
    value = None
    for effective_from, values in profiles.get(account_id, ()):
        if effective_from > day:
            break
        value = values.get(field) or None
    return value


@dataclass(frozen=True, slots=True)
class LedgerEvent:
    """One subscription event as stored: ``mrr`` is the account's MRR *after* it."""

    event_id: str
    account_id: str
    occurred_at: dt.datetime
    mrr: Decimal
    plan: str = ""


@dataclass(frozen=True, slots=True)
class AccountHistory:
    """One account that has paid: its first paid month and its MRR step function."""

    account_id: str
    first_paid: Period
    plan: str
    days: tuple[dt.date, ...]  # day of each movement, in ledger order
    mrr_after: tuple[Decimal, ...]

    def mrr_at_end(self, month: Period) -> Decimal:
        """MRR after the last event on a day before ``month.end``."""
        index = bisect.bisect_left(self.days, month.end)
        return self.mrr_after[index - 1] if index else ZERO

    def month_end_mrr(self, as_of: dt.date) -> list[Decimal]:
        """MRR at the end of months ``c, c+1, …`` that have ended by ``as_of`` (index = k)."""
        out: list[Decimal] = []
        month = self.first_paid
        while month.end <= as_of:
            out.append(self.mrr_at_end(month))
            month = period_of(month.end, Grain.MONTH)
        return out


def account_histories(events: Iterable[LedgerEvent]) -> list[AccountHistory]:
    """The histories of the accounts that ever paid (never-paying trials are left out).

    Each account's events are in ledger order (time, then event id); its first paid event
    is its first with MRR > 0 — by construction the ``new`` MRR movement.
    """
    by_account: dict[str, list[LedgerEvent]] = defaultdict(list)
    for event in sorted(events, key=lambda e: (e.account_id, e.occurred_at, e.event_id)):
        by_account[event.account_id].append(event)
    out: list[AccountHistory] = []
    for account, ledger in by_account.items():
        first = next((e for e in ledger if e.mrr > 0), None)
        if first is None:
            continue
        first_paid = period_of(first.occurred_at.date(), Grain.MONTH)
        paid_in_first_month = [
            e for e in ledger if e.mrr > 0 and e.occurred_at.date() < first_paid.end
        ]
        out.append(
            AccountHistory(
                account, first_paid, paid_in_first_month[-1].plan or UNKNOWN,
                tuple(e.occurred_at.date() for e in ledger), tuple(e.mrr for e in ledger),
            )
        )
    return out


@dataclass(frozen=True, slots=True)
class CohortRow:
    """One cell of the retention heat-map: a cohort ``months_since`` its first paid month."""

    cohort: str
    months_since: int
    accounts: int  # observed at this months_since (ended month c + k)
    retained_accounts: int  # of them, with MRR > 0 at the end of month c + k
    mrr: Decimal  # their MRR at the end of month c + k
    starting_mrr: Decimal  # their MRR at the end of month c

    @property
    def logo_retention(self) -> Decimal:
        return Decimal(self.retained_accounts) / Decimal(self.accounts)

    @property
    def mrr_retention(self) -> Decimal | None:
        return self.mrr / self.starting_mrr if self.starting_mrr else None


def _selected(
    histories: Iterable[AccountHistory], as_of: dt.date,
    first_month: dt.date | None, last_month: dt.date | None,
) -> list[AccountHistory]:
    """Accounts whose first paid month has ended by ``as_of`` and is in the range."""
    return [
        h for h in histories
        if h.first_paid.end <= as_of
        and (first_month is None or h.first_paid.start >= first_month)
        and (last_month is None or h.first_paid.start <= last_month)
    ]


def _cohort_of(
    history: AccountHistory, by: CohortBy, first_touch: Mapping[str, str],
    profiles: Profiles,
) -> str:
    if by is CohortBy.FIRST_PAID_MONTH:
        return history.first_paid.label
    if by in (CohortBy.PLAN, CohortBy.SEGMENT):
        month_end = history.first_paid.end - dt.timedelta(days=1)
        value = profile_value(profiles, history.account_id, month_end, by.value)
        return value or (history.plan if by is CohortBy.PLAN else UNKNOWN)
    return first_touch.get(history.account_id) or UNKNOWN


def cohort_retention(
    events: Iterable[LedgerEvent],
    as_of: dt.date,
    by: CohortBy = CohortBy.FIRST_PAID_MONTH,
    first_touch: Mapping[str, str] | None = None,
    first_month: dt.date | None = None,
    last_month: dt.date | None = None,
    profiles: Profiles | None = None,
) -> list[CohortRow]:
    """Retention rows ordered by cohort then ``months_since``, over ended months only.

    ``first_touch`` maps account → first-touch channel (``by=first_touch_channel``),
    ``profiles`` account → profile history (``by=plan`` or ``segment``);
    ``first_month``/``last_month`` (first days, inclusive) restrict cohorts by first paid
    month whatever ``by`` is.
    """
    by = CohortBy(by)
    groups: dict[str, list[AccountHistory]] = defaultdict(list)
    for history in _selected(account_histories(events), as_of, first_month, last_month):
        groups[_cohort_of(history, by, first_touch or {}, profiles or {})].append(history)
    rows: list[CohortRow] = []
    for cohort in sorted(groups):
        series = [h.month_end_mrr(as_of) for h in groups[cohort]]  # each non-empty
        for k in range(max(len(s) for s in series)):
            observed = [s for s in series if len(s) > k]
            rows.append(
                CohortRow(
                    cohort, k, len(observed),
                    retained_accounts=sum(1 for s in observed if s[k] > 0),
                    mrr=sum((s[k] for s in observed), ZERO),
                    starting_mrr=sum((s[0] for s in observed), ZERO),
                )
            )
    return rows


@dataclass(frozen=True, slots=True)
class CohortEconomicsRow:
    """LTV to date and CAC payback of one first-paid-month cohort."""

    cohort: str
    accounts: int
    spend: Decimal  # spend of the cohort month
    months_observed: int  # ended months since the first paid month, that one included
    revenue: Decimal  # the cohort's summed month-end MRR over those months
    payback_months: int | None  # first k with cumulative revenue per account ≥ CAC

    @property
    def cac(self) -> Decimal:
        return self.spend / self.accounts

    @property
    def revenue_per_account(self) -> Decimal:
        """Realised gross LTV so far."""
        return self.revenue / self.accounts

    @property
    def ltv_cac(self) -> Decimal | None:
        return self.revenue_per_account / self.cac if self.spend else None


def cohort_economics(
    events: Iterable[LedgerEvent],
    as_of: dt.date,
    spend_by_month: Mapping[dt.date, Decimal],
    first_month: dt.date | None = None,
    last_month: dt.date | None = None,
) -> list[CohortEconomicsRow]:
    """One row per first-paid-month cohort (``spend_by_month``: first day → total spend)."""
    cohorts: dict[dt.date, list[AccountHistory]] = defaultdict(list)
    for history in _selected(account_histories(events), as_of, first_month, last_month):
        cohorts[history.first_paid.start].append(history)
    rows: list[CohortEconomicsRow] = []
    for start in sorted(cohorts):
        members = cohorts[start]
        series = [h.month_end_mrr(as_of) for h in members]  # same length: same first month
        spend = spend_by_month.get(start, ZERO)
        cac = spend / len(members)
        revenue = ZERO
        payback: int | None = None
        for k in range(len(series[0])):
            revenue += sum((s[k] for s in series), ZERO)
            if payback is None and revenue / len(members) >= cac:
                payback = k
        rows.append(CohortEconomicsRow(members[0].first_paid.label, len(members), spend,
                                       len(series[0]), revenue, payback))
    return rows
