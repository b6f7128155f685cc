"""The consumer strategy: dead-letter → consume → commit, and never commit a failed batch."""

from __future__ import annotations

import datetime as dt

import pytest
from streaming_support import Batch, Record, RecordingBus

from pulse_shared.events import Event, Spend
from pulse_shared.streaming import BatchConsumer, RetryPolicy
from pulse_shared.topics import SPEND

GOOD = Spend(event_id="s1", date=dt.date(2026, 11, 2), channel="email", amount="10",  # type: ignore[arg-type]
             campaign_id="c").to_json()


async def test_invalid_records_go_to_the_dead_letter_topic_and_the_rest_is_committed() -> None:
    consumed: list[list[Event]] = []

    async def consume(events: list[Event]) -> None:
        consumed.append(events)

    bus = RecordingBus()
    consumer = BatchConsumer("test", SPEND, consume, bus)  # type: ignore[arg-type]
    bad = b'{"event_id": "s2", "date": "2026-11-02", "channel": "email", "amount": -5}'
    batch = Batch((Record(GOOD, 10), Record(bad, 11), Record(b"not json", 12)))
    await consumer.handle(batch)

    assert [e.event_id for e in consumed[0]] == ["s1"]  # type: ignore[attr-defined]
    assert [(d.offset, d.source_topic) for d in bus.dead] == [(11, SPEND.name), (12, SPEND.name)]
    assert {e.field for e in bus.dead[0].errors} == {"amount"}
    assert bus.dead[0].payload == bad.decode() and bus.dead[0].consumer == "test"
    assert batch.calls == ["ack"]


async def test_a_batch_that_keeps_failing_is_rewound_not_committed() -> None:
    attempts = 0

    async def consume(events: list[Event]) -> None:
        nonlocal attempts
        attempts += 1
        raise ConnectionError("clickhouse down")

    consumer = BatchConsumer("test", SPEND, consume, RecordingBus(),  # type: ignore[arg-type]
                             retry=RetryPolicy(attempts=3, first_delay_s=0, max_delay_s=0))
    batch = Batch((Record(GOOD, 1),))
    with pytest.raises(ConnectionError):
        await consumer.handle(batch)
    assert attempts == 3
    assert batch.calls == ["nack"]


async def test_a_transient_failure_is_retried_then_committed_once() -> None:
    attempts = 0

    async def consume(events: list[Event]) -> None:
        nonlocal attempts
        attempts += 1
        if attempts == 1:
            raise ConnectionError("blip")

    consumer = BatchConsumer("test", SPEND, consume, RecordingBus(),  # type: ignore[arg-type]
                             retry=RetryPolicy(attempts=3, first_delay_s=0, max_delay_s=0))
    batch = Batch((Record(GOOD, 1),))
    await consumer.handle(batch)
    assert attempts == 2 and batch.calls == ["ack"]


async def test_in_memory_batches_fail_loudly_without_rewinding() -> None:
    async def consume(events: list[Event]) -> None:
        raise ValueError("bug")

    consumer = BatchConsumer("test", SPEND, consume, RecordingBus(),  # type: ignore[arg-type]
                             retry=RetryPolicy(attempts=1))
    batch = Batch([Record(GOOD, 1)])  # the in-memory bus passes a list: no offsets to rewind
    with pytest.raises(ValueError, match="bug"):
        await consumer.handle(batch)
    assert batch.calls == []


async def test_foreign_raw_email_is_dead_lettered_without_the_address() -> None:
    async def consume(events: list[Event]) -> None:
        assert events == [], "nothing valid in this batch"

    from pulse_shared.topics import TOUCHPOINTS

    bus = RecordingBus()
    consumer = BatchConsumer("test", TOUCHPOINTS, consume, bus)  # type: ignore[arg-type]
    foreign = (b'{"event_id": "t1", "occurred_at": "2026-11-02T10:00:00Z", "account_id": "A",'
               b' "contact_id": "jane.doe@example.com", "channel": "email",'
               b' "touch_type": "email_click", "utm_content": "hi bob@example.org"}')
    await consumer.handle(Batch((Record(foreign, 5, topic=TOUCHPOINTS.name),)))
    (letter,) = bus.dead
    assert "example.com" not in letter.payload and "example.org" not in letter.payload
    assert "[redacted-email]" in letter.payload
    assert {e.field for e in letter.errors} == {"contact_id", "utm_content"}


