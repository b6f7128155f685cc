"""IngestService on the in-memory bus: normalisation, privacy, duplicates, atomic mode."""

from __future__ import annotations

import asyncio
import csv
import json
from pathlib import Path
from typing import Any

import pytest
from ingest_support import SALT, MemoryBus, ingest_settings

from pulse_ingest.domain.normalize import normalise_row
from pulse_ingest.service import BackpressureError, IngestService, ingest_file
from pulse_ingest.settings import ConfigurationError, IngestSettings
from pulse_shared.events import Touchpoint, deterministic_event_id
from pulse_shared.privacy import hash_identifier, pii_token
from pulse_shared.topics import PIPELINE, SUBSCRIPTIONS, TOUCHPOINTS


def touch(**over: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "occurred_at": "2026-11-20T10:00:00Z",
        "account_id": "acme",
        "email": "Jane.Doe@Acme.com",
        "first_name": "Jane",
        "last_name": "Doe",
        "phone": "+1 555 0100",
        "notes": "called Jane, she loves us",
        "channel": "Paid Search",
        "touch_type": "ad_click",
        "campaign_id": "gads-brand",
    }
    row.update(over)
    return row


async def test_touchpoint_is_hashed_normalised_and_published(
    service: IngestService, memory_bus: MemoryBus
) -> None:
    result = await service.ingest("touchpoints", [touch()], source="test")
    assert (result.accepted, result.duplicates, result.rejected) == (1, 0, [])
    assert result.to_dict()["ignored_fields"] == ["first_name", "last_name", "notes", "phone"]
    [event] = memory_bus.recorder.events(TOUCHPOINTS.name)
    assert event["contact_id"] == hash_identifier("jane.doe@acme.com", SALT)
    assert event["channel"] == "paid_search"
    assert set(event) == set(Touchpoint.model_fields)  # names, phone, notes dropped
    raw = memory_bus.recorder.all_bytes().lower()
    for secret in (b"jane", b"doe", b"555 0100", b"loves"):
        assert secret not in raw


async def test_missing_event_id_is_a_deterministic_content_hash(
    service: IngestService, memory_bus: MemoryBus
) -> None:
    first = normalise_row("touchpoints", touch(), SALT)
    again = normalise_row("touchpoints", touch(notes="other free text"), SALT)
    assert isinstance(first, Touchpoint) and isinstance(again, Touchpoint)
    assert first.event_id == again.event_id
    expected = deterministic_event_id(
        "touchpoint", first.model_dump(mode="json", exclude={"event_id"})
    )
    assert first.event_id == expected
    other = normalise_row("touchpoints", touch(account_id="globex"), SALT)
    assert isinstance(other, Touchpoint) and other.event_id != first.event_id


async def test_duplicates_are_counted_not_republished(
    service: IngestService, memory_bus: MemoryBus
) -> None:
    rows = [touch(event_id="t-1"), touch(event_id="t-2"), touch(event_id="t-1")]
    first = await service.ingest("touchpoints", rows, source="test")
    assert (first.accepted, first.duplicates) == (2, 1)
    again = await service.ingest("touchpoints", rows[:2], source="test")
    assert (again.accepted, again.duplicates) == (0, 2)
    assert len(memory_bus.recorder.raw[TOUCHPOINTS.name]) == 2


async def test_partial_acceptance_and_atomic_mode(
    service: IngestService, memory_bus: MemoryBus
) -> None:
    rows = [
        {"event_id": "p1", "occurred_at": "2026-11-01T00:00:00Z", "account_id": "a",
         "stage": "MQL"},
        {"event_id": "p2", "occurred_at": "yesterday", "account_id": "a", "stage": "mql"},
        {"event_id": "p3", "occurred_at": "2026-11-02", "account_id": "a", "stage": "nope"},
        "not an object",
    ]
    atomic = await service.ingest("pipeline", rows, source="test", atomic=True)
    assert atomic.accepted == 0
    assert memory_bus.recorder.raw[PIPELINE.name] == []
    partial = await service.ingest("pipeline", rows, source="test")
    assert partial.accepted == 1
    by_index = {(r["index"], r["field"]) for r in partial.rejected}
    assert by_index == {(1, "occurred_at"), (2, "stage"), (3, "(row)")}
    assert partial.rejected == atomic.rejected
    [published] = memory_bus.recorder.events(PIPELINE.name)
    assert published["event_id"] == "p1" and published["stage"] == "mql"


async def test_aliases_naive_dates_and_scrubbed_emails(
    service: IngestService, memory_bus: MemoryBus
) -> None:
    rows = [{"event_id": "s1", "timestamp": "2026-11-03 09:30:00", "account_id": "a",
             "type": "Subscription Started", "mrr": "99.5", "plan": "pro for bob@x.io"}]
    result = await service.ingest("subscriptions", rows, source="test")
    assert result.accepted == 1, result.rejected
    [event] = memory_bus.recorder.events(SUBSCRIPTIONS.name)
    assert event["occurred_at"] == "2026-11-03T09:30:00Z"
    assert event["event_type"] == "subscription_started"
    assert event["mrr"] == "99.5"
    assert "bob@x.io" not in event["plan"]
    assert pii_token("email", "bob@x.io", SALT) in event["plan"]  # a prefix of the hash


