"""Period to date (pulse_reporting.domain.to_date): the running period's complete days
against the same days of the previous period, and the forecast landing. Fixed dates only."""

from __future__ import annotations

import datetime as dt
import math

import pytest

from pulse_reporting.domain.model import Tone, TrendPoint
from pulse_reporting.domain.to_date import ToDate, ToDateKpi, daily_names, period_to_date

FIRST = dt.date(2040, 11, 1)
LAST = dt.date(2041, 6, 30)


def spend_on(day: dt.date) -> float:
    """Trend + weekly pattern: weekdays spend more than weekends."""
    return 1000.0 + (day - FIRST).days + (300.0 if day.isoweekday() <= 5 else 0.0)


def series(fn: object, first: dt.date = FIRST, last: dt.date = LAST) -> list[TrendPoint]:
    days = (last - first).days + 1
    return [TrendPoint(day=first + dt.timedelta(days=i), value=fn(first + dt.timedelta(days=i)))  # type: ignore[operator]
            for i in range(days)]


def daily(last: dt.date, *, model: str = "linear", with_customers: bool = True,
          first: dt.date = FIRST) -> dict[str, list[TrendPoint]]:
    """Day values up to ``last`` (the KPI service has not computed later days yet)."""
    out = {
        "spend": series(spend_on, first, last),
        "leads": series(lambda d: 20.0 + (d.day % 3), first, last),
        f"attributed_revenue__{model}": series(lambda d: 3 * spend_on(d), first, last),
    }
    if with_customers:
        out["new_customers"] = series(lambda d: float(d.day % 2), first, last)
    return out


def total(fn: object, start: dt.date, days: int) -> float:
    return sum(fn(start + dt.timedelta(days=i)) for i in range(days))  # type: ignore[operator]


def by_kpi(result: ToDate) -> dict[str, ToDateKpi]:
    return {k.kpi: k for k in result.kpis}


@pytest.fixture(scope="module")
def march_3() -> ToDate:
    """3 March 2041: two complete days of March."""
    today = dt.date(2041, 3, 3)
    return period_to_date("month", today, daily(today), model="linear")


def test_month_to_date_compares_the_same_days_of_the_previous_month(march_3: ToDate) -> None:
    assert (march_3.period, march_3.days, march_3.as_of) == ("2041-03", 2, dt.date(2041, 3, 2))
    assert (march_3.previous_period, march_3.previous_start, march_3.previous_end) == (
        "2041-02", dt.date(2041, 2, 1), dt.date(2041, 2, 2))
    assert march_3.title == "Month to date (2 days) vs the same 2 days of 2041-02"
    assert march_3.complete is False
    spend = by_kpi(march_3)["spend"]
    assert spend.value == total(spend_on, dt.date(2041, 3, 1), 2)
    assert spend.comparison.previous == total(spend_on, dt.date(2041, 2, 1), 2)
    # Not "−92 %": two days against two days, only the trend and weekday mix differ.
    expected = spend.value / spend.comparison.previous - 1
    assert spend.comparison.change_pct == pytest.approx(expected)
    assert abs(spend.comparison.change_pct or 0) < 0.2
    assert spend.previous_total == total(spend_on, dt.date(2041, 2, 1), 28)


def test_ratios_are_recomputed_from_the_sums(march_3: ToDate) -> None:
    kpis = by_kpi(march_3)
    spend, leads = kpis["spend"], kpis["leads"]
    revenue = kpis["attributed_revenue__linear"]
    assert kpis["roas__linear"].value == pytest.approx(revenue.value / spend.value)  # type: ignore[operator]
    assert kpis["cpl"].value == pytest.approx(spend.value / leads.value)  # type: ignore[operator]
    assert kpis["cpl"].comparison.previous == pytest.approx(
        spend.comparison.previous / leads.comparison.previous)  # type: ignore[operator]
    customers = kpis["new_customers"].value
    assert kpis["cac"].value == pytest.approx(spend.value / customers)  # type: ignore[operator]


def test_landing_is_actual_to_date_plus_forecast_of_the_days_left(march_3: ToDate) -> None:
    spend = by_kpi(march_3)["spend"]
    landing = spend.landing
    assert landing is not None and landing.forecast_days == 29 and landing.level == 80
    assert landing.actual_to_date == spend.value
    assert landing.lower is not None and landing.upper is not None
    assert landing.lower <= landing.value <= landing.upper
    # The series is trend + weekly pattern with no noise: the landing is close to the truth.
    truth = total(spend_on, dt.date(2041, 3, 1), 31)
    assert landing.value == pytest.approx(truth, rel=0.03)
    assert landing.lower <= truth <= landing.upper
    roas = by_kpi(march_3)["roas__linear"].landing
    assert roas is not None and roas.value == pytest.approx(3.0, rel=0.01)
    assert roas.lower is not None and roas.upper is not None
    assert roas.lower <= roas.value <= roas.upper


def test_previous_window_is_clipped_to_the_previous_period_length() -> None:
    today = dt.date(2041, 3, 31)  # 30 complete days of March; February has 28
    result = period_to_date("month", today, daily(today, with_customers=False),
                            model="linear")
    assert (result.days, result.previous_days, result.previous_end) == (
        30, 28, dt.date(2041, 2, 28))
    assert result.title == "Month to date (30 days) vs the same 28 days of 2041-02"
    spend = by_kpi(result)["spend"]
    assert spend.comparison.previous == total(spend_on, dt.date(2041, 2, 1), 28)


