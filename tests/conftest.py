"""Root test configuration: real-server fixtures plus shared store fixtures.

chDB allows one embedded data directory per process, so every embedded test shares the
session's ``embedded_store``; tests isolate themselves with unique ids.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from pulse_shared.schema.migrations import migrate
from pulse_shared.store import Store
from pulse_shared.store.embedded import EmbeddedStore

pytest_plugins = ["conftest_servers"]


@pytest.fixture(scope="session")
def embedded_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("chdb")


@pytest.fixture(scope="session")
def embedded_store(embedded_data_dir: Path) -> Iterator[Store]:
    """The process's one embedded chDB store, migrated."""
    store = EmbeddedStore(embedded_data_dir)
    migrate(store)
    yield store
    from pulse_shared.store.embedded import close_all_embedded

    close_all_embedded()


@pytest.fixture(scope="session")
def server_store(clickhouse_server) -> Iterator[Store]:  # type: ignore[no-untyped-def]
    """A migrated ServerStore on the real ClickHouse server (mark tests `clickhouse`)."""
    from pulse_shared.store.server import ServerStore

    store = ServerStore(clickhouse_server.url)
    migrate(store)
    yield store
    store.close()


@pytest.fixture(params=["embedded", pytest.param("server", marks=pytest.mark.clickhouse)])
def any_store(request: pytest.FixtureRequest) -> Store:
    """Parametrises a test over both backends (the server one is marked `clickhouse`)."""
    if request.param == "embedded":
        return request.getfixturevalue("embedded_store")  # type: ignore[no-any-return]
    return request.getfixturevalue("server_store")  # type: ignore[no-any-return]


@pytest.fixture
def isolated_consumer_groups(monkeypatch: pytest.MonkeyPatch) -> str:
    """Gives this test's service consumers their own group ids on the shared broker."""
    import uuid

    prefix = f"test-{uuid.uuid4().hex[:8]}-"
    monkeypatch.setenv("PULSE_CONSUMER_GROUP_PREFIX", prefix)
    return prefix


async def _truncate_topics(bootstrap: str, topics: list[str]) -> None:
    """Delete every record now on ``topics`` (log start := log end).

    ``before_offset=-1`` is DeleteRecords' "up to the high watermark": no end-offset
    lookup, which in aiokafka costs ~0.1 s of metadata back-off per topic (3.7 s a test).
    """
    import asyncio

    from aiokafka import TopicPartition
    from aiokafka.admin import AIOKafkaAdminClient, RecordsToDelete
    from aiokafka.errors import LeaderNotAvailableError, NotLeaderForPartitionError

    # After a test restarts the broker, leaders are re-elected and the admin client's
    # first metadata can be stale for a moment: retry with fresh metadata.
    for attempt in range(50):
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        await admin.start()
        try:
            described = await admin.describe_topics(topics)
            await admin.delete_records({
                TopicPartition(d["topic"], p["partition"]): RecordsToDelete(before_offset=-1)
                for d in described for p in d.get("partitions", [])
            })
            return
        except (LeaderNotAvailableError, NotLeaderForPartitionError):
            if attempt == 49:
                raise
            await asyncio.sleep(0.2)
        finally:
            await admin.close()


@pytest.fixture(autouse=True)
def _kafka_test_isolation(request: pytest.FixtureRequest) -> None:
    """Each test on the shared broker starts on empty topics with its own consumer groups.

    Services subscribe with ``auto_offset_reset=earliest`` (right for production), so
    without this a test's new consumer group would first replay every earlier test's
    events; and groups shared across tests would rebalance against stale members.
    """
    if "kafka_broker" not in request.fixturenames or not request.node.get_closest_marker(
        "kafka"
    ):
        return
    import asyncio

    from pulse_shared.topics import all_topic_names

    broker = request.getfixturevalue("kafka_broker")
    names = all_topic_names()
    broker.create_topics(names)
    asyncio.run(_truncate_topics(broker.bootstrap_servers, names))
    request.getfixturevalue("isolated_consumer_groups")


_EXIT_STATUS: list[int] = []


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    _EXIT_STATUS.append(int(exitstatus))


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    """Leave without running interpreter finalisation once pytest has reported.

    chDB's native static destructors can crash at interpreter exit (seen as a segfault
    after "Exception in global_context->shutdown()"), which would turn a green run red.
    Everything is reported and closed by now, so exit with pytest's own status.
    """
    import os
    import sys

    if _EXIT_STATUS and "chdb" in sys.modules:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(_EXIT_STATUS[-1])


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """No PULSE_* variable from the caller's environment (a real salt set), and common
    settings read afresh: for tests of start-up checks and settings validation."""
    import os

    from pulse_shared.settings import common_settings

    for name in list(os.environ):
        if name.upper().startswith("PULSE_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("PULSE_INGEST_PII_SALT", "a-real-salt-0123456789")
    common_settings.cache_clear()
    yield monkeypatch
    common_settings.cache_clear()
