"""Prometheus metrics of the attribution service (``pulse_attribution_*``)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

CONVERSIONS = Counter(
    "pulse_attribution_conversions_total", "Conversions received.", ["milestone"]
)
CREDITS_WRITTEN = Counter(
    "pulse_attribution_credits_written_total",
    "Credit rows written (and published), per model.",
    ["model"],
)
CREDIT_VERSIONS = Counter(
    "pulse_attribution_credit_versions_total",
    "New credit versions of a conversion × model, by reason.",
    ["reason"],
)
RECOMPUTE_SECONDS = Histogram(
    "pulse_attribution_recompute_seconds",
    "Time to recompute rule-based credits for one batch of conversions.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
CREDIT_KEY_WAIT_SECONDS = Histogram(
    "pulse_attribution_credit_key_wait_seconds",
    "Wait of a credit computation for conversions another computation holds (0 when "
    "none of its conversions is busy).",
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
JOURNEY_TOUCHES = Histogram(
    "pulse_attribution_journey_touches",
    "Touches in the lookback window of a conversion.",
    buckets=(0, 1, 2, 3, 5, 10, 20, 50, 100, 500),
)
MODEL_RUN_SECONDS = Histogram(
    "pulse_attribution_model_run_seconds",
    "Duration of one data-driven model run.",
    ["model"],
    buckets=(0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900),
)
MODEL_RUNS = Counter(
    "pulse_attribution_model_runs_total", "Data-driven model runs.", ["model", "status"]
)
LAST_MODEL_RUN = Gauge(
    "pulse_attribution_last_model_run_timestamp_seconds",
    "Unix time of the last successful data-driven run.",
    ["model"],
)
