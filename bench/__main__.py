"""``make bench``: run every benchmark script and print a summary.

Runs each ``bench/<area>/bench_*.py`` (written per service; they print their own tables)
as a subprocess with a timeout, then prints one summary table. Every run's outcome, the
machine description and the commit go to ``bench/results/summary-<stamp>.json`` (scripts
write their own detailed JSON next to it, through ``bench.common.write_results``).
``make bench`` then regenerates the README's performance table (``python -m bench.table``).

    python -m bench                 # everything, full sizes
    python -m bench --quick         # tiny sizes (smoke test; writes *-quick-latest.json)
    python -m bench pipeline        # only bench/pipeline/bench_*.py
    python -m bench pipeline kpi    # several areas
    python -m bench --results-dir /tmp/r --quick   # results elsewhere
    python -m bench --list

With ``--quick`` one Kafka broker and one ClickHouse server are started for all the scripts
that need them (unless ``$BENCH_KAFKA_BOOTSTRAP`` / ``$BENCH_CLICKHOUSE_URL`` are set).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench.common import (
    BENCH_DIR,
    CLICKHOUSE_ENV,
    KAFKA_ENV,
    REPO_ROOT,
    RESULTS_DIR_ENV,
    results_dir,
    table,
    write_results,
)

FULL_TIMEOUT_S = 3600.0
QUICK_TIMEOUT_S = 600.0


def discover(areas: list[str]) -> list[Path]:
    scripts = sorted(BENCH_DIR.glob("*/bench_*.py"))
    if areas:
        unknown = set(areas) - {s.parent.name for s in scripts}
        if unknown:
            raise SystemExit(f"no benchmark scripts under bench/{', bench/'.join(sorted(unknown))}")
        scripts = [s for s in scripts if s.parent.name in areas]
    return scripts


def supports_quick(script: Path) -> bool:
    """Scripts opt in to ``--quick`` by defining the option."""
    try:
        return '"--quick"' in script.read_text() or "'--quick'" in script.read_text()
    except OSError:
        return False


def needs_servers(script: Path) -> bool:
    """Scripts that take their servers from ``bench.common`` (so can share them)."""
    text = script.read_text()
    return any(f"{name}(" in text for name in ("kafka_broker", "clickhouse_server",
                                                "shared_servers"))


@contextlib.contextmanager
def shared_servers_env(scripts: list[Path]) -> Iterator[dict[str, str]]:
    """Environment naming one Kafka broker and one ClickHouse server for every script
    (started here unless the environment already names them)."""
    if os.environ.get(KAFKA_ENV) and os.environ.get(CLICKHOUSE_ENV):
        yield {}
        return
    if not any(needs_servers(s) for s in scripts):
        yield {}
        return
    from pulse_testinfra.clickhouse import ClickHouseServer
    from pulse_testinfra.kafka import KafkaBroker

    print("=== starting one Kafka broker and one ClickHouse server for the quick runs",
          flush=True)
    with KafkaBroker() as kafka, ClickHouseServer() as ch:
        yield {KAFKA_ENV: kafka.bootstrap_servers, CLICKHOUSE_ENV: ch.url}


def run_script(script: Path, quick: bool, timeout: float,
               extra_env: dict[str, str] | None = None) -> dict[str, Any]:
    args = [sys.executable, str(script)]
    if quick and supports_quick(script):
        args.append("--quick")
    env = {**os.environ, **(extra_env or {}), "PYTHONPATH": os.pathsep.join(
        p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH", "")) if p)}
    name = str(script.relative_to(REPO_ROOT))
    print(f"\n=== {name} {' '.join(args[2:])}".rstrip(), flush=True)
    started = time.monotonic()
    # Output streams straight through; a new session lets a timeout kill the whole tree
    # (scripts start Kafka/ClickHouse servers).
    proc = subprocess.Popen(args, cwd=REPO_ROOT, env=env, start_new_session=True)
    status = "ok"
    try:
        code = proc.wait(timeout=timeout)
        if code != 0:
            status = f"failed (exit {code})"
    except subprocess.TimeoutExpired:
        status = f"timeout after {timeout:.0f}s"
        _kill_tree(proc)
    except KeyboardInterrupt:
        _kill_tree(proc)
        raise
    return {"script": name, "args": args[2:], "status": status,
            "seconds": round(time.monotonic() - started, 1)}


def _kill_tree(proc: subprocess.Popen[bytes]) -> None:
    import signal

    for sig, wait in ((signal.SIGTERM, 20), (signal.SIGKILL, 10)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("areas", nargs="*", help="bench/<area> folders to run (default: all)")
    parser.add_argument("--quick", action="store_true", help="small sizes (smoke test)")
    parser.add_argument("--timeout", type=float, help="seconds per script")
    parser.add_argument("--list", action="store_true", help="list the scripts and exit")
    parser.add_argument("--results-dir", type=Path,
                        help=f"write results here instead of bench/results (${RESULTS_DIR_ENV})")
    args = parser.parse_args(argv)
    if args.results_dir:
        os.environ[RESULTS_DIR_ENV] = str(args.results_dir.resolve())
    scripts = discover(args.areas)
    if args.list:
        for script in scripts:
            quick = " (--quick)" if supports_quick(script) else ""
            print(f"{script.relative_to(REPO_ROOT)}{quick}")
        return 0
    if not scripts:
        print("no benchmark scripts found", file=sys.stderr)
        return 1
    timeout = args.timeout or (QUICK_TIMEOUT_S if args.quick else FULL_TIMEOUT_S)
    servers = shared_servers_env(scripts) if args.quick else contextlib.nullcontext({})
    with servers as env:
        outcomes = [run_script(s, args.quick, timeout, env) for s in scripts]
    print("\n=== summary" + (" (quick)" if args.quick else ""))
    print(table(["benchmark", "args", "status", "seconds"],
                [[o["script"], " ".join(o["args"]), o["status"], o["seconds"]] for o in outcomes]))
    folder = results_dir()
    latest = sorted(p.name for p in folder.glob("*-latest.json"))
    if latest:
        print(f"detailed results in {folder}: " + ", ".join(latest))
    path = write_results("summary", {"runs": outcomes}, quick=args.quick)
    print(f"summary: {path}")
    return 0 if all(o["status"] == "ok" for o in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
