"""When a calendar period is complete — the one rule every service shows beside a KPI value.

A period (day, ISO week, month, quarter) is *complete* once its last day is before
``today`` in UTC: on 3 December, November is complete and December is "to date". ``today``
is always passed in (a service's clock), never read here.
"""

from __future__ import annotations

import datetime as dt

from pulse_shared.events import Grain


def _add_months(day: dt.date, months: int) -> dt.date:
    index = day.year * 12 + day.month - 1 + months
    return dt.date(index // 12, index % 12 + 1, 1)


def period_end(grain: Grain | str, day: dt.date) -> dt.date:
    """First day after the period of ``grain`` containing ``day`` (periods are ``[start, end)``)."""
    grain = Grain(grain)
    if grain is Grain.DAY:
        return day + dt.timedelta(days=1)
    if grain is Grain.WEEK:
        return day + dt.timedelta(days=8 - day.isoweekday())
    if grain is Grain.MONTH:
        return _add_months(day.replace(day=1), 1)
    quarter_start = dt.date(day.year, 3 * ((day.month - 1) // 3) + 1, 1)
    return _add_months(quarter_start, 3)


def period_complete(grain: Grain | str, period_start: dt.date, today: dt.date) -> bool:
    """True when the period of ``grain`` starting ``period_start`` ended before ``today`` (UTC).

    The last day of the period must be strictly before ``today``: the current period, and
    any planned future one, is not complete.
    """
    return period_end(grain, period_start) <= today
