"""Prometheus metrics of the KPI service (``pulse_kpi_*``)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

RECOMPUTE_SECONDS = Histogram(
    "pulse_kpi_recompute_seconds",
    "Time to recompute the KPIs affected by one batch (load facts, compute, write, publish).",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
VALUES_COMPUTED = Counter(
    "pulse_kpi_values_computed_total", "KPI values computed (changed or not)."
)
VALUES_CHANGED = Counter(
    "pulse_kpi_values_changed_total", "KPI values that changed and were upserted to kpi_values."
)
SNAPSHOTS_PUBLISHED = Counter(
    "pulse_kpi_snapshots_published_total", "KpiSnapshot messages published.", ["final"]
)
SNAPSHOTS_PENDING = Gauge(
    "pulse_kpi_snapshots_pending", "Changed KPI keys waiting for their per-key rate limit."
)
MRR_MOVEMENTS = Counter(
    "pulse_kpi_mrr_movements_total", "MRR movements (re)classified.", ["kind"]
)
LAST_RECOMPUTE = Gauge(
    "pulse_kpi_last_recompute_timestamp_seconds", "Unix time of the last KPI recompute."
)
