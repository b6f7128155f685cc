"""Process wiring shared by every service: ASGI app with /health and /metrics."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from faststream.asgi import AsgiFastStream, AsgiResponse, get
from faststream.kafka import KafkaBroker

from pulse_shared.metrics import metrics_asgi_app
from pulse_shared.store import Store

HealthCheck = Callable[[], Awaitable[bool]]


def store_health(store: Store) -> HealthCheck:
    async def check() -> bool:
        try:
            value = await asyncio.to_thread(store.query_value, "SELECT 1")
        except Exception:
            return False
        return bool(value == 1)

    return check


def broker_health(broker: KafkaBroker, timeout: float = 2.0) -> HealthCheck:
    async def check() -> bool:
        try:
            return bool(await broker.ping(timeout))
        except Exception:
            return False

    return check


def health_asgi(service: str, checks: dict[str, HealthCheck]) -> Any:
    """``GET /health`` → 200 with each dependency's status, 503 if any is down."""

    @get(include_in_schema=False)
    async def health(scope: Any) -> AsgiResponse:
        results = {name: await check() for name, check in checks.items()}
        healthy = all(results.values())
        body = json.dumps(
            {"service": service, "status": "ok" if healthy else "degraded", "checks": results}
        ).encode()
        return AsgiResponse(
            body, 200 if healthy else 503, headers={"content-type": "application/json"}
        )

    return health


def create_service_app(
    service: str,
    broker: KafkaBroker,
    store: Store,
    *,
    on_startup: Sequence[Callable[..., Any]] = (),
    after_startup: Sequence[Callable[..., Any]] = (),
    on_shutdown: Sequence[Callable[..., Any]] = (),
    extra_routes: Sequence[tuple[str, Any]] = (),
) -> AsgiFastStream:
    """The FastStream ASGI application a service container runs under uvicorn."""
    checks = {"kafka": broker_health(broker), "clickhouse": store_health(store)}
    return AsgiFastStream(
        broker,
        asgi_routes=[
            ("/health", health_asgi(service, checks)),
            ("/metrics", metrics_asgi_app()),
            *extra_routes,
        ],
        on_startup=on_startup,
        after_startup=after_startup,
        on_shutdown=on_shutdown,
        asyncapi_path="/asyncapi",
    )
