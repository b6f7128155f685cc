"""KPI breakdowns by the account's profile: segment, plan, region, industry, employee band.

The catalog lists which KPIs have these dimensions (:data:`pulse_shared.kpi_catalog.ACCOUNT_DIMS`
on the billing KPIs of :data:`~pulse_shared.kpi_catalog.ACCOUNT_DIM_KPIS` and on the trial
KPIs); they are computed for the grains of :data:`~pulse_shared.kpi_catalog.ACCOUNT_DIM_GRAINS`
with the same formulas as the totals (:func:`pulse_kpi.domain.compute.mrr_values`,
:func:`~pulse_kpi.domain.compute.trial_values`), over the accounts of each member:

* a movement (new, expansion, contraction, churn, reactivation), a new customer or a
  churned logo counts in the member of the account's profile **on its day**
  (:class:`pulse_kpi.domain.accounts.ProfileBook`);
* a stock (MRR, paying accounts at a day boundary) counts in the member of the profile
  **on the last day before the boundary**: when a profile change moves a paying account
  to another member, its MRR is transferred on the change's day (a transfer is not a
  movement: new/churned MRR of neither member changes, their MRR at period end does);
* a trial counts in the member of the profile on its start day;
* before its first profile, and without any, an account is in member ``unknown``.

So a segment's ``mrr`` at a period's end is the MRR of the accounts in that segment then,
its ``mrr_new`` the new MRR of accounts that were in it when they started paying, and
``start + net new + transfers = end`` holds for every member.
"""

from __future__ import annotations

import bisect
import dataclasses
import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from pulse_kpi.domain.accounts import AccountFacts, AccountMove, ProfileBook
from pulse_kpi.domain.compute import (
    KpiValue,
    MrrSeries,
    Params,
    compute,
    mrr_values,
    trial_values,
    wanted_periods,
    with_derived,
)
from pulse_kpi.domain.facts import ZERO, AccountTrial, Facts, MrrDay, Scope
from pulse_shared.events import Grain
from pulse_shared.kpi_catalog import (
    ACCOUNT_DIM_GRAINS,
    ACCOUNT_DIM_KPIS,
    ACCOUNT_DIMS,
    BY_NAME,
    unit_of,
)
from pulse_shared.periods import GRAINS, Period, period_of

Key = tuple[Grain, Period, str, str]
Members = frozenset[tuple[str, dt.date, str, str]]
_KINDS = ("new", "expansion", "contraction", "churn", "reactivation")


@dataclass(frozen=True, slots=True)
class Transfer:
    """MRR (and a paying account) moved into (+) or out of (−) a member by a profile change
    taking effect on ``day``."""

    day: dt.date
    mrr: Decimal
    paying: int


class MemberSeries(MrrSeries):
    """The MRR series of one member: its movements plus the transfers of accounts whose
    profile moved them in or out (stocks only; movement sums are the movements')."""

    def __init__(
        self, days: Sequence[MrrDay], opening: Decimal, paying_opening: int,
        transfers: Iterable[Transfer] = (),
    ) -> None:
        super().__init__(days, opening, paying_opening)
        ordered = sorted(transfers, key=lambda t: t.day)
        self._transfer_days = [t.day for t in ordered]
        self._transfer_mrr, self._transfer_paying = [ZERO], [0]
        for t in ordered:
            self._transfer_mrr.append(self._transfer_mrr[-1] + t.mrr)
            self._transfer_paying.append(self._transfer_paying[-1] + t.paying)

    def _transferred(self, day: dt.date) -> int:
        return bisect.bisect_left(self._transfer_days, day)

    def mrr_at(self, day: dt.date) -> Decimal:
        return super().mrr_at(day) + self._transfer_mrr[self._transferred(day)]

    def paying_at(self, day: dt.date) -> int:
        return super().paying_at(day) + self._transfer_paying[self._transferred(day)]


