"""What every service exposes so it can run alone (production) or together (embedded)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

from faststream.kafka import KafkaRouter

if TYPE_CHECKING:
    from pulse_shared.streaming import BatchConsumer


class Component(Protocol):
    """A service's consumers plus optional background work (timers, schedules).

    ``router`` holds one subscriber per consumer, built from ``consumers`` by
    :func:`pulse_shared.consumers.build_router`; a service writes no subscriber by hand.
    """

    name: str
    router: KafkaRouter

    @property
    def consumers(self) -> Sequence[BatchConsumer[Any]]:
        """Every topic consumer of the service (its declaration: topic, ``consume``,
        ``max_records``): the router, its health (stalls), replay and the CLI's in-process
        pipeline reach them here."""

    async def start(self) -> None:
        """Start background tasks; called after the broker has started."""

    async def stop(self) -> None:
        """Stop background tasks; called before the broker stops."""
