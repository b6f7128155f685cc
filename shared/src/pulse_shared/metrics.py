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
    "From the Kafka record timestamp to the batch being committed.",
    ["service", "topic"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
CONSUMER_LAG = Gauge(
    "pulse_consumer_lag", "Messages behind the log end, per partition.",
    ["service", "topic", "partition"],
)
HANDLER_ERRORS = Counter(
    "pulse_handler_errors_total",
    "Batches that failed and will be redelivered (nothing committed).",
    ["service", "topic"],
)


def metrics_asgi_app() -> Callable[..., Any]:
    """ASGI app serving the default registry in Prometheus text format."""
    return make_asgi_app(registry=REGISTRY)


def metric_names() -> set[str]:
    """Every sample name this process can expose (for dashboard checks)."""
    names: set[str] = set()
    for collector in list(REGISTRY._collector_to_names):
        for family in collector.collect():
            names.add(family.name)
            for sample in family.samples:
                names.add(sample.name)
    return names
