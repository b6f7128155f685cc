"""In-process ingest benchmark: events/s through the embedded pipeline (what ``pulse demo``
and ``pulse ingest`` without Kafka use) against a bare chDB insert of the same events,
measured in the same run.

The path measured is the production one: :class:`~pulse_ingest.service.IngestService`
(normalise, validate, hash identifiers, dedup window) publishes on the in-process bus, which
runs every service's handlers (attribution, KPI, alerts, reporting) into embedded chDB
before the call returns. Two workloads:

1. **touchpoints**: raw touchpoint rows as a client sends them (``bench_ingest.raw_rows``:
   e-mail addresses to hash, free text to drop), through ``pulse ingest FILE``'s path
   (``pulse_ingest.service.ingest_rows``, after the file is read): chunks of 5,000, each
   published while the next one is normalised. Touchpoints are the high-volume kind;
   attribution stores them.
2. **demo mix**: ``pulse demo``'s data set (every kind, 104 weeks of spend and deal history)
   in the demo's order and chunks; every KPI, credit and alert those events cause.

Touchpoints are measured three times (each path, each in a fresh process) and the median
run is reported; the demo mix (~25 s) once. Both are timed until the pipeline has stopped
(the KPI service's last breakdown pass and snapshot flush included): work a service defers
is still work the events caused. The "returned" figure stops the clock when the last
ingest call returns.

Baseline: the same events, already valid, as canonical JSON lines inserted into their raw
tables with one bare chDB ``INSERT … FORMAT JSONEachRow`` per chunk (no Pulse code in the
loop): the least storing them can cost. Each measurement runs in its own process on a
fresh data directory (chDB opens one directory per process).

    .venv/bin/python bench/ingest/bench_ingest_embedded.py            # 50k touchpoints + demo mix
    .venv/bin/python bench/ingest/bench_ingest_embedded.py --quick    # 2,000 touchpoints, small mix

Goal (issue 19): in-process ingest >= 20,000 events/s. Results:
``bench/results/ingest_embedded-latest.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
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

from bench.common import REPO_ROOT, figure, table, write_results

GOAL_EVENTS_PER_S = 20_000.0
TOUCHPOINT_CHUNK = 5000
#: Runs of each touchpoint measurement (the median is reported): one takes ~3 s, and single
#: runs of the same code varied 19.7k-21.5k events/s on a quiet machine.
TOUCHPOINT_RUNS = 3
#: (days, accounts, history weeks) of the demo mix: pulse demo's defaults, and a small one.
MIX_FULL = (120, 400, 104)
MIX_QUICK = (14, 40, 0)


# ------------------------------------------------------------------ workloads (in a child)
def _touchpoint_events(n: int) -> tuple[list[dict[str, Any]], list[Any]]:
    """Raw rows, and the events ingest makes of them (for the baseline)."""
    from bench.ingest.bench_ingest import raw_rows
    from pulse_ingest.domain.normalize import normalise_rows

    rows = raw_rows(n, f"embedded{time.time_ns()}")
    return rows, list(normalise_rows("touchpoints", rows, "bench-salt-0123456789").events)


def _mix(days: int, accounts: int, history_weeks: int) -> dict[str, list[Any]]:
    from pulse_cli.demo import INGEST_ORDER
    from pulse_ingest.domain.generator import generate_dataset

    end = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)
    data = generate_dataset(
        seed=7, days=days, accounts=accounts, end=end, history_weeks=history_weeks,
        martech_tools=True, product_usage=True, email_deliverability=True,
        account_profiles=True, customer_experience=True,
    )
    return {kind: list(getattr(data, kind)) for kind in INGEST_ORDER}


async def _through_pipeline(
    batches: list[tuple[str, list[dict[str, Any]]]], chunk_size: int | None = None
) -> dict[str, Any]:
    """Ingest ``batches`` in order: one ``IngestService.ingest`` call each (as ``pulse
    demo`` does), or, with ``chunk_size``, each batch's rows through ``ingest_rows`` (what
    ``pulse ingest FILE`` does: chunk k is published while chunk k+1 is normalised)."""
    from pulse_cli.runtime import open_pipeline
    from pulse_ingest.service import IngestService, ingest_rows
    from pulse_ingest.settings import IngestSettings

    events = sum(len(rows) for _, rows in batches)
    accepted = 0
    opened = open_pipeline()
    pipeline = await opened.__aenter__()
    try:
        service = IngestService(pipeline.bus, IngestSettings(
            demo=True, pii_salt="bench-salt-0123456789", publish_timeout_s=3600.0,
            max_rows=max(len(rows) for _, rows in batches)))
        started, cpu = time.perf_counter(), time.process_time()
        for kind, rows in batches:
            if chunk_size is None:
                accepted += (await service.ingest(kind, rows, "bench")).accepted
            else:
                accepted += (await ingest_rows(service, kind, rows, chunk_size,
                                               source="bench")).accepted
        returned = time.perf_counter() - started
    except BaseException:
        await opened.__aexit__(*sys.exc_info())
        raise
    await opened.__aexit__(None, None, None)  # services stop: deferred work finishes
    settled, cpu = time.perf_counter() - started, time.process_time() - cpu
    if accepted != events:
        raise RuntimeError(f"{events - accepted} of {events} events were not accepted")
    return {"events": events, "returned_s": returned, "seconds": settled, "cpu_s": cpu}


def _json_line(event: Any) -> bytes:
    """The event's canonical JSON, with ``YYYY-MM`` months as their first day (the raw
    tables store a month as a Date; Pulse's consumers convert it the same way)."""
    import orjson

    fields = event.model_dump(mode="json")
    for name, value in fields.items():
        if isinstance(value, str) and len(value) == 7 and value[4] == "-" and value[:4].isdigit():
            fields[name] = f"{value}-01"
    return orjson.dumps(fields)


