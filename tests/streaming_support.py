"""Stand-ins for what FastStream hands a BatchConsumer, shared by the strategy tests.

They replace only the transport's message objects (records with offsets, ack/nack) and
record the dead letters published, so a test can drive ``BatchConsumer.handle`` directly;
the tests on the real broker cover the transport itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pulse_shared.events import DeadLetter
from pulse_shared.topics import SPEND, Topic


@dataclass
class Record:
    value: bytes
    offset: int
    topic: str = SPEND.name
    partition: int = 0
    key: bytes | None = b"k"
    timestamp: int = 0


@dataclass
class Batch:
    """A FastStream batch message as seen by a handler: records plus ack/nack."""

    raw_message: Any
    calls: list[str] = field(default_factory=list)

    async def ack(self) -> None:
        self.calls.append("ack")

    async def nack(self) -> None:
        self.calls.append("nack")


class RecordingBus:
    def __init__(self) -> None:
        self.dead: list[DeadLetter] = []

    async def publish_dead_letters(self, topic: Topic, letters: list[DeadLetter]) -> None:
        self.dead.extend(letters)
