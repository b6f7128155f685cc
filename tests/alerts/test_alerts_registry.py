"""Adding an alert rule type is one class registered in one place (issue 18).

The toy type below lives only in this file: it is registered once (the fixture) and then
loaded from YAML, evaluated through the real component, engine and context reads, and
backtested, with no other edit anywhere.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator, Sequence
from typing import Any, Literal

import pytest

from pulse_alerts.backtest import run_backtest
from pulse_alerts.domain.engine import Engine
from pulse_alerts.domain.evaluate import EvalContext, evaluate
from pulse_alerts.domain.model import Observation, Status
from pulse_alerts.domain.rule_base import RULE_TYPES, RuleBase, observe
from pulse_alerts.domain.rules import RulesError, load_rules
from pulse_alerts.main import build
from pulse_alerts.settings import AlertsSettings
from pulse_shared.events import Alert, Event, Grain, KpiSnapshot
from pulse_shared.store import Store
from pulse_shared.topics import ALERTS, Topic

DAY = dt.date(2026, 11, 20)
T0 = dt.datetime(2026, 11, 20, 10, 0, tzinfo=dt.UTC)


class KpiIsExactlyRule(RuleBase):
    """Toy rule type: fires while the KPI equals ``value``; reads the previous period's
    value (``baseline``) through the generic history read."""

    type: Literal["kpi_is_exactly"]
    value: float

    @property
    def history_periods(self) -> int:
        return 1

    def evaluate(self, snapshot: KpiSnapshot, ctx: EvalContext) -> Observation | None:
        if snapshot.value is None:
            return None
        previous = ctx.history[-1] if ctx.history else None
        return observe(self, snapshot, snapshot.value == self.value, snapshot.value,
                       self.value, {"baseline": previous})


@pytest.fixture
def toy_type() -> Iterator[None]:
    RULE_TYPES.register(KpiIsExactlyRule)  # the one registration
    yield
    RULE_TYPES.unregister("kpi_is_exactly")  # other tests see the built-in types only


def toy_yaml(kpi: str, value: float = 42.0, **extra: str) -> str:
    fields = "".join(f", {k}: {v}" for k, v in extra.items())
    return (f"rules:\n  - {{name: {kpi}_exact, type: kpi_is_exactly, kpi: {kpi},"
            f" value: {value}{fields}}}\n")


def snap(kpi: str, value: float, day: dt.date = DAY, channel: str = "email") -> KpiSnapshot:
    return KpiSnapshot(
        kpi=kpi, grain=Grain.DAY, period=day.isoformat(), period_start=day,
        dimension="channel", dimension_value=channel, value=value, unit="USD",
        computed_at=dt.datetime.combine(day, dt.time(10), tzinfo=dt.UTC),
    )


def insert_series(store: Store, kpi: str, values: dict[dt.date, float],
                  channel: str = "email") -> None:
    store.insert(
        "kpi_values",
        [{"kpi": kpi, "grain": "day", "period": d.isoformat(), "period_start": d,
          "dimension": "channel", "dimension_value": channel, "value": v, "unit": "USD",
          "computed_at": T0} for d, v in values.items()],
        ["kpi", "grain", "period", "period_start", "dimension", "dimension_value", "value",
         "unit", "computed_at"],
    )


class RecordingBus:
    def __init__(self) -> None:
        self.published: dict[str, list[Event]] = {}

    async def publish(self, topic: Topic, events: Sequence[Event]) -> None:
        self.published.setdefault(topic.name, []).extend(events)

    async def publish_dead_letters(self, topic: Topic, letters: Sequence[Any]) -> None:
        return None

    def alerts(self) -> list[Alert]:
        return [e for e in self.published.get(ALERTS.name, []) if isinstance(e, Alert)]


def test_unregistered_type_is_refused_naming_the_valid_types() -> None:
    with pytest.raises(RulesError) as exc:
        load_rules(toy_yaml("spend"), "toy.yaml")
    (problem,) = exc.value.problems
    assert problem.startswith("toy.yaml: rule 'spend_exact' (#1): type: must be one of")
    assert "threshold" in problem and "kpi_is_exactly" not in problem
    assert exc.value.code == 2


def test_registered_type_loads_validates_and_is_listed(toy_type: None) -> None:
    (rule,) = load_rules(toy_yaml("spend", 7.5, grain="day")).rules
    assert isinstance(rule, KpiIsExactlyRule)
    assert (rule.type_name, rule.value, rule.grain) == ("kpi_is_exactly", 7.5, Grain.DAY)
    with pytest.raises(RulesError) as missing:
        load_rules("rules:\n  - {name: m, type: kpi_is_exactly, kpi: spend}\n", "toy.yaml")
    assert missing.value.problems == ["toy.yaml: rule 'm' (#1): value: Field required"]
    with pytest.raises(RulesError) as unknown:
        load_rules("rules:\n  - {name: u, type: nope}\n", "toy.yaml")
    assert "kpi_is_exactly" in unknown.value.problems[0]


def test_engine_plans_and_evaluates_the_toy_type(toy_type: None) -> None:
    rules = load_rules(toy_yaml("leads", 3.0, **{"for": "1"}))
    engine = Engine(rules)
    pairs = engine.plan([snap("leads", 3.0), snap("leads", 4.0, channel="paid_search"),
                         snap("spend", 3.0)])  # another KPI: no candidate
    assert [(r.name, s.dimension_value) for r, s in pairs] == [
        ("leads_exact", "email"), ("leads_exact", "paid_search")]
    observations = [(r, obs) for r, s in pairs
                    if (obs := evaluate(r, s, EvalContext(history=[2.0]))) is not None]
    assert [(o.labels["channel"], o.breaching, o.context["baseline"])
            for _, o in observations] == [("email", True, 2.0), ("paid_search", False, 2.0)]
    outcomes = engine.apply(observations, T0)
    engine.commit(outcomes)
    assert sorted(s.status.value for s in engine.states.values()) == ["firing", "inactive"]


async def test_component_fires_and_resolves_the_toy_type_reading_history(
    toy_type: None, embedded_store: Store
) -> None:
    kpi = f"k{uuid.uuid4().hex[:10]}"
    insert_series(embedded_store, kpi, {DAY - dt.timedelta(days=1): 5.0})
    rules = load_rules(toy_yaml(
        kpi, 42.0, annotations="{summary: '{kpi} is exactly {value} (was {baseline})'}"))
    bus = RecordingBus()
    component = build(embedded_store, bus, AlertsSettings(tick_interval_s=3600),  # type: ignore[arg-type]
                      rules=rules, notifiers=[], clock=lambda: T0)
    await component.consume([snap(kpi, 42.0)])
    (fired,) = bus.alerts()
    assert (fired.rule, fired.state.value, fired.value) == (f"{kpi}_exact", "firing", 42.0)
    assert fired.annotations["summary"] == f"{kpi} is exactly 42.0 (was 5.0)"
    await component.consume([snap(kpi, 41.0, DAY + dt.timedelta(days=1))])
    assert [a.state.value for a in bus.alerts()] == ["firing", "resolved"]
    (state,) = [s for s in component.engine.states.values() if s.rule == f"{kpi}_exact"]
    assert state.status is Status.RESOLVED


def test_backtest_replays_the_toy_type(toy_type: None, embedded_store: Store) -> None:
    kpi = f"k{uuid.uuid4().hex[:10]}"
    values = [1.0, 42.0, 42.0, 7.0, 42.0]
    insert_series(embedded_store, kpi,
                  {DAY + dt.timedelta(days=i): v for i, v in enumerate(values)})
    (rule,) = load_rules(toy_yaml(kpi, 42.0, **{"for": "2"})).rules
    result = run_backtest(embedded_store, rule, DAY, DAY + dt.timedelta(days=4))
    assert (result.snapshots, result.evaluations, result.breaching) == (5, 5, 3)
    # for: 2 → fires on the second 42 (its day closes 11-23), resolves on the 7; the lone
    # last 42 never fires
    assert [(a.state.value, a.sent_at, a.annotations["period"]) for a in result.alerts] == [
        ("firing", dt.datetime(2026, 11, 23, tzinfo=dt.UTC), "2026-11-22"),
        ("resolved", dt.datetime(2026, 11, 24, tzinfo=dt.UTC), "2026-11-22"),
    ]
