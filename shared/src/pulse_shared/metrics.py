"""Prometheus metrics shared by every service (one default registry per process).

Metric names here are referenced by the Grafana dashboards and Prometheus alert rules in
``deploy/``; a test checks they exist, so rename with care.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, Protocol
from weakref import WeakSet

from prometheus_client import REGISTRY, Counter, Histogram, make_asgi_app
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

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

class ConsumerStats(Protocol):
    """What a Kafka consumer reports at each scrape (see :class:`ConsumerCollector`)."""

    service: str

    def lag(self) -> dict[tuple[str, int], int]:
        """Messages behind the log end per (topic, partition) of the current assignment."""

    def stalled_seconds(self) -> float:
        """Seconds behind the log end without a commit (0 when caught up)."""


class ConsumerCollector(Collector):
    """``pulse_consumer_lag`` and ``pulse_consumer_stalled_seconds``, computed at scrape time
    from each live consumer's assignment, log end and committed point.

    Computed on scrape rather than set after each batch: a consumer stuck on a batch (or
    with nothing to read on a partition) still has a current series for every partition it
    owns, and a partition lost in a rebalance stops being exported.
    """

    def __init__(self) -> None:
        self.sources: WeakSet[ConsumerStats] = WeakSet()

    def describe(self) -> Iterator[Metric]:
        yield from self._families()

    def _families(self) -> tuple[GaugeMetricFamily, GaugeMetricFamily]:
        return (
            GaugeMetricFamily(
                "pulse_consumer_lag",
                "Messages behind the log end (not yet committed), per partition.",
                labels=["service", "topic", "partition"],
            ),
            GaugeMetricFamily(
                "pulse_consumer_stalled_seconds",
                "Seconds a consumer has been behind the log end without committing "
                "(0 when caught up); /health turns 503 past PULSE_CONSUMER_STALL_AFTER_S.",
                labels=["service", "topic"],
            ),
        )

    def collect(self) -> Iterator[Metric]:
        lag_family, stalled_family = self._families()
        lags: dict[tuple[str, str, str], int] = {}
        stalled: dict[tuple[str, str], float] = {}
        for source in list(self.sources):
            try:
                lag = source.lag()
                seconds = source.stalled_seconds()
            except Exception:  # a scrape must never fail because of one consumer
                continue
            for (topic, partition), value in lag.items():
                key = (source.service, topic, str(partition))
                lags[key] = max(lags.get(key, 0), value)
            for topic in {topic for topic, _ in lag}:
                key2 = (source.service, topic)
                stalled[key2] = max(stalled.get(key2, 0.0), seconds)
        for labels, value in sorted(lags.items()):
            lag_family.add_metric(list(labels), value)
        for labels2, seconds in sorted(stalled.items()):
            stalled_family.add_metric(list(labels2), seconds)
        yield lag_family
        yield stalled_family


CONSUMERS = ConsumerCollector()
REGISTRY.register(CONSUMERS)
CANONICAL_BATCHES = Counter(
    "pulse_canonical_batches_total",
    "Batches offered to the canonical fast path: written raw (hit) or validated record by "
    "record instead (fallback).",
    ["service", "topic", "outcome"],
)
HANDLER_ERRORS = Counter(
    "pulse_handler_errors_total",
    "Failed attempts to process a batch (retried in place; nothing committed meanwhile).",
    ["service", "topic"],
)
BATCH_SPLITS = Counter(
    "pulse_batch_splits_total",
    "Batches (or halves) split because ClickHouse refused some of their records.",
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
