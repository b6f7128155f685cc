"""Consumer strategy: dead-letter → transform → write → publish → commit.

A service's handler receives a whole Kafka batch. Each record is validated against its
topic's model; invalid ones go to the topic's dead-letter topic with the reason, the
original payload and the offset. Valid events go to the service's ``consume`` coroutine,
which turns them into rows (pure processors), writes them to ClickHouse and publishes
derived events. Only when that returns are offsets committed, so a crash or restart never
loses data; redelivered batches are harmless because tables deduplicate on event ids.

A consumer may also offer a *canonical* fast path (``consume_canonical``): it gets the raw
record values and returns True if it wrote them all without decoding them (see
:mod:`pulse_shared.canonical`), or False to have the batch validated record by record.

A failing ``consume`` is retried with backoff; if it still fails the consumer seeks back
to the batch start (nack) and raises, so the batch is redelivered, never skipped.
"""

from __future__ import annotations

import asyncio
import contextvars
import datetime as dt
import os
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from pydantic import TypeAdapter, ValidationError

from pulse_shared.bus import Bus
from pulse_shared.events import DeadLetter, Event, FieldError
from pulse_shared.logging import get_logger
from pulse_shared.metrics import (
    BATCH_SIZE,
    CANONICAL_BATCHES,
    CONSUMER_LAG,
    HANDLER_ERRORS,
    MESSAGES_CONSUMED,
    MESSAGES_DEAD_LETTERED,
    PROCESSING_LATENCY_SECONDS,
)
from pulse_shared.privacy import redact_emails
from pulse_shared.topics import Topic

E = TypeVar("E", bound=Event)
log = get_logger(__name__)


def field_errors(exc: ValidationError) -> list[FieldError]:
    """One entry per failing field, with dotted paths such as ``utm.source``."""
    return [
        FieldError(
            field=".".join(str(p) for p in err["loc"]) or "(record)",
            reason=err["msg"],
        )
        for err in exc.errors(include_url=False)
    ]


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 5
    first_delay_s: float = 0.2
    max_delay_s: float = 5.0


