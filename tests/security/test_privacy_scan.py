"""``pulse privacy scan``: stored text checked again with today's detector.

On both backends, a table of our own holding the kinds of text the detector must flag (a
phone number written beside other digits, as rows stored before the detector's fix may hold; a
disguised address; in a key column, an array element and a map value) and the kinds it
must not (ids, days, amounts, tokens): the scan finds exactly the former, page by page as
well as at once, and never shows a raw value. Then the command end to end, in a process of
its own on a data directory of its own: a generated data set through the whole in-process
pipeline scans clean (no false alarm on what Pulse itself stores), one row written the old
way is found, and the output names table and column without the number."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from pulse_shared import pii_scan
from pulse_shared.pii_scan import column_shape, scan, text_columns
from pulse_shared.store import Store

PULSE = str(Path(sys.executable).parent / "pulse")

PHONE_BESIDE_ID = "call acc-9c5065 555.308.0815 today"
PHONE_IN_KEY = "lead-(555) 200-0000 1234"
DISGUISED_EMAIL = "ask jane.doe%40example.com"
EMAIL_IN_MAP = "owner: ops＠example.org"
PHONE_IN_ARRAY = "+1 (555) 310 4477"
PHONE_AS_KEY = "tel 555-401-2299"
CLEAN = ["acct-2026-0001", "2026-12-04", "lat10000-12345", "12.50", "[phone:3f2a9c01]",
         "spring-sale", "Q4 2026 / wave 2", "v1.2.3"]
RAW = [PHONE_BESIDE_ID, PHONE_IN_KEY, DISGUISED_EMAIL, EMAIL_IN_MAP, PHONE_IN_ARRAY]


@pytest.mark.parametrize(("column_type", "shape"), [
    ("String", "plain"), ("LowCardinality(String)", "plain"), ("Nullable(String)", "plain"),
    ("LowCardinality(Nullable(String))", "plain"), ("FixedString(16)", "plain"),
    ("Array(String)", "array"), ("Array(LowCardinality(String))", "array"),
    ("Map(String, String)", "map"), ("Map(LowCardinality(String), String)", "map"),
    ("AggregateFunction(uniqExact, String)", None), ("Decimal(18, 4)", None),
    ("Map(String, UInt64)", "map_keys"), ("Array(UInt32)", None), ("Map(UInt8, String)", None),
    ("Date", None),
])
def test_which_columns_hold_text(column_type: str, shape: str | None) -> None:
    assert column_shape(column_type) == shape


@pytest.fixture
def texts_table(any_store: Store) -> Iterator[str]:
    table = f"pii_scan_{uuid.uuid4().hex[:10]}"
    any_store.command(
        "CREATE TABLE {t:Identifier} (id String, note Nullable(String), "
        "label LowCardinality(String), tags Array(String), labels Map(String, String), "
        "counts Map(String, UInt64), amount Decimal(18, 4)) ENGINE = MergeTree ORDER BY id",
        {"t": table})
    rows = [
        {"id": f"r{i}", "note": text, "label": "paid_search", "tags": [text, "x-1"],
         "labels": {"campaign": text}, "counts": {text: 1}, "amount": "12.5"}
        for i, text in enumerate(CLEAN)
    ] + [
        {"id": PHONE_IN_KEY, "note": PHONE_BESIDE_ID, "label": "email",
         "tags": ["x-1", PHONE_IN_ARRAY], "labels": {"owner": EMAIL_IN_MAP},
         "counts": {PHONE_AS_KEY: 2}, "amount": "1"},
        {"id": "r-dirty-2", "note": PHONE_BESIDE_ID, "label": "email", "tags": [],
         "labels": {}, "counts": {}, "amount": "2"},
        {"id": "r-dirty-3", "note": DISGUISED_EMAIL, "label": "email", "tags": [],
         "labels": {}, "counts": {}, "amount": "3"},
        {"id": "r-null", "note": None, "label": "", "tags": [], "labels": {}, "counts": {},
         "amount": "0"},
    ]
    any_store.insert(table, rows, ["id", "note", "label", "tags", "labels", "counts", "amount"])
    yield table
    any_store.command("DROP TABLE IF EXISTS {t:Identifier}", {"t": table})


def _summary(findings: list[pii_scan.ColumnFinding]) -> dict[str, tuple[dict[str, int], set[str], bool]]:
    return {f.column.column: (f.values, f.kinds, f.column.key) for f in findings}


def test_scan_finds_exactly_the_raw_identifiers(any_store: Store, texts_table: str) -> None:
    columns = text_columns(any_store, [texts_table])
    assert [(c.column, c.shape) for c in columns] == [
        ("id", "plain"), ("note", "plain"), ("label", "plain"), ("tags", "array"),
        ("labels", "map"), ("counts", "map_keys")]

    found = _summary(scan(any_store, columns))

    assert found == {
        "id": ({PHONE_IN_KEY: 1}, {"phone"}, True),
        "note": ({PHONE_BESIDE_ID: 2, DISGUISED_EMAIL: 1}, {"email", "phone"}, False),
        "tags": ({PHONE_IN_ARRAY: 1}, {"phone"}, False),
        "labels": ({EMAIL_IN_MAP: 1}, {"email"}, False),
        "counts": ({PHONE_AS_KEY: 1}, {"phone"}, False),
    }


def test_scan_in_pages_finds_the_same(
    any_store: Store, texts_table: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    columns = text_columns(any_store, [texts_table])
    whole = _summary(scan(any_store, columns))
    monkeypatch.setattr(pii_scan, "PAGE_VALUES", 2)  # every column in several pages
    done: list[str] = []
    paged = _summary(scan(any_store, columns, on_column=lambda c: done.append(c.column)))
    assert paged == whole
    assert done == ["id", "note", "label", "tags", "labels", "counts"]


def test_findings_show_no_raw_value(any_store: Store, texts_table: str) -> None:
    rows = [f.as_row() for f in scan(any_store, text_columns(any_store, [texts_table]))]
    shown = json.dumps(rows, ensure_ascii=False)
    for raw in ("555.308.0815", "200-0000", "310 4477", "401-2299", "jane.doe", "ops＠example"):
        assert raw not in shown
    note = next(r for r in rows if r["column"] == "note")
    # The most frequent value, redacted, still tells where it was.
    assert note["example"] == "call acc-9c5065 [redacted-phone] today"
    assert (note["values"], note["rows"], note["kinds"]) == (2, 3, "email, phone")


def _own_data_dir(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("PULSE_KAFKA_BOOTSTRAP", "PULSE_CLICKHOUSE_URL")}
    env["PULSE_DATA_DIR"] = str(tmp_path / "pulse-data")
    return env


# Every kind through the in-process pipeline (KPIs, credits, alerts included), data ending
# yesterday; then one touchpoint written straight to the table as ingest wrote it before
# the detector knew a number beside other digits.
PIPELINE_THEN_OLD_ROW = """
import asyncio, datetime as dt, json
from pulse_cli.demo import INGEST_ORDER
from pulse_cli.runtime import open_pipeline
from pulse_ingest.domain.generator import generate_dataset
from pulse_ingest.service import IngestService
from pulse_ingest.settings import IngestSettings
from pulse_shared.pii_scan import scan, text_columns

