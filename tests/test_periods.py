"""The one period calendar (pulse_shared.periods): labels, parsing, neighbours, completeness."""

from __future__ import annotations

import datetime as dt

import pytest

from pulse_shared.events import Grain
from pulse_shared.periods import (
    GRAINS,
    Period,
    PeriodError,
    iter_days,
    last_complete,
    parse_period,
    period_complete,
    period_of,
    periods_between,
)

D = dt.date


@pytest.mark.parametrize(("grain", "label"), [
    (Grain.DAY, "2026-11-03"), (Grain.WEEK, "2026-W45"), (Grain.MONTH, "2026-11"),
    (Grain.QUARTER, "2026-Q4"),
])
def test_label_formats_are_the_stored_contract(grain: Grain, label: str) -> None:
    assert period_of(D(2026, 11, 3), grain).label == label


def test_label_parse_round_trip_for_every_grain_over_years() -> None:
    checked = 0
    for day in iter_days(D(2019, 12, 20), D(2027, 1, 10)):
        for grain in GRAINS:
            period = period_of(day, grain)
            assert period.contains(day) and not period.contains(period.end)
            assert period.last_day == period.end - dt.timedelta(days=1)
            assert parse_period(period.label) == period
            assert parse_period(period.label, grain, exact=True) == period
            # a day inside the period parses to it for every grain
            assert parse_period(day.isoformat(), grain, exact=True) == period
            checked += 1
    assert checked == 4 * (D(2027, 1, 10) - D(2019, 12, 20)).days


@pytest.mark.parametrize(("label", "prev", "year_ago"), [
    ("2026-01-01", "2025-12-31", "2025-01-01"),
    ("2028-02-29", "2028-02-28", "2027-02-28"),  # leap day → the 28th a year earlier
    ("2026-W01", "2025-W52", "2025-W01"),
    ("2021-W01", "2020-W53", "2020-W01"),
    ("2026-W53", "2026-W52", "2025-W52"),  # 2025 has no week 53
    ("2020-W53", "2020-W52", "2019-W52"),
    ("2026-01", "2025-12", "2025-01"),
    ("2026-Q1", "2025-Q4", "2025-Q1"),
])
def test_previous_and_year_ago_across_year_boundaries(label: str, prev: str, year_ago: str) -> None:
    period = parse_period(label)
    assert period.previous().label == prev
    assert period.year_ago().label == year_ago
    assert period.previous().end == period.start


def test_iso_week_53() -> None:
    week = parse_period("2026-W53")
    assert (week.start, week.end, week.days) == (D(2026, 12, 28), D(2027, 1, 4), 7)
    assert period_of(D(2027, 1, 3), Grain.WEEK) == week  # a January day of the 2026 week
    assert week.months() == ["2026-12", "2027-01"]
    with pytest.raises(PeriodError, match="no ISO week 2025-W53"):
        parse_period("2025-W53")


def test_last_complete_and_period_complete() -> None:
    today = D(2027, 1, 1)
    assert {g: last_complete(g, today).label for g in GRAINS} == {
        Grain.DAY: "2026-12-31", Grain.WEEK: "2026-W52", Grain.MONTH: "2026-12",
        Grain.QUARTER: "2026-Q4",
    }
    for grain in GRAINS:
        assert period_complete(grain, last_complete(grain, today).start, today)
        assert not period_complete(grain, period_of(today, grain).start, today)


def test_parse_grain_conversion_and_errors() -> None:
    assert parse_period("2026-02", Grain.QUARTER).label == "2026-Q1"
    assert parse_period("2026-Q4", Grain.MONTH).label == "2026-10"
    with pytest.raises(PeriodError, match="is not a weekly period"):
        parse_period("2026-11", Grain.WEEK, exact=True)
    with pytest.raises(PeriodError, match="is not a quarterly period"):
        parse_period("2032-13", Grain.QUARTER, exact=True)  # judged as a quarter label
    with pytest.raises(PeriodError, match="no month 2032-13"):
        parse_period("2032-13", Grain.MONTH, exact=True)
    for bad, reason in [("2026-13", "no month"), ("2026-02-30", "invalid date"),
                        ("2026/10", "not a period"), ("2026-Q5", "not a period")]:
        with pytest.raises(PeriodError, match=reason):
            parse_period(bad)


def test_period_is_keyed_by_grain_and_start() -> None:
    assert Period(Grain.MONTH, D(2026, 11, 1)) == period_of(D(2026, 11, 30), Grain.MONTH)
    assert Period(Grain.MONTH, D(2026, 11, 1)) != Period(Grain.DAY, D(2026, 11, 1))
    with pytest.raises(PeriodError, match="does not start a week period"):
        Period(Grain.WEEK, D(2026, 11, 4))
    months = periods_between(D(2026, 11, 15), D(2027, 2, 1), Grain.MONTH)
    assert [str(p) for p in months] == ["2026-11", "2026-12", "2027-01", "2027-02"]
    assert sum(p.days for p in months) == (D(2027, 3, 1) - D(2026, 11, 1)).days
