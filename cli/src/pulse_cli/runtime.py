"""Runs Pulse services for the CLI: in one process on the embedded default, or as a
publisher into a real Kafka broker when one is configured.

The in-process pipeline includes every service's production router in one FastStream
broker wrapped in ``TestKafkaBroker`` (FastStream's in-memory transport), so events go
through exactly the handlers that run in production, into embedded chDB.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from faststream.kafka import KafkaBroker, TestKafkaBroker

from pulse_shared.bus import Bus, make_broker
from pulse_shared.component import Component
from pulse_shared.logging import get_logger
from pulse_shared.schema.migrations import migrate
from pulse_shared.settings import PulseSettings, common_settings
from pulse_shared.store import Store, open_store

log = get_logger(__name__)


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


@asynccontextmanager
async def open_pipeline(settings: PulseSettings | None = None) -> AsyncIterator[Pipeline]:
    """In-process pipeline when no Kafka is configured; else a publisher to Kafka."""
    settings = settings or common_settings()
    if settings.kafka_bootstrap:
        broker = make_broker(settings.kafka_bootstrap, client_id="pulse-cli")
        await broker.connect()
        try:
            yield Pipeline(store=None, bus=Bus(broker, "ingest"), in_process=False)
        finally:
            await broker.stop()
        return
    store = open_store(settings)
    migrate(store)
    broker = make_broker(None, client_id="pulse-embedded")
    components = build_components(store, broker, in_memory=True)
    for component in components:
        broker.include_router(component.router)
    async with TestKafkaBroker(broker):
        for component in components:
            await component.start()
        try:
            yield Pipeline(
                store=store,
                bus=Bus(broker, "ingest", in_memory=True),
                in_process=True,
                components=components,
            )
        finally:
            for component in reversed(components):
                await component.stop()
