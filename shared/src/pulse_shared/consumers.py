"""Declared consumers and the one router that turns them into FastStream subscribers.

A service declares each consumer as a :class:`Consumer` — its topic, a pure *processor*
(events → rows per table), the *sink* that writes those rows, and an optional follow-up
that runs once the rows are stored (recompute, publish) — Snuba's processor → writer chain.
:meth:`Consumer.strategy` makes the :class:`~pulse_shared.streaming.BatchConsumer` that
runs it: validate → dead-letter → top up by size and time → process → write → follow up →
commit. Components expose the strategies as ``Component.consumers``; :func:`build_router`
subscribes each one in the service's consumer group. No service writes subscribers by
hand, so a component module never has to import the module that routes to it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, Generic, TypeVar

from faststream.kafka import KafkaRouter
from faststream.kafka.annotations import KafkaMessage
from pydantic import TypeAdapter, WithJsonSchema

from pulse_shared.settings import PulseSettings
from pulse_shared.streaming import BatchConsumer, batch_subscription

if TYPE_CHECKING:
    from pulse_shared.bus import Bus
    from pulse_shared.component import Component
    from pulse_shared.events import Event
    from pulse_shared.topics import Topic
    from pulse_shared.writer import RowWriter

E = TypeVar("E", bound="Event")


@dataclass(frozen=True)
class TableRows:
    """Rows for one table, with the columns they fill (declared in the service's storage)."""

    table: str
    columns: Sequence[str]
    rows: Sequence[Mapping[str, Any]]


Processor = Callable[[Sequence[E]], Sequence[TableRows]]
"""Pure: a batch of valid events → the rows to store (no I/O, no clock, no state)."""
FollowUp = Callable[[list[E]], Awaitable[None]]
"""After the rows are stored: stateful work (recompute, publish), retried with the batch."""


@dataclass(frozen=True)
class Consumer(Generic[E]):
    """The declaration of one consumer of a service."""

    topic: Topic
    processor: Processor[E] | None = None
    then: FollowUp[E] | None = None
    canonical: Callable[[list[bytes]], Awaitable[bool]] | None = None
    """Optional fast path for canonical JSON (see :mod:`pulse_shared.canonical`)."""
    max_records: int = 5000
    flush_after_s: float | None = None
    """How long a polled batch is topped up (None: ``consumer_flush_after_s``)."""

    def strategy(
        self, service: str, bus: Bus, sink: RowWriter | None = None
    ) -> BatchConsumer[E]:
        """The strategy running this declaration, writing through ``sink`` (needed when
        there is a processor)."""
        processor, then = self.processor, self.then
        if processor is not None and sink is None:
            raise ValueError(f"{service} consumer of {self.topic.name}: a processor needs a sink")

        async def consume(events: list[E]) -> None:
            if processor is not None and sink is not None:
                for part in processor(events):
                    await sink.write(part.table, part.rows, part.columns)
            if then is not None:
                await then(events)

        return BatchConsumer(
            service, self.topic, consume, bus, consume_canonical=self.canonical,
            max_records=self.max_records, flush_after_s=self.flush_after_s,
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
