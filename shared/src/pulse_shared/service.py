"""Process wiring shared by every service: ASGI app with /health and /metrics."""

from __future__ import annotations

import asyncio
import gc
import json
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol, TypeVar

from faststream.asgi import AsgiFastStream, AsgiResponse, AsyncAPIRoute, get
from faststream.kafka import KafkaBroker

from pulse_shared.access import Permission
from pulse_shared.auth import (
    PUBLIC_PATHS,
    Authenticator,
    AuthSettings,
    RoutePolicy,
    UserDirectory,
    guard_routes,
)
from pulse_shared.metrics import metrics_asgi_app
from pulse_shared.settings import common_settings
from pulse_shared.store import Store
from pulse_shared.streaming import BatchConsumer

HealthCheck = Callable[[], Awaitable[bool]]

#: Container allocations between two young-generation collections (CPython's default:
#: 700). A consumer allocates a few objects per Kafka record (aiokafka's ConsumerRecord,
#: its value, its headers), so at 700 the collector ran every ~200 records, and each older
#: collection walked every live object of a 20k-record batch as well.
GC_YOUNG_THRESHOLD = 50_000


def tune_gc() -> None:
    """Fewer, cheaper garbage collections, once the process has built its app: what exists
    now (modules, models, schemas, the app) is frozen out of the collector's scans, and the
    young generation is collected every :data:`GC_YOUNG_THRESHOLD` allocations.

    Reference counting frees almost everything a batch allocates; the collector is only
    for cycles, which wait a little longer now. Measured on the touchpoint consumer:
    ~0.7 µs less CPU per event, no change in peak RSS (bench/pipeline/README.md).
    """
    gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])


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


def stalled_consumers(
    consumers: Sequence[BatchConsumer[Any]], after_s: float
) -> list[dict[str, Any]]:
    """Consumers behind the log end that have not committed for more than ``after_s``."""
    return [s for c in consumers if (s := c.stalled(after_s)) is not None]


def health_asgi(
    service: str,
    checks: dict[str, HealthCheck],
    consumers: Sequence[BatchConsumer[Any]] = (),
    stall_after_s: float | None = None,
) -> Any:
    """``GET /health`` → 200 with each dependency's status, 503 if any is down or if a
    consumer is stalled (behind the log end without a commit for ``stall_after_s``; the
    body's ``stalled`` list names the topics)."""
    after_s = stall_after_s if stall_after_s is not None else (
        common_settings().consumer_stall_after_s
    )

    @get(include_in_schema=False)
    async def health(scope: Any) -> AsgiResponse:
        results = {name: await check() for name, check in checks.items()}
        stalled = stalled_consumers(consumers, after_s)
        if consumers:
            results["consumers"] = not stalled
        healthy = all(results.values())
        payload: dict[str, Any] = {
            "service": service, "status": "ok" if healthy else "degraded", "checks": results,
        }
        if stalled:
            payload["stalled"] = stalled
        return AsgiResponse(
            json.dumps(payload).encode(), 200 if healthy else 503,
            headers={"content-type": "application/json"},
        )

    return health


def watch_subscribers(broker: KafkaBroker, consumers: Sequence[BatchConsumer[Any]]) -> None:
    """Give each consumer the Kafka consumer of its topic's subscriber, so its lag and
    stalls are reported from the first poll (not only once a batch has arrived)."""
    for subscriber in broker.subscribers:
        kafka = getattr(subscriber, "consumer", None)
        topics = set(getattr(subscriber, "topic_names", None) or ())
        for consumer in consumers:
            if consumer.topic.name in topics:
                consumer.attach(kafka)


def create_service_app(
    service: str,
    broker: KafkaBroker,
    store: Store,
    *,
    consumers: Sequence[BatchConsumer[Any]] = (),
    on_startup: Sequence[Callable[..., Any]] = (),
    after_startup: Sequence[Callable[..., Any]] = (),
    on_shutdown: Sequence[Callable[..., Any]] = (),
    extra_routes: Sequence[tuple[str, Any, RoutePolicy]] = (),
    stall_after_s: float | None = None,
    authenticator: Authenticator | None = None,
    signin_path: str | None = None,
    signin_routes: Sequence[tuple[str, Any]] = (),
) -> AsgiFastStream:
    """The FastStream ASGI application a service container runs under uvicorn.

    ``consumers`` are the service's :class:`BatchConsumer` objects: ``/health`` reports
    503 while one of them is stalled for more than ``stall_after_s`` (default
    ``PULSE_CONSUMER_STALL_AFTER_S``).

    Every route but ``/health`` and ``/metrics`` requires a signed-in user whose role has
    the route's permission (:mod:`pulse_shared.auth`): ``extra_routes`` are
    ``(path, app, policy)``; the AsyncAPI pages need :attr:`Permission.VIEW_API_DOCS`.
    Users are read from ``store`` unless ``authenticator`` is given. ``signin_routes``
    (the sign-in page and its callbacks) are open: they are how a user gets a session;
    ``signin_path`` is where a browser without one is sent.
    """
    checks = {"kafka": broker_health(broker), "clickhouse": store_health(store)}
    auth = authenticator or Authenticator(UserDirectory(store), AuthSettings())

    async def watch() -> None:
        watch_subscribers(broker, consumers)

    app = AsgiFastStream(
        broker,
        asgi_routes=[
            ("/health", health_asgi(service, checks, consumers, stall_after_s)),
            ("/metrics", metrics_asgi_app()),
            *((path, route) for path, route, _ in extra_routes),
            *signin_routes,
        ],
        on_startup=on_startup,
        after_startup=[*after_startup, watch],
        on_shutdown=on_shutdown,
        # No "try it out" page: it would publish to Kafka on behalf of the caller.
        asyncapi_path=AsyncAPIRoute("/asyncapi", try_it_out_path=None),
    )
    policies: dict[str, RoutePolicy] = {
        "/asyncapi": Permission.VIEW_API_DOCS,
        "/asyncapi.json": Permission.VIEW_API_DOCS,
        **{path: policy for path, _, policy in extra_routes},
    }
    # Exact-path dispatch reads app.routes per request: guard every route in place.
    public = PUBLIC_PATHS | {path for path, _ in signin_routes}
    app.routes = guard_routes(
        app.routes, policies, auth, public=public, signin_path=signin_path
    )
    return app


class ServedSettings(Protocol):
    """What :func:`serve` needs of a service's settings: the address it binds."""

    host: str
    port: int


_Served = TypeVar("_Served", bound=ServedSettings)


def serve(settings_class: Callable[[], _Served], create_app: Callable[[_Served], Any]) -> None:
    """A service's console entry point: read its settings from the environment and refuse
    insecure or out-of-range ones (one line naming the variable, exit 1), build the app, run it
    with uvicorn on the configured host and port."""
    import uvicorn

    from pulse_shared.config_checks import refuse_insecure_startup, refusing_to_start

    with refusing_to_start():
        refuse_insecure_startup(common_settings())
        settings = settings_class()
        app = create_app(settings)
    tune_gc()
    uvicorn.run(app, host=settings.host, port=settings.port)
