"""FastStream wiring of the KPI service: subscribe and publish only."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from faststream.kafka import KafkaRouter
from faststream.kafka.annotations import KafkaMessage
from pydantic import TypeAdapter, WithJsonSchema

from pulse_kpi.settings import GROUP_ID
from pulse_shared.events import KpiSnapshot
from pulse_shared.streaming import batch_subscription
from pulse_shared.topics import KPI_SNAPSHOTS

if TYPE_CHECKING:
    from pulse_kpi.main import KpiComponent


def add_snapshot_publisher(router: KafkaRouter) -> Any:
    """Declare the ``kpi.snapshots.v1`` publisher (AsyncAPI documentation only).

    Snapshots are sent through :class:`pulse_shared.bus.Bus`; this declaration documents
    them. It is added in production wiring and for the committed document, not in
    :func:`build_router`: FastStream's in-memory test broker turns every declared publisher
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


def build_router(component: KpiComponent) -> KafkaRouter:
    """One batch subscriber per input topic (group ``pulse-kpi``)."""
    router = KafkaRouter()
    options = batch_subscription(GROUP_ID, component.settings.max_records)
    for consumer in component.consumers:

        def make(c: Any) -> Any:
            async def handle(body: Any, message: KafkaMessage) -> None:
                await c.handle(message)

            handle.__name__ = f"kpi_{c.topic.model.kind}"
            # Documents the payload (AsyncAPI) without casting: BatchConsumer validates each
            # record itself and dead-letters the invalid ones.
            handle.__annotations__ = {
                "body": Annotated[
                    list[Any], WithJsonSchema(inline_schema(list[c.topic.model]))
                ],
                "message": KafkaMessage,
                "return": None,
            }
            return handle

        router.subscriber(
            consumer.topic.name,
            **options,
            title=f"{consumer.topic.name}:kpi",
            description=f"KPI service consumes {consumer.topic.description}",
        )(make(consumer))
    return router
