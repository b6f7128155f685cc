"""Account profiles over time and the as-of-date lookup (pure: no I/O, no clock).

An account's profile (ingest kind ``accounts``, :class:`pulse_shared.events.AccountProfile`)
holds from its ``effective_from`` day until the account's next profile. KPI breakdowns by
segment, plan, region, industry and employee band ask "which member was this account in on
that day?": :func:`profile_as_of` answers for one account's history, :class:`ProfileBook`
for every account. Before an account's first profile, and for an account without any, the
member is :data:`UNKNOWN` — such accounts are counted there, never dropped.
"""

from __future__ import annotations

import bisect
import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from pulse_shared.kpi_catalog import ACCOUNT_DIMS

UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class ProfileRow:
    """One stored profile of one account (``account_profiles``, deduplicated)."""

    account_id: str
    effective_from: dt.date
    plan: str = ""
    segment: str = ""
    industry: str = ""
    region: str = ""
    employee_band: str = ""
    acquisition_channel: str | None = None

    def member(self, dimension: str) -> str:
        """The profile's value for a breakdown dimension (:data:`ACCOUNT_DIMS`); an empty
        value (a CRM without regions, say) is :data:`UNKNOWN`."""
        if dimension not in ACCOUNT_DIMS:
            raise ValueError(f"{dimension!r} is not an account dimension")
        value: str = getattr(self, dimension)
        return value or UNKNOWN


@dataclass(frozen=True, slots=True)
class AccountMove:
    """One MRR movement of one account (``kpi_mrr_movements``), signed like the catalog."""

    account_id: str
    day: dt.date
    kind: str  # new, expansion, contraction, churn, reactivation
    delta: Decimal
    paying_delta: int


@dataclass(frozen=True)
class AccountFacts:
    """What the account breakdowns need for the days ``[start, end)`` of a recompute."""

    start: dt.date
    end: dt.date
    #: Each account's MRR before ``start`` (accounts at 0 may be absent).
    opening: Mapping[str, Decimal] = field(default_factory=dict)
    #: Movements in the range, each account's in ledger order.
    moves: Sequence[AccountMove] = ()
    #: Every profile effective before the range's end, each account's in the order they
    #: hold (effective_from, then ingestion: a later row of the same day is a correction).
    profiles: Sequence[ProfileRow] = ()


def profile_as_of(history: Sequence[ProfileRow], day: dt.date) -> ProfileRow | None:
    """The profile in force on ``day`` in one account's ``history`` (sorted by
    ``effective_from``; of several rows of one day the last): the last one effective on
    or before ``day``, None before the first."""
    index = bisect.bisect_right([p.effective_from for p in history], day)
    return history[index - 1] if index else None


class ProfileBook:
    """Every account's profile history, for as-of-date lookups."""

    def __init__(self, profiles: Iterable[ProfileRow]) -> None:
        histories: dict[str, list[ProfileRow]] = defaultdict(list)
        for row in profiles:
            histories[row.account_id].append(row)
        self._histories: dict[str, list[ProfileRow]] = {}
        self._days: dict[str, list[dt.date]] = {}
        for account, rows in histories.items():
            ordered = sorted(rows, key=lambda p: p.effective_from)  # stable: input order ties
            self._histories[account] = ordered
            self._days[account] = [p.effective_from for p in ordered]

    def as_of(self, account_id: str, day: dt.date) -> ProfileRow | None:
        days = self._days.get(account_id)
        if not days:
            return None
        index = bisect.bisect_right(days, day)
        return self._histories[account_id][index - 1] if index else None

    def member(self, account_id: str, day: dt.date, dimension: str) -> str:
        """The account's member of ``dimension`` on ``day`` (:data:`UNKNOWN` without a
        profile then)."""
        profile = self.as_of(account_id, day)
        return UNKNOWN if profile is None else profile.member(dimension)

    def members_on(
        self, account_id: str, day: dt.date, dimensions: Sequence[str]
    ) -> list[str]:
        """:meth:`member` of each of ``dimensions``, from one as-of lookup."""
        profile = self.as_of(account_id, day)
        if profile is None:
            return [UNKNOWN] * len(dimensions)
        return [profile.member(d) for d in dimensions]

    def change_days(self, account_id: str, start: dt.date, end: dt.date) -> list[dt.date]:
        """Days in ``[start, end)`` on which a profile of the account takes effect."""
        return sorted({d for d in self._days.get(account_id, ()) if start <= d < end})

    def members(self, dimension: str) -> set[str]:
        """Every value ``dimension`` takes in any stored profile."""
        return {p.member(dimension) for rows in self._histories.values() for p in rows}


def cohort_profiles(
    profiles: Iterable[ProfileRow],
) -> dict[str, list[tuple[dt.date, dict[str, str]]]]:
    """Profiles as :data:`pulse_shared.cohorts.Profiles` (account → (effective_from, values)
    in the order they hold), for ``pulse kpi cohorts --by plan|segment``."""
    out: dict[str, list[tuple[dt.date, dict[str, str]]]] = defaultdict(list)
    for p in profiles:
        out[p.account_id].append(
            (p.effective_from, {d: getattr(p, d) for d in ACCOUNT_DIMS})
        )
    return {account: sorted(rows, key=lambda r: r[0]) for account, rows in out.items()}
