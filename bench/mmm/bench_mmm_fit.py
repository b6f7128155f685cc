"""MMM fit benchmark: time and peak memory of ``pulse_mmm.domain.fit.fit_mmm`` on simulated
weekly data (2 years) with 4 and 12 channels, and how well it recovers the true ROI.

Each measurement runs in its own subprocess so its peak RSS is its own. The baseline,
measured in the same run, is the same model sampled with PyMC's default NUTS sampler
instead of numpyro (ratio = ours / baseline; < 1 = faster). Fit time is the whole
``fit_mmm`` call: model build, JAX/PyTensor compilation, sampling, holdout prediction,
diagnostics and every result row (response curves, allocation).

    .venv/bin/python bench/mmm/bench_mmm_fit.py           # 4 and 12 channels, 500+500 draws, + baseline
    .venv/bin/python bench/mmm/bench_mmm_fit.py --quick   # 2 channels, 20+20 draws, no baseline

Goal (issue 20): < 180 s for 2 years × 12 channels on 2 cores.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.metadata
import json
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench.common import REPO_ROOT, figure, peak_rss_mb, ratio, table, write_results

GOAL_12_CHANNELS_S = 180.0
WEEKS = 104


def measure(channels: int, sampler: str, draws: int, tune: int) -> dict[str, Any]:
    """One fit in this process (called in a subprocess by :func:`main`)."""
    from bench.mmm.simulate import simulate
    from pulse_mmm.domain.fit import FitSettings, fit_mmm

    dataset, _truth, contribution = simulate(channels, WEEKS, seed=7)
    settings = FitSettings(draws=draws, tune=tune, sampler=sampler)
    now = lambda: dt.datetime.now(dt.UTC)  # noqa: E731
    started = time.perf_counter()
    result = fit_mmm(dataset, settings, run_id="bench", version=1, started_at=now(), clock=now)
    seconds = time.perf_counter() - started
    fitted = WEEKS - settings.holdout_periods
    inside = 0
    for i, row in enumerate(result.channels):
        spend = sum(dataset.spend[row.channel][:fitted])
        true_roi = float(contribution[:fitted, i].sum()) / spend
        inside += bool(row.roi_lower is not None and row.roi_upper is not None
                       and row.roi_lower <= true_roi <= row.roi_upper)
    run = result.run
    return {
        "channels": channels, "weeks": WEEKS, "sampler": sampler, "draws": draws, "tune": tune,
        "chains": settings.chains, "fit_seconds": round(seconds, 1),
        "peak_rss_mb": peak_rss_mb(),
        "children_peak_rss_mb": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1),
        "status": run.status, "reason": run.reason, "max_rhat": run.max_rhat,
        "min_ess": run.min_ess, "divergences": run.divergences,
        "holdout_mape": run.holdout_mape, "r_squared": run.r_squared,
        "true_roi_inside_90": inside if result.published else None,
    }


def run_one(channels: int, sampler: str, draws: int, tune: int) -> dict[str, Any]:
    args = [sys.executable, str(Path(__file__).resolve()), "--one",
            json.dumps([channels, sampler, draws, tune])]
    print(f"fitting {channels} channels × {WEEKS} weeks with {sampler} NUTS "
          f"({draws}+{tune} draws)...", flush=True)
    done = subprocess.run(args, cwd=REPO_ROOT, capture_output=True, text=True, check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        tail = done.stderr.strip().splitlines()[-3:]
        return {"channels": channels, "sampler": sampler, "error": " | ".join(tail)}
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def figures(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Fit time per size against PyMC's own NUTS; the goal is on 12 channels."""
    out = []
    for r in results:
        ours, base = r["ours"], r.get("baseline") or {}
        seconds = ours.get("fit_seconds")
        twelve = r["channels"] == 12
        out.append(figure(
            f"MMM fit, {r['channels']} channels × {ours.get('weeks', WEEKS)} weeks", seconds,
            "s", baseline=base.get("fit_seconds"), baseline_is="PyMC's own NUTS sampler",
            goal=f"< {GOAL_12_CHANNELS_S:g} s" if twelve else None,
            met=(seconds is not None and seconds < GOAL_12_CHANNELS_S) if twelve else None))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="2 channels, 20+20 draws, no baseline (smoke test)")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        channels, sampler, draws, tune = json.loads(args.one)
        print(json.dumps(measure(channels, sampler, draws, tune)), flush=True)
        return
    sizes = (2,) if args.quick else (4, 12)
    draws = tune = 20 if args.quick else 500
    results: list[dict[str, Any]] = []
    rows: list[list[Any]] = []
    for channels in sizes:
        ours = run_one(channels, "numpyro", draws, tune)
        baseline = None if args.quick else run_one(channels, "pymc", draws, tune)
        entry = {"channels": channels, "ours": ours, "baseline": baseline,
                 "ratio_fit_time": (round(ours["fit_seconds"] / baseline["fit_seconds"], 3)
                                    if baseline and "fit_seconds" in baseline and "fit_seconds" in ours
                                    else None)}
        results.append(entry)
        rows.append([
            f"{channels} × {WEEKS} wk", ours.get("fit_seconds"), ours.get("peak_rss_mb"),
            ours.get("status", ours.get("error")), ours.get("max_rhat"), ours.get("min_ess"),
            ours.get("true_roi_inside_90"),
            None if baseline is None else baseline.get("fit_seconds"),
            None if baseline is None else baseline.get("peak_rss_mb"),
            ratio(ours.get("fit_seconds"), None if baseline is None else baseline.get("fit_seconds")),
        ])
    print(table(["data", "fit s (numpyro)", "peak RSS MB", "status", "max R-hat", "min ESS",
                 "true ROI in 90%", "fit s (PyMC NUTS)", "baseline RSS MB", "ratio"], rows))
    twelve = next((r for r in results if r["channels"] == 12), None)
    goal_met = None if twelve is None else twelve["ours"].get("fit_seconds", 1e9) < GOAL_12_CHANNELS_S
    if goal_met is not None:
        print(f"goal < {GOAL_12_CHANNELS_S:.0f} s for 12 channels: {'met' if goal_met else 'NOT met'}")
    versions = {}
    for package in ("pymc-marketing", "pymc", "pytensor", "numpyro", "jax", "arviz"):
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            pass
    errors = [r["ours"]["error"] for r in results if "error" in r["ours"]]
    path = write_results("mmm_fit", {
        "library_versions": versions,
        "goal": {"fit_seconds_12_channels_below": GOAL_12_CHANNELS_S}, "goal_met": goal_met,
        "baseline": "same model and settings sampled with PyMC's default NUTS (nuts_sampler='pymc')",
        "draws": draws, "tune": tune, "weeks": WEEKS, "results": results,
    }, quick=args.quick, figures=figures(results))
    print(f"results: {path}")
    if errors:  # a fit that crashed is a failed benchmark, not a figure
        raise SystemExit(f"fit failed: {errors[0]}")


if __name__ == "__main__":
    main()
