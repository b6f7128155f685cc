"""KPI freshness benchmark: p95 time from a spend/subscription event being published to the
KPI snapshot that reflects it being published on ``kpi.snapshots.v1`` (day totals, and the
spend of the event's campaign).

Starts its own Kafka broker and ClickHouse server (``pulse_testinfra``) and the KPI service
as a separate process (``pulse-kpi``, production wiring), then publishes a 50/50 mix of
spend events and new subscriptions at a fixed rate (1k and 10k events/s). Times are wall
clock: the event's send time in this process vs the snapshot record's Kafka CreateTime (set
by the KPI service's producer when it published the snapshot). An event is
"reflected" by the first snapshot of its KPI key (``spend`` or ``mrr_new``, day, all) whose
value reaches the running total including that event (both KPIs only grow). A spend event
is also reflected by its campaign's day ``spend`` snapshot (the same way, against the
campaign's running total): 140 campaigns that all change continuously, so this includes
the per-key snapshot interval of campaign KPIs. The warm-up (50 events/s, the first
events after the service started: consumer groups joining, first reads) is reported apart,
and so is the ramp of each rate (its first 2 s: the step up from the previous rate, batches
growing, the first values of the day's campaign keys); the goals are judged on the 10 s
after it.

    .venv/bin/python bench/kpi/bench_kpi.py             # 1k and 10k events/s, 10 s each
    .venv/bin/python bench/kpi/bench_kpi.py --quick     # 200 events/s for 1 s (smoke test)

``$BENCH_KAFKA_BOOTSTRAP`` / ``$BENCH_CLICKHOUSE_URL`` name running servers to use instead.

Goals: day totals p95 < 1 s (issue 5); campaign snapshots p95 < 1 s at 1k events/s and
< 2 s at 10k events/s (issue 19).
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

from bench.common import (
    REPO_ROOT,
    clickhouse_server,
    cpu_seconds,
    figure,
    kafka_broker,
    percentiles,
    run_tag,
    table,
    wait_healthy,
    write_results,
)

GOAL_P95_S = 1.0


def campaign_goal_s(rate: int) -> float | None:
    """Issue 19's goal for campaign snapshots' p95 at ``rate`` events/s."""
    return 1.0 if rate <= 1000 else 2.0 if rate <= 10000 else None

CHANNELS = ("paid_search", "paid_social", "display", "email", "webinar", "content", "partner")


class Watcher:
    """Receives snapshots; per watched key, the (publish time, value) series."""

    def __init__(self) -> None:
        self.series: dict[str, tuple[list[float], list[float]]] = {}
        #: Baseline: receive time minus CreateTime of the input events themselves.
        self.transport: list[float] = []
        self.by_dimension: dict[str, int] = {}  # snapshots seen per dimension

    def add(self, body: bytes, at: float) -> None:
        s = orjson.loads(body)
        self.by_dimension[s["dimension"]] = self.by_dimension.get(s["dimension"], 0) + 1
        if s["grain"] != "day" or s["value"] is None:
            return
        if s["dimension"] == "campaign" and s["kpi"] == "spend":
            key = f"campaign|{s['dimension_value']}|{s['period']}"
        elif s["dimension"] == "all":
            key = f"{s['kpi']}|{s['period']}"
        else:
            return
        times, values = self.series.setdefault(key, ([], []))
        times.append(at)
        values.append(float(s["value"]))

    def latencies(self, sent: list[tuple[float, str, float]]) -> list[float]:
        """Send → reflecting snapshot, of each sent (time, key, running total) reflected."""
        return [t - t0 for t0, k, total in sent
                if (t := self.reflected_at(k, total)) is not None]

    def reflected_at(self, key: str, total: float) -> float | None:
        """Publish time of the first snapshot of ``key`` whose value reached ``total``."""
        times, values = self.series.get(key, ([], []))
        # Values only grow, so the series is sorted (ties keep receive order).
        i = bisect.bisect_left(values, total - 1e-6)
        return times[i] if i < len(values) else None


async def run_rate(bootstrap: str, rate: int, seconds: float, day: dt.date,
                   watcher: Watcher, service_pid: int | None = None,
                   ramp_seconds: float = 0.0) -> dict[str, Any]:
    """Sends at ``rate`` for ``ramp_seconds`` + ``seconds``; the events of the first
    ``ramp_seconds`` (the step up from the previous rate: batches growing, the first
    values of the day's campaign keys) are reported apart, as ``ramp``."""
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, acks=1,
                                max_batch_size=256 * 1024)
    await producer.start()
    rng = random.Random(rate)
    spend_key, mrr_key = f"spend|{day}", f"mrr_new|{day}"
    base_spend = watcher.series.get(spend_key, ([], [0.0]))[1][-1:] or [0.0]
    totals = {spend_key: Decimal(str(base_spend[0])), mrr_key: Decimal(0)}
    campaign_totals: dict[str, Decimal] = {}  # campaign key → running total of the day
    sent: list[tuple[float, str, float]] = []
    campaign_sent: list[tuple[float, str, float]] = []
    watcher.transport.clear()
    seen_before = dict(watcher.by_dimension)
    cpu_before = cpu_seconds(service_pid) if service_pid else None
    when = dt.datetime.combine(day, dt.time(12), tzinfo=dt.UTC).isoformat()
    tick = 0.01
    per_tick = max(1, int(rate * tick))
    n = int(rate * (seconds + ramp_seconds))
    ramp_end = time.time() + ramp_seconds
    started = time.perf_counter()
    i = 0
    tag = run_tag(0, rate)  # no digits grouped across the id's parts (see run_tag)
    while i < n:
        for _ in range(min(per_tick, n - i)):
            if i % 2 == 0:
                amount = Decimal(rng.randint(100, 10000)) / 100
                channel = rng.choice(CHANNELS)
                campaign = f"bench-{channel}-{rng.randint(0, 19)}"
                body = orjson.dumps({
                    "event_id": f"bk-{tag}-{i}", "date": day.isoformat(), "channel": channel,
                    "campaign_id": campaign, "amount": str(amount), "impressions": 100,
                    "clicks": 3,
                })
                topic, key, kpi = "marketing.spend.v1", campaign, spend_key
            else:
                amount = Decimal(rng.randint(10, 500))
                account = f"bench-{tag}-{day:%Y%m%d}n{i}"
                body = orjson.dumps({
                    "event_id": f"bk-{tag}-{i}", "occurred_at": when, "account_id": account,
                    "event_type": "subscription_started", "mrr": str(amount),
                })
                topic, key, kpi = "billing.subscriptions.v1", account, mrr_key
            totals[kpi] += amount
            now = time.time()
            sent.append((now, kpi, float(totals[kpi])))
            if kpi == spend_key:
                ckey = f"campaign|{campaign}|{day}"
                campaign_totals[ckey] = campaign_totals.get(ckey, Decimal(0)) + amount
                campaign_sent.append((now, ckey, float(campaign_totals[ckey])))
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
    last = {**totals, **campaign_totals}
    while time.perf_counter() < deadline:
        if all(watcher.reflected_at(k, float(v)) is not None for k, v in last.items()):
            break
        await asyncio.sleep(0.05)
    ramp_sent = [e for e in sent if e[0] < ramp_end]
    ramp_campaign_sent = [e for e in campaign_sent if e[0] < ramp_end]
    sent = [e for e in sent if e[0] >= ramp_end]
    campaign_sent = [e for e in campaign_sent if e[0] >= ramp_end]
    latencies, campaign_latencies = watcher.latencies(sent), watcher.latencies(campaign_sent)
    missing = len(sent) - len(latencies)
    stats, transport = percentiles(latencies), percentiles(watcher.transport)
    campaign_stats = percentiles(campaign_latencies)
    ramp_latencies = watcher.latencies(ramp_sent)
    ramp_campaign_latencies = watcher.latencies(ramp_campaign_sent)
    ramp_stats, ramp_campaign_stats = percentiles(ramp_latencies), percentiles(
        ramp_campaign_latencies)
    cpu_after = cpu_seconds(service_pid) if service_pid else None
    return {
        "rate_target": rate,
        "events": len(sent),
        "rate_achieved": round((len(sent) + len(ramp_sent)) / produce_s, 1),
        "reflected": len(latencies),
        "missing": missing,
        "snapshots_seen": sum(len(t) for t, _ in watcher.series.values()),
        **{f"{q}_s": stats[q] for q in ("p50", "p95", "p99", "max", "mean")},
        "baseline_transport_p50_s": transport["p50"],
        "baseline_transport_p95_s": transport["p95"],
        "campaign": {
            "campaigns": len(campaign_totals),
            "events": len(campaign_sent),
            "reflected": len(campaign_latencies),
            "missing": len(campaign_sent) - len(campaign_latencies),
            **{f"{q}_s": campaign_stats[q] for q in ("p50", "p95", "p99", "max", "mean")},
        },
        "ramp_seconds": ramp_seconds,
        "ramp": None if not ramp_sent else {
            "events": len(ramp_sent),
            "missing": len(ramp_sent) - len(ramp_latencies),
            **{f"{q}_s": ramp_stats[q] for q in ("p50", "p95", "p99", "max")},
            "campaign": {
                "events": len(ramp_campaign_sent),
                "missing": len(ramp_campaign_sent) - len(ramp_campaign_latencies),
                **{f"{q}_s": ramp_campaign_stats[q] for q in ("p50", "p95", "p99", "max")},
            },
        },
        # every snapshot published during the run and its drain, per dimension
        "snapshots_by_dimension": {
            d: n - seen_before.get(d, 0) for d, n in watcher.by_dimension.items()
            if n - seen_before.get(d, 0)},
        "produce_seconds": round(produce_s, 2),
        # CPU the KPI service used from the first send until every total was reflected
        # (what the run cost it, whatever else loaded the machine)
        "service_cpu_s": (round(cpu_after - cpu_before, 2)
                          if cpu_before is not None and cpu_after is not None else None),
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
        warm = await run_rate(bootstrap, 50, args.warmup_seconds, today - dt.timedelta(days=7),
                              watcher, proc.pid)
        results = []
        for i, rate in enumerate(args.rates):
            day = today - dt.timedelta(days=i)
            results.append(await run_rate(bootstrap, rate, args.seconds, day, watcher,
                                          proc.pid, args.ramp_seconds))
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


def figures(out: dict[str, Any]) -> list[dict[str, Any]]:
    """Per rate: p95 event → day total snapshot and → campaign snapshot, against the same
    events' bare Kafka trip; the warm-up's p95s apart (no goal)."""
    rows = []
    for r in out["runs"]:
        rows.append(figure(
            f"KPI freshness p95 at {r['rate_target']:,} events/s", r["p95_s"], "s",
            baseline=r["baseline_transport_p95_s"],
            baseline_is="the same events to a bare consumer", goal=f"< {GOAL_P95_S:g} s",
            met=r["p95_s"] is not None and r["p95_s"] < GOAL_P95_S and not r["missing"]))
        c, goal = r["campaign"], campaign_goal_s(r["rate_target"])
        rows.append(figure(
            f"campaign KPI freshness (spend event → its campaign's day spend snapshot) p95 "
            f"at {r['rate_target']:,} events/s", c["p95_s"], "s",
            baseline=r["baseline_transport_p95_s"],
            baseline_is="the same events to a bare consumer",
            goal=f"< {goal:g} s" if goal is not None else None,
            met=None if goal is None else (
                c["p95_s"] is not None and c["p95_s"] < goal and not c["missing"])))
        if r.get("ramp"):
            rows.append(figure(
                f"ramp (the first {r['ramp_seconds']:g} s at {r['rate_target']:,} events/s, "
                "before the measured ones): KPI freshness p95", r["ramp"]["p95_s"], "s",
                baseline=r["baseline_transport_p95_s"],
                baseline_is="the same events to a bare consumer"))
            rows.append(figure(
                f"ramp at {r['rate_target']:,} events/s: campaign KPI freshness p95",
                r["ramp"]["campaign"]["p95_s"], "s", baseline=r["baseline_transport_p95_s"],
                baseline_is="the same events to a bare consumer"))
    warm = out["warmup"]
    rows.append(figure(
        f"warm-up ({warm['rate_target']} events/s, first events after start-up): KPI "
        "freshness p95", warm["p95_s"], "s", baseline=warm["baseline_transport_p95_s"],
        baseline_is="the same events to a bare consumer"))
    rows.append(figure(
        "warm-up: campaign KPI freshness p95", warm["campaign"]["p95_s"], "s",
        baseline=warm["baseline_transport_p95_s"],
        baseline_is="the same events to a bare consumer"))
    return rows


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="200 events/s for 1 s, 0.5 s warm-up (smoke test)")
    parser.add_argument("--seconds", type=float, default=None,
                        help="measured seconds per rate (after its ramp)")
    parser.add_argument("--ramp-seconds", type=float, default=None,
                        help="seconds at each rate before the measured ones, reported "
                        "apart (default 2; 0.3 with --quick)")
    parser.add_argument("--rates", type=int, nargs="+", default=None,
                        help="events/s (default 1000 10000)")
    args = parser.parse_args(argv)
    args.seconds = args.seconds or (1.0 if args.quick else 10.0)
    args.rates = args.rates or ([200] if args.quick else [1000, 10000])
    args.warmup_seconds = 0.5 if args.quick else 1.0
    if args.ramp_seconds is None:
        args.ramp_seconds = 0.3 if args.quick else 2.0

    from pulse_shared.schema.migrations import migrate
    from pulse_shared.store.server import ServerStore
    from pulse_shared.topics import all_topic_names

    workdir = Path(tempfile.mkdtemp(prefix="pulse-bench-kpi-"))
    print(f"workdir: {workdir}", flush=True)
    with kafka_broker(workdir / "kafka") as kafka, clickhouse_server(workdir / "ch") as ch:
        # Services refuse an empty (placeholder) ClickHouse password at start-up.
        os.environ.update(PULSE_CLICKHOUSE_USER=ch.writer_user,
                          PULSE_CLICKHOUSE_PASSWORD=ch.writer_password)
        kafka.create_topics(all_topic_names())
        store = ServerStore(ch.url)
        migrate(store)
        store.close()
        out = asyncio.run(bench(args, kafka.bootstrap_servers, ch.url, workdir))
    rows = []
    labelled = [("warm-up", out["warmup"])]
    for r in out["runs"]:
        if r.get("ramp"):
            labelled.append((f"{r['rate_target']} ramp",
                             {**r, **r["ramp"], "rate_achieved": r["rate_achieved"]}))
        labelled.append((str(r["rate_target"]), r))
    for label, r in labelled:
        for what, stats, goal in (
            ("day total", r, None if not label.isdigit() else GOAL_P95_S),
            ("campaign", r["campaign"],
             None if not label.isdigit() else campaign_goal_s(r["rate_target"])),
        ):
            met = "" if goal is None else (
                "yes" if (stats["p95_s"] or 99) < goal and not stats["missing"] else "NO")
            rows.append([label, what, r["rate_achieved"], stats["events"], stats["missing"],
                         stats["p50_s"], stats["p95_s"], stats["p99_s"], stats["max_s"],
                         r["baseline_transport_p95_s"],
                         f"{(stats['p95_s'] or 0) / (r['baseline_transport_p95_s'] or 1):.0f}x",
                         f"< {goal:g} s: {met}" if goal is not None else ""])
    print("\nKPI freshness: event published → KPI snapshot published (goals: day total p95 "
          "< 1 s; campaign p95 < 1 s at 1k/s, < 2 s at 10k/s)")
    print("baseline: the same input events' Kafka send → receive by a bare consumer")
    print(table(["target/s", "snapshot", "achieved/s", "events", "missing", "p50 s", "p95 s",
                 "p99 s", "max s", "baseline p95 s", "p95 ratio", "goal"], rows))
    for r in out["runs"]:
        print(f"{r['rate_target']}/s: snapshots published {r['snapshots_by_dimension']} "
              f"in {r['produce_seconds']:g} s of sending + the drain; KPI service CPU "
              f"{r['service_cpu_s']} s")
    path = write_results("kpi_freshness", {"goal_p95_s": GOAL_P95_S, **out,
                                           "seconds": args.seconds},
                         quick=args.quick, figures=figures(out))
    print(f"results: {path}")
    return out


if __name__ == "__main__":
    main()
