"""Alerts benchmark: rule-evaluation throughput with 500 rules and p95 latency from a
breaching KPI snapshot being published to its alert being on ``alerts.v1``.

    .venv/bin/python bench/alerts/bench_alerts.py            # in-memory bus + embedded chDB
    .venv/bin/python bench/alerts/bench_alerts.py --real     # real Kafka + ClickHouse server

Results go to ``bench/results/alerts-*.json`` (``--no-save`` to skip).

Goal (issue 6): p95 snapshot → alert < 2 s.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench.common import table, write_results
from pulse_alerts.domain.engine import Engine
from pulse_alerts.domain.evaluate import EvalContext, evaluate
from pulse_alerts.domain.rules import RuleSet, load_rules
from pulse_shared.events import Event, Grain, KpiSnapshot
from pulse_shared.topics import Topic

CHANNELS = ["paid_search", "paid_social", "display", "email", "webinar", "content",
            "partner", "events", "affiliate", "referral"]
KPIS = [f"bench_kpi_{i:02d}" for i in range(25)]
DAY = dt.date(2026, 11, 25)
GOAL_P95_S = 2.0


def make_rules(n: int, seed: int = 1) -> RuleSet:
    """n rules: 70 % static thresholds, 15 % change, 15 % z-score, some with wildcards."""
    rng = random.Random(seed)
    lines = ["rules:"]
    for i in range(n):
        kpi = rng.choice(KPIS)
        scope = rng.choice(["'*'", rng.choice(CHANNELS), "'paid_*'"])
        kind = rng.random()
        base = f"  - {{name: r{i:04d}, kpi: {kpi}, grain: day, dimension: channel, " \
               f"dimension_value: {scope}, "
        if kind < 0.70:
            lines.append(base + f"type: threshold, op: above, threshold: {rng.randint(500, 2000)}}}")
        elif kind < 0.85:
            lines.append(base + "type: change, direction: any, threshold_pct: 50}")
        else:
            lines.append(base + "type: zscore, window: 14, min_periods: 7, threshold: 3}")
    return load_rules("\n".join(lines) + "\n", "bench")


def snapshots(n: int, seed: int = 2, start: dt.datetime | None = None) -> list[KpiSnapshot]:
    rng = random.Random(seed)
    t0 = start or dt.datetime(2026, 11, 25, 8, tzinfo=dt.UTC)
    return [
        KpiSnapshot(
            kpi=rng.choice(KPIS), grain=Grain.DAY, period=DAY.isoformat(), period_start=DAY,
            dimension="channel", dimension_value=rng.choice(CHANNELS),
            value=rng.uniform(0, 2500), unit="USD",
            computed_at=t0 + dt.timedelta(milliseconds=i),
        )
        for i in range(n)
    ]


def bench_engine(rules: RuleSet, snaps: Sequence[KpiSnapshot], batch: int) -> dict[str, float]:
    """Pure engine: plan + evaluate + lifecycle + commit, history given in memory."""
    engine = Engine(rules)
    history = EvalContext(history=[1000.0 + 50 * (i % 5) for i in range(14)])
    now = dt.datetime(2026, 11, 25, 9, tzinfo=dt.UTC)
    evaluations = 0
    started = time.perf_counter()
    for i in range(0, len(snaps), batch):
        pairs = engine.plan(snaps[i : i + batch])
        obs = [(r, o) for r, s in pairs if (o := evaluate(r, s, history)) is not None]
        evaluations += len(pairs)
        engine.commit(engine.apply(obs, now))
    elapsed = time.perf_counter() - started
    return {
        "snapshots_per_s": len(snaps) / elapsed,
        "evaluations_per_s": evaluations / elapsed,
        "rule_matches_per_snapshot": evaluations / len(snaps),
        "alerts_tracked": float(len(engine.states)),
    }


class CountingBus:
    def __init__(self) -> None:
        self.count = 0

    async def publish(self, topic: Topic, events: Sequence[Event]) -> None:
        self.count += len(events)

    async def publish_dead_letters(self, topic: Topic, letters: Sequence[Any]) -> None:
        return None


async def bench_component(store: Any, rules: RuleSet, snaps: Sequence[KpiSnapshot],
                          batch: int) -> dict[str, float]:
    """The service's consume(): history reads, ClickHouse state writes, publishing."""
    from pulse_alerts.main import build
    from pulse_alerts.settings import AlertsSettings

    bus = CountingBus()
    component = build(store, bus, AlertsSettings(tick_interval_s=3600), rules=rules,  # type: ignore[arg-type]
                      notifiers=[])
    started = time.perf_counter()
    for i in range(0, len(snaps), batch):
        await component.consume(list(snaps[i : i + batch]))
    elapsed = time.perf_counter() - started
    return {"snapshots_per_s": len(snaps) / elapsed, "alerts_published": float(bus.count),
            "batch": float(batch)}