def _bare_insert(by_table: list[tuple[str, list[bytes]]]) -> dict[str, Any]:
    """One bare chDB INSERT per chunk of canonical JSON lines (timed), after the schema
    was created by Pulse's migrations (not timed)."""
    from pulse_shared.schema.migrations import migrate
    from pulse_shared.settings import common_settings
    from pulse_shared.store import open_store

    store = open_store(common_settings())
    migrate(store)
    conn = store._conn  # type: ignore[attr-defined]  # the bare connection, no Pulse code
    statements = [
        f"INSERT INTO `{table_name}` SETTINGS input_format_skip_unknown_fields = 1, "
        f"date_time_input_format = 'best_effort' FORMAT JSONEachRow\n"
        + b"\n".join(lines).decode()
        for table_name, lines in by_table
    ]
    events = sum(len(lines) for _, lines in by_table)
    started, cpu = time.perf_counter(), time.process_time()
    for statement in statements:
        conn.query(statement, "TabSeparated")
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    return {"events": events, "seconds": seconds, "cpu_s": cpu}


def measure(workload: str, path: str, size: list[int]) -> dict[str, Any]:
    """One measurement in this process (called in a child by :func:`run_one`)."""
    from pulse_shared.logging import configure_logging
    from pulse_shared.topics import BY_INGEST_KIND

    configure_logging("WARNING", json=False)
    if workload == "touchpoints":
        rows, events = _touchpoint_events(size[0])
        if path == "pipeline":
            return asyncio.run(_through_pipeline([("touchpoints", rows)], TOUCHPOINT_CHUNK))
        table_name = BY_INGEST_KIND["touchpoints"].stored_table()
        return _bare_insert([(table_name, [_json_line(e) for e in events[i:i + TOUCHPOINT_CHUNK]])
                             for i in range(0, len(events), TOUCHPOINT_CHUNK)])
    from pulse_cli.demo import CHUNK

    mix = _mix(*size)
    if path == "pipeline":
        chunks = [(kind, [e.model_dump(mode="json") for e in events[i:i + CHUNK]])
                  for kind, events in mix.items() for i in range(0, len(events), CHUNK)]
        return asyncio.run(_through_pipeline([c for c in chunks if c[1]]))
    return _bare_insert([(BY_INGEST_KIND[kind].stored_table(),
                          [_json_line(e) for e in events[i:i + CHUNK]])
                         for kind, events in mix.items() for i in range(0, len(events), CHUNK)
                         if events[i:i + CHUNK]])