def test_quarter_to_date_lands_at_quarter_end() -> None:
    today = dt.date(2041, 5, 15)
    result = period_to_date("quarter", today, daily(today, with_customers=False),
                            model="linear")
    assert (result.period, result.days, result.previous_period) == ("2041-Q2", 44, "2041-Q1")
    assert result.previous_end == dt.date(2041, 2, 13)
    spend = by_kpi(result)["spend"]
    assert spend.comparison.previous == total(spend_on, dt.date(2041, 1, 1), 44)
    assert spend.landing is not None and spend.landing.forecast_days == 91 - 44
    truth = total(spend_on, dt.date(2041, 4, 1), 91)
    assert spend.landing.value == pytest.approx(truth, rel=0.03)


def test_missing_base_data_is_na_with_the_reason_never_zero() -> None:
    """Data starts 2 February: 1–2 February cannot serve as a base."""
    today = dt.date(2041, 3, 3)
    first = dt.date(2041, 2, 2)
    coverage = {
        "spend": (first, dt.date(2041, 3, 2)),
        "pipeline_events": (first, dt.date(2041, 3, 2)),
        "touchpoints": (first, dt.date(2041, 3, 2)),
    }
    values = daily(today, first=first)
    # No billing data: the KPI service's day rows are empty sums (0), not measurements.
    values["new_customers"] = series(lambda d: 0.0, first, today)
    result = period_to_date("month", today, values, model="linear", coverage=coverage)
    spend = by_kpi(result)["spend"]
    assert spend.value == total(spend_on, dt.date(2041, 3, 1), 2)
    assert spend.comparison.unavailable == "no data before 2041-02-02"
    assert (spend.comparison.previous, spend.comparison.change) == (None, None)
    assert spend.comparison.tone is Tone.NEUTRAL
    assert by_kpi(result)["roas__linear"].comparison.unavailable == "no data before 2041-02-02"
    # No billing data at all: new customers (and CAC) are n/a, not 0.
    customers = by_kpi(result)["new_customers"]
    assert customers.value is None and customers.unavailable is not None
    assert customers.unavailable == "no data for 2041-03-01 – 2041-03-02"
    assert customers.landing is None and customers.comparison.change is None
    assert by_kpi(result)["cac"].value is None


def test_a_kpi_the_kpi_service_does_not_compute_is_na() -> None:
    today = dt.date(2041, 3, 3)
    result = period_to_date("month", today, daily(today, with_customers=False),
                            model="linear")
    customers = by_kpi(result)["new_customers"]
    assert customers.value is None and customers.landing is None
    assert "no daily new_customers values" in (customers.unavailable or "")
    cac = by_kpi(result)["cac"]
    assert cac.value is None and cac.landing is None and cac.landing_unavailable


def test_first_day_of_a_period_forecasts_the_whole_period() -> None:
    today = dt.date(2041, 3, 1)
    result = period_to_date("month", today, daily(today - dt.timedelta(days=1),
                                                  with_customers=False), model="linear")
    assert (result.days, result.as_of, result.previous_end) == (0, None, None)
    spend = by_kpi(result)["spend"]
    assert spend.value is None and spend.landing is not None
    assert spend.landing.forecast_days == 31 and spend.landing.actual_to_date is None
    assert spend.landing.value == pytest.approx(total(spend_on, today, 31), rel=0.03)
    assert result.notes and "No complete day of 2041-03" in result.notes[0]


def test_default_model_reads_the_unsuffixed_attribution_kpi() -> None:
    from pulse_shared.attribution_models import DEFAULT_MODEL

    today = dt.date(2041, 3, 3)
    values = daily(today, model=DEFAULT_MODEL, with_customers=False)
    values["attributed_revenue"] = values.pop(f"attributed_revenue__{DEFAULT_MODEL}")
    assert "attributed_revenue" in daily_names(DEFAULT_MODEL)
    result = period_to_date("month", today, values, model=DEFAULT_MODEL)
    revenue = by_kpi(result)["attributed_revenue"]
    assert revenue.value == pytest.approx(3 * total(spend_on, dt.date(2041, 3, 1), 2))
    assert not math.isnan(revenue.value or math.nan)


def test_week_to_date_and_unknown_grain() -> None:
    today = dt.date(2041, 3, 6)  # a Wednesday: Monday and Tuesday are complete
    result = period_to_date("week", today, daily(today, with_customers=False), model="linear")
    assert (result.period, result.days, result.previous_period) == ("2041-W10", 2, "2041-W09")
    assert result.title.startswith("Week to date (2 days)")
    with pytest.raises(ValueError, match="grain must be one of"):
        period_to_date("year", today, {}, model="linear")


def test_stored_values_outside_the_raw_data_are_trusted_partial_coverage_is_not() -> None:
    """Raw spend rows exist only for 2041-03 (older ones expired): February's stored day
    values are measurements. Partial coverage of the base window is still n/a."""
    today = dt.date(2041, 3, 3)
    values = daily(today, with_customers=False)
    expired = {"spend": (dt.date(2041, 3, 1), dt.date(2041, 3, 2))}
    spend = by_kpi(period_to_date("month", today, values, model="linear",
                                  coverage=expired))["spend"]
    assert spend.comparison.previous == total(spend_on, dt.date(2041, 2, 1), 2)
    assert spend.previous_total == total(spend_on, dt.date(2041, 2, 1), 28)
    partly = {"spend": (dt.date(2041, 2, 2), dt.date(2041, 3, 2))}
    spend = by_kpi(period_to_date("month", today, values, model="linear",
                                  coverage=partly))["spend"]
    assert spend.comparison.unavailable == "no data before 2041-02-02"
    assert spend.previous_total is None
