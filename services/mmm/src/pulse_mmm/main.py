"""Marketing mix model service wiring: settings → store → bus →
:class:`~pulse_mmm.app.MmmComponent` → ASGI app (:func:`create_app`) and the console entry
point (:func:`run`). The component lives in :mod:`pulse_mmm.app`."""

from __future__ import annotations

from typing import Any

from faststream.kafka import KafkaRouter

from pulse_mmm.app import MmmComponent
from pulse_mmm.settings import SERVICE, MmmSettings
from pulse_shared.bus import Bus
from pulse_shared.events import MmmRunCompleted
from pulse_shared.store import Store
from pulse_shared.topics import MMM_RESULTS

__all__ = ["MmmComponent", "add_results_publisher", "build", "create_app", "run"]


def build(store: Store, bus: Bus, settings: MmmSettings | None = None) -> MmmComponent:
    """The MMM component (scheduled refit) on a given store and bus."""
    return MmmComponent(store, bus, settings or MmmSettings())


def add_results_publisher(router: KafkaRouter) -> Any:
    """Declare the ``mmm.results.v1`` publisher (AsyncAPI documentation only: results are
    sent through :class:`pulse_shared.bus.Bus`)."""
    return router.publisher(
        MMM_RESULTS.name,
        title=f"{MMM_RESULTS.name}:publish",
        description=(
            "One MmmRunCompleted per marketing mix model fit (scheduled every "
            "PULSE_MMM_REFIT_INTERVAL_S, `pulse mmm fit`, `pulse demo`): status published "
            "(incremental ROI per channel with 90 % credible intervals; the full results "
            "are in the mmm_* tables under run_id) or rejected (reason: failed diagnostics, "
            "too little history, a failed fit). Key: the target. schema_version 1."
        ),
        schema=MmmRunCompleted,
    )


def create_app(settings: MmmSettings | None = None) -> Any:
    """Production wiring: Kafka from ``PULSE_KAFKA_BOOTSTRAP``, store from common settings."""
    from pulse_shared.bus import make_broker
    from pulse_shared.logging import configure_logging
    from pulse_shared.schema.migrations import migrate_on_startup
    from pulse_shared.service import create_service_app
    from pulse_shared.settings import common_settings
    from pulse_shared.store import open_store

    common = common_settings()
    configure_logging(common.log_level, common.log_json)
    settings = settings or MmmSettings()
    broker = make_broker(common.kafka_bootstrap, client_id=f"pulse-{SERVICE}")
    store = open_store(common)
    component = build(store, Bus(broker, SERVICE), settings)
    add_results_publisher(component.router)
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
    """Console entry point ``pulse-mmm``: uvicorn on the configured host and port."""
    from pulse_shared.service import serve

    serve(MmmSettings, create_app)
