"""One test group per rule type: breaching, not breaching, not evaluable."""

from __future__ import annotations

import datetime as dt

import pytest

from pulse_alerts.domain.evaluate import (
    EvalContext,
    evaluate,
    evaluate_freshness,
    ewma_stats,
)
from pulse_alerts.domain.rules import RuleBase, load_rules
from pulse_shared.events import Grain, KpiSnapshot

NOW = dt.datetime(2026, 11, 25, 12, 0, tzinfo=dt.UTC)


def rule(text: str) -> RuleBase:
    return load_rules(f"rules:\n  - {text}\n").rules[0]


def snap(
    value: float | None,
    kpi: str = "spend",
    grain: Grain = Grain.DAY,
    dimension: str = "channel",
    dimension_value: str = "paid_search",
) -> KpiSnapshot:
    period = {"day": "2026-11-25", "week": "2026-W48", "month": "2026-11"}[grain.value]
    start = dt.date(2026, 11, 1) if grain is Grain.MONTH else dt.date(2026, 11, 25)
    return KpiSnapshot(
        kpi=kpi, grain=grain, period=period, period_start=start, dimension=dimension,
        dimension_value=dimension_value, value=value, unit="USD", computed_at=NOW,
    )


class TestThreshold:
    above = "{name: t, type: threshold, kpi: spend, op: above, threshold: 100}"
    below = "{name: t, type: threshold, kpi: spend, op: below, threshold: 100}"

    def test_above(self) -> None:
        obs = evaluate(rule(self.above), snap(150.0))
        assert obs is not None and obs.breaching and obs.value == 150.0
        assert obs.threshold == 100.0
        assert obs.labels == {
            "alertname": "t", "severity": "warning", "kpi": "spend", "grain": "day",
            "dimension": "channel", "dimension_value": "paid_search",
            "channel": "paid_search",
        }
        not_breaching = evaluate(rule(self.above), snap(100.0))
        assert not_breaching is not None and not not_breaching.breaching

    def test_below(self) -> None:
        obs = evaluate(rule(self.below), snap(50.0))
        assert obs is not None and obs.breaching

    def test_undefined_value_is_not_evaluated(self) -> None:
        assert evaluate(rule(self.above), snap(None)) is None

    def test_fingerprint_is_rule_plus_labels(self) -> None:
        a = evaluate(rule(self.above), snap(150.0))
        b = evaluate(rule(self.above), snap(10.0))
        c = evaluate(rule(self.above), snap(150.0, dimension_value="email"))
        assert a is not None and b is not None and c is not None
        assert a.fingerprint == b.fingerprint != c.fingerprint

    def test_templated_labels(self) -> None:
        r = rule(
            "{name: t, type: threshold, kpi: spend, op: above, threshold: 1,"
            " labels: {route: 'team-{dimension_value}'}}"
        )
        obs = evaluate(r, snap(5.0))
        assert obs is not None and obs.labels["route"] == "team-paid_search"


class TestChange:
    r = "{name: c, type: change, kpi: leads, direction: down, threshold_pct: 30, min_base: 5}"

    def test_drop_beyond_threshold(self) -> None:
        obs = evaluate(rule(self.r), snap(60.0, kpi="leads"), EvalContext(history=[90, 100]))
        assert obs is not None and obs.breaching
        assert obs.context["change_pct"] == pytest.approx(-40.0)
        assert obs.context["baseline"] == 100

    def test_small_drop_and_increase_do_not_breach(self) -> None:
        for value in (80.0, 150.0):
            obs = evaluate(rule(self.r), snap(value, kpi="leads"), EvalContext(history=[100]))
            assert obs is not None and not obs.breaching

    def test_periods_back_and_min_base(self) -> None:
        r = rule("{name: c, type: change, kpi: leads, threshold_pct: 50, periods_back: 2}")
        obs = evaluate(r, snap(10.0, kpi="leads"), EvalContext(history=[40, 10]))
        assert obs is not None and obs.breaching  # vs 40 two periods back: -75 %
        assert evaluate(rule(self.r), snap(1.0, kpi="leads"), EvalContext(history=[3])) is None
        assert evaluate(rule(self.r), snap(1.0, kpi="leads"), EvalContext(history=[])) is None


class TestZScore:
    r = "{name: z, type: zscore, kpi: cpl, direction: up, threshold: 3, window: 10, min_periods: 5}"
    history = [10.0, 11.0, 9.0, 10.0, 10.5, 9.5, 10.0, 11.0, 9.0, 10.0]

    def test_spike_breaches(self) -> None:
        obs = evaluate(rule(self.r), snap(20.0, kpi="cpl"), EvalContext(history=self.history))
        assert obs is not None and obs.breaching and obs.context["zscore"] > 3
        assert obs.context["baseline"] == pytest.approx(10.0)

    def test_normal_and_dip_do_not_breach_upward_rule(self) -> None:
        for value in (10.8, 0.0):
            obs = evaluate(rule(self.r), snap(value, kpi="cpl"), EvalContext(history=self.history))
            assert obs is not None and not obs.breaching

    def test_not_enough_history(self) -> None:
        ctx = EvalContext(history=[10.0, None, 11.0])
        assert evaluate(rule(self.r), snap(20.0, kpi="cpl"), ctx) is None


