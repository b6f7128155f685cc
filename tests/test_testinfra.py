"""The real servers of pulse_testinfra work, and the marker rule is enforced."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import clickhouse_connect
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from clickhouse_connect.driver.exceptions import DatabaseError
from conftest_servers import missing_server_markers

from pulse_testinfra.clickhouse import ClickHouseServer
from pulse_testinfra.kafka import KafkaBroker

pytest_plugins = ["pytester"]


def _unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


async def _consume(bootstrap: str, topic: str, count: int, within: float = 30.0) -> list[bytes]:
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=_unique("g"),
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    values: list[bytes] = []
    try:
        async with asyncio.timeout(within):
            while len(values) < count:
                batch = await consumer.getmany(timeout_ms=500)
                for messages in batch.values():
                    values.extend(m.value for m in messages if m.value is not None)
    finally:
        await consumer.stop()
    return values


# -- Kafka ---------------------------------------------------------------------------


@pytest.mark.kafka
async def test_kafka_produce_and_consume(kafka_broker: KafkaBroker) -> None:
    topic = _unique("t")
    kafka_broker.create_topics([topic], partitions=3)
    producer = AIOKafkaProducer(bootstrap_servers=kafka_broker.bootstrap_servers, acks="all")
    await producer.start()
    try:
        for i in range(30):
            await producer.send(topic, f"m{i}".encode(), key=str(i).encode())
        await producer.flush()
    finally:
        await producer.stop()
    values = await _consume(kafka_broker.bootstrap_servers, topic, 30)
    assert sorted(values) == sorted(f"m{i}".encode() for i in range(30))


@pytest.mark.kafka
async def test_kafka_restart_keeps_ports_and_data(kafka_broker: KafkaBroker) -> None:
    topic = _unique("restart")
    bootstrap = kafka_broker.bootstrap_servers
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(topic, b"before")  # auto-created topic
    finally:
        await producer.stop()

    await asyncio.to_thread(kafka_broker.restart)

    assert kafka_broker.bootstrap_servers == bootstrap
    assert kafka_broker.is_running()
    assert await _consume(bootstrap, topic, 1) == [b"before"]


# -- ClickHouse ----------------------------------------------------------------------


@pytest.mark.clickhouse
def test_clickhouse_create_insert_select(clickhouse_server: ClickHouseServer) -> None:
    assert clickhouse_server.url == f"http://127.0.0.1:{clickhouse_server.http_port}"
    client = clickhouse_connect.get_client(host="127.0.0.1", port=clickhouse_server.http_port)
    table = _unique("rows")
    client.command(f"CREATE TABLE {table} (id UInt64, name String) ENGINE = MergeTree ORDER BY id")
    client.insert(table, [[i, f"n{i}"] for i in range(100_000)], column_names=["id", "name"])
    assert client.query(f"SELECT count(), sum(id) FROM {table}").result_rows == [
        (100_000, 4_999_950_000)
    ]
    assert (client.server_version or "").startswith("26.")


@pytest.mark.clickhouse
def test_clickhouse_users(clickhouse_server: ClickHouseServer) -> None:
    table = _unique("auth")
    clickhouse_server.client().command(f"CREATE TABLE {table} (x UInt8) ENGINE = Memory")

    writer = clickhouse_server.client(user=clickhouse_server.writer_user)
    writer.command(f"INSERT INTO {table} VALUES (1)")

    reader = clickhouse_connect.get_client(
        host=clickhouse_server.host,
        port=clickhouse_server.http_port,
        username=clickhouse_server.reader_user,
        password=clickhouse_server.reader_password,
    )
    assert reader.command(f"SELECT count() FROM {table}") == 1
    with pytest.raises(DatabaseError, match="READONLY|readonly"):
        reader.command(f"INSERT INTO {table} VALUES (2)")

    with pytest.raises(DatabaseError, match="AUTHENTICATION_FAILED|password"):
        clickhouse_server.client(user=clickhouse_server.reader_user, password="wrong")


@pytest.mark.clickhouse
def test_clickhouse_restart_keeps_ports_and_data(tmp_path: Path) -> None:
    # A private server, so that restarting it cannot disturb other tests.
    with ClickHouseServer(tmp_path / "ch") as server:
        # recorded for the logs; how fast it starts is not a test's business (a start that
        # hangs fails on the server's own start-up deadline)
        assert server.last_start_seconds is not None and server.last_start_seconds > 0
        ports = (server.http_port, server.tcp_port)
        server.client().command("CREATE TABLE kept (x UInt32) ENGINE = MergeTree ORDER BY x")
        server.client().command("INSERT INTO kept SELECT number FROM numbers(1000)")

        server.restart()
        assert (server.http_port, server.tcp_port) == ports
        assert server.client().command("SELECT count() FROM kept") == 1000

        server.restart(hard=True)
        assert server.client().command("SELECT sum(x) FROM kept") == 499_500
    assert not server.is_running()


# -- marker enforcement -------------------------------------------------------------


def test_missing_server_markers_pure() -> None:
    assert missing_server_markers("t::a", ["kafka_broker", "tmp_path"], ["kafka"]) == []
    assert missing_server_markers("t::a", ["tmp_path"], []) == []
    problems = missing_server_markers("t::a", ["kafka_broker", "clickhouse_server"], ["kafka"])
    assert len(problems) == 1
    assert "clickhouse_server" in problems[0] and "pytest.mark.clickhouse" in problems[0]


def test_unmarked_server_use_errors(pytester: pytest.Pytester) -> None:
    # Stand-ins override the real fixtures, so this check starts no server: the rule
    # is about fixture names, not what they return.
    pytester.makeconftest(
        """
        import pytest

        pytest_plugins = ["conftest_servers"]

        @pytest.fixture(scope="session")
        def kafka_broker():
            return "stand-in broker"

        @pytest.fixture(scope="session")
        def clickhouse_server():
            return "stand-in server"
        """
    )
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    pytester.makepyfile(
        """
        import pytest

        @pytest.fixture
        def via_other(kafka_broker):
            return kafka_broker

        def test_direct(kafka_broker):
            pass

        def test_indirect(via_other):
            pass

        def test_dynamic(request):
            request.getfixturevalue("clickhouse_server")

        @pytest.fixture
        def dynamic_fixture(request):
            return request.getfixturevalue("kafka_broker")

        def test_dynamic_in_fixture(dynamic_fixture):
            pass

        @pytest.mark.kafka
        def test_wrong_marker(clickhouse_server):
            pass

        @pytest.mark.kafka
        @pytest.mark.clickhouse
        def test_marked(kafka_broker, clickhouse_server):
            pass

        def test_plain():
            pass
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider", "--strict-markers")
    result.assert_outcomes(passed=2, failed=1, errors=4)  # test_dynamic fails in its call
    for test, fixture, marker in [
        ("test_direct", "kafka_broker", "kafka"),
        ("test_indirect", "kafka_broker", "kafka"),
        ("test_dynamic", "clickhouse_server", "clickhouse"),
        ("test_dynamic_in_fixture", "kafka_broker", "kafka"),
        ("test_wrong_marker", "clickhouse_server", "clickhouse"),
    ]:
        result.stdout.fnmatch_lines([f"*::{test} uses the `{fixture}` fixture*mark.{marker}`*"])
