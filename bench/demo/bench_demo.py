"""``pulse demo`` benchmark: the whole embedded demo, timed end to end and per step, against
a baseline measured in the same run.

Each run is the real command (``pulse demo --timings FILE``) in a fresh temporary data and
report directory, so nothing of an earlier run is reused but what the runs below say:

1. **cold**: an empty bytecode cache (``PYTHONPYCACHEPREFIX`` in a fresh directory) and an
   empty JAX compile cache: a first run on a fresh install.
2. **warm** (full size only, ``--runs`` times): bytecode compiled and the JAX programs of
   the cold run's model fit copied into the fresh data directory (``cache/jax``): ``make
   demo`` after set-up, run again the same day (the fit's programs depend on the data,
   which depends on the date).

Baseline (same run, warm bytecode): a Python process that imports the demo's data
generator and generates the very same data set (``--days``, ``--accounts``, 104 weeks of
history) without ingesting it: start-up plus the part no pipeline can avoid. Per step, the
demo's own timings (wall and CPU seconds: ingest per kind, the model fit beside them,
each report kind) come from ``--timings``; CPU includes the fit worker's process.

The model alone (full size only): after the warm runs, the demo's marketing mix model is
fitted again on the first warm run's stored data, by itself on the otherwise idle machine,
the way the demo fits it (:func:`pulse_cli.demo.start_fit_worker`: the same worker, sampler
settings and warm compile cache; :func:`pulse_mmm.runner.run_fit`): from process start to
the stored run. Every report with a model section follows the fit, so no demo can finish
before this time plus ingesting the fit's inputs; it is the floor under the demo's figure.

    .venv/bin/python bench/demo/bench_demo.py            # cold + 2 warm runs, default data set
    .venv/bin/python bench/demo/bench_demo.py --quick    # one warm-bytecode run, 14 days × 40 accounts

Goal (issue 19): ``make demo`` (default data set, after set-up) < 10 s. Results:
``bench/results/demo-latest.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench.common import REPO_ROOT, figure, pulse_script, table, write_results

GOAL_S = 10.0
#: What a demo run must have written to count: every report kind in every format, with
#: the model's section where reports have one (a faster demo that shows less is no faster).
REPORT_KINDS = ("annual", "daily", "monthly", "quarterly", "weekly")
REPORT_FORMATS = ("csv", "html", "json", "md", "pdf")
DEFAULT = {"days": 120, "accounts": 400}  # pulse demo's defaults
QUICK = {"days": 14, "accounts": 40}
BASELINE_CODE = """
import datetime as dt, sys, time
started = time.perf_counter()
from pulse_cli.demo import DEMO_HISTORY_WEEKS
from pulse_ingest.domain.generator import generate_dataset
end = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)
data = generate_dataset(seed=7, days={days}, accounts={accounts}, end=end,
                        history_weeks=DEMO_HISTORY_WEEKS, martech_tools=True,
                        product_usage=True, email_deliverability=True,
                        account_profiles=True, customer_experience=True)
print(sum(len(getattr(data, k)) for k in
          ("accounts", "budgets", "martech", "spend", "touchpoints", "pipeline",
           "subscriptions", "usage", "deliverability", "feedback", "tickets")))
"""


FIT_ALONE_CODE = """
import asyncio, json, time
started = time.perf_counter()
from pulse_cli.demo import DEMO_MMM_GRAIN, DEMO_MMM_SAMPLER, start_fit_worker
worker = start_fit_worker()  # imports the model libraries while the store opens
from pulse_mmm.runner import run_fit
from pulse_mmm.settings import MmmSettings
from pulse_shared.settings import common_settings
from pulse_shared.store import open_store
store = open_store(common_settings())
try:
    fit_from = time.perf_counter()
    result = asyncio.run(run_fit(store, MmmSettings(), grain=DEMO_MMM_GRAIN,
                                 fit_overrides=DEMO_MMM_SAMPLER, worker=worker))
    done = time.perf_counter()
finally:
    worker.close()
print(json.dumps({"wall_s": round(done - started, 2), "fit_s": round(done - fit_from, 2),
                  "status": result.run.status}))
