"""Report periods: ISO weeks, months and quarters, with their previous and year-ago peers.

Period labels follow the kpi_values contract: week ``2026-W48`` (ISO), month ``2026-11``,
quarter ``2026-Q4``. ``start`` is the first day, ``end`` the first day after the period.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from enum import StrEnum


class ReportKind(StrEnum):
    WEEKLY = "weekly"
    MONTHLY = "monthly"
    QUARTERLY = "quarterly"

    @property
    def grain(self) -> str:
        return {"weekly": "week", "monthly": "month", "quarterly": "quarter"}[self.value]


_WEEK = re.compile(r"^(\d{4})-W(\d{1,2})$")
_MONTH = re.compile(r"^(\d{4})-(\d{1,2})$")
_QUARTER = re.compile(r"^(\d{4})-Q([1-4])$")
_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class PeriodError(ValueError):
    """A period label that does not fit the report kind."""


@dataclass(frozen=True, order=True)
class Period:
    """One reporting period of one kind."""

    kind: ReportKind
    start: dt.date
    end: dt.date  # exclusive

    @property
    def grain(self) -> str:
        return self.kind.grain

    @property
    def label(self) -> str:
        if self.kind is ReportKind.WEEKLY:
            year, week, _ = self.start.isocalendar()
            return f"{year}-W{week:02d}"
        if self.kind is ReportKind.MONTHLY:
            return f"{self.start.year}-{self.start.month:02d}"
        return f"{self.start.year}-Q{(self.start.month - 1) // 3 + 1}"

    @property
    def days(self) -> int:
        return (self.end - self.start).days

    @property
    def last_day(self) -> dt.date:
        return self.end - dt.timedelta(days=1)

    def previous(self) -> Period:
        return containing(self.kind, self.start - dt.timedelta(days=1))

    def year_ago(self) -> Period:
        if self.kind is ReportKind.WEEKLY:
            year, week, _ = self.start.isocalendar()
            weeks_last_year = dt.date(year - 1, 12, 28).isocalendar()[1]
            return week_period(year - 1, min(week, weeks_last_year))
        return containing(self.kind, self.start.replace(year=self.start.year - 1))

    def months(self) -> list[str]:
        """Month labels (``YYYY-MM``) the period overlaps."""
        out: list[str] = []
        day = self.start.replace(day=1)
        while day < self.end:
            out.append(f"{day.year}-{day.month:02d}")
            day = _add_months(day, 1)
        return out

    def __str__(self) -> str:
        return self.label


def _add_months(day: dt.date, months: int) -> dt.date:
    index = day.year * 12 + day.month - 1 + months
    return dt.date(index // 12, index % 12 + 1, 1)


def week_period(year: int, week: int) -> Period:
    try:
        start = dt.date.fromisocalendar(year, week, 1)
    except ValueError as exc:
        raise PeriodError(f"no ISO week {year}-W{week:02d}") from exc
    return Period(ReportKind.WEEKLY, start, start + dt.timedelta(days=7))


def month_period(year: int, month: int) -> Period:
    if not 1 <= month <= 12:
        raise PeriodError(f"no month {year}-{month:02d}")
    start = dt.date(year, month, 1)
    return Period(ReportKind.MONTHLY, start, _add_months(start, 1))


def quarter_period(year: int, quarter: int) -> Period:
    start = dt.date(year, 3 * (quarter - 1) + 1, 1)
    return Period(ReportKind.QUARTERLY, start, _add_months(start, 3))


def containing(kind: ReportKind, day: dt.date) -> Period:
    """The period of ``kind`` that contains ``day``."""
    if kind is ReportKind.WEEKLY:
        year, week, _ = day.isocalendar()
        return week_period(year, week)
    if kind is ReportKind.MONTHLY:
        return month_period(day.year, day.month)
    return quarter_period(day.year, (day.month - 1) // 3 + 1)


def parse_period(kind: ReportKind | str, text: str) -> Period:
    """``2026-W45`` / ``2026-11`` / ``2026-Q4``, or any ``YYYY-MM-DD`` inside the period."""
    kind = ReportKind(kind)
    text = text.strip()
    if _DAY.match(text):
        try:
            return containing(kind, dt.date.fromisoformat(text))
        except ValueError as exc:
            raise PeriodError(f"invalid date {text!r}") from exc
    if kind is ReportKind.WEEKLY and (m := _WEEK.match(text)):
        return week_period(int(m.group(1)), int(m.group(2)))
    if kind is ReportKind.MONTHLY and (m := _MONTH.match(text)):
        return month_period(int(m.group(1)), int(m.group(2)))
    if kind is ReportKind.QUARTERLY and (m := _QUARTER.match(text)):
        return quarter_period(int(m.group(1)), int(m.group(2)))
    examples = {"weekly": "2026-W45", "monthly": "2026-11", "quarterly": "2026-Q4"}
    raise PeriodError(
        f"{text!r} is not a {kind.value} period (expected e.g. {examples[kind.value]} "
        "or a date inside the period)"
    )


def last_complete(kind: ReportKind | str, today: dt.date) -> Period:
    """The most recent period of ``kind`` that ended before ``today``."""
    kind = ReportKind(kind)
    return containing(kind, today).previous()


@dataclass(frozen=True)
class DataPeriod:
    """A KPI period of any grain (``2026-11-25``, ``2026-W48``, ``2026-11``, ``2026-Q4``),
    as alerts name the data that fired them."""

    grain: str
    start: dt.date
    end: dt.date  # exclusive

    def overlaps(self, start: dt.date, end: dt.date) -> bool:
        return self.start < end and start < self.end


def parse_data_period(text: str) -> DataPeriod | None:
    """The period a KPI period label names (None for anything else)."""
    text = text.strip()
    try:
        if _DAY.match(text):
            day = dt.date.fromisoformat(text)
            return DataPeriod("day", day, day + dt.timedelta(days=1))
        for kind, pattern in (
            (ReportKind.WEEKLY, _WEEK), (ReportKind.MONTHLY, _MONTH),
            (ReportKind.QUARTERLY, _QUARTER),
        ):
            if pattern.match(text):
                p = parse_period(kind, text)
                return DataPeriod(kind.grain, p.start, p.end)
    except (ValueError, PeriodError):
        return None
    return None


def overlapping_labels(period: Period) -> list[str]:
    """Labels of every day, week, month and quarter period overlapping ``period``: the data
    periods whose alerts a report of ``period`` can list."""
    labels: list[str] = []
    day = period.start
    while day < period.end:
        labels.append(day.isoformat())
        for kind in ReportKind:
            label = containing(kind, day).label
            if label not in labels:
                labels.append(label)
        day += dt.timedelta(days=1)
    return labels
