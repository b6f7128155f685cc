"""The embedded default's bus: FastStream's in-memory Kafka broker, with a cheaper batch publish.

``TestKafkaBroker`` hands each published batch to every subscriber of its topic through the
subscriber's own ``process_message`` (parsing, decoding, the handler), exactly as a real
consumer's poll would; that is what makes the embedded pipeline run production's handlers.
Its producer, though, is written for tests: it builds every record again for each subscriber,
and each build sums the body's bytes into a checksum, draws a message id and looks up the
message's key. In ``pulse demo`` that was ~15 µs per message and subscriber, the largest single
cost of publishing KPI snapshots and touchpoints in process.

:class:`InMemoryKafkaBroker` keeps everything but that: records are built once per batch,
shared by the subscribers (each gets its own list), with no checksum (aiokafka leaves it
``None`` for the record formats Kafka writes today), and keys looked up only when the command
has some (the in-memory bus sends none: it has no partitions, see :class:`pulse_shared.bus.Bus`).
"""

from __future__ import annotations

import time
from collections.abc import Generator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from aiokafka import ConsumerRecord
from faststream._internal.parser import BatchCodecProto
from faststream._internal.testing.broker import change_producer
from faststream.kafka import KafkaBroker, TestKafkaBroker
from faststream.kafka.subscriber.usecase import BatchSubscriber
from faststream.kafka.testing import FakeProducer, _find_handler

if TYPE_CHECKING:
    from faststream.kafka.response import KafkaPublishCommand


class InMemoryProducer(FakeProducer):
    """FastStream's fake producer, with one record per message for all subscribers."""

    async def publish_batch(self, cmd: KafkaPublishCommand) -> None:
        handlers = list(_find_handler(self.subscribers, cmd.destination, cmd.partition))
        if not handlers:
            return
        serializer = self.broker.config.fd_config._serializer
        if isinstance(self.codec, BatchCodecProto):
            encoded = await self.codec.encode_batch(cmd.batch_bodies, serializer)
        else:
            encoded = [await self.codec.encode(body, serializer) for body in cmd.batch_bodies]
        timestamp = cmd.timestamp_ms or time.time_ns() // 1_000_000
        headers_by_type: dict[str, list[tuple[str, bytes]]] = {}
        # Keys only when the command has some (the in-memory bus sends none): looking each
        # one up was a good part of FakeProducer's cost.
        keyed = cmd.key is not None or any(getattr(cmd, "_per_message_keys", None) or ())
        records = []
        for index, (body, content_type) in enumerate(encoded):
            key = (cmd.key_for(index) or b"") if keyed else b""
            headers = headers_by_type.get(content_type or "") if cmd.correlation_id else None
            if headers is None:  # as FakeProducer's: the command's headers win
                named = {"content-type": content_type or "",
                         "correlation_id": cmd.correlation_id or self.broker.config.id_generator(),
                         **(cmd.headers or {})}
                if cmd.reply_to:
                    named.setdefault("reply_to", cmd.reply_to)
                headers = headers_by_type[content_type or ""] = [
                    (name, value.encode()) for name, value in named.items()]
            records.append(ConsumerRecord(
                topic=cmd.destination, partition=cmd.partition or 0, offset=0,
                timestamp=timestamp, timestamp_type=1, key=key, value=body, checksum=None,
                serialized_key_size=len(key), serialized_value_size=len(body), headers=headers,
            ))
        for handler in handlers:
            if isinstance(handler, BatchSubscriber):
                await self._execute_handler(list(records), cmd.destination, handler)
            else:
                for record in records:
                    await self._execute_handler(record, cmd.destination, handler)


class InMemoryKafkaBroker(TestKafkaBroker):
    """``TestKafkaBroker`` with :class:`InMemoryProducer` (the embedded pipeline's bus)."""

    @contextmanager
    def _patch_producer(self, broker: KafkaBroker) -> Generator[None, None, None]:
        with change_producer(broker.config.broker_config, InMemoryProducer(broker, self.brokers)):
            yield
