"""HTTP API of the ingest service (FastAPI; OpenAPI at ``/docs``).

* ``POST /v1/{touchpoints,spend,subscriptions,pipeline,budgets,martech,deliverability,usage,accounts,feedback,tickets}`` —
  JSON array,
  NDJSON (``application/x-ndjson``) or CSV (``text/csv``), up to ``max_rows`` rows.
  200 when every row was accepted (or a duplicate), 422 with row-level errors otherwise
  (valid rows are still published unless ``?atomic=true``).
* ``POST /v1/import/{source}`` — CSV export of Google Ads, LinkedIn Ads, HubSpot,
  Stripe, SendGrid or Mailchimp (see README for the column mappings).
* 401 missing/unknown API key, 403 kind outside the key's scope, 413 too large,
  503 + ``Retry-After`` when the broker is slow or down.
* Limits are enforced while the body arrives and while it is parsed (in a worker thread,
  so ``/health`` stays responsive): bytes (413 as soon as more than ``max_body_bytes``
  arrive), rows (413 at the first row over ``max_rows``), nesting depth (``max_depth``)
  and CSV cell size (``max_csv_field_chars``) → 422 naming the row (and column); more
  than ``max_row_errors`` unparsable NDJSON lines → 422 listing them, rest not read.
* ``/health`` (broker connectivity), ``/metrics`` (Prometheus; no key names in labels).
* ``/openapi.json``: the API description, for API-key holders only (no interactive docs
  pages: every surface but ``/health`` and ``/metrics`` authenticates).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Query, Request, Security
from fastapi.responses import JSONResponse, Response
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from pulse_ingest import metrics
from pulse_ingest.app import SERVICE
from pulse_ingest.domain.imports import IMPORTS, MappingError
from pulse_ingest.domain.normalize import KIND_TOPICS, KINDS
from pulse_ingest.domain.readers import (
    BodyError,
    RowLimitExceeded,
    UnreadableRows,
    UnsupportedFormat,
    decode_text,
    format_of_content_type,
)
from pulse_ingest.service import BackpressureError, IngestResult, IngestService, TooManyRows
from pulse_ingest.settings import ApiKey, IngestSettings
from pulse_shared.logging import get_logger

log = get_logger(__name__)
HealthCheck = Callable[[], Awaitable[bool]]

ROW_ERROR_EXAMPLE = {"index": 3, "field": "occurred_at", "reason": "Field required"}


class HttpError(Exception):
    def __init__(self, status: int, detail: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.headers = headers or {}


@dataclass(frozen=True)
class Caller:
    """Who sent the request: ``source`` (the metrics label) is the key's non-secret id
    (``key-N``, its position in PULSE_INGEST_API_KEYS), never its name."""

    source: str
    key: ApiKey | None

    def require(self, kinds: list[str] | tuple[str, ...]) -> None:
        if self.key is None:
            return
        denied = [k for k in kinds if not self.key.allows(k)]
        if denied:
            metrics.AUTH_FAILURES.labels("403").inc()
            raise HttpError(
                403, f"API key {self.key.name!r} may not send {', '.join(denied)}"
            )


def _presented_key(request: Request) -> str | None:
    key = request.headers.get("x-api-key")
    if key:
        return key.strip()
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip() or None
    return None


async def _read_body(request: Request, limit: int) -> bytearray:
    """The request body, refused (413) as soon as it is known to exceed ``limit`` bytes:
    from ``Content-Length`` before reading, else while streaming (never buffering more
    than ``limit`` plus one chunk)."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise HttpError(413, _too_large(limit, f"Content-Length is {int(declared):,}"))
    body = bytearray()
    async for chunk in request.stream():
        if len(body) + len(chunk) > limit:
            raise HttpError(413, _too_large(limit, "more arrived"))
        body += chunk
    return body


def _too_large(limit: int, what: str) -> str:
    return f"request body larger than {limit:,} bytes ({what}); send smaller batches"


