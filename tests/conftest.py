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