def run_one(workload: str, path: str, size: list[int]) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="pulse-bench-ingest-") as tmp:
        env = {**os.environ, "PULSE_DATA_DIR": str(Path(tmp) / "data"),
               "PULSE_LOG_LEVEL": "WARNING"}
        env.pop("PULSE_KAFKA_BOOTSTRAP", None)
        env.pop("PULSE_CLICKHOUSE_URL", None)
        done = subprocess.run(
            [sys.executable, str(Path(__file__).resolve()), "--one",
             json.dumps([workload, path, size])],
            cwd=REPO_ROOT, env=env, capture_output=True, text=True, check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"{workload}/{path} failed ({done.returncode}): "
                           f"{done.stderr.strip()[-2000:]}")
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run of median duration, with every run's seconds (``runs_s``)."""
    ordered = sorted(runs, key=lambda r: r["seconds"])
    return {**ordered[len(ordered) // 2], "runs_s": [round(r["seconds"], 3) for r in runs]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="2,000 touchpoints and a 14-day mix without history")
    parser.add_argument("--rows", type=int, help="touchpoints (default 50,000)")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        workload, path, size = json.loads(args.one)
        print(json.dumps(measure(workload, path, size)), flush=True)
        os._exit(0)  # chDB's static destructors may crash at interpreter exit
    touchpoints = args.rows or (2000 if args.quick else 50_000)
    mix = list(MIX_QUICK if args.quick else MIX_FULL)
    results: dict[str, dict[str, Any]] = {}
    touchpoint_runs = 1 if args.quick else TOUCHPOINT_RUNS  # the smoke test only runs it
    for workload, size, runs in (("touchpoints", [touchpoints], touchpoint_runs),
                                 ("demo mix", mix, 1)):
        key = workload.replace(" ", "_")
        for path in ("bare", "pipeline"):
            print(f"{workload}: {path} ...", flush=True)
            results[f"{key}/{path}"] = median_run([run_one(key, path, size)
                                                   for _ in range(runs)])
    rows = []
    figures = []
    for workload in ("touchpoints", "demo_mix"):
        bare, piped = results[f"{workload}/bare"], results[f"{workload}/pipeline"]
        rate, base = piped["events"] / piped["seconds"], bare["events"] / bare["seconds"]
        returned = piped["events"] / piped["returned_s"]
        piped.update(events_per_s=rate, returned_events_per_s=returned,
                     cpu_us_per_event=1e6 * piped["cpu_s"] / piped["events"])
        bare.update(events_per_s=base, cpu_us_per_event=1e6 * bare["cpu_s"] / bare["events"])
        name = workload.replace("_", " ")
        rows.append([name, piped["events"], round(base), round(rate), round(returned),
                     f"{rate / base:.3f}x", piped["cpu_us_per_event"]])
        figures.append(figure(
            f"in-process ingest ({name}), events/s until settled", rate, "events/s",
            baseline=base, baseline_is="bare chDB INSERT of the same events, same run",
            goal=f">= {GOAL_EVENTS_PER_S:,.0f} events/s", met=rate >= GOAL_EVENTS_PER_S))
    print(table(["workload", "events", "bare chDB ev/s", "pipeline ev/s (settled)",
                 "pipeline ev/s (returned)", "vs bare", "pipeline CPU us/event"], rows))
    for f in figures:
        print(f"{f['figure']}: {f['value']:,.0f} (goal {f['goal']}): "
              f"{'met' if f['met'] else 'NOT met'}")
    path = write_results("ingest_embedded", {
        "touchpoints": touchpoints, "mix": {"days": mix[0], "accounts": mix[1],
                                            "history_weeks": mix[2]},
        "results": results,
    }, quick=args.quick, figures=figures)
    print(f"results: {path}")


if __name__ == "__main__":
    main()
