"""Attribution models are registered once: a new rule model needs one function, one
registration and its entry in pulse_shared.attribution_models, nothing else."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from decimal import Decimal

import pytest

from pulse_attribution.domain import rules
from pulse_attribution.domain.datadriven import DATA_DRIVEN
from pulse_attribution.domain.model import Conversion, Milestone, Touch
from pulse_attribution.domain.rules import RULES, RuleInputs, all_rule_credits, rule_model
from pulse_shared import attribution_models
from pulse_shared.attribution_models import (
    DATA_DRIVEN_MODELS,
    RULE_MODELS,
    AttributionModel,
    ModelKind,
)
from pulse_shared.events import Channel

D0 = dt.datetime(2026, 9, 1, tzinfo=dt.UTC)
JOURNEY = [
    Touch(f"t{i}", D0 + dt.timedelta(days=i), channel)
    for i, channel in enumerate([Channel.PAID_SEARCH, Channel.EMAIL, Channel.WEBINAR,
                                 Channel.DIRECT])
]
CONVERSION = Conversion("c1", "acc", Milestone.WON, D0 + dt.timedelta(days=9), Decimal(100))


def first_and_last_only(journey: Sequence[Touch], inputs: RuleInputs) -> list[float]:
    """Toy model: half to the first touch, half to the last, nothing in between."""
    weights = [0.0] * len(journey)
    weights[0] += 0.5
    weights[-1] += 0.5
    return weights


@pytest.fixture
def toy_model(monkeypatch: pytest.MonkeyPatch) -> str:
    """Register the toy model and list it in the vocabulary for this test only."""
    monkeypatch.setattr(rules, "RULES", dict(RULES))
    monkeypatch.setattr(attribution_models, "MODELS", (
        *attribution_models.MODELS,
        AttributionModel("first_and_last_only", "First and last only", ModelKind.RULE,
                         "50 % first touch, 50 % last touch."),
    ))
    rule_model("first_and_last_only")(first_and_last_only)
    return "first_and_last_only"


def test_every_model_of_the_vocabulary_is_registered_with_its_kind() -> None:
    assert set(RULES) == set(RULE_MODELS)
    assert set(DATA_DRIVEN) == set(DATA_DRIVEN_MODELS)
    assert rules.rule_model_names() == RULE_MODELS  # same order as the vocabulary


def test_a_registered_toy_rule_model_produces_credits(toy_model: str) -> None:
    result = all_rule_credits(JOURNEY, CONVERSION)
    assert set(result) == {*RULE_MODELS, toy_model}
    toy = {c.touch.event_id: c.credit for c in result[toy_model]}
    assert toy == {"t0": 0.5, "t3": 0.5}  # the middle touches get nothing and are omitted
    single = all_rule_credits(JOURNEY[:1], CONVERSION)[toy_model]
    assert [(c.touch.event_id, c.credit) for c in single] == [("t0", 1.0)]
    # the existing models are untouched by the addition
    assert {c.touch.event_id: c.credit for c in result["last_touch"]} == {"t3": 1.0}


def test_the_toy_model_is_gone_after_its_test() -> None:
    assert "first_and_last_only" not in RULES
    assert "first_and_last_only" not in all_rule_credits(JOURNEY, CONVERSION)


def test_registering_a_name_twice_is_refused() -> None:
    with pytest.raises(ValueError, match="already registered"):
        rule_model("linear")(first_and_last_only)