class BatchConsumer(Generic[E]):
    """Runs one topic's batches through validation, ``consume`` and commit."""

    def __init__(
        self,
        service: str,
        topic: Topic,
        consume: Callable[[list[E]], Awaitable[None]],
        bus: Bus,
        retry: RetryPolicy | None = None,
        consume_canonical: Callable[[list[bytes]], Awaitable[bool]] | None = None,
    ) -> None:
        self.service = service
        self.topic = topic
        self.consume = consume
        self.consume_canonical = consume_canonical
        self.bus = bus
        self.retry = retry or RetryPolicy()
        self._batch_adapter: TypeAdapter[list[E]] = TypeAdapter(list[topic.model])  # type: ignore[name-defined]

    def decode(self, records: Sequence[Any]) -> tuple[list[E], list[DeadLetter]]:
        """Pure: records → valid events and dead letters (nothing is dropped silently)."""
        values = [record.value for record in records]
        if all(isinstance(v, bytes) and v.strip() for v in values):
            # Fast path: one validation of the whole batch as a JSON array. Any failure (or
            # a record that is not exactly one JSON value) falls back to per-record checks.
            try:
                batch = self._batch_adapter.validate_json(b"[" + b",".join(values) + b"]")
            except Exception:
                batch = None
            if batch is not None and len(batch) == len(records):
                return batch, []
        events: list[E] = []
        letters: list[DeadLetter] = []
        now = dt.datetime.now(dt.UTC)
        for record in records:
            try:
                events.append(self.topic.model.model_validate_json(record.value))  # type: ignore[arg-type]
            except ValidationError as exc:
                letters.append(self._dead_letter(record, field_errors(exc), now))
            except Exception as exc:  # never let one record take its batch down
                errors = [FieldError(field="(record)", reason=repr(exc))]
                letters.append(self._dead_letter(record, errors, now))
        return events, letters

    def _dead_letter(
        self, record: Any, errors: list[FieldError], now: dt.datetime
    ) -> DeadLetter:
        return DeadLetter(
            source_topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            key=record.key.decode("utf-8", "replace") if record.key else None,
            # Foreign producers may send raw PII; the DLQ never repeats it.
            payload=redact_emails((record.value or b"").decode("utf-8", "replace")),
            reason="; ".join(f"{e.field}: {e.reason}" for e in errors),
            errors=errors,
            consumer=self.service,
            failed_at=now,
        )

    async def handle(self, message: Any) -> None:
        """Process one FastStream batch message and commit it (or rewind it)."""
        # FastStream keeps the message in a context variable, and every timer scheduled
        # while handling (aiokafka's 40 s request timeouts on commits and publishes)
        # captures the current context: each batch stayed referenced for ~40 s (peak RSS
        # 549 MB with 20k-record batches, 115 MB once handled in a fresh context).
        # Cancelling this coroutine cancels the task it awaits.
        await asyncio.create_task(self._handle(message), context=contextvars.Context())

    async def _handle(self, message: Any) -> None:
        raw = message.raw_message
        records: Sequence[Any] = raw if isinstance(raw, list | tuple) else [raw]
        MESSAGES_CONSUMED.labels(self.service, self.topic.name).inc(len(records))
        BATCH_SIZE.labels(self.service, self.topic.name).observe(len(records))
        consume_canonical = self.consume_canonical
        events: list[E] = []
        letters: list[DeadLetter] = []
        if consume_canonical is None:
            events, letters = self.decode(records)
        delay = self.retry.first_delay_s
        pending_letters = letters
        for attempt in range(1, self.retry.attempts + 1):
            try:
                if consume_canonical is not None:
                    # Retried as a whole (the insert is idempotent) until it says no.
                    written = await consume_canonical([r.value for r in records])
                    CANONICAL_BATCHES.labels(
                        self.service, self.topic.name, "hit" if written else "fallback"
                    ).inc()
                    if written:
                        break
                    consume_canonical = None  # record by record from now on
                    events, letters = self.decode(records)
                    pending_letters = letters
                # Dead letters are sent once: a retry of `consume` does not repeat them.
                await self.bus.publish_dead_letters(self.topic, pending_letters)
                pending_letters = []
                await self.consume(events)
                break
            except Exception as exc:
                HANDLER_ERRORS.labels(self.service, self.topic.name).inc()
                log.warning(
                    "batch_failed",
                    service=self.service,
                    topic=self.topic.name,
                    attempt=attempt,
                    error=repr(exc),
                )
                if attempt == self.retry.attempts:
                    # Rewind to the batch start so it is redelivered, never skipped. The
                    # in-memory bus hands batches over as a list and has no offsets.
                    if not isinstance(raw, list):
                        await message.nack()
                    raise
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.retry.max_delay_s)
        for letter in letters:
            MESSAGES_DEAD_LETTERED.labels(
                self.service, self.topic.name, letter.errors[0].field if letter.errors else ""
            ).inc()
        await message.ack()
        self._export_lag(message, records)
        if not getattr(message, "replayed", False):
            now_ms = time.time() * 1000
            histogram = PROCESSING_LATENCY_SECONDS.labels(self.service, self.topic.name)
            # A sample keeps the distribution at a fraction of the cost on large batches.
            for record in records[:: max(1, len(records) // 100)]:
                if record.timestamp:
                    histogram.observe(max(0.0, (now_ms - record.timestamp) / 1000))

    def _export_lag(self, message: Any, records: Sequence[Any]) -> None:
        """Consumer lag per partition: log end (high watermark) minus the next offset."""
        consumer = getattr(message, "consumer", None)
        highwater = getattr(consumer, "highwater", None)
        if highwater is None:
            return  # the in-memory bus has no log end
        from aiokafka import TopicPartition

        next_offsets: dict[tuple[str, int], int] = {}
        for record in records:
            key = (record.topic, record.partition)
            next_offsets[key] = max(next_offsets.get(key, 0), record.offset + 1)
        for (topic, partition), next_offset in next_offsets.items():
            end = highwater(TopicPartition(topic, partition))
            if end is not None:
                CONSUMER_LAG.labels(self.service, topic, str(partition)).set(
                    max(0, end - next_offset)
                )


def consumer_group(group_id: str) -> str:
    """``group_id`` with ``PULSE_CONSUMER_GROUP_PREFIX`` in front.

    The prefix lets a second deployment (staging, a test) share a cluster without sharing
    committed offsets. Read at subscription time, not cached, so a test can set it.
    """
    return os.environ.get("PULSE_CONSUMER_GROUP_PREFIX", "") + group_id


def partition_fetch_bytes(max_records: int, partitions: int = 3) -> int:
    """Fetch size per partition so that one partition's share of a full batch fits one
    fetch (~420 B per touchpoint; the 1 MiB default capped batches near 2.4k records per
    partition). ``partitions`` is the test broker's default; more only fetch extra."""
    return max(1 << 20, max_records * 600 // partitions)


def batch_subscription(group_id: str, max_records: int = 5000) -> dict[str, Any]:
    """Subscriber options for a :class:`BatchConsumer` (manual commit, raw bodies)."""
    from faststream import AckPolicy

    return {
        "group_id": consumer_group(group_id),
        "batch": True,
        "max_records": max_records,
        "batch_timeout_ms": 100,
        "max_partition_fetch_bytes": partition_fetch_bytes(max_records),
        "auto_offset_reset": "earliest",
        "ack_policy": AckPolicy.MANUAL,
        "decoder": raw_body_decoder,
    }


async def raw_body_decoder(message: Any, original: Any = None) -> Any:
    """Hand the handler raw bytes: validation happens per record in BatchConsumer."""
    return message.body
