"""Pipeline benchmark: consume → ClickHouse throughput, latency and memory of ONE consumer.

Starts its own Kafka broker and ClickHouse server (``pulse_testinfra``), then measures,
each figure against a baseline taken in the same run:

1. Throughput: N touchpoints pre-loaded on a 3-partition topic are read by
   - a bare aiokafka consumer (``raw``: the limit, no decode/no write), and
   - the attribution service's touchpoint path (``pipeline``: FastStream batch
     subscriber → BatchConsumer validation/DLQ → touchpoint_row → RowWriter → ClickHouse
     confirms → commit), each in its own process (``bench/pipeline/consumer.py``).
   Ratio pipeline/raw, goal ≥ 50 % and ≥ 100k events/s. Sizes 1M and 10M show how time and
   peak RSS grow (goal RSS < 300 MB). The full ``AttributionComponent`` consumer (adds a
   per-batch conversions lookup) is measured at the smallest size too.
2. Batch tuning: the pipeline at several ``max_records`` / fetch sizes.
3. Latency touchpoint → ClickHouse row at sustained rates (1k and 10k events/s): each
   event's send time vs the row's ``ingested_at`` (set by ClickHouse on insert);
   baseline = a bare aiokafka consumer's send → receive latency on the same messages.

    .venv/bin/python bench/pipeline/bench_pipeline.py            # full (1M/10M, 60 s)
    .venv/bin/python bench/pipeline/bench_pipeline.py --quick    # 2k events, 200/s for 1 s

``$BENCH_KAFKA_BOOTSTRAP`` / ``$BENCH_CLICKHOUSE_URL`` name running servers to use instead
(the servers' CPU time is then not measured).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench.common import (
    REPO_ROOT,
    clickhouse_server,
    cpu_seconds,
    figure,
    kafka_broker,
    percentiles,
    ratio,
    table,
    usable_cores,
    write_results,
)
from pulse_attribution.settings import AttributionSettings
from pulse_shared.streaming import partition_fetch_bytes

PARTITIONS = 3
CHANNELS = ("paid_search", "paid_social", "display", "email", "webinar", "content", "partner")
TOUCH_TYPES = ("ad_click", "ad_impression", "email_open", "web_visit", "form_fill")
CONTACTS = [hashlib.sha256(f"contact-{i}".encode()).hexdigest() for i in range(997)]

#: Chosen consumer settings (see the tuning table; documented in bench/pipeline/README.md).
DEFAULT_MAX_RECORDS = AttributionSettings().max_records  # the service's own default
DEFAULT_BATCH_TIMEOUT_MS = 100
FETCH_MAX_WAIT_MS = 500  # aiokafka's default; --fetch-max-wait-ms overrides

GOAL_RATIO = 0.5
GOAL_EPS = 100_000
GOAL_RSS_MB = 300.0
GOAL_CPU_RATIO = 2.0  # consumer CPU per event vs the bare aiokafka consumer's


def payload(i: int, prefix: str = "e") -> bytes:
    """A valid Touchpoint JSON (unique event id ``{prefix}{i}``)."""
    ch = CHANNELS[i % len(CHANNELS)]
    c = i % 200
    return (
        f'{{"event_id":"{prefix}{i}","occurred_at":"2026-11-{1 + i % 28:02d}T'
        f'{i % 24:02d}:{i % 60:02d}:{(i // 60) % 60:02d}Z","account_id":"acct-{i % 5000}",'
        f'"contact_id":"{CONTACTS[i % len(CONTACTS)]}","channel":"{ch}","source":"google",'
        f'"medium":"cpc","campaign_id":"cmp-{c}","touch_type":"{TOUCH_TYPES[i % 5]}",'
        f'"utm_source":"google","utm_medium":"cpc","utm_campaign":"cmp-{c}","utm_term":"",'
        f'"utm_content":"","cost":"0.{i % 10000:04d}","currency":"USD"}}'
    ).encode()


# -- producing ---------------------------------------------------------------------------


async def produce_bulk(
    bootstrap: str, topic: str, n: int, prefix: str = "e", partitions: int = PARTITIONS
) -> float:
    """Load ``n`` touchpoints as fast as possible (round-robin over ``partitions``
    partitions); returns s."""
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks=1, linger_ms=20, max_batch_size=1024 * 1024,
        max_request_size=4 * 1024 * 1024,
    )
    await producer.start()
    started = time.perf_counter()
    try:
        batches = [producer.create_batch() for _ in range(partitions)]
        pending: list[Any] = []
        for i in range(n):
            p = i % partitions
            value = payload(i, prefix)
            if batches[p].append(key=None, value=value, timestamp=None) is None:
                pending.append(await producer.send_batch(batches[p], topic, partition=p))
                batches[p] = producer.create_batch()
                batches[p].append(key=None, value=value, timestamp=None)
                if len(pending) > 32:
                    await asyncio.gather(*pending)
                    pending.clear()
        for p, batch in enumerate(batches):
            if batch.record_count():
                pending.append(await producer.send_batch(batch, topic, partition=p))
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return time.perf_counter() - started


async def produce_paced(
    bootstrap: str, topic: str, rate: int, seconds: float, prefix: str
) -> tuple[dict[int, float], float]:
    """Send ``rate`` events/s for ``seconds``; returns send time (epoch s) per index."""
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks=1, linger_ms=2)
    await producer.start()
    sent: dict[int, float] = {}
    total = int(rate * seconds)
    try:
        started = time.monotonic()
        i = 0
        while i < total:
            due = min(total, int((time.monotonic() - started) * rate) + 1)
            while i < due:
                sent[i] = time.time()
                await producer.send(topic, payload(i, prefix), key=f"acct-{i % 5000}".encode())
                i += 1
            await asyncio.sleep(0.005)
        await producer.flush()
        achieved = total / (time.monotonic() - started)
    finally:
        await producer.stop()
    return sent, achieved


# -- consumer processes ------------------------------------------------------------------


class Child:
    """A ``bench.pipeline.consumer`` process; stdout carries JSON lines."""

    def __init__(
        self, args: list[str], log_dir: Path, name: str, *, stdin: bool = False
    ) -> None:
        self.log = log_dir / f"{name}.log"
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(
            [str(REPO_ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bench.pipeline.consumer", *args],
            cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=self.log.open("wb"),
            stdin=subprocess.PIPE if stdin else None, text=True,
        )

    def _line(self) -> dict[str, Any] | None:
        assert self.proc.stdout is not None
        while True:
            line = self.proc.stdout.readline()
            if not line:
                return None
            try:
                data = json.loads(line)
            except ValueError:
                continue
            if isinstance(data, dict) and ("ready" in data or "mode" in data):
                return data

    def wait_ready(self) -> None:
        data = self._line()
        if not data or not data.get("ready"):
            raise RuntimeError(f"consumer did not start:\n{self.tail()}")

    def result(self, timeout: float) -> dict[str, Any]:
        try:
            data = self._line()
            while data is not None and "mode" not in data:
                data = self._line()
            self.proc.wait(timeout=timeout)
        finally:
            self.stop()
        if not data or "mode" not in data:
            raise RuntimeError(f"consumer gave no result:\n{self.tail()}")
        return data

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        for pipe in (self.proc.stdout, self.proc.stdin):
            if pipe:
                with contextlib.suppress(OSError):  # stdin of a process that is gone
                    pipe.close()

    def tail(self) -> str:
        try:
            return self.log.read_text()[-3000:]
        except OSError:
            return ""


def consumer_args(
    mode: str, bootstrap: str, ch_url: str, topic: str, expect: int, max_records: int,
    timeout: float, extra: list[str] | None = None,
) -> list[str]:
    # The services' own fetch size (raw and pipeline consumers get the same).
    part_bytes = partition_fetch_bytes(max_records, PARTITIONS)
    return [
        "--mode", mode, "--bootstrap", bootstrap, "--clickhouse", ch_url, "--topic", topic,
        "--expect", str(expect), "--max-records", str(max_records), "--timeout", str(timeout),
        "--max-partition-fetch-bytes", str(part_bytes),
        "--batch-timeout-ms", str(DEFAULT_BATCH_TIMEOUT_MS),
        "--fetch-max-wait-ms", str(FETCH_MAX_WAIT_MS), *(extra or []),
    ]


def run_consumer(
    mode: str, servers: dict[str, Any], topic: str, expect: int, max_records: int,
    log_dir: Path, timeout: float, extra: list[str] | None = None,
) -> dict[str, Any]:
    pids: dict[str, int] = servers.get("pids", {})
    cpu_before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    child = Child(
        consumer_args(mode, servers["kafka"], servers["clickhouse"], topic, expect,
                      max_records, timeout, extra),
        log_dir, f"{mode}-{topic}-{max_records}",
    )
    result = child.result(timeout + 60)
    # CPU the broker and the ClickHouse server spent while this consumer ran (they serve
    # nothing else meanwhile); the consumer reports its own from first batch to last.
    result["server_cpu_s"] = {}
    for name, pid in pids.items():
        before, after = cpu_before[name], cpu_seconds(pid)
        result["server_cpu_s"][name] = (
            None if before is None or after is None else after - before
        )
    if extra and "--profile" in extra:
        result["profile"] = child.tail()
    return result


# -- phases ------------------------------------------------------------------------------


def throughput(
    store: Any, servers: dict[str, Any], sizes: list[int], log_dir: Path, profile: int
) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for n in sizes:
        topic = f"bench.touchpoints.{n}"
        produce_s = asyncio.run(produce_bulk(servers["kafka"], topic, n))
        timeout = max(120.0, n / 5000)
        raw = run_consumer("raw", servers, topic, n, DEFAULT_MAX_RECORDS, log_dir, timeout)
        # The same bare consumer with the services' collector settings (tune_gc), so the
        # CPU ratio can be read both ways.
        raw_gc = run_consumer("raw", servers, topic, n, DEFAULT_MAX_RECORDS, log_dir,
                              timeout, ["--tune-gc"])
        sub = run_consumer("subscriber", servers, topic, n, DEFAULT_MAX_RECORDS, log_dir,
                           timeout)
        store.command("TRUNCATE TABLE touchpoints")
        extra = (["--profile", str(profile)] if profile else []) + (
            ["--trace"] if os.environ.get("BENCH_TRACE") else [])
        pipe = run_consumer(
            "pipeline", servers, topic, n, DEFAULT_MAX_RECORDS, log_dir, timeout, extra
        )
        rows_final = store.query_value("SELECT count() FROM touchpoints FINAL")
        rows_raw = store.query_value("SELECT count() FROM touchpoints")
        row = {
            "events": n, "produce_s": round(produce_s, 2),
            "raw_events_per_s": raw["events_per_s"], "raw_s": raw["seconds"],
            "raw_peak_rss_mb": raw["peak_rss_mb"],
            "subscriber_events_per_s": sub["events_per_s"],
            "subscriber_peak_rss_mb": sub["peak_rss_mb"],
            "pipeline_events_per_s": pipe["events_per_s"], "pipeline_s": pipe["seconds"],
            "pipeline_peak_rss_mb": pipe["peak_rss_mb"], "pipeline_batches": pipe.get("batches"),
            "pipeline_steady_events_per_s": pipe.get("steady_events_per_s"),
            "rows_final": rows_final, "rows_raw": rows_raw,
            "cpu_us_per_event": {mode: cpu_per_event(res, n) for mode, res in
                                 (("raw", raw), ("raw_tuned_gc", raw_gc), ("subscriber", sub),
                                  ("pipeline", pipe))},
        }
        if pipe.get("profile"):
            row["profile"] = pipe["profile"]
        rows.append(row)
        print(f"  throughput {n:>10,}: raw {raw['events_per_s'] or 0:>10,.0f}/s  subscriber "
              f"{sub['events_per_s'] or 0:>10,.0f}/s  pipeline "
              f"{pipe['events_per_s'] or 0:>10,.0f}/s  rss {pipe['peak_rss_mb']} MB  "
              f"rows {rows_final:,}", flush=True)
    return rows


def cpu_per_event(result: dict[str, Any], events: int) -> dict[str, float | None]:
    """µs of CPU per event in the consumer, the ClickHouse server and the broker."""
    out: dict[str, float | None] = {"consumer": None}
    if result.get("cpu_s") is not None:
        out["consumer"] = round(result["cpu_s"] / events * 1e6, 2)
    for name, seconds in (result.get("server_cpu_s") or {}).items():
        out[name] = None if seconds is None else round(seconds / events * 1e6, 2)
    known = [v for v in out.values() if v is not None]
    out["total"] = round(sum(known), 2) if len(known) == len(out) else None
    return out


def cpu_budget(t: dict[str, Any], cores: int) -> list[list[Any]]:
    """Rows: CPU per event by process, and the cores the pipeline needs at 0.5x raw."""
    cpu = t.get("cpu_us_per_event") or {}
    raw_total = (cpu.get("raw") or {}).get("total")
    rows: list[list[Any]] = []
    for mode in ("raw", "subscriber", "pipeline"):
        c = cpu.get(mode) or {}
        parts = ", ".join(f"{k} {v}" for k, v in c.items() if k != "total" and v is not None)
        rows.append([f"  CPU us/event, {mode} ({parts})", c.get("total"), raw_total,
                     "raw aiokafka", ratio(c.get("total"), raw_total), "", ""])
    # The goal is per process: on shared cores the consumer's own CPU is what transfers.
    consumer = (cpu.get("pipeline") or {}).get("consumer")
    for mode, what in (("raw", "raw aiokafka"), ("raw_tuned_gc", "raw, services' GC")):
        base = (cpu.get(mode) or {}).get("consumer")
        if consumer is not None and base:
            r = consumer / base
            rows.append([f"  consumer process CPU us/event vs {what}", consumer, base, what,
                         f"{r:.2f}x", f"<= {GOAL_CPU_RATIO:g}x",
                         "OK" if r <= GOAL_CPU_RATIO else "MISS"])
    pipe_total = (cpu.get("pipeline") or {}).get("total")
    if pipe_total and t["raw_events_per_s"]:
        target = GOAL_RATIO * t["raw_events_per_s"]
        needed = pipe_total * target / 1e6
        rows.append([f"  cores the pipeline needs at 0.5x raw ({target:,.0f} ev/s)",
                     round(needed, 2), cores, "cores here", ratio(needed, cores),
                     "<= cores", "OK" if needed <= cores else "MISS"])
    return rows


def validated_path(
    store: Any, servers: dict[str, Any], n: int, log_dir: Path
) -> dict[str, Any]:
    """The same consumer with every record validated by pydantic (no canonical path)."""
    topic = f"bench.touchpoints.{n}"  # already loaded by the throughput phase
    store.command("TRUNCATE TABLE touchpoints")
    res = run_consumer("validated", servers, topic, n, DEFAULT_MAX_RECORDS, log_dir,
                       max(120.0, n / 2000))
    res["rows_final"] = store.query_value("SELECT count() FROM touchpoints FINAL")
    print(f"  validated  {n:>10,}: {res['events_per_s'] or 0:>10,.0f}/s  "
          f"rss {res['peak_rss_mb']} MB", flush=True)
    return res


def tuning(
    store: Any, servers: dict[str, Any], n: int, values: list[int], log_dir: Path
) -> list[dict[str, Any]]:
    topic = f"bench.touchpoints.{n}"
    rows = []
    for max_records in values:
        store.command("TRUNCATE TABLE touchpoints")
        res = run_consumer("pipeline", servers, topic, n, max_records, log_dir,
                           max(120.0, n / 5000))
        rows.append({"max_records": max_records, "events_per_s": res["events_per_s"],
                     "batches": res.get("batches"), "peak_rss_mb": res["peak_rss_mb"]})
        print(f"  tuning max_records={max_records:>6}: {res['events_per_s'] or 0:>10,.0f}/s "
              f"({res.get('batches')} batches, {res['peak_rss_mb']} MB)", flush=True)
    return rows


def latency(
    store: Any, servers: dict[str, Any], rate: int, seconds: float, log_dir: Path,
    drain_s: float = 120.0,
) -> dict[str, Any]:
    """``drain_s``: how long the consumers may take beyond the sending to see every event."""
    topic = f"bench.latency.{rate}"
    prefix = f"lat{rate}-"
    total = int(rate * seconds)
    store.command("TRUNCATE TABLE touchpoints")
    timeout = seconds + drain_s
    pipe = Child(consumer_args("pipeline", servers["kafka"], servers["clickhouse"], topic,
                               total + 1, DEFAULT_MAX_RECORDS, timeout),
                 log_dir, f"latency-pipeline-{rate}")
    raw = Child(consumer_args("raw", servers["kafka"], servers["clickhouse"], topic, total + 1,
                              DEFAULT_MAX_RECORDS, timeout, ["--latency"]),
                log_dir, f"latency-raw-{rate}")
    try:
        pipe.wait_ready()
        raw.wait_ready()
        # Warm-up: one event must land before the clock starts (group joined, assigned).
        asyncio.run(produce_bulk(servers["kafka"], topic, 1, prefix="warmup-"))
        deadline = time.monotonic() + 60
        while store.query_value("SELECT count() FROM touchpoints") < 1:
            if time.monotonic() > deadline:
                raise RuntimeError(f"warm-up event never landed:\n{pipe.tail()}")
            time.sleep(0.1)
        sent, achieved = asyncio.run(
            produce_paced(servers["kafka"], topic, rate, seconds, prefix)
        )
        pipe_res = pipe.result(timeout)
        raw_res = raw.result(timeout)
    finally:
        pipe.stop()
        raw.stop()
    for name, res in (("pipeline", pipe_res), ("raw", raw_res)):
        if (res.get("events") or 0) < total + 1:  # it gave up after `timeout`
            print(f"  latency {rate}/s: the {name} consumer saw {res.get('events')} of "
                  f"{total + 1} events in {timeout:.0f} s (see {log_dir})", flush=True)
    rows = store.query(
        "SELECT event_id, toUnixTimestamp64Milli(ingested_at) AS ms FROM touchpoints "
        "WHERE startsWith(event_id, {p:String})",
        {"p": prefix},
    )
    lat = [r["ms"] / 1000 - sent[int(r["event_id"][len(prefix):])] for r in rows]
    found = len({r["event_id"] for r in rows})
    pcts = {k: (v * 1000 if v is not None else None) for k, v in percentiles(lat).items()}
    base = raw_res.get("latency_ms") or {}
    print(f"  latency {rate:>6}/s x {seconds:.0f}s: p50 {pcts['p50'] or 0:.0f} ms  p95 "
          f"{pcts['p95'] or 0:.0f} ms  p99 {pcts['p99'] or 0:.0f} ms  (raw p99 "
          f"{base.get('p99') or 0:.0f} ms; {found}/{total} rows; sent {achieved:,.0f}/s)",
          flush=True)
    return {"rate": rate, "seconds": seconds, "achieved_rate": achieved, "events": total,
            "rows_found": found, "pipeline_ms": pcts, "raw_ms": base,
            "pipeline_peak_rss_mb": pipe_res.get("peak_rss_mb")}


def stages(
    store: Any, batch: int = DEFAULT_MAX_RECORDS, batches: int = 3, server_pid: int | None = None
) -> list[dict[str, Any]]:
    """Per-event cost of each step of the pipeline path, and of cheaper alternatives
    (wall time, and the ClickHouse server's CPU time when its pid is known)."""
    from pydantic import TypeAdapter

    from pulse_attribution.storage import (
        TOUCHPOINT_COLUMNS,
        TOUCHPOINTS_CANONICAL,
        AttributionStorage,
        touchpoint_row,
    )
    from pulse_shared.canonical import INSERT_SETTINGS, distinct_field_values
    from pulse_shared.events import Touchpoint
    from pulse_shared.store.base import to_insertable

    n = batch * batches
    msgs = [payload(i, "stage-") for i in range(n)]
    cols = list(TOUCHPOINT_COLUMNS)
    client = store._client
    out: list[dict[str, Any]] = []

    def timed(name: str, fn: Any, current: bool) -> Any:
        cpu_before = cpu_seconds(server_pid) if server_pid else None
        started = time.perf_counter()
        value = fn()
        us = (time.perf_counter() - started) / n * 1e6
        cpu_after = cpu_seconds(server_pid) if server_pid else None
        server_us = None
        if cpu_before is not None and cpu_after is not None:
            server_us = round((cpu_after - cpu_before) / n * 1e6, 2)
        out.append({"step": name, "us_per_event": round(us, 2), "current": current,
                    "server_cpu_us_per_event": server_us,
                    "events_per_s_alone": round(1e6 / us) if us else None})
        return value

    spec = TOUCHPOINTS_CANONICAL
    size = f"{batch // 1000}k batches"
    chunks = [msgs[i:i + batch] for i in range(0, n, batch)]
    store.command("TRUNCATE TABLE touchpoints")
    lines = timed("canonical: frame() (whole-batch byte checks)",
                  lambda: [spec.frame(c) for c in chunks], True)
    timed("canonical: holds_pii() in Python (only for batches the insert's pre-check flags)",
          lambda: [spec.holds_pii(b) for b in lines], False)
    accounts = timed("canonical: distinct_field_values(account_id) for the late-touch lookup",
                     lambda: [distinct_field_values(b, "account_id") for b in lines], True)
    timed(f"canonical: checked INSERT ... SELECT FROM input() (server parses and pre-checks "
          f"PII, {size})", lambda: [store.insert_canonical(spec, b) for b in lines], True)
    lookup = AttributionStorage(store).conversions_of
    timed(f"canonical: conversions_of(accounts of the batch) late-touch lookup ({size})",
          lambda: [lookup(a) for a in accounts], True)
    store.command("TRUNCATE TABLE touchpoints")
    events = timed("validated: Touchpoint.model_validate_json per record",
                   lambda: [Touchpoint.model_validate_json(m) for m in msgs], False)
    adapter = TypeAdapter(list[Touchpoint])
    timed("validated: TypeAdapter(list).validate_json of the batch (used)",
          lambda: adapter.validate_json(b"[" + b",".join(msgs) + b"]"), False)
    rows = timed("validated: touchpoint_row (getattr per column)",
                 lambda: [touchpoint_row(e) for e in events], False)
    data = timed("validated: to_insertable per cell (ServerStore.insert)",
                 lambda: [[to_insertable(r.get(c)) for c in cols] for r in rows], False)
    timed(f"validated: clickhouse-connect row-oriented insert ({size})",
          lambda: [client.insert("touchpoints", data[i:i + batch], column_names=cols)
                   for i in range(0, n, batch)], False)
    store.command("TRUNCATE TABLE touchpoints")
    # The floor for any write of these rows: ClickHouse parses and stores them, no checks.
    plain = {**INSERT_SETTINGS, "date_time_input_format": "best_effort"}
    timed(f"reference: unchecked raw JSONEachRow insert (server parses, no checks, {size})",
          lambda: [client.raw_insert("touchpoints", cols, b"\n".join(msgs[i:i + batch]),
                                     fmt="JSONEachRow", settings=plain)
                   for i in range(0, n, batch)], False)
    store.command("TRUNCATE TABLE touchpoints")
    for row in out:
        server = row["server_cpu_us_per_event"]
        print(f"  stage {row['us_per_event']:>7.2f} us/event"
              f"{'' if server is None else f' (server CPU {server:.2f})':>20}  "
              f"{'  ' if row['current'] else '* '}{row['step']}", flush=True)
    return out


# -- report ------------------------------------------------------------------------------


def summarise(results: dict[str, Any]) -> str:
    rows: list[list[Any]] = []
    for t in results["throughput"]:
        n = t["events"]
        r = (t["pipeline_events_per_s"] or 0) / (t["raw_events_per_s"] or 1)
        rows.append([f"throughput {n:,} events (ev/s)", t["pipeline_events_per_s"],
                     t["raw_events_per_s"], "raw aiokafka", f"{r:.2f}x",
                     ">=0.50x & >=100k", "OK" if r >= GOAL_RATIO and
                     (t["pipeline_events_per_s"] or 0) >= GOAL_EPS else "MISS"])
        rows.append(["  steady state, w/o 1st batch (ev/s)", t["pipeline_steady_events_per_s"],
                     t["raw_events_per_s"], "raw aiokafka",
                     ratio(t["pipeline_steady_events_per_s"], t["raw_events_per_s"]), "", ""])
        rows.append([f"peak RSS {n:,} events (MB)", t["pipeline_peak_rss_mb"],
                     t["raw_peak_rss_mb"], "raw aiokafka",
                     ratio(t["pipeline_peak_rss_mb"], t["raw_peak_rss_mb"]), "<300 MB",
                     "OK" if (t["pipeline_peak_rss_mb"] or 1e9) < GOAL_RSS_MB else "MISS"])
        rows.append([f"rows in ClickHouse FINAL / raw ({n:,})", t["rows_final"], n,
                     "produced", ratio(t["rows_final"], n), "= produced",
                     "OK" if t["rows_final"] == n else "MISS"])
        rows.extend(cpu_budget(t, results["cores"]))
    tp = results["throughput"]
    if len(tp) >= 2:
        a, b = tp[0], tp[-1]
        scale = b["events"] / a["events"]
        rows.append([f"time growth {a['events']:,} -> {b['events']:,}",
                     (b["pipeline_s"] or 0) / (a["pipeline_s"] or 1), scale,
                     "linear", ratio((b["pipeline_s"] or 0) / (a["pipeline_s"] or 1), scale),
                     "~linear", ""])
        rows.append([f"RSS growth {a['events']:,} -> {b['events']:,}",
                     (b["pipeline_peak_rss_mb"] or 0) / (a["pipeline_peak_rss_mb"] or 1), 1.0,
                     "flat", "", "~flat", ""])
    for t in tp:
        rows.append([f"FastStream subscriber, ack only {t['events']:,} (ev/s)",
                     t.get("subscriber_events_per_s"), t["raw_events_per_s"], "raw aiokafka",
                     ratio(t.get("subscriber_events_per_s"), t["raw_events_per_s"]),
                     "(framework floor)", ""])
    val = results.get("validated")
    if val:
        base = tp[0]["pipeline_events_per_s"]
        rows.append([f"pydantic per record, no canonical path {val['events']:,} (ev/s)",
                     val["events_per_s"], base, "pipeline", ratio(val["events_per_s"], base),
                     "", ""])
    for lt in results.get("latency", []):
        for q in ("p50", "p95", "p99"):
            rows.append([f"latency {lt['rate']:,}/s {q} (ms)", lt["pipeline_ms"][q],
                         lt["raw_ms"].get(q), "raw consume", ratio(lt["pipeline_ms"][q],
                                                                   lt["raw_ms"].get(q)), "", ""])
        rows.append([f"latency {lt['rate']:,}/s rows landed", lt["rows_found"], lt["events"],
                     "sent", ratio(lt["rows_found"], lt["events"]), "= sent",
                     "OK" if lt["rows_found"] == lt["events"] else "MISS"])
    for tu in results.get("tuning", []):
        best = max((x["events_per_s"] or 0) for x in results["tuning"])
        rows.append([f"tuning max_records={tu['max_records']} (ev/s)", tu["events_per_s"],
                     best, "best", ratio(tu["events_per_s"], best), "", ""])
    text = table(["figure", "value", "baseline", "baseline is", "ratio", "goal", ""], rows)
    if results.get("stages"):
        current = sum(x["us_per_event"] for x in results["stages"] if x["current"])
        text += "\n\nper-event wall time of each step, in-process (* = not on the canonical path):\n"
        text += table(["step", "us/event", "server CPU us/event", "share of current path"], [
            [("  " if x["current"] else "* ") + x["step"], x["us_per_event"],
             x.get("server_cpu_us_per_event"),
             f"{x['us_per_event'] / current:.0%}" if x["current"] else ""]
            for x in results["stages"]])
        text += f"\ncurrent path total {current:.1f} us/event = {1e6 / current:,.0f} events/s per core"
    return text


def figures(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Throughput and peak RSS per size, and latency p95/p99 per rate, each against the
    bare aiokafka consumer of the same run."""
    out = []
    for t in results["throughput"]:
        n, eps, raw = t["events"], t["pipeline_events_per_s"], t["raw_events_per_s"]
        out.append(figure(
            f"pipeline consume → ClickHouse, {n:,} events", eps, "events/s", baseline=raw,
            baseline_is="bare aiokafka consumer",
            goal=f">= {GOAL_RATIO:g}x baseline and >= {GOAL_EPS:,} events/s",
            met=bool(eps and raw and eps / raw >= GOAL_RATIO and eps >= GOAL_EPS)))
        cpu = t.get("cpu_us_per_event") or {}
        mine = (cpu.get("pipeline") or {}).get("consumer")
        base = (cpu.get("raw") or {}).get("consumer")
        out.append(figure(
            f"pipeline consumer process CPU per event, {n:,} events", mine, "µs/event",
            baseline=base, baseline_is="bare aiokafka consumer process",
            goal=f"<= {GOAL_CPU_RATIO:g}x baseline",
            met=bool(mine is not None and base and mine / base <= GOAL_CPU_RATIO)))
        rss = t["pipeline_peak_rss_mb"]
        out.append(figure(
            f"pipeline consumer peak RSS, {n:,} events", rss, "MB",
            baseline=t["raw_peak_rss_mb"], baseline_is="bare aiokafka consumer",
            goal=f"< {GOAL_RSS_MB:g} MB", met=rss is not None and rss < GOAL_RSS_MB))
    for lt in results.get("latency", []):
        for q in ("p95", "p99"):
            out.append(figure(
                f"pipeline touchpoint → ClickHouse row {q} at {lt['rate']:,} events/s",
                lt["pipeline_ms"][q], "ms", baseline=lt["raw_ms"].get(q),
                baseline_is="bare aiokafka consumer's send → receive"))
    return out


def main(argv: list[str] | None = None) -> int:
    global FETCH_MAX_WAIT_MS
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="2k events, 200 events/s for 1 s, small stages (smoke test)")
    parser.add_argument("--sizes", type=lambda s: [int(x) for x in s.split(",") if x])
    parser.add_argument("--rates", type=lambda s: [int(x) for x in s.split(",") if x])
    parser.add_argument("--duration", type=float)
    parser.add_argument("--tune", type=lambda s: [int(x) for x in s.split(",") if x],
                        help="max_records values to compare (default: full mode only)")
    parser.add_argument("--profile", type=int, default=0,
                        help="cProfile the pipeline consumer, keep the top N functions")
    parser.add_argument("--fetch-max-wait-ms", type=int, default=500)
    parser.add_argument("--no-save", action="store_true")
    parser.add_argument("--log-dir", type=Path, help="keep the consumer logs here")
    args = parser.parse_args(argv)
    FETCH_MAX_WAIT_MS = args.fetch_max_wait_ms
    sizes = args.sizes or ([2_000] if args.quick else [1_000_000, 10_000_000])
    rates = args.rates if args.rates is not None else ([200] if args.quick else [1_000, 10_000])
    duration = args.duration or (1.0 if args.quick else 60.0)
    tune = args.tune if args.tune is not None else ([] if args.quick else [1000, 5000, 20000, 50000])

    from pulse_shared.schema.migrations import migrate
    from pulse_shared.store.server import ServerStore

    print(f"pipeline benchmark: sizes {sizes}, rates {rates} x {duration:.0f}s, "
          f"tune {tune}", flush=True)
    results: dict[str, Any] = {
        "mode": "quick" if args.quick else "full",
        "settings": {"max_records": DEFAULT_MAX_RECORDS,
                     "batch_timeout_ms": DEFAULT_BATCH_TIMEOUT_MS, "partitions": PARTITIONS},
    }
    with tempfile.TemporaryDirectory(prefix="pulse-bench-") as tmp, \
            kafka_broker(Path(tmp) / "kafka", heap="1g") as kafka, \
            clickhouse_server(Path(tmp) / "clickhouse") as ch:
        log_dir = args.log_dir or Path(tmp) / "logs"
        log_dir.mkdir(parents=True, exist_ok=True)
        servers: dict[str, Any] = {
            "kafka": kafka.bootstrap_servers, "clickhouse": ch.url,
            "pids": {"clickhouse": ch.pid, "broker": kafka.pid},
        }
        results["cores"] = usable_cores()
        store = ServerStore(ch.url)
        try:
            migrate(store)
            kafka.create_topics([f"bench.touchpoints.{n}" for n in sizes]
                                + [f"bench.latency.{r}" for r in rates], PARTITIONS)
            results["stages"] = (stages(store, batch=1000, batches=1, server_pid=ch.pid)
                                 if args.quick else stages(store, server_pid=ch.pid))
            results["throughput"] = throughput(store, servers, sizes, log_dir, args.profile)
            results["validated"] = validated_path(store, servers, sizes[0], log_dir)
            if tune:
                results["tuning"] = tuning(store, servers, sizes[0], tune, log_dir)
            # A quick run's consumers get 30 s to drain, so a stall costs the smoke test little.
            drain = 30.0 if args.quick else 120.0
            results["latency"] = [latency(store, servers, r, duration, log_dir, drain)
                                  for r in rates]
        finally:
            store.close()
    profiles = [t.pop("profile") for t in results["throughput"] if "profile" in t]
    print()
    print(summarise(results))
    for text in profiles:
        print("\nprofile of the pipeline consumer (top functions by own time):\n" + text)
    if not args.no_save:
        path = write_results("pipeline", results, quick=args.quick, figures=figures(results))
        print(f"\nresults: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