def test_a_record_holding_two_values_cannot_shift_the_batch() -> None:
    async def consume(events: list[Event]) -> None:
        return None

    consumer = BatchConsumer("test", SPEND, consume, RecordingBus())  # type: ignore[arg-type]
    two = GOOD + b"," + GOOD.replace(b'"s1"', b'"s9"')
    events, letters = consumer.decode([Record(two, 1), Record(GOOD, 2)])
    assert [e.event_id for e in events] == ["s1"]  # type: ignore[attr-defined]
    assert [d.offset for d in letters] == [1]


def test_an_out_of_range_timestamp_is_a_dead_letter_not_a_crash() -> None:
    async def consume(events: list[Event]) -> None:
        return None

    from pulse_shared.topics import SUBSCRIPTIONS

    consumer = BatchConsumer("test", SUBSCRIPTIONS, consume, RecordingBus())  # type: ignore[arg-type]
    bad = (b'{"event_id": "x", "occurred_at": "9999-12-31T23:59:59-05:00", "account_id": "A",'
           b' "event_type": "subscription_started", "mrr": "10"}')
    events, letters = consumer.decode([Record(bad, 3, topic=SUBSCRIPTIONS.name)])
    assert events == [] and letters[0].errors[0].field == "occurred_at"


def test_the_consumer_group_prefix_of_the_settings_reaches_the_group_id(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from pulse_shared.settings import PulseSettings
    from pulse_shared.streaming import batch_subscription

    monkeypatch.setenv("PULSE_CONSUMER_GROUP_PREFIX", "from-env-")
    staging = PulseSettings(consumer_group_prefix="staging-")
    options = batch_subscription("pulse-kpi", 100, settings=staging)
    assert options["group_id"] == "staging-pulse-kpi"  # the settings given win
    assert batch_subscription("pulse-kpi", 100)["group_id"] == "from-env-pulse-kpi"


def test_without_settings_the_prefix_is_read_when_subscribing_not_cached(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from pulse_shared.settings import common_settings
    from pulse_shared.streaming import consumer_group

    monkeypatch.delenv("PULSE_CONSUMER_GROUP_PREFIX", raising=False)
    common_settings.cache_clear()
    try:
        assert common_settings().consumer_group_prefix == ""  # cached without a prefix
        assert consumer_group("pulse-alerts") == "pulse-alerts"
        monkeypatch.setenv("PULSE_CONSUMER_GROUP_PREFIX", "run-2-")
        assert consumer_group("pulse-alerts") == "run-2-pulse-alerts"
    finally:
        common_settings.cache_clear()


def test_isolated_consumer_groups_fixture_prefixes_the_service_groups(
    isolated_consumer_groups: str,
) -> None:
    from pulse_shared.streaming import batch_subscription

    assert isolated_consumer_groups.startswith("test-")
    group = batch_subscription("pulse-attribution")["group_id"]
    assert group == f"{isolated_consumer_groups}pulse-attribution"


async def test_the_batch_parser_hands_over_every_record_without_parsing_each() -> None:
    """FastStream parses the first record (headers, consumer); the message carries all."""
    from aiokafka import ConsumerRecord
    from faststream.kafka.message import KafkaAckableMessage
    from faststream.kafka.parser import AioKafkaBatchParser

    from pulse_shared.streaming import batch_parser

    records = tuple(
        ConsumerRecord(SPEND.name, i % 2, 10 + i, 1_700_000_000_000 + i, 0, b"k", GOOD, None,
                       1, len(GOOD), [("pulse-kind", b"spend")])
        for i in range(5))
    parsed: list[int] = []
    faststream = AioKafkaBatchParser(KafkaAckableMessage, None)

    async def parse(batch: tuple[ConsumerRecord, ...]) -> KafkaAckableMessage:
        parsed.append(len(batch))
        return await faststream.parse_batch(batch)

    message = await batch_parser(records, parse)
    assert parsed == [1]
    assert message.raw_message is records and message.body == []
    assert message.headers == {"pulse-kind": "spend"}
    assert message.message_id == f"10-14-{1_700_000_000_000}"
    in_memory = [records[0]]  # the in-memory bus hands a list over: kept as it is
    assert (await batch_parser(in_memory, parse)).raw_message is in_memory


def test_services_tune_the_garbage_collector_once_built() -> None:
    """``tune_gc`` (called by ``serve``): startup objects frozen, young generation larger."""
    import subprocess
    import sys

    code = (
        "import gc\n"
        "from pulse_shared.service import GC_YOUNG_THRESHOLD, tune_gc\n"
        "before = gc.get_threshold()\n"
        "tune_gc()\n"
        "print(gc.get_threshold() == (GC_YOUNG_THRESHOLD, *before[1:]), gc.get_freeze_count() > 0)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=120).stdout
    assert out.split() == ["True", "True"]