def _unreadable_response(exc: UnreadableRows, kind: str, who: Caller, atomic: bool) -> JSONResponse:
    """422 for a body that could not be read past a row: nothing was published."""
    result = IngestResult(kind=kind, source=who.source, received=exc.rows_read,
                          rejected=[e.as_dict() for e in exc.errors], atomic=atomic)
    metrics.ROWS_REJECTED.labels(kind, who.source).inc(max(result.rejected_rows, 1))
    log.info("ingest_unreadable", kind=kind, source=who.source, detail=exc.detail)
    return JSONResponse({"detail": exc.detail, **result.to_dict(),
                         "unchecked_lines": exc.unchecked_lines}, status_code=422)


def _result_response(result: IngestResult) -> JSONResponse:
    return JSONResponse(result.to_dict(), status_code=200 if result.ok else 422)


_API_KEY_HEADER = APIKeyHeader(name="X-API-Key", auto_error=False,
                               description="Per-source API key (or Authorization: Bearer).")
_BEARER = HTTPBearer(auto_error=False)


EXAMPLES: dict[str, dict[str, Any]] = {
    "touchpoints": {"event_id": "tp-1", "occurred_at": "2026-11-20T10:00:00Z",
                    "account_id": "acme", "contact_email": "jane@acme.example",
                    "channel": "paid_search", "touch_type": "ad_click", "source": "google",
                    "medium": "cpc", "campaign_id": "brand", "utm_campaign": "brand"},
    "spend": {"date": "2026-11-20", "channel": "paid_search", "campaign_id": "brand",
              "amount": "120.50", "currency": "USD", "impressions": 1000, "clicks": 40},
    "subscriptions": {"occurred_at": "2026-11-20T10:00:00Z", "account_id": "acme",
                      "event_type": "subscription_started", "mrr": "1490", "plan": "growth"},
    "pipeline": {"occurred_at": "2026-11-20T10:00:00Z", "account_id": "acme",
                 "stage": "opportunity", "amount": "17880"},
    "budgets": {"month": "2026-12", "channel": "paid_social", "amount": "9000"},
    "martech": {"month": "2026-11", "vendor": "HubSpot", "category": "marketing_automation",
                "amount": "3200", "currency": "USD"},
    "usage": {"account_id": "acme", "feature": "automations", "day": "2026-11-20",
              "count": 14},
    "deliverability": {"day": "2026-11-20", "sending_domain": "news.example.com",
                       "campaign_id": "nov-newsletter", "esp": "sendgrid", "sent": 12000,
                       "delivered": 11820, "hard_bounces": 95, "soft_bounces": 85,
                       "spam_complaints": 6, "unsubscribes": 21, "unique_opens": 4310,
                       "unique_clicks": 610},
    "accounts": {"account_id": "acme", "effective_from": "2026-11-01", "plan": "pro",
                 "segment": "Mid-Market", "industry": "retail", "region": "emea",
                 "employee_band": "51-200"},
    "feedback": {"account_id": "acme", "survey": "nps", "score": 9,
                 "responded_at": "2026-11-20T10:00:00Z"},
    "tickets": {"ticket_id": "T-1042", "account_id": "acme",
                "created_at": "2026-11-20T09:00:00Z",
                "first_response_at": "2026-11-20T10:30:00Z",
                "resolved_at": "2026-11-21T16:00:00Z", "status": "solved", "channel": "email"},
}


def _request_body(kind: str) -> dict[str, Any]:
    model = KIND_TOPICS[kind].model
    fields = ", ".join(name for name in model.model_fields)
    return {"requestBody": {"required": True, "content": {
        "application/json": {
            "schema": {"type": "array", "maxItems": 10_000,
                       "items": {"type": "object", "description": f"Fields: {fields}."}},
            "example": [EXAMPLES[kind]],
        },
        "application/x-ndjson": {"schema": {"type": "string"},
                                 "example": json.dumps(EXAMPLES[kind])},
        "text/csv": {"schema": {"type": "string"},
                     "example": ",".join(EXAMPLES[kind]) + "\n"
                     + ",".join(str(v) for v in EXAMPLES[kind].values())},
    }}}


