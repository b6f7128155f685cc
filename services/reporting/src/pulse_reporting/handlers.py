"""Reporting consumes no topic: it reads ClickHouse on a schedule and publishes
``report.ready.v1``. The router exists so every service wires the same way."""

from __future__ import annotations

from typing import TYPE_CHECKING

from faststream.kafka import KafkaRouter

if TYPE_CHECKING:
    from pulse_reporting.main import ReportingComponent


def build_router(component: ReportingComponent) -> KafkaRouter:
    return KafkaRouter()
