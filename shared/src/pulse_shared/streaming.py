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

Failures are told apart (:func:`classify`):

- **refused records** (ClickHouse refused the data: :class:`StoreDataError`, or the
  consumer raised :class:`RecordsRefused`): the batch is split in halves, recursively,
  until the refused records are isolated; each goes to ``<topic>.dlq`` with ClickHouse's
  message as the reason, the rest is written and the offsets move on. ``consume``
  functions are idempotent (tables deduplicate on event ids), so re-running halves is safe.
- **a dependency not yet visible** (:class:`DependencyNotReady`): retried in place for
  ``RetryPolicy.dependency_wait_s``, then handled as refused records.
- **anything else** (ClickHouse or Kafka unreachable, timeouts, memory limits, and errors
  nothing identifies as the records' fault): retried in place with capped exponential
  backoff, committing nothing. An unrecognised error never dead-letters a record: it could
  be an outage, and would then spill a whole stream into the DLQ. After
  ``RetryPolicy.give_up_after_s`` the batch is rewound (nack) and the error raised, so the
  consumer polls again (and stays in its group) and the batch comes back.

A consumer that stays behind the log end without committing for longer than
``PULSE_CONSUMER_STALL_AFTER_S`` reports itself stalled: ``/health`` answers 503 naming the
topic (:mod:`pulse_shared.service`), and ``pulse_consumer_stalled_seconds`` grows.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import datetime as dt
import enum
import functools
import operator
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from pydantic import TypeAdapter, ValidationError

from pulse_shared.bus import Bus
from pulse_shared.events import DeadLetter, Event, FieldError
from pulse_shared.logging import get_logger
from pulse_shared.metrics import (
    BATCH_SIZE,
    BATCH_SPLITS,
    CANONICAL_BATCHES,
    CONSUMERS,
    HANDLER_ERRORS,
    MESSAGES_CONSUMED,
    MESSAGES_DEAD_LETTERED,
    PROCESSING_LATENCY_SECONDS,
)
from pulse_shared.privacy import redact_emails
from pulse_shared.settings import PulseSettings, common_settings
from pulse_shared.store.base import StoreDataError
from pulse_shared.topics import Topic

E = TypeVar("E", bound=Event)
T = TypeVar("T")
log = get_logger(__name__)
_TOPIC_PARTITION = operator.attrgetter("topic", "partition")
_OFFSET = operator.attrgetter("offset")

#: Attempts on the in-memory bus (no offsets to rewind to: the publisher gets the error).
IN_MEMORY_ATTEMPTS = 5
#: Longest reason kept in a dead letter (ClickHouse messages can quote whole rows).
MAX_REASON_CHARS = 2000


def field_errors(exc: ValidationError) -> list[FieldError]:
    """One entry per failing field, with dotted paths such as ``utm.source``."""
    return [
        FieldError(
            field=".".join(str(p) for p in err["loc"]) or "(record)",
            reason=err["msg"],
        )
        for err in exc.errors(include_url=False)
    ]


class RecordsRefused(Exception):
    """Raised (or chained as the cause) by a ``consume`` function when records of its batch
    cannot be processed however often it is retried. The consumer isolates them by
    splitting the batch and dead-letters them with this message; ``field`` names the field
    at fault when known."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class DependencyNotReady(RuntimeError):
    """Records refer to data not readable yet (e.g. credits announced before their write is
    visible). Retried for ``RetryPolicy.dependency_wait_s``; a record still failing after
    that (the data never came) is dead-lettered instead of stalling its partition."""


class Failure(enum.StrEnum):
    REFUSED = "refused"  # the records themselves: isolate and dead-letter them
    DEPENDENCY = "dependency"  # retry for a while, then as REFUSED
    TRANSIENT = "transient"  # retry in place, never dead-letter


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """``exc``, its explicit causes (``raise … from``) and exception-group members."""
    seen: set[int] = set()
    pending = [exc]
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        if isinstance(current, BaseExceptionGroup):
            pending.extend(current.exceptions)
        if current.__cause__ is not None:
            pending.append(current.__cause__)


def classify(exc: BaseException) -> Failure:
    """What a failure of ``consume`` means for its records (see the module docstring)."""
    causes = list(_causes(exc))
    if any(isinstance(c, StoreDataError | RecordsRefused) for c in causes):
        return Failure.REFUSED
    if any(isinstance(c, DependencyNotReady) for c in causes):
        return Failure.DEPENDENCY
    return Failure.TRANSIENT


def refusal_error(exc: BaseException) -> FieldError:
    """The field at fault and the reason (ClickHouse's message) of a refused record."""
    causes = list(_causes(exc))
    cause = next(
        (c for c in causes if isinstance(c, StoreDataError | RecordsRefused)),
        next((c for c in causes if isinstance(c, DependencyNotReady)), exc),
    )
    field = getattr(cause, "column", None) or getattr(cause, "field", None) or "(record)"
    message = str(cause) or type(cause).__name__
    if isinstance(cause, StoreDataError):
        message = f"ClickHouse refused it: {message}"
    # Messages may quote the record's values: never repeat raw PII in the DLQ.
    return FieldError(field=field, reason=redact_emails(message)[:MAX_REASON_CHARS])


@dataclass(frozen=True)
class RetryPolicy:
    """Retries of transient failures, in place (nothing is committed meanwhile).

    ``attempts`` bounds the attempts per step (None: until ``give_up_after_s``, which
    stays below Kafka's ``max.poll.interval.ms`` of 300 s so the consumer keeps its
    partitions while retrying). ``dependency_wait_s`` is how long records whose dependency
    is not visible yet are retried before being dead-lettered.
    """

    attempts: int | None = None
    first_delay_s: float = 0.2
    max_delay_s: float = 5.0
    give_up_after_s: float = 120.0
    dependency_wait_s: float = 5.0


class BatchConsumer(Generic[E]):
    """Runs one topic's batches through validation, ``consume`` and commit.

    It is also the declaration of a service's consumer: its ``topic``, its ``consume``
    (and optional ``consume_canonical``) and its subscription options (``max_records``).
    :func:`pulse_shared.consumers.build_router` turns a component's consumers into
    FastStream subscribers; replay, ``/health`` and the CLI's pipeline reach them through
    ``Component.consumers``.
    """

    def __init__(
        self,
        service: str,
        topic: Topic,
        consume: Callable[[list[E]], Awaitable[None]],
        bus: Bus,
        retry: RetryPolicy | None = None,
        consume_canonical: Callable[[list[bytes]], Awaitable[bool]] | None = None,
        clock: Callable[[], float] = time.monotonic,
        *,
        max_records: int = 5000,
        flush_records: int | None = None,
        flush_after_s: float | None = None,
    ) -> None:
        self.service = service
        self.topic = topic
        self.consume = consume
        self.consume_canonical = consume_canonical
        self.bus = bus
        self.retry = retry or RetryPolicy()
        #: Most records per polled batch: the one subscription option that differs between
        #: consumers (fetch sizes follow it, see :func:`batch_subscription`).
        self.max_records = max_records
        #: The reduce step (Snuba's "batch by size and time"): a polled batch smaller than
        #: ``flush_records`` is topped up from the same Kafka consumer for at most
        #: ``flush_after_s`` before it is written and committed, so the insert batch does
        #: not shrink to whatever one poll returned (a trickle of tiny polls would make a
        #: ClickHouse part per poll). 0 s writes each poll as it comes.
        self.flush_records = flush_records or max_records
        self.flush_after_s = (
            common_settings().consumer_flush_after_s if flush_after_s is None
            else flush_after_s
        )
        #: Seconds clock for commit and stall times (tests pass one they control).
        self.clock = clock
        self._batch_adapter: TypeAdapter[list[E]] = TypeAdapter(list[topic.model])  # type: ignore[name-defined]
        #: The Kafka consumer (aiokafka) whose assignment and log ends give the lag.
        self._kafka: Any | None = None
        #: First offset of the batch being processed, per partition (not committed yet).
        self._inflight: dict[tuple[str, int], int] = {}
        #: Last commit, or last moment seen caught up: the start of any stall.
        self._progress_at: float | None = None
        self.last_commit_at: float | None = None
        #: The last batch failed and was rewound: its redelivery does not reset the clock.
        self._rewound = False
        CONSUMERS.sources.add(self)

    # ------------------------------------------------------------------ decoding
    def decode(self, records: Sequence[Any]) -> tuple[list[E], list[DeadLetter]]:
        """Pure: records → valid events and dead letters (nothing is dropped silently)."""
        pairs, letters = self._decode_pairs(records)
        return [event for _, event in pairs], letters

    def _decode_pairs(
        self, records: Sequence[Any]
    ) -> tuple[list[tuple[Any, E]], list[DeadLetter]]:
        """Valid events with the record each came from, and dead letters for the rest."""
        values = [record.value for record in records]
        if all(isinstance(v, bytes) and v.strip() for v in values):
            # Fast path: one validation of the whole batch as a JSON array. Any failure (or
            # a record that is not exactly one JSON value) falls back to per-record checks.
            try:
                batch = self._batch_adapter.validate_json(b"[" + b",".join(values) + b"]")
            except Exception:
                batch = None
            if batch is not None and len(batch) == len(records):
                return list(zip(records, batch, strict=True)), []
        pairs: list[tuple[Any, E]] = []
        letters: list[DeadLetter] = []
        now = dt.datetime.now(dt.UTC)
        for record in records:
            try:
                event = self.topic.model.model_validate_json(record.value)
                pairs.append((record, event))  # type: ignore[arg-type]
            except ValidationError as exc:
                letters.append(self._dead_letter(record, field_errors(exc), now))
            except Exception as exc:  # never let one record take its batch down
                errors = [FieldError(field="(record)", reason=repr(exc))]
                letters.append(self._dead_letter(record, errors, now))
        return pairs, letters

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

    # ------------------------------------------------------------------ handling
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
        # The in-memory bus hands batches over as a list and has no offsets.
        in_memory = isinstance(raw, list)
        kafka = getattr(message, "consumer", None)
        self.attach(kafka)
        if not self._rewound:
            # Everything handed over before was committed: a stall starts with this batch.
            self._progress_at = self.clock()
        # Fetched but not committed from here on: lag counts them (while topping up too).
        self._inflight = {}
        self._track(records)
        if not in_memory and hasattr(kafka, "getmany"):
            records = [*records, *await self._top_up(kafka, len(records))]
        MESSAGES_CONSUMED.labels(self.service, self.topic.name).inc(len(records))
        BATCH_SIZE.labels(self.service, self.topic.name).observe(len(records))
        try:
            letters = await self._process(records, in_memory)
        except Exception:
            # Nothing is committed: rewind to the batch start so the batch is redelivered,
            # never skipped. The stall clock keeps running until it is committed.
            rewind_to = dict(self._inflight)
            self._inflight = {}
            self._rewound = True
            if not in_memory:
                with contextlib.suppress(Exception):  # e.g. the partition was revoked
                    _rewind(kafka, rewind_to)  # records topped up after the poll too
                with contextlib.suppress(Exception):
                    await message.nack()
            raise
        for letter in letters:
            MESSAGES_DEAD_LETTERED.labels(
                self.service, self.topic.name, letter.errors[0].field if letter.errors else ""
            ).inc()
        try:
            await message.ack()
        except Exception:  # e.g. the partitions moved in a rebalance: redelivered there
            self._inflight = {}
            self._rewound = True
            raise
        self._inflight = {}
        self._rewound = False
        self.last_commit_at = self._progress_at = self.clock()
        if not getattr(message, "replayed", False):
            now_ms = time.time() * 1000
            histogram = PROCESSING_LATENCY_SECONDS.labels(self.service, self.topic.name)
            # A sample keeps the distribution at a fraction of the cost on large batches.
            for record in records[:: max(1, len(records) // 100)]:
                if record.timestamp:
                    histogram.observe(max(0.0, (now_ms - record.timestamp) / 1000))

    async def _top_up(self, kafka: Any, have: int) -> list[Any]:
        """More records from the consumer that polled this batch, until
        :attr:`flush_records` or :attr:`flush_after_s` (the subscriber awaits this handler,
        so nothing else polls meanwhile; the commit after the write covers them all)."""
        more: list[Any] = []
        if self.flush_after_s <= 0:
            return more
        deadline = time.monotonic() + self.flush_after_s
        while have + len(more) < self.flush_records:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                fetched = await kafka.getmany(
                    timeout_ms=max(1, int(remaining * 1000)),
                    max_records=self.flush_records - have - len(more),
                )
            except Exception as exc:  # e.g. a rebalance: process what was read so far
                log.info("top_up_stopped", service=self.service, topic=self.topic.name,
                         error=repr(exc)[:300])
                break
            if not fetched:  # waited the whole remaining time: nothing more is coming
                break
            for batch in fetched.values():
                self._track(batch)
                more.extend(batch)
        return more

    def _track(self, records: Sequence[Any]) -> None:
        """Remember the first offset of each partition in the batch being processed."""
        # A poll returns each partition's records in offset order (FastStream chains the
        # partitions' lists), so a partition's first record is its earliest: a dict built
        # from the records backwards keeps it, with no Python step per record.
        backwards = records[::-1]
        firsts = dict(zip(map(_TOPIC_PARTITION, backwards), map(_OFFSET, backwards),
                          strict=True))
        for key, offset in firsts.items():
            self._inflight[key] = min(self._inflight.get(key, offset), offset)

    async def _process(self, records: Sequence[Any], in_memory: bool) -> list[DeadLetter]:
        """Write what can be written; returns every dead letter sent for this batch."""
        started = time.monotonic()
        retry = functools.partial(self._retrying, started=started, in_memory=in_memory)
        consume_canonical = self.consume_canonical
        if consume_canonical is not None:
            values = [r.value for r in records]
            try:
                written = await retry(lambda: consume_canonical(values))
            except Exception as exc:
                if classify(exc) is Failure.TRANSIENT:
                    raise
                # Refused: validate record by record, then isolate what ClickHouse refuses.
                log.warning("canonical_batch_refused", service=self.service,
                            topic=self.topic.name, error=str(exc)[:500])
                written = False
            CANONICAL_BATCHES.labels(
                self.service, self.topic.name, "hit" if written else "fallback"
            ).inc()
            if written:
                return []
        pairs, letters = self._decode_pairs(records)
        # Sent once, before consuming: a retry of `consume` does not repeat them.
        await retry(lambda: self.bus.publish_dead_letters(self.topic, letters))
        refused = await self._consume_isolating(pairs, retry)
        if refused:
            await retry(lambda: self.bus.publish_dead_letters(self.topic, refused))
        return letters + refused

    async def _consume_isolating(
        self,
        pairs: list[tuple[Any, E]],
        retry: Callable[[Callable[[], Awaitable[None]]], Awaitable[None]],
    ) -> list[DeadLetter]:
        """``consume`` the events; if ClickHouse refuses some, split until they are isolated.

        Halves are consumed in order (a later budget still replaces an earlier one), and a
        half that succeeds is never re-run. Returns the dead letters of refused records.
        """
        refused: list[DeadLetter] = []
        stack = [pairs]
        while stack:
            chunk = stack.pop()
            events = [event for _, event in chunk]
            try:
                await retry(functools.partial(self.consume, events))
            except Exception as exc:
                if classify(exc) is Failure.TRANSIENT or not chunk:
                    raise
                if len(chunk) == 1:
                    record = chunk[0][0]
                    error = refusal_error(exc)
                    log.warning(
                        "record_refused", service=self.service, topic=self.topic.name,
                        partition=record.partition, offset=record.offset,
                        field=error.field, reason=error.reason[:500],
                    )
                    refused.append(self._dead_letter(record, [error], dt.datetime.now(dt.UTC)))
                    continue
                BATCH_SPLITS.labels(self.service, self.topic.name).inc()
                if chunk is pairs:
                    log.warning(
                        "batch_refused_splitting", service=self.service,
                        topic=self.topic.name, records=len(chunk), error=str(exc)[:500],
                    )
                middle = len(chunk) // 2
                stack.append(chunk[middle:])
                stack.append(chunk[:middle])
        return refused

    async def _retrying(
        self, call: Callable[[], Awaitable[T]], *, started: float, in_memory: bool
    ) -> T:
        """``call()``, retried in place with capped exponential backoff on transient errors
        (refused records raise at once; a missing dependency once the batch is
        ``dependency_wait_s`` old)."""
        delay = self.retry.first_delay_s
        limit = self.retry.attempts or (IN_MEMORY_ATTEMPTS if in_memory else None)
        attempt = 0
        while True:
            attempt += 1
            try:
                return await call()
            except Exception as exc:
                kind = classify(exc)
                if kind is Failure.REFUSED:
                    raise
                elapsed = time.monotonic() - started
                if kind is Failure.DEPENDENCY and elapsed >= self.retry.dependency_wait_s:
                    raise
                HANDLER_ERRORS.labels(self.service, self.topic.name).inc()
                exhausted = (limit is not None and attempt >= limit) or (
                    elapsed >= self.retry.give_up_after_s
                )
                log.warning(
                    "batch_failed", service=self.service, topic=self.topic.name,
                    attempt=attempt, kind=str(kind), retry_in_s=None if exhausted else delay,
                    error=repr(exc)[:1000],
                )
                if exhausted:
                    raise
                pause = delay
                if kind is Failure.DEPENDENCY:  # one last look right at the end of the wait
                    pause = min(delay, max(0.0, self.retry.dependency_wait_s - elapsed))
                await asyncio.sleep(pause)
                delay = min(delay * 2, self.retry.max_delay_s)

    # ------------------------------------------------------------------ lag and health
    def attach(self, kafka_consumer: Any) -> None:
        """Report lag and stalls from this Kafka consumer (aiokafka) from now on."""
        if kafka_consumer is None or not hasattr(kafka_consumer, "highwater"):
            return  # the in-memory bus has no log end
        self._kafka = kafka_consumer
        if self._progress_at is None:
            self._progress_at = self.clock()

    def lag(self) -> dict[tuple[str, int], int]:
        """Messages not committed yet per partition of the current assignment: log end
        (high watermark) minus the batch start while one is processed, else minus the
        consumer's position. Empty while detached or before the first fetch."""
        kafka = self._kafka
        if kafka is None or getattr(kafka, "_closed", False):
            return {}
        lags: dict[tuple[str, int], int] = {}
        try:
            assignment = kafka.assignment()
        except Exception:
            return {}
        for tp in assignment:
            if tp.topic != self.topic.name:
                continue
            try:
                end = kafka.highwater(tp)
                start = self._inflight.get((tp.topic, tp.partition))
                if start is None:
                    start = _position(kafka, tp)
            except Exception:  # reassigned meanwhile
                continue
            if end is not None and start is not None:
                lags[(tp.topic, tp.partition)] = max(0, end - start)
        return lags

    def stalled_seconds(self) -> float:
        """How long the consumer has been behind the log end without committing."""
        now = self.clock()
        if self._progress_at is None:
            return 0.0
        if not self._inflight and not any(self.lag().values()):
            self._progress_at = now  # caught up: a later backlog starts a new clock
            return 0.0
        return max(0.0, now - self._progress_at)

    def stalled(self, after_s: float) -> dict[str, Any] | None:
        """Details if this consumer has been stalled for more than ``after_s`` seconds."""
        seconds = self.stalled_seconds()
        if seconds <= after_s:
            return None
        lag = self.lag()
        return {
            "topic": self.topic.name,
            "lag": sum(lag.values()),
            "partitions": {str(p): n for (_, p), n in sorted(lag.items()) if n},
            "seconds_since_commit": round(seconds, 1),
        }


def _position(kafka: Any, tp: Any) -> int | None:
    """The consumer's next offset for ``tp`` without waiting (None if not known yet).

    aiokafka's ``position()`` is a coroutine that waits for a reset; a scrape must not.
    """
    state = kafka._subscription.subscription.assignment.state_value(tp)
    if state is None or not state.has_valid_position:
        return None
    return int(state.position)


def _rewind(kafka: Any, first_offsets: dict[tuple[str, int], int]) -> None:
    """Seek each partition back to its first unprocessed record."""
    from aiokafka import TopicPartition

    for (topic, partition), offset in first_offsets.items():
        kafka.seek(TopicPartition(topic, partition), offset)


def consumer_group(group_id: str, settings: PulseSettings | None = None) -> str:
    """``group_id`` with ``settings.consumer_group_prefix`` (``PULSE_CONSUMER_GROUP_PREFIX``)
    in front.

    The prefix lets a second deployment (staging, a test) share a cluster without sharing
    committed offsets. Without ``settings`` they are read afresh at subscription time, not
    from the cached :func:`~pulse_shared.settings.common_settings`, so a test can set the
    variable (``isolated_consumer_groups``).
    """
    return (settings or PulseSettings()).consumer_group_prefix + group_id


def partition_fetch_bytes(max_records: int, partitions: int = 3) -> int:
    """Fetch size per partition so that one partition's share of a full batch fits one
    fetch (~420 B per touchpoint; the 1 MiB default capped batches near 2.4k records per
    partition). ``partitions`` is the test broker's default; more only fetch extra."""
    return max(1 << 20, max_records * 600 // partitions)


HEARTBEAT_INTERVAL_MS = 300


def batch_subscription(
    group_id: str, max_records: int = 5000, *, settings: PulseSettings | None = None
) -> dict[str, Any]:
    """Subscriber options for a :class:`BatchConsumer` (manual commit, raw bodies); the
    group id carries ``settings``' consumer group prefix (see :func:`consumer_group`)."""
    from faststream import AckPolicy

    return {
        "group_id": consumer_group(group_id, settings),
        "batch": True,
        "max_records": max_records,
        "batch_timeout_ms": 100,
        "max_partition_fetch_bytes": partition_fetch_bytes(max_records),
        "auto_offset_reset": "earliest",
        # A service's subscribers are members of one group, started one after another;
        # each join rebalances the group, which completes when every earlier member has
        # heartbeated. At the default 3 s a service with 11 input topics took 33 s to
        # start (and to rejoin after any rebalance); 300 ms makes that ~3 s.
        "heartbeat_interval_ms": HEARTBEAT_INTERVAL_MS,
        "ack_policy": AckPolicy.MANUAL,
        "parser": batch_parser,
        "decoder": raw_body_decoder,
    }


async def batch_parser(
    records: Sequence[Any], parse: Callable[[Sequence[Any]], Awaitable[Any]]
) -> Any:
    """FastStream's batch message without its per-record work.

    FastStream's own parser (``parse``) builds a header dict (decoding every header) and a
    body list for every record of a batch; :class:`BatchConsumer` reads neither — it takes
    the records from ``raw_message``. So FastStream parses the first record only (the
    message's headers, ids and consumer) and the message carries the whole batch.
    """
    if not records:
        return await parse(records)
    message = await parse(records[:1])
    message.raw_message = records  # the in-memory bus hands over a list: kept as is
    message.body = []  # the handler ignores it; the records are in ``raw_message``
    first, last = records[0], records[-1]
    message.message_id = f"{first.offset}-{last.offset}-{first.timestamp}"
    return message


async def raw_body_decoder(message: Any, original: Any = None) -> Any:
    """Hand the handler raw bytes: validation happens per record in BatchConsumer."""
    return message.body
