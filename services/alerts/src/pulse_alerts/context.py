"""Fetch what a rule needs beyond the snapshot (history, related KPIs) from kpi_values."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from pulse_alerts import storage
from pulse_alerts.domain.evaluate import EvalContext, Forecaster
from pulse_alerts.domain.rules import BudgetRule, CampaignStatusRule, ForecastRule, RuleBase
from pulse_shared.events import KpiSnapshot
from pulse_shared.store import Store


def fetch_context(
    store: Store,
    rule: RuleBase,
    snap: KpiSnapshot,
    cache: dict[tuple[Any, ...], Any],
    forecaster: Forecaster | None = None,
) -> EvalContext:
    """Blocking (run off the event loop); ``cache`` dedupes reads within one batch."""
    grain, dim, dv = snap.grain.value, snap.dimension, snap.dimension_value
    history: list[float | None] = []
    related: dict[str, list[float | None]] = {}
    key: tuple[Any, ...]
    if rule.history_periods:
        key = ("h", snap.kpi, grain, dim, dv, snap.period_start, rule.history_periods)
        if key not in cache:
            cache[key] = storage.series_history(
                store, snap.kpi, grain, dim, dv, snap.period_start, rule.history_periods
            )
        history = cache[key]
    if isinstance(rule, BudgetRule):
        key = ("r", ("budget",), grain, dim, dv, snap.period_start, 1)
        if key not in cache:
            cache[key] = storage.related_values(
                store, ["budget"], grain, dim, dv, snap.period_start, 1
            )
        related = cache[key]
    elif isinstance(rule, CampaignStatusRule):
        kpis = rule.needed_kpis
        key = ("r", kpis, dv, snap.period_start, rule.days)
        if key not in cache:
            values = storage.related_values(
                store, [k for k in kpis if k != "budget"], "day", "campaign", dv,
                snap.period_start, rule.days,
            )
            if "budget" in kpis:
                month = snap.period_start.replace(day=1)
                values.update(
                    storage.related_values(store, ["budget"], "month", "campaign", dv, month, 1)
                )
                before = snap.period_start - dt.timedelta(days=rule.days)
                prior = storage.related_values(
                    store, ["spend"], "day", "campaign", dv, before, rule.PRIOR_DAYS
                )
                values["prior_spend"] = prior["spend"]
            cache[key] = values
        related = cache[key]
    return EvalContext(
        history=history,
        related=related,
        forecaster=forecaster if isinstance(rule, ForecastRule) else None,
    )


def prefetch_history(
    store: Store, pairs: Sequence[tuple[RuleBase, KpiSnapshot]], cache: dict[tuple[Any, ...], Any]
) -> None:
    """Read the history of every series a batch needs in one query (fills ``cache``)."""
    requests = {
        (s.kpi, s.grain.value, s.dimension, s.dimension_value, s.period_start,
         r.history_periods)
        for r, s in pairs
        if r.history_periods
    }
    if len(requests) < 2:
        return
    for req, values in storage.bulk_history(store, sorted(requests)).items():
        cache[("h", *req)] = values
