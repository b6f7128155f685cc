"""``make bench``: run every benchmark script and print a summary.

Runs each ``bench/<area>/bench_*.py`` (written per service; they print their own tables)
as a subprocess with a timeout, then prints one summary table. Every run's outcome and the
machine description go to ``bench/results/summary-<stamp>.json`` (scripts write their own
detailed JSON next to it).

    python -m bench                 # everything, full sizes
    python -m bench --quick         # small sizes (smoke test)
    python -m bench pipeline        # only bench/pipeline/bench_*.py
    python -m bench pipeline kpi    # several areas
    python -m bench --list
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.common import BENCH_DIR, REPO_ROOT, table, write_results

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


def run_script(script: Path, quick: bool, timeout: float) -> dict[str, Any]:
    args = [sys.executable, str(script)]
    if quick and supports_quick(script):
        args.append("--quick")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
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
    args = parser.parse_args(argv)
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
    outcomes = [run_script(s, args.quick, timeout) for s in scripts]
    print("\n=== summary" + (" (quick)" if args.quick else ""))
    print(table(["benchmark", "args", "status", "seconds"],
                [[o["script"], " ".join(o["args"]), o["status"], o["seconds"]] for o in outcomes]))
    latest = sorted(p.name for p in (BENCH_DIR / "results").glob("*-latest.json"))
    if latest:
        print("detailed results: " + ", ".join(f"bench/results/{n}" for n in latest))
    path = write_results("summary", {"quick": args.quick, "runs": outcomes})
    print(f"summary: {path.relative_to(REPO_ROOT)}")
    return 0 if all(o["status"] == "ok" for o in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
