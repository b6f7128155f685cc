"""Every service starts with its container command (the console script) against the real
broker and ClickHouse server, answers /health and /metrics, and stops cleanly on SIGTERM."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

pytestmark = [pytest.mark.kafka, pytest.mark.clickhouse, pytest.mark.timeout(180)]

SERVICES = ("ingest", "attribution", "kpi", "alerts", "reporting")
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_every_service_serves_health_and_metrics(kafka_broker, clickhouse_server, server_store, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    processes: dict[str, tuple[subprocess.Popen[bytes], int, Path]] = {}
    base_env = {
        **os.environ,
        "PULSE_KAFKA_BOOTSTRAP": kafka_broker.bootstrap_servers,
        "PULSE_CLICKHOUSE_URL": clickhouse_server.url,
        "PULSE_INGEST_PII_SALT": "process-test-salt",
        "PULSE_REPORTING_OUTPUT_DIR": str(tmp_path / "reports"),
        "PULSE_REPORTING_CLICKHOUSE_USER": clickhouse_server.reader_user,
        "PULSE_REPORTING_CLICKHOUSE_PASSWORD": clickhouse_server.reader_password,
    }
    try:
        for name in SERVICES:
            port = free_port()
            log = tmp_path / f"{name}.log"
            env = {**base_env, f"PULSE_{name.upper()}_PORT": str(port), f"PULSE_{name.upper()}_HOST": "127.0.0.1"}
            processes[name] = (
                subprocess.Popen([str(BIN / f"pulse-{name}")], env=env, stdout=log.open("wb"),
                                 stderr=subprocess.STDOUT),
                port,
                log,
            )
        deadline = time.monotonic() + 90
        pending = set(SERVICES)
        while pending and time.monotonic() < deadline:
            for name in sorted(pending):
                process, port, log = processes[name]
                assert process.poll() is None, f"{name} exited:\n{log.read_text()[-3000:]}"
                try:
                    health = httpx.get(f"http://127.0.0.1:{port}/health", timeout=2)
                except httpx.TransportError:
                    continue
                if health.status_code == 200:
                    pending.discard(name)
            time.sleep(0.3)
        assert not pending, {n: processes[n][2].read_text()[-2000:] for n in pending}
        for name, (_process, port, _log) in processes.items():
            metrics = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5, follow_redirects=True)
            assert metrics.status_code == 200, name
            assert "# TYPE" in metrics.text and "pulse_" in metrics.text, name
    finally:
        for process, _port, _log in processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for name, (process, _port, log) in processes.items():
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                pytest.fail(f"{name} ignored SIGTERM:\n{log.read_text()[-2000:]}")
