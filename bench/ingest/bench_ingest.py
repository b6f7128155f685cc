"""Ingest benchmark: rows/s into a real Kafka broker, three ways, in the same run.

1. raw aiokafka producer (baseline): pre-serialised touchpoint JSON, same producer
   settings as Pulse (acks=all, idempotence, linger 5 ms, 1 MiB batches);
2. the CLI path: ``ingest_file`` on an NDJSON file (read → normalise/hash/validate →
   dedup window → ``Bus.publish``), chunks of 5,000 rows;
3. the HTTP API: real uvicorn server on loopback, ``POST /v1/touchpoints`` with
   NDJSON bodies of 5,000 rows, 4 concurrent clients;
4. the ``pulse ingest touchpoints FILE`` command as a subprocess (start-up included).

Also shown: normalisation alone (CPU) and ``Bus.publish`` of pre-validated events.

Each path sends its own fresh rows (nothing is a duplicate). Prints rows/s and the ratio
of each path to the raw producer.

    .venv/bin/python bench/ingest/bench_ingest.py                 # starts a Kafka broker
    .venv/bin/python bench/ingest/bench_ingest.py --rows 20000
    .venv/bin/python bench/ingest/bench_ingest.py --bootstrap 127.0.0.1:9092
    .venv/bin/python bench/ingest/bench_ingest.py --quick          # 500 rows (smoke test)

``--bootstrap`` defaults to ``$BENCH_KAFKA_BOOTSTRAP``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import re
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

if __package__ in (None, ""):  # run as a script: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench.common import figure, shared_servers, table, write_results
from pulse_testinfra import free_port

TOPIC = "marketing.touchpoints.v1"
CHANNELS = ["paid_search", "paid_social", "email", "webinar", "organic_search", "display"]
TYPES = ["ad_click", "ad_click", "email_open", "webinar", "web_visit", "ad_impression"]


def raw_rows(n: int, tag: str) -> list[dict[str, Any]]:
    """Rows as a client would send them: raw e-mails, some free text, no event ids."""
    start = dt.datetime(2026, 10, 1, tzinfo=dt.UTC)
    rows = []
    for i in range(n):
        c = i % len(CHANNELS)
        rows.append({
            "occurred_at": (start + dt.timedelta(seconds=37 * i)).isoformat(),
            "account_id": f"{tag}-acct-{i % 5000:05d}",
            "email": f"person{i % 20000}@company{i % 5000}.example",
            "first_name": "Bench",
            "channel": CHANNELS[c],
            "touch_type": TYPES[c],
            "source": "google",
            "medium": "cpc",
            "campaign_id": f"camp-{i % 40}",
            "utm_source": "google",
            "utm_campaign": f"camp-{i % 40}",
            "notes": "free text that ingest drops",
        })
    return rows


def chunks(rows: list[Any], size: int) -> Iterator[list[Any]]:
    for i in range(0, len(rows), size):
        yield rows[i : i + size]


async def bench_raw_producer(bootstrap: str, n: int) -> float:
    from aiokafka import AIOKafkaProducer

    from pulse_ingest.domain.normalize import normalise_rows

    batch = normalise_rows("touchpoints", raw_rows(n, "raw"), "bench-salt")
    payloads = [(e.account_id.encode(), e.to_json()) for e in batch.events]  # type: ignore[attr-defined]
    producer = AIOKafkaProducer(  # the settings of pulse_shared.bus.make_broker
        bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, linger_ms=5,
        max_batch_size=1024 * 1024,
    )
    await producer.start()
    try:
        await producer.send_and_wait(TOPIC, payloads[0][1], key=payloads[0][0])  # warm-up
        started = time.perf_counter()
        futures = [await producer.send(TOPIC, value, key=key) for key, value in payloads]
        await asyncio.gather(*futures)
        elapsed = time.perf_counter() - started
    finally:
        await producer.stop()
    return n / elapsed


async def bench_bus(bootstrap: str, n: int) -> float:
    """pulse_shared Bus.publish of pre-validated events (FastStream per-message publish)."""
    from pulse_ingest.domain.normalize import normalise_rows
    from pulse_shared.bus import Bus, make_broker
    from pulse_shared.topics import TOUCHPOINTS

    events = normalise_rows("touchpoints", raw_rows(n, "bus"), "bench-salt").events
    broker = make_broker(bootstrap, client_id="pulse-ingest-bench-bus")
    await broker.start()
    try:
        bus = Bus(broker, "ingest")
        await bus.publish(TOUCHPOINTS, events[:1])
        started = time.perf_counter()
        for batch in chunks(events, 5000):
            await bus.publish(TOUCHPOINTS, batch)
        elapsed = time.perf_counter() - started
    finally:
        await broker.stop()
    return n / elapsed


def _service(bootstrap: str) -> tuple[Any, Any]:
    from pulse_ingest.service import IngestService
    from pulse_ingest.settings import IngestSettings
    from pulse_shared.bus import Bus, make_broker

    broker = make_broker(bootstrap, client_id="pulse-ingest-bench")
    settings = IngestSettings(pii_salt="bench-salt-0123456789", auth_required=False, max_rows=10_000,
                              max_inflight_rows=100_000, publish_timeout_s=60)
    return broker, IngestService(Bus(broker, "ingest"), settings)


async def bench_file(bootstrap: str, n: int, folder: Path) -> float:
    from pulse_ingest.service import ingest_file

    path = folder / "touchpoints.ndjson"
    with path.open("w") as fh:
        for row in raw_rows(n, "file"):
            fh.write(json.dumps(row) + "\n")
    broker, service = _service(bootstrap)
    await broker.start()
    try:
        await service.ingest("touchpoints", raw_rows(1, "warm-file"), "bench")
        started = time.perf_counter()
        result = await ingest_file(service, "touchpoints", path, chunk_size=5000)
        elapsed = time.perf_counter() - started
    finally:
        await broker.stop()
    assert result.accepted == n, (result.accepted, result.rejected[:3])
    return n / elapsed


def bench_cli_process(bootstrap: str, n: int, folder: Path) -> float | None:
    """The real ``pulse ingest touchpoints FILE`` command (process start-up included)."""
    import os
    import shutil
    import subprocess

    pulse = shutil.which("pulse", path=str(Path(sys.executable).parent))
    if pulse is None:
        return None
    path = folder / "cli.ndjson"
    with path.open("w") as fh:
        for row in raw_rows(n, f"cli{time.time_ns()}"):
            fh.write(json.dumps(row) + "\n")
    env = {**os.environ, "PULSE_KAFKA_BOOTSTRAP": bootstrap, "PULSE_INGEST_PII_SALT": "bench-salt-0123456789",
           "PULSE_LOG_LEVEL": "WARNING", "PULSE_DATA_DIR": str(folder / "pulse-data")}
    started = time.perf_counter()
    done = subprocess.run([pulse, "ingest", "touchpoints", str(path)], env=env,
                          capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - started
    plain = re.sub(r"\x1b\[[0-9;]*m", "", done.stdout + done.stderr)  # rich colours
    if done.returncode != 0 or f"accepted {n}" not in plain:
        raise RuntimeError(f"pulse ingest failed ({done.returncode}): {done.stdout[-300:]} "
                           f"{done.stderr[-300:]}")
    return n / elapsed



async def bench_http(bootstrap: str, n: int, concurrency: int = 4, body_rows: int = 5000) -> float:
    import uvicorn

    from pulse_ingest.main import build_api
    from pulse_shared.service import broker_health

    broker, service = _service(bootstrap)
    await broker.start()
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(
        build_api(service, health=broker_health(broker)), host="127.0.0.1", port=port,
        log_level="warning", access_log=False, lifespan="off",
    ))
    task = asyncio.create_task(server.serve())
    bodies = ["\n".join(json.dumps(r) for r in chunk)
              for chunk in chunks(raw_rows(n, "http"), body_rows)]
    headers = {"content-type": "application/x-ndjson"}
    try:
        while not server.started:
            await asyncio.sleep(0.05)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=120) as http:
            warm = await http.post("/v1/touchpoints", json=raw_rows(1, "warm-http"))
            warm.raise_for_status()
            queue: asyncio.Queue[str] = asyncio.Queue()
            for body in bodies:
                queue.put_nowait(body)
            accepted = 0

            async def worker() -> None:
                nonlocal accepted
                while not queue.empty():
                    body = queue.get_nowait()
                    r = await http.post("/v1/touchpoints", content=body, headers=headers)
                    r.raise_for_status()
                    accepted += r.json()["accepted"]

            started = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(concurrency)))
            elapsed = time.perf_counter() - started
    finally:
        server.should_exit = True
        await task
        await broker.stop()
    assert accepted == n, accepted
    return n / elapsed


def bench_normalise(n: int) -> float:
    from pulse_ingest.domain.normalize import normalise_rows

    rows = raw_rows(n, "cpu")
    started = time.perf_counter()
    normalise_rows("touchpoints", rows, "bench-salt")
    return n / (time.perf_counter() - started)


@contextlib.contextmanager
def kafka(bootstrap: str | None) -> Iterator[str]:
    if bootstrap:
        yield bootstrap
        return
    from pulse_testinfra.kafka import KafkaBroker

    with KafkaBroker() as broker:
        yield broker.bootstrap_servers


RAW = "raw aiokafka producer (baseline)"
#: The paths a client uses, each a headline figure against the raw producer.
CLIENT_PATHS = ("HTTP API: POST /v1/touchpoints NDJSON", "CLI path: ingest_file NDJSON",
                "`pulse ingest` command (incl. start-up)")


def figures(out: dict[str, Any]) -> list[dict[str, Any]]:
    rates = out["rows_per_s"]
    return [figure(f"ingest {path}", rates.get(path), "rows/s", baseline=rates.get(RAW),
                   baseline_is="raw aiokafka producer, same settings")
            for path in CLIENT_PATHS]


async def main(argv: list[str]) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="500 rows per path (smoke test)")
    parser.add_argument("--rows", type=int, default=None, help="rows per path (default 50,000)")
    parser.add_argument("--repeat", type=int, default=1, help="best of N runs per path")
    parser.add_argument("--bootstrap", default=shared_servers()[0],
                        help="existing broker (else one is started)")
    args = parser.parse_args(argv)
    n = args.rows or (500 if args.quick else 50_000)
    from pulse_shared.logging import configure_logging

    configure_logging("WARNING", json=False)
    results: dict[str, float] = {}

    def keep(name: str, rate: float) -> None:
        results[name] = max(results.get(name, 0.0), rate)

    with kafka(args.bootstrap) as bootstrap, tempfile.TemporaryDirectory() as tmp:
        print(f"ingest benchmark: {n} touchpoints per path, broker {bootstrap}")
        for _ in range(args.repeat):
            keep("normalise only (CPU, no broker)", bench_normalise(n))
            keep(RAW, await bench_raw_producer(bootstrap, n))
            keep("Bus.publish only (validated events)", await bench_bus(bootstrap, n))
            keep("CLI path: ingest_file NDJSON", await bench_file(bootstrap, n, Path(tmp)))
            keep("HTTP API: POST /v1/touchpoints NDJSON", await bench_http(bootstrap, n))
            cli = await asyncio.to_thread(bench_cli_process, bootstrap, n, Path(tmp))
            if cli is not None:
                keep("`pulse ingest` command (incl. start-up)", cli)
    baseline = results[RAW]
    print(table(["path", "rows/s", "vs raw producer"],
                [[name, round(rate), f"{rate / baseline:.2f}x"] for name, rate in results.items()]))
    out = {"rows": n, "repeat": args.repeat, "rows_per_s": results,
           "ratio_to_raw": {k: v / baseline for k, v in results.items()}}
    path = write_results("ingest_throughput", out, quick=args.quick, figures=figures(out))
    print(f"results: {path}")
    return out


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