def test_refuses_to_start_without_salt_outside_demo(memory_bus: MemoryBus) -> None:
    with pytest.raises(ConfigurationError):
        IngestService(memory_bus.bus, IngestSettings(pii_salt=""))
    demo = IngestService(memory_bus.bus, IngestSettings(pii_salt="", demo=True))
    assert demo.salt


async def test_unknown_kind_is_an_error(service: IngestService) -> None:
    with pytest.raises(ValueError, match="unknown kind"):
        await service.ingest("leads", [], source="test")


class SlowBus:
    def __init__(self, delay: float) -> None:
        self.delay = delay

    async def publish(self, topic: Any, events: Any) -> None:
        await asyncio.sleep(self.delay)


async def test_slow_broker_raises_backpressure() -> None:
    svc = IngestService(SlowBus(1.0), ingest_settings(publish_timeout_s=0.05))  # type: ignore[arg-type]
    with pytest.raises(BackpressureError) as err:
        await svc.ingest("touchpoints", [touch()], source="test")
    assert err.value.retry_after >= 1
    # nothing was remembered as published: a retry is not a "duplicate"
    svc.bus = SlowBus(0.0)  # type: ignore[assignment]
    retry = await svc.ingest("touchpoints", [touch()], source="test")
    assert (retry.accepted, retry.duplicates) == (1, 0)


async def test_inflight_limit_refuses_concurrent_overflow() -> None:
    svc = IngestService(SlowBus(0.2), ingest_settings(max_inflight_rows=3))  # type: ignore[arg-type]
    rows = [touch(event_id=f"e{i}") for i in range(3)]
    first = asyncio.create_task(svc.ingest("touchpoints", rows, source="test"))
    await asyncio.sleep(0.05)
    with pytest.raises(BackpressureError):
        await svc.ingest("touchpoints", [touch(event_id="x")], source="test")
    assert (await first).accepted == 3


@pytest.mark.parametrize("suffix", [".ndjson", ".json", ".csv"])
async def test_ingest_file_in_chunks_with_progress(
    tmp_path: Path, suffix: str, service: IngestService, memory_bus: MemoryBus
) -> None:
    rows = [touch(event_id=f"f{i}", account_id=f"acc{i % 3}") for i in range(7)]
    rows[4]["touch_type"] = "smoke_signal"
    path = tmp_path / f"touch{suffix}"
    if suffix == ".ndjson":
        path.write_text("\n".join(json.dumps(r) for r in rows) + "\n{broken\n")
    elif suffix == ".json":
        path.write_text(json.dumps(rows))
    else:
        with path.open("w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    progress: list[int] = []
    result = await ingest_file(service, "touchpoints", path, chunk_size=3,
                               on_progress=lambda r: progress.append(r.received))
    assert result.accepted == 6
    assert result.rejected[0]["index"] == 4 and result.rejected[0]["field"] == "touch_type"
    if suffix == ".ndjson":
        assert progress == [3, 3, 2]
        assert result.rejected[1]["index"] == 7 and "invalid JSON" in result.rejected[1]["reason"]
    else:
        assert progress == [3, 3, 1]
    assert b"jane" not in memory_bus.recorder.all_bytes().lower()
    atomic = await ingest_file(service, "touchpoints", path, chunk_size=3, atomic=True)
    assert atomic.accepted == 0 and atomic.rejected_rows == result.rejected_rows


async def test_same_id_with_new_content_is_a_correction_not_a_duplicate(
    service: IngestService, memory_bus: MemoryBus
) -> None:
    row = {"event_id": "sp-1", "date": "2026-11-01", "channel": "display", "amount": "10"}
    assert (await service.ingest("spend", [row], source="t")).accepted == 1
    assert (await service.ingest("spend", [row], source="t")).duplicates == 1
    corrected = await service.ingest("spend", [dict(row, amount="12.5")], source="t")
    assert (corrected.accepted, corrected.duplicates) == (1, 0)
    assert [e["amount"] for e in memory_bus.recorder.events("marketing.spend.v1")] == ["10", "12.5"]


def test_dedup_window_is_bounded() -> None:
    from pulse_ingest.service import DedupWindow

    window = DedupWindow(size=3)
    window.add("spend", [(f"id{i}", i) for i in range(5)])
    assert len(window) == 3
    assert not window.seen("spend", "id0", 0) and window.seen("spend", "id4", 4)
    assert not window.seen("spend", "id4", 99) and not window.seen("budgets", "id4", 4)


async def test_generated_files_ingest_cleanly_and_idempotently(
    tmp_path: Path, service: IngestService, memory_bus: MemoryBus
) -> None:
    import datetime as dt

    from pulse_ingest.domain.generator import generate_dataset
    from pulse_ingest.files import write_files

    data = generate_dataset(seed=11, days=20, accounts=60, end=dt.date(2026, 11, 24))
    paths = write_files(data, tmp_path, fmt="csv")
    for kind, path in paths.items():
        result = await ingest_file(service, kind, path, chunk_size=100)
        assert result.rejected == [] and result.accepted == data.counts()[kind], kind
        again = await ingest_file(service, kind, path, chunk_size=100)
        assert (again.accepted, again.duplicates) == (0, data.counts()[kind])
    published = memory_bus.recorder.events(TOUCHPOINTS.name)
    assert [e["event_id"] for e in published] == [t.event_id for t in data.touchpoints]
    assert published[0]["contact_id"] == data.touchpoints[0].contact_id  # already hashed
