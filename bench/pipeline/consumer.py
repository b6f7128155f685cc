"""One consumer process, as the benchmark measures it (run by ``bench_pipeline.py``).

Modes:
- ``raw``: a bare aiokafka consumer reading the topic (no decode, no write): the limit.
- ``subscriber``: the FastStream batch subscriber with a handler that only acks (no
  validation, no write): the framework's own cost, between ``raw`` and ``pipeline``.
- ``pipeline``: the attribution service's touchpoint consumer exactly as in production
  (``AttributionComponent.touchpoints``: FastStream batch subscriber →
  ``BatchConsumer.handle`` → canonical fast path (raw JSON lines checked and converted
  by ClickHouse) or, for batches that are not canonical, per-record pydantic validation
  and dead-lettering → ``touchpoints`` on a ``ServerStore`` → the per-batch
  ``conversions_of`` late-touch lookup → commit).
- ``validated``: the same consumer without the canonical fast path (every record decoded
  by pydantic, rows inserted by clickhouse-connect): the path of non-canonical batches.

Prints one JSON line ``{"ready": true}`` once subscribed and one result line when
``--expect`` events have been consumed and committed (or ``--timeout`` passed).

``--gate`` (several processes of one ``--group``, ``bench_scaleout.py``): the partitions
assigned to the process stay paused, each assignment is printed (``{"assigned": [...]}``),
and consumption starts when ``go`` arrives on stdin — once every process of the group
holds its final share, so none of them consumes another's share before the group is
complete. ``--expect`` is then what the assigned partitions hold. A process that has
consumed its share prints ``{"done": true}`` and stays in the group until ``stop`` arrives
(leaving would trigger a rebalance under the others).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import dataclasses
import io
import json
import pstats
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from typing import Any

from faststream.kafka.annotations import KafkaMessage

from bench.common import peak_rss_mb


def emit(**fields: Any) -> None:
    print(json.dumps(fields), flush=True)


class Gate:
    """``--gate``: hold the assigned partitions paused until ``go`` on stdin (an aiokafka
    rebalance listener; ``kafka`` returns the process's Kafka consumer)."""

    def __init__(self, kafka: Callable[[], Any]) -> None:
        from aiokafka import ConsumerRebalanceListener

        gate = self

        class Listener(ConsumerRebalanceListener):  # type: ignore[misc]
            async def on_partitions_revoked(self, revoked: Any) -> None:
                gate.assigned = []
                emit(assigned=[], after_go=gate.open)

            async def on_partitions_assigned(self, assigned: Any) -> None:
                gate.assigned = sorted(assigned)
                if not gate.open:  # nothing is fetched from them until ``go``
                    kafka().pause(*assigned)
                emit(assigned=[tp.partition for tp in gate.assigned], after_go=gate.open)

        self.kafka = kafka
        self.listener = Listener()
        self.assigned: list[Any] = []
        self.open = False
        #: CPU time at ``go``: the process's CPU per event counts from here (the first
        #: fetch included), not from its first batch.
        self.cpu_at_go = 0.0

    async def wait_go(self) -> int:
        """Wait for ``go``, then resume the partitions; returns the records they hold."""
        line = await asyncio.to_thread(sys.stdin.readline)
        if line.strip() != "go":
            raise SystemExit(f"expected 'go' on stdin, got {line!r}")
        kafka = self.kafka()
        ends = await kafka.end_offsets(self.assigned)
        starts = await kafka.beginning_offsets(self.assigned)  # a new group reads from there
        expect = sum(ends[tp] - starts[tp] for tp in self.assigned)
        self.open = True
        self.cpu_at_go = time.process_time()
        kafka.resume(*self.assigned)
        emit(go=True, expect=expect)
        return expect

    async def hold(self) -> None:
        """Once the share is consumed: stay in the group, fetching nothing, until ``stop``
        on stdin — a member leaving early would move the others' partitions mid-batch."""
        self.kafka().pause(*self.assigned)
        emit(done=True)
        await asyncio.to_thread(sys.stdin.readline)


def fetch_options(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "max_partition_fetch_bytes": args.max_partition_fetch_bytes,
        "fetch_max_bytes": args.fetch_max_bytes,
        "fetch_max_wait_ms": args.fetch_max_wait_ms,
    }


async def run_raw(args: argparse.Namespace) -> dict[str, Any]:
    from aiokafka import AIOKafkaConsumer

    if args.tune_gc:  # the services' collector settings, for comparison
        from pulse_shared.service import tune_gc

        tune_gc()

    consumer = AIOKafkaConsumer(
        bootstrap_servers=args.bootstrap,
        group_id=args.group or f"bench-raw-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        **fetch_options(args),
    )
    gate = Gate(lambda: consumer) if args.gate else None
    consumer.subscribe([args.topic], listener=gate.listener if gate else None)
    await consumer.start()
    emit(ready=True)
    expect = await gate.wait_go() if gate else args.expect
    count = 0
    first: float | None = None
    first_at = last_at = None
    cpu_first = 0.0
    latencies: list[float] = []
    deadline = time.monotonic() + args.timeout
    try:
        while count < expect and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=100, max_records=args.max_records)
            for records in batches.values():
                if records and first is None:
                    first = time.perf_counter()
                    first_at = time.time()
                    cpu_first = time.process_time()
                count += len(records)
                if args.latency and records:
                    now_ms = time.time() * 1000
                    latencies.extend(now_ms - r.timestamp for r in records)
        elapsed = time.perf_counter() - first if first else None
        cpu_s = time.process_time() - cpu_first if first else None
        cpu_go_s = time.process_time() - gate.cpu_at_go if gate else None
        last_at = time.time() if first else None
        await consumer.commit()
        if gate:
            await gate.hold()
    finally:
        await consumer.stop()
    result: dict[str, Any] = {"events": count, "seconds": elapsed, "cpu_s": cpu_s,
                              "cpu_go_s": cpu_go_s, "first_at": first_at, "last_at": last_at,
                              "expected": expect}
    if latencies:
        qs = statistics.quantiles(latencies, n=100, method="inclusive")
        result["latency_ms"] = {"p50": qs[49], "p95": qs[94], "p99": qs[98],
                                "max": max(latencies)}
    return result


