"""Backtest: replay a rule over history with the real lifecycle — when would it have fired?

Each historical point is evaluated at a virtual clock (the end of its period), so
``for`` durations, repeat intervals and resolutions behave as they would have live.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

from pulse_alerts.domain.lifecycle import step
from pulse_alerts.domain.model import AlertStatus, Observation
from pulse_alerts.domain.rules import RuleBase
from pulse_shared.events import Alert, Grain, KpiSnapshot


def period_end(grain: Grain, start: dt.date) -> dt.datetime:
    """The instant a period closes (exclusive end), used as the backtest clock."""
    if grain is Grain.DAY:
        end = start + dt.timedelta(days=1)
    elif grain is Grain.WEEK:
        end = start + dt.timedelta(days=7)
    elif grain is Grain.MONTH:
        end = (start.replace(day=28) + dt.timedelta(days=4)).replace(day=1)
    else:
        month = start.month + 3
        end = dt.date(start.year + (month - 1) // 12, (month - 1) % 12 + 1, 1)
    return dt.datetime.combine(end, dt.time(), tzinfo=dt.UTC)


def as_of_period_end(snapshot: KpiSnapshot) -> KpiSnapshot:
    return snapshot.model_copy(
        update={"computed_at": period_end(snapshot.grain, snapshot.period_start)}
    )


@dataclass(frozen=True)
class BacktestResult:
    alerts: list[Alert]
    evaluations: int
    breaching: int
    #: KPI snapshots in range the rule matched (evaluations can be fewer: undefined values,
    #: not enough history); None when not counted.
    snapshots: int | None = None


def replay(
    rule: RuleBase, observations: Iterable[tuple[Observation, dt.datetime]]
) -> BacktestResult:
    """Run observations (in time order, any series) through the lifecycle."""
    states: dict[str, AlertStatus] = {}
    alerts: list[Alert] = []
    evaluations = breaching = 0
    for obs, now in observations:
        evaluations += 1
        breaching += obs.breaching
        outcome = step(states.get(obs.fingerprint), obs, rule, now)
        states[obs.fingerprint] = outcome.state
        alerts.extend(outcome.alerts)
    return BacktestResult(alerts, evaluations, breaching)
