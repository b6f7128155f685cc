"""A downstream team's consumer of ``kpi.snapshots.v1`` (the documented KPI topic).

It keeps the latest value of every KPI key it cares about, prints each change, and treats
``final=true`` snapshots (daily closes) as the numbers to book. Run it against Pulse's Kafka:

    python examples/kpi_subscriber.py --bootstrap localhost:9092 --kpi roas --kpi mrr

Message schema: ``pulse_shared.events.KpiSnapshot`` (documented in
``docs/asyncapi/kpi.yaml``). Consumers must tolerate new optional fields and check
``schema_version`` (currently 1); ``value`` is null when a KPI is undefined (e.g. ROAS with
zero spend). Keys: the KPI name, so one KPI's snapshots stay in order.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from faststream import FastStream
from faststream.kafka import KafkaBroker

from pulse_shared.events import KpiSnapshot
from pulse_shared.topics import KPI_SNAPSHOTS

SUPPORTED_SCHEMA_VERSION = 1


@dataclass
class KpiBoard:
    """Latest snapshot per key, plus the closed (final) values."""

    kpis: frozenset[str] = frozenset()  # empty = every KPI
    latest: dict[str, KpiSnapshot] = field(default_factory=dict)
    closed: dict[str, KpiSnapshot] = field(default_factory=dict)
    on_change: Callable[[KpiSnapshot, KpiSnapshot | None], None] | None = None

    def accept(self, snapshot: KpiSnapshot) -> bool:
        """Apply one snapshot; returns False if it is ignored (other KPI, older, newer schema)."""
        if snapshot.schema_version > SUPPORTED_SCHEMA_VERSION:
            return False
        if self.kpis and snapshot.kpi not in self.kpis:
            return False
        previous = self.latest.get(snapshot.key)
        if previous is not None and previous.computed_at > snapshot.computed_at:
            return False  # out of order: keep the newer value
        self.latest[snapshot.key] = snapshot
        if snapshot.final:
            self.closed[snapshot.key] = snapshot
        if self.on_change is not None:
            self.on_change(snapshot, previous)
        return True

    def value(
        self, kpi: str, grain: str, period: str, dimension: str = "all", dimension_value: str = ""
    ) -> float | None:
        snapshot = self.latest.get(f"{kpi}|{grain}|{dimension}|{dimension_value}|{period}")
        return None if snapshot is None else snapshot.value


def print_change(snapshot: KpiSnapshot, previous: KpiSnapshot | None) -> None:
    before = "∅" if previous is None else previous.value
    tag = " (final)" if snapshot.final else ""
    dim = "" if snapshot.dimension == "all" else f" {snapshot.dimension}={snapshot.dimension_value}"
    print(f"{snapshot.kpi} {snapshot.grain} {snapshot.period}{dim}: {before} → {snapshot.value}"
          f" {snapshot.unit}{tag}", flush=True)


def build_app(
    bootstrap: str, board: KpiBoard, group_id: str = "example-kpi-subscriber"
) -> tuple[FastStream, KafkaBroker]:
    """A FastStream app whose subscriber feeds ``board`` (validation by the KpiSnapshot model)."""
    broker = KafkaBroker(bootstrap, client_id=group_id, logger=None)

    @broker.subscriber(KPI_SNAPSHOTS.name, group_id=group_id, auto_offset_reset="earliest")
    async def on_snapshot(snapshot: KpiSnapshot) -> None:
        board.accept(snapshot)

    return FastStream(broker), broker


def main(argv: Iterable[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", default="localhost:9092")
    parser.add_argument("--kpi", action="append", default=[], help="Only these KPIs.")
    parser.add_argument("--group", default="example-kpi-subscriber")
    args = parser.parse_args(list(argv) if argv is not None else None)
    board = KpiBoard(kpis=frozenset(args.kpi), on_change=print_change)
    app, _ = build_app(args.bootstrap, board, args.group)
    asyncio.run(app.run())


if __name__ == "__main__":
    main()
