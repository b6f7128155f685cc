"""Declared consumers (pulse_shared.consumers.Consumer): a pure processor's rows go
through the sink before the follow-up runs, and the strategy tops a small poll up from the
same Kafka consumer (batching by size and time) before one write and one commit — and on a
failure rewinds every partition it read, topped-up ones included."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

import pytest
from streaming_support import Batch, Record, RecordingBus

from pulse_shared.consumers import Consumer, TableRows
from pulse_shared.events import Spend
from pulse_shared.streaming import RetryPolicy
from pulse_shared.topics import SPEND


def spend(n: int) -> bytes:
    return Spend(event_id=f"s{n}", date=dt.date(2026, 11, 2), channel="email",  # type: ignore[arg-type]
                 amount=str(n), campaign_id="c").to_json()


class Sink:
    """Stands in for RowWriter: records what would be inserted, in order."""

    def __init__(self, log: list[str]) -> None:
        self.log = log
        self.rows: list[Mapping[str, Any]] = []

    async def write(self, table: str, rows: Sequence[Mapping[str, Any]],
                    columns: Sequence[str]) -> None:
        self.log.append(f"write {table} {len(rows)}")
        self.rows.extend(rows)


class PollingConsumer:
    """The Kafka consumer behind a FastStream batch: more records on each ``getmany``
    until its queue is empty; remembers seeks."""

    def __init__(self, polls: list[list[Record]]) -> None:
        self.polls = polls
        self.requested: list[int] = []
        self.seeks: dict[tuple[str, int], int] = {}

    async def getmany(self, timeout_ms: int = 0, max_records: int | None = None) -> dict[Any, Any]:
        self.requested.append(max_records or 0)
        if not self.polls:
            return {}
        records = self.polls.pop(0)[: max_records or None]
        return {(records[0].topic, records[0].partition): records} if records else {}

    def seek(self, partition: Any, offset: int) -> None:
        self.seeks[(partition.topic, partition.partition)] = offset


class KafkaBatch(Batch):
    def __init__(self, records: tuple[Record, ...], consumer: PollingConsumer) -> None:
        super().__init__(records)
        self.consumer = consumer


def processor(events: Sequence[Spend]) -> list[TableRows]:
    return [TableRows("spend", ("event_id", "amount"),
                      [{"event_id": e.event_id, "amount": e.amount} for e in events])]


async def test_processor_rows_are_written_before_the_follow_up_runs() -> None:
    log: list[str] = []

    async def then(events: list[Spend]) -> None:
        log.append(f"then {[e.event_id for e in events]}")

    sink = Sink(log)
    strategy = Consumer(SPEND, processor, then).strategy("test", RecordingBus(), sink)  # type: ignore[arg-type]
    batch = Batch((Record(spend(1), 0), Record(spend(2), 1)))
    await strategy.handle(batch)
    assert log == ["write spend 2", "then ['s1', 's2']"]
    assert [r["event_id"] for r in sink.rows] == ["s1", "s2"] and batch.calls == ["ack"]


def test_a_processor_without_a_sink_is_a_declaration_error() -> None:
    with pytest.raises(ValueError, match="a processor needs a sink"):
        Consumer(SPEND, processor).strategy("test", RecordingBus())  # type: ignore[arg-type]


async def test_a_small_poll_is_topped_up_to_one_write_and_one_commit() -> None:
    log: list[str] = []
    strategy = Consumer(SPEND, processor).strategy("test", RecordingBus(), Sink(log))  # type: ignore[arg-type]
    strategy.flush_records, strategy.flush_after_s = 5, 30.0
    kafka = PollingConsumer([
        [Record(spend(2), 1)],
        [Record(spend(3), 0, partition=1), Record(spend(4), 1, partition=1)],
        [Record(spend(5), 2), Record(spend(6), 3)],  # one more than fits
    ])
    batch = KafkaBatch((Record(spend(1), 0),), kafka)
    await strategy.handle(batch)
    # 1 polled + 4 topped up (the last poll asked for only what still fitted).
    assert log == ["write spend 5"] and batch.calls == ["ack"]
    assert kafka.requested == [4, 3, 1]


async def test_topping_up_stops_when_a_poll_waits_in_vain() -> None:
    log: list[str] = []
    strategy = Consumer(SPEND, processor).strategy("test", RecordingBus(), Sink(log))  # type: ignore[arg-type]
    strategy.flush_records, strategy.flush_after_s = 1000, 30.0
    kafka = PollingConsumer([[Record(spend(2), 1)]])
    await strategy.handle(KafkaBatch((Record(spend(1), 0),), kafka))
    assert log == ["write spend 2"] and len(kafka.requested) == 2  # second poll: nothing


async def test_without_a_flush_time_each_poll_is_written_as_it_comes() -> None:
    log: list[str] = []
    strategy = Consumer(SPEND, processor).strategy("test", RecordingBus(), Sink(log))  # type: ignore[arg-type]
    strategy.flush_after_s = 0
    kafka = PollingConsumer([[Record(spend(2), 1)]])
    await strategy.handle(KafkaBatch((Record(spend(1), 0),), kafka))
    assert log == ["write spend 1"] and kafka.requested == []


async def test_a_failed_batch_rewinds_every_partition_it_read() -> None:
    async def fail(events: list[Spend]) -> None:
        raise ConnectionError("clickhouse down")

    strategy = Consumer(SPEND, processor, fail).strategy("test", RecordingBus(), Sink([]))  # type: ignore[arg-type]
    strategy.retry = RetryPolicy(attempts=1)
    strategy.flush_records, strategy.flush_after_s = 10, 30.0
    kafka = PollingConsumer([[Record(spend(3), 7, partition=2), Record(spend(4), 8, partition=2)]])
    batch = KafkaBatch((Record(spend(1), 4), Record(spend(2), 5)), kafka)
    with pytest.raises(ConnectionError):
        await strategy.handle(batch)
    assert batch.calls == ["nack"]
    # Partition 2 was only read by the top-up: it is rewound too, to its first record.
    assert kafka.seeks == {(SPEND.name, 0): 4, (SPEND.name, 2): 7}


async def test_a_poll_error_while_topping_up_keeps_what_was_read() -> None:
    """Records already fetched are processed and committed with the batch: dropping them
    would let the next commit skip them."""

    class Failing(PollingConsumer):
        async def getmany(self, timeout_ms: int = 0, max_records: int | None = None) -> dict[Any, Any]:
            if not self.polls:
                raise RuntimeError("rebalance in progress")
            return await super().getmany(timeout_ms, max_records)

    log: list[str] = []
    strategy = Consumer(SPEND, processor).strategy("test", RecordingBus(), Sink(log))  # type: ignore[arg-type]
    strategy.flush_records, strategy.flush_after_s = 100, 30.0
    batch = KafkaBatch((Record(spend(1), 0),), Failing([[Record(spend(2), 1)]]))
    await strategy.handle(batch)
    assert log == ["write spend 2"] and batch.calls == ["ack"]
