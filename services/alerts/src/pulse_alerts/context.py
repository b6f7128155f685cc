"""Fetch what a rule needs beyond the snapshot (history, related KPIs) from kpi_values."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any, NamedTuple

from pulse_alerts import storage
from pulse_alerts.domain.evaluate import EvalContext, Forecaster
from pulse_alerts.domain.rules import BudgetRule, CampaignStatusRule, ForecastRule, RuleBase
from pulse_shared.events import KpiSnapshot
from pulse_shared.store import Store


class RelatedRead(NamedTuple):
    """One read of related KPIs and where its series go in ``EvalContext.related``."""

    request: storage.RelatedRequest
    # None: each KPI's series under the KPI's own name; a name: the request's only KPI
    # under that name (prior days' spend must not overwrite the window's spend).
    into: str | None = None


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
        forecaster=forecaster if isinstance(rule, ForecastRule) else None,
    )


def related_reads(rule: RuleBase, snap: KpiSnapshot) -> list[RelatedRead]:
    """The related-KPI reads ``rule`` needs for ``snap`` (see :func:`fetch_context`)."""
    grain, dim, dv = snap.grain.value, snap.dimension, snap.dimension_value
    if isinstance(rule, BudgetRule):
        return [RelatedRead((("budget",), grain, dim, dv, snap.period_start, 1))]
    if not isinstance(rule, CampaignStatusRule):
        return []
    kpis = tuple(rule.needed_kpis)
    reads = [RelatedRead(
        (tuple(k for k in kpis if k != "budget"), "day", "campaign", dv, snap.period_start,
         rule.days))]
    if "budget" in kpis:
        before = snap.period_start - dt.timedelta(days=rule.days)
        reads += [
            RelatedRead((("budget",), "month", "campaign", dv, snap.period_start.replace(day=1),
                         1)),
            RelatedRead((("spend",), "day", "campaign", dv, before, rule.PRIOR_DAYS),
                        into="prior_spend"),
        ]
    return reads


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
