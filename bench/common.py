"""Helpers shared by the benchmark runner and the pipeline benchmark.

- :func:`machine` describes the machine (CPU count and model, memory, Python, package and
  server versions) so a result file says where it was measured; :func:`commit` says which
  commit was measured (and whether the work tree differed from it).
- :func:`figure` is one headline figure with its baseline, ratio and goal;
  :func:`write_results` stores a benchmark's figures as JSON under ``bench/results/`` (every
  benchmark writes through it; ``bench/table.py`` renders the README table from them).
- :func:`shared_servers` reads the Kafka broker / ClickHouse server a caller asks the
  benchmarks to reuse (``BENCH_KAFKA_BOOTSTRAP`` / ``BENCH_CLICKHOUSE_URL``).
- :func:`table` formats rows as a plain-text table; :func:`ratio` formats "x vs baseline".
- :func:`peak_rss_mb` / :func:`rss_mb` read a process's memory from ``/proc``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import importlib.metadata
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
RESULTS_DIR = BENCH_DIR / "results"
#: Where results go instead of ``bench/results/`` (the CI smoke test writes to a tmp dir).
RESULTS_DIR_ENV = "BENCH_RESULTS_DIR"
#: A running Kafka broker / ClickHouse server (testinfra users) for the benchmarks to use
#: instead of starting their own: the smoke test starts one of each for every script.
KAFKA_ENV = "BENCH_KAFKA_BOOTSTRAP"
CLICKHOUSE_ENV = "BENCH_CLICKHOUSE_URL"

_PACKAGES = (
    "faststream", "aiokafka", "clickhouse-connect", "chdb", "pydantic", "pydantic-core",
    "orjson", "fastapi", "uvicorn",
)


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_gb() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return None


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def percentiles(values: Sequence[float]) -> dict[str, float | None]:
    """p50/p95/p99 (inclusive quantiles), max and mean of ``values``, in their unit."""
    if not values:
        return {"p50": None, "p95": None, "p99": None, "max": None, "mean": None}
    if len(values) == 1:
        v = float(values[0])
        return {"p50": v, "p95": v, "p99": v, "max": v, "mean": v}
    qs = statistics.quantiles(values, n=100, method="inclusive")
    return {"p50": qs[49], "p95": qs[94], "p99": qs[98], "max": max(values),
            "mean": statistics.fmean(values)}


def usable_cores() -> int:
    """CPUs this process may run on (its affinity), else the machine's count."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def machine() -> dict[str, Any]:
    """Where the figures were measured."""
    info: dict[str, Any] = {
        "hostname": platform.node(),
        "cpu_count": os.cpu_count(),
        "cpu_affinity": usable_cores(),
        "cpu_model": _cpu_model(),
        "memory_gb": _memory_gb(),
        "load_average": [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None,
        "os": platform.platform(),
        "python": sys.version.split()[0],
        "versions": {p: v for p in _PACKAGES if (v := _version(p))},
    }
    try:
        from pulse_testinfra.kafka import kafka_version

        info["versions"]["kafka"] = kafka_version()
    except Exception:
        pass
    return info


def pulse_script() -> str:
    """The venv's ``pulse`` entry point (next to this interpreter)."""
    beside = Path(sys.executable).parent / "pulse"
    if beside.exists():
        return str(beside)
    found = shutil.which("pulse")
    if found is None:
        raise SystemExit("no `pulse` console script: run `make bootstrap` (uv sync) first")
    return found


def results_dir() -> Path:
    """``$BENCH_RESULTS_DIR`` when set, else ``bench/results/``."""
    return Path(os.environ.get(RESULTS_DIR_ENV) or RESULTS_DIR)


def shared_servers() -> tuple[str | None, str | None]:
    """(Kafka bootstrap, ClickHouse URL) to reuse, from the environment (None: start one)."""
    return os.environ.get(KAFKA_ENV) or None, os.environ.get(CLICKHOUSE_ENV) or None


@dataclasses.dataclass(frozen=True)
class Kafka:
    """A broker for a benchmark: its address and, when this process started it, its pid."""

    bootstrap_servers: str
    pid: int | None = None

    def create_topics(self, names: Iterable[str], partitions: int = 3) -> None:
        """Create the topics that do not exist yet and wait until they have leaders."""
        from pulse_testinfra.kafka import KafkaBroker

        # The testinfra helper only needs the address, so it serves a shared broker too.
        names = list(names)
        asyncio.run(KafkaBroker.create_topics_async(self, names, partitions))  # type: ignore[arg-type]


@dataclasses.dataclass(frozen=True)
class ClickHouse:
    """A ClickHouse server for a benchmark, with testinfra's users."""

    url: str
    pid: int | None = None
    writer_user: str = "pulse_writer"
    writer_password: str = "pulse-writer-pw"
    reader_user: str = "pulse_reader"
    reader_password: str = "pulse-reader-pw"


@contextlib.contextmanager
def kafka_broker(workdir: Path | None = None, **options: Any) -> Iterator[Kafka]:
    """``$BENCH_KAFKA_BOOTSTRAP`` when set (left running), else a fresh testinfra broker
    (``options`` go to :class:`pulse_testinfra.kafka.KafkaBroker`), stopped afterwards."""
    shared = shared_servers()[0]
    if shared:
        yield Kafka(shared)
        return
    from pulse_testinfra.kafka import KafkaBroker

    with KafkaBroker(workdir, **options) as broker:
        yield Kafka(broker.bootstrap_servers, broker.pid)


@contextlib.contextmanager
def clickhouse_server(workdir: Path | None = None) -> Iterator[ClickHouse]:
    """``$BENCH_CLICKHOUSE_URL`` when set (a testinfra server, left running), else a fresh
    testinfra server, stopped afterwards."""
    shared = shared_servers()[1]
    if shared:
        yield ClickHouse(shared)
        return
    from pulse_testinfra.clickhouse import ClickHouseServer

    with ClickHouseServer(workdir) as server:
        yield ClickHouse(server.url, server.pid, server.writer_user, server.writer_password,
                         server.reader_user, server.reader_password)


# Changes here are results or generated from them, not the code that was measured.
_NOT_MEASURED = (":(exclude)bench/results", ":(exclude)README.md")


def commit(root: Path = REPO_ROOT) -> dict[str, Any]:
    """The commit measured: ``sha`` (HEAD) and ``dirty`` (tracked or untracked changes
    outside bench/results and README.md); both None when ``root`` is not a git checkout."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True,
                              check=True, timeout=30).stdout.strip()

    try:
        sha = git("rev-parse", "HEAD")
        changed = git("status", "--porcelain", "--", ".", *_NOT_MEASURED)
    except (OSError, subprocess.SubprocessError):
        return {"sha": None, "dirty": None}
    return {"sha": sha, "dirty": bool(changed)}


def figure(
    name: str,
    value: float | None,
    unit: str,
    *,
    baseline: float | None = None,
    baseline_is: str | None = None,
    goal: str | None = None,
    met: bool | None = None,
) -> dict[str, Any]:
    """One headline figure: its value, the baseline measured in the same run (what it is),
    value/baseline, and the goal in words with whether it was met (None: no goal)."""
    return {
        "figure": name,
        "value": value,
        "unit": unit,
        "baseline": baseline,
        "baseline_is": baseline_is,
        # Four significant digits, not decimals: a 0.0107x ratio keeps its precision.
        "ratio": (float(f"{value / baseline:.4g}")
                  if value is not None and baseline not in (None, 0) else None),
        "goal": goal,
        "met": met,
    }


def write_results(
    name: str,
    data: Mapping[str, Any],
    *,
    quick: bool,
    figures: Sequence[Mapping[str, Any]] = (),
    directory: Path | None = None,
) -> Path:
    """Write ``{name}-{utc stamp}.json`` and ``{name}-latest.json`` with the machine, the
    commit measured, ``quick`` and ``figures`` (see :func:`figure`); return the first.

    A ``quick`` run writes ``{name}-quick-…`` files instead, so a smoke run never replaces
    the full-size figures that the README table is generated from."""
    directory = directory or results_dir()
    directory.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    header = {"name": name, "written_at": stamp, "quick": quick, "commit": commit(),
              "machine": machine(), "figures": list(figures)}
    if clash := sorted(set(header) & set(data)):
        raise ValueError(f"write_results sets {', '.join(clash)} itself")
    payload = {**header, **data}
    text = json.dumps(payload, indent=2, default=str, sort_keys=False) + "\n"
    base = f"{name}-quick" if quick else name
    path = directory / f"{base}-{stamp}.json"
    for target in (path, directory / f"{base}-latest.json"):
        tmp = target.with_suffix(".tmp")
        tmp.write_text(text)
        tmp.replace(target)
    return path


def ratio(value: float | None, baseline: float | None, *, lower_is_better: bool = False) -> str:
    """``"0.62x raw"``-style ratio text ('' when either side is missing)."""
    if value is None or baseline in (None, 0):
        return ""
    assert baseline is not None
    return f"{value / baseline:.2f}x"


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A plain-text table with left-aligned text and right-aligned numbers."""
    body = [[_cell(v) for v in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in body:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))
    numeric = [
        all(_is_number(row[i]) for row in body if i < len(row) and row[i]) for i in range(len(headers))
    ]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            c.rjust(widths[i]) if numeric[i] else c.ljust(widths[i]) for i, c in enumerate(cells)
        ).rstrip()

    out = [line(headers), "  ".join("-" * w for w in widths)]
    out.extend(line(row) for row in body)
    return "\n".join(out)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if abs(value) >= 1000:
            return f"{value:,.0f}"
        if abs(value) >= 10:
            return f"{value:.1f}"
        return f"{value:.3g}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def _is_number(text: str) -> bool:
    try:
        float(text.replace(",", "").rstrip("x%"))
    except ValueError:
        return False
    return True