async def bench_latency(broker_factory: Any, store: Any, rules: RuleSet, samples: int,
                        real: bool) -> dict[str, float]:
    """Publish one breaching snapshot at a time; time until its alert is consumed."""
    from faststream.kafka import TestKafkaBroker

    from pulse_alerts.main import build
    from pulse_alerts.settings import AlertsSettings
    from pulse_shared.bus import Bus
    from pulse_shared.topics import ALERTS, KPI_SNAPSHOTS

    kpi = f"lat_{uuid.uuid4().hex[:6]}"
    extra = load_rules(
        f"rules:\n  - {{name: {kpi}_hi, type: threshold, kpi: {kpi}, op: above, threshold: 10}}\n"
    )
    ruleset = RuleSet(rules.rules + extra.rules)
    broker = broker_factory("pulse-alerts")
    component = build(store, Bus(broker, "alerts"), AlertsSettings(tick_interval_s=3600),
                      rules=ruleset, notifiers=[])
    broker.include_router(component.router)
    arrived: dict[str, float] = {}
    waiters: dict[str, asyncio.Event] = {}

    @broker.subscriber(ALERTS.name, group_id=f"bench-{uuid.uuid4().hex[:6]}",
                       auto_offset_reset="latest")
    async def sink(body: dict[str, Any]) -> None:
        key = body["labels"]["dimension_value"]
        arrived[key] = time.perf_counter()
        if key in waiters:
            waiters[key].set()

    producer = broker_factory("bench-kpi") if real else broker
    latencies: list[float] = []

    async def run() -> None:
        await component.start()
        pub = Bus(producer, "kpi")
        if real:
            await producer.start()
            await asyncio.sleep(8)  # consumer group join
        for i in range(samples + 3):
            key = f"s{i}-{uuid.uuid4().hex[:6]}"
            snap = KpiSnapshot(kpi=kpi, grain=Grain.DAY, period=DAY.isoformat(),
                               period_start=DAY, dimension="channel", dimension_value=key,
                               value=100.0, unit="USD",
                               computed_at=dt.datetime.now(dt.UTC))
            waiters[key] = asyncio.Event()
            sent = time.perf_counter()
            await pub.publish(KPI_SNAPSHOTS, [snap])
            try:
                await asyncio.wait_for(waiters[key].wait(), 30)
            except TimeoutError:
                pass
            if key in arrived and i >= 3:  # first ones warm up
                latencies.append(arrived[key] - sent)
            await asyncio.sleep(0.05)
        await component.stop()
        if real:
            await producer.stop()

    if real:
        await broker.start()
        try:
            await run()
        finally:
            await broker.stop()
    else:
        async with TestKafkaBroker(broker):
            await run()
    latencies.sort()
    return {
        "samples": float(len(latencies)),
        "p50_s": statistics.median(latencies),
        "p95_s": latencies[max(0, int(round(0.95 * len(latencies))) - 1)],
        "max_s": latencies[-1],
    }


async def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rules", type=int, default=500)
    parser.add_argument("--snapshots", type=int, default=20000)
    parser.add_argument("--component-snapshots", type=int, default=5000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--samples", type=int, default=40)
    parser.add_argument("--real", action="store_true", help="real Kafka + ClickHouse server")
    parser.add_argument("--no-save", action="store_true", help="do not write bench/results")
    args = parser.parse_args(argv)

    from pulse_shared.bus import make_broker
    from pulse_shared.logging import configure_logging
    from pulse_shared.schema.migrations import migrate

    configure_logging("WARNING")
    rules = make_rules(args.rules)
    results: dict[str, Any] = {"rules": args.rules, "mode": "real" if args.real else "embedded"}
    results["engine"] = bench_engine(rules, snapshots(args.snapshots), args.batch)

    servers: list[Any] = []
    try:
        if args.real:
            from pulse_shared.store.server import ServerStore
            from pulse_shared.topics import all_topic_names
            from pulse_testinfra.clickhouse import ClickHouseServer
            from pulse_testinfra.kafka import KafkaBroker

            kafka = KafkaBroker().start()
            servers.append(kafka)
            clickhouse = ClickHouseServer().start()
            servers.append(clickhouse)
            await kafka.create_topics_async(all_topic_names())
            store: Any = ServerStore(clickhouse.url)
            bootstrap = kafka.bootstrap_servers

            def factory(client_id: str) -> Any:
                return make_broker(bootstrap, client_id=client_id)
        else:
            from pulse_shared.store.embedded import EmbeddedStore

            store = EmbeddedStore(Path(tempfile.mkdtemp(prefix="pulse-bench-alerts-")))

            def factory(client_id: str) -> Any:
                return make_broker(None, client_id=client_id)

        migrate(store)
        start = dt.datetime.now(dt.UTC)
        results["component"] = await bench_component(
            store, rules, snapshots(args.component_snapshots, seed=3, start=start), args.batch
        )
        results["latency"] = await bench_latency(factory, store, rules, args.samples, args.real)
    finally:
        for server in reversed(servers):
            server.close()
    print(json.dumps(results, indent=2))
    lat, comp, eng = results["latency"], results["component"], results["engine"]
    print(f"\nAlerts with {args.rules} rules ({results['mode']}; goal p95 < {GOAL_P95_S} s)")
    print(table(
        ["engine snapshots/s", "component snapshots/s", "p50 s", "p95 s", "max s", "goal"],
        [[round(eng["snapshots_per_s"]), round(comp["snapshots_per_s"]),
          round(lat["p50_s"], 3), round(lat["p95_s"], 3), round(lat["max_s"], 3),
          "yes" if lat["p95_s"] < GOAL_P95_S else "NO"]],
    ))
    if not args.no_save:
        print(f"results: {write_results('alerts', {'goal_p95_s': GOAL_P95_S, **results})}")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
