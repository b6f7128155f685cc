"""Helpers of the ingest tests (imported by conftest.py and the test modules)."""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from faststream.kafka import KafkaBroker, KafkaMessage

from pulse_ingest.settings import ApiKey, IngestSettings, hash_api_key
from pulse_shared.bus import Bus, make_broker
from pulse_shared.topics import INPUT_TOPICS

SALT = "test-salt-0123456789"
KEYS = {
    "full": ("key-full-secret-0123456789abcdefghij", []),
    "crm": ("key-crm-secret-0123456789abcdefghijk", ["touchpoints", "pipeline"]),
    "billing": ("key-billing-secret-0123456789abcdefg", ["subscriptions"]),
}


def ingest_settings(**overrides: Any) -> IngestSettings:
    values: dict[str, Any] = {
        "pii_salt": SALT,
        "api_keys": [
            ApiKey(name=name, key_hash=hash_api_key(key), kinds=kinds)
            for name, (key, kinds) in KEYS.items()
        ],
        "max_rows": 10_000,
        "publish_timeout_s": 5.0,
    }
    values.update(overrides)
    return IngestSettings(**values)


@dataclass
class Recorder:
    """Raw bytes published per topic (in order)."""

    raw: dict[str, list[bytes]] = field(default_factory=lambda: defaultdict(list))

    def events(self, topic: str) -> list[dict[str, Any]]:
        return [json.loads(b) for b in self.raw[topic]]

    def all_bytes(self) -> bytes:
        return b"\n".join(b for msgs in self.raw.values() for b in msgs)

    def count(self) -> int:
        return sum(len(v) for v in self.raw.values())


def recording_broker() -> tuple[KafkaBroker, Recorder]:
    broker = make_broker(None)
    recorder = Recorder()
    for topic in INPUT_TOPICS:

        def make(name: str) -> Any:
            async def record(msg: KafkaMessage) -> None:
                recorder.raw[name].append(msg.body)

            return record

        broker.subscriber(topic.name)(make(topic.name))
    return broker, recorder


@dataclass
class MemoryBus:
    broker: KafkaBroker
    bus: Bus
    recorder: Recorder
