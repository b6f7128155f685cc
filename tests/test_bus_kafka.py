"""The bus on a real Kafka broker: records go out in one produce batch per partition, yet
every record lands on the partition its key gives (as a per-message send would put it),
a key's records keep their order, and nothing is lost or duplicated."""

from __future__ import annotations

import datetime as dt

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.partitioner import DefaultPartitioner

from pulse_shared import bus as bus_module
from pulse_shared.bus import Bus, make_broker
from pulse_shared.events import Channel, DeadLetter, Touchpoint, TouchType
from pulse_shared.privacy import hash_identifier
from pulse_shared.topics import TOUCHPOINTS

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(120)]


def touchpoints(accounts: int, per_account: int) -> list[Touchpoint]:
    start = dt.datetime(2026, 10, 1, 12, tzinfo=dt.UTC)
    return [
        Touchpoint(
            event_id=f"busk-{a}-{i}", occurred_at=start + dt.timedelta(minutes=i),
            account_id=f"busk-acct-{a}", contact_id=hash_identifier(f"c{a}@example.com", "s"),
            channel=Channel.EMAIL, touch_type=TouchType.EMAIL_CLICK, campaign_id="nurture",
        )
        # interleaved accounts, each account's touches in time order
        for i in range(per_account) for a in range(accounts)
    ]


async def read_all(bootstrap: str, topic: str, expected: int) -> list[tuple[int, bytes | None,
                                                                           bytes, dict]]:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=None,
                                enable_auto_commit=False, auto_offset_reset="earliest")
    await consumer.start()
    try:
        records = []
        for _ in range(100):
            batch = await consumer.getmany(timeout_ms=200)
            records += [(r.partition, r.key, r.value, dict(r.headers))
                        for rs in batch.values() for r in rs]
            if len(records) >= expected:
                break
        return records
    finally:
        await consumer.stop()


@pytest.mark.parametrize("batched", [True, False], ids=["per-partition", "per-message"])
async def test_batches_per_partition_keep_key_placement_and_order(
    kafka_broker, monkeypatch: pytest.MonkeyPatch, batched: bool,  # type: ignore[no-untyped-def]
) -> None:
    """Both ways the bus can send: per-partition batches, and one by one where no aiokafka
    producer can be found behind FastStream (its internals moved)."""
    # Small batches, so one call sends several batches to a partition.
    monkeypatch.setattr(bus_module, "BATCH_BYTES", 16 * 1024)
    if not batched:
        monkeypatch.setattr(Bus, "_kafka_producer", lambda self: None)
    events = touchpoints(accounts=40, per_account=50)
    broker = make_broker(kafka_broker.bootstrap_servers)
    await broker.start()
    try:
        bus = Bus(broker, "test")
        assert (bus._kafka_producer() is not None) is batched
        await bus.publish(TOUCHPOINTS, events[:1000])
        await bus.publish(TOUCHPOINTS, events[1000:])
        await bus.publish_dead_letters(TOUCHPOINTS, [
            DeadLetter(source_topic=TOUCHPOINTS.name, partition=0, offset=i, key=None,
                       payload="{}", reason="test", consumer="test",
                       failed_at=dt.datetime(2026, 10, 1, tzinfo=dt.UTC))
            for i in range(3)
        ])
    finally:
        await broker.stop()

    records = await read_all(kafka_broker.bootstrap_servers, TOUCHPOINTS.name, len(events))
    assert len(records) == len(events)  # nothing lost, nothing twice
    partitions = sorted({p for p, *_ in records} | set(range(3)))
    partitioner = DefaultPartitioner()
    seen: dict[bytes, list[bytes]] = {}
    for partition, key, value, headers in records:
        assert key is not None
        assert partition == partitioner(key, partitions, partitions), key
        assert headers["pulse-kind"] == b"touchpoint"
        seen.setdefault(key, []).append(value)
    assert len({p for p, *_ in records}) > 1  # the keys spread over the partitions
    by_account: dict[str, list[bytes]] = {}
    for event in events:
        by_account.setdefault(event.account_id, []).append(event.to_json())
    assert {k.decode(): v for k, v in seen.items()} == by_account  # every key in order

    letters = await read_all(kafka_broker.bootstrap_servers, TOUCHPOINTS.dead_letter, 3)
    assert len(letters) == 3
    if batched:  # keyless records of one call: one partition
        assert len({p for p, *_ in letters}) == 1
