"""Prometheus metrics of the marketing mix model service (``pulse_mmm_*``)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

FITS = Counter(
    "pulse_mmm_fits_total",
    "Scheduled fits by outcome: published, rejected (diagnostics or too little history) "
    "or failed (an error; published as rejected).",
    ["status"],
)
FIT_SECONDS = Histogram(
    "pulse_mmm_fit_seconds",
    "Duration of one scheduled fit (read, sample, store, publish).",
    buckets=(1, 5, 15, 30, 60, 120, 180, 300, 600, 1200, 3600),
)
LAST_PUBLISHED = Gauge(
    "pulse_mmm_last_published_timestamp_seconds",
    "Unix time of the last fit that published results.",
)
LAST_FIT = Gauge(
    "pulse_mmm_last_fit_timestamp_seconds", "Unix time of the last scheduled fit (any outcome)."
)
