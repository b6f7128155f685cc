"""Issue 16: advice that holds under every shown model, missing is not zero, forecasts
checked against what happened. Pure assembly (no store), fixed dates."""

from __future__ import annotations

import datetime as dt
import math

import pytest

from pulse_reporting.domain.assemble import ReportInputs, assemble_report
from pulse_reporting.domain.model import Action, Confidence, KpiValue, Report, TrendPoint
from pulse_reporting.domain.periods import parse_period
from pulse_reporting.render.html import render_html
from pulse_reporting.render.markdown import render_markdown

MONTH = parse_period("monthly", "2031-03")
NOW = dt.datetime(2031, 4, 2, tzinfo=dt.UTC)
MODELS = ("first_touch", "last_touch", "w_shaped")


def _v(kpi: str, value: float | None, period: str = "2031-03", dim: str = "all",
       member: str = "") -> KpiValue:
    return KpiValue(kpi=kpi, grain="month", period=period, dimension=dim,
                    dimension_value=member, value=value)


def _suffix(model: str) -> str:
    # the KPI service writes every model suffixed (un-suffixed = the executive default)
    return f"__{model}"


def _campaigns(spec: dict[str, tuple[float, dict[str, float]]]) -> list[KpiValue]:
    """campaign → (spend, {model: roas}); attributed revenue rows make the models shown."""
    rows: list[KpiValue] = []
    for name, (spend, roas) in spec.items():
        rows.append(_v("spend", spend, dim="campaign", member=name))
        for model, value in roas.items():
            rows.append(_v(f"roas{_suffix(model)}", value, dim="campaign", member=name))
            rows.append(_v(f"attributed_revenue{_suffix(model)}", value * spend,
                           dim="campaign", member=name))
    for model in MODELS:  # totals: every model has a result this month
        rows.append(_v(f"attributed_revenue{_suffix(model)}", 1.0))
    return rows


def _report(rows: list[KpiValue], model: str = "last_touch", **kw: object) -> Report:
    return assemble_report(ReportInputs(period=MONTH, model=model, kpis=rows, **kw), NOW)  # type: ignore[arg-type]


def test_never_cut_a_campaign_that_pays_back_under_any_shown_model() -> None:
    report = _report(_campaigns({
        # the case: 0.00x under last-touch, pays back under first-touch
        "gads-nonbrand": (12000.0, {"first_touch": 1.67, "last_touch": 0.0, "w_shaped": 1.06}),
        "gads-brand": (3000.0, {"first_touch": 1.2, "last_touch": 0.0, "w_shaped": 0.4}),
        "display": (2000.0, {"first_touch": 0.3, "last_touch": 0.0, "w_shaped": 0.2}),
        "webinar": (1500.0, {"first_touch": 0.9, "last_touch": 0.6, "w_shaped": 0.7}),
    }))
    by_campaign = {r.campaign_id: r for r in report.recommendations if r.campaign_id}
    for rec in report.recommendations:
        if rec.action in (Action.PAUSE, Action.REDUCE):
            assert all(v is not None and v < 1 for v in rec.roas_by_model.values()), rec
    # median 1.06x, one model below: neither cut nor scaled
    assert "gads-nonbrand" not in by_campaign
    assert by_campaign["gads-brand"].action is Action.INVESTIGATE  # median 0.4x, 1 model ≥ 1
    assert by_campaign["display"].action is Action.PAUSE  # best model 0.3x
    assert by_campaign["webinar"].action is Action.REDUCE  # all < 1, best 0.9x
    assert by_campaign["webinar"].amount == pytest.approx(375.0)
    assert set(by_campaign["display"].roas_by_model) == set(MODELS)
    # 3 models agree, spend ≥ $1,000: high; a split is low
    assert by_campaign["display"].confidence is Confidence.HIGH
    assert by_campaign["gads-brand"].confidence is Confidence.LOW


def test_ranked_by_spend_at_risk_then_spend_never_alphabetically() -> None:
    zero = {"first_touch": 0.0, "last_touch": 0.0, "w_shaped": 0.0}
    report = _report(_campaigns({
        "aa-small": (100.0, zero),
        "li-abm-enterprise": (9763.0, zero),
        "bb-mid": (500.0, zero),
    }))
    assert [r.campaign_id for r in report.recommendations] == [
        "li-abm-enterprise", "bb-mid", "aa-small"
    ]
    assert report.recommendations[0].spend_at_risk == pytest.approx(9763.0)
    # ties in ROAS are broken by spend in the bottom list too
    assert [c.name for c in report.bottom_campaigns][0] == "li-abm-enterprise"


def test_top_campaigns_use_the_consensus_when_the_report_model_gives_zero() -> None:
    report = _report(_campaigns({
        "paid-a": (5000.0, {"first_touch": 2.0, "last_touch": 0.0, "w_shaped": 1.5}),
        "paid-b": (8000.0, {"first_touch": 2.0, "last_touch": 0.0, "w_shaped": 1.5}),
    }))
    assert [c.name for c in report.top_campaigns] == ["paid-b", "paid-a"]  # tie → spend
    assert report.top_campaigns[0].consensus_roas == pytest.approx(1.5)
    assert "No campaigns with spend" not in render_markdown(report)


