"""End to end on the real Kafka broker and ClickHouse server, the service as its own OS
process: a KPI breach gives one alert on ``alerts.v1`` and one webhook call; the process
is killed (SIGKILL) while firing and restarted, and sends no duplicate."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import signal
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer

from pulse_shared.bus import Bus, make_broker
from pulse_shared.events import Grain, KpiSnapshot
from pulse_shared.topics import ALERTS, KPI_SNAPSHOTS, all_topic_names
from pulse_testinfra import free_port

pytestmark = [pytest.mark.kafka, pytest.mark.clickhouse, pytest.mark.timeout(240)]
VENV_BIN = Path(sys.executable).parent


async def eventually(check: Callable[[], Any], within: float = 60.0) -> Any:
    deadline = time.monotonic() + within
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.2)


class WebhookSink:
    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.port = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(
            int(line.split(":", 1)[1]) for line in head.decode().split("\r\n")
            if line.lower().startswith("content-length:")
        )
        self.bodies.append(json.loads(await reader.readexactly(length)))
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok")
        await writer.drain()
        writer.close()


@pytest.fixture
async def webhook() -> AsyncIterator[WebhookSink]:
    sink = WebhookSink()
    server = await asyncio.start_server(sink.handle, "127.0.0.1", 0)
    sink.port = server.sockets[0].getsockname()[1]
    yield sink
    server.close()
    await server.wait_closed()



class ServiceProcess:
    """``pulse-alerts`` (uvicorn, production wiring) as a child process."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.env = env
        self.log = log
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = await asyncio.create_subprocess_exec(
                str(VENV_BIN / "pulse-alerts"), env=self.env, stdout=out, stderr=out,
            )

    async def kill(self) -> None:
        if self.proc and self.proc.returncode is None:
            self.proc.send_signal(signal.SIGKILL)
            await self.proc.wait()

    async def terminate(self) -> None:
        if self.proc and self.proc.returncode is None:
            self.proc.terminate()
            try:
                await asyncio.wait_for(self.proc.wait(), 20)
            except TimeoutError:
                await self.kill()


async def test_breach_one_alert_one_webhook_and_no_duplicate_after_kill(
    kafka_broker: Any, clickhouse_server: Any, server_store: Any, webhook: WebhookSink,
    tmp_path: Path, isolated_consumer_groups: str,
) -> None:
    await kafka_broker.create_topics_async(all_topic_names())
    # A catalog KPI (the service refuses rules on unknown ones); the channel is unique.
    kpi, channel = "spend", f"e2e_{uuid.uuid4().hex[:8]}"
    rule = f"{channel}_high"
    rules_file = tmp_path / "rules.yaml"
    rules_file.write_text(
        f"rules:\n  - {{name: {rule}, type: threshold, kpi: {kpi}, grain: day,"
        f" channel: {channel}, op: above, threshold: 1000, severity: critical}}\n"
    )
    env = {
        **os.environ,
        "PULSE_KAFKA_BOOTSTRAP": kafka_broker.bootstrap_servers,
        "PULSE_CLICKHOUSE_URL": clickhouse_server.url,
        # The service refuses an empty (placeholder) ClickHouse password at start-up.
        "PULSE_CLICKHOUSE_USER": clickhouse_server.writer_user,
        "PULSE_CLICKHOUSE_PASSWORD": clickhouse_server.writer_password,
        "PULSE_ALERTS_RULES_FILE": str(rules_file),
        "PULSE_ALERTS_WEBHOOK_URL": f"http://127.0.0.1:{webhook.port}/hook",
        "PULSE_ALERTS_PORT": str(free_port()),
        "PULSE_ALERTS_TICK_INTERVAL_S": "1",
    }
    service = ServiceProcess(env, tmp_path / "alerts.log")
    tail = AIOKafkaConsumer(ALERTS.name, bootstrap_servers=kafka_broker.bootstrap_servers,
                            auto_offset_reset="earliest", group_id=None)
    alerts: list[dict[str, Any]] = []

    async def collect() -> None:
        async for record in tail:
            body = json.loads(record.value)
            if body["rule"] == rule:
                alerts.append(body)

    producer = make_broker(kafka_broker.bootstrap_servers, client_id="e2e-kpi")
    bus = Bus(producer, "kpi")
    # The data is today's: the service runs on the wall clock, and its timer resolves a
    # day-grain alert whose data is older than the rule's stale_after (2 days).
    computed = (dt.datetime.now(dt.UTC) - dt.timedelta(minutes=20)).replace(microsecond=0)
    day = computed.date()

    def snapshot(value: float, minutes: int) -> KpiSnapshot:
        return KpiSnapshot(
            kpi=kpi, grain=Grain.DAY, period=day.isoformat(), period_start=day,
            dimension="channel", dimension_value=channel, value=value, unit="USD",
            computed_at=computed + dt.timedelta(minutes=minutes),
        )

    def stored_value() -> float | None:
        rows = server_store.query(
            "SELECT value FROM alert_state FINAL WHERE rule = {r:String}", {"r": rule}
        )
        return rows[0]["value"] if rows else None

    await tail.start()
    collector = asyncio.create_task(collect())
    await producer.start()
    try:
        await service.start()
        await bus.publish(KPI_SNAPSHOTS, [snapshot(1500.0, 0)])
        await eventually(lambda: alerts and webhook.bodies, within=90)
        assert [a["state"] for a in alerts] == ["firing"]
        assert len(webhook.bodies) == 1
        assert webhook.bodies[0]["alerts"][0]["rule"] == rule
        assert "[CRITICAL]" in webhook.bodies[0]["attachments"][0]["title"]

        # Killed while firing (once the notification is recorded as fully delivered: a
        # kill between a webhook call and its record re-sends it, at-least-once); more
        # breaching data arrives while it is down.
        await eventually(lambda: server_store.query_value(
            "SELECT min(delivered) FROM alert_events FINAL WHERE rule = {r:String}",
            {"r": rule}) == 2, within=30)
        await service.kill()
        await bus.publish(KPI_SNAPSHOTS, [snapshot(1800.0, 5)])
        await service.start()
        await eventually(lambda: stored_value() == 1800.0, within=90)  # it consumed again
        await asyncio.sleep(2.5)  # a few timer ticks (1 s) too
        assert [a["state"] for a in alerts] == ["firing"]
        assert len(webhook.bodies) == 1

        # And it still resolves, once.
        await bus.publish(KPI_SNAPSHOTS, [snapshot(200.0, 10)])
        await eventually(lambda: len(alerts) == 2, within=60)
        assert [a["state"] for a in alerts] == ["firing", "resolved"]
        await eventually(lambda: len(webhook.bodies) == 2, within=30)
    finally:
        await service.terminate()
        collector.cancel()
        await tail.stop()
        await producer.stop()
