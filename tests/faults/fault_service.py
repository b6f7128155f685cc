"""The KPI or attribution service's consumers in a bare process, for the fault tests.

Wires the production component (``pulse_kpi.main.build`` / ``pulse_attribution.main.build``:
BatchConsumer → consume_* → RowWriter → publish → commit) like ``create_app`` does, with
the subscriber options of the services' ``build_router`` (``batch_subscription``, group
``pulse-kpi`` / ``pulse-attribution`` behind ``PULSE_CONSUMER_GROUP_PREFIX``) plus a short
group session, so that after a SIGKILL the partitions move in ~2 s instead of 10 s. No
uvicorn: it starts faster, which keeps the tests short.

Every batch is announced on stdout before it is handled (``batch TOPIC PARTITION COUNT``),
so a test can tell which partitions each process of a group received.

    python tests/faults/fault_service.py kpi|attribution BOOTSTRAP CLICKHOUSE_URL DATABASE [MAX]

With ``FAULT_STANDBY=1`` the process imports everything, prints ``standby`` and waits for a
line on stdin before connecting: a test starts the next incarnation while the current one
works, so a restart after a kill costs the group rejoin, not the interpreter start.
"""

from __future__ import annotations

import asyncio
import importlib
import os
import signal
import sys
from collections import Counter
from typing import Any

from faststream.kafka import KafkaRouter
from faststream.kafka.annotations import KafkaMessage

from pulse_shared.bus import Bus, make_broker
from pulse_shared.logging import configure_logging
from pulse_shared.store.server import ServerStore
from pulse_shared.streaming import BatchConsumer, batch_subscription

SESSION = {"session_timeout_ms": 2000, "heartbeat_interval_ms": 300}


def announce(consumer: BatchConsumer[Any], message: KafkaMessage) -> None:
    raw = message.raw_message
    records = raw if isinstance(raw, list | tuple) else [raw]
    per_partition = Counter(r.partition for r in records)
    for partition, n in sorted(per_partition.items()):
        print(f"batch {consumer.topic.name} {partition} {n}", flush=True)


def subscribe(router: KafkaRouter, group: str, max_records: int,
              consumers: list[BatchConsumer[Any]]) -> None:
    for consumer in consumers:

        def make(c: BatchConsumer[Any]) -> Any:
            async def handle(body: Any, message: KafkaMessage) -> None:
                announce(c, message)
                await c.handle(message)

            handle.__name__ = f"fault_{c.topic.model.kind}"
            return handle

        options: dict[str, Any] = {**batch_subscription(group, max_records), **SESSION}
        subscriber: Any = router.subscriber
        subscriber(consumer.topic.name, **options)(make(consumer))


def component_of(service: str, store: ServerStore, broker: Any, max_records: int) -> Any:
    """The service's production component and its consumer group."""
    if service == "kpi":
        from pulse_kpi.main import build as build_kpi
        from pulse_kpi.settings import GROUP_ID as KPI_GROUP
        from pulse_kpi.settings import SERVICE as KPI_SERVICE
        from pulse_kpi.settings import KpiSettings

        # The daily close follows the wall clock; the fault tests do not exercise it.
        return build_kpi(store, Bus(broker, KPI_SERVICE),
                         KpiSettings(close_enabled=False, max_records=max_records)), KPI_GROUP
    if service == "attribution":
        from pulse_attribution.main import build as build_attribution
        from pulse_attribution.settings import GROUP_ID as ATTRIBUTION_GROUP
        from pulse_attribution.settings import SERVICE as ATTRIBUTION_SERVICE
        from pulse_attribution.settings import AttributionSettings

        attribution = build_attribution(
            store, Bus(broker, ATTRIBUTION_SERVICE),
            AttributionSettings(recompute_interval_s=0, max_records=max_records),
        )
        return attribution, ATTRIBUTION_GROUP
    raise SystemExit(f"unknown service {service!r} (kpi or attribution)")


async def main(service: str, bootstrap: str, clickhouse: str, database: str,
               max_records: int) -> None:
    configure_logging("INFO", True)
    broker = make_broker(bootstrap, client_id=f"pulse-{service}")
    store = ServerStore(clickhouse, database=database)
    component, group = component_of(service, store, broker, max_records)
    router = KafkaRouter()
    subscribe(router, group, max_records, list(component.consumers))
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
    print("stopped", flush=True)


if __name__ == "__main__":
    if os.environ.get("FAULT_STANDBY") == "1":
        importlib.import_module(f"pulse_{sys.argv[1]}.main")
        print("standby", flush=True)
        sys.stdin.readline()
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4],
                     int(sys.argv[5]) if len(sys.argv) > 5 else 1000))
