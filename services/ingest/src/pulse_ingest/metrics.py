"""Prometheus metrics of the ingest service (names ``pulse_ingest_*``)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

ROWS_ACCEPTED = Counter(
    "pulse_ingest_rows_accepted_total", "Rows validated and published.", ["kind", "source"]
)
ROWS_REJECTED = Counter(
    "pulse_ingest_rows_rejected_total",
    "Rows rejected by validation (or not published in atomic mode).",
    ["kind", "source"],
)
ROWS_DUPLICATE = Counter(
    "pulse_ingest_rows_duplicate_total",
    "Rows whose event_id was already ingested recently (not re-published).",
    ["kind", "source"],
)
REQUEST_SECONDS = Histogram(
    "pulse_ingest_request_seconds",
    "HTTP ingest request latency.",
    ["endpoint", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
PUBLISH_SECONDS = Histogram(
    "pulse_ingest_publish_seconds",
    "Time to publish one accepted batch to the broker (acks=all).",
    ["kind"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
BACKPRESSURE = Counter(
    "pulse_ingest_backpressure_total",
    "Requests refused with 503 because the broker is slow or down.",
    ["kind", "reason"],
)
INFLIGHT_ROWS = Gauge("pulse_ingest_inflight_rows", "Rows currently being published.")
AUTH_FAILURES = Counter(
    "pulse_ingest_auth_failures_total", "Requests refused by auth.", ["status"]
)
