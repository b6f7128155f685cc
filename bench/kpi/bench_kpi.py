"""KPI freshness benchmark: p95 time from a spend/subscription event being published to the
KPI snapshot that reflects it being published on ``kpi.snapshots.v1``.

Starts its own Kafka broker and ClickHouse server (``pulse_testinfra``) and the KPI service
as a separate process (``pulse-kpi``, production wiring), then publishes a 50/50 mix of
spend events and new subscriptions at a fixed rate (1k and 10k events/s). Times are wall
clock: the event's send time in this process vs the snapshot record's Kafka CreateTime (set
by the KPI service's producer when it published the snapshot). An event is
"reflected" by the first snapshot of its KPI key (``spend`` or ``mrr_new``, day, all) whose
value reaches the running total including that event (both KPIs only grow).

    .venv/bin/python bench/kpi/bench_kpi.py             # 1k and 10k events/s, 10 s each
    .venv/bin/python bench/kpi/bench_kpi.py --quick     # 3 s each

Goal (issue 5): p95 < 1 s.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import datetime as dt
import os
import random
import subprocess
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import orjson

from bench.common import REPO_ROOT, percentiles, table, wait_healthy, write_results

GOAL_P95_S = 1.0
CHANNELS = ("paid_search", "paid_social", "display", "email", "webinar", "content", "partner")


class Watcher:
    """Receives snapshots; per watched key, the (publish time, value) series."""

    def __init__(self) -> None:
        self.series: dict[str, tuple[list[float], list[float]]] = {}
        #: Baseline: receive time minus CreateTime of the input events themselves.
        self.transport: list[float] = []

    def add(self, body: bytes, at: float) -> None:
        s = orjson.loads(body)
        if s["dimension"] != "all" or s["grain"] != "day" or s["value"] is None:
            return
        key = f"{s['kpi']}|{s['period']}"
        times, values = self.series.setdefault(key, ([], []))
        times.append(at)
        values.append(float(s["value"]))

    def reflected_at(self, key: str, total: float) -> float | None:
        """Publish time of the first snapshot of ``key`` whose value reached ``total``."""
        times, values = self.series.get(key, ([], []))
        # Values only grow, so the series is sorted (ties keep receive order).
        i = bisect.bisect_left(values, total - 1e-6)
        return times[i] if i < len(values) else None


async def run_rate(bootstrap: str, rate: int, seconds: float, day: dt.date,
                   watcher: Watcher) -> dict[str, Any]:
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, acks=1,
                                max_batch_size=256 * 1024)
    await producer.start()
    rng = random.Random(rate)
    spend_key, mrr_key = f"spend|{day}", f"mrr_new|{day}"
    base_spend = watcher.series.get(spend_key, ([], [0.0]))[1][-1:] or [0.0]
    totals = {spend_key: Decimal(str(base_spend[0])), mrr_key: Decimal(0)}
    sent: list[tuple[float, str, float]] = []
    watcher.transport.clear()
    when = dt.datetime.combine(day, dt.time(12), tzinfo=dt.UTC).isoformat()
    tick = 0.01
    per_tick = max(1, int(rate * tick))
    n = int(rate * seconds)
    started = time.perf_counter()
    i = 0
    while i < n:
        for _ in range(min(per_tick, n - i)):
            if i % 2 == 0:
                amount = Decimal(rng.randint(100, 10000)) / 100
                channel = rng.choice(CHANNELS)
                campaign = f"bench-{channel}-{rng.randint(0, 19)}"
                body = orjson.dumps({
                    "event_id": f"bk-{rate}-{i}", "date": day.isoformat(), "channel": channel,
                    "campaign_id": campaign, "amount": str(amount), "impressions": 100,
                    "clicks": 3,
                })
                topic, key, kpi = "marketing.spend.v1", campaign, spend_key
            else:
                amount = Decimal(rng.randint(10, 500))
                account = f"bench-{rate}-{day}-{i}"
                body = orjson.dumps({
                    "event_id": f"bk-{rate}-{i}", "occurred_at": when, "account_id": account,
                    "event_type": "subscription_started", "mrr": str(amount),
                })
                topic, key, kpi = "billing.subscriptions.v1", account, mrr_key
            totals[kpi] += amount
            sent.append((time.time(), kpi, float(totals[kpi])))
            await producer.send(topic, body, key=key.encode())
            i += 1
        target = started + (i / rate)
        delay = target - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
    await producer.flush()
    produce_s = time.perf_counter() - started
    await producer.stop()
    # Wait until the last total of each key has been published (or give up).
    deadline = time.perf_counter() + 60
    while time.perf_counter() < deadline:
        if all(watcher.reflected_at(k, float(v)) is not None for k, v in totals.items()):
            break
        await asyncio.sleep(0.05)
    latencies = [
        t - t0 for t0, k, total in sent if (t := watcher.reflected_at(k, total)) is not None
    ]
    missing = len(sent) - len(latencies)
    stats, transport = percentiles(latencies), percentiles(watcher.transport)
    return {
        "rate_target": rate,
        "events": len(sent),
        "rate_achieved": round(len(sent) / produce_s, 1),
        "reflected": len(latencies),
        "missing": missing,
        "snapshots_seen": sum(len(t) for t, _ in watcher.series.values()),
        **{f"{q}_s": stats[q] for q in ("p50", "p95", "p99", "max", "mean")},
        "baseline_transport_p50_s": transport["p50"],
        "baseline_transport_p95_s": transport["p95"],
    }


async def consume_snapshots(bootstrap: str, watcher: Watcher, ready: asyncio.Event) -> None:
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer("kpi.snapshots.v1", "marketing.spend.v1",
                                "billing.subscriptions.v1", bootstrap_servers=bootstrap,
                                auto_offset_reset="latest", group_id=None)
    await consumer.start()
    try:
        await consumer.seek_to_end()
        ready.set()
        while True:
            batch = await consumer.getmany(timeout_ms=50)
            now = time.time()
            for tp, records in batch.items():
                if tp.topic != "kpi.snapshots.v1":
                    watcher.transport.extend(now - r.timestamp / 1000 for r in records)
                    continue
                for r in records:
                    # The record's CreateTime: when the KPI service published the snapshot.
                    watcher.add(r.value, r.timestamp / 1000)
    finally:
        await consumer.stop()


def start_service(bootstrap: str, ch_url: str, workdir: Path, extra: dict[str, str]) -> Any:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {
        **os.environ,
        "PULSE_KAFKA_BOOTSTRAP": bootstrap,
        "PULSE_CLICKHOUSE_URL": ch_url,
        "PULSE_KPI_PORT": str(port),
        "PULSE_KPI_CLOSE_ENABLED": "false",
        "PULSE_LOG_LEVEL": os.environ.get("BENCH_KPI_LOG_LEVEL", "WARNING"),
        **extra,
    }
    log = (workdir / "kpi-service.log").open("wb")
    proc = subprocess.Popen([str(REPO_ROOT / ".venv" / "bin" / "pulse-kpi")], env=env,
                            stdout=log, stderr=subprocess.STDOUT)
    return proc, port


async def bench(args: argparse.Namespace, bootstrap: str, ch_url: str, workdir: Path) -> dict:
    proc, port = start_service(bootstrap, ch_url, workdir, {})
    watcher = Watcher()
    ready = asyncio.Event()
    task = asyncio.create_task(consume_snapshots(bootstrap, watcher, ready))
    try:
        await wait_healthy("pulse-kpi", port, proc, "kpi-service.log",
                           time.monotonic() + 60)
        await ready.wait()
        # Warm-up: the consumer group joins and the first recompute happens.
        today = dt.datetime.now(dt.UTC).date()
        warm = await run_rate(bootstrap, 50, 1.0, today - dt.timedelta(days=7), watcher)
        results = []
        for i, rate in enumerate(args.rates):
            day = today - dt.timedelta(days=i)
            results.append(await run_rate(bootstrap, rate, args.seconds, day, watcher))
            print(f"  {rate}/s: p95 {results[-1]['p95_s']}", flush=True)
        return {"warmup": warm, "runs": results}
    finally:
        task.cancel()
        try:
            await task
        except BaseException:
            pass
        proc.terminate()
        proc.wait(timeout=30)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--seconds", type=float, default=None)
    parser.add_argument("--rates", type=int, nargs="+", default=[1000, 10000])
    args = parser.parse_args(argv)
    args.seconds = args.seconds or (3.0 if args.quick else 10.0)

    from pulse_shared.schema.migrations import migrate
    from pulse_shared.store.server import ServerStore
    from pulse_shared.topics import all_topic_names
    from pulse_testinfra.clickhouse import ClickHouseServer
    from pulse_testinfra.kafka import KafkaBroker

    workdir = Path(tempfile.mkdtemp(prefix="pulse-bench-kpi-"))
    print(f"workdir: {workdir}", flush=True)
    with KafkaBroker(workdir / "kafka") as kafka, ClickHouseServer(workdir / "ch") as ch:
        # Services refuse an empty (placeholder) ClickHouse password at start-up.
        os.environ.update(PULSE_CLICKHOUSE_USER=ch.writer_user,
                          PULSE_CLICKHOUSE_PASSWORD=ch.writer_password)
        kafka.create_topics(all_topic_names())
        store = ServerStore(ch.url)
        migrate(store)
        store.close()
        out = asyncio.run(bench(args, kafka.bootstrap_servers, ch.url, workdir))
    rows = [
        [r["rate_target"], r["rate_achieved"], r["events"], r["missing"], r["p50_s"],
         r["p95_s"], r["p99_s"], r["max_s"], r["baseline_transport_p95_s"],
         f"{(r['p95_s'] or 0) / (r['baseline_transport_p95_s'] or 1):.0f}x",
         "yes" if (r["p95_s"] or 99) < GOAL_P95_S and not r["missing"] else "NO"]
        for r in out["runs"]
    ]
    print("\nKPI freshness: event published → KPI snapshot published (goal p95 < 1 s)")
    print("baseline: the same input events' Kafka send → receive by a bare consumer")
    print(table(["target/s", "achieved/s", "events", "missing", "p50 s", "p95 s", "p99 s",
                 "max s", "baseline p95 s", "p95 ratio", "goal"], rows))
    path = write_results("kpi_freshness", {"goal_p95_s": GOAL_P95_S, **out,
                                           "seconds": args.seconds})
    print(f"results: {path}")
    return out


if __name__ == "__main__":
    main()
