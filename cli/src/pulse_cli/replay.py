"""``pulse replay``: rebuild ClickHouse tables from what is still on a topic.

Reads a topic from the offsets at a timestamp with a group-less consumer (so no service's
committed offsets move) and hands each batch to every service consumer of that topic:
the very ``BatchConsumer`` objects production runs, so validation, dead-lettering and
writes are identical. Replaying is idempotent because every table deduplicates on event
ids; derived events published again are deduplicated downstream the same way.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from pulse_shared.bus import kafka_client_security
from pulse_shared.component import Component
from pulse_shared.streaming import BatchConsumer


@dataclass
class ReplayBatch:
    """Stands in for FastStream's batch message: offsets are not committed on replay."""

    raw_message: Sequence[Any]
    replayed: bool = True  # keeps replays out of the live processing-latency histogram

    async def ack(self) -> None:
        return None

    async def nack(self) -> None:
        return None


def batch_consumers(components: Iterable[Component], topic: str) -> list[BatchConsumer[Any]]:
    """Every BatchConsumer of ``topic`` that the components declare."""
    return [c for comp in components for c in comp.consumers if c.topic.name == topic]


async def partitions_of(bootstrap: str, topic: str) -> list[int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, **kafka_client_security())
    await admin.start()
    try:
        described = await admin.describe_topics([topic])
    finally:
        await admin.close()
    partitions = sorted(p["partition"] for d in described for p in d.get("partitions", []))
    if not partitions:
        raise ValueError(f"topic {topic} does not exist")
    return partitions


async def replay_topic(
    bootstrap: str,
    topic: str,
    since: dt.datetime,
    consumers: Sequence[BatchConsumer[Any]],
    batch_size: int = 5000,
    on_batch: Callable[[int], None] | None = None,
) -> int:
    """Feed every record of ``topic`` from ``since`` to the current end to ``consumers``."""
    if not consumers:
        raise ValueError(f"no service consumes {topic}")
    kafka = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
        max_poll_records=batch_size, **kafka_client_security(),
    )
    await kafka.start()
    try:
        partitions = [TopicPartition(topic, p) for p in await partitions_of(bootstrap, topic)]
        kafka.assign(partitions)
        ends = await kafka.end_offsets(partitions)
        starts = await kafka.offsets_for_times(
            {tp: int(since.timestamp() * 1000) for tp in partitions}
        )
        remaining: dict[TopicPartition, int] = {}
        for tp in partitions:
            found = starts.get(tp)
            if found is None:
                continue  # nothing at or after `since` in this partition
            kafka.seek(tp, found.offset)
            if found.offset < ends[tp]:
                remaining[tp] = ends[tp]
        total = 0
        while remaining:
            fetched = await kafka.getmany(*remaining, timeout_ms=1000)
            for tp, records in fetched.items():
                end = remaining.get(tp)
                if end is None:
                    continue
                records = [r for r in records if r.offset < end]
                if records:
                    for consumer in consumers:
                        await consumer.handle(ReplayBatch(records))
                    total += len(records)
                    if on_batch:
                        on_batch(len(records))
                if await kafka.position(tp) >= end:
                    remaining.pop(tp, None)
        return total
    finally:
        await kafka.stop()
