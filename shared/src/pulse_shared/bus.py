"""Publishing side of the bus and the broker factory.

Production uses a real :class:`faststream.kafka.KafkaBroker`. The embedded default wraps
the very same broker (with every service's router included) in FastStream's in-memory
``TestKafkaBroker``, so messages go through the same handlers without a Kafka server.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Sequence
from typing import Any

from faststream.kafka import KafkaBroker

from pulse_shared.events import DeadLetter, Event
from pulse_shared.metrics import MESSAGES_PUBLISHED
from pulse_shared.topics import Topic

IN_PROCESS_BOOTSTRAP = "in-process"


def make_broker(bootstrap: str | None, client_id: str = "pulse") -> KafkaBroker:
    """A Kafka broker object; ``bootstrap=None`` gives one meant for the in-memory bus."""
    return KafkaBroker(
        bootstrap or IN_PROCESS_BOOTSTRAP,
        client_id=client_id,
        # Whole batches are acknowledged by the broker before we commit offsets upstream.
        acks="all",
        enable_idempotence=True,
        linger_ms=5,
        max_batch_size=1024 * 1024,
        logger=None,
    )


class Bus:
    """Publishes events to their registered topics with their partition keys."""

    def __init__(self, broker: KafkaBroker, service: str, in_memory: bool = False) -> None:
        self.broker = broker
        self.service = service
        # In memory, one publish_batch reaches batch subscribers as one batch (as a real
        # consumer's poll would); partition keys mean nothing there.
        self.in_memory = in_memory

    async def publish(self, topic: Topic, events: Sequence[Event]) -> None:
        """Publish and wait until the broker has every message (acks=all)."""
        await self._send(
            topic.name,
            [(event.to_json(), topic.key_of(event)) for event in events],
            topic.model.kind,
        )

    async def publish_dead_letters(self, topic: Topic, letters: Sequence[DeadLetter]) -> None:
        await self._send(
            topic.dead_letter,
            [
                (letter.model_dump_json().encode(), letter.key.encode() if letter.key else None)
                for letter in letters
            ],
            "dead_letter",
        )

    async def _send(
        self, topic_name: str, messages: Sequence[tuple[bytes, bytes | None]], kind: str
    ) -> None:
        if not messages:
            return
        if self.in_memory:
            await self.broker.publish_batch(*(body for body, _ in messages), topic=topic_name)
        else:
            # Send everything, then wait for all acknowledgements: the producer batches
            # per partition instead of one round trip per message.
            pending: list[Any] = []
            headers = {"content-type": "application/json", "pulse-kind": kind}
            for body, key in messages:
                result = await self.broker.publish(
                    body, topic=topic_name, key=key, headers=headers, no_confirm=True
                )
                if inspect.isawaitable(result):
                    pending.append(result)
            if pending:
                await asyncio.gather(*pending)
        MESSAGES_PUBLISHED.labels(self.service, topic_name).inc(len(messages))
