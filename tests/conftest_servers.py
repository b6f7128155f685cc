"""Pytest plugin: the real Kafka broker and ClickHouse server, one of each per session.

Load it from ``tests/conftest.py`` with ``pytest_plugins = ["conftest_servers"]``.

- ``kafka_broker`` -> :class:`pulse_testinfra.kafka.KafkaBroker`
- ``clickhouse_server`` -> :class:`pulse_testinfra.clickhouse.ClickHouseServer`

Both are session-scoped and started lazily, by the first test that needs them; their
workdirs (config, data, logs) live under pytest's basetemp, kept for post-mortems.

Marker rule (enforced, like Snuba's): a test that uses ``kafka_broker`` must be marked
``@pytest.mark.kafka`` and one that uses ``clickhouse_server`` must be marked
``@pytest.mark.clickhouse`` -- whether it asks for the fixture directly, through other
fixtures, or via ``request.getfixturevalue``. Otherwise the test errors in setup. So
``-m "not kafka and not clickhouse"`` reliably runs without servers.

Tests that stop or restart a session server must leave it running (``restart()``).
"""

from __future__ import annotations

from collections.abc import Generator, Iterable, Iterator, Mapping

import pytest

from pulse_testinfra.clickhouse import ClickHouseServer
from pulse_testinfra.kafka import KafkaBroker

#: server fixture -> marker that every test using it must carry
SERVER_FIXTURE_MARKERS: Mapping[str, str] = {
    "kafka_broker": "kafka",
    "clickhouse_server": "clickhouse",
}

_MARKER_HELP = {
    "kafka": "kafka: needs the real Kafka broker (started by the session fixture)",
    "clickhouse": "clickhouse: needs the real ClickHouse server (started by the session fixture)",
}


def pytest_configure(config: pytest.Config) -> None:
    for line in _MARKER_HELP.values():
        config.addinivalue_line("markers", line)


def missing_server_markers(
    nodeid: str, fixturenames: Iterable[str], markers: Iterable[str]
) -> list[str]:
    """One message per server fixture used by a test that lacks its marker."""
    used = set(fixturenames)
    present = set(markers)
    return [
        f"{nodeid} uses the `{fixture}` fixture (directly or through another fixture) "
        f"but is not marked `@pytest.mark.{marker}`; add the marker."
        for fixture, marker in SERVER_FIXTURE_MARKERS.items()
        if fixture in used and marker not in present
    ]


def check_server_markers(item: pytest.Item, fixturenames: Iterable[str] | None = None) -> None:
    """Fail ``item`` (pytest.fail) if it uses a server fixture without the marker."""
    names = fixturenames if fixturenames is not None else getattr(item, "fixturenames", ())
    problems = missing_server_markers(item.nodeid, names, (m.name for m in item.iter_markers()))
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)


def _check_active_fixtures(item: pytest.Item) -> None:
    request = getattr(item, "_request", None)  # the test's FixtureRequest (private attr)
    active = getattr(request, "fixturenames", None)  # includes getfixturevalue() results
    if active is not None:
        check_server_markers(item, active)


@pytest.hookimpl(wrapper=True, trylast=True)
def pytest_runtest_setup(item: pytest.Item) -> Generator[None, object, object]:
    # The static fixture closure, checked before any fixture (so any server) is set up.
    # (An innermost wrapper: raising here leaves the other plugins' wrappers intact.)
    check_server_markers(item)
    result = yield
    # Fixtures that other fixtures requested with request.getfixturevalue().
    _check_active_fixtures(item)
    return result


@pytest.hookimpl(wrapper=True, trylast=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, object, object]:
    result = yield
    # Fixtures that the test body requested with request.getfixturevalue().
    _check_active_fixtures(item)
    return result


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaBroker]:
    """The session's real Kafka 4 broker (mark tests ``kafka``)."""
    broker = KafkaBroker(tmp_path_factory.mktemp("kafka"))
    try:
        broker.start()
        yield broker
    finally:
        broker.stop()


@pytest.fixture(scope="session")
def clickhouse_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClickHouseServer]:
    """The session's real ClickHouse server (mark tests ``clickhouse``)."""
    server = ClickHouseServer(tmp_path_factory.mktemp("clickhouse"))
    try:
        server.start()
        yield server
    finally:
        server.stop()
