"""KPI service wiring: settings → store → bus → :class:`~pulse_kpi.app.KpiComponent` →
ASGI app (:func:`create_app`), the console entry point (:func:`run`) and the offline
recomputation (:func:`recompute_range`). The component lives in :mod:`pulse_kpi.app`."""

from __future__ import annotations

import datetime as dt
from typing import Any

from faststream.kafka import KafkaRouter

from pulse_kpi.app import KpiComponent, SilentBus
from pulse_kpi.settings import SERVICE, KpiSettings
from pulse_shared.bus import Bus
from pulse_shared.events import KpiSnapshot
from pulse_shared.store import Store
from pulse_shared.topics import KPI_SNAPSHOTS

__all__ = ["KpiComponent", "add_snapshot_publisher", "build", "create_app", "recompute_range",
           "run"]


def build(store: Store, bus: Bus, settings: KpiSettings | None = None) -> KpiComponent:
    """The KPI component (consumers + background tasks) on a given store and bus."""
    return KpiComponent(store, bus, settings or KpiSettings())


def add_snapshot_publisher(router: KafkaRouter) -> Any:
    """Declare the ``kpi.snapshots.v1`` publisher (AsyncAPI documentation only).

    Snapshots are sent through :class:`pulse_shared.bus.Bus`; this declaration documents
    them. It is added in production wiring and for the committed document, not to the
    component's router: FastStream's in-memory test broker turns every declared publisher
    into a fake subscriber, which would cost the embedded pipeline a handler call per
    snapshot.
    """
    return router.publisher(
        KPI_SNAPSHOTS.name,
        title=f"{KPI_SNAPSHOTS.name}:publish",
        description=(
            "One KpiSnapshot per KPI × grain × dimension × period when its value changes "
            "(at most once per PULSE_KPI_SNAPSHOT_MIN_INTERVAL_S per total key and "
            "PULSE_KPI_SNAPSHOT_DIMENSION_MIN_INTERVAL_S per channel/campaign key), plus "
            "daily closes (final=true) of the periods that ended. Key: the KPI name. "
            "schema_version 1."
        ),
        schema=KpiSnapshot,
    )


def create_app(settings: KpiSettings | None = None) -> Any:
    """Production wiring: Kafka from ``PULSE_KAFKA_BOOTSTRAP``, store from common settings."""
    from pulse_shared.bus import make_broker
    from pulse_shared.logging import configure_logging
    from pulse_shared.schema.migrations import migrate_on_startup
    from pulse_shared.service import create_service_app
    from pulse_shared.settings import common_settings
    from pulse_shared.store import open_store

    common = common_settings()
    configure_logging(common.log_level, common.log_json)
    settings = settings or KpiSettings()
    broker = make_broker(common.kafka_bootstrap, client_id="pulse-kpi")
    store = open_store(common)
    component = build(store, Bus(broker, SERVICE), settings)
    add_snapshot_publisher(component.router)
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
    """Console entry point ``pulse-kpi``: uvicorn on the configured host and port."""
    from pulse_shared.service import serve

    serve(KpiSettings, create_app)


async def recompute_range(store: Store, first: dt.date, end: dt.date) -> int:
    """Recompute MRR movements and every KPI of the days ``[first, end)`` from raw tables,
    publishing nothing; returns how many values changed."""
    from pulse_shared.bus import make_broker

    component = build(
        store, SilentBus(make_broker(None), SERVICE), KpiSettings(close_enabled=False)
    )
    return len(await component.recompute_range(first, end))
