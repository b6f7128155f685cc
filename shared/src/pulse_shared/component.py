"""What every service exposes so it can run alone (production) or together (embedded)."""

from __future__ import annotations

from typing import Protocol

from faststream.kafka import KafkaRouter


class Component(Protocol):
    """A service's consumers plus optional background work (timers, schedules)."""

    name: str
    router: KafkaRouter

    async def start(self) -> None:
        """Start background tasks; called after the broker has started."""

    async def stop(self) -> None:
        """Stop background tasks; called before the broker stops."""
