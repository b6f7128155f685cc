"""Data-driven glue: journeys from stored touches, runs, per-conversion credits."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from pulse_attribution.domain.datadriven import (
    DataDrivenParameters,
    assemble_journeys,
    run_model,
    weighted_touch_credits,
)
from pulse_attribution.domain.model import Conversion, Milestone, Touch
from pulse_shared.events import Channel

D0 = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)


def t(eid: str, day: float, channel: Channel) -> Touch:
    return Touch(eid, D0 + dt.timedelta(days=day), channel)


def test_weighted_touch_credits_split_by_channel_weight_then_touch_count() -> None:
    journey = [t("a", 0, Channel.EMAIL), t("b", 1, Channel.DISPLAY), t("c", 2, Channel.EMAIL)]
    got = {c.touch.event_id: c.credit for c in weighted_touch_credits(journey, {"email": 0.6, "display": 0.2, "video": 0.2})}
    # email 0.6/0.8 split over two touches, display 0.2/0.8.
    assert got == pytest.approx({"a": 0.375, "b": 0.25, "c": 0.375})
    zero = weighted_touch_credits(journey, {"email": 0.0, "display": 0.0})
    assert [c.credit for c in zero] == pytest.approx([1 / 3] * 3)  # linear fallback
    only = weighted_touch_credits(journey, {"email": 1.0})
    assert {c.touch.event_id for c in only} == {"a", "c"}
    assert weighted_touch_credits([], {"email": 1.0}) == []


def test_assemble_journeys_converting_and_non_converting() -> None:
    touches = {
        "acc1": [t("x1", 0, Channel.EMAIL), t("x2", 5, Channel.DISPLAY), t("x3", 40, Channel.EMAIL)],
        "acc2": [t("y1", 0, Channel.CONTENT),
                 t("y2", 100, Channel.REFERRAL)],
        "acc3": [t("z1", 1, Channel.DIRECT)],
    }
    won = Conversion("w1", "acc1", Milestone.WON, D0 + dt.timedelta(days=6), Decimal(100))
    lead3 = Conversion("l3", "acc3", Milestone.LEAD, D0 + dt.timedelta(days=2), Decimal(0))
    journeys = assemble_journeys(touches, [won, lead3], Milestone.WON, lookback_days=30)
    assert [(c.conversion_id, [x.event_id for x in j]) for c, j in journeys.converting] == [
        ("w1", ["x1", "x2"])
    ]
    # acc2: window of 30 days ending at its last touch → only y2; acc3 did not reach won.
    assert [[x.event_id for x in j] for j in journeys.non_converting] == [["y2"], ["z1"]]
    table = journeys.path_table()
    assert table.n_paths == 3
    assert table.conversions.tolist() == [1.0, 0.0, 0.0]
    assert table.values.tolist() == [100.0, 0.0, 0.0]


def test_run_model_credits_every_converting_journey() -> None:
    touches = {
        "a": [t("a1", 0, Channel.EMAIL), t("a2", 1, Channel.DISPLAY)],
        "b": [t("b1", 0, Channel.EMAIL)],
        "n": [t("n1", 0, Channel.DISPLAY)],
    }
    conversions = [
        Conversion("ca", "a", Milestone.LEAD, D0 + dt.timedelta(days=2), Decimal(10)),
        Conversion("cb", "b", Milestone.LEAD, D0 + dt.timedelta(days=2), Decimal(30)),
    ]
    journeys = assemble_journeys(touches, conversions, Milestone.LEAD, 90)
    for model in ("markov", "shapley"):
        run = run_model(model, Milestone.LEAD, journeys, DataDrivenParameters())
        assert run.journeys == 3 and run.conversions == 2
        assert run.credit.conversions.sum() == pytest.approx(2.0)
        assert run.total_conversion_value == pytest.approx(40.0)
        by_conv = {c.conversion_id: cs for c, cs in run.conversion_credits}
        assert set(by_conv) == {"ca", "cb"}
        assert [x.credit for x in by_conv["cb"]] == [1.0]
        assert sum(x.credit for x in by_conv["ca"]) == pytest.approx(1.0)
    markov = run_model("markov", Milestone.LEAD, journeys, DataDrivenParameters())
    assert markov.parameters == {"order": 1, "lookback_days": 90.0}
    assert markov.removal_effects is not None and markov.shapley_values is None
    shapley = run_model("shapley", Milestone.LEAD, journeys, DataDrivenParameters())
    # v({email}) = 1 (b), v({email, display}) = 2 → email 1.5, display 0.5.
    assert dict(zip(shapley.credit.channels, shapley.shapley_values or [], strict=True)) == {
        "display": 0.5, "email": 1.5
    }
    with pytest.raises(ValueError):
        run_model("linear", Milestone.LEAD, journeys, DataDrivenParameters())
