"""``pulse alerts test``: read kpi_values history and replay one rule over it."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from typing import Any

from pulse_alerts import storage
from pulse_alerts.app import default_forecaster
from pulse_alerts.context import fetch_context
from pulse_alerts.domain.backtest import BacktestResult, as_of_period_end, replay
from pulse_alerts.domain.evaluate import evaluate
from pulse_alerts.domain.model import Observation
from pulse_alerts.domain.rules import RuleBase
from pulse_shared.events import Grain, KpiSnapshot
from pulse_shared.store import Store


def run_backtest(store: Store, rule: RuleBase, start: dt.date, end: dt.date) -> BacktestResult:
    kpi, dimension = rule.backtest_series()  # ValueError: not backtestable on KPI history
    grain = rule.grain or Grain.DAY
    rows = storage.kpi_history(store, kpi, grain.value, dimension, rule.dimension_value,
                               start, end)
    snapshots = [
        as_of_period_end(KpiSnapshot(**{k: v for k, v in r.items()}))
        for r in rows
        if rule.backtest_includes(r["kpi"], r["grain"], r["dimension"], r["dimension_value"])
    ]
    snapshots.sort(key=lambda s: (s.computed_at, s.kpi, s.dimension_value))
    forecaster = default_forecaster()
    cache: dict[tuple[Any, ...], Any] = {}
    observations: list[tuple[Observation, dt.datetime]] = []
    for snap in snapshots:
        obs = evaluate(rule, snap, fetch_context(store, rule, snap, cache, forecaster))
        if obs is not None:
            observations.append((obs, snap.computed_at))
    return replace(replay(rule, observations), snapshots=len(snapshots))
