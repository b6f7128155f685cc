"""Fetch what a rule needs beyond the snapshot (history, related KPIs) from kpi_values,
and run the timer pass of the timer rule types; each rule declares its reads."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from pulse_alerts import storage
from pulse_alerts.domain.rule_base import (
    EvalContext,
    Evaluation,
    Forecaster,
    RelatedRead,
    RuleBase,
)
from pulse_shared.events import KpiSnapshot
from pulse_shared.store import Store

__all__ = ["RelatedRead", "StoreTimerReads", "fetch_context", "observe_timer",
           "prefetch_history", "prefetch_related", "related_reads"]


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
    reads = related_reads(rule, snap)
    _read_related(store, [r.request for r in reads if ("r", *r.request) not in cache], cache)
    for read in reads:
        series = cache[("r", *read.request)]
        if read.into is None:
            related.update(series)
        else:
            (kpi,) = read.request[0]
            related[read.into] = series[kpi]
    return EvalContext(
        history=history,
        related=related,
        forecaster=forecaster if rule.needs_forecaster else None,
    )


def related_reads(rule: RuleBase, snap: KpiSnapshot) -> list[RelatedRead]:
    """The related-KPI reads ``rule`` needs for ``snap`` (see :func:`fetch_context`)."""
    return rule.related_reads(snap)


class StoreTimerReads:
    """:class:`~pulse_alerts.domain.rule_base.TimerReads` over the store, for one timer
    pass (reads of the same series are shared)."""

    def __init__(self, store: Store, forecaster: Forecaster | None = None) -> None:
        self.store = store
        self.forecaster = forecaster
        self._cache: dict[tuple[Any, ...], Any] = {}

    def last_ingested(self, source: str) -> dt.datetime | None:
        return storage.last_ingested(self.store, source)

    def recent_campaigns(self, until: dt.date, days: int) -> list[str]:
        return storage.recent_campaigns(self.store, until, days)

    def context(self, rule: RuleBase, snapshot: KpiSnapshot) -> EvalContext:
        return fetch_context(self.store, rule, snapshot, self._cache, self.forecaster)


def observe_timer(
    store: Store,
    rules: Sequence[RuleBase],
    now: dt.datetime,
    forecaster: Forecaster | None = None,
) -> list[Evaluation]:
    """The timer pass (blocking): each rule type present among ``rules`` (enabled timer
    rules, in the order the rules file first names a type) observes its rules."""
    by_type: dict[type[RuleBase], list[RuleBase]] = {}
    for rule in rules:
        by_type.setdefault(type(rule), []).append(rule)
    reads = StoreTimerReads(store, forecaster)
    return [ev for cls, group in by_type.items() for ev in cls.observe_timer(group, now, reads)]


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
    requests = sorted({read.request for r, s in pairs for read in related_reads(r, s)})
    if len(requests) >= 2:  # a single one is read by fetch_context as it goes
        _read_related(store, requests, cache)


def _read_related(
    store: Store, requests: Sequence[storage.RelatedRequest], cache: dict[tuple[Any, ...], Any]
) -> None:
    if requests:
        for req, values in storage.bulk_related(store, requests).items():
            cache[("r", *req)] = values