async def run_pipeline(args: argparse.Namespace) -> dict[str, Any]:
    from faststream.kafka import KafkaRouter

    from pulse_attribution.settings import SERVICE, AttributionSettings
    from pulse_shared.bus import Bus, make_broker
    from pulse_shared.metrics import MESSAGES_CONSUMED
    from pulse_shared.store.server import ServerStore
    from pulse_shared.streaming import batch_subscription
    from pulse_shared.topics import TOUCHPOINTS

    topic = dataclasses.replace(TOUCHPOINTS, name=args.topic)
    broker = make_broker(args.bootstrap, client_id="bench-consumer")
    bus = Bus(broker, SERVICE)
    store = ServerStore(args.clickhouse)

    if args.mode == "subscriber":

        class _AckOnly:
            async def handle(self, message: Any) -> None:
                await message.ack()

        consumer: Any = _AckOnly()
    else:
        from pulse_attribution.main import build

        component = build(store, bus, AttributionSettings(recompute_interval_s=0))
        consumer = component.touchpoints
        consumer.topic = topic
        if args.mode == "validated":
            consumer.consume_canonical = None

    counted = args.mode != "subscriber"
    records_consumed = MESSAGES_CONSUMED.labels(SERVICE, args.topic)

    def consumed() -> int:
        # The child's value directly: collecting the registry per batch would cost CPU
        # that the benchmark charges to the consumer.
        return int(records_consumed._value.get())

    done = asyncio.Event()
    state: dict[str, Any] = {
        "count": 0, "first": None, "last": None, "batches": 0, "first_batch_end": None,
        "first_batch": 0, "expect": args.expect, "first_at": None, "last_at": None,
    }
    router = KafkaRouter()
    options = {
        **batch_subscription(args.group or f"bench-{uuid.uuid4().hex[:8]}", args.max_records),
        "batch_timeout_ms": args.batch_timeout_ms,
        **fetch_options(args),
    }
    gate = None
    if args.gate:
        def kafka() -> Any:  # the subscriber's aiokafka consumer, once it has one
            return next(s.consumer for s in broker.subscribers if s.consumer is not None)

        gate = Gate(kafka)
        options["listener"] = gate.listener

    @router.subscriber(args.topic, **options)  # type: ignore[untyped-decorator]
    async def on_touchpoints(body: Any, message: KafkaMessage) -> None:
        started = time.perf_counter()
        if state["first"] is None:
            state["first"] = started
            state["first_at"] = time.time()
            state["cpu_first"] = time.process_time()
        before = consumed()
        await consumer.handle(message)
        raw = message.raw_message
        # The strategy tops a small poll up from the same Kafka consumer before writing, so
        # the records it handled (its own counter) can outnumber the polled message.
        size = consumed() - before if counted else (
            len(raw) if isinstance(raw, list | tuple) else 1)
        state["count"] += size
        if state["first_batch_end"] is None:
            state["first_batch_end"] = time.perf_counter()
            state["first_batch"] = size
        if args.trace:
            gap = started - (state["last"] or started)
            print(f"batch {size} handle {time.perf_counter() - started:.3f}s gap {gap:.3f}s",
                  file=sys.stderr, flush=True)
        state["batches"] += 1
        state["last"] = time.perf_counter()
        state["last_at"] = time.time()
        state["cpu_last"] = time.process_time()
        if state["count"] >= state["expect"]:
            done.set()

    broker.include_router(router)
    if args.mode != "subscriber":
        from pulse_shared.service import tune_gc

        tune_gc()  # as ``serve()`` does once a service has built its app
    await broker.start()
    emit(ready=True)
    try:
        if gate:
            state["expect"] = await gate.wait_go()
        try:
            await asyncio.wait_for(done.wait(), args.timeout)
        except TimeoutError:
            pass
        if gate:
            await gate.hold()
    finally:
        await broker.stop()
        store.close()
    elapsed = state["last"] - state["first"] if state["first"] and state["last"] else None
    steady = None
    if state["last"] and state["first_batch_end"] and state["last"] > state["first_batch_end"]:
        # Without the first batch (connection set-up, lazy imports, first insert).
        steady = (state["count"] - state["first_batch"]) / (state["last"] - state["first_batch_end"])
    cpu_s = state["cpu_last"] - state["cpu_first"] if state["first"] and state["last"] else None
    cpu_go_s = state["cpu_last"] - gate.cpu_at_go if gate and state["last"] else None
    return {"events": state["count"], "seconds": elapsed, "batches": state["batches"],
            "steady_events_per_s": steady, "cpu_s": cpu_s, "cpu_go_s": cpu_go_s,
            "first_at": state["first_at"], "last_at": state["last_at"],
            "expected": state["expect"]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mode", choices=["raw", "subscriber", "pipeline", "validated"], required=True)
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--clickhouse", default="")
    parser.add_argument("--topic", required=True)
    parser.add_argument("--group", default="")
    parser.add_argument("--expect", type=int, required=True)
    parser.add_argument("--gate", action="store_true",
                        help="paused until 'go' on stdin; then expect what the assigned "
                             "partitions hold (several processes of one --group)")
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument("--max-records", type=int, default=5000)
    parser.add_argument("--batch-timeout-ms", type=int, default=100)
    parser.add_argument("--max-partition-fetch-bytes", type=int, default=1024 * 1024)
    parser.add_argument("--fetch-max-bytes", type=int, default=50 * 1024 * 1024)
    parser.add_argument("--fetch-max-wait-ms", type=int, default=500)
    parser.add_argument("--latency", action="store_true",
                        help="raw mode: send → receive latency from record timestamps")
    parser.add_argument("--tune-gc", action="store_true",
                        help="raw mode: the services' garbage-collector settings (tune_gc)")
    parser.add_argument("--trace", action="store_true", help="per-batch timings on stderr")
    parser.add_argument("--profile", type=int, default=0, help="print the top N functions")
    args = parser.parse_args(argv)

    import logging

    logging.basicConfig(level=logging.WARNING)
    from pulse_shared.logging import configure_logging

    configure_logging("WARNING", True)
    runner = run_raw if args.mode == "raw" else run_pipeline
    profiler = cProfile.Profile() if args.profile else None
    if profiler:
        profiler.enable()
    result = asyncio.run(runner(args))
    if profiler:
        profiler.disable()
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(args.profile)
        print(out.getvalue(), file=sys.stderr, flush=True)
    seconds = result.get("seconds")
    emit(
        mode=args.mode,
        **result,
        events_per_s=(result["events"] / seconds) if seconds else None,
        peak_rss_mb=peak_rss_mb(),
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
