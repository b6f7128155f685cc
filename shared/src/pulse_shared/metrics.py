"""Prometheus metrics shared by every service (one default registry per process).

Metric names here are referenced by the Grafana dashboards and Prometheus alert rules in
``deploy/``; a test checks they exist, so rename with care.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prometheus_client import REGISTRY, Counter, Gauge, Histogram, make_asgi_app

MESSAGES_CONSUMED = Counter(
    "pulse_messages_consumed_total", "Messages read from Kafka.", ["service", "topic"]
)
MESSAGES_DEAD_LETTERED = Counter(
    "pulse_messages_dead_lettered_total",
    "Messages sent to a dead-letter topic.",
    ["service", "topic", "reason"],
)
MESSAGES_PUBLISHED = Counter(
    "pulse_messages_published_total", "Messages published to Kafka.", ["service", "topic"]
)
ROWS_WRITTEN = Counter(
    "pulse_rows_written_total", "Rows confirmed written to ClickHouse.", ["service", "table"]
)
BATCH_WRITE_SECONDS = Histogram(
    "pulse_batch_write_seconds",
    "Time to write one batch to ClickHouse.",
    ["service", "table"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
BATCH_SIZE = Histogram(
    "pulse_batch_size", "Messages per consumed batch.", ["service", "topic"],
    buckets=(1, 10, 50, 100, 500, 1000, 5000, 10000, 50000),
)
PROCESSING_LATENCY_SECONDS = Histogram(
    "pulse_processing_latency_seconds",
    "From the Kafka record timestamp to the batch being committed (up to 100 sampled "
    "records per batch).",
    ["service", "topic"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
CONSUMER_LAG = Gauge(
    "pulse_consumer_lag", "Messages behind the log end, per partition.",
    ["service", "topic", "partition"],
)
CANONICAL_BATCHES = Counter(
    "pulse_canonical_batches_total",
    "Batches offered to the canonical fast path: written raw (hit) or validated record by "
    "record instead (fallback).",
    ["service", "topic", "outcome"],
)
HANDLER_ERRORS = Counter(
    "pulse_handler_errors_total",
    "Batches that failed and will be redelivered (nothing committed).",
    ["service", "topic"],
)


def metrics_asgi_app() -> Callable[..., Any]:
    """ASGI app serving the default registry in Prometheus text format."""
    return make_asgi_app(registry=REGISTRY)


_SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "summary": ("_sum", "_count", "_created"),
    "gauge": ("",),
    "info": ("_info",),
}


def metric_names() -> set[str]:
    """Every series name this process can expose, including labelled metrics that have
    not been observed yet (so dashboards and alert rules can be checked against it)."""
    names: set[str] = set()
    for collector in list(REGISTRY._collector_to_names):  # read-only use of the registry
        describe = getattr(collector, "describe", None)
        for family in (describe() if describe else None) or collector.collect():
            names.update(family.name + suffix for suffix in _SUFFIXES.get(family.type, ("",)))
            names.update(sample.name for sample in family.samples)
    return names