async def main():
    data = generate_dataset(seed=11, days=21, accounts=40, history_weeks=0,
                            end=dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1),
                            martech_tools=True, product_usage=True, email_deliverability=True,
                            account_profiles=True, customer_experience=True)
    async with open_pipeline() as pipeline:
        ingest = IngestService(pipeline.bus, IngestSettings(demo=True, publish_timeout_s=600))
        for kind in INGEST_ORDER:
            rows = [e.model_dump(mode="json") for e in getattr(data, kind)]
            await ingest.ingest(kind, rows, "test")
        await pipeline.settle()
        store = pipeline.store
        clean = [f.as_row() for f in scan(store, text_columns(store))]
        row = store.query("SELECT * FROM touchpoints LIMIT 1")[0]
        row.update(event_id="before-the-fix", utm_content={raw!r})
        store.insert("touchpoints", [row], list(row))
        counts = store.query("SELECT count() AS n FROM kpi_values")[0]["n"]
    print(json.dumps({{"clean": clean, "kpi_values": counts}}))

asyncio.run(main())
"""


def test_command_end_to_end(tmp_path: Path) -> None:
    env = _own_data_dir(tmp_path)
    loaded = subprocess.run(
        [sys.executable, "-c", PIPELINE_THEN_OLD_ROW.format(raw=PHONE_BESIDE_ID)],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert loaded.returncode == 0, loaded.stderr[-3000:]
    before = json.loads(loaded.stdout.strip().splitlines()[-1])
    assert before["kpi_values"] > 1000  # the pipeline stored what it computes
    assert before["clean"] == []  # nothing Pulse stores itself is taken for PII

    done = subprocess.run([PULSE, "privacy", "scan", "--format", "json"], env=env,
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert json.loads(done.stdout) == [{
        "table": "touchpoints", "column": "utm_content", "kinds": "phone", "values": 1,
        "rows": 1, "key_column": False, "example": "call acc-9c5065 [redacted-phone] today",
    }]
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("error: raw PII in 1 of ") and "(1 rows)" in last
    assert "Traceback" not in done.stderr
    assert "555.308.0815" not in done.stdout + done.stderr

    table = subprocess.run([PULSE, "privacy", "scan", "--table", "touchpoints"],
                           env={**env, "COLUMNS": "250"},
                           cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert table.returncode == 1
    assert "[redacted-phone]" in table.stdout  # shown as written, not read as markup

    missing = subprocess.run([PULSE, "privacy", "scan", "--table", "no_such"], env=env,
                             cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert missing.returncode == 1
    assert missing.stderr.strip() == "error: --table: no table with text columns named 'no_such'"
