"""Markov order 1 on ~200k unique paths (~2M journeys): Pulse vs ChannelAttribution.

    .venv/bin/python bench/attribution/bench_markov.py [--paths FILE] [--order 1] [--skip-ca]
    .venv/bin/python bench/attribution/bench_markov.py --quick   # 20k journeys, Pulse only, once

Steps (each tool runs in its own fresh process so peak memory is comparable):

1. make the path file with ``make_paths.py`` if it does not exist
   (``.cache/bench-attribution/paths.csv``: 2M simulated journeys → ~220k unique paths);
2. Pulse: ``pulse_attribution`` reads the file and solves the absorbing chain exactly;
3. ChannelAttribution: installed *only here*, into its own venv under
   ``.cache/bench-attribution/ca-venv`` (``channelattribution`` + ``matplotlib``, which it
   imports), never into the project; ``markov_model(order=1, ncore=1, out_more=True)``;
4. exactness: Pulse's removal effects against an independent dense solution (transition
   counts with ``collections.Counter``, ``numpy.linalg.solve``) and against
   ChannelAttribution's simulated estimate.

Prints wall time, model time and peak RSS side by side with ratios, and writes
``bench/results/attribution_markov-*.json``.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
WORK = REPO / ".cache" / "bench-attribution"
DEFAULT_PATHS = WORK / "paths.csv"
CA_VENV = WORK / "ca-venv"
CA_PACKAGES = ["channelattribution", "matplotlib"]


# -- children (run in their own process) ------------------------------------------------


def _peak_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _cpu() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def child_pulse(path: str, order: int) -> dict[str, Any]:
    started = time.perf_counter()
    from pulse_attribution.domain.markov import markov_model
    from pulse_attribution.pathfile import read_path_file

    imported, cpu0 = time.perf_counter(), _cpu()
    table = read_path_file(path)
    read = time.perf_counter()
    result = markov_model(table, order)
    done, cpu1 = time.perf_counter(), _cpu()
    return {
        "cpu_read_model_s": cpu1 - cpu0,
        "import_s": imported - started,
        "read_s": read - imported,
        "model_s": done - read,
        "peak_rss_mb": _peak_rss_mb(),
        "unique_paths": table.n_paths,
        "journeys": float(table.conversions.sum() + table.nulls.sum()),
        "conversions": float(table.conversions.sum()),
        "states": result.n_states,
        "channels": {
            c: {
                "removal_effect": float(result.removal_effects[i]),
                "total_conversions": float(result.credit.conversions[i]),
                "total_conversion_value": float(result.credit.values[i]),
            }
            for i, c in enumerate(result.channels)
        },
    }


def child_ca(path: str, order: int) -> dict[str, Any]:
    started = time.perf_counter()
    import contextlib
    import io

    import pandas as pd

    with contextlib.redirect_stdout(io.StringIO()):
        import ChannelAttribution as ca  # type: ignore[import-not-found]
    imported, cpu0 = time.perf_counter(), _cpu()
    with open(path) as handle:
        sep = ";" if handle.readline().count(";") else ","
    frame = pd.read_csv(path, sep=sep)
    read, cpu_read = time.perf_counter(), _cpu()
    with contextlib.redirect_stdout(io.StringIO()):
        out = ca.markov_model(
            frame, "path", "total_conversions", var_value="total_conversion_value",
            var_null="total_null", order=order, sep=">", ncore=1, out_more=True,
            verbose=False, flg_pro=False,
        )
    done, cpu1 = time.perf_counter(), _cpu()
    result = out["result"]
    effects = out["removal_effects"]
    re_col = [c for c in effects.columns if c != "channel_name"][0]
    re_by = dict(zip(effects["channel_name"], effects[re_col], strict=True))
    return {
        "cpu_read_model_s": cpu1 - cpu0,
        "cpu_model_s": cpu1 - cpu_read,
        "import_s": imported - started,
        "read_s": read - imported,
        "model_s": done - read,
        "peak_rss_mb": _peak_rss_mb(),
        "channels": {
            str(row.channel_name).strip(): {
                "removal_effect": float(re_by[row.channel_name]),
                "total_conversions": float(row.total_conversions),
                "total_conversion_value": float(row.total_conversion_value),
            }
            for row in result.itertuples()
        },
    }


# -- parent -------------------------------------------------------------------------------


def best_of(python: str, tool: str, path: Path, order: int, repeat: int) -> dict[str, Any]:
    """Best (minimum) times over ``repeat`` fresh processes; peak memory is the maximum."""
    runs = [run_child(python, tool, path, order) for _ in range(repeat)]
    best = dict(runs[0])
    for key in ("wall_s", "import_s", "read_s", "model_s", "cpu_read_model_s"):
        best[key] = min(r[key] for r in runs)
    best["peak_rss_mb"] = max(r["peak_rss_mb"] for r in runs)
    best["runs"] = [
        {k: r[k] for k in ("wall_s", "read_s", "model_s", "cpu_read_model_s", "peak_rss_mb")}
        for r in runs
    ]
    return best


def run_child(python: str, tool: str, path: Path, order: int) -> dict[str, Any]:
    started = time.perf_counter()
    proc = subprocess.run(
        [python, str(Path(__file__).resolve()), "--child", tool, str(path), "--order", str(order)],
        capture_output=True, text=True, check=False, cwd=REPO,
    )
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"{tool} failed:\n{proc.stderr[-3000:]}")
    data: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    data["wall_s"] = wall
    return data


def run_cli(path: Path, order: int, repeat: int) -> dict[str, Any]:
    """``pulse attribution paths FILE --model markov --output OUT`` as users run it.

    Each run is a fresh process, timed from spawn to exit (start-up, read, model, write);
    CPU is the child's user + system time. Best wall and best CPU over ``repeat`` runs;
    removal effects are read back from the written CSV.
    """
    import csv
    import resource
    import tempfile

    pulse = Path(sys.executable).with_name("pulse")
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "markov.csv"
        for _ in range(repeat):
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            started = time.perf_counter()
            proc = subprocess.run(
                [str(pulse), "attribution", "paths", str(path), "--model", "markov",
                 "--order", str(order), "--format", "csv", "--output", str(out)],
                capture_output=True, text=True, check=False, cwd=REPO,
            )
            wall = time.perf_counter() - started
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            if proc.returncode != 0:
                raise RuntimeError(f"pulse attribution paths failed:\n{proc.stderr[-3000:]}")
            cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
            runs.append({"wall_s": wall, "cpu_s": cpu, "peak_rss_mb": after.ru_maxrss / 1024})
        with open(out, newline="") as handle:
            effects = {row["channel_name"]: float(row["removal_effect"])
                       for row in csv.DictReader(handle)}
    return {
        "wall_s": min(r["wall_s"] for r in runs),
        "cpu_s": min(r["cpu_s"] for r in runs),
        "peak_rss_mb": max(r["peak_rss_mb"] for r in runs),
        "runs": runs,
        "removal_effects": effects,
    }


def ensure_paths(path: Path, journeys: int | None = None) -> None:
    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    size = [] if journeys is None else ["--journeys", str(journeys)]
    subprocess.run([sys.executable, str(HERE / "make_paths.py"), str(path), *size], check=True)


def figures(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """Pulse against ChannelAttribution (None when it was skipped or failed)."""
    from bench.common import figure

    pulse, ca = summary["pulse"], summary.get("channelattribution") or {}
    paths = f"{summary['unique_paths']:,} unique paths"
    baseline_is = "ChannelAttribution markov_model (simulated)"

    def read_model(d: dict[str, Any], key: str = "") -> float | None:
        if not d:
            return None
        return d["cpu_read_model_s"] if key == "cpu" else d["read_s"] + d["model_s"]

    cli = summary.get("cli")  # older results did not run the CLI
    end_to_end = [] if not cli else [figure(
        f"`pulse attribution paths --model markov`, {paths}: end to end", cli["wall_s"], "s",
        baseline=ca.get("model_s"), baseline_is="ChannelAttribution markov_model call alone",
        goal="<= 1x baseline",
        met=(cli["wall_s"] <= ca["model_s"]) if ca.get("model_s") else None)]
    exact = summary["dense_reference_max_abs_error_removal_effect"]
    return [
        *end_to_end,
        figure(f"Markov order {summary['order']}, {paths}: read + model CPU time",
               read_model(pulse, "cpu"), "s", baseline=read_model(ca, "cpu"),
               baseline_is=baseline_is),
        figure(f"Markov order {summary['order']}, {paths}: model time", pulse["model_s"], "s",
               baseline=ca.get("model_s"), baseline_is=baseline_is),
        figure(f"Markov order {summary['order']}, {paths}: peak RSS", pulse["peak_rss_mb"],
               "MB", baseline=ca.get("peak_rss_mb"), baseline_is=baseline_is),
        figure(f"Markov order {summary['order']}: max |removal effect − exact dense solve|",
               exact, "abs", goal="<= 1e-6", met=exact <= 1e-6),
    ]


def install_ca() -> tuple[str | None, str]:
    """The ChannelAttribution venv's python, or None and the reason it failed."""
    python = CA_VENV / "bin" / "python"
    probe = [str(python), "-c", "import contextlib,io\nwith contextlib.redirect_stdout(io.StringIO()):\n import ChannelAttribution"]
    if python.exists() and subprocess.run(probe, capture_output=True, check=False).returncode == 0:
        return str(python), "cached venv"
    uv = shutil.which("uv")
    try:
        if uv:
            subprocess.run([uv, "venv", "-q", "--python", "3.11", str(CA_VENV)], check=True)
            subprocess.run(
                [uv, "pip", "install", "-q", "--python", str(python), *CA_PACKAGES], check=True
            )
        else:
            subprocess.run([sys.executable, "-m", "venv", str(CA_VENV)], check=True)
            subprocess.run([str(python), "-m", "pip", "install", "-q", *CA_PACKAGES], check=True)
    except subprocess.CalledProcessError as exc:
        return None, f"install failed: {exc}"
    check = subprocess.run(probe, capture_output=True, text=True, check=False)
    if check.returncode != 0:
        return None, f"import failed: {check.stderr[-500:]}"
    return str(python), "installed"