def test_budget_shift_only_toward_a_target_above_break_even() -> None:
    rows: list[KpiValue] = []
    for channel, spend, roas in (("paid_search", 1000.0, 0.68), ("paid_social", 2000.0, 0.2)):
        rows.append(_v("spend", spend, dim="channel", member=channel))
        for model in MODELS:
            rows.append(_v(f"roas{_suffix(model)}", roas, dim="channel", member=channel))
            rows.append(_v(f"attributed_revenue{_suffix(model)}", roas * spend,
                           dim="channel", member=channel))
    below = _report(rows)
    assert not [r for r in below.recommendations if r.action is Action.SHIFT_BUDGET]
    above = _report([
        r if not (r.kpi.startswith("roas") and r.dimension_value == "paid_search")
        else r.model_copy(update={"value": 1.4}) for r in rows
    ])
    shift = next(r for r in above.recommendations if r.action is Action.SHIFT_BUDGET)
    assert (shift.channel, shift.to_channel, shift.amount) == ("paid_social", "paid_search", 200.0)
    assert shift.consensus_roas == pytest.approx(1.4)


def test_comparison_without_base_data_is_not_a_rise() -> None:
    rows = [_v("spend", 51950.0), _v("spend", 0.0, "2030-03"), _v("spend", 40000.0, "2031-02"),
            _v("mrr", 0.0, "2031-02"), _v("mrr", 9000.0)]
    coverage = {s: (dt.date(2031, 2, 10), dt.date(2031, 3, 31))
                for s in ("spend", "subscriptions", "pipeline_events", "touchpoints")}
    report = _report(rows, coverage=coverage)
    spend = next(t for t in report.headline if t.kpi == "spend")
    assert spend.value == 51950.0
    assert spend.yoy.change is None and spend.yoy.unavailable == "no data for 2030-03"
    assert spend.pop.unavailable == "no data before 2031-02-10"
    assert report.mrr_bridge.starting is None
    text = render_markdown(report)
    assert "▲ $51,950" not in text and "n/a (no data for 2030-03)" in text
    assert "n/a (no data for 2030-03)" in render_html(report, with_charts=False)


def test_mrr_bridge_chart_draws_without_a_starting_mrr() -> None:
    """A period with an ending MRR but no starting MRR and no movements (billing data that
    begins with accounts already paying): the chart (HTML and PDF) must still draw, not
    crash the whole report."""
    from pulse_reporting.render.drawing import mrr_bridge

    report = _report([_v("mrr", 4500.0)])
    assert report.mrr_bridge.starting is None and report.mrr_bridge.ending == 4500.0
    assert report.mrr_bridge.new is None
    drawing = mrr_bridge(report)
    assert drawing is not None and drawing.contents


def test_period_without_source_data_says_so_instead_of_zero() -> None:
    rows = [_v("spend", 0.0), _v("spend", 0.0, dim="channel", member="paid_search")]
    coverage = {s: (dt.date(2031, 6, 1), dt.date(2031, 7, 15))
                for s in ("spend", "subscriptions", "pipeline_events", "touchpoints")}
    report = _report(rows, coverage=coverage)
    assert next(t for t in report.headline if t.kpi == "spend").value is None
    assert report.channels == []
    assert any("No source data for 2031-03" in n for n in report.notes)
    assert "$0.00" not in render_markdown(report)


def test_model_without_results_names_the_command() -> None:
    report = _report(_campaigns({"a": (100.0, {"last_touch": 1.0})}), model="markov")
    assert any("pulse attribution recompute --model markov" in n for n in report.notes)


def test_last_periods_forecast_is_checked_against_the_actual() -> None:
    start = MONTH.start - dt.timedelta(days=70)
    daily = [
        TrendPoint(day=start + dt.timedelta(days=i),
                   value=100.0 + 20.0 * math.sin(2 * math.pi * i / 7) + (i % 3))
        for i in range((MONTH.last_day - start).days + 1)
    ]
    report = _report([_v("spend", 1.0)], daily={"spend": daily})
    check = next(c for c in report.forecast_check if c.kpi == "spend")
    actual = sum(p.value or 0.0 for p in daily if p.day >= MONTH.start)
    assert check.days == 31 and check.actual == pytest.approx(actual)
    assert check.inside == (check.lower <= actual <= check.upper)
    assert abs(check.error_pct or 1.0) < 0.05  # a weekly pattern it has seen 10 times
    series = next(f for f in report.forecast if f.kpi == "spend")
    assert series.points[0].day == MONTH.end
    assert series.total_lower_95 is not None and series.total_lower_95 <= series.total_lower
    assert "Last period's forecast vs actual" in render_markdown(report)


def test_user_text_is_escaped_in_markdown_and_html() -> None:
    evil = "<script>x</script>|*"
    report = _report(_campaigns({evil: (5000.0, {m: 0.1 for m in MODELS})}))
    md = render_markdown(report)
    assert "<script>" not in md and "\\<script\\>" in md
    html = render_html(report, with_charts=False)
    assert "<script>" not in html and "&lt;script&gt;" in html
