"""The attribution service's consumers in a bare process, for the fault tests.

Wires ``pulse_attribution.main.build`` (the production component: BatchConsumer →
consume_touchpoints → RowWriter → commit) exactly like ``create_app``, with the same
subscriber options as ``pulse_attribution.handlers.build_router`` except a short group
session timeout, so that after a SIGKILL the next incarnation gets the partitions in ~2 s
instead of the default 10 s. No uvicorn: it starts faster, which keeps the tests short.

    python tests/faults/fault_consumer.py BOOTSTRAP CLICKHOUSE_URL
"""

from __future__ import annotations

import asyncio
import signal
import sys
from typing import Any

from faststream.kafka import KafkaRouter
from faststream.kafka.annotations import KafkaMessage

from pulse_attribution.main import build
from pulse_attribution.settings import GROUP_ID, SERVICE, AttributionSettings
from pulse_shared.bus import Bus, make_broker
from pulse_shared.logging import configure_logging
from pulse_shared.store.server import ServerStore
from pulse_shared.streaming import batch_subscription
from pulse_shared.topics import TOUCHPOINTS

SESSION = {"session_timeout_ms": 2000, "heartbeat_interval_ms": 300}


async def main(bootstrap: str, clickhouse: str, max_records: int) -> None:
    configure_logging("INFO", True)
    broker = make_broker(bootstrap, client_id=f"pulse-{SERVICE}")
    store = ServerStore(clickhouse)
    component = build(store, Bus(broker, SERVICE), AttributionSettings(recompute_interval_s=0))
    router = KafkaRouter()

    @router.subscriber(  # type: ignore[untyped-decorator]
        TOUCHPOINTS.name, **batch_subscription(GROUP_ID, max_records), **SESSION
    )
    async def on_touchpoints(body: Any, message: KafkaMessage) -> None:
        await component.touchpoints.handle(message)

    broker.include_router(router)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    await broker.start()
    await component.start()
    print("ready", flush=True)
    await stop.wait()
    await component.stop()
    await broker.stop()
    store.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else 500))