@dataclass
class _Member:
    opening: Decimal = ZERO
    paying: int = 0
    #: day → movement sums by kind, then paying delta, new logos, churned logos
    days: dict[dt.date, dict[str, Decimal | int]] = field(default_factory=dict)
    transfers: list[Transfer] = field(default_factory=list)

    def add(self, move: AccountMove) -> None:
        sums = self.days.setdefault(move.day, {})
        sums[move.kind] = sums.get(move.kind, ZERO) + move.delta
        sums["paying_delta"] = sums.get("paying_delta", 0) + move.paying_delta
        if move.kind == "new":
            sums["new_logos"] = sums.get("new_logos", 0) + 1
        elif move.kind == "churn":
            sums["churned_logos"] = sums.get("churned_logos", 0) + 1

    def merge(self, other: _Member) -> None:
        """Adds ``other``'s opening, paying accounts, day sums and transfers to this one."""
        self.opening += other.opening
        self.paying += other.paying
        for day, other_sums in other.days.items():
            sums = self.days.setdefault(day, {})
            for key, value in other_sums.items():
                sums[key] = sums.get(key, 0) + value
        self.transfers.extend(other.transfers)

    def series(self) -> MemberSeries:
        days = [
            MrrDay(
                day,
                **{k: Decimal(s.get(k, ZERO)) for k in _KINDS},
                paying_delta=int(s.get("paying_delta", 0)),
                new_logos=int(s.get("new_logos", 0)),
                churned_logos=int(s.get("churned_logos", 0)),
            )
            for day, s in self.days.items()
        ]
        return MemberSeries(days, self.opening, self.paying, self.transfers)


def member_series(
    accounts: AccountFacts, book: ProfileBook, dimension: str
) -> dict[str, MemberSeries]:
    """One :class:`MemberSeries` per member of ``dimension`` that holds MRR or movements
    in the range (see the module docstring for who counts where)."""
    return member_series_by_dim(accounts, book, (dimension,))[dimension]


def member_series_by_dim(
    accounts: AccountFacts, book: ProfileBook, dimensions: Sequence[str]
) -> dict[str, dict[str, MemberSeries]]:
    """:func:`member_series` of each of ``dimensions``, in one pass over the accounts.

    Most accounts keep one profile through the range: their opening MRR and movements are
    summed once per distinct profile (the members it gives in every dimension) and those
    sums are then added to each dimension's members, so the per-account work does not
    repeat per dimension. Only accounts whose profile changes in the range are walked day
    by day, with every dimension's current member tracked side by side."""
    moves: dict[str, list[AccountMove]] = defaultdict(list)
    for move in accounts.moves:
        if move.kind in _KINDS:
            moves[move.account_id].append(move)
    by_profile: dict[tuple[str, ...], _Member] = defaultdict(_Member)
    members: dict[str, dict[str, _Member]] = {d: defaultdict(_Member) for d in dimensions}
    eve = accounts.start - dt.timedelta(days=1)
    for account in set(accounts.opening) | set(moves):
        mrr = accounts.opening.get(account, ZERO)
        account_moves = moves.get(account, ())
        if not mrr and not account_moves:
            continue  # (a member only appears where an account holds MRR or moves)
        change_days = book.change_days(account, accounts.start, accounts.end)
        current = book.members_on(account, eve, dimensions)
        if not change_days:
            group = by_profile[tuple(current)]
            group.opening += mrr
            group.paying += int(mrr > 0)
            for move in account_moves:
                group.add(move)
            continue
        if mrr:
            for d, member in zip(dimensions, current, strict=True):
                members[d][member].opening += mrr
                members[d][member].paying += int(mrr > 0)
        # Profile changes first on a day (order 0), then that day's movements (order 1).
        timeline: list[tuple[dt.date, int, int, AccountMove | None]] = [
            (day, 0, 0, None) for day in change_days
        ]
        timeline += [(m.day, 1, i, m) for i, m in enumerate(account_moves)]
        for day, _, _, step in sorted(timeline, key=lambda t: t[:3]):
            if step is None:
                for i, (d, member) in enumerate(
                    zip(dimensions, book.members_on(account, day, dimensions), strict=True)
                ):
                    if member != current[i] and mrr > 0:
                        members[d][current[i]].transfers.append(Transfer(day, -mrr, -1))
                        members[d][member].transfers.append(Transfer(day, mrr, 1))
                    current[i] = member
                continue
            for d, member in zip(dimensions, current, strict=True):
                members[d][member].add(step)
            mrr += step.delta
    for profile, group in by_profile.items():
        for d, member in zip(dimensions, profile, strict=True):
            members[d][member].merge(group)
    return {d: {member: m.series() for member, m in ms.items()} for d, ms in members.items()}


