"""Ingest bounds benchmark: /health latency and memory while maximal bodies are rejected.

Starts the real ``pulse-ingest`` process (demo mode: in-memory broker, no Kafka), one per
body, then:

1. baseline: ``/health`` polled back to back with nothing else in flight;
2. for each big body — 16 MiB of ``x\\n`` NDJSON (8 Mi unparsable lines), a 16 MiB JSON
   array of valid-looking touchpoints (far over the row limit), 16 MiB of valid NDJSON
   rows (over the row limit), and a 32 MiB chunked body without Content-Length (over the
   byte limit) — the body is sent while a second thread polls ``/health`` continuously.

Prints p50/p95/max ``/health`` latency during each rejection against the baseline of the
same process in the same run (ratio), each big request's status and duration, and the
ingest process's peak RSS growth (``/proc/PID/status`` VmHWM after the body vs VmRSS
before it; the peak is reset before the body through ``/proc/PID/clear_refs``).
Goals: ``/health`` p95 < 100 ms while a body is rejected, peak RSS growth < 64 MiB.

    .venv/bin/python bench/ingest/bench_ingest_bounds.py
    .venv/bin/python bench/ingest/bench_ingest_bounds.py --quick      # 1 MiB limit, 1 repeat, 20 polls
    .venv/bin/python -m bench ingest                                  # with the other ingest bench
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

if __package__ in (None, ""):  # run as a script: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench.common import _proc_status_kb, figure, percentiles, table, write_results
from pulse_testinfra import free_port

MIB = 1024 * 1024
LIMIT = 16 * MIB  # PULSE_INGEST_MAX_BODY_BYTES default
ROW_LIMIT = 10_000  # PULSE_INGEST_MAX_ROWS default
HEALTH_GOAL_MS = 100.0
RSS_GOAL_MIB = 64.0


def touchpoint(i: int) -> dict[str, Any]:
    return {"occurred_at": "2026-11-20T10:00:00Z", "account_id": f"acct-{i % 5000:05d}",
            "email": f"person{i}@company{i % 5000}.example", "channel": "paid_search",
            "touch_type": "ad_click", "source": "google", "medium": "cpc",
            "campaign_id": f"camp-{i % 40}", "notes": "free text that ingest drops " * 4}


def fill(limit: int, piece: bytes, prefix: bytes = b"", suffix: bytes = b"",
         sep: bytes = b"") -> bytes:
    """``prefix + piece (sep piece)* + suffix``, as long as possible within ``limit``."""
    count = (limit - len(prefix) - len(suffix) + len(sep)) // (len(piece) + len(sep))
    return prefix + sep.join([piece] * count) + suffix


def bodies(limit: int = LIMIT) -> list[tuple[str, str, bytes | None]]:
    row = json.dumps(touchpoint(7)).encode()
    size = f"{limit / MIB:g} MiB"
    return [
        (f"{size} x\\n NDJSON ({limit // 2:,} bad lines)", "application/x-ndjson",
         b"x\n" * (limit // 2)),
        (f"{size} JSON array over the row limit", "application/json",
         fill(limit, row, b"[", b"]", b",")),
        (f"{size} valid NDJSON over the row limit", "application/x-ndjson",
         fill(limit, row + b"\n")),
        (f"{2 * limit / MIB:g} MiB chunked, no Content-Length", "application/x-ndjson", None),
    ]


def chunked(total: int, size: int = 64 * 1024) -> Iterator[bytes]:
    chunk = b" " * size
    for _ in range(total // size):
        yield chunk


class Poller(threading.Thread):
    """Polls /health back to back on its own connection; records each latency (ms)."""

    def __init__(self, base: str) -> None:
        super().__init__(daemon=True)
        self.base = base
        self.latencies: list[float] = []
        self.failures = 0
        self.stop = threading.Event()

    def run(self) -> None:
        with httpx.Client(base_url=self.base, timeout=60) as http:
            while not self.stop.is_set():
                started = time.perf_counter()
                try:
                    ok = http.get("/health").status_code == 200
                except httpx.HTTPError:
                    ok = False
                self.latencies.append((time.perf_counter() - started) * 1000)
                self.failures += 0 if ok else 1


def baseline(base: str, polls: int) -> list[float]:
    poller = Poller(base)
    poller.start()
    while len(poller.latencies) < polls:
        time.sleep(0.01)
    poller.stop.set()
    poller.join()
    return poller.latencies[:polls]


def reset_peak(pid: int) -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0); False when not permitted."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def send_big(base: str, content_type: str, body: bytes | None,
             limit: int) -> tuple[int, float, str]:
    headers = {"content-type": content_type}
    started = time.perf_counter()
    with httpx.Client(base_url=base, timeout=600) as http:
        try:
            content = body if body is not None else chunked(2 * limit)
            r = http.post("/v1/touchpoints", content=content, headers=headers)
            status, detail = r.status_code, r.json().get("detail", "")
        except httpx.HTTPError as exc:  # the server may close while we still send
            status, detail = 0, repr(exc)
    return status, (time.perf_counter() - started) * 1000, str(detail)[:90]


def run_body(base: str, pid: int, name: str, content_type: str, body: bytes | None,
             repeat: int, limit: int) -> dict[str, Any]:
    rss_before = _proc_status_kb(pid, "VmRSS") or 0
    peak_reset = reset_peak(pid)
    poller = Poller(base)
    poller.start()
    while not poller.latencies:  # the poller is running before the body goes out
        time.sleep(0.001)
    polls_before = len(poller.latencies)
    outcomes = [send_big(base, content_type, body, limit) for _ in range(repeat)]
    poller.stop.set()
    poller.join()
    hwm = _proc_status_kb(pid, "VmHWM") or 0
    during = poller.latencies[polls_before:]
    return {
        "body": name,
        "bytes": len(body) if body is not None else 2 * limit,
        "statuses": sorted({o[0] for o in outcomes}),
        "request_ms": percentiles([o[1] for o in outcomes]),
        "detail": outcomes[0][2],
        "health_polls": len(during),
        "health_failures": poller.failures,
        "health_ms": percentiles(during),
        "rss_before_mib": round(rss_before / 1024, 1),
        "peak_rss_mib": round(hwm / 1024, 1),
        "peak_rss_growth_mib": round((hwm - rss_before) / 1024, 1),
        "peak_reset_per_body": peak_reset,
    }


def start_ingest(port: int, log: Path, limit: int) -> subprocess.Popen[bytes]:
    exe = shutil.which("pulse-ingest", path=str(Path(sys.executable).parent))
    if exe is None:
        raise SystemExit("pulse-ingest console script not found next to this Python")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PULSE_")}
    env.update({"PULSE_INGEST_DEMO": "true", "PULSE_INGEST_HOST": "127.0.0.1",
                "PULSE_INGEST_PORT": str(port), "PULSE_LOG_LEVEL": "WARNING",
                "PULSE_INGEST_MAX_BODY_BYTES": str(limit)})
    if limit != LIMIT:  # scale the row limit too, so the bodies are still over it
        env["PULSE_INGEST_MAX_ROWS"] = str(ROW_LIMIT * limit // LIMIT)
    return subprocess.Popen([exe], env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT)


def wait_ready(base: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while True:
        if proc.poll() is not None:
            raise SystemExit(f"pulse-ingest exited; see {log}")
        if time.monotonic() > deadline:
            raise SystemExit(f"pulse-ingest not healthy in time; see {log}")
        try:
            if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)


def measure(name: str, content_type: str, body: bytes | None, repeat: int,
            polls: int, limit: int) -> dict[str, Any]:
    """One fresh ``pulse-ingest`` process per body, so that each body's memory growth is
    measured from the same idle state (freed memory stays with the process)."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory(prefix="pulse-bench-bounds-") as tmp:
        log = Path(tmp) / "ingest.log"
        proc = start_ingest(port, log, limit)
        try:
            wait_ready(base, proc, log)
            # warm-up: one small request of each kind of body
            with httpx.Client(base_url=base, timeout=60) as http:
                http.post("/v1/touchpoints", json=[touchpoint(1)])
                http.post("/v1/touchpoints", content=b"x\n",
                          headers={"content-type": "application/x-ndjson"})
            base_ms = baseline(base, polls)
            run = run_body(base, proc.pid, name, content_type, body, repeat, limit)
            run["rss_after_mib"] = round((_proc_status_kb(proc.pid, "VmRSS") or 0) / 1024, 1)
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    run["baseline_health_ms"] = percentiles(base_ms)
    run["baseline_polls"] = len(base_ms)
    b95, h95 = run["baseline_health_ms"]["p95"], run["health_ms"]["p95"]
    run["health_p95_ratio"] = h95 / b95 if b95 and h95 is not None else None
    return run


