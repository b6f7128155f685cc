"""Every benchmark script runs at its tiny ``--quick`` size, so none of them rots.

No thresholds: a script passes when it exits 0 and writes its quick results (machine,
commit, figures) through ``bench.common.write_results`` -- to a tmp dir, never over the
committed ``bench/results``. Scripts that need Kafka / ClickHouse share one broker and one
server started for this module (``BENCH_KAFKA_BOOTSTRAP`` / ``BENCH_CLICKHOUSE_URL``): not
the session's, because the benchmarks publish on the real topic names and truncate tables.
The scripts (and the services and consumers they start) share one bytecode cache outside the
tree, so only the first of them compiles the libraries they import.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.__main__ import discover, needs_servers
from bench.common import CLICKHOUSE_ENV, KAFKA_ENV, REPO_ROOT, RESULTS_DIR_ENV

SCRIPTS = discover([])
SCRIPT_TIMEOUT_S = 240


def _param(script: Path) -> object:
    name = str(script.relative_to(REPO_ROOT / "bench"))
    marks = [pytest.mark.kafka, pytest.mark.clickhouse] if needs_servers(script) else []
    return pytest.param(script, id=name, marks=marks)


@pytest.fixture(scope="module")
def pycache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("bench-pycache")


@pytest.fixture(scope="module")
def bench_servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """One Kafka broker and one ClickHouse server for every script that needs them."""
    from pulse_testinfra.clickhouse import ClickHouseServer
    from pulse_testinfra.kafka import KafkaBroker

    root = tmp_path_factory.mktemp("bench-servers")
    with KafkaBroker(root / "kafka") as kafka, ClickHouseServer(root / "clickhouse") as ch:
        yield {KAFKA_ENV: kafka.bootstrap_servers, CLICKHOUSE_ENV: ch.url}


def test_every_benchmark_script_is_smoke_tested() -> None:
    assert len(SCRIPTS) >= 11, [str(s) for s in SCRIPTS]
    assert all('"--quick"' in s.read_text() for s in SCRIPTS), "every script takes --quick"


@pytest.mark.parametrize("script", [_param(s) for s in SCRIPTS])
def test_benchmark_runs_quick(script: Path, tmp_path: Path, pycache: Path,
                              request: pytest.FixtureRequest) -> None:
    # Without written bytecode every process compiles pymc, pandas, … from source again.
    drop = (KAFKA_ENV, CLICKHOUSE_ENV, "PYTHONDONTWRITEBYTECODE")
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env["PYTHONPYCACHEPREFIX"] = str(pycache)
    env[RESULTS_DIR_ENV] = str(tmp_path / "results")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH")) if p)
    if needs_servers(script):
        env.update(request.getfixturevalue("bench_servers"))
    done = subprocess.run([sys.executable, str(script), "--quick"], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=SCRIPT_TIMEOUT_S,
                          check=False)
    assert done.returncode == 0, (
        f"{script.name} --quick exited {done.returncode}\n--- stdout ---\n"
        f"{done.stdout[-3000:]}\n--- stderr ---\n{done.stderr[-5000:]}")

    written = sorted((tmp_path / "results").glob("*-quick-latest.json"))
    assert len(written) == 1, [p.name for p in written]
    result = json.loads(written[0].read_text())
    assert result["quick"] is True
    assert result["machine"]["cpu_count"] >= 1
    assert set(result["commit"]) >= {"sha", "dirty"}
    assert result["figures"], "a benchmark records at least one figure"
    for figure in result["figures"]:
        assert set(figure) >= {"figure", "value", "unit", "baseline", "ratio", "goal", "met"}
    # Nothing else: no full-run file a smoke run could pass off as figures of record.
    full = [p.name for p in (tmp_path / "results").glob("*-latest.json")
            if not p.name.endswith("-quick-latest.json")]
    assert full == []