def _proc_status_kb(pid: int | str, field: str) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


def peak_rss_mb(pid: int | str = "self") -> float | None:
    """Peak resident set size (VmHWM) of a live process, in MiB."""
    kb = _proc_status_kb(pid, "VmHWM")
    return None if kb is None else round(kb / 1024, 1)


def cpu_seconds(pid: int | str = "self") -> float | None:
    """CPU time (user + system, all threads) a live process has used so far, in seconds."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def rss_mb(pid: int | str = "self") -> float | None:
    """Current resident set size (VmRSS), in MiB."""
    kb = _proc_status_kb(pid, "VmRSS")
    return None if kb is None else round(kb / 1024, 1)


async def wait_healthy(name: str, port: int, proc: Any, log: Any, deadline: float) -> None:
    """Poll ``http://127.0.0.1:{port}/health`` until 200; fail if ``proc`` exits or
    ``deadline`` (``time.monotonic()``) passes. ``log`` is named in the error."""
    import httpx

    async with httpx.AsyncClient() as client:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited; see {log}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name} not healthy in time; see {log}")
            try:
                if (await client.get(f"http://127.0.0.1:{port}/health")).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.2)


def run_tag(index: int, rate: int) -> str:
    """The tag of a measured run: ids are "<kind>-<tag>-<n>", so the tag ends in a letter.
    A tag like "1-10000" made every id a 9+ digit run of grouped digits ("1-10000-123456"),
    which the privacy check must hand to the phone-number matcher (~30-50 µs each; client
    ids such as UUIDs take that path ~13 % of the time, content-hash ids never)."""
    return f"r{index}at{rate}n"
