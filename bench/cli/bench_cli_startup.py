"""CLI start-up benchmark: ``pulse --help`` against importing typer and rich.

Runs, alternately and several times each, the venv's ``pulse`` console script and
``python -c "import typer, rich"`` (the baseline: the least any typer/rich CLI pays, measured
in the same run on the same machine) as subprocesses, and reports median wall times and
their ratio. A few other light commands are measured beside it for information.

    .venv/bin/python bench/cli/bench_cli_startup.py           # 21 runs of each
    .venv/bin/python bench/cli/bench_cli_startup.py --quick   # 2 runs, pulse --help only

Goal (issue 18): ``pulse --help`` within 2x of the baseline. Results:
``bench/results/cli-startup-latest.json``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench.common import REPO_ROOT, figure, pulse_script, table, write_results

GOAL_RATIO = 2.0
BASELINE = "import typer, rich"
# Measured beside the goal, for information: other commands that touch no store.
OTHERS = (("--version",), ("kpi", "--help"), ("alerts", "--help"), ("report", "--help"))


def timed(argv: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    done = subprocess.run(argv, cwd=REPO_ROOT, env=env, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, check=False)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} exited {done.returncode}: "
                         f"{done.stderr.decode(errors='replace')[-500:]}")
    return seconds


def figures(out: dict[str, Any]) -> list[dict[str, Any]]:
    return [figure("`pulse --help` start-up (median)", out["pulse_help"]["median_s"], "s",
                   baseline=out["baseline"]["median_s"],
                   baseline_is=f"python -c '{BASELINE}'",
                   goal=f"<= {GOAL_RATIO:g}x baseline", met=out["goal_met"])]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="2 runs of the baseline and pulse --help only (smoke test)")
    parser.add_argument("--runs", type=int, help="runs of each command")
    args = parser.parse_args()
    runs = args.runs or (2 if args.quick else 21)
    pulse = pulse_script()
    # No bytecode writes and no user site differences between the commands; terminal
    # width fixed so help text is rendered the same way each time.
    env = {**os.environ, "COLUMNS": "80", "PYTHONDONTWRITEBYTECODE": "1"}
    env.pop("PULSE_DEBUG", None)
    commands: dict[str, list[str]] = {
        f"python -c '{BASELINE}'": [sys.executable, "-c", BASELINE],
        "pulse --help": [pulse, "--help"],
        **{"pulse " + " ".join(o): [pulse, *o] for o in (() if args.quick else OTHERS)},
    }
    for argv in commands.values():  # warm the page cache and .pyc files once
        timed(argv, env)
    samples: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(runs):  # interleaved, so load drifts hit every command alike
        for name, argv in commands.items():
            samples[name].append(timed(argv, env))
    baseline_name = next(iter(commands))
    baseline = statistics.median(samples[baseline_name])
    results: dict[str, Any] = {}
    rows = []
    for name, values in samples.items():
        median = statistics.median(values)
        results[name] = {
            "median_s": round(median, 4), "min_s": round(min(values), 4),
            "max_s": round(max(values), 4), "ratio_vs_baseline": round(median / baseline, 3),
        }
        rows.append([name, median * 1000, min(values) * 1000, f"{median / baseline:.2f}x"])
    ratio = results["pulse --help"]["ratio_vs_baseline"]
    met = ratio <= GOAL_RATIO
    print(table(["command", "median ms", "min ms", "vs baseline"], rows))
    print(f"pulse --help: {ratio:.2f}x the baseline (goal <= {GOAL_RATIO:.0f}x): "
          f"{'met' if met else 'NOT met'}")
    out = {
        "runs": runs,
        "baseline": {"command": f'python -c "{BASELINE}"', **results[baseline_name]},
        "pulse_help": {"command": "pulse --help", **results["pulse --help"]},
        "ratio": ratio,
        "goal": {"ratio_at_most": GOAL_RATIO},
        "goal_met": met,
        "others": {k: v for k, v in results.items()
                   if k not in (baseline_name, "pulse --help")},
    }
    path = write_results("cli-startup", out, quick=args.quick, figures=figures(out))
    print(f"results: {path}")


if __name__ == "__main__":
    main()