"""


def environment(pycache: Path, data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("PULSE_KAFKA_BOOTSTRAP", "PULSE_CLICKHOUSE_URL",
                        "PYTHONDONTWRITEBYTECODE")}
    # Bytecode goes to a cache this benchmark owns: cold means cold, warm means written by
    # an earlier run of this benchmark (never the venv's own __pycache__).
    env.update(PYTHONPYCACHEPREFIX=str(pycache), PULSE_DATA_DIR=str(data_dir),
               PULSE_LOG_LEVEL="WARNING", COLUMNS="120")
    return env


def timed(argv: list[str], env: dict[str, str], cwd: Path) -> tuple[float, float, str]:
    """Wall and CPU seconds (the process and its children) of one command; its stdout."""
    before = os.times()
    started = time.perf_counter()
    done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    after = os.times()
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:3])} … exited {done.returncode}: "
                           f"{done.stderr.strip()[-3000:]}")
    cpu = (after.children_user - before.children_user
           + after.children_system - before.children_system)
    return wall, cpu, done.stdout


def run_demo(size: dict[str, int], pycache: Path, jax_cache: Path | None,
             work: Path) -> dict[str, Any]:
    """One ``pulse demo`` in fresh directories under ``work``; ``jax_cache`` (a cold run's
    ``cache/jax``) is copied into the data directory first when given."""
    data_dir, reports = work / "data", work / "reports"
    work.mkdir(parents=True)
    if jax_cache is not None and jax_cache.exists():
        shutil.copytree(jax_cache, data_dir / "cache" / "jax")
    timings = work / "timings.json"
    argv = [pulse_script(), "demo", "--days", str(size["days"]), "--accounts",
            str(size["accounts"]), "--output", str(reports), "--timings", str(timings)]
    wall, cpu, _ = timed(argv, environment(pycache, data_dir), work)
    steps = json.loads(timings.read_text())
    files = sorted(p.relative_to(reports).as_posix() for p in reports.rglob("*") if p.is_file())
    kinds = {p.split("/")[0] for p in files}
    formats = {p.rsplit(".", 1)[-1] for p in files}
    # A published model's ROI table has a row per channel (without one: the header only).
    with_model = [kind for kind in ("monthly", "quarterly", "annual")
                  if any(len((reports / p).read_text().splitlines()) > 1 for p in files
                         if p.startswith(f"{kind}/") and p.endswith("/csv/mmm_roi.csv"))]
    missing = ([f"kind {k}" for k in REPORT_KINDS if k not in kinds]
               + [f"format {f}" for f in REPORT_FORMATS if f not in formats]
               + [f"model results in the {k} report" for k in ("monthly", "quarterly", "annual")
                  if k not in with_model])
    if missing:
        raise RuntimeError(f"pulse demo did not write {', '.join(missing)}")
    return {"wall_s": round(wall, 2), "cpu_s": round(cpu, 2), "steps": steps,
            "report_files": len(files), "report_kinds": sorted(kinds),
            "report_formats": sorted(formats), "reports_with_model": with_model}


def run_baseline(size: dict[str, int], pycache: Path, work: Path) -> dict[str, Any]:
    code = BASELINE_CODE.format(**size)
    env = environment(pycache, work / "baseline-data")
    timed([sys.executable, "-c", code], env, work)  # writes the bytecode it needs
    wall, cpu, out = timed([sys.executable, "-c", code], env, work)
    return {"wall_s": round(wall, 2), "cpu_s": round(cpu, 2), "events": int(out.split()[-1])}


def run_fit_alone(data_dir: Path, pycache: Path, work: Path) -> dict[str, Any]:
    """The demo's model fit by itself on a demo run's stored data (module docstring)."""
    env = environment(pycache, data_dir)
    wall, cpu, out = timed([sys.executable, "-c", FIT_ALONE_CODE], env, work)
    inner = json.loads(out.strip().splitlines()[-1])
    if inner["status"] != "published":
        raise RuntimeError(f"the model fitted alone was {inner['status']}, not published")
    return {"wall_s": round(wall, 2), "cpu_s": round(cpu, 2), **{
        f"in_process_{k}": v for k, v in inner.items()}}


def step_rows(result: dict[str, Any]) -> list[list[Any]]:
    rows = [[s["phase"], s["wall_s"], s.get("cpu_s"), s.get("events")]
            for s in result["steps"]["phases"]]
    total = result["steps"]["total"]
    rows.append(["(in run_demo)", total["wall_s"], total["cpu_s"],
                 f"+{total.get('children_cpu_s', 0):.1f} s CPU in the fit worker"])
    rows.append(["(whole command)", result["wall_s"], result["cpu_s"], ""])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="one run, 14 days × 40 accounts (the model still fits 104 weeks)")
    parser.add_argument("--runs", type=int, default=2, help="warm runs (full size)")
    args = parser.parse_args()
    size = QUICK if args.quick else DEFAULT
    with tempfile.TemporaryDirectory(prefix="pulse-bench-demo-") as tmp:
        root = Path(tmp)
        pycache = root / "pycache"
        cold: dict[str, Any] | None = None
        fit_alone: dict[str, Any] | None = None
        warm: list[dict[str, Any]] = []
        if args.quick:
            # The baseline first: it warms the bytecode the demo shares with it.
            baseline = run_baseline(size, pycache, root)
            print("pulse demo (quick, bytecode partly warm) ...", flush=True)
            warm.append(run_demo(size, pycache, None, root / "run-1"))
        else:
            print("pulse demo, cold (no bytecode, no compile cache) ...", flush=True)
            cold = run_demo(size, pycache, None, root / "cold")
            baseline = run_baseline(size, pycache, root)
            for i in range(args.runs):
                print(f"pulse demo, warm run {i + 1} of {args.runs} ...", flush=True)
                warm.append(run_demo(size, pycache, root / "cold" / "data" / "cache" / "jax",
                                     root / f"warm-{i + 1}"))
            print("the demo's model fitted alone (idle machine, warm caches) ...", flush=True)
            fit_alone = run_fit_alone(root / "warm-1" / "data", pycache, root)
    best = min(warm, key=lambda r: r["wall_s"])
    for name, result in ([("cold", cold)] if cold else []) + [
            (f"warm {i + 1}" if not args.quick else "quick", r) for i, r in enumerate(warm)]:
        print(f"\n{name}: {result['wall_s']:.1f} s wall, {result['cpu_s']:.1f} s CPU, "
              f"{result['report_files']} report files "
              f"({', '.join(result['report_kinds'])}; {', '.join(result['report_formats'])})")
        print(table(["step", "wall s", "CPU s", "events / note"], step_rows(result)))
    print(f"\nbaseline (start-up + generating the same {baseline['events']:,} events): "
          f"{baseline['wall_s']:.1f} s wall, {baseline['cpu_s']:.1f} s CPU")
    median = statistics.median(r["wall_s"] for r in warm)
    met = best["wall_s"] < GOAL_S
    print(f"pulse demo: {median:.1f} s (median of {len(warm)}), {median / baseline['wall_s']:.1f}x "
          f"the baseline; goal < {GOAL_S:.0f} s: {'met' if met else 'NOT met'}")
    figures = [figure(
        "`pulse demo` wall time" + (" (quick data set)" if args.quick else " (after set-up)"),
        median, "s", baseline=baseline["wall_s"],
        baseline_is="start-up + generating the same data set, same run",
        goal=None if args.quick else f"< {GOAL_S:.0f} s",
        met=None if args.quick else median < GOAL_S)]
    if fit_alone is not None:
        print(f"the model alone: {fit_alone['wall_s']:.1f} s wall, {fit_alone['cpu_s']:.1f} s "
              f"CPU (from the store opened to the run stored: "
              f"{fit_alone['in_process_fit_s']:.1f} s); the demo cannot end before it")
        figures.append(figure(
            "the demo's model fit alone, idle machine, warm caches (the floor under "
            "`pulse demo`)", fit_alone["wall_s"], "s", baseline=baseline["wall_s"],
            baseline_is="start-up + generating the same data set, same run"))
    if cold is not None:
        figures.append(figure(
            "`pulse demo` wall time, first run (cold bytecode and compile caches)",
            cold["wall_s"], "s", baseline=baseline["wall_s"],
            baseline_is="start-up + generating the same data set, same run"))
    path = write_results("demo", {
        "size": size, "baseline": baseline, "cold": cold, "warm": warm,
        "median_warm_wall_s": median, "fit_alone": fit_alone,
    }, quick=args.quick, figures=figures)
    print(f"results: {path.relative_to(REPO_ROOT) if path.is_relative_to(REPO_ROOT) else path}")


if __name__ == "__main__":
    main()
