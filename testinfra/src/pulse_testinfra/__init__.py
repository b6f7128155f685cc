"""Real servers for the project's tests and benchmarks (no Docker).

- :class:`pulse_testinfra.kafka.KafkaBroker`: Apache Kafka 4 (KRaft), jars from Maven Central.
- :class:`pulse_testinfra.clickhouse.ClickHouseServer`: ClickHouse from the chdb wheel.
- :func:`free_port`: a free loopback port (for services the tests and benchmarks start).

Submodules are imported lazily so that ``import pulse_testinfra`` stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pulse_testinfra._proc import free_port
    from pulse_testinfra.clickhouse import ClickHouseServer
    from pulse_testinfra.kafka import KafkaBroker

__all__ = ["ClickHouseServer", "KafkaBroker", "free_port"]


def __getattr__(name: str) -> Any:
    if name == "KafkaBroker":
        from pulse_testinfra.kafka import KafkaBroker

        return KafkaBroker
    if name == "ClickHouseServer":
        from pulse_testinfra.clickhouse import ClickHouseServer

        return ClickHouseServer
    if name == "free_port":
        from pulse_testinfra._proc import free_port

        return free_port
    raise AttributeError(name)
