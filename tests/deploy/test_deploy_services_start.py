"""Every service starts with its container command (the console script the image's CMD
resolves to) outside Docker, against the real Kafka broker and ClickHouse server, with the
environment the compose file gives it, and answers /health and /metrics."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from deploy_support import SERVICES, compose, container_command, service_image

from pulse_testinfra import free_port

STARTUP_TIMEOUT_S = 120.0


def local_command(svc: str) -> list[str]:
    """The image's command, run from this venv (the console scripts are installed here)."""
    argv = container_command(service_image(svc))
    script = Path(sys.executable).parent / argv[0]
    assert script.exists(), f"console script {argv[0]} is not installed in the venv"
    return [str(script), *argv[1:]]


def service_env(svc: str, port: int, kafka: Any, clickhouse: Any, tmp: Path) -> dict[str, str]:
    """The compose environment, with addresses and secrets of the test servers."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PULSE_")}
    # The image's own settings (e.g. PULSE_<svc>_HOST=0.0.0.0; services default to loopback).
    env.update({k: v for k, v in service_image(svc).env().items()
                if k.upper().startswith("PULSE_") and not k.startswith("PULSE_IMAGE_")
                and k != "PULSE_DATA_DIR"})
    for key, value in compose()["services"][svc]["environment"].items():
        if not str(value).startswith("${"):
            env[key] = str(value)
    env.update(
        PULSE_KAFKA_BOOTSTRAP=kafka.bootstrap_servers,
        # The compose broker speaks SASL (tests/test_kafka_security.py); the test broker
        # is plaintext.
        PULSE_KAFKA_SECURITY_PROTOCOL="PLAINTEXT",
        PULSE_CLICKHOUSE_URL=clickhouse.url,
        PULSE_CLICKHOUSE_USER=clickhouse.writer_user,
        PULSE_CLICKHOUSE_PASSWORD=clickhouse.writer_password,
        PULSE_CLICKHOUSE_DATABASE="default",
        PULSE_DATA_DIR=str(tmp / "data"),
        PULSE_LOG_LEVEL="INFO",
    )
    env[f"PULSE_{svc.upper()}_PORT"] = str(port)
    if svc == "ingest":
        env["PULSE_INGEST_PII_SALT"] = "deploy-test-salt"
        env["PULSE_INGEST_API_KEYS"] = "[]"
        env["PULSE_INGEST_AUTH_REQUIRED"] = "true"
    if svc == "alerts":
        env["PULSE_ALERTS_EMAIL_TO"] = "[]"
        for key in ("WEBHOOK_URL", "SMTP_HOST", "SMTP_USER", "SMTP_PASSWORD"):
            env[f"PULSE_ALERTS_{key}"] = ""
        env["PULSE_ALERTS_SMTP_PORT"] = "25"
    if svc == "reporting":
        env["PULSE_REPORTING_OUTPUT_DIR"] = str(tmp / "reports")
        env["PULSE_REPORTING_CLICKHOUSE_USER"] = clickhouse.reader_user
        env["PULSE_REPORTING_CLICKHOUSE_PASSWORD"] = clickhouse.reader_password
    return env


def listen_addresses(port: int) -> set[str]:
    """Local addresses of LISTEN sockets on ``port`` (Linux /proc/net/tcp{,6})."""
    found: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            local, state = line.split()[1], line.split()[3]
            address, _, hex_port = local.partition(":")
            if state == "0A" and int(hex_port, 16) == port:
                found.add(address)
    return found


@pytest.fixture(scope="module")
def topics(kafka_broker: Any) -> None:
    """What the compose kafka-init job does: every registry topic and its DLQ."""
    from pulse_shared.topics import all_topic_names

    kafka_broker.create_topics(all_topic_names(), partitions=3)


@pytest.mark.kafka
@pytest.mark.clickhouse
@pytest.mark.parametrize("svc", SERVICES)
def test_service_starts_and_answers_health_and_metrics(
    svc: str, kafka_broker: Any, clickhouse_server: Any, server_store: Any, topics: None,
    tmp_path: Path,
) -> None:
    port = free_port()
    log_path = tmp_path / f"{svc}.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            local_command(svc),
            env=service_env(svc, port, kafka_broker, clickhouse_server, tmp_path),
            cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        health: httpx.Response | None = None
        with httpx.Client(timeout=5.0) as http:
            while time.monotonic() < deadline:
                if proc.poll() is not None:
                    pytest.fail(f"pulse-{svc} exited with {proc.returncode}:\n"
                                f"{log_path.read_text()[-4000:]}")
                try:
                    health = http.get(f"{base}/health")
                except httpx.HTTPError:
                    time.sleep(0.25)
                    continue
                if health.status_code == 200:
                    break
                time.sleep(0.25)
            assert health is not None and health.status_code == 200, (
                f"pulse-{svc} not healthy after {STARTUP_TIMEOUT_S}s: "
                f"{health.text if health is not None else 'no answer'}\n"
                f"{log_path.read_text()[-4000:]}"
            )
            body = health.json()
            assert body["status"] == "ok"
            assert all(body["checks"].values()), body
            # Prometheus and kubelet probes follow redirects (ingest mounts /metrics/).
            metrics = http.get(f"{base}/metrics", follow_redirects=True)
            assert metrics.status_code == 200
            assert "text/plain" in metrics.headers["content-type"]
            assert "pulse_" in metrics.text
        # In a container the port must be reachable from other containers: bound to all
        # interfaces (0.0.0.0 or ::), not to loopback only.
        if Path("/proc/net/tcp").exists():
            addresses = listen_addresses(port)
            assert addresses & {"00000000", "00000000000000000000000000000000"}, addresses
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
    # A graceful stop (what `docker stop` sends) ends the process cleanly.
    assert proc.returncode in (0, -signal.SIGTERM), log_path.read_text()[-4000:]
