"""FastStream wiring of the KPI service: subscribe and publish only."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from faststream.kafka import KafkaRouter
from faststream.kafka.annotations import KafkaMessage
from pulse_shared.events import KpiSnapshot
from pulse_shared.streaming import batch_subscription
from pulse_shared.topics import KPI_SNAPSHOTS

from pulse_kpi.settings import GROUP_ID

if TYPE_CHECKING:
    from pulse_kpi.main import KpiComponent


def build_router(component: KpiComponent) -> KafkaRouter:
    """One batch subscriber per input topic (group ``pulse-kpi``) and the snapshot publisher."""
    router = KafkaRouter()
    options = batch_subscription(GROUP_ID, component.settings.max_records)
    for consumer in component.consumers:

        def make(c: Any) -> Any:
            async def handle(body: Any, message: KafkaMessage) -> None:
                await c.handle(message)

            handle.__name__ = f"kpi_{c.topic.model.kind}"
            return handle

        router.subscriber(
            consumer.topic.name,
            **options,
            title=f"{consumer.topic.name}:kpi",
            description=f"KPI service consumes {consumer.topic.description}",
        )(make(consumer))
    component.snapshot_publisher = router.publisher(
        KPI_SNAPSHOTS.name,
        title=f"{KPI_SNAPSHOTS.name}:publish",
        description=(
            "One KpiSnapshot per KPI × grain × dimension × period when its value changes "
            "(at most once per PULSE_KPI_SNAPSHOT_MIN_INTERVAL_S per key), plus daily closes "
            "(final=true) of the periods that ended. Key: the KPI name. schema_version 1."
        ),
        schema=KpiSnapshot,
    )
    return router
