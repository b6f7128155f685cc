"""Pure domain: periods, deltas and direction-aware tones, schedule."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from pulse_reporting.domain.assemble import delta, kpi_name
from pulse_reporting.domain.model import Better, Tone
from pulse_reporting.domain.periods import (
    PeriodError,
    ReportKind,
    last_complete,
    parse_period,
)
from pulse_reporting.domain.schedule import due_runs, latest_runs


@pytest.mark.parametrize(
    ("kind", "text", "start", "end", "prev", "yoy"),
    [
        ("weekly", "2026-W45", dt.date(2026, 11, 2), dt.date(2026, 11, 9), "2026-W44", "2025-W45"),
        ("weekly", "2026-W01", dt.date(2025, 12, 29), dt.date(2026, 1, 5), "2025-W52", "2025-W01"),
        ("weekly", "2026-W53", dt.date(2026, 12, 28), dt.date(2027, 1, 4), "2026-W52", "2025-W52"),
        ("monthly", "2026-03", dt.date(2026, 3, 1), dt.date(2026, 4, 1), "2026-02", "2025-03"),
        ("monthly", "2026-01", dt.date(2026, 1, 1), dt.date(2026, 2, 1), "2025-12", "2025-01"),
        ("quarterly", "2026-Q1", dt.date(2026, 1, 1), dt.date(2026, 4, 1), "2025-Q4", "2025-Q1"),
        ("quarterly", "2026-11-25", dt.date(2026, 10, 1), dt.date(2027, 1, 1), "2026-Q3",
         "2025-Q4"),
    ],
)
def test_periods(
    kind: str, text: str, start: dt.date, end: dt.date, prev: str, yoy: str
) -> None:
    period = parse_period(kind, text)
    assert (period.start, period.end) == (start, end)
    assert period.previous().label == prev
    assert period.year_ago().label == yoy
    assert parse_period(kind, period.label) == period


def test_bad_periods() -> None:
    for kind, text in [("weekly", "2026-11"), ("monthly", "2026-13"), ("weekly", "2025-W53"),
                       ("quarterly", "2026-Q5"), ("monthly", "2026-02-30")]:
        with pytest.raises(PeriodError):
            parse_period(kind, text)


def test_last_complete_period() -> None:
    today = dt.date(2026, 11, 25)
    assert last_complete(ReportKind.WEEKLY, today).label == "2026-W47"
    assert last_complete(ReportKind.MONTHLY, today).label == "2026-10"
    assert last_complete(ReportKind.QUARTERLY, today).label == "2026-Q3"
    assert parse_period("quarterly", "2026-Q4").months() == ["2026-10", "2026-11", "2026-12"]


def test_direction_aware_tones() -> None:
    assert delta(120.0, 100.0, Better.UP).tone is Tone.GOOD
    assert delta(120.0, 100.0, Better.DOWN).tone is Tone.BAD  # CAC up = bad
    assert delta(80.0, 100.0, Better.DOWN).tone is Tone.GOOD
    assert delta(80.0, 100.0, Better.NEUTRAL).tone is Tone.NEUTRAL
    d = delta(120.0, 100.0, Better.UP)
    assert d.change == pytest.approx(20.0) and d.change_pct == pytest.approx(0.2)
    assert delta(5.0, 0.0, Better.UP).change_pct is None
    missing = delta(None, 100.0, Better.UP)
    assert missing.change is None and missing.tone is Tone.NEUTRAL


def test_model_kpi_names() -> None:
    # un-suffixed KPIs are the executive default's; every other model is suffixed
    assert kpi_name("roas", "position_based") == "roas"
    assert kpi_name("roas", "last_touch") == "roas__last_touch"
    assert kpi_name("roas", "linear") == "roas__linear"
    assert kpi_name("cac", "linear") == "cac"


def test_schedule_in_time_zone() -> None:
    zone = ZoneInfo("Europe/Paris")
    # Monday 2026-11-02 06:00 Paris = 05:00 UTC; Sunday 1st of November is monthly day.
    since = dt.datetime(2026, 10, 31, 12, tzinfo=dt.UTC)
    now = dt.datetime(2026, 11, 2, 5, 0, tzinfo=dt.UTC)
    runs = due_runs(since, now, zone, hour=6)
    assert [(r.kind.value, r.period.label, r.due_at) for r in runs] == [
        ("monthly", "2026-10", dt.datetime(2026, 11, 1, 5, tzinfo=dt.UTC)),
        ("weekly", "2026-W44", dt.datetime(2026, 11, 2, 5, tzinfo=dt.UTC)),
    ]
    assert due_runs(since, now - dt.timedelta(seconds=1), zone, 6)[-1].kind.value == "monthly"
    quarter = due_runs(
        dt.datetime(2026, 9, 30, tzinfo=dt.UTC), dt.datetime(2026, 10, 1, 12, tzinfo=dt.UTC),
        ZoneInfo("UTC"), 6,
    )
    assert {(r.kind.value, r.period.label) for r in quarter} == {
        ("monthly", "2026-09"), ("quarterly", "2026-Q3")
    }
    latest = {r.kind.value: r.period.label for r in latest_runs(now, zone, 6)}
    assert latest == {"weekly": "2026-W44", "monthly": "2026-10", "quarterly": "2026-Q3"}


def _campaign_report(roas: dict[str, float], spend: float = 100.0) -> object:
    from pulse_reporting.domain.assemble import ReportInputs, assemble_report
    from pulse_reporting.domain.model import KpiValue

    period = parse_period("monthly", "2031-01")
    rows = []
    for name, value in roas.items():
        rows += [
            KpiValue(kpi="spend", grain="month", period="2031-01", dimension="campaign",
                     dimension_value=name, value=spend),
            KpiValue(kpi="roas", grain="month", period="2031-01", dimension="campaign",
                     dimension_value=name, value=value),
        ]
    return assemble_report(ReportInputs(period=period, model="position_based", kpis=rows),
                           dt.datetime(2031, 2, 1, tzinfo=dt.UTC))


def test_top_campaigns_need_a_positive_roas() -> None:
    report = _campaign_report({"a": 0.0, "b": 3.0, "c": 0.5, "d": 0.0})
    assert [c.name for c in report.top_campaigns] == ["b", "c"]  # type: ignore[attr-defined]
    assert [c.name for c in report.bottom_campaigns] == ["a", "d"]  # type: ignore[attr-defined]
    cuts = {r.campaign_id: r.action.value for r in report.recommendations  # type: ignore[attr-defined]
            if r.action.value in ("pause", "reduce")}
    # one model only, below break-even: a and d return nothing (pause), c 0.5x (reduce)
    assert cuts == {"a": "pause", "d": "pause", "c": "reduce"}
    assert all("manual review" in r.label for r in report.recommendations)  # type: ignore[attr-defined]