def figures(out: dict[str, Any]) -> list[dict[str, Any]]:
    """The worst body's /health p95 (against the same process idle) and RSS growth."""
    worst = max(out["bodies"], key=lambda r: r["health_ms"]["p95"] or 0)
    size = f"{out['body_limit_bytes'] / MIB:g} MiB"
    return [
        figure(f"ingest /health p95 while a {size} body is rejected (worst body)",
               out["worst_health_p95_ms"], "ms", baseline=worst["baseline_health_ms"]["p95"],
               baseline_is="/health p95 of the same process, idle",
               goal=f"< {HEALTH_GOAL_MS:g} ms",
               met=out["worst_health_p95_ms"] < HEALTH_GOAL_MS),
        figure(f"ingest peak RSS growth while a {size} body is rejected (worst body)",
               out["worst_peak_rss_growth_mib"], "MiB", goal=f"< {RSS_GOAL_MIB:g} MiB",
               met=out["worst_peak_rss_growth_mib"] < RSS_GOAL_MIB),
    ]


def main(argv: list[str]) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="1 MiB body limit, 1 repeat, 20 baseline polls (smoke test)")
    parser.add_argument("--repeat", type=int, default=3, help="big requests per body")
    parser.add_argument("--polls", type=int, default=300, help="baseline /health polls")
    args = parser.parse_args(argv)
    repeat, polls = (1, 20) if args.quick else (args.repeat, args.polls)
    limit = MIB if args.quick else LIMIT

    print(f"ingest bounds benchmark: a fresh pulse-ingest process (demo mode) per body, body "
          f"limit {limit:,} bytes, {repeat} request(s) per body, {polls} baseline polls each")
    runs = [measure(name, ct, body, repeat, polls, limit) for name, ct, body in bodies(limit)]
    rows = []
    for run in runs:
        b, h = run["baseline_health_ms"], run["health_ms"]
        ratio = f"{run['health_p95_ratio']:.2f}x" if run["health_p95_ratio"] else "-"
        rows.append([run["body"], ",".join(map(str, run["statuses"])),
                     run["request_ms"]["max"], b["p50"], b["p95"], run["health_polls"],
                     h["p50"], h["p95"], h["max"], ratio, run["rss_before_mib"],
                     run["peak_rss_growth_mib"]])
    print(table(["body", "status", "request ms (max)", "idle p50", "idle p95", "polls",
                 "busy p50", "busy p95", "busy max", "p95 busy/idle", "RSS MiB",
                 "peak +MiB"], rows))
    print("(/health latency in ms: idle = baseline with nothing in flight, busy = while the "
          "big body is sent and rejected; same process, same run)")
    worst_p95 = max((r["health_ms"]["p95"] or 0) for r in runs)
    worst_rss = max(r["peak_rss_growth_mib"] for r in runs)
    print(f"worst /health p95 during a rejection: {worst_p95:.1f} ms (goal < {HEALTH_GOAL_MS:.0f})"
          f"; worst peak RSS growth: {worst_rss:.1f} MiB (goal < {RSS_GOAL_MIB:.0f})")
    for run in runs:
        print(f"  {run['body']}: {run['detail']}")
    out = {
        "body_limit_bytes": limit,
        "repeat": repeat,
        "bodies": runs,
        "worst_health_p95_ms": worst_p95,
        "worst_peak_rss_growth_mib": worst_rss,
        "goals": {"health_p95_ms": HEALTH_GOAL_MS, "peak_rss_growth_mib": RSS_GOAL_MIB,
                  "met": worst_p95 < HEALTH_GOAL_MS and worst_rss < RSS_GOAL_MIB},
    }
    path = write_results("ingest_bounds", out, quick=args.quick, figures=figures(out))
    print(f"results: {path}")
    return out


if __name__ == "__main__":
    main(sys.argv[1:])
