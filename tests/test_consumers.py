"""The shared router: a component's declared consumers become its FastStream subscribers."""

from __future__ import annotations

from typing import Any

import pytest

from pulse_shared.bus import Bus, make_broker
from pulse_shared.consumers import build_router
from pulse_shared.events import Event
from pulse_shared.settings import PulseSettings
from pulse_shared.streaming import BatchConsumer
from pulse_shared.topics import KPI_SNAPSHOTS, SPEND


class Toy:
    """A component declaring two consumers with different batch sizes."""

    name = "toy"

    def __init__(self, bus: Bus) -> None:
        self.seen: list[tuple[str, int]] = []
        self.consumers = [
            BatchConsumer("toy", SPEND, self.record(SPEND.name), bus, max_records=7),
            BatchConsumer("toy", KPI_SNAPSHOTS, self.record(KPI_SNAPSHOTS.name), bus),
        ]

    def record(self, topic: str) -> Any:
        async def consume(events: list[Event]) -> None:
            self.seen.append((topic, len(events)))

        return consume


def test_one_subscriber_per_declared_consumer_with_its_options() -> None:
    toy = Toy(Bus(make_broker(None), "toy"))
    router = build_router(toy, "pulse-toy", PulseSettings(consumer_group_prefix="staging-"))  # type: ignore[arg-type]
    by_topic: dict[str, Any] = {s.topic_names[0]: s for s in router.subscribers}  # type: ignore[attr-defined]
    assert set(by_topic) == {SPEND.name, KPI_SNAPSHOTS.name}
    assert by_topic[SPEND.name].max_records == 7
    assert by_topic[KPI_SNAPSHOTS.name].max_records == 5000
    assert {s.group_id for s in by_topic.values()} == {"staging-pulse-toy"}


@pytest.mark.parametrize(
    ("module", "expected"),
    [
        ("pulse_kpi.main", {"marketing.spend.v1", "billing.subscriptions.v1",
                            "crm.pipeline.v1", "marketing.budgets.v1",
                            "marketing.martech.v1", "attribution.credits.v1",
                            "email.deliverability.v1", "crm.accounts.v1",
                            "product.usage.v1", "cx.feedback.v1", "cx.tickets.v1"}),
        ("pulse_attribution.main", {"marketing.touchpoints.v1", "crm.pipeline.v1",
                                    "billing.subscriptions.v1"}),
        ("pulse_alerts.main", {"kpi.snapshots.v1"}),
        ("pulse_reporting.main", set()),
    ],
)
def test_each_service_router_subscribes_exactly_its_declared_consumers(
    module: str, expected: set[str]
) -> None:
    import importlib

    build = importlib.import_module(module).build
    component = build(None, Bus(make_broker(None), "test"))
    topics = {s.topic_names[0] for s in component.router.subscribers}
    assert topics == {c.topic.name for c in component.consumers}
    assert topics == expected
