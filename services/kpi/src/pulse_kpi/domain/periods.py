"""Calendar periods: day ``2026-11-25``, ISO week ``2026-W48``, month ``2026-11``, quarter
``2026-Q4``. A period is half-open ``[start, end)`` in days."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from dataclasses import dataclass

from pulse_shared.events import Grain

GRAINS: tuple[Grain, ...] = (Grain.DAY, Grain.WEEK, Grain.MONTH, Grain.QUARTER)


@dataclass(frozen=True, slots=True, order=True)
class Period:
    grain: Grain
    start: dt.date
    end: dt.date  # exclusive
    label: str

    @property
    def days(self) -> int:
        return (self.end - self.start).days

    def contains(self, day: dt.date) -> bool:
        return self.start <= day < self.end


def _add_months(day: dt.date, months: int) -> dt.date:
    index = day.year * 12 + day.month - 1 + months
    return dt.date(index // 12, index % 12 + 1, 1)


def period_of(day: dt.date, grain: Grain) -> Period:
    """The period of ``grain`` containing ``day``."""
    if grain == Grain.DAY:
        return Period(grain, day, day + dt.timedelta(days=1), day.isoformat())
    if grain == Grain.WEEK:
        iso = day.isocalendar()
        start = day - dt.timedelta(days=iso.weekday - 1)
        return Period(grain, start, start + dt.timedelta(days=7), f"{iso.year}-W{iso.week:02d}")
    if grain == Grain.MONTH:
        start = day.replace(day=1)
        return Period(grain, start, _add_months(start, 1), f"{day.year}-{day.month:02d}")
    quarter = (day.month - 1) // 3 + 1
    start = dt.date(day.year, 3 * quarter - 2, 1)
    return Period(grain, start, _add_months(start, 3), f"{day.year}-Q{quarter}")


def periods_between(first: dt.date, last: dt.date, grain: Grain) -> list[Period]:
    """Every period of ``grain`` that intersects the closed day range ``[first, last]``."""
    out: list[Period] = []
    if last < first:
        return out
    period = period_of(first, grain)
    while period.start <= last:
        out.append(period)
        period = period_of(period.end, grain)
    return out


def iter_days(first: dt.date, end: dt.date) -> Iterator[dt.date]:
    """Days of the half-open range ``[first, end)``."""
    day = first
    while day < end:
        yield day
        day += dt.timedelta(days=1)


_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_WEEK = re.compile(r"^(\d{4})-W(\d{2})$")
_MONTH = re.compile(r"^(\d{4})-(\d{2})$")
_QUARTER = re.compile(r"^(\d{4})-Q([1-4])$")


def parse_period(text: str, grain: Grain | None = None) -> Period:
    """Parse a period label; a day/month label is accepted for any ``grain`` (containing period).

    ``parse_period("2026-03", Grain.MONTH)`` → March 2026; ``parse_period("2026-03",
    Grain.QUARTER)`` → 2026-Q1; ``parse_period("2026-W10")`` → that ISO week.
    """
    text = text.strip()
    if _DAY.match(text):
        period = period_of(dt.date.fromisoformat(text), Grain.DAY)
    elif m := _WEEK.match(text):
        monday = dt.date.fromisocalendar(int(m.group(1)), int(m.group(2)), 1)
        period = period_of(monday, Grain.WEEK)
    elif m := _MONTH.match(text):
        period = period_of(dt.date(int(m.group(1)), int(m.group(2)), 1), Grain.MONTH)
    elif m := _QUARTER.match(text):
        period = period_of(dt.date(int(m.group(1)), 3 * int(m.group(2)) - 2, 1), Grain.QUARTER)
    else:
        raise ValueError(f"not a period: {text!r} (use 2026-11-25, 2026-W48, 2026-11, 2026-Q4)")
    if grain is not None and grain != period.grain:
        return period_of(period.start, grain)
    return period
