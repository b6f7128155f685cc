"""One router for every service: a component's declared consumers become FastStream
batch subscribers.

A service declares its consumers as :class:`~pulse_shared.streaming.BatchConsumer` objects
(topic, ``consume``, subscription options such as ``max_records``) and exposes them as
``Component.consumers``; :func:`build_router` subscribes each one to its topic in the
service's consumer group. No service writes subscribers by hand, so a component module
never has to import the module that routes to it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from faststream.kafka import KafkaRouter
from faststream.kafka.annotations import KafkaMessage
from pydantic import TypeAdapter, WithJsonSchema

from pulse_shared.settings import PulseSettings
from pulse_shared.streaming import batch_subscription

if TYPE_CHECKING:
    from pulse_shared.component import Component
    from pulse_shared.streaming import BatchConsumer


def inline_schema(tp: Any) -> dict[str, Any]:
    """JSON schema of ``tp`` with ``$defs`` references inlined (self-contained payload)."""
    schema = TypeAdapter(tp).json_schema()
    defs = schema.pop("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                return resolve(defs[ref.removeprefix("#/$defs/")])
            return {k: resolve(v) for k, v in node.items()}
        if isinstance(node, list):
            return [resolve(v) for v in node]
        return node

    return resolve(schema)  # type: ignore[no-any-return]


def subscriber_handler(service: str, consumer: BatchConsumer[Any]) -> Any:
    """The FastStream handler of one consumer: it hands each whole batch to the consumer.

    Its annotations document the payload (AsyncAPI) without FastStream casting it: the
    consumer validates each record itself and dead-letters the invalid ones.
    """

    async def handle(body: Any, message: KafkaMessage) -> None:
        await consumer.handle(message)

    handle.__name__ = f"{service}_{consumer.topic.model.kind}"
    payload = list[consumer.topic.model]  # type: ignore[name-defined]
    handle.__annotations__ = {
        "body": Annotated[list[Any], WithJsonSchema(inline_schema(payload))],
        "message": KafkaMessage,
        "return": None,
    }
    return handle


def build_router(
    component: Component,
    group_id: str,
    settings: PulseSettings | None = None,
    *,
    label: str | None = None,
) -> KafkaRouter:
    """One batch subscriber per consumer of ``component``, in group ``group_id`` (behind the settings'
    consumer group prefix; without ``settings`` the prefix is read when subscribing, see
    :func:`~pulse_shared.streaming.consumer_group`).

    ``label`` names the service in the subscribers' AsyncAPI descriptions (default
    ``component.name``). A service without consumers gets an empty router, so every service
    wires the same way.
    """
    service = component.name
    router = KafkaRouter()
    for consumer in component.consumers:
        router.subscriber(
            consumer.topic.name,
            **batch_subscription(group_id, consumer.max_records, settings=settings),
            title=f"{consumer.topic.name}:{service}",
            description=f"{label or service} service consumes {consumer.topic.description}",
        )(subscriber_handler(service, consumer))
    return router
