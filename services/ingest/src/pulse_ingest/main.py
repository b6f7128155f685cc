"""Ingest service wiring: settings → broker → bus → service → HTTP API
(:func:`create_app`), the embedded component (:func:`build`) and the console entry point.
The API lives in :mod:`pulse_ingest.api`, the component in :mod:`pulse_ingest.app`."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from faststream.kafka import KafkaBroker

from pulse_ingest.api import build_api
from pulse_ingest.app import SERVICE, IngestComponent
from pulse_ingest.service import IngestService
from pulse_ingest.settings import ConfigurationError, IngestSettings
from pulse_shared.bus import Bus, make_broker
from pulse_shared.logging import configure_logging, get_logger
from pulse_shared.service import broker_health
from pulse_shared.settings import common_settings
from pulse_shared.store import Store

__all__ = ["IngestComponent", "build", "build_api", "create_app", "run"]
log = get_logger(__name__)


def build(store: Store | None, bus: Bus, settings: IngestSettings | None = None) -> IngestComponent:
    """Embedded/demo wiring: the service on a given bus (the store is not needed)."""
    return IngestComponent(service=IngestService(bus, settings or IngestSettings()))


def create_app(settings: IngestSettings | None = None, broker: KafkaBroker | None = None) -> FastAPI:
    """Production app: real Kafka broker from ``PULSE_KAFKA_BOOTSTRAP``, started in lifespan."""
    settings = settings or IngestSettings()
    common = common_settings()
    configure_logging(common.log_level, common.log_json)
    in_memory = broker is None and not common.kafka_bootstrap
    if in_memory and not settings.demo:
        raise ConfigurationError("PULSE_KAFKA_BOOTSTRAP is required to run the ingest API")
    kafka = broker or make_broker(common.kafka_bootstrap, client_id="pulse-ingest")
    service = IngestService(Bus(kafka, SERVICE, in_memory=in_memory), settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        log.info("ingest_starting", bootstrap=common.kafka_bootstrap, in_memory=in_memory)
        if in_memory:  # demo without Kafka: events go to FastStream's in-memory broker
            from faststream.kafka import TestKafkaBroker

            async with TestKafkaBroker(kafka):
                yield
            return
        connecting: asyncio.Task[None] | None = None
        try:
            await kafka.start()
        except Exception as exc:  # keep serving: 503 + /health degraded until connected
            log.warning("kafka_unavailable_at_startup", error=repr(exc))
            await kafka.stop()
            connecting = asyncio.create_task(_connect_until_ready(kafka, settings))
        try:
            yield
        finally:
            if connecting is not None:
                connecting.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await connecting
            await kafka.stop()

    return build_api(service, settings, health=broker_health(kafka), lifespan=lifespan)


async def _connect_until_ready(broker: KafkaBroker, settings: IngestSettings) -> None:
    while True:
        await asyncio.sleep(settings.connect_retry_s)
        try:
            await broker.start()
        except Exception as exc:
            log.warning("kafka_connect_retry", error=repr(exc))
            await broker.stop()
            continue
        log.info("kafka_connected")
        return


def run() -> None:
    """Console entry point ``pulse-ingest``: uvicorn on ``settings.port``."""
    import uvicorn

    from pulse_shared.config_checks import refusing_to_start

    with refusing_to_start():  # out-of-range settings, no/weak/placeholder salt, demo beside Kafka
        settings = IngestSettings()
        app = create_app(settings)
    uvicorn.run(app, host=settings.host, port=settings.port, log_config=None)