class TestEwma:
    r = "{name: e, type: ewma, kpi: ctr, alpha: 0.3, threshold: 3, min_periods: 5}"

    def test_ewma_stats(self) -> None:
        mean, std = ewma_stats([1.0, 1.0, 1.0], 0.5)
        assert (mean, std) == (1.0, 0.0)
        mean, _ = ewma_stats([0.0, 10.0], 0.3)
        assert mean == pytest.approx(3.0)

    def test_deviation_either_way(self) -> None:
        history = [0.05, 0.052, 0.049, 0.051, 0.05, 0.048, 0.05, 0.051]
        low = evaluate(rule(self.r), snap(0.01, kpi="ctr"), EvalContext(history=history))
        assert low is not None and low.breaching and low.context["zscore"] < -3
        ok = evaluate(rule(self.r), snap(0.0505, kpi="ctr"), EvalContext(history=history))
        assert ok is not None and not ok.breaching


class TestBudget:
    pacing = "{name: b, type: budget, mode: pacing, dimension: channel, tolerance_pct: 10}"

    def test_projected_overspend(self) -> None:
        s = snap(12000.0, kpi="projected_spend", grain=Grain.MONTH)
        obs = evaluate(rule(self.pacing), s, EvalContext(related={"budget": [10000.0]}))
        assert obs is not None and obs.breaching
        assert obs.threshold == pytest.approx(11000.0) and obs.context["baseline"] == 10000.0

    def test_within_tolerance_and_no_budget(self) -> None:
        s = snap(10500.0, kpi="projected_spend", grain=Grain.MONTH)
        obs = evaluate(rule(self.pacing), s, EvalContext(related={"budget": [10000.0]}))
        assert obs is not None and not obs.breaching
        assert evaluate(rule(self.pacing), s, EvalContext(related={"budget": []})) is None

    def test_overspend_mode(self) -> None:
        r = rule("{name: o, type: budget, mode: overspend, tolerance_pct: 0}")
        s = snap(10001.0, kpi="spend_to_date", grain=Grain.MONTH)
        obs = evaluate(r, s, EvalContext(related={"budget": [10000.0]}))
        assert obs is not None and obs.breaching


class TestCampaignStatus:
    def campaign_snap(self, kpi: str = "spend") -> KpiSnapshot:
        return snap(10.0, kpi=kpi, dimension="campaign", dimension_value="cmp-1")

    def test_spend_without_clicks(self) -> None:
        r = rule("{name: s, type: campaign_status, condition: spend_without_clicks, days: 3}")
        ctx = EvalContext(related={"spend": [50.0, 60.0, 10.0], "clicks": [0.0, None, 0.0]})
        obs = evaluate(r, self.campaign_snap("clicks"), ctx)
        assert obs is not None and obs.breaching and obs.value == 120.0
        assert obs.labels["campaign"] == "cmp-1" and obs.kpi == "spend"
        ctx = EvalContext(related={"spend": [50.0, 60.0, 10.0], "clicks": [0.0, 1.0, 0.0]})
        clicked = evaluate(r, self.campaign_snap(), ctx)
        assert clicked is not None and not clicked.breaching

    def test_one_day_without_spend_is_not_spend_without_clicks(self) -> None:
        r = rule("{name: s, type: campaign_status, condition: spend_without_leads, days: 3}")
        ctx = EvalContext(related={"spend": [50.0, 0.0, 10.0], "leads": [0.0, 0.0, 0.0]})
        obs = evaluate(r, self.campaign_snap(), ctx)
        assert obs is not None and not obs.breaching

    def test_no_spend_on_active_campaign(self) -> None:
        r = rule("{name: n, type: campaign_status, condition: no_spend, days: 2}")
        ctx = EvalContext(related={"spend": [0.0, None], "budget": [5000.0]})
        obs = evaluate(r, self.campaign_snap(), ctx)
        assert obs is not None and obs.breaching
        inactive = EvalContext(related={"spend": [0.0, 0.0], "budget": []})
        obs = evaluate(r, self.campaign_snap(), inactive)
        assert obs is not None and not obs.breaching

    def test_not_enough_days(self) -> None:
        r = rule("{name: s, type: campaign_status, condition: spend_without_clicks, days: 3}")
        ctx = EvalContext(related={"spend": [50.0], "clicks": [0.0]})
        assert evaluate(r, self.campaign_snap(), ctx) is None


