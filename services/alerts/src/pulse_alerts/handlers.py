"""FastStream subscribers of the alerts service (subscribe and delegate only)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from faststream.kafka import KafkaRouter
from faststream.kafka.annotations import KafkaMessage

from pulse_shared.streaming import batch_subscription
from pulse_shared.topics import KPI_SNAPSHOTS

if TYPE_CHECKING:
    from pulse_alerts.main import AlertsComponent

GROUP_ID = "pulse-alerts"


def build_router(component: AlertsComponent) -> KafkaRouter:
    router = KafkaRouter()

    @router.subscriber(  # type: ignore[untyped-decorator]
        KPI_SNAPSHOTS.name, **batch_subscription(GROUP_ID, max_records=2000)
    )
    async def on_kpi_snapshots(body: Any, message: KafkaMessage) -> None:
        await component.consumer.handle(message)

    return router
