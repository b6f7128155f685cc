"""Snapshot policy: publish a KPI key only when its value changed, at most once per
``min_interval`` seconds per key (later changes wait and the latest value wins)."""

from __future__ import annotations

import datetime as dt
import heapq
import itertools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from pulse_kpi.domain.compute import KpiValue
from pulse_shared.events import KpiSnapshot
from pulse_shared.kpi_catalog import complete_on
from pulse_shared.periods import period_of

_MISSING = object()


def changed(values: Iterable[KpiValue], known: Mapping[str, float | None]) -> list[KpiValue]:
    """Values whose key is new or whose value differs from ``known``."""
    out: list[KpiValue] = []
    for v in values:
        previous = known.get(v.key, _MISSING)
        if previous is _MISSING or previous != v.value:
            out.append(v)
    return out


def live(values: Iterable[KpiValue], as_of: dt.date, horizon_days: int) -> list[KpiValue]:
    """Values of periods that ended less than ``horizon_days`` before ``as_of`` (0 = all).

    Older periods (a historical backfill) are still stored in ``kpi_values`` but not
    announced one message at a time.
    """
    if horizon_days <= 0:
        return list(values)
    cutoff = as_of - dt.timedelta(days=horizon_days)
    return [v for v in values if period_of(v.period_start, v.grain).end > cutoff]


def to_snapshot(value: KpiValue, computed_at: dt.datetime, final: bool = False) -> KpiSnapshot:
    """The snapshot of ``value`` as of ``computed_at`` (the service's clock), which also
    decides whether its period is complete: ended before that UTC day, and for a maturing
    KPI (trial conversion: :attr:`pulse_shared.kpi_catalog.KpiDef.matures_after_days`)
    that many days more, so a provisional trial-to-paid rate is never flagged final."""
    today = computed_at.astimezone(dt.UTC).date()
    return KpiSnapshot(
        kpi=value.kpi,
        grain=value.grain,
        period=value.period,
        period_start=value.period_start,
        dimension=value.dimension,
        dimension_value=value.dimension_value,
        value=value.value,
        unit=value.unit,
        computed_at=computed_at,
        final=final,
        complete=complete_on(value.kpi, value.grain, value.period_start, today),
    )


@dataclass
class Throttle:
    """Per-key rate limit; ``now`` is a monotonic clock reading in seconds.

    Totals (dimension ``all``) use ``min_interval``; channel and campaign keys, which are
    far more numerous, use ``dimension_min_interval`` (same as ``min_interval`` if None).
    """

    min_interval: float
    dimension_min_interval: float | None = None
    last_sent: dict[str, float] = field(default_factory=dict)
    pending: dict[str, KpiValue] = field(default_factory=dict)
    #: Pending keys by the time they may be sent, totals and breakdowns apart: ``due``
    #: pops what is due instead of scanning every pending value. A backfill leaves tens of
    #: thousands of breakdown values waiting and the flusher asks every 20 ms for 500 of
    #: them, so a scan per tick was quadratic (22 s of CPU in ``pulse demo``). Entries of
    #: keys sent or dropped meanwhile are skipped when they come up.
    _queues: tuple[list[tuple[float, int, str]], list[tuple[float, int, str]]] = field(
        default_factory=lambda: ([], []), init=False, repr=False, compare=False)
    _order: itertools.count[int] = field(
        default_factory=itertools.count, init=False, repr=False, compare=False)

    def interval(self, value: KpiValue) -> float:
        if value.dimension == "all" or self.dimension_min_interval is None:
            return self.min_interval
        return self.dimension_min_interval

    def _next_send(self, value: KpiValue) -> float:
        return self.last_sent.get(value.key, float("-inf")) + self.interval(value)

    def _wait(self, value: KpiValue) -> None:
        if value.key not in self.pending:  # already queued otherwise (same send time)
            queue = self._queues[value.dimension != "all"]
            heapq.heappush(queue, (self._next_send(value), next(self._order), value.key))
        self.pending[value.key] = value

    def offer(
        self, values: Iterable[KpiValue], now: float, defer: bool = False
    ) -> list[KpiValue]:
        """Values to publish now; the rest wait in ``pending`` (latest value per key).

        ``defer`` sends everything through ``pending`` (published by :meth:`due`, paced).
        """
        ready: list[KpiValue] = []
        for v in values:
            last = self.last_sent.get(v.key)
            if not defer and (last is None or now - last >= self.interval(v)):
                self.pending.pop(v.key, None)
                self.last_sent[v.key] = now
                ready.append(v)
            else:
                self._wait(v)
        return ready

    def due(self, now: float, limit: int | None = None) -> list[KpiValue]:
        """Pending values whose key may be published again (at most ``limit``, totals first)."""
        ready: list[KpiValue] = []
        for queue in self._queues:  # totals first
            while queue and (limit is None or len(ready) < limit) and queue[0][0] <= now:
                _, _, key = heapq.heappop(queue)
                value = self.pending.get(key)
                if value is None:  # sent by offer() or dropped since it was queued
                    continue
                at = self._next_send(value)
                if at > now:  # sent by offer() and waiting again since it was queued
                    heapq.heappush(queue, (at, next(self._order), key))
                    continue
                del self.pending[key]
                self.last_sent[key] = now
                ready.append(value)
        return ready

    def next_due(self) -> float | None:
        """Earliest time a pending value becomes publishable (``None`` if nothing waits)."""
        if not self.pending:
            return None
        return min(self.last_sent.get(k, 0.0) + self.interval(v) for k, v in self.pending.items())
