"""Ingest as a :class:`pulse_shared.component.Component`: it consumes no topic, so its
router stays empty; the embedded pipeline and the CLI publish through its service."""

from __future__ import annotations

from dataclasses import dataclass

from faststream.kafka import KafkaRouter

from pulse_ingest.service import IngestService

SERVICE = "ingest"

@dataclass
class IngestComponent:
    """Ingest as a :class:`pulse_shared.component.Component` (it consumes nothing)."""

    service: IngestService
    name: str = SERVICE
    router: KafkaRouter | None = None
    consumers: tuple[()] = ()

    def __post_init__(self) -> None:
        if self.router is None:
            self.router = KafkaRouter()

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None
