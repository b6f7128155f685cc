"""The one period calendar: day ``2026-11-03``, ISO week ``2026-W45``, month ``2026-11``,
quarter ``2026-Q4``.

A :class:`Period` is keyed by its grain and first day and is half-open ``[start, end)`` in
days. Its label is the ``kpi_values.period`` contract every service, report and stored row
uses, so the label formats above must never change.

A period is *complete* once its last day is before ``today`` in UTC: on 3 December, November
is complete and December is "to date". ``today`` is always passed in (a service's clock),
never read here.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import lru_cache

from pulse_shared.events import Grain

#: Every calendar grain, finest first.
GRAINS: tuple[Grain, ...] = (Grain.DAY, Grain.WEEK, Grain.MONTH, Grain.QUARTER)

#: How a grain reads as a frequency ("a monthly period", "the weekly report").
ADJECTIVES: dict[Grain, str] = {
    Grain.DAY: "daily", Grain.WEEK: "weekly", Grain.MONTH: "monthly", Grain.QUARTER: "quarterly",
}
_EXAMPLES: dict[Grain, str] = {
    Grain.DAY: "2026-11-25", Grain.WEEK: "2026-W45", Grain.MONTH: "2026-11",
    Grain.QUARTER: "2026-Q4",
}

_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_WEEK = re.compile(r"^(\d{4})-W(\d{1,2})$")
_MONTH = re.compile(r"^(\d{4})-(\d{1,2})$")
_QUARTER = re.compile(r"^(\d{4})-Q([1-4])$")


class PeriodError(ValueError):
    """A period label that is not a period (of the grain asked for)."""


def _add_months(day: dt.date, months: int) -> dt.date:
    index = day.year * 12 + day.month - 1 + months
    return dt.date(index // 12, index % 12 + 1, 1)


def _start_of(day: dt.date, grain: Grain) -> dt.date:
    if grain is Grain.DAY:
        return day
    if grain is Grain.WEEK:
        return day - dt.timedelta(days=day.isoweekday() - 1)
    if grain is Grain.MONTH:
        return day.replace(day=1)
    return dt.date(day.year, 3 * ((day.month - 1) // 3) + 1, 1)


def period_end(grain: Grain | str, day: dt.date) -> dt.date:
    """First day after the period of ``grain`` containing ``day`` (periods are ``[start, end)``)."""
    grain = Grain(grain)
    return _end_of(grain, _start_of(day, grain))


def _end_of(grain: Grain, start: dt.date) -> dt.date:
    if grain is Grain.DAY:
        return start + dt.timedelta(days=1)
    if grain is Grain.WEEK:
        return start + dt.timedelta(days=7)
    return _add_months(start, 1 if grain is Grain.MONTH else 3)


def _label(grain: Grain, start: dt.date) -> str:
    if grain is Grain.DAY:
        return start.isoformat()
    if grain is Grain.WEEK:
        iso = start.isocalendar()
        return f"{iso.year}-W{iso.week:02d}"
    if grain is Grain.MONTH:
        return f"{start.year}-{start.month:02d}"
    return f"{start.year}-Q{(start.month - 1) // 3 + 1}"


@dataclass(frozen=True, slots=True, order=True)
class Period:
    """One calendar period: ``grain`` and its first day ``start`` (equality and order use only
    these). ``end`` (exclusive) and ``label`` are derived once at construction because the KPI
    computation reads them for every day × grain."""

    grain: Grain
    start: dt.date
    end: dt.date = field(init=False, compare=False, repr=False)
    label: str = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        grain = Grain(self.grain)
        if _start_of(self.start, grain) != self.start:
            raise PeriodError(f"{self.start.isoformat()} does not start a {grain.value} period")
        object.__setattr__(self, "grain", grain)
        object.__setattr__(self, "end", _end_of(grain, self.start))
        object.__setattr__(self, "label", _label(grain, self.start))

    @property
    def last_day(self) -> dt.date:
        return self.end - dt.timedelta(days=1)

    @property
    def days(self) -> int:
        return (self.end - self.start).days

    def contains(self, day: dt.date) -> bool:
        return self.start <= day < self.end

    def previous(self) -> Period:
        """The period of the same grain just before this one."""
        return period_of(self.start - dt.timedelta(days=1), self.grain)

    def year_ago(self) -> Period:
        """The same period a year earlier: the same ISO week number (week 53 → the last week
        of a 52-week year), the same month or quarter, the same date (29 Feb → 28 Feb)."""
        year = self.start.year
        if self.grain is Grain.WEEK:
            iso = self.start.isocalendar()
            weeks_last_year = dt.date(iso.year - 1, 12, 28).isocalendar().week
            monday = dt.date.fromisocalendar(iso.year - 1, min(iso.week, weeks_last_year), 1)
            return Period(Grain.WEEK, monday)
        if self.start.month == 2 and self.start.day == 29:
            return Period(self.grain, dt.date(year - 1, 2, 28))
        return Period(self.grain, self.start.replace(year=year - 1))

    def months(self) -> list[str]:
        """Month labels (``YYYY-MM``) the period overlaps."""
        return [p.label for p in periods_between(self.start, self.last_day, Grain.MONTH)]

    def __str__(self) -> str:
        return self.label


@lru_cache(maxsize=8192)  # periods are immutable; KPI computation asks per day × grain
def period_of(day: dt.date, grain: Grain | str) -> Period:
    """The period of ``grain`` containing ``day``."""
    grain = Grain(grain)
    return _aligned(grain, _start_of(day, grain))


def _aligned(grain: Grain, start: dt.date) -> Period:
    """A Period whose ``start`` is known to begin a ``grain`` period (skips the check)."""
    period = object.__new__(Period)
    object.__setattr__(period, "grain", grain)
    object.__setattr__(period, "start", start)
    object.__setattr__(period, "end", _end_of(grain, start))
    object.__setattr__(period, "label", _label(grain, start))
    return period


def periods_between(first: dt.date, last: dt.date, grain: Grain | str) -> list[Period]:
    """Every period of ``grain`` that intersects the closed day range ``[first, last]``."""
    out: list[Period] = []
    if last < first:
        return out
    period = period_of(first, grain)
    while period.start <= last:
        out.append(period)
        period = _aligned(period.grain, period.end)
    return out


def iter_days(first: dt.date, end: dt.date) -> Iterator[dt.date]:
    """Days of the half-open range ``[first, end)``."""
    day = first
    while day < end:
        yield day
        day += dt.timedelta(days=1)


def _shape(text: str) -> Grain | None:
    """The grain whose label ``text`` looks like (not checking that the period exists)."""
    for grain, pattern in ((Grain.DAY, _DAY), (Grain.WEEK, _WEEK), (Grain.MONTH, _MONTH),
                           (Grain.QUARTER, _QUARTER)):
        if pattern.match(text):
            return grain
    return None


def _parse_label(text: str) -> Period | None:
    """The period a label names, None when ``text`` is no label at all."""
    try:
        if _DAY.match(text):
            return period_of(dt.date.fromisoformat(text), Grain.DAY)
        if m := _WEEK.match(text):
            year, week = int(m.group(1)), int(m.group(2))
            try:
                return Period(Grain.WEEK, dt.date.fromisocalendar(year, week, 1))
            except ValueError as exc:
                raise PeriodError(f"no ISO week {year}-W{week:02d}") from exc
        if m := _MONTH.match(text):
            year, month = int(m.group(1)), int(m.group(2))
            if not 1 <= month <= 12:
                raise PeriodError(f"no month {year}-{month:02d}")
            return Period(Grain.MONTH, dt.date(year, month, 1))
        if m := _QUARTER.match(text):
            return Period(Grain.QUARTER, dt.date(int(m.group(1)), 3 * int(m.group(2)) - 2, 1))
    except PeriodError:
        raise
    except ValueError as exc:  # a day label of a day that does not exist (2026-02-30)
        raise PeriodError(f"invalid date {text!r}") from exc
    return None


def parse_period(text: str, grain: Grain | str | None = None, *, exact: bool = False) -> Period:
    """Parse a period label (or a ``YYYY-MM-DD`` day) into the period of ``grain`` holding it.

    Without ``grain`` the label's own period. With it, the period of ``grain`` containing the
    label's first day (``parse_period("2026-02", Grain.QUARTER)`` → 2026-Q1); with ``exact``,
    only a label of ``grain`` itself or a day inside the period is accepted (a weekly report
    of ``2026-11`` is an error, not the week of 1 November). Raises :class:`PeriodError`.
    """
    text = text.strip()
    want = None if grain is None else Grain(grain)
    if exact and want is not None and _shape(text) not in (want, Grain.DAY):
        period = None  # judged by its shape: "2032-13" is no quarter, whatever else it is
    else:
        period = _parse_label(text)
    if period is None:
        if want is not None and exact:
            raise PeriodError(
                f"{text!r} is not a {ADJECTIVES[want]} period (expected e.g. "
                f"{_EXAMPLES[want]} or a date inside the period)"
            )
        raise PeriodError(
            f"not a period: {text!r} (use {', '.join(_EXAMPLES[g] for g in GRAINS)})"
        )
    if want is not None and want is not period.grain:
        return period_of(period.start, want)
    return period


def last_complete(grain: Grain | str, today: dt.date) -> Period:
    """The most recent period of ``grain`` that ended before ``today``."""
    return period_of(today, grain).previous()


def period_complete(grain: Grain | str, period_start: dt.date, today: dt.date) -> bool:
    """True when the period of ``grain`` starting ``period_start`` ended before ``today`` (UTC).

    The last day of the period must be strictly before ``today``: the current period, and
    any planned future one, is not complete.
    """
    return period_end(grain, period_start) <= today
