"""Runs Pulse services for the CLI: in one process on the embedded default, or as a
publisher into a real Kafka broker when one is configured.

The in-process pipeline includes every service's production router in one FastStream
broker wrapped in ``TestKafkaBroker`` (FastStream's in-memory transport, with the cheaper
batch publish of :mod:`pulse_shared.in_memory`), so events go through exactly the handlers
that run in production, into embedded chDB.

In process, "publishing" runs every downstream consumer before it returns. Each consumer
isolates the records ClickHouse refuses and dead-letters them (``BatchConsumer``, as in
production); the pipeline subscribes to every ``<topic>.dlq`` and records each dead letter
as a :class:`Refusal`, so the CLI can name every input row that did not make it.
"""

from __future__ import annotations

import gc
import json
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from faststream.kafka import KafkaBroker, KafkaRouter
from faststream.kafka.annotations import KafkaMessage

from pulse_shared.bus import Bus, make_broker
from pulse_shared.component import Component
from pulse_shared.events import DeadLetter
from pulse_shared.in_memory import InMemoryKafkaBroker
from pulse_shared.logging import get_logger
from pulse_shared.schema.migrations import migrate
from pulse_shared.settings import PulseSettings, common_settings
from pulse_shared.store import Store, open_store
from pulse_shared.streaming import RetryPolicy, raw_body_decoder
from pulse_shared.topics import ALL_TOPICS, Topic

log = get_logger(__name__)

# In process there is no outage to wait out: refused records are isolated at once, and an
# embedded store that fails twice in a row is broken, which the command then reports.
IN_PROCESS_RETRY = RetryPolicy(attempts=2, first_delay_s=0.05, max_delay_s=0.05)
MAX_REFUSALS_KEPT = 10_000


@dataclass(frozen=True)
class Refusal:
    """An event the in-process pipeline did not store: dead-lettered by ``consumer``."""

    topic: str
    event_id: str | None
    field: str
    reason: str
    consumer: str | None = None


def dead_letter_refusal(letter: DeadLetter) -> Refusal:
    try:
        payload = json.loads(letter.payload)
    except ValueError:
        payload = None
    event_id = payload.get("event_id") if isinstance(payload, dict) else None
    first = letter.errors[0].field if letter.errors else "(record)"
    return Refusal(letter.source_topic, str(event_id) if event_id else None, first,
                   letter.reason, consumer=letter.consumer)


def dead_letter_router(topics: Iterable[Topic], refusals: list[Refusal]) -> KafkaRouter:
    """Subscribers of every ``<topic>.dlq`` that record what the consumers dead-lettered."""
    router = KafkaRouter()
    for topic in topics:

        async def collect(body: Any, message: KafkaMessage) -> None:
            raw = message.raw_message
            for record in raw if isinstance(raw, list | tuple) else [raw]:
                if len(refusals) >= MAX_REFUSALS_KEPT:
                    return
                try:
                    refusals.append(dead_letter_refusal(
                        DeadLetter.model_validate_json(record.value)))
                except ValueError:  # not a dead letter after all: keep what we can
                    refusals.append(Refusal(record.topic, None, "(record)",
                                            "unreadable dead letter"))

        collect.__name__ = f"cli_dead_letters_{topic.model.kind}"
        router.subscriber(topic.dead_letter, batch=True, group_id="pulse-cli-dead-letters",
                          decoder=raw_body_decoder)(collect)
    return router


def build_components(store: Store, broker: KafkaBroker, in_memory: bool) -> list[Component]:
    """Every consuming service, in pipeline order, on one broker."""
    from pulse_alerts.main import build as build_alerts
    from pulse_attribution.main import build as build_attribution
    from pulse_kpi.main import build as build_kpi
    from pulse_reporting.main import build as build_reporting

    components: list[Component] = [
        build_attribution(store, Bus(broker, "attribution", in_memory=in_memory)),
        build_kpi(store, Bus(broker, "kpi", in_memory=in_memory)),
        build_alerts(store, Bus(broker, "alerts", in_memory=in_memory)),
        build_reporting(store, Bus(broker, "reporting", in_memory=in_memory)),
    ]
    return components


