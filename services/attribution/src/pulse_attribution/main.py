"""Wiring of the attribution service: settings → store → bus → component → ASGI app, and
the console entry point. The component lives in :mod:`pulse_attribution.app`."""

from __future__ import annotations

from faststream.asgi import AsgiFastStream

from pulse_attribution.app import AttributionComponent
from pulse_attribution.settings import SERVICE, AttributionSettings
from pulse_shared.bus import Bus, make_broker
from pulse_shared.logging import configure_logging
from pulse_shared.schema.migrations import migrate_on_startup
from pulse_shared.service import create_service_app
from pulse_shared.settings import common_settings
from pulse_shared.store import Store, open_store

__all__ = ["AttributionComponent", "build", "create_app", "run"]


def build(
    store: Store, bus: Bus, settings: AttributionSettings | None = None
) -> AttributionComponent:
    return AttributionComponent(store, bus, settings or AttributionSettings())


def create_app(settings: AttributionSettings | None = None) -> AsgiFastStream:
    """Production wiring: real broker from ``PULSE_KAFKA_BOOTSTRAP``, store from settings."""
    common = common_settings()
    configure_logging(common.log_level, common.log_json)
    settings = settings or AttributionSettings()
    broker = make_broker(common.kafka_bootstrap, client_id=f"pulse-{SERVICE}")
    store = open_store(common)
    component = build(store, Bus(broker, SERVICE), settings)
    broker.include_router(component.router)
    return create_service_app(
        SERVICE,
        broker,
        store,
        consumers=component.consumers,
        on_startup=[migrate_on_startup(store)],
        after_startup=[component.start],
        on_shutdown=[component.stop],
    )


def run() -> None:
    """Console entry point ``pulse-attribution``: uvicorn on the configured host and port."""
    from pulse_shared.service import serve

    serve(AttributionSettings, create_app)
