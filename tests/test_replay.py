"""`pulse replay` rebuilds ClickHouse rows from a topic, idempotently."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from pulse_shared.bus import Bus, make_broker
from pulse_shared.events import Channel, Touchpoint, TouchType
from pulse_shared.privacy import hash_identifier
from pulse_shared.topics import TOUCHPOINTS

pytestmark = [pytest.mark.kafka, pytest.mark.clickhouse, pytest.mark.timeout(180)]


def touchpoints(account: str, n: int) -> list[Touchpoint]:
    start = dt.datetime(2026, 10, 1, 12, tzinfo=dt.UTC)
    return [
        Touchpoint(
            event_id=f"{account}-{i}", occurred_at=start + dt.timedelta(hours=i),
            account_id=account, contact_id=hash_identifier(f"c{i}@example.com", "salt"),
            channel=Channel.EMAIL, touch_type=TouchType.EMAIL_CLICK, campaign_id="nurture",
        )
        for i in range(n)
    ]


def count(store, account: str, final: bool) -> int:  # type: ignore[no-untyped-def]
    table = "touchpoints FINAL" if final else "touchpoints"
    return int(store.query_value(
        f"SELECT count() FROM {table} WHERE account_id = {{a:String}}", {"a": account}))


async def test_replay_restores_deleted_rows_exactly_once(kafka_broker, clickhouse_server, server_store) -> None:  # type: ignore[no-untyped-def]
    from pulse_cli.replay import batch_consumers, replay_topic
    from pulse_cli.runtime import build_components

    account = f"acct-replay-{uuid.uuid4().hex[:8]}"
    since = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=5)
    broker = make_broker(kafka_broker.bootstrap_servers)
    await broker.connect()
    try:
        await Bus(broker, "test").publish(TOUCHPOINTS, touchpoints(account, 25))
        consumers = batch_consumers(build_components(server_store, broker, in_memory=False),
                                    TOUCHPOINTS.name)
        assert consumers, "the attribution service consumes touchpoints"
        assert count(server_store, account, final=True) == 0  # no service was running

        replayed = await replay_topic(kafka_broker.bootstrap_servers, TOUCHPOINTS.name, since,
                                      consumers)
        assert replayed >= 25
        assert count(server_store, account, final=True) == 25

        await replay_topic(kafka_broker.bootstrap_servers, TOUCHPOINTS.name, since, consumers)
        assert count(server_store, account, final=True) == 25  # idempotent
    finally:
        await broker.stop()


def test_replay_command_line(kafka_broker, clickhouse_server, server_store, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import asyncio

    account = f"acct-replay-cli-{uuid.uuid4().hex[:8]}"
    since = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=5)

    async def publish() -> None:
        broker = make_broker(kafka_broker.bootstrap_servers)
        await broker.connect()
        try:
            await Bus(broker, "test").publish(TOUCHPOINTS, touchpoints(account, 7))
        finally:
            await broker.stop()

    asyncio.run(publish())
    env = {**os.environ, "PULSE_KAFKA_BOOTSTRAP": kafka_broker.bootstrap_servers,
           "PULSE_CLICKHOUSE_URL": clickhouse_server.url}
    result = subprocess.run(
        [str(Path(sys.executable).parent / "pulse"), "replay", "--topic", TOUCHPOINTS.name,
         "--from", since.strftime("%Y-%m-%dT%H:%M:%S")],
        env=env, capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert "replayed" in result.stderr
    assert count(server_store, account, final=True) == 7
