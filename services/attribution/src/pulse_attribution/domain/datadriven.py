"""Data-driven runs over stored journeys: path tables in, per-conversion credits out.

* Converting journeys: every conversion of the milestone with the touches of all the
  account's contacts in its lookback window (1 conversion, its revenue as value).
* Non-converting journeys: every account with touches but no conversion of that
  milestone; its journey is its touches in the lookback window ending at its last touch.
* A conversion's credit under a data-driven model: each distinct channel of its journey
  gets ``w(c) / Σ w`` (``w`` = Markov removal effect or Shapley share), split evenly over
  that channel's touches. If no channel of the journey has a positive weight the
  conversion is shared linearly, so credits of a conversion always sum to 1.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from pulse_attribution.domain.markov import markov_model
from pulse_attribution.domain.model import Conversion, Milestone, Touch, TouchCredit
from pulse_attribution.domain.paths import ChannelCredit, PathTable
from pulse_attribution.domain.rules import journey_window
from pulse_attribution.domain.shapley import shapley_model

LookbackFor = Callable[[Milestone], float]


@dataclass(frozen=True)
class Journeys:
    converting: list[tuple[Conversion, list[Touch]]]
    non_converting: list[list[Touch]]

    def path_table(self) -> PathTable:
        paths: list[list[str]] = []
        conv: list[float] = []
        null: list[float] = []
        value: list[float] = []
        for conversion, journey in self.converting:
            if journey:
                paths.append([t.channel.value for t in journey])
                conv.append(1.0)
                null.append(0.0)
                value.append(float(conversion.revenue))
        for journey in self.non_converting:
            if journey:
                paths.append([t.channel.value for t in journey])
                conv.append(0.0)
                null.append(1.0)
                value.append(0.0)
        return PathTable.from_sequences(paths, conv, null, value)


def assemble_journeys(
    touches_by_account: Mapping[str, Sequence[Touch]],
    conversions: Sequence[Conversion],
    milestone: Milestone,
    lookback_days: float,
) -> Journeys:
    converting: list[tuple[Conversion, list[Touch]]] = []
    converted_accounts: set[str] = set()
    for conversion in conversions:
        if conversion.milestone != milestone:
            continue
        converted_accounts.add(conversion.account_id)
        journey = journey_window(
            touches_by_account.get(conversion.account_id, ()),
            conversion.converted_at,
            lookback_days,
        )
        converting.append((conversion, journey))
    non_converting: list[list[Touch]] = []
    for account, touches in sorted(touches_by_account.items()):
        if account in converted_accounts or not touches:
            continue
        end = max(t.occurred_at for t in touches)
        non_converting.append(journey_window(touches, end, lookback_days))
    return Journeys(converting, non_converting)


def channel_weights(credit: ChannelCredit) -> dict[str, float]:
    total = float(credit.conversions.sum())
    if total <= 0:
        return {c: 0.0 for c in credit.channels}
    return {c: float(v) / total for c, v in zip(credit.channels, credit.conversions, strict=True)}


def weighted_touch_credits(
    journey: Sequence[Touch], weights: Mapping[str, float]
) -> list[TouchCredit]:
    if not journey:
        return []
    per_channel = Counter(t.channel.value for t in journey)
    total = sum(max(0.0, weights.get(c, 0.0)) for c in per_channel)
    if total <= 0:
        return [TouchCredit(t, 1.0 / len(journey)) for t in journey]
    credits = [
        TouchCredit(
            t, max(0.0, weights.get(t.channel.value, 0.0)) / total / per_channel[t.channel.value]
        )
        for t in journey
    ]
    return [c for c in credits if c.credit > 0]


def group_touches(touches: Sequence[tuple[str, Touch]]) -> dict[str, list[Touch]]:
    out: dict[str, list[Touch]] = defaultdict(list)
    for account, touch in touches:
        out[account].append(touch)
    return dict(out)


def run_id(model: str, milestone: Milestone, started_at: dt.datetime, version: int) -> str:
    return f"{model}-{milestone.value}-v{version}-{started_at:%Y%m%dT%H%M%S}"


@dataclass(frozen=True)
class DataDrivenParameters:
    order: int = 1
    lookback_days: float = 90.0
    value_function: str = "conversions"
    max_exact: int = 15
    samples: int = 2000
    seed: int = 0

    def for_model(self, model: str) -> dict[str, object]:
        if model == "markov":
            return {"order": self.order, "lookback_days": self.lookback_days}
        return {
            "lookback_days": self.lookback_days,
            "value_function": self.value_function,
            "max_exact": self.max_exact,
            "samples": self.samples,
            "seed": self.seed,
        }


@dataclass(frozen=True)
class ModelRun:
    model: str
    milestone: Milestone
    parameters: dict[str, object]
    journeys: int
    conversions: int
    credit: ChannelCredit
    removal_effects: list[float] | None
    shapley_values: list[float] | None
    approximate: bool
    conversion_credits: list[tuple[Conversion, list[TouchCredit]]]

    @property
    def total_conversion_value(self) -> float:
        return float(self.credit.values.sum())


@dataclass(frozen=True)
class DataDrivenResult:
    """What a data-driven model computes from a path table."""

    credit: ChannelCredit
    removal_effects: list[float] | None = None
    shapley_values: list[float] | None = None
    approximate: bool = False


DataDrivenModel = Callable[[PathTable, DataDrivenParameters], DataDrivenResult]

#: Data-driven models by name (the names of ``pulse_shared.attribution_models`` of kind
#: data_driven), registered with :func:`data_driven_model`.
DATA_DRIVEN: dict[str, DataDrivenModel] = {}


def data_driven_model(name: str) -> Callable[[DataDrivenModel], DataDrivenModel]:
    """Register the decorated function as the data-driven model ``name``."""

    def register(model: DataDrivenModel) -> DataDrivenModel:
        if name in DATA_DRIVEN:
            raise ValueError(f"data-driven model {name!r} is already registered")
        DATA_DRIVEN[name] = model
        return model

    return register


@data_driven_model("markov")
def _markov(table: PathTable, params: DataDrivenParameters) -> DataDrivenResult:
    result = markov_model(table, params.order)
    return DataDrivenResult(result.credit, removal_effects=[float(x) for x in result.removal_effects])


@data_driven_model("shapley")
def _shapley(table: PathTable, params: DataDrivenParameters) -> DataDrivenResult:
    result = shapley_model(
        table,
        value_function=params.value_function,
        max_exact=params.max_exact,
        samples=params.samples,
        seed=params.seed,
    )
    return DataDrivenResult(
        result.credit,
        shapley_values=[float(x) for x in result.shapley_values],
        approximate=not result.exact,
    )


def run_model(
    model: str, milestone: Milestone, journeys: Journeys, params: DataDrivenParameters
) -> ModelRun:
    """One run of a data-driven model over the journeys of one milestone (pure)."""
    try:
        compute = DATA_DRIVEN[model]
    except KeyError:
        raise ValueError(f"unknown data-driven model {model!r}") from None
    table = journeys.path_table()
    result = compute(table, params)
    credit = result.credit
    weights = channel_weights(credit)
    conversion_credits = [
        (conversion, weighted_touch_credits(journey, weights))
        for conversion, journey in journeys.converting
        if journey
    ]
    return ModelRun(
        model=model,
        milestone=milestone,
        parameters=params.for_model(model),
        journeys=table.n_paths,
        conversions=int(round(float(table.conversions.sum()))),
        credit=credit,
        removal_effects=result.removal_effects,
        shapley_values=result.shapley_values,
        approximate=result.approximate,
        conversion_credits=conversion_credits,
    )