def dense_reference(path: Path, order: int) -> dict[str, float]:
    """Removal effects from an independent implementation (Counter + dense numpy)."""
    import numpy as np

    counts: collections.Counter[tuple[Any, Any]] = collections.Counter()
    with open(path) as handle:
        sep = ";" if handle.readline().count(";") else ","
        for line in handle:
            p, c, _v, n = line.rstrip("\n").split(sep)
            conv, null = float(c), float(n)
            if conv + null == 0:
                continue
            chans = [x.strip() for x in p.split(">")]
            states = [tuple(chans[max(0, i - order + 1) : i + 1]) for i in range(len(chans))]
            counts[("START", states[0])] += conv + null
            for a, b in zip(states, states[1:], strict=False):
                counts[(a, b)] += conv + null
            counts[(states[-1], "CONV")] += conv
            counts[(states[-1], "NULL")] += null
    totals: collections.Counter[Any] = collections.Counter()
    for (a, _), w in counts.items():
        totals[a] += w
    transient = sorted({a for a, _ in counts} - {"START"}, key=str) + ["START"]
    channels = sorted({ch for s in transient if s != "START" for ch in s})

    def p_conv(removed: str | None) -> float:
        kept = [s for s in transient if s == "START" or removed not in s]
        idx = {s: i for i, s in enumerate(kept)}
        q = np.zeros((len(kept), len(kept)))
        r = np.zeros(len(kept))
        for (a, b), w in counts.items():
            if a in idx:
                if b == "CONV":
                    r[idx[a]] += w / totals[a]
                elif b in idx:
                    q[idx[a], idx[b]] += w / totals[a]
        return float(np.linalg.solve(np.eye(len(kept)) - q, r)[idx["START"]])

    base = p_conv(None)
    return {c: max(0.0, 1.0 - p_conv(c) / base) for c in channels}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="20k journeys in a temp file, Pulse only, 1 process (smoke test)")
    parser.add_argument("--paths", type=Path, default=None, help=f"default {DEFAULT_PATHS}")
    parser.add_argument("--order", type=int, default=1)
    parser.add_argument("--skip-ca", action="store_true")
    parser.add_argument("--repeat", type=int, default=None,
                        help="Fresh processes per tool (default 3).")
    parser.add_argument("--child", choices=["pulse", "ca"])
    parser.add_argument("child_path", nargs="?")
    args = parser.parse_args()
    if args.child:
        fn = child_pulse if args.child == "pulse" else child_ca
        print(json.dumps(fn(args.child_path, args.order)))
        return

    sys.path.insert(0, str(REPO))
    import tempfile

    from bench.common import ratio, table, write_results

    if args.quick:
        args.skip_ca = True  # its install needs the network; not for a smoke test
        args.paths = args.paths or Path(tempfile.mkdtemp(prefix="pulse-bench-markov-")) / "paths.csv"
    args.paths = args.paths or DEFAULT_PATHS
    args.repeat = args.repeat or (1 if args.quick else 3)
    ensure_paths(args.paths, 20_000 if args.quick else None)
    print(f"path file: {args.paths} ({args.paths.stat().st_size / 1e6:.1f} MB)", flush=True)
    pulse = best_of(sys.executable, "pulse", args.paths, args.order, args.repeat)
    print(
        f"pulse: {pulse['unique_paths']:,} unique paths, {pulse['journeys']:,.0f} journeys, "
        f"{pulse['states']} states", flush=True,
    )
    cli = run_cli(args.paths, args.order, args.repeat)
    print(f"pulse attribution paths (CLI, end to end): best {cli['wall_s']:.3f} s wall, "
          f"{cli['cpu_s']:.3f} s CPU", flush=True)
    ca: dict[str, Any] | None = None
    ca_note = "skipped"
    if not args.skip_ca:
        ca_python, ca_note = install_ca()
        if ca_python:
            try:
                ca = best_of(ca_python, "ca", args.paths, args.order, args.repeat)
            except RuntimeError as exc:
                ca_note = str(exc)
    print(f"ChannelAttribution: {ca_note}", flush=True)

    started = time.perf_counter()
    reference = dense_reference(args.paths, args.order)
    ref_s = time.perf_counter() - started
    max_err_ref = max(
        abs(pulse["channels"][c]["removal_effect"] - reference[c]) for c in reference
    )
    max_err_cli = max(abs(cli["removal_effects"][c] - reference[c]) for c in reference)

    rows = []
    for name, data in (("pulse (exact)", pulse), ("ChannelAttribution (simulated)", ca)):
        if data is None:
            continue
        rows.append([
            name, round(data["wall_s"], 3), round(data["read_s"], 3),
            round(data["model_s"], 3), round(data["read_s"] + data["model_s"], 3),
            round(data["cpu_read_model_s"], 3), round(data["peak_rss_mb"], 1),
        ])
    print(f"\nbest of {args.repeat} fresh processes per tool (load average {os.getloadavg()[0]:.1f})")
    print(table(["tool", "process wall s", "read s", "model s", "read+model s", "read+model CPU s",
                 "peak RSS MB"], rows))
    summary: dict[str, Any] = {
        "paths_file": str(args.paths),
        "order": args.order,
        "repeat": args.repeat,
        "unique_paths": pulse["unique_paths"],
        "journeys": pulse["journeys"],
        "pulse": pulse,
        "channelattribution": ca,
        "channelattribution_note": ca_note,
        "cli": cli,
        "dense_reference_max_abs_error_removal_effect": max_err_ref,
        "cli_max_abs_error_removal_effect": max_err_cli,
        "dense_reference_seconds": ref_s,
    }
    print(f"\nexactness: max |RE_pulse - RE_dense| = {max_err_ref:.2e} over {len(reference)} channels"
          f" (CLI output file: {max_err_cli:.2e}; goal <= 1e-6)")
    if ca is not None:
        common = sorted(set(pulse["channels"]) & set(ca["channels"]))
        total = pulse["conversions"]
        re_err = max(abs(pulse["channels"][c]["removal_effect"] - ca["channels"][c]["removal_effect"]) for c in common)
        share_err = max(
            abs(pulse["channels"][c]["total_conversions"] - ca["channels"][c]["total_conversions"]) / total
            for c in common
        )
        ratios = {
            "model_time": pulse["model_s"] / ca["model_s"],
            "read_plus_model_time": (pulse["read_s"] + pulse["model_s"]) / (ca["read_s"] + ca["model_s"]),
            "process_wall_time": pulse["wall_s"] / ca["wall_s"],
            "read_plus_model_cpu": pulse["cpu_read_model_s"] / ca["cpu_read_model_s"],
            "peak_rss": pulse["peak_rss_mb"] / ca["peak_rss_mb"],
            # The goal: the whole CLI run <= ChannelAttribution's markov_model call.
            "cli_end_to_end_over_ca_markov_model": cli["wall_s"] / ca["model_s"],
            "cli_cpu_over_ca_markov_model_cpu": cli["cpu_s"] / ca["cpu_model_s"],
        }
        summary.update({
            "ratios_pulse_over_ca": ratios,
            "max_abs_diff_removal_effect_vs_ca": re_err,
            "max_abs_diff_conversion_share_vs_ca": share_err,
        })
        print(
            f"goal: pulse CLI end to end {cli['wall_s']:.3f} s vs ChannelAttribution "
            f"markov_model {ca['model_s']:.3f} s = "
            f"{ratio(cli['wall_s'], ca['model_s'])} (goal <= 1.00x); CPU "
            f"{ratio(cli['cpu_s'], ca['cpu_model_s'])}"
        )
        print(
            "ratios pulse/ChannelAttribution: "
            f"model time {ratio(pulse['model_s'], ca['model_s'])}, "
            f"read+model {ratio(pulse['read_s'] + pulse['model_s'], ca['read_s'] + ca['model_s'])}, "
            f"read+model CPU {ratio(pulse['cpu_read_model_s'], ca['cpu_read_model_s'])}, "
            f"process wall {ratio(pulse['wall_s'], ca['wall_s'])}, "
            f"peak RSS {ratio(pulse['peak_rss_mb'], ca['peak_rss_mb'])}"
        )
        print(
            f"vs ChannelAttribution's simulation: max |ΔRE| = {re_err:.4f}, "
            f"max |Δ conversion share| = {share_err:.4%}"
        )
        print()
        print(table(
            ["channel", "RE pulse", "RE CA", "conv pulse", "conv CA"],
            [[c, pulse["channels"][c]["removal_effect"], ca["channels"][c]["removal_effect"],
              pulse["channels"][c]["total_conversions"], ca["channels"][c]["total_conversions"]]
             for c in common],
        ))
    out = write_results("attribution_markov", summary, quick=args.quick,
                        figures=figures(summary))
    print(f"\nresults: {out}")


if __name__ == "__main__":
    main()
