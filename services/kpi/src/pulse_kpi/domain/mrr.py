"""MRR movements, event by event, with ChartMogul's definitions.

Each subscription event states the account's MRR *after* the event. Comparing it with the
MRR before (the previous event of the same account, ordered by time then event id):

- new: 0 → >0 and the account never paid before;
- reactivation: 0 → >0 after having paid before;
- expansion: increase while paying; contraction: decrease, still paying;
- churn: >0 → 0.

``delta`` is signed (churn and contraction are negative), so the sum of an account's deltas
is its current MRR and net new MRR is the sum of all movements.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum

from pulse_kpi.domain.facts import ZERO, MrrDay


class MovementKind(StrEnum):
    NEW = "new"
    EXPANSION = "expansion"
    CONTRACTION = "contraction"
    CHURN = "churn"
    REACTIVATION = "reactivation"
    NONE = "none"


@dataclass(frozen=True, slots=True)
class MrrEvent:
    event_id: str
    account_id: str
    occurred_at: dt.datetime
    mrr: Decimal


@dataclass(frozen=True, slots=True)
class MrrMovement:
    event_id: str
    account_id: str
    occurred_at: dt.datetime
    kind: MovementKind
    mrr_before: Decimal
    mrr_after: Decimal

    @property
    def delta(self) -> Decimal:
        return self.mrr_after - self.mrr_before

    @property
    def paying_delta(self) -> int:
        """+1 when the account starts paying, -1 when it stops, else 0."""
        return int(self.mrr_after > 0) - int(self.mrr_before > 0)


def classify(before: Decimal, after: Decimal, paid_before: bool) -> MovementKind:
    if before == after:
        return MovementKind.NONE
    if before == 0:
        return MovementKind.REACTIVATION if paid_before else MovementKind.NEW
    if after == 0:
        return MovementKind.CHURN
    return MovementKind.EXPANSION if after > before else MovementKind.CONTRACTION


def movements(events: Iterable[MrrEvent]) -> list[MrrMovement]:
    """One movement per event (kind ``none`` when MRR did not change), any account mix."""
    out: list[MrrMovement] = []
    current: dict[str, Decimal] = {}
    paid: set[str] = set()
    for event in sorted(events, key=lambda e: (e.account_id, e.occurred_at, e.event_id)):
        before = current.get(event.account_id, ZERO)
        kind = classify(before, event.mrr, event.account_id in paid)
        out.append(
            MrrMovement(
                event.event_id, event.account_id, event.occurred_at, kind, before, event.mrr
            )
        )
        current[event.account_id] = event.mrr
        if event.mrr > 0:
            paid.add(event.account_id)
    return out


@dataclass(frozen=True, slots=True)
class MrrReportRow:
    """One row of ``pulse kpi mrr``: movements of a period and MRR at its end."""

    period: str
    new: Decimal
    expansion: Decimal
    contraction: Decimal
    churn: Decimal
    reactivation: Decimal
    ending_mrr: Decimal

    @property
    def net_new(self) -> Decimal:
        return self.new + self.expansion + self.contraction + self.churn + self.reactivation


def mrr_report(
    moves: Iterable[MrrMovement], periods: Iterable[tuple[str, dt.date, dt.date]]
) -> list[MrrReportRow]:
    """Movements per ``(label, start, end)`` period (days, end exclusive) and ending MRR."""
    ordered = sorted(moves, key=lambda m: m.occurred_at)
    rows: list[MrrReportRow] = []
    for label, start, end in periods:
        sums = {kind: ZERO for kind in MovementKind}
        ending = ZERO
        for m in ordered:
            day = m.occurred_at.date()
            if day >= end:
                break
            ending += m.delta
            if day >= start:
                sums[m.kind] += m.delta
        rows.append(
            MrrReportRow(
                label, sums[MovementKind.NEW], sums[MovementKind.EXPANSION],
                sums[MovementKind.CONTRACTION], sums[MovementKind.CHURN],
                sums[MovementKind.REACTIVATION], ending,
            )
        )
    return rows


def daily(moves: Iterable[MrrMovement]) -> list[MrrDay]:
    """Movements summed per day, as :class:`MrrDay` facts (same as the SQL aggregation)."""
    by_day: dict[dt.date, list[MrrMovement]] = {}
    for m in moves:
        by_day.setdefault(m.occurred_at.date(), []).append(m)
    out: list[MrrDay] = []
    for day in sorted(by_day):
        ms = by_day[day]

        def total(kind: MovementKind, ms: list[MrrMovement] = ms) -> Decimal:
            return sum((m.delta for m in ms if m.kind == kind), ZERO)

        out.append(
            MrrDay(
                day,
                new=total(MovementKind.NEW),
                expansion=total(MovementKind.EXPANSION),
                contraction=total(MovementKind.CONTRACTION),
                churn=total(MovementKind.CHURN),
                reactivation=total(MovementKind.REACTIVATION),
                paying_delta=sum(m.paying_delta for m in ms),
                new_logos=sum(1 for m in ms if m.kind == MovementKind.NEW),
                churned_logos=sum(1 for m in ms if m.kind == MovementKind.CHURN),
            )
        )
    return out
