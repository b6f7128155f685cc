"""Bounded ingest: limits are enforced while a body is read and parsed, never after.

Bytes while streaming (413 before the whole body arrives), rows and nesting depth while
parsing (413 / 422 naming the row, never a 500), a CSV cell-size limit (422 naming row and
column), garbage NDJSON stopped at the first errors, and ``/health`` served by a real
uvicorn server while a maximal body is being parsed (ordering, not timing).
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from ingest_support import KEYS, MemoryBus, ingest_settings

from pulse_ingest.domain import readers
from pulse_ingest.domain.normalize import InvalidRow
from pulse_ingest.domain.readers import ReadLimits, parse_text
from pulse_ingest.main import build_api
from pulse_ingest.service import IngestService
from pulse_shared.topics import PIPELINE
from pulse_testinfra import free_port

FULL = {"X-API-Key": KEYS["full"][0]}
NDJSON = {**FULL, "content-type": "application/x-ndjson"}
CSV = {**FULL, "content-type": "text/csv"}
ROW = {"occurred_at": "2026-11-20T10:00:00Z", "account_id": "a1", "stage": "opportunity",
       "amount": "5880"}
DATA = Path(__file__).resolve().parents[1] / "data"


def nested(depth: int) -> str:
    return '{"a":' * (depth - 1) + "[1]" + "}" * (depth - 1)


def rows(n: int) -> list[dict[str, Any]]:
    return [{**ROW, "account_id": f"acct-{i}"} for i in range(n)]


@pytest.fixture
async def client(memory_bus: MemoryBus) -> AsyncIterator[httpx.AsyncClient]:
    app = build_api(IngestService(memory_bus.bus, ingest_settings(max_rows=50)))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://ingest") as c:
        yield c


# -- bytes ------------------------------------------------------------------------------


async def test_body_over_the_byte_limit_is_refused_while_streaming(memory_bus: MemoryBus) -> None:
    limit, chunk = 64 * 1024, 4096
    app = build_api(IngestService(memory_bus.bus, ingest_settings(max_body_bytes=limit)))
    sent = 0

    async def body() -> AsyncIterator[bytes]:  # no Content-Length: chunked
        nonlocal sent
        for _ in range(10 * limit // chunk):
            sent += chunk
            yield b" " * chunk

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://i") as c:
        r = await c.post("/v1/pipeline", content=body(), headers=NDJSON)
        assert r.status_code == 413 and f"{limit:,} bytes" in r.json()["detail"]
        assert sent <= limit + chunk  # stopped at the limit, not after ten times as much

        sent = 0
        declared = await c.post("/v1/pipeline", content=body(),
                                headers={**NDJSON, "content-length": str(limit + 1)})
        assert declared.status_code == 413 and "Content-Length" in declared.json()["detail"]
        assert sent == 0  # refused before reading anything
    assert memory_bus.recorder.count() == 0


# -- rows -------------------------------------------------------------------------------


async def test_row_limit_stops_reading_at_the_first_extra_row(client: httpx.AsyncClient,
                                                              memory_bus: MemoryBus) -> None:
    # Broken JSON after row 51: a 413 (not a 400) shows reading stopped at row 51.
    body = json.dumps(rows(51))[:-1] + ', {"broken'
    r = await client.post("/v1/pipeline", content=body,
                          headers={**FULL, "content-type": "application/json"})
    assert r.status_code == 413 and "at most 50" in r.json()["detail"]
    ndjson = "\n".join(json.dumps(x) for x in rows(51)) + "\n{broken\n"
    r = await client.post("/v1/pipeline", content=ndjson, headers=NDJSON)
    assert r.status_code == 413
    csv_body = "occurred_at,account_id,stage\n" + "2026-11-20,a,won\n" * 51 + '"unterminated'
    r = await client.post("/v1/pipeline", content=csv_body, headers=CSV)
    assert r.status_code == 413
    r = await client.post("/v1/pipeline", json=rows(50), headers=FULL)
    assert r.status_code == 200 and r.json()["accepted"] == 50
    assert memory_bus.recorder.count() == 50


async def test_garbage_ndjson_stops_at_the_first_100_errors(memory_bus: MemoryBus) -> None:
    app = build_api(IngestService(memory_bus.bus, ingest_settings()))  # 10,000 rows, 16 MiB
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://i") as c:
        r = await c.post("/v1/pipeline", content=b"x\n" * 1_000_000, headers=NDJSON)
    assert r.status_code == 422
    body = r.json()
    assert [e["index"] for e in body["rejected"]] == list(range(100))
    assert body["rejected"][0]["reason"].startswith("line 1: invalid JSON")
    assert body["unchecked_lines"] == 1_000_000 - 101
    assert "more than 100 lines" in body["detail"] and f"{1_000_000 - 101} more" in body["detail"]
    assert body["accepted"] == 0 and memory_bus.recorder.count() == 0


async def test_a_few_bad_ndjson_lines_are_row_errors(client: httpx.AsyncClient,
                                                     memory_bus: MemoryBus) -> None:
    lines = [json.dumps(x) for x in rows(3)]
    lines[1] = "{not json"
    r = await client.post("/v1/pipeline", content="\n".join(lines), headers=NDJSON)
    assert r.status_code == 422
    assert [(e["index"], e["field"]) for e in r.json()["rejected"]] == [(1, "(row)")]
    assert r.json()["accepted"] == 2 and memory_bus.recorder.count() == 2


# -- nesting depth ----------------------------------------------------------------------


async def test_deep_nesting_is_a_422_naming_the_row(client: httpx.AsyncClient,
                                                    memory_bus: MemoryBus) -> None:
    json_headers = {**FULL, "content-type": "application/json"}
    # Too deep for the JSON parser itself: reading stops at that array element.
    deep = "[" + json.dumps(ROW) + "," + nested(5000) + "]"
    r = await client.post("/v1/pipeline", content=deep, headers=json_headers)
    assert r.status_code == 422, r.text
    assert r.json()["rejected"] == [{"index": 1, "field": "(row)",
                                     "reason": "nested more than 32 levels deep"}]
    assert "row 1" in r.json()["detail"]
    r = await client.post("/v1/pipeline", content=nested(5000), headers=json_headers)
    assert r.status_code == 422 and r.json()["rejected"][0]["index"] == 0
    assert memory_bus.recorder.count() == 0  # nothing published past an unreadable row

    # Readable but deeper than the limit: a row error, the other rows are published.
    body = [ROW, json.loads(nested(40)), {**ROW, "account_id": "a2"}]
    r = await client.post("/v1/pipeline", json=body, headers=FULL)
    assert r.status_code == 422
    assert [(e["index"], e["reason"]) for e in r.json()["rejected"]] == [
        (1, "nested more than 32 levels deep")]
    ndjson = "\n".join([json.dumps(ROW), nested(5000), json.dumps({**ROW, "account_id": "a3"})])
    r = await client.post("/v1/pipeline", content=ndjson, headers=NDJSON)
    assert r.status_code == 422
    assert [(e["index"], e["reason"]) for e in r.json()["rejected"]] == [
        (1, "line 2: nested more than 32 levels deep")]
    assert len(memory_bus.recorder.events(PIPELINE.name)) == 3


# -- CSV cells --------------------------------------------------------------------------


async def test_csv_cell_over_the_limit_is_a_422_naming_row_and_column(
    client: httpx.AsyncClient, memory_bus: MemoryBus
) -> None:
    big = "y" * 200_000
    body = f"occurred_at,account_id,stage,notes\n2026-11-20,a1,won,ok\n2026-11-20,a2,won,{big}\n"
    r = await client.post("/v1/pipeline", content=body, headers=CSV)
    assert r.status_code == 422, r.text
    assert r.json()["rejected"] == [{"index": 1, "field": "notes",
                                     "reason": "cell longer than 65536 characters"}]
    quoted = f'occurred_at,notes,stage\n2026-11-20,"{big[:100_000]}\n{big[:100_000]}",won\n'
    r = await client.post("/v1/pipeline", content=quoted, headers=CSV)
    assert r.status_code == 422 and r.json()["rejected"][0]["field"] == "notes"
    assert memory_bus.recorder.count() == 0


async def test_csv_export_with_a_huge_cell_is_a_422(client: httpx.AsyncClient,
                                                    memory_bus: MemoryBus) -> None:
    export = (DATA / "google_ads_campaign_report.csv").read_text()
    r = await client.post("/v1/import/google_ads", content=export + "x" * 200_000 + "\n",
                          headers=CSV)
    assert r.status_code == 422 and "65536 characters" in r.json()["detail"], r.text
    assert memory_bus.recorder.count() == 0


# -- the streaming JSON reader ----------------------------------------------------------


@pytest.mark.parametrize("chunk", [1, 2, 3, 7, 64])
def test_json_reader_gives_the_same_rows_whatever_the_window_size(
    chunk: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The reader parses through a window refilled in chunks: values cut at any point
    (numbers, literals, strings, nested objects) must come out as json.loads reads them."""
    monkeypatch.setattr(readers._JsonStream, "CHUNK", chunk)
    documents = [
        ' [ {"a": 12345, "b": [true, false, null], "c": "x\\"y,]"}, 67890 , -1.5e3, "s" ] ',
        '{"rows": [{"n": 1}, {"n": 22}]}',
        '{"a": {"b": [1, 2, {"c": 3}]}}',
        "[]",
        '[{"k": "\\u00e9\\ud83d\\ude00"}, 3.25]',
    ]
    for text in documents:
        expected = json.loads(text)
        expected = expected["rows"] if isinstance(expected, dict) and "rows" in expected else (
            expected if isinstance(expected, list) else [expected])
        assert parse_text(text, "json") == expected, text
    for bad in ("[1, 2", "[1,]", "[1] 2", '{"rows": [1], "x": 2}', "", "[1 2]"):
        with pytest.raises(readers.BodyError):
            parse_text(bad, "json")