class TestFreshness:
    r = "{name: f, type: freshness, source: spend, max_age: 60m}"

    def test_stale_and_fresh(self) -> None:
        fresh_rule = rule(self.r)
        stale = evaluate_freshness(fresh_rule, NOW - dt.timedelta(minutes=90), NOW)  # type: ignore[arg-type]
        assert stale is not None and stale.breaching and stale.value == pytest.approx(90.0)
        assert stale.labels["source"] == "spend"
        fresh = evaluate_freshness(fresh_rule, NOW - dt.timedelta(minutes=5), NOW)  # type: ignore[arg-type]
        assert fresh is not None and not fresh.breaching
        assert evaluate_freshness(fresh_rule, None, NOW) is None  # type: ignore[arg-type]

    def test_freshness_rules_never_match_snapshots(self) -> None:
        assert not rule(self.r).matches("spend", "day", "all", "")


class TestForecast:
    def test_interval_crossing_with_fake_forecaster(self) -> None:
        r = rule("{name: f, type: forecast, kpi: spend, op: above, threshold: 150,"
                 " horizon: 7, min_periods: 7}")
        calls: list[tuple[int, int, int]] = []

        def forecaster(values, horizon, level):  # type: ignore[no-untyped-def]
            calls.append((len(values), horizon, level))
            return [(100.0 + i, 90.0 + i, 140.0 + 3 * i) for i in range(horizon)]

        ctx = EvalContext(history=[100.0] * 10, forecaster=forecaster)
        obs = evaluate(r, snap(100.0), ctx)
        assert calls == [(11, 7, 90)]
        assert obs is not None and obs.breaching and obs.value == 158.0  # upper bound max
        r_mean = rule("{name: f, type: forecast, kpi: spend, op: above, threshold: 150,"
                      " horizon: 7, min_periods: 7, bound: mean}")
        obs = evaluate(r_mean, snap(100.0), ctx)
        assert obs is not None and not obs.breaching

    def test_statsforecast_intervals_on_a_trend(self) -> None:
        from pulse_alerts.forecast import forecast_intervals

        values = [100.0 + 3 * i + (5 if i % 7 == 0 else 0) for i in range(42)]
        path = forecast_intervals(values, 14, 90)
        assert len(path) == 14
        assert all(lo <= mean <= hi for mean, lo, hi in path)
        assert path[-1][0] > values[-1]  # the trend continues
        r = rule("{name: f, type: forecast, kpi: spend, op: above, threshold: 200,"
                 " horizon: 14}")
        obs = evaluate(r, snap(values[-1]), EvalContext(history=values[:-1],
                                                        forecaster=forecast_intervals))
        assert obs is not None and obs.breaching


def _constant_forecaster(values, horizon, level):  # type: ignore[no-untyped-def]
    return [(values[-1], values[-1] - 1, values[-1] + 1)] * horizon


@pytest.mark.parametrize(("text", "triggering"), [
    ("{name: t, type: threshold, kpi: spend, op: above, threshold: 100,"
     " labels: {route: 'team-{dimension_value}'}}", snap(150.0)),
    ("{name: c, type: change, kpi: leads, direction: down, threshold_pct: 20}",
     snap(60.0, kpi="leads")),
    ("{name: z, type: zscore, kpi: cpl, threshold: 3, min_periods: 5}", snap(20.0, kpi="cpl")),
    ("{name: e, type: ewma, kpi: ctr, alpha: 0.3, threshold: 3, min_periods: 5}",
     snap(0.01, kpi="ctr")),
    ("{name: b, type: budget, mode: pacing, dimension: channel, tolerance_pct: 10}",
     snap(12000.0, kpi="projected_spend", grain=Grain.MONTH)),
    ("{name: s, type: campaign_status, condition: spend_without_clicks, days: 3}",
     snap(1.0, kpi="clicks", dimension="campaign", dimension_value="cmp-1")),
    ("{name: n, type: campaign_status, condition: no_spend, days: 2}",
     snap(0.0, kpi="spend", dimension="campaign", dimension_value="cmp-1")),
    ("{name: f, type: forecast, kpi: spend, op: above, threshold: 150, horizon: 7,"
     " min_periods: 7}", snap(100.0)),
])
def test_series_of_names_the_alert_an_evaluation_updates(
    text: str, triggering: KpiSnapshot
) -> None:
    """The engine skips a snapshot older than the period its alert holds before reading
    anything (Engine.superseded): that alert is found by ``series_of``, so it must be the
    very one the evaluation observes, for every rule type."""
    from pulse_alerts.domain.model import fingerprint_of

    r = rule(text)
    ctx = EvalContext(
        history=[10.0, 12.0, 11.0, 13.0, 12.0, 11.0, 12.0, 10.0, 11.0, 12.0],
        related={"budget": [10000.0], "spend": [5.0, 6.0, 7.0], "clicks": [1.0, 1.0, 1.0],
                 "prior_spend": [1.0] * 7},
        forecaster=_constant_forecaster,
    )
    obs = evaluate(r, triggering, ctx)
    assert obs is not None
    assert obs.fingerprint == fingerprint_of(r.name, r.series_of(triggering))

