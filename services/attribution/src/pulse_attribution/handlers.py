"""FastStream subscribers: each delegates a whole batch to its :class:`BatchConsumer`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from faststream.kafka import KafkaRouter
from faststream.kafka.annotations import KafkaMessage

from pulse_attribution.settings import GROUP_ID
from pulse_shared.streaming import batch_subscription
from pulse_shared.topics import PIPELINE, SUBSCRIPTIONS, TOUCHPOINTS

if TYPE_CHECKING:
    from pulse_attribution.main import AttributionComponent


def build_router(component: AttributionComponent) -> KafkaRouter:
    router = KafkaRouter()
    options = batch_subscription(GROUP_ID, component.settings.max_records)

    @router.subscriber(TOUCHPOINTS.name, **options)  # type: ignore[untyped-decorator]
    async def on_touchpoints(body: Any, message: KafkaMessage) -> None:
        await component.touchpoints.handle(message)

    @router.subscriber(PIPELINE.name, **options)  # type: ignore[untyped-decorator]
    async def on_pipeline(body: Any, message: KafkaMessage) -> None:
        await component.pipeline.handle(message)

    @router.subscriber(SUBSCRIPTIONS.name, **options)  # type: ignore[untyped-decorator]
    async def on_subscriptions(body: Any, message: KafkaMessage) -> None:
        await component.subscriptions.handle(message)

    return router
