"""No raw e-mail, name or phone number reaches ClickHouse, whatever the input format.

Rows carrying personal data are sent through every ingest entry point (JSON, NDJSON and
CSV bodies, the CLI file path for each file format, the CSV imports) into the real
consumers of the attribution and KPI services (in-memory bus; embedded chDB and the real
ClickHouse server). Then every
String column of every table is searched for the personal values.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import httpx
from faststream.kafka import TestKafkaBroker
from ingest_support import KEYS, ingest_settings

from pulse_ingest.main import build_api
from pulse_ingest.service import IngestService, ingest_file
from pulse_shared.bus import Bus, make_broker
from pulse_shared.store import Store

DATA = Path(__file__).resolve().parents[1] / "data"
RUN = uuid.uuid4().hex[:8]


def string_columns(store: Store) -> list[tuple[str, str]]:
    rows = store.query(
        "SELECT c.table AS t, c.name AS c FROM system.columns AS c "
        "INNER JOIN system.tables AS t ON t.database = c.database AND t.name = c.table "
        "WHERE c.database = currentDatabase() AND c.type LIKE '%String%' "
        "AND t.engine NOT IN ('View', 'MaterializedView')"
    )
    return [(r["t"], r["c"]) for r in rows]


def tables_containing(store: Store, needles: list[str]) -> list[str]:
    """Tables with a String cell containing any needle (case-insensitive)."""
    by_table: dict[str, list[str]] = {}
    for table, column in string_columns(store):
        by_table.setdefault(table, []).append(column)
    found = []
    for table, columns in by_table.items():
        params: dict[str, Any] = {"t": table, "n": needles}
        cells = []
        for i, column in enumerate(columns):
            params[f"c{i}"] = column
            cells.append(f"toString({{c{i}:Identifier}})")
        n = store.query_value(
            f"SELECT count() FROM {{t:Identifier}} WHERE multiSearchAnyCaseInsensitive("
            f"concat({', '.join(cells)}, ''), {{n:Array(String)}})",
            params,
        )
        if n:
            found.append(table)
    return found


async def test_no_raw_pii_reaches_clickhouse(any_store: Store, tmp_path: Path) -> None:
    """Runs on both backends: embedded chDB and the real ClickHouse server."""
    from pulse_attribution.main import build as build_attribution
    from pulse_kpi.main import build as build_kpi

    broker = make_broker(None, client_id="pulse-ingest-privacy")
    components: list[Any] = [
        build_attribution(any_store, Bus(broker, "attribution", in_memory=True)),
        build_kpi(any_store, Bus(broker, "kpi", in_memory=True)),
    ]
    for component in components:
        broker.include_router(component.router)
    email, name, phone = f"yolanda.{RUN}@pii.example", f"Yolanda{RUN}", f"+33 6 {RUN}"
    base = {"occurred_at": "2026-11-20T10:00:00Z", "email": email, "first_name": name,
            "last_name": f"{name}son", "phone": phone, "channel": "webinar",
            "touch_type": "webinar", "utm_content": f"for {email}", "notes": f"{name} ok"}
    async with TestKafkaBroker(broker):
        for component in components:
            await component.start()
        try:
            service = IngestService(Bus(broker, "ingest", in_memory=True), ingest_settings())
            headers = {"X-API-Key": KEYS["full"][0]}
            transport = httpx.ASGITransport(app=build_api(service))
            async with httpx.AsyncClient(transport=transport, base_url="http://i") as http:
                r = await http.post("/v1/touchpoints", headers=headers,
                                    json=[dict(base, account_id=f"pj-{RUN}")])
                assert r.status_code == 200, r.text
                r = await http.post(
                    "/v1/touchpoints", content=json.dumps(dict(base, account_id=f"pn-{RUN}")),
                    headers={**headers, "content-type": "application/x-ndjson"})
                assert r.status_code == 200, r.text
                row = dict(base, account_id=f"pc-{RUN}")
                csv_text = (",".join(row) + "\n" + ",".join(f'"{v}"' for v in row.values()))
                r = await http.post("/v1/touchpoints", content=csv_text,
                                    headers={**headers, "content-type": "text/csv"})
                assert r.status_code == 200, r.text
                sub = {"occurred_at": "2026-11-20T11:00:00Z", "account_id": f"pj-{RUN}",
                       "event_type": "subscription_started", "mrr": 100,
                       "plan": f"pro ({email})", "customer_name": name}
                r = await http.post("/v1/subscriptions", json=[sub], headers=headers)
                assert r.status_code == 200, r.text
                # (the Stripe export is covered on Kafka; here it would only add KPI work)
                for source, file in (("hubspot_contacts", "hubspot_contacts_export.csv"),
                                     ("hubspot_deals", "hubspot_deals_export.csv")):
                    r = await http.post(f"/v1/import/{source}", content=(DATA / file).read_text(),
                                        headers={**headers, "content-type": "text/csv"})
                    assert r.status_code == 200, r.text
            for fmt in ("json", "ndjson", "csv"):
                row = dict(base, account_id=f"pf-{fmt}-{RUN}")
                path = tmp_path / f"pii.{fmt}"
                if fmt == "json":
                    path.write_text(json.dumps([row]))
                elif fmt == "ndjson":
                    path.write_text(json.dumps(row))
                else:
                    path.write_text(",".join(row) + "\n"
                                    + ",".join(f'"{v}"' for v in row.values()))
                assert (await ingest_file(service, "touchpoints", path)).accepted == 1
        finally:
            for component in reversed(components):
                await component.stop()
    stored = any_store.query(
        "SELECT account_id, contact_id FROM touchpoints FINAL WHERE account_id LIKE {p:String}",
        {"p": f"%-{RUN}"},
    )
    assert len(stored) == 6  # the data did arrive
    assert len({r["contact_id"] for r in stored}) == 1 and len(stored[0]["contact_id"]) == 64
    hubspot = any_store.query_value(
        "SELECT count() FROM touchpoints FINAL WHERE account_id = 'hubspot-company-9001'")
    assert hubspot >= 2
    needles = [email, name, phone, "yolanda.", "Lovelace", "Babbage", "ada.lovelace@",
               "grace@cobol", "7946 0958", "Sam Seller", "Katherine"]
    assert tables_containing(any_store, [f"-{RUN}"]) != []  # the scan does find data
    assert tables_containing(any_store, needles) == []
