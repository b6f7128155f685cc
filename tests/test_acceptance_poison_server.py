"""Issue 14's server-mode acceptance, as a user of the deployed services sees it.

The real ``pulse-ingest`` and ``pulse-kpi`` console scripts run as their own processes
against the session's Kafka broker and ClickHouse server. Three spend rows, the middle
one with ``impressions = 10**30``, are POSTed: the answer is 422 for that row only, and the
KPI ``spend`` of the campaign's month becomes the sum of the two good rows. Then the same
bad record is produced straight to Kafka (as a foreign producer would, bypassing ingest),
followed by a good one: the bad record lands on the dead-letter topic with a reason naming
``impressions``, the good one is stored, and the KPI service's ``/health`` answers 200
throughout (it is not stalled: the bad record cost nothing else).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from pulse_ingest.settings import hash_api_key
from pulse_shared.topics import SPEND, all_topic_names
from pulse_testinfra import free_port

pytestmark = [pytest.mark.kafka, pytest.mark.clickhouse, pytest.mark.timeout(300)]
VENV_BIN = Path(sys.executable).parent
API_KEY = "acceptance-" + uuid.uuid4().hex
START_TIMEOUT_S = 120.0


class Service:
    def __init__(self, name: str, env: dict[str, str], log: Path) -> None:
        self.name = name
        self.port = int(env[f"PULSE_{name.upper()}_PORT"])
        self.log = log
        with log.open("wb") as out:
            self.proc = subprocess.Popen(
                [str(VENV_BIN / f"pulse-{name}")], env=env, stdout=out,
                stderr=subprocess.STDOUT, start_new_session=True,
            )

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_healthy(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"pulse-{self.name} exited: {self.log.read_text()[-3000:]}")
            try:
                if httpx.get(f"{self.base}/health", timeout=5).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        pytest.fail(f"pulse-{self.name} not healthy: {self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


@pytest.fixture
def services(
    kafka_broker: Any, clickhouse_server: Any, server_store: Any, tmp_path: Path,
    isolated_consumer_groups: str,
) -> Iterator[dict[str, Service]]:
    kafka_broker.create_topics(all_topic_names(), partitions=3)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PULSE_")}
    env.update(
        PULSE_KAFKA_BOOTSTRAP=kafka_broker.bootstrap_servers,
        PULSE_CLICKHOUSE_URL=clickhouse_server.url,
        # Services refuse an empty (placeholder) ClickHouse password at start-up.
        PULSE_CLICKHOUSE_USER=clickhouse_server.writer_user,
        PULSE_CLICKHOUSE_PASSWORD=clickhouse_server.writer_password,
        PULSE_CONSUMER_GROUP_PREFIX=isolated_consumer_groups,
        PULSE_DATA_DIR=str(tmp_path / "data"),
        PULSE_INGEST_PORT=str(free_port()),
        PULSE_KPI_PORT=str(free_port()),
        PULSE_INGEST_PII_SALT="acceptance-salt-" + uuid.uuid4().hex,
        PULSE_INGEST_API_KEYS=json.dumps([
            {"name": "acceptance", "key_hash": hash_api_key(API_KEY)}
        ]),
    )
    started = {
        name: Service(name, env, tmp_path / f"{name}.log") for name in ("kpi", "ingest")
    }
    try:
        for service in started.values():
            service.wait_healthy()
        yield started
    finally:
        for service in started.values():
            service.stop()


async def eventually(check: Callable[[], Any], within: float, what: str) -> Any:
    deadline = time.monotonic() + within
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {within:.0f} s (last: {result!r})")
        await asyncio.sleep(0.3)


async def test_a_value_no_column_holds_costs_only_its_own_row(
    services: dict[str, Service], kafka_broker: Any, server_store: Any,
) -> None:
    campaign = f"acc-{uuid.uuid4().hex[:10]}"
    day = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=2)
    month = day.strftime("%Y-%m")

    def row(event_id: str, amount: str, impressions: int) -> dict[str, Any]:
        return {"event_id": f"{campaign}-{event_id}", "date": day.isoformat(),
                "channel": "paid_search", "campaign_id": campaign, "amount": amount,
                "impressions": impressions, "clicks": 3}

    def month_spend() -> float | None:
        value = server_store.query_value(
            "SELECT any(value) FROM kpi_values FINAL WHERE kpi = 'spend' AND grain = 'month'"
            " AND period = {p:String} AND dimension = 'campaign'"
            " AND dimension_value = {c:String}",
            {"p": month, "c": campaign},
        )
        return None if value is None else float(value)

    def kpi_health() -> int:
        return httpx.get(f"{services['kpi'].base}/health", timeout=5).status_code

    # 1. Over HTTP: 422 for the bad row only; the good rows are accepted.
    poison = row("poison", "5.00", 10**30)
    async with httpx.AsyncClient(timeout=30) as http:
        response = await http.post(
            f"{services['ingest'].base}/v1/spend",
            json=[row("a", "120.50", 1000), poison, row("b", "79.50", 2000)],
            headers={"X-API-Key": API_KEY},
        )
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["accepted"] == 2
    assert [(e["index"], e["field"]) for e in body["rejected"]] == [(1, "impressions")]
    await eventually(lambda: month_spend() == 200.0, 90, "KPI spend of the two good rows")
    assert kpi_health() == 200

    # 2. Straight to Kafka, bypassing ingest: dead-lettered with the field, later rows land.
    producer = AIOKafkaProducer(bootstrap_servers=kafka_broker.bootstrap_servers)
    await producer.start()
    try:
        poison_body = json.dumps({**poison, "currency": "USD"}).encode()
        later = json.dumps({**row("c", "10.00", 5), "currency": "USD"}).encode()
        key = campaign.encode()  # one partition: the later record comes after the poison
        await producer.send_and_wait(SPEND.name, poison_body, key=key)
        await producer.send_and_wait(SPEND.name, later, key=key)
    finally:
        await producer.stop()

    letters: list[dict[str, Any]] = []
    tail = AIOKafkaConsumer(SPEND.dead_letter, bootstrap_servers=kafka_broker.bootstrap_servers,
                            auto_offset_reset="earliest", group_id=None)
    await tail.start()
    try:
        async def poison_letter() -> dict[str, Any] | None:
            batch = await tail.getmany(timeout_ms=500)
            for records in batch.values():
                for record in records:
                    letter = json.loads(record.value)
                    if campaign in letter["payload"]:
                        letters.append(letter)
            return letters[0] if letters else None

        deadline = time.monotonic() + 30
        while not await poison_letter():
            assert time.monotonic() < deadline, "no dead letter for the poison record"
    finally:
        await tail.stop()
    assert len(letters) == 1
    assert letters[0]["errors"][0]["field"] == "impressions"
    assert "impressions" in letters[0]["reason"]
    await eventually(lambda: month_spend() == 210.0, 90, "KPI spend with the later row")
    stored = server_store.query_value(
        "SELECT count() FROM spend FINAL WHERE campaign_id = {c:String}", {"c": campaign}
    )
    assert stored == 3
    assert kpi_health() == 200
