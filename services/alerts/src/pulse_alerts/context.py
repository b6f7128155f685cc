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
    requests = related_requests(rule, snap)
    if requests:
        missing = [r for r in requests if ("r", *r) not in cache]
        if missing:
            for req, values in storage.bulk_related(store, missing).items():
                cache[("r", *req)] = values
        found = [cache[("r", *req)] for req in requests]
        related = dict(found[0])
        if len(found) == 3:  # a campaign rule with budget: + budget, + prior days' spend
            related.update(found[1])
            related["prior_spend"] = found[2]["spend"]
    return EvalContext(
        history=history,
        related=related,
        forecaster=forecaster if isinstance(rule, ForecastRule) else None,
    )


def related_requests(rule: RuleBase, snap: KpiSnapshot) -> list[storage.RelatedRequest]:
    """The related-KPI reads ``rule`` needs for ``snap`` (see :func:`fetch_context`)."""
    grain, dim, dv = snap.grain.value, snap.dimension, snap.dimension_value
    if isinstance(rule, BudgetRule):
        return [(("budget",), grain, dim, dv, snap.period_start, 1)]
    if not isinstance(rule, CampaignStatusRule):
        return []
    kpis = tuple(rule.needed_kpis)
    requests: list[storage.RelatedRequest] = [
        (tuple(k for k in kpis if k != "budget"), "day", "campaign", dv, snap.period_start,
         rule.days)
    ]
    if "budget" in kpis:
        before = snap.period_start - dt.timedelta(days=rule.days)
        requests += [
            (("budget",), "month", "campaign", dv, snap.period_start.replace(day=1), 1),
            # Spend of the days before the window (``prior_spend`` for the rule).
            (("spend",), "day", "campaign", dv, before, rule.PRIOR_DAYS),
        ]
    return requests


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


def prefetch_related(
    store: Store, pairs: Sequence[tuple[RuleBase, KpiSnapshot]], cache: dict[tuple[Any, ...], Any]
) -> None:
    """Read the related KPIs of every rule and snapshot of a batch at once (fills ``cache``)."""
    requests = sorted({req for r, s in pairs for req in related_requests(r, s)})
    if len(requests) < 2:
        return
    for req, values in storage.bulk_related(store, requests).items():
        cache[("r", *req)] = values
