"""Report vocabulary over the shared calendar (:mod:`pulse_shared.periods`).

A report is weekly, monthly or quarterly; its period is a shared :class:`Period` of the
kind's grain. Everything calendar (labels, previous, year ago, parsing) lives in the shared
module; this one only maps report kinds to grains.
"""

from __future__ import annotations

import datetime as dt
from enum import StrEnum

from pulse_shared import periods as calendar
from pulse_shared.events import Grain
from pulse_shared.periods import Period, PeriodError

__all__ = [
    "BY_GRAIN", "Period", "PeriodError", "ReportKind", "containing", "last_complete", "overlapping_labels",
    "parse_data_period", "parse_period",
]


class ReportKind(StrEnum):
    WEEKLY = "weekly"
    MONTHLY = "monthly"
    QUARTERLY = "quarterly"

    @property
    def grain(self) -> Grain:
        return _GRAINS[self]

    @classmethod
    def of(cls, period: Period) -> ReportKind:
        """The report kind whose periods have ``period``'s grain."""
        return BY_GRAIN[period.grain]


_GRAINS: dict[ReportKind, Grain] = {
    ReportKind.WEEKLY: Grain.WEEK, ReportKind.MONTHLY: Grain.MONTH,
    ReportKind.QUARTERLY: Grain.QUARTER,
}
#: The report kind of each report grain (week, month, quarter; no daily reports).
BY_GRAIN: dict[Grain, ReportKind] = {grain: kind for kind, grain in _GRAINS.items()}


def containing(kind: ReportKind | str, day: dt.date) -> Period:
    """The period of ``kind`` that contains ``day``."""
    return calendar.period_of(day, ReportKind(kind).grain)


def parse_period(kind: ReportKind | str, text: str) -> Period:
    """``2026-W45`` / ``2026-11`` / ``2026-Q4`` (the kind's own labels only), or any
    ``YYYY-MM-DD`` inside the period; :class:`PeriodError` otherwise."""
    return calendar.parse_period(text, ReportKind(kind).grain, exact=True)


def last_complete(kind: ReportKind | str, today: dt.date) -> Period:
    """The most recent period of ``kind`` that ended before ``today``."""
    return calendar.last_complete(ReportKind(kind).grain, today)


def parse_data_period(text: str) -> Period | None:
    """The KPI period an alert's period label names (any grain), None for anything else."""
    try:
        return calendar.parse_period(text)
    except PeriodError:
        return None


def overlapping_labels(period: Period) -> list[str]:
    """Labels of every day, week, month and quarter period overlapping ``period``: the data
    periods whose alerts a report of ``period`` can list."""
    labels: list[str] = []
    for day in calendar.iter_days(period.start, period.end):
        for grain in calendar.GRAINS:
            label = calendar.period_of(day, grain).label
            if label not in labels:
                labels.append(label)
    return labels
