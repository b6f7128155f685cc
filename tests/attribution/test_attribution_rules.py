"""Rule-based models on hand-worked journeys."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from pulse_attribution.domain.conversions import from_pipeline, from_subscription
from pulse_attribution.domain.credits import split_revenue, versioned_credits
from pulse_attribution.domain.journeys import affected_conversions, milestone_times
from pulse_attribution.domain.model import Conversion, Milestone, Touch
from pulse_attribution.domain.rules import all_rule_credits, journey_window, rule_credits
from pulse_attribution.settings import AttributionSettings
from pulse_shared.attribution_models import RULE_MODELS
from pulse_shared.events import (
    Channel,
    PipelineEvent,
    PipelineStage,
    Subscription,
    SubscriptionEventType,
)

D0 = dt.datetime(2026, 9, 1, tzinfo=dt.UTC)


def day(n: float) -> dt.datetime:
    return D0 + dt.timedelta(days=n)


def t(event_id: str, at: float, channel: Channel = Channel.EMAIL) -> Touch:
    return Touch(event_id=event_id, occurred_at=day(at), channel=channel)


def conv(milestone: Milestone = Milestone.WON, at: float = 10, revenue: str = "100") -> Conversion:
    return Conversion("c1", "acc", milestone, day(at), Decimal(revenue))


def credits(model: str, journey: list[Touch], conversion: Conversion, **kw: object) -> dict[str, float]:
    return {c.touch.event_id: c.credit for c in rule_credits(model, journey, conversion, **kw)}  # type: ignore[arg-type]


J3 = [t("a", 0, Channel.PAID_SEARCH), t("b", 5, Channel.EMAIL), t("c", 9, Channel.DIRECT)]


def test_single_touch_gets_everything_under_every_model() -> None:
    journey = [t("only", 3)]
    for model, result in all_rule_credits(journey, conv()).items():
        assert [(c.touch.event_id, c.credit) for c in result] == [("only", 1.0)], model


def test_empty_journey_has_no_credits() -> None:
    assert all(v == [] for v in all_rule_credits([], conv()).values())


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ("first_touch", {"a": 1.0}),
        ("last_touch", {"c": 1.0}),
        ("last_non_direct", {"b": 1.0}),
        ("linear", {"a": 1 / 3, "b": 1 / 3, "c": 1 / 3}),
        ("position_based", {"a": 0.4, "b": 0.2, "c": 0.4}),
    ],
)
def test_three_touches(model: str, expected: dict[str, float]) -> None:
    assert credits(model, J3, conv()) == pytest.approx(expected)


def test_two_touches() -> None:
    journey = J3[:2]
    assert credits("position_based", journey, conv()) == {"a": 0.5, "b": 0.5}
    assert credits("linear", journey, conv()) == {"a": 0.5, "b": 0.5}
    assert credits("last_non_direct", journey, conv()) == {"b": 1.0}


def test_many_touches_position_based_splits_middle() -> None:
    journey = [t(f"t{i}", i) for i in range(6)]
    got = credits("position_based", journey, conv())
    assert got == pytest.approx({"t0": 0.4, "t1": 0.05, "t2": 0.05, "t3": 0.05, "t4": 0.05, "t5": 0.4})


def test_last_non_direct_all_direct_falls_back_to_last() -> None:
    journey = [t("x", 1, Channel.DIRECT), t("y", 2, Channel.DIRECT)]
    assert credits("last_non_direct", journey, conv()) == {"y": 1.0}


def test_time_decay_half_life() -> None:
    # Ages 10, 5 and 1 days; half-life 7: weights 2^(-10/7), 2^(-5/7), 2^(-1/7).
    got = credits("time_decay", J3, conv(at=10))
    raw = [0.5 ** (10 / 7), 0.5 ** (5 / 7), 0.5 ** (1 / 7)]
    expected = {k: w / sum(raw) for k, w in zip("abc", raw, strict=True)}
    assert got == pytest.approx(expected)
    assert got == pytest.approx({"a": 0.19690, "b": 0.32305, "c": 0.48005}, abs=1e-5)
    # A touch one half-life older gets exactly half the weight.
    pair = [t("old", 3), t("new", 10)]
    got = credits("time_decay", pair, conv(at=10))
    assert got["old"] / got["new"] == pytest.approx(0.5)
    # Custom half-life.
    got = credits("time_decay", pair, conv(at=10), half_life_days=3.5)
    assert got["old"] / got["new"] == pytest.approx(0.25)


def test_ties_are_broken_by_event_id() -> None:
    journey = journey_window([t("z", 1), t("m", 1), t("k", 2)], day(10), 90)
    assert [x.event_id for x in journey] == ["m", "z", "k"]
    assert credits("first_touch", journey, conv()) == {"m": 1.0}


def test_lookback_edges_inclusive() -> None:
    at = day(100)
    inside_edge = Touch("edge", at - dt.timedelta(days=90), Channel.EMAIL)
    just_outside = Touch("out", at - dt.timedelta(days=90, milliseconds=1), Channel.EMAIL)
    at_conversion = Touch("same", at, Channel.EMAIL)
    after = Touch("after", at + dt.timedelta(milliseconds=1), Channel.EMAIL)
    window = journey_window([after, at_conversion, just_outside, inside_edge], at, 90)
    assert [x.event_id for x in window] == ["edge", "same"]
    assert [x.event_id for x in journey_window([inside_edge, at_conversion], at, 30)] == ["same"]


def test_duplicate_touches_are_counted_once() -> None:
    journey = journey_window([t("a", 1), t("a", 1), t("b", 2)], day(10), 90)
    assert credits("linear", journey, conv()) == {"a": 0.5, "b": 0.5}


def test_w_shaped_opportunity() -> None:
    journey = [t(f"t{i}", i) for i in range(5)]
    opp = conv(Milestone.OPPORTUNITY, at=4.5)
    times = {Milestone.LEAD: day(1.5), Milestone.OPPORTUNITY: day(4.5)}
    got = credits("w_shaped", journey, opp, milestone_times=times)
    assert got == pytest.approx({"t0": 0.3, "t1": 0.3, "t2": 0.05, "t3": 0.05, "t4": 0.3})


def test_full_path_won() -> None:
    journey = [t(f"t{i}", i) for i in range(6)]
    won = conv(Milestone.WON, at=5.5)
    times = {Milestone.LEAD: day(1.5), Milestone.OPPORTUNITY: day(3.5)}
    got = credits("full_path", journey, won, milestone_times=times)
    assert got == pytest.approx(
        {"t0": 0.225, "t1": 0.225, "t2": 0.05, "t3": 0.225, "t4": 0.05, "t5": 0.225}
    )
    # W-shaped on the same won conversion: roles first, lead, opportunity.
    got = credits("w_shaped", journey, won, milestone_times=times)
    assert got == pytest.approx(
        {"t0": 0.3, "t1": 0.3, "t2": 1 / 30, "t3": 0.3, "t4": 1 / 30, "t5": 1 / 30}
    )


def test_w_shaped_lead_conversion_is_normalised() -> None:
    got = credits("w_shaped", J3, conv(Milestone.LEAD))
    assert got == pytest.approx({"a": 3 / 7, "b": 1 / 7, "c": 3 / 7})


def test_w_shaped_coinciding_roles_and_two_touches() -> None:
    journey = [t("a", 0), t("b", 1)]
    opp = conv(Milestone.OPPORTUNITY, at=2)
    got = credits("w_shaped", journey, opp, milestone_times={Milestone.LEAD: day(0.5)})
    assert got == pytest.approx({"a": 2 / 3, "b": 1 / 3})


def test_full_path_with_skipped_milestones_puts_roles_on_last_touch() -> None:
    journey = [t("a", 0), t("b", 1), t("c", 2)]
    got = credits("full_path", journey, conv(Milestone.WON, at=3), milestone_times={})
    assert got == pytest.approx({"a": 0.225, "b": 0.1, "c": 0.675})


def test_new_subscription_counts_as_closed_won_role() -> None:
    journey = [t("a", 0), t("b", 1), t("c", 2), t("d", 3)]
    sub = conv(Milestone.NEW_SUBSCRIPTION, at=3.5)
    times = {Milestone.LEAD: day(0.5), Milestone.OPPORTUNITY: day(1.5)}
    got = credits("full_path", journey, sub, milestone_times=times)
    assert got == pytest.approx({"a": 0.45, "b": 0.225, "c": 0.1, "d": 0.225})


def test_lead_before_first_touch_goes_to_first_touch() -> None:
    journey = [t("a", 5), t("b", 6), t("c", 7)]
    opp = conv(Milestone.OPPORTUNITY, at=8)
    got = credits("w_shaped", journey, opp, milestone_times={Milestone.LEAD: day(1)})
    assert got == pytest.approx({"a": 0.6, "b": 0.1, "c": 0.3})


def test_credits_sum_to_one_and_are_non_negative() -> None:
    journey = [t(f"t{i}", i * 0.7, list(Channel)[i % 5]) for i in range(17)]
    times = {Milestone.LEAD: day(3), Milestone.OPPORTUNITY: day(8)}
    for milestone in Milestone:
        result = all_rule_credits(journey, conv(milestone, at=20), milestone_times=times)
        assert set(result) == set(RULE_MODELS)
        for model, cs in result.items():
            assert sum(c.credit for c in cs) == pytest.approx(1.0), (milestone, model)
            assert all(c.credit > 0 for c in cs)


def test_unknown_model_rejected() -> None:
    with pytest.raises(ValueError):
        rule_credits("markov", J3, conv())


def test_milestone_times_use_earliest_up_to_conversion() -> None:
    won = Conversion("w", "acc", Milestone.WON, day(10), Decimal(0))
    others = [
        Conversion("l2", "acc", Milestone.LEAD, day(4), Decimal(0)),
        Conversion("l1", "acc", Milestone.LEAD, day(2), Decimal(0)),
        Conversion("o", "acc", Milestone.OPPORTUNITY, day(12), Decimal(0)),
        Conversion("x", "other", Milestone.OPPORTUNITY, day(5), Decimal(0)),
    ]
    assert milestone_times(won, others) == {Milestone.LEAD: day(2)}


def test_affected_conversions_respect_per_milestone_lookback() -> None:
    settings = AttributionSettings(
        lookback_days=30, lookback_days_by_milestone={Milestone.WON: 120}
    )
    lead = Conversion("l", "acc", Milestone.LEAD, day(100), Decimal(0))
    won = Conversion("w", "acc", Milestone.WON, day(100), Decimal(0))
    late = {"acc": [t("late", 20)]}  # 80 days before both conversions
    assert affected_conversions([lead, won], late, settings.lookback_for) == [won]
    assert affected_conversions([lead, won], {"acc": [t("after", 101)]}, settings.lookback_for) == []


def test_conversion_mapping() -> None:
    base = {"event_id": "e", "occurred_at": D0, "account_id": "acc"}
    assert from_pipeline(PipelineEvent(**base, stage=PipelineStage.MQL)) is None  # type: ignore[arg-type]
    assert from_pipeline(PipelineEvent(**base, stage=PipelineStage.LOST)) is None  # type: ignore[arg-type]
    lead = from_pipeline(PipelineEvent(**base, stage=PipelineStage.LEAD))  # type: ignore[arg-type]
    assert lead is not None and lead.milestone == Milestone.LEAD and lead.revenue == 0
    won = from_pipeline(PipelineEvent(**base, stage=PipelineStage.WON, amount=Decimal("12.5")))  # type: ignore[arg-type]
    assert won is not None and won.milestone == Milestone.WON and won.revenue == Decimal("12.5")
    started = from_subscription(
        Subscription(**base, event_type=SubscriptionEventType.SUBSCRIPTION_STARTED, mrr=Decimal("99.5"))  # type: ignore[arg-type]
    )
    assert started is not None and started.milestone == Milestone.NEW_SUBSCRIPTION
    assert started.revenue == Decimal("1194.0")
    trial = Subscription(**base, event_type=SubscriptionEventType.TRIAL_STARTED, mrr=Decimal(0))  # type: ignore[arg-type]
    assert from_subscription(trial) is None


def test_split_revenue_adds_up_exactly() -> None:
    parts = split_revenue(Decimal("100"), [1 / 3, 1 / 3, 1 / 3])
    assert sum(parts) == Decimal("100") and all(p >= Decimal("33.3333") for p in parts)
    assert split_revenue(Decimal("0"), [0.5, 0.5]) == [Decimal("0"), Decimal("0")]


def test_versioned_credits_only_for_changes() -> None:
    c = conv()
    first = all_rule_credits(J3[:2], c)
    events = versioned_credits(c, first, {})
    assert {e.version for e in events} == {1}
    latest = {
        m: (1, [(e.touchpoint_event_id, e.credit) for e in events if e.model == m])
        for m in first
    }
    assert versioned_credits(c, first, latest) == []
    second = all_rule_credits(J3, c)
    changed = versioned_credits(c, second, latest)
    # The added touch is direct: first touch and last non-direct touch do not move.
    assert {e.model for e in changed} == set(RULE_MODELS) - {"first_touch", "last_non_direct"}
    assert {e.version for e in changed} == {2}
    assert sum(e.credited_revenue for e in changed if e.model == "linear") == Decimal("100")
    # A re-send (repairing a crash between write and publish) keeps the current versions.
    resent = versioned_credits(c, first, latest, include_unchanged=True)
    assert {e.version for e in resent} == {1} and resent == events


def test_dependent_conversions_are_later_higher_milestones_of_the_account() -> None:
    from pulse_attribution.domain.journeys import dependent_conversions

    lead = Conversion("l", "acc", Milestone.LEAD, day(5), Decimal(0))
    opp = Conversion("o", "acc", Milestone.OPPORTUNITY, day(6), Decimal(0))
    won = Conversion("w", "acc", Milestone.WON, day(9), Decimal(0))
    earlier_opp = Conversion("o0", "acc", Milestone.OPPORTUNITY, day(1), Decimal(0))
    other = Conversion("x", "other", Milestone.WON, day(9), Decimal(0))
    known = [lead, opp, won, earlier_opp, other]
    assert {c.conversion_id for c in dependent_conversions(known, [lead])} == {"o", "w"}
    assert {c.conversion_id for c in dependent_conversions(known, [opp])} == {"w"}
    assert dependent_conversions(known, [won]) == []
