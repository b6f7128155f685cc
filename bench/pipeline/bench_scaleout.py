"""Scale-out benchmark: 1, 2 and 4 consumer processes of one group on a 4-partition topic.

N touchpoints are pre-loaded on a topic with 4 partitions (round-robin, N/4 each). Then,
for k = 1, 2 and 4 processes of one consumer group (a new group each time, so each reads
the whole topic):

- ``raw``: bare aiokafka consumers (no decode, no write) — the baseline, same run;
- ``pipeline``: the attribution service's touchpoint consumer as in production
  (``bench/pipeline/consumer.py``, as ``bench_pipeline.py`` runs it), into ClickHouse.

All k processes join the group with their partitions paused (``consumer.py --gate``) and
start together once the group holds every partition, so no process reads another's share
while the group forms; each stays in the group until all are done (a member leaving
would move the others' partitions mid-batch). Reported per k: group throughput (events /
time from ``go`` to the last batch of any process), and per process its events,
events/s, CPU µs/event (its own CPU time from ``go`` to its last batch) and peak RSS; the
ClickHouse server's and the broker's CPU per event over the run; rows FINAL = produced.

On a machine with fewer cores than processes (2 cores here, shared with the broker and
the ClickHouse server), group throughput cannot grow with k: CPU per event per process is
the figure that transfers to a deployment (docs/operations.md sizes partitions from it).

    .venv/bin/python bench/pipeline/bench_scaleout.py                # 1M events
    .venv/bin/python bench/pipeline/bench_scaleout.py --events 400000
    .venv/bin/python bench/pipeline/bench_scaleout.py --quick        # 20k events (smoke)

``$BENCH_KAFKA_BOOTSTRAP`` / ``$BENCH_CLICKHOUSE_URL`` name running servers to use instead
(the servers' CPU time is then not measured).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import queue
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench.common import (
    clickhouse_server,
    cpu_seconds,
    figure,
    kafka_broker,
    ratio,
    table,
    usable_cores,
    write_results,
)
from bench.pipeline.bench_pipeline import (
    DEFAULT_MAX_RECORDS,
    GOAL_CPU_RATIO,
    GOAL_RSS_MB,
    Child,
    consumer_args,
    produce_bulk,
)

PARTITIONS = 4
PROCESSES = (1, 2, 4)
#: The group counts as formed once every partition has had one owner for this long.
STABLE_S = 3.0
FORM_TIMEOUT_S = 120.0


class GatedChild(Child):
    """A ``consumer.py --gate`` process: its stdout is read by a thread, so its partition
    assignments are known while it waits for ``go``."""

    def __init__(self, args: list[str], log_dir: Path, name: str) -> None:
        super().__init__([*args, "--gate"], log_dir, name, stdin=True)
        self.lines: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self.assigned: list[int] | None = None  # latest assignment (None: none yet)
        self.assigned_at = 0.0
        self.ready = False
        self.done = False
        self.rebalanced_after_go = False
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        try:
            for line in self.proc.stdout:
                self._take(line)
        except (OSError, ValueError):  # stdout closed by stop()
            pass
        self.lines.put(None)

    def _take(self, line: str) -> None:
        try:
            data = json.loads(line)
        except ValueError:
            return
        if not isinstance(data, dict):
            return
        if "assigned" in data:
            self.assigned = list(data["assigned"])
            self.assigned_at = time.monotonic()
            self.rebalanced_after_go |= bool(data.get("after_go"))
        elif data.get("ready"):
            self.ready = True
        elif data.get("done"):
            self.done = True
        elif "mode" in data:
            self.lines.put(data)

    def _line(self) -> dict[str, Any] | None:  # the result line (Child.result reads it)
        return self.lines.get()

    def send(self, word: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(word + "\n")
        self.proc.stdin.flush()


def wait_formed(children: list[GatedChild]) -> float:
    """Until the k processes own the partitions between them (each at least one, none
    twice) and nothing has moved for :data:`STABLE_S`; returns the seconds it took."""
    started = time.monotonic()
    while True:
        for child in children:
            if child.proc.poll() is not None:
                raise RuntimeError(f"consumer exited while the group formed:\n{child.tail()}")
        owned = [c.assigned for c in children]
        if all(c.ready for c in children) and all(owned):
            flat = [p for parts in owned for p in parts or []]
            settled = time.monotonic() - max(c.assigned_at for c in children) >= STABLE_S
            if sorted(flat) == list(range(PARTITIONS)) and settled:
                return time.monotonic() - started
        if time.monotonic() - started > FORM_TIMEOUT_S:
            raise RuntimeError(f"the group did not form: {owned}\n{children[0].tail()}")
        time.sleep(0.1)


def wait_done(children: list[GatedChild], timeout: float) -> None:
    """Until every process has consumed its share (or one exits, or ``timeout``)."""
    deadline = time.monotonic() + timeout
    while not all(c.done for c in children):
        if any(c.proc.poll() is not None for c in children) or time.monotonic() > deadline:
            return  # Child.result reports what it can
        time.sleep(0.05)


def run_group(
    mode: str, k: int, servers: dict[str, Any], topic: str, log_dir: Path, timeout: float
) -> dict[str, Any]:
    """k processes of one new group read the whole topic; per process and group figures."""
    group = f"bench-scaleout-{mode}-{k}-{uuid.uuid4().hex[:6]}"
    args = consumer_args(mode, servers["kafka"], servers["clickhouse"], topic, 0,
                         DEFAULT_MAX_RECORDS, timeout, ["--group", group])
    children = [GatedChild(args, log_dir, f"scaleout-{mode}-{k}-{i}") for i in range(k)]
    try:
        formed_s = wait_formed(children)
        shares = [c.assigned for c in children]
        pids: dict[str, int] = servers.get("pids", {})
        cpu_before = {name: cpu_seconds(pid) for name, pid in pids.items()}
        go_at = time.time()
        for child in children:
            child.send("go")
        wait_done(children, timeout + 60)
        for child in children:  # all done: leaving now moves nothing that is in flight
            child.send("stop")
        results = [child.result(60) for child in children]
        cpu_after = {name: cpu_seconds(pid) for name, pid in pids.items()}
    finally:
        for child in children:
            child.stop()
    events = sum(r["events"] for r in results)
    lasts = [r["last_at"] for r in results if r.get("last_at")]
    span = max(lasts) - go_at if lasts else None  # from "go" to the last batch of any
    processes = []
    for child, share, r in zip(children, shares, results, strict=True):
        processes.append({
            "partitions": share, "events": r["events"], "expected": r.get("expected"),
            "seconds": r.get("seconds"), "events_per_s": r.get("events_per_s"),
            # From "go" (the first fetch included) to its last batch.
            "cpu_us_per_event": (round(r["cpu_go_s"] / r["events"] * 1e6, 2)
                                 if r.get("cpu_go_s") is not None and r["events"] else None),
            "peak_rss_mb": r.get("peak_rss_mb"),
            "rebalanced_after_go": child.rebalanced_after_go,
        })
    servers_cpu = {}
    for name in pids:
        before, after = cpu_before[name], cpu_after[name]
        servers_cpu[name] = (round((after - before) / events * 1e6, 2)
                             if before is not None and after is not None and events else None)
    cpus = [p["cpu_us_per_event"] for p in processes if p["cpu_us_per_event"] is not None]
    rss = [p["peak_rss_mb"] for p in processes if p["peak_rss_mb"] is not None]
    return {
        "mode": mode, "processes_count": k, "group_formed_s": round(formed_s, 1),
        "events": events, "span_s": span,
        "events_per_s": events / span if span else None,
        "cpu_us_per_event_mean": round(sum(cpus) / len(cpus), 2) if cpus else None,
        "cpu_us_per_event_max": max(cpus) if cpus else None,
        "peak_rss_mb_max": max(rss) if rss else None,
        "server_cpu_us_per_event": servers_cpu,
        # A rebalance after "go" moves partitions mid-batch: redelivered records are
        # counted twice and the figures of that run are off (it should not happen).
        "rebalanced_after_go": any(p["rebalanced_after_go"] for p in processes),
        "processes": processes,
    }


def summarise(results: dict[str, Any]) -> str:
    rows: list[list[Any]] = []
    runs = {(r["mode"], r["processes_count"]): r for r in results["runs"]}
    one = runs.get(("pipeline", 1), {}).get("events_per_s")
    for k in results["processes"]:
        pipe, raw = runs.get(("pipeline", k)), runs.get(("raw", k))
        if not pipe or not raw:
            continue
        rows.append([f"{k} process(es): group throughput (ev/s)", pipe["events_per_s"],
                     raw["events_per_s"], f"{k} raw", ratio(pipe["events_per_s"],
                                                            raw["events_per_s"]), ""])
        rows.append(["  vs 1 pipeline process", pipe["events_per_s"], one, "1 process",
                     ratio(pipe["events_per_s"], one), ""])
        rows.append([f"  CPU us/event per process, mean (max {pipe['cpu_us_per_event_max']})",
                     pipe["cpu_us_per_event_mean"], raw["cpu_us_per_event_mean"],
                     "raw, same k", ratio(pipe["cpu_us_per_event_mean"],
                                          raw["cpu_us_per_event_mean"]),
                     f"<= {GOAL_CPU_RATIO:g}x"])
        server = ", ".join(f"{n} {v}" for n, v in pipe["server_cpu_us_per_event"].items())
        rows.append([f"  server CPU us/event ({server or 'not measured'})", None, None, "",
                     "", ""])
        rows.append(["  peak RSS per process, max (MB)", pipe["peak_rss_mb_max"],
                     raw["peak_rss_mb_max"], "raw, same k",
                     ratio(pipe["peak_rss_mb_max"], raw["peak_rss_mb_max"]),
                     f"< {GOAL_RSS_MB:g} MB"])
        rows.append(["  rows FINAL / produced", pipe["rows_final"], results["events"],
                     "produced", ratio(pipe["rows_final"], results["events"]), "= produced"])
        for i, p in enumerate(pipe["processes"]):
            rows.append([f"    process {i} partitions {p['partitions']}: ev/s",
                         p["events_per_s"], None, "", "",
                         f"{p['cpu_us_per_event']} us/ev, {p['peak_rss_mb']} MB"
                         + (", REBALANCED" if p["rebalanced_after_go"] else "")])
        if raw["rebalanced_after_go"]:
            rows.append(["  (raw run: REBALANCED after go, figures off)", None, None, "", "",
                         ""])
    return table(["figure", "value", "baseline", "baseline is", "ratio", "goal / note"], rows)


def figures(results: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    runs = {(r["mode"], r["processes_count"]): r for r in results["runs"]}
    for k in results["processes"]:
        pipe, raw = runs.get(("pipeline", k)), runs.get(("raw", k))
        if not pipe or not raw:
            continue
        out.append(figure(
            f"pipeline group throughput, {k} process(es), {PARTITIONS} partitions",
            pipe["events_per_s"], "events/s", baseline=raw["events_per_s"],
            baseline_is=f"{k} bare aiokafka consumer process(es) of one group"))
        mine, base = pipe["cpu_us_per_event_mean"], raw["cpu_us_per_event_mean"]
        out.append(figure(
            f"pipeline CPU per event per process, {k} process(es)", mine, "µs/event",
            baseline=base, baseline_is="bare aiokafka consumer process, same k",
            goal=f"<= {GOAL_CPU_RATIO:g}x baseline",
            met=bool(mine is not None and base and mine / base <= GOAL_CPU_RATIO)))
        out.append(figure(
            f"pipeline peak RSS per process, {k} process(es)", pipe["peak_rss_mb_max"], "MB",
            baseline=raw["peak_rss_mb_max"], baseline_is="bare aiokafka consumer process",
            goal=f"< {GOAL_RSS_MB:g} MB",
            met=pipe["peak_rss_mb_max"] is not None and pipe["peak_rss_mb_max"] < GOAL_RSS_MB))
        out.append(figure(
            f"rows FINAL after {k} process(es)", pipe["rows_final"], "rows",
            baseline=results["events"], baseline_is="produced", goal="= produced",
            met=pipe["rows_final"] == results["events"]))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="20k events (smoke test)")
    parser.add_argument("--events", type=int, help="touchpoints to pre-load (default 1M)")
    parser.add_argument("--processes", type=lambda s: [int(x) for x in s.split(",") if x],
                        default=list(PROCESSES), help="group sizes (default 1,2,4)")
    parser.add_argument("--no-save", action="store_true")
    parser.add_argument("--log-dir", type=Path, help="keep the consumer logs here")
    args = parser.parse_args(argv)
    n = args.events or (20_000 if args.quick else 1_000_000)
    if n % PARTITIONS:
        raise SystemExit(f"--events must be a multiple of {PARTITIONS} (equal shares)")

    from pulse_shared.schema.migrations import migrate
    from pulse_shared.store.server import ServerStore

    print(f"scale-out benchmark: {n:,} events on {PARTITIONS} partitions, processes "
          f"{args.processes}", flush=True)
    results: dict[str, Any] = {
        "mode": "quick" if args.quick else "full", "events": n, "partitions": PARTITIONS,
        "processes": args.processes, "cores": usable_cores(),
        "settings": {"max_records": DEFAULT_MAX_RECORDS}, "runs": [],
    }
    with tempfile.TemporaryDirectory(prefix="pulse-scaleout-") as tmp, \
            kafka_broker(Path(tmp) / "kafka", heap="1g") as kafka, \
            clickhouse_server(Path(tmp) / "clickhouse") as ch:
        log_dir = args.log_dir or Path(tmp) / "logs"
        log_dir.mkdir(parents=True, exist_ok=True)
        servers: dict[str, Any] = {"kafka": kafka.bootstrap_servers, "clickhouse": ch.url,
                                   "pids": {n_: p for n_, p in (("clickhouse", ch.pid),
                                                               ("broker", kafka.pid)) if p}}
        store = ServerStore(ch.url)
        try:
            migrate(store)
            # A topic of its own: a shared broker may hold one from an earlier run.
            topic = f"bench.scaleout.{n}.{uuid.uuid4().hex[:6]}"
            kafka.create_topics([topic], PARTITIONS)
            results["produce_s"] = round(asyncio.run(
                produce_bulk(kafka.bootstrap_servers, topic, n, partitions=PARTITIONS)), 2)
            timeout = max(120.0, n / 5000)
            for k in args.processes:
                for mode in ("raw", "pipeline"):
                    if mode == "pipeline":
                        store.command("TRUNCATE TABLE touchpoints")
                    run = run_group(mode, k, servers, topic, log_dir, timeout)
                    if mode == "pipeline":
                        run["rows_final"] = store.query_value(
                            "SELECT count() FROM touchpoints FINAL")
                    results["runs"].append(run)
                    print(f"  {mode:8s} x{k}: {run['events_per_s'] or 0:>10,.0f} ev/s  "
                          f"CPU {run['cpu_us_per_event_mean']} us/ev per process (max "
                          f"{run['cpu_us_per_event_max']})  RSS max {run['peak_rss_mb_max']} MB"
                          f"  servers {run['server_cpu_us_per_event']}"
                          + (f"  rows {run['rows_final']:,}" if mode == "pipeline" else ""),
                          flush=True)
        finally:
            store.close()
    print()
    print(summarise(results))
    if not args.no_save:
        path = write_results("pipeline_scaleout", results, quick=args.quick,
                             figures=figures(results))
        print(f"\nresults: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