def _known(
    members: Members, dimension: str, periods: dict[Grain, set[Period]]
) -> dict[tuple[Grain, Period], set[str]]:
    out: dict[tuple[Grain, Period], set[str]] = defaultdict(set)
    for grain_name, start, dim, member in members:
        grain = Grain(grain_name)
        if dim == dimension and grain in ACCOUNT_DIM_GRAINS:
            period = period_of(start, grain)
            if period in periods[grain]:
                out[(grain, period)].add(member)
    return out


def segment_values(
    facts: Facts,
    wanted: dict[Grain, set[Period]],
    as_of: dt.date,
    dims: Sequence[str],
    p: Params,
    known_members: Members = frozenset(),
    known_trial_members: Members = frozenset(),
) -> dict[Key, dict[str, float | None]]:
    """Base values (derived KPIs are added by the caller) of the account dimensions among
    ``dims`` for the wanted periods of :data:`ACCOUNT_DIM_GRAINS`. A member is computed in
    every period when it holds MRR or movements in the loaded range, when it has trials in
    the period, or when it had values before (``known_*``: it drops to 0 instead of going
    stale)."""
    account_dims = [d for d in dims if d in ACCOUNT_DIMS]
    if not account_dims or facts.accounts is None:
        return {}
    book = ProfileBook(facts.accounts.profiles)
    periods = {g: set(wanted[g]) if g in ACCOUNT_DIM_GRAINS else set() for g in GRAINS}
    out: dict[Key, dict[str, float | None]] = {}
    series_by_dim = member_series_by_dim(facts.accounts, book, account_dims)
    for dim in account_dims:
        kpis = {k for k in ACCOUNT_DIM_KPIS if dim in BY_NAME[k].dimensions}
        series = series_by_dim[dim]
        known = _known(known_members, dim, periods)
        for grain in ACCOUNT_DIM_GRAINS:
            for period in periods[grain]:
                for member in set(series) | known.get((grain, period), set()):
                    s = series.get(member) or MemberSeries([], ZERO, 0)
                    values = mrr_values(s, period, ZERO, p)
                    out[(grain, period, dim, member)] = {
                        k: v for k, v in values.items() if k in kpis
                    }
        trials: list[AccountTrial] = [
            dataclasses.replace(t, channel=book.member(t.account_id, t.started_at.date(), dim))
            for t in facts.trials
        ]
        # trial_values breaks trials down by their ``channel``: here it holds the member.
        trial_known = frozenset(
            (g, start, "channel", member)
            for g, start, d, member in known_trial_members if d == dim
        )
        for (grain, period, _, member), values in trial_values(
            trials, periods, as_of, ("channel",), trial_known
        ).items():
            out.setdefault((grain, period, dim, member), {}).update(values)
    return out


def account_kpis(
    facts: Facts, scope: Scope, as_of: dt.date, p: Params
) -> list[KpiValue]:
    """The KPI values of the account dimensions in ``scope`` (derived KPIs included)."""
    out: list[KpiValue] = []
    for (grain, period, dim, member), values in segment_values(
        facts, wanted_periods(scope), as_of, scope.dimensions, p, scope.known_members,
        scope.known_trial_members,
    ).items():
        for kpi, v in with_derived(values, grain, dim).items():
            out.append(KpiValue(kpi, grain, period.label, period.start, dim, member, v,
                                unit_of(kpi)))
    return out


def compute_with_accounts(
    facts: Facts, scope: Scope, as_of: dt.date, p: Params
) -> list[KpiValue]:
    """:func:`pulse_kpi.domain.compute.compute` plus the breakdowns by the account's
    profile (what the KPI service computes for a scope)."""
    return compute(facts, scope, as_of, p) + account_kpis(facts, scope, as_of, p)
