"""Rules files: validation errors name file, rule and field; defaults and scope."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pulse_alerts.cli import app
from pulse_alerts.domain.durations import format_duration, parse_duration
from pulse_alerts.domain.rules import (
    BudgetRule,
    ForecastRule,
    KpiScope,
    RulesError,
    ThresholdRule,
    load_rules,
)
from pulse_alerts.kpi_catalog import installed_catalog
from pulse_alerts.main import default_rules_text

VALID = """
rules:
  - name: spend_high
    type: threshold
    kpi: spend
    grain: day
    dimension: channel
    dimension_value: "paid_*"
    op: above
    threshold: 100
    for: 3
    repeat_interval: 2h
  - name: leads_drop
    type: change
    kpi: leads
    direction: down
    threshold_pct: 20
    for: 15m
"""


def test_valid_file_parses_scope_for_and_repeat() -> None:
    rules = load_rules(VALID, "rules.yaml")
    spend = rules.by_name("spend_high")
    assert isinstance(spend, ThresholdRule)
    assert spend.for_.evaluations == 3 and spend.for_.duration == dt.timedelta(0)
    assert spend.repeat_interval == dt.timedelta(hours=2)
    assert spend.matches("spend", "day", "channel", "paid_search")
    assert not spend.matches("spend", "day", "channel", "email")
    assert not spend.matches("spend", "week", "channel", "paid_search")
    leads = rules.by_name("leads_drop")
    assert leads is not None and leads.for_.duration == dt.timedelta(minutes=15)
    assert [r.name for r in rules.candidates("spend")] == ["spend_high"]


def test_wildcard_kpi_rules_are_candidates_for_matching_kpis() -> None:
    rules = load_rules(
        "rules:\n  - {name: roas_low, type: threshold, kpi: 'roas*', op: below, threshold: 1}\n"
    )
    assert [r.name for r in rules.candidates("roas__linear")] == ["roas_low"]
    assert rules.candidates("spend") == []


@pytest.mark.parametrize(
    ("yaml_text", "expected"),
    [
        (
            "rules:\n  - {name: a, type: threshold, kpi: spend, op: sideways, threshold: 1}\n",
            "f.yaml: rule 'a' (#1): op: Input should be 'above' or 'below'",
        ),
        (
            "rules:\n  - {name: a, type: thresold, kpi: spend}\n",
            "f.yaml: rule 'a' (#1): type: must be one of threshold, change",
        ),
        (
            "rules:\n  - {name: a, kpi: spend}\n",
            "f.yaml: rule 'a' (#1): type: missing",
        ),
        (
            "rules:\n  - {name: a, type: threshold, kpi: spend, op: above}\n",
            "f.yaml: rule 'a' (#1): threshold: Field required",
        ),
        (
            "rules:\n  - {name: b, type: threshold, op: above, threshold: 1, for: 5x}\n",
            "f.yaml: rule 'b' (#1): for: Value error, invalid duration '5x'",
        ),
        (
            "rules:\n  - {name: c, type: threshold, op: above, threshold: 1,"
            " annotations: {summary: '{valu}'}}\n",
            "f.yaml: rule 'c' (#1): annotations.summary: Value error, unknown template field",
        ),
        (
            "rules:\n  - {name: d, type: forecast, op: above, threshold: 1, horizon: 60}\n",
            "f.yaml: rule 'd' (#1): horizon: Input should be less than or equal to 30",
        ),
        (
            "rules:\n  - {name: e, type: threshold, op: above, threshold: 1, colour: red}\n",
            "f.yaml: rule 'e' (#1): colour: Extra inputs are not permitted",
        ),
        (
            "rules:\n  - {name: x, type: threshold, op: above, threshold: 1}\n"
            "  - {name: x, type: threshold, op: below, threshold: 1}\n",
            "f.yaml: rule 'x' (#2): name: duplicate of rule #1",
        ),
        ("rules: [\n", "f.yaml: line"),
        ("alerts: []\n", "f.yaml: top level must be a mapping with a 'rules' list"),
    ],
)
def test_errors_name_file_rule_and_field(yaml_text: str, expected: str) -> None:
    with pytest.raises(RulesError) as info:
        load_rules(yaml_text, "f.yaml")
    assert any(p.startswith(expected) for p in info.value.problems), info.value.problems


def test_budget_and_forecast_defaults() -> None:
    rules = load_rules(
        "rules:\n"
        "  - {name: pace, type: budget, mode: pacing}\n"
        "  - {name: over, type: budget, mode: overspend}\n"
        "  - {name: fc, type: forecast, kpi: spend, op: below, threshold: 5}\n"
    )
    pace, over, fc = rules.rules
    assert isinstance(pace, BudgetRule) and pace.kpi == "projected_spend"
    assert pace.grain is not None and pace.grain.value == "month"
    assert isinstance(over, BudgetRule) and over.kpi == "spend_to_date"
    assert isinstance(fc, ForecastRule) and fc.effective_bound == "lower"


def test_default_rules_file_is_valid_and_trips_on_demo_data() -> None:
    from pulse_alerts.domain.evaluate import evaluate
    from pulse_ingest.domain.generator import generate_dataset
    from pulse_shared.events import Grain, KpiSnapshot

    rules = load_rules(default_rules_text(), "default.yaml")
    spend = rules.by_name("daily_spend_high")
    assert isinstance(spend, ThresholdRule) and spend.op == "above"
    tuesday = dt.date(2026, 11, 24)
    dataset = generate_dataset(seed=7, days=7, accounts=20, end=tuesday)
    daily: dict[dt.date, float] = {}
    for row in dataset.spend:
        daily[row.date] = daily.get(row.date, 0.0) + float(row.amount)
    breaching = {}
    for day, total in daily.items():
        obs = evaluate(spend, KpiSnapshot(
            kpi="spend", grain=Grain.DAY, period=day.isoformat(), period_start=day,
            dimension="all", value=total, unit="USD",
            computed_at=dt.datetime(2026, 11, 25, tzinfo=dt.UTC)))
        assert obs is not None
        breaching[day.weekday() < 5] = breaching.get(day.weekday() < 5, set()) | {obs.breaching}
    assert breaching == {True: {True}, False: {False}}  # every weekday trips, no weekend


def test_durations() -> None:
    assert parse_duration("1h30m") == dt.timedelta(minutes=90)
    assert parse_duration(90) == dt.timedelta(seconds=90)
    assert format_duration(dt.timedelta(days=1, minutes=5)) == "1d5m"
    with pytest.raises(ValueError):
        parse_duration("soon")


def test_cli_rules_check(tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text(VALID)
    bad = tmp_path / "bad.yaml"
    bad.write_text("rules:\n  - {name: a, type: threshold, kpi: spend, op: above}\n")
    runner = CliRunner()
    ok = runner.invoke(app, ["rules", "check", str(good)])
    assert ok.exit_code == 0
    assert "2 rule(s) OK (1 change, 1 threshold)" in ok.output
    failed = runner.invoke(app, ["rules", "check", str(bad)])
    assert failed.exit_code == 1
    assert f"{bad}: rule 'a' (#1): threshold: Field required" in failed.output


def test_channel_and_campaign_shorthand_scope() -> None:
    rules = load_rules(
        "rules:\n"
        "  - {name: a, type: threshold, kpi: spend, channel: 'paid_*', op: above, threshold: 1}\n"
        "  - {name: b, type: threshold, kpi: spend, campaign: 'gads-*', op: above, threshold: 1}\n"
    )
    a, b = rules.rules
    assert (a.dimension, a.dimension_value) == ("channel", "paid_*")
    assert a.matches("spend", "day", "channel", "paid_social")
    assert not a.matches("spend", "day", "campaign", "paid_social")
    assert b.matches("spend", "week", "campaign", "gads-brand")
    with pytest.raises(RulesError) as info:
        load_rules("rules:\n  - {name: c, type: threshold, channel: x, campaign: y,"
                   " op: above, threshold: 1}\n", "f.yaml")
    assert info.value.problems == [
        "f.yaml: rule 'c' (#1): (rule): Value error, set either channel or campaign, not both"
    ]


def test_backtest_period_ends() -> None:
    from pulse_alerts.domain.backtest import period_end
    from pulse_shared.events import Grain

    def end(grain: Grain, day: dt.date) -> dt.date:
        return period_end(grain, day).date()

    assert end(Grain.DAY, dt.date(2026, 12, 31)) == dt.date(2027, 1, 1)
    assert end(Grain.WEEK, dt.date(2026, 11, 23)) == dt.date(2026, 11, 30)
    assert end(Grain.MONTH, dt.date(2026, 2, 1)) == dt.date(2026, 3, 1)
    assert end(Grain.QUARTER, dt.date(2026, 10, 1)) == dt.date(2027, 1, 1)
    assert end(Grain.QUARTER, dt.date(2026, 7, 1)) == dt.date(2026, 10, 1)


CATALOG = {
    "spend": KpiScope(frozenset({"day", "week", "month", "quarter"}),
                      frozenset({"all", "channel", "campaign"})),
    "mrr": KpiScope(frozenset({"day", "week", "month", "quarter"}), frozenset({"all"})),
    "pacing": KpiScope(frozenset({"month", "quarter"}), frozenset({"all", "channel"})),
    "roas__linear": KpiScope(frozenset({"day", "month"}), frozenset({"all", "channel"})),
    "roas__markov": KpiScope(frozenset({"day", "month"}), frozenset({"all", "channel"})),
}


def threshold_rule(scope: str) -> str:
    return f"rules:\n  - {{name: r, type: threshold, {scope}, op: above, threshold: 1}}\n"


@pytest.mark.parametrize(
    ("scope", "problem"),
    [
        ("kpi: spnd", "kpi: unknown KPI 'spnd' (did you mean spend?); valid: spend, mrr, "
                      "pacing, roas__<model> (<model>: linear, markov)"),
        ("kpi: 'roas__*', grain: week",
         "grain: KPI 'roas__*' has no grain 'week'; valid: day, month"),
        ("kpi: pacing, grain: day", "grain: KPI 'pacing' has no grain 'day'; valid: month, quarter"),
        ("kpi: mrr, dimension: channel",
         "dimension: KPI 'mrr' has no dimension 'channel'; valid: all"),
        ("kpi: spend, dimension: chanel",
         "dimension: unknown dimension 'chanel'; valid: all, campaign, channel"),
        ("kpi: spend, grain: daily",
         "grain: unknown grain 'daily'; valid: 'day', 'week', 'month' or 'quarter'"),
    ],
)
def test_a_rule_that_can_never_match_is_refused_with_the_choices(scope: str, problem: str) -> None:
    with pytest.raises(RulesError) as info:
        load_rules(threshold_rule(scope), "f.yaml", CATALOG)
    assert info.value.problems == [f"f.yaml: rule 'r' (#1): {problem}"]
    assert info.value.code == 2


def test_scope_checks_accept_valid_kpis_and_check_dimensions_without_a_catalog() -> None:
    for scope in ("kpi: roas__linear, grain: month, channel: 'paid_*'", "kpi: 'roas__*'",
                  "kpi: pacing, grain: month", "kpi: '*', dimension: 'c*'"):
        assert len(load_rules(threshold_rule(scope), "f.yaml", CATALOG).rules) == 1
    # Without a catalog KPI names are not checked, dimensions still are.
    assert load_rules(threshold_rule("kpi: spnd")).rules[0].kpi == "spnd"
    with pytest.raises(RulesError) as info:
        load_rules(threshold_rule("kpi: spend, dimension: planet"), "f.yaml")
    assert info.value.problems == [
        "f.yaml: rule 'r' (#1): dimension: unknown dimension 'planet'; valid: all, channel, "
        "campaign, sending_domain, segment, plan, region, industry, employee_band"]
    # Other invalid fields keep exit status 1.
    with pytest.raises(RulesError) as other:
        load_rules("rules:\n  - {name: a, type: threshold, kpi: spend, op: above}\n")
    assert other.value.code == 1


def test_the_installed_kpi_catalog_knows_per_model_names() -> None:
    catalog = installed_catalog()
    assert "roas__linear" in catalog and "spend" in catalog
    assert len(load_rules(default_rules_text(), "default.yaml", catalog).rules) >= 1


def test_cli_rules_check_refuses_an_unknown_kpi_with_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(threshold_rule("kpi: spnd, grain: day"))
    result = CliRunner().invoke(app, ["rules", "check", str(bad)])
    assert result.exit_code == 2
    [line] = result.output.strip().splitlines()
    assert line.startswith(f"error: {bad}: rule 'r' (#1): kpi: unknown KPI 'spnd'")
    assert "roas__<model>" in line and "linear" in line and "mrr" in line


def test_the_service_refuses_to_start_with_a_rule_that_can_never_match(tmp_path: Path) -> None:
    from pulse_alerts.main import load_ruleset
    from pulse_alerts.settings import AlertsSettings

    rules_file = tmp_path / "rules.yaml"
    rules_file.write_text(threshold_rule("kpi: spend, grain: day, dimension: planet"))
    with pytest.raises(RulesError) as info:
        load_ruleset(AlertsSettings(rules_file=rules_file))
    assert info.value.code == 2 and "unknown dimension 'planet'" in info.value.problems[0]
    rules_file.write_text(threshold_rule("kpi: spnd"))
    with pytest.raises(RulesError, match="unknown KPI 'spnd'"):
        load_ruleset(AlertsSettings(rules_file=rules_file))
