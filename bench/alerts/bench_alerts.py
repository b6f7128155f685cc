"""Alerts benchmark: rule-evaluation throughput with 500 rules and p95 latency from a
breaching KPI snapshot being published to its alert being on ``alerts.v1``.

    .venv/bin/python bench/alerts/bench_alerts.py              # real Kafka + ClickHouse server
    .venv/bin/python bench/alerts/bench_alerts.py --embedded   # in-memory bus + embedded chDB
    .venv/bin/python bench/alerts/bench_alerts.py --quick      # 50 rules, few snapshots (smoke)

The real servers are started unless ``$BENCH_KAFKA_BOOTSTRAP`` and ``$BENCH_CLICKHOUSE_URL``
name running ones. Baselines, same run: the latency's is the same snapshot's trip to a bare
subscriber on ``kpi.snapshots.v1`` (the transport alone); the component's throughput's is
the pure engine's. Results go to ``bench/results/alerts-*.json`` (``--no-save`` to skip).

Goal (issue 6): p95 snapshot → alert < 2 s.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
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

from bench.common import clickhouse_server, figure, kafka_broker, table, write_results
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
    transported: dict[str, float] = {}
    waiters: dict[str, asyncio.Event] = {}

    @broker.subscriber(ALERTS.name, group_id=f"bench-{uuid.uuid4().hex[:6]}",
                       auto_offset_reset="latest")
    async def sink(body: dict[str, Any]) -> None:
        key = body["labels"]["dimension_value"]
        arrived[key] = time.perf_counter()
        if key in waiters:
            waiters[key].set()

    # The baseline: the same snapshots' trip to a subscriber that does nothing with them.
    @broker.subscriber(KPI_SNAPSHOTS.name, group_id=f"bench-raw-{uuid.uuid4().hex[:6]}",
                       auto_offset_reset="latest")
    async def bare(body: dict[str, Any]) -> None:
        transported.setdefault(body["dimension_value"], time.perf_counter())

    producer = broker_factory("bench-kpi") if real else broker
    latencies: list[float] = []
    transport: list[float] = []

    async def probe(pub: Bus, key: str, wait_s: float) -> float | None:
        """Publish one breaching snapshot; its send time if its alert arrived in time."""
        snap = KpiSnapshot(kpi=kpi, grain=Grain.DAY, period=DAY.isoformat(),
                           period_start=DAY, dimension="channel", dimension_value=key,
                           value=100.0, unit="USD", computed_at=dt.datetime.now(dt.UTC))
        waiters[key] = asyncio.Event()
        sent = time.perf_counter()
        await pub.publish(KPI_SNAPSHOTS, [snap])
        try:
            await asyncio.wait_for(waiters[key].wait(), wait_s)
        except TimeoutError:
            return None
        return sent

    async def run() -> None:
        await component.start()
        pub = Bus(producer, "kpi")
        if real:
            await producer.start()
        # Warm-up until one alert comes back: consumer groups joined, first queries done.
        deadline = time.monotonic() + 90
        while await probe(pub, f"warm-{uuid.uuid4().hex[:6]}", 2.0) is None:
            if time.monotonic() > deadline:
                raise RuntimeError("no alert within 90 s of warm-up snapshots")
        for i in range(samples):
            key = f"s{i}-{uuid.uuid4().hex[:6]}"
            sent = await probe(pub, key, 30)
            if sent is not None:
                latencies.append(arrived[key] - sent)
                if key in transported:
                    transport.append(transported[key] - sent)
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
    if not latencies:
        raise RuntimeError(f"none of {samples} breaching snapshots raised an alert in 30 s")
    return {
        "samples": float(len(latencies)),
        "missing": float(samples - len(latencies)),
        "p50_s": statistics.median(latencies),
        "p95_s": p95(latencies),
        "max_s": max(latencies),
        "baseline_transport_p50_s": statistics.median(transport) if transport else None,
        "baseline_transport_p95_s": p95(transport) if transport else None,
    }


def p95(values: Sequence[float]) -> float:
    ordered = sorted(values)
    return ordered[max(0, int(round(0.95 * len(ordered))) - 1)]


def figures(results: dict[str, Any]) -> list[dict[str, Any]]:
    """p95 breach → alert against the bare transport; the service's throughput against
    the pure engine's."""
    lat, comp, eng = results["latency"], results["component"], results["engine"]
    mode = "Kafka + ClickHouse" if results["mode"] == "real" else "in-memory bus + chDB"
    return [
        figure(f"alerts: KPI snapshot → alert p95, {results['rules']} rules ({mode})",
               lat["p95_s"], "s", baseline=lat.get("baseline_transport_p95_s"),
               baseline_is="the snapshot to a bare subscriber", goal=f"< {GOAL_P95_S:g} s",
               met=lat["p95_s"] < GOAL_P95_S and not lat.get("missing")),
        figure(f"alerts: service consume() throughput, {results['rules']} rules ({mode})",
               comp["snapshots_per_s"], "snapshots/s", baseline=eng["snapshots_per_s"],
               baseline_is="the pure rule engine, history in memory"),
    ]


async def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="50 rules, 500/200 snapshots, 5 samples (smoke test)")
    parser.add_argument("--rules", type=int, default=None, help="default 500")
    parser.add_argument("--snapshots", type=int, default=None, help="default 20000")
    parser.add_argument("--component-snapshots", type=int, default=None, help="default 5000")
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--samples", type=int, default=None, help="default 40")
    parser.add_argument("--embedded", action="store_true",
                        help="in-memory bus + embedded chDB instead of the real servers")
    parser.add_argument("--no-save", action="store_true", help="do not write bench/results")
    args = parser.parse_args(argv)
    quick = args.quick
    args.rules = args.rules or (50 if quick else 500)
    args.snapshots = args.snapshots or (500 if quick else 20000)
    args.component_snapshots = args.component_snapshots or (200 if quick else 5000)
    args.samples = args.samples or (5 if quick else 40)
    args.real = not args.embedded

    from pulse_shared.bus import make_broker
    from pulse_shared.logging import configure_logging
    from pulse_shared.schema.migrations import migrate

    configure_logging("WARNING")
    rules = make_rules(args.rules)
    results: dict[str, Any] = {"rules": args.rules, "mode": "real" if args.real else "embedded"}
    results["engine"] = bench_engine(rules, snapshots(args.snapshots), args.batch)

    with contextlib.ExitStack() as servers:
        if args.real:
            from pulse_shared.store.server import ServerStore
            from pulse_shared.topics import all_topic_names

            kafka = servers.enter_context(kafka_broker())
            clickhouse = servers.enter_context(clickhouse_server())
            await asyncio.to_thread(kafka.create_topics, all_topic_names())
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
        path = write_results("alerts", {"goal_p95_s": GOAL_P95_S, **results}, quick=quick,
                             figures=figures(results))
        print(f"results: {path}")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
