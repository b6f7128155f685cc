"""Fixtures of the ingest tests: an in-memory bus that records what is published."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from faststream.kafka import TestKafkaBroker
from ingest_support import MemoryBus, ingest_settings, recording_broker

from pulse_ingest.service import IngestService
from pulse_shared.bus import Bus


@pytest.fixture
async def memory_bus() -> AsyncIterator[MemoryBus]:
    broker, recorder = recording_broker()
    async with TestKafkaBroker(broker) as test_broker:
        yield MemoryBus(test_broker, Bus(test_broker, "ingest"), recorder)


@pytest.fixture
def service(memory_bus: MemoryBus) -> IngestService:
    return IngestService(memory_bus.bus, ingest_settings())