@dataclass
class Pipeline:
    """What a CLI command gets: a store, and a bus to publish ingested events on."""

    store: Store | None  # None when publishing to Kafka: services own the writes
    bus: Bus
    in_process: bool
    components: list[Component] = field(default_factory=list)
    # In process only: events the pipeline refused or dead-lettered, oldest first.
    refusals: list[Refusal] = field(default_factory=list)

    def take_refusals(self) -> list[Refusal]:
        taken = list(self.refusals)
        self.refusals.clear()
        return taken

    async def settle(self) -> None:
        """In process: run now what the services otherwise do on their timers, so what is
        read next (``pulse demo``'s reports) shows all of it, however soon that is: the
        data-driven attribution models (Markov, Shapley: hourly, first 60 s after start),
        the KPI breakdown passes (every second) with the snapshots they hold back, and the
        alerts' timer rules. The same calls as the timers make."""
        from pulse_alerts.app import AlertsComponent
        from pulse_attribution.app import AttributionComponent
        from pulse_kpi.app import KpiComponent

        # In pipeline order: new credits are KPI inputs, KPI snapshots are alert inputs.
        for component in self.components:
            if isinstance(component, AttributionComponent):
                await component.recompute_data_driven()
        for component in self.components:
            if isinstance(component, KpiComponent):
                await component.refresh_breakdowns()
                await component.flush(force=True)
        for component in self.components:
            if isinstance(component, AlertsComponent):
                await component.tick()


@asynccontextmanager
async def open_pipeline(settings: PulseSettings | None = None) -> AsyncIterator[Pipeline]:
    """In-process pipeline when no Kafka is configured; else a publisher to Kafka."""
    settings = settings or common_settings()
    if settings.kafka_bootstrap:
        broker = make_broker(settings.kafka_bootstrap, client_id="pulse-cli")
        try:
            await broker.connect()
            yield Pipeline(store=None, bus=Bus(broker, "ingest"), in_process=False)
        finally:
            await broker.stop()
        return
    from pulse_shared.service import GC_YOUNG_THRESHOLD

    store = open_store(settings)
    migrate(store)
    async with in_process_pipeline(store) as pipeline:
        # Every service runs in this process: collect the young generation as rarely as a
        # service process does (tune_gc; not its freeze, which crashed scripts that leave
        # chDB open at exit). At CPython's 700 the collector walked the live events of each
        # batch over and over (~3 µs of every ingested touchpoint). Restored on close.
        young, *older = gc.get_threshold()
        gc.set_threshold(GC_YOUNG_THRESHOLD, *older)
        try:
            yield pipeline
        finally:
            gc.set_threshold(young, *gc.get_threshold()[1:])


@asynccontextmanager
async def in_process_pipeline(store: Store) -> AsyncIterator[Pipeline]:
    """Every service's production router on ``store`` behind FastStream's in-memory
    broker (the embedded default; tests run the pipeline on their own store with it)."""
    broker = make_broker(None, client_id="pulse-embedded")
    components = build_components(store, broker, in_memory=True)
    for consumer in (c for component in components for c in component.consumers):
        consumer.retry = IN_PROCESS_RETRY
    refusals: list[Refusal] = []
    for component in components:
        broker.include_router(component.router)
    broker.include_router(dead_letter_router(ALL_TOPICS, refusals))
    async with InMemoryKafkaBroker(broker):
        for component in components:
            await component.start()
        try:
            yield Pipeline(
                store=store,
                bus=Bus(broker, "ingest", in_memory=True),
                in_process=True,
                components=components,
                refusals=refusals,
            )
        finally:
            for component in reversed(components):
                await component.stop()