def caller(
    request: Request,
    _key: Annotated[str | None, Security(_API_KEY_HEADER)] = None,
    _bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_BEARER)] = None,
) -> Caller:
    """Authenticate the request's API key (``X-API-Key`` or ``Authorization: Bearer``).

    The two security parameters only document the schemes in OpenAPI; the header is
    read here so that a missing key is a 401 with our body, not FastAPI's 403.
    """
    settings: IngestSettings = request.app.state.settings
    presented = _presented_key(request)
    if settings.open_access and not presented:
        return Caller(source="anonymous", key=None)
    if not presented:
        metrics.AUTH_FAILURES.labels("401").inc()
        raise HttpError(401, "missing API key (X-API-Key or Authorization: Bearer)",
                        {"WWW-Authenticate": "Bearer"})
    key = settings.find_key(presented)
    if key is None:
        metrics.AUTH_FAILURES.labels("401").inc()
        raise HttpError(401, "unknown API key", {"WWW-Authenticate": "Bearer"})
    return Caller(source=settings.key_id(key), key=key)


AuthDep = Annotated[Caller, Depends(caller)]
AtomicQuery = Annotated[bool, Query(description="Publish nothing unless every row is valid.")]


def build_api(
    service: IngestService,
    settings: IngestSettings | None = None,
    *,
    health: HealthCheck | None = None,
    lifespan: Callable[[FastAPI], Any] | None = None,
) -> FastAPI:
    """The FastAPI app around an :class:`IngestService` (tests pass an in-memory bus)."""
    settings = settings or service.settings

    app = FastAPI(
        title="Pulse ingest",
        version="1",
        description=__doc__,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,  # served below, behind the API key
    )
    app.state.service = service
    app.state.settings = settings

    @app.exception_handler(HttpError)
    async def _http_error(request: Request, exc: HttpError) -> JSONResponse:
        return JSONResponse({"detail": exc.detail}, status_code=exc.status, headers=exc.headers)

    @app.exception_handler(BackpressureError)
    async def _backpressure(request: Request, exc: BackpressureError) -> JSONResponse:
        return JSONResponse(
            {"detail": f"broker busy or unavailable: {exc.reason}",
             "retry_after": exc.retry_after},
            status_code=503,
            headers={"Retry-After": str(exc.retry_after)},
        )

    @app.middleware("http")
    async def _timing(request: Request, call_next: Callable[[Request], Awaitable[Any]]) -> Any:
        started = time.perf_counter()
        response = await call_next(request)
        route = request.scope.get("route")
        endpoint = getattr(route, "path", None) or "other"
        elapsed = time.perf_counter() - started
        metrics.REQUEST_SECONDS.labels(endpoint, str(response.status_code)).observe(elapsed)
        if endpoint.startswith("/v1/"):
            log.info("request", method=request.method, path=request.url.path,
                     status=response.status_code, ms=round(elapsed * 1000, 1))
        return response

    async def ingest_kind(kind: str, request: Request, atomic: bool, who: Caller) -> JSONResponse:
        who.require([kind])
        content_type = request.headers.get("content-type")
        try:
            format_of_content_type(content_type)  # 415 before reading the body
        except UnsupportedFormat as exc:
            return JSONResponse({"detail": str(exc)}, status_code=415)
        body = await _read_body(request, settings.max_body_bytes)
        try:
            rows = await service.read_body(body, content_type)
        except RowLimitExceeded as exc:
            raise HttpError(413, str(exc)) from None
        except UnreadableRows as exc:
            return _unreadable_response(exc, kind, who, atomic)
        except BodyError as exc:
            return JSONResponse({"detail": str(exc)}, status_code=400)
        del body  # the rows are all that is needed from here on
        result = await service.ingest(kind, rows, who.source, atomic=atomic)
        return _result_response(result)

    responses: dict[int | str, dict[str, Any]] = {
        200: {"description": "Every row accepted (or a known duplicate)."},
        400: {"description": "Body is not valid JSON / NDJSON / CSV."},
        415: {"description": "Content type is not JSON, NDJSON or CSV."},
        401: {"description": "Missing or unknown API key."},
        403: {"description": "API key not allowed to send this kind."},
        413: {"description": "Too many rows or bytes (checked while reading)."},
        422: {"description": f"Row-level errors, e.g. {ROW_ERROR_EXAMPLE}; or a row that "
              "cannot be read past (nested too deep, CSV cell too long, too many "
              "unparsable lines): nothing published."},
        503: {"description": "Broker slow or down; retry after Retry-After seconds."},
    }
    for kind in KINDS:

        def make(kind: str) -> Callable[..., Awaitable[JSONResponse]]:
            async def endpoint(
                request: Request, who: AuthDep, atomic: AtomicQuery = False
            ) -> JSONResponse:
                return await ingest_kind(kind, request, atomic, who)

            endpoint.__name__ = f"ingest_{kind}"
            endpoint.__doc__ = (
                f"Ingest {kind} rows: JSON array, NDJSON or CSV (see the shared event "
                f"model). Raw contact e-mails are hashed; unknown fields are dropped."
            )
            return endpoint

        app.post(f"/v1/{kind}", responses=responses, tags=["ingest"],
                 openapi_extra=_request_body(kind))(make(kind))

    import_responses = {**responses, 400: {"description": "Not a CSV export of that tool."},
                        404: {"description": "Unknown import source."}}

    @app.post("/v1/import/{source}", responses=import_responses, tags=["import"])
    async def import_csv(
        source: str, request: Request, who: AuthDep, atomic: AtomicQuery = False
    ) -> JSONResponse:
        """Import a CSV export: google_ads, linkedin_ads, hubspot_contacts, hubspot_deals,
        stripe_subscriptions, sendgrid_stats, mailchimp_campaigns (column mappings in the
        service README)."""
        csv_import = IMPORTS.get(source)
        if csv_import is None:
            raise HttpError(404, f"unknown import source {source!r}; one of {', '.join(IMPORTS)}")
        who.require(csv_import.kinds)
        body = await _read_body(request, settings.max_body_bytes)
        try:
            text = await asyncio.to_thread(decode_text, body)
        except BodyError as exc:
            return JSONResponse({"detail": str(exc)}, status_code=400)
        del body
        if text.count("\n") > settings.max_rows + 50:
            raise HttpError(413, f"more than {settings.max_rows} rows per request")
        try:
            result = await service.import_export(
                source, text, who.source, atomic=atomic, max_rows=settings.max_rows
            )
        except MappingError as exc:
            return JSONResponse({"detail": str(exc)}, status_code=400)
        except TooManyRows as exc:
            raise HttpError(413, str(exc)) from None
        except UnreadableRows as exc:
            return _unreadable_response(exc, f"import:{source}", who, atomic)
        return _result_response(result)

    @app.get("/health", tags=["ops"])
    async def health_endpoint() -> JSONResponse:
        kafka = await health() if health else True
        return JSONResponse(
            {"service": SERVICE, "status": "ok" if kafka else "degraded",
             "checks": {"kafka": kafka}},
            status_code=200 if kafka else 503,
        )

    @app.get("/openapi.json", tags=["ops"], include_in_schema=False)
    async def openapi_endpoint(who: AuthDep) -> JSONResponse:
        return JSONResponse(app.openapi())

    @app.get("/metrics", tags=["ops"], include_in_schema=False)
    async def metrics_endpoint() -> Response:
        return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)

    return app
