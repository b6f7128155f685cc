"""Report vocabulary over the shared calendar (:mod:`pulse_shared.periods`).

A report is a daily briefing, weekly, monthly, quarterly or annual; its period is a shared
:class:`Period` of the kind's grain. Everything calendar (labels, previous, year ago,
parsing) lives in the shared module; this one only maps report kinds to grains. The shared
calendar has no year grain (KPIs are not computed per year: an annual report is made of
its months), so the annual report's period is a :class:`YearPeriod` defined here.
"""

from __future__ import annotations

import datetime as dt
import re
from enum import StrEnum
from typing import cast

from pulse_shared import periods as calendar
from pulse_shared.events import Grain
from pulse_shared.periods import Period, PeriodError

__all__ = [
    "BY_GRAIN", "YEAR", "YearPeriod", "Period", "PeriodError", "ReportKind", "containing", "last_complete", "overlapping_labels",
    "parse_data_period", "parse_period", "period_complete",
]


#: The annual report's grain name (``ReportMeta.grain``); not a shared :class:`Grain`.
YEAR = "year"
_YEAR_LABEL = re.compile(r"\d{4}")


class YearPeriod(Period):
    """A calendar year ``[1 Jan, 1 Jan next year)`` labelled ``YYYY``: the annual report's
    period. It is read as its twelve months (and four quarters); it has no KPI grain."""

    __slots__ = ()

    def __post_init__(self) -> None:
        if (self.start.month, self.start.day) != (1, 1):
            raise PeriodError(f"{self.start.isoformat()} does not start a year")
        object.__setattr__(self, "end", dt.date(self.start.year + 1, 1, 1))
        object.__setattr__(self, "label", f"{self.start.year:04d}")

    @classmethod
    def of_year(cls, year: int) -> YearPeriod:
        return cls(cast(Grain, YEAR), dt.date(year, 1, 1))

    @property
    def year(self) -> int:
        return self.start.year

    def previous(self) -> YearPeriod:
        return YearPeriod.of_year(self.year - 1)

    def year_ago(self) -> YearPeriod:
        return self.previous()

    def month_periods(self) -> list[Period]:
        return [Period(Grain.MONTH, dt.date(self.year, m, 1)) for m in range(1, 13)]

    def quarter(self, number: int) -> Period:
        return Period(Grain.QUARTER, dt.date(self.year, 3 * (number - 1) + 1, 1))


class ReportKind(StrEnum):
    DAILY = "daily"
    WEEKLY = "weekly"
    MONTHLY = "monthly"
    QUARTERLY = "quarterly"
    ANNUAL = "annual"

    @property
    def grain(self) -> Grain:
        """The KPI grain of the kind's periods (the annual report has none: ValueError)."""
        if self is ReportKind.ANNUAL:
            raise ValueError("annual reports have no KPI grain: they are read by month")
        return _GRAINS[self]

    @classmethod
    def of(cls, period: Period) -> ReportKind:
        """The report kind whose periods have ``period``'s grain."""
        if isinstance(period, YearPeriod):
            return ReportKind.ANNUAL
        return _KIND_OF_GRAIN[period.grain]


_GRAINS: dict[ReportKind, Grain] = {
    ReportKind.DAILY: Grain.DAY, ReportKind.WEEKLY: Grain.WEEK,
    ReportKind.MONTHLY: Grain.MONTH, ReportKind.QUARTERLY: Grain.QUARTER,
}
_KIND_OF_GRAIN: dict[Grain, ReportKind] = {grain: kind for kind, grain in _GRAINS.items()}
#: The report kind of the period grains the dashboard and the to-date panel offer (week,
#: month, quarter): the daily briefing and the annual report are not dashboard grains.
BY_GRAIN: dict[Grain, ReportKind] = {
    grain: kind for kind, grain in _GRAINS.items() if grain is not Grain.DAY
}


def containing(kind: ReportKind | str, day: dt.date) -> Period:
    """The period of ``kind`` that contains ``day``."""
    if ReportKind(kind) is ReportKind.ANNUAL:
        return YearPeriod.of_year(day.year)
    return calendar.period_of(day, ReportKind(kind).grain)


def parse_period(kind: ReportKind | str, text: str) -> Period:
    """``2026-12-02`` / ``2026-W45`` / ``2026-11`` / ``2026-Q4`` / ``2026`` (the kind's own
    labels only), or any ``YYYY-MM-DD`` inside the period; :class:`PeriodError` otherwise."""
    if ReportKind(kind) is ReportKind.ANNUAL:
        stripped = text.strip()
        if _YEAR_LABEL.fullmatch(stripped):
            return YearPeriod.of_year(int(stripped))
        try:
            day = dt.date.fromisoformat(stripped)
        except ValueError:
            raise PeriodError(f"not a year: {text!r} (use e.g. 2026)") from None
        return YearPeriod.of_year(day.year)
    return calendar.parse_period(text, ReportKind(kind).grain, exact=True)


def last_complete(kind: ReportKind | str, today: dt.date) -> Period:
    """The most recent period of ``kind`` that ended before ``today`` (daily: yesterday;
    annual: last calendar year)."""
    if ReportKind(kind) is ReportKind.ANNUAL:
        return YearPeriod.of_year(today.year - 1)
    return calendar.last_complete(ReportKind(kind).grain, today)


def period_complete(period: Period, today: dt.date) -> bool:
    """Whether ``period`` ended before ``today`` (the project's rule for running periods:
    a running period's report is flagged partial)."""
    return period.end <= today


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


#: Months of the monthly trend charts of the insight sections (usage, customer experience).
TREND_MONTHS = 12


def trend_months(period: Period, count: int = TREND_MONTHS) -> list[Period]:
    """The ``count`` months ending with ``period``'s last month (oldest first)."""
    last = calendar.period_of(period.end - dt.timedelta(days=1), Grain.MONTH)
    first = last.start
    for _ in range(count - 1):
        first = calendar.period_of(first - dt.timedelta(days=1), Grain.MONTH).start
    return calendar.periods_between(first, last.start, Grain.MONTH)