def test_row_errors_of_the_readers_are_bounded() -> None:
    limits = ReadLimits(max_rows=5, max_depth=4, max_row_errors=3)
    assert isinstance(parse_text("[" + nested(5) + "]", "json", limits)[0], InvalidRow)
    assert parse_text("[" + nested(4) + "]", "json", limits) == [json.loads(nested(4))]
    with pytest.raises(readers.UnreadableRows) as caught:
        parse_text("x\n" * 5, "ndjson", limits)
    assert len(caught.value.errors) == 3 and caught.value.unchecked_lines == 1


# -- /health while a maximal body is parsed ---------------------------------------------


async def test_health_is_served_while_a_max_size_body_is_parsed(memory_bus: MemoryBus) -> None:
    """A real uvicorn server on loopback. The parser (in its worker thread) is held mid-way
    through a 16 MiB body; /health must answer meanwhile. Were parsing on the event loop,
    holding it would block /health and the test would fail (ordering, not timing)."""
    settings = ingest_settings()
    service = IngestService(memory_bus.bus, settings)
    loop = asyncio.get_running_loop()
    mid_parse = asyncio.Event()
    release = threading.Event()

    held = threading.Event()

    def progress(rows_read: int) -> None:  # called in the reading thread
        if rows_read >= 1000 and not held.is_set():  # hold the parser once, mid-body
            held.set()
            loop.call_soon_threadsafe(mid_parse.set)
            release.wait(timeout=60)

    service.read_progress = progress
    row = json.dumps({**ROW, "notes": "n" * 1500})
    count = (settings.max_body_bytes - 2) // (len(row) + 1)
    body = ("[" + ",".join([row] * count) + "]").encode()
    assert settings.max_body_bytes - len(row) < len(body) <= settings.max_body_bytes
    assert count > settings.max_rows

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(build_api(service), host="127.0.0.1", port=port,
                                           log_level="warning", lifespan="off"))
    serving = asyncio.create_task(server.serve())
    try:
        while not server.started:
            await asyncio.sleep(0.01)
        base = f"http://127.0.0.1:{port}"
        async with httpx.AsyncClient(base_url=base, timeout=120) as big_client, \
                httpx.AsyncClient(base_url=base, timeout=120) as health_client:
            big = asyncio.create_task(big_client.post(
                "/v1/touchpoints", content=body,
                headers={**FULL, "content-type": "application/json"}))
            await asyncio.wait_for(mid_parse.wait(), timeout=120)
            for _ in range(5):
                health = await health_client.get("/health")
                assert health.status_code == 200 and health.json()["status"] == "ok"
                assert not big.done()
            release.set()
            response = await big
        assert response.status_code == 413
        assert f"at most {settings.max_rows}" in response.json()["detail"]
    finally:
        release.set()
        server.should_exit = True
        await serving
    assert memory_bus.recorder.count() == 0
