"""The embedded bus (pulse_shared.in_memory): each subscriber of a topic gets every message of a
batch, as FastStream's own in-memory producer delivers them, from records built once."""

from __future__ import annotations

from typing import Any

import pytest
from faststream.kafka import KafkaMessage, KafkaResponse, TestKafkaBroker

from pulse_shared.bus import make_broker
from pulse_shared.in_memory import InMemoryKafkaBroker

BODIES = [b'{"n": 1}', b'{"n": 2}', b"plain text", b'{"n": 4}']


def wire(broker: Any) -> dict[str, list[Any]]:
    """Two batch subscribers (two consumer groups) and one per-message subscriber on one topic;
    what each one saw: body, correlation id, content type, key, and the message's identity."""
    seen: dict[str, list[Any]] = {"batch-a": [], "batch-b": [], "single": []}

    def note(name: str, message: KafkaMessage, body: Any) -> None:
        record = message.raw_message
        seen[name].append((body, record.value, message.correlation_id, message.content_type,
                           record.key, record.topic, record.partition, record.timestamp,
                           id(record)))

    def batch_subscriber(group: str) -> None:
        @broker.subscriber("events", group_id=group, batch=True)
        async def consume(bodies: list[Any], message: KafkaMessage) -> None:
            for body, record in zip(bodies, message.raw_message, strict=True):
                seen[f"batch-{group}"].append((body, record.value, message.correlation_id,
                                               record.key, id(record)))

    batch_subscriber("a")
    batch_subscriber("b")

    @broker.subscriber("events", group_id="c")
    async def single(body: Any, message: KafkaMessage) -> None:
        note("single", message, body)

    return seen


async def deliveries(wrapper: type[TestKafkaBroker], keys: list[bytes | None] | None = None
                     ) -> dict[str, list[Any]]:
    broker = make_broker(None)
    seen = wire(broker)
    bodies: list[Any] = list(BODIES) if keys is None else [
        KafkaResponse(body, key=key) for body, key in zip(BODIES, keys, strict=True)]
    async with wrapper(broker):
        await broker.publish_batch(*bodies, topic="events", correlation_id="batch-1",
                                   timestamp_ms=1_700_000_000_000)
    return seen


@pytest.mark.asyncio
async def test_every_subscriber_gets_the_batch_as_fastStreams_own_producer_delivers_it() -> None:
    ours, theirs = await deliveries(InMemoryKafkaBroker), await deliveries(TestKafkaBroker)

    def comparable(rows: list[Any]) -> list[Any]:  # record identities differ between runs
        return [row[:-1] for row in rows]

    assert {k: comparable(v) for k, v in ours.items()} == {
        k: comparable(v) for k, v in theirs.items()}
    for rows in ours.values():
        assert [row[1] for row in rows] == BODIES
        assert {row[2] for row in rows} == {"batch-1"}
    assert ours["batch-a"][0][0] == {"n": 1} and ours["single"][2][0] == b"plain text"
    # Built once: both consumer groups read the very same records.
    assert [row[-1] for row in ours["batch-a"]] == [row[-1] for row in ours["batch-b"]]


@pytest.mark.asyncio
async def test_keys_given_reach_every_subscriber_as_with_fastStreams_producer() -> None:
    keys = [b"a", None, b"c", b"d"]
    ours = await deliveries(InMemoryKafkaBroker, keys)
    theirs = await deliveries(TestKafkaBroker, keys)
    assert {k: [row[:-1] for row in v] for k, v in ours.items()} == {
        k: [row[:-1] for row in v] for k, v in theirs.items()}
    assert [row[4] for row in ours["single"]] == [b"a", b"", b"c", b"d"]
