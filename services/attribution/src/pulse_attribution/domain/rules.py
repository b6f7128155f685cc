"""Rule-based attribution models over one account's journey.

Conventions (all models):

* The journey of a conversion is every touch of every contact of the account with
  ``converted_at - lookback <= occurred_at <= converted_at`` (both edges inclusive),
  ordered by ``(occurred_at, event_id)`` so equal timestamps resolve deterministically.
* Credits of one conversion under one model sum to 1 (or the journey is empty and there
  are no credits); touches with zero credit are omitted.
* ``time_decay``: weight ``0.5 ** (age_days / half_life_days)`` with the age measured to
  the conversion, normalised.
* ``position_based`` (U): 40 % first, 40 % last, 20 % split evenly over the middle;
  1 touch → 100 %, 2 touches → 50/50.
* ``w_shaped``: 30 % each to the first touch, the lead-creation touch and the
  opportunity-creation touch, 10 % split over the other touches. ``full_path`` (Z): 22.5 %
  each to first, lead-creation, opportunity-creation and closed-won touches, 10 % over the
  rest. The creation touch of milestone *m* is the last touch at or before the account
  reached *m* (the first touch if none precedes it); a role that falls on a touch already
  holding another role adds to it. Only milestones up to the converting one have roles (a
  lead conversion has no opportunity-creation touch). When no touch is left for the
  "rest" share, or roles are missing, weights are normalised so the credits still sum to 1
  (e.g. ``w_shaped`` on a lead conversion with ≥ 3 touches gives 3/7, 1/7 … , 3/7).
* ``last_non_direct``: the last touch whose channel is not ``direct``; when every touch
  is direct, the last touch.

Each model is a function ``(journey, RuleInputs) -> weights`` registered under its name
with :func:`rule_model`; :func:`all_rule_credits` computes every rule model that
:mod:`pulse_shared.attribution_models` lists. Adding a rule model = one registered
function here + its entry (name, label, kind rule) in ``pulse_shared.attribution_models``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from pulse_attribution.domain.model import (
    MILESTONE_RANK,
    Conversion,
    Milestone,
    Touch,
    TouchCredit,
)
from pulse_shared import attribution_models
from pulse_shared.attribution_models import ModelKind
from pulse_shared.events import Channel

DEFAULT_HALF_LIFE_DAYS = 7.0
DEFAULT_LOOKBACK_DAYS = 90.0

MilestoneTimes = Mapping[Milestone, dt.datetime]


@dataclass(frozen=True, slots=True)
class RuleInputs:
    """What a rule model may read besides the (windowed, ordered, non-empty) journey."""

    conversion: Conversion
    half_life_days: float = DEFAULT_HALF_LIFE_DAYS
    milestone_times: MilestoneTimes = field(default_factory=dict)


RuleWeights = Callable[[Sequence[Touch], RuleInputs], list[float]]
"""A rule model: weights (summing to 1, one per touch) of a non-empty journey."""

#: Rule models by name (the names of ``pulse_shared.attribution_models`` of kind rule).
RULES: dict[str, RuleWeights] = {}


def rule_model(name: str) -> Callable[[RuleWeights], RuleWeights]:
    """Register the decorated function as the rule model ``name``."""

    def register(weights: RuleWeights) -> RuleWeights:
        if name in RULES:
            raise ValueError(f"rule model {name!r} is already registered")
        RULES[name] = weights
        return weights

    return register


def rule_model_names() -> tuple[str, ...]:
    """Names of the rule models :mod:`pulse_shared.attribution_models` lists (read at call
    time, so a model added there is computed without other edits)."""
    return tuple(m.name for m in attribution_models.MODELS if m.kind is ModelKind.RULE)


def journey_window(
    touches: Iterable[Touch], converted_at: dt.datetime, lookback_days: float
) -> list[Touch]:
    """Touches inside the lookback window of a conversion, in journey order (deduplicated)."""
    start = converted_at - dt.timedelta(days=lookback_days)
    unique = {t.event_id: t for t in touches if start <= t.occurred_at <= converted_at}
    return sorted(unique.values(), key=lambda t: t.sort_key)


def _single(journey: Sequence[Touch], index: int) -> list[float]:
    weights = [0.0] * len(journey)
    weights[index] = 1.0
    return weights


def first_touch(journey: Sequence[Touch]) -> list[float]:
    return _single(journey, 0)


def last_touch(journey: Sequence[Touch]) -> list[float]:
    return _single(journey, len(journey) - 1)


def last_non_direct(journey: Sequence[Touch]) -> list[float]:
    for index in range(len(journey) - 1, -1, -1):
        if journey[index].channel != Channel.DIRECT:
            return _single(journey, index)
    return last_touch(journey)


def linear(journey: Sequence[Touch]) -> list[float]:
    return [1.0 / len(journey)] * len(journey)


def time_decay(
    journey: Sequence[Touch], converted_at: dt.datetime, half_life_days: float
) -> list[float]:
    ages = [(converted_at - t.occurred_at).total_seconds() / 86400.0 for t in journey]
    youngest = min(ages)
    # Relative to the youngest touch so very old journeys cannot underflow to all-zero.
    raw = [0.5 ** ((age - youngest) / half_life_days) for age in ages]
    total = sum(raw)
    return [w / total for w in raw]


def position_based(journey: Sequence[Touch]) -> list[float]:
    n = len(journey)
    if n == 1:
        return [1.0]
    if n == 2:
        return [0.5, 0.5]
    middle = 0.2 / (n - 2)
    return [0.4] + [middle] * (n - 2) + [0.4]


def creation_index(journey: Sequence[Touch], at: dt.datetime) -> int:
    """Index of the last touch at or before ``at`` (0 when none precedes it)."""
    found = 0
    for index, touch in enumerate(journey):
        if touch.occurred_at <= at:
            found = index
        else:
            break
    return found


def milestone_time(
    milestone: Milestone, conversion: Conversion, times: MilestoneTimes
) -> dt.datetime:
    """When the account reached ``milestone`` for this conversion's journey.

    The converting milestone is the conversion itself. An earlier milestone that was
    never recorded (skipped stage) is taken to happen with the next recorded one.
    """
    if milestone == conversion.milestone or MILESTONE_RANK[milestone] >= MILESTONE_RANK[
        conversion.milestone
    ]:
        return conversion.converted_at
    recorded = times.get(milestone)
    if recorded is not None and recorded <= conversion.converted_at:
        return recorded
    later = [
        t
        for m, t in times.items()
        if MILESTONE_RANK[m] > MILESTONE_RANK[milestone] and t <= conversion.converted_at
    ]
    return min(later, default=conversion.converted_at)


_ROLE_MILESTONES: dict[str, tuple[Milestone, ...]] = {
    "w_shaped": (Milestone.LEAD, Milestone.OPPORTUNITY),
    "full_path": (Milestone.LEAD, Milestone.OPPORTUNITY, Milestone.WON),
}
_ROLE_WEIGHT = {"w_shaped": 0.3, "full_path": 0.225}
_REST_WEIGHT = 0.1


def role_based(
    model: str, journey: Sequence[Touch], conversion: Conversion, times: MilestoneTimes
) -> list[float]:
    """W-shaped / full-path weights (see the module docstring for the conventions)."""
    role_weight = _ROLE_WEIGHT[model]
    rank = MILESTONE_RANK[conversion.milestone]
    roles = [0]  # the first touch
    for milestone in _ROLE_MILESTONES[model]:
        if MILESTONE_RANK[milestone] <= rank:
            roles.append(creation_index(journey, milestone_time(milestone, conversion, times)))
    weights = [0.0] * len(journey)
    for index in roles:
        weights[index] += role_weight
    rest = [i for i in range(len(journey)) if i not in set(roles)]
    for index in rest:
        weights[index] += _REST_WEIGHT / len(rest)
    total = sum(weights)
    return [w / total for w in weights]


rule_model("first_touch")(lambda journey, _inputs: first_touch(journey))
rule_model("last_touch")(lambda journey, _inputs: last_touch(journey))
rule_model("last_non_direct")(lambda journey, _inputs: last_non_direct(journey))
rule_model("linear")(lambda journey, _inputs: linear(journey))
rule_model("position_based")(lambda journey, _inputs: position_based(journey))


@rule_model("time_decay")
def _time_decay(journey: Sequence[Touch], inputs: RuleInputs) -> list[float]:
    return time_decay(journey, inputs.conversion.converted_at, inputs.half_life_days)


@rule_model("w_shaped")
def _w_shaped(journey: Sequence[Touch], inputs: RuleInputs) -> list[float]:
    return role_based("w_shaped", journey, inputs.conversion, inputs.milestone_times)


@rule_model("full_path")
def _full_path(journey: Sequence[Touch], inputs: RuleInputs) -> list[float]:
    return role_based("full_path", journey, inputs.conversion, inputs.milestone_times)


def model_weights(
    model: str,
    journey: Sequence[Touch],
    conversion: Conversion,
    *,
    half_life_days: float = DEFAULT_HALF_LIFE_DAYS,
    milestone_times: MilestoneTimes | None = None,
) -> list[float]:
    """Weights (summing to 1) per touch of a non-empty journey under a rule model."""
    try:
        weights = RULES[model]
    except KeyError:
        raise ValueError(f"unknown rule model {model!r}") from None
    return weights(journey, RuleInputs(conversion, half_life_days, milestone_times or {}))


def rule_credits(
    model: str,
    journey: Sequence[Touch],
    conversion: Conversion,
    *,
    half_life_days: float = DEFAULT_HALF_LIFE_DAYS,
    milestone_times: MilestoneTimes | None = None,
) -> list[TouchCredit]:
    """Credits of one conversion under one rule model (journey already windowed)."""
    if not journey:
        return []
    weights = model_weights(
        model,
        journey,
        conversion,
        half_life_days=half_life_days,
        milestone_times=milestone_times,
    )
    return [TouchCredit(t, w) for t, w in zip(journey, weights, strict=True) if w > 0.0]


def all_rule_credits(
    journey: Sequence[Touch],
    conversion: Conversion,
    *,
    models: Sequence[str] | None = None,
    half_life_days: float = DEFAULT_HALF_LIFE_DAYS,
    milestone_times: MilestoneTimes | None = None,
) -> dict[str, list[TouchCredit]]:
    """Credits of one conversion under each of ``models`` (default: every rule model)."""
    return {
        model: rule_credits(
            model,
            journey,
            conversion,
            half_life_days=half_life_days,
            milestone_times=milestone_times,
        )
        for model in (rule_model_names() if models is None else models)
    }
