"""The MMM service: its scheduled refit publishes MmmRunCompleted on the real Kafka broker
and stores the run (a refusal for too little history here: fast, and no sampler — the fit
itself is tested by tests/mmm/test_mmm_domain.py); the app serves /health, /metrics and
a guarded /asyncapi; the committed AsyncAPI documents are current."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer
from auth_support import bearer
from prometheus_client import REGISTRY

from pulse_mmm.asyncapi import render
from pulse_mmm.main import build
from pulse_mmm.settings import MmmSettings
from pulse_mmm.storage import MmmStorage
from pulse_shared.bus import Bus, make_broker
from pulse_shared.events import MmmRunCompleted
from pulse_shared.settings import common_settings
from pulse_shared.store import Store
from pulse_shared.topics import MMM_RESULTS

ROOT = Path(__file__).resolve().parents[2]


def fits_counted(status: str) -> float:
    return REGISTRY.get_sample_value("pulse_mmm_fits_total", {"status": status}) or 0.0


async def published_events(bootstrap: str, run_id: str, timeout_s: float = 60) -> list[
        MmmRunCompleted]:
    """The MmmRunCompleted messages of ``run_id`` on the topic (read from the start)."""
    consumer = AIOKafkaConsumer(MMM_RESULTS.name, bootstrap_servers=bootstrap,
                                auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    found: list[MmmRunCompleted] = []
    try:
        async with asyncio.timeout(timeout_s):
            while not found:
                batch = await consumer.getmany(timeout_ms=500)
                for records in batch.values():
                    for record in records:
                        event = MmmRunCompleted.model_validate_json(record.value)
                        if event.run_id == run_id:
                            found.append(event)
                            assert record.key == event.target.encode()
    finally:
        await consumer.stop()
    return found


@pytest.mark.kafka
@pytest.mark.clickhouse
@pytest.mark.timeout(180)
async def test_scheduled_refit_publishes_a_rejected_run_on_kafka(
    kafka_broker: Any, server_store: Store
) -> None:
    # Two weeks of history can never be fitted (26 are needed): the refit is refused,
    # stored and published as rejected, and the schedule goes on.
    settings = MmmSettings(refit_interval_s=3600, refit_initial_delay_s=0, window_weeks=2,
                           target="kpi:wins")
    broker = make_broker(kafka_broker.bootstrap_servers, client_id="pulse-mmm")
    await broker.connect()
    component = build(server_store, Bus(broker, "mmm"), settings)
    rejected_before = fits_counted("rejected")
    try:
        await component.start()
        async with asyncio.timeout(60):
            while not component.results:
                await asyncio.sleep(0.05)
        assert component._schedule is not None and not component._schedule.done()
    finally:
        await component.stop()
        await broker.stop()
    (result,) = component.results
    run = result.run
    assert run.status == "rejected" and run.target == "kpi:wins" and run.grain == "week"
    assert run.reason.startswith(("need at least 26 weeks", "no spend stored"))
    assert "\n" not in run.reason
    assert fits_counted("rejected") == rejected_before + 1

    (event,) = await published_events(kafka_broker.bootstrap_servers, run.run_id)
    assert event.status == "rejected" and event.reason == run.reason
    assert event.version == run.version and event.channels == []
    assert MmmStorage(server_store).run(run.run_id) == run


async def test_app_serves_health_metrics_and_guarded_asyncapi(
    embedded_data_dir: Path, embedded_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    import httpx

    from pulse_mmm.main import create_app

    monkeypatch.setenv("PULSE_DATA_DIR", str(embedded_data_dir))
    monkeypatch.delenv("PULSE_CLICKHOUSE_URL", raising=False)
    monkeypatch.delenv("PULSE_KAFKA_BOOTSTRAP", raising=False)
    common_settings.cache_clear()
    try:
        app = create_app(MmmSettings(refit_interval_s=0))
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://mmm") as client:
            anonymous = await client.get("/asyncapi")
            doc = await client.get("/asyncapi", headers=bearer(embedded_store, "platform"))
            metrics = await client.get("/metrics")
    finally:
        common_settings.cache_clear()
    assert anonymous.status_code == 401
    assert doc.status_code == 200 and MMM_RESULTS.name in doc.text
    assert "pulse_mmm_fits_total" in metrics.text


def test_committed_asyncapi_docs_are_up_to_date() -> None:
    docs = ROOT / "docs" / "asyncapi"
    assert (docs / "mmm.json").read_text() == render("json")
    assert (docs / "mmm.yaml").read_text() == render("yaml")
    spec = json.loads(render("json"))
    payload = spec["components"]["schemas"]["MmmRunCompleted"]
    assert {"run_id", "version", "target", "status", "reason", "channels",
            "schema_version"} <= set(payload["properties"])
    assert f"{MMM_RESULTS.name}:publish" in spec["channels"]
