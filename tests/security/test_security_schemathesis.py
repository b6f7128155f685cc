"""Schemathesis against the ingest API's own OpenAPI document: generated requests for
every operation (valid and invalid bodies, query strings) never get a 5xx, and every
response conforms to the documented status codes and schemas. Bounded examples."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error, status_code_conformance

from pulse_ingest.main import build_api
from pulse_ingest.service import IngestService
from pulse_ingest.settings import ApiKey, IngestSettings, hash_api_key

KEY = "schemathesis-key-0123456789abcdefghij"


class FakeBus:
    def __init__(self) -> None:
        self.published = 0

    async def publish(self, topic: Any, events: Any) -> None:
        self.published += len(events)


APP = build_api(IngestService(FakeBus(), IngestSettings(  # type: ignore[arg-type]
    pii_salt="schemathesis-salt-0123456789",
    api_keys=[ApiKey(name="st", key_hash=hash_api_key(KEY), kinds=[])],
    max_rows=200, publish_timeout_s=5.0,
)))
schema = schemathesis.openapi.from_asgi("/openapi.json", APP, headers={"X-API-Key": KEY})


@schemathesis.serializer("application/x-ndjson")
def _ndjson(ctx: Any, value: Any) -> bytes:
    items = value if isinstance(value, list) else [value]
    return "\n".join(json.dumps(v, default=str) for v in items).encode()


@schemathesis.serializer("text/csv")
def _csv(ctx: Any, value: Any) -> bytes:
    items = value if isinstance(value, list) else [value]
    rows = [v if isinstance(v, dict) else {"value": v} for v in items]
    columns = list(dict.fromkeys(k for r in rows for k in r)) or ["value"]
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, extrasaction="ignore")
    writer.writeheader()
    writer.writerows({k: json.dumps(v) if isinstance(v, dict | list) else v
                      for k, v in r.items()} for r in rows)
    return out.getvalue().encode()


@schema.parametrize()
@settings(max_examples=60, deadline=None, database=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
def test_ingest_openapi_no_5xx_and_documented_statuses(case: Any) -> None:
    response = case.call(headers={"X-API-Key": KEY})
    case.validate_response(response, checks=[not_a_server_error, status_code_conformance])
