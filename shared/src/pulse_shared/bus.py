"""Publishing side of the bus and the broker factory.

Production uses a real :class:`faststream.kafka.KafkaBroker`. The embedded default wraps
the very same broker (with every service's router included) in FastStream's in-memory
``TestKafkaBroker``, so messages go through the same handlers without a Kafka server.

Kafka authentication (SASL/SCRAM, optionally over TLS) comes from the common settings
(``PULSE_KAFKA_SECURITY_PROTOCOL``, ``PULSE_KAFKA_USERNAME``…): :func:`broker_security`
for FastStream brokers and :func:`kafka_client_security` for plain aiokafka clients, so
every connection a service or the CLI opens authenticates the same way.
"""

from __future__ import annotations

import asyncio
import inspect
import ssl
import time
import uuid
from collections.abc import Sequence
from typing import Any

from faststream.kafka import KafkaBroker
from faststream.kafka.security import parse_security
from faststream.security import BaseSecurity, SASLScram256, SASLScram512

from pulse_shared.config_checks import check_secret
from pulse_shared.events import DeadLetter, Event
from pulse_shared.metrics import MESSAGES_PUBLISHED
from pulse_shared.settings import PulseSettings, common_settings
from pulse_shared.topics import Topic

IN_PROCESS_BOOTSTRAP = "in-process"


def broker_security(settings: PulseSettings | None = None) -> BaseSecurity | None:
    """FastStream's security object for ``settings`` (default: the common settings);
    None for PLAINTEXT. Refuses a placeholder ``PULSE_KAFKA_PASSWORD``
    (:class:`~pulse_shared.config_checks.ConfigurationError`)."""
    settings = settings or common_settings()
    if not settings.kafka_sasl:
        return None
    assert settings.kafka_username is not None  # PulseSettings validates SASL credentials
    password = check_secret("PULSE_KAFKA_PASSWORD", settings.kafka_password.get_secret_value())
    tls: ssl.SSLContext | None = None
    if settings.kafka_security_protocol == "SASL_SSL":
        cafile = str(settings.kafka_ssl_cafile) if settings.kafka_ssl_cafile else None
        tls = ssl.create_default_context(cafile=cafile)
    scram = SASLScram512 if settings.kafka_sasl_mechanism == "SCRAM-SHA-512" else SASLScram256
    return scram(settings.kafka_username, password, ssl_context=tls, use_ssl=tls is not None)


def kafka_client_security(settings: PulseSettings | None = None) -> dict[str, Any]:
    """The same security as keyword arguments of aiokafka clients (``AIOKafkaConsumer``,
    ``AIOKafkaAdminClient``…); empty for PLAINTEXT."""
    security = broker_security(settings)
    return parse_security(security) if security is not None else {}


def make_broker(
    bootstrap: str | None, client_id: str = "pulse", settings: PulseSettings | None = None
) -> KafkaBroker:
    """A Kafka broker object; ``bootstrap=None`` gives one meant for the in-memory bus.

    A real broker authenticates as ``settings`` say (default: the common settings, so
    ``PULSE_KAFKA_SECURITY_PROTOCOL=SASL_PLAINTEXT`` reaches every caller).
    """
    return KafkaBroker(
        bootstrap or IN_PROCESS_BOOTSTRAP,
        security=broker_security(settings) if bootstrap else None,
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
        messages: list[tuple[bytes, bytes | None]]
        if self.in_memory:  # no partitions: the keys would be thrown away
            messages = [(event.to_json(), None) for event in events]
        else:
            messages = [(event.to_json(), topic.key_of(event)) for event in events]
        await self._send(topic.name, messages, topic.model.kind)

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
            # One time stamp and correlation id for the batch, as one publish: the
            # in-memory producer otherwise reads the clock and draws a UUID per record.
            await self.broker.publish_batch(
                *(body for body, _ in messages),
                topic=topic_name,
                timestamp_ms=time.time_ns() // 1_000_000,
                correlation_id=str(uuid.uuid4()),
            )
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
