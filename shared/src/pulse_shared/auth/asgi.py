"""The HTTP guard every Pulse surface uses: an ASGI wrapper that authenticates the caller
and checks its role's permission for the route (and method) before the route runs.

* No or invalid credentials → 401 (``WWW-Authenticate: Bearer``); a browser asking for a
  page is sent to the sign-in page instead when the surface has one.
* A role without the permission → 403.
* The route sees the caller as ``scope["pulse.principal"]``.

Routes declare a :data:`RoutePolicy` (one permission, or one per HTTP method); a route with
no policy is refused when the app is built (:func:`guard_routes`), so nothing new can be
served unauthenticated by accident. Only :data:`PUBLIC_PATHS` are open.
"""

from __future__ import annotations

import asyncio
import html
import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import quote

from pulse_shared.access import Permission, can
from pulse_shared.auth.authenticator import Authenticator, Principal
from pulse_shared.logging import get_logger

log = get_logger(__name__)

ASGIApp = Callable[..., Awaitable[None]]
RoutePolicy = Permission | Mapping[str, Permission]
"""A route's permission, or per HTTP method (``{"GET": VIEW_ALERTS, "POST": …}``);
a method not listed is refused (405)."""

#: Open to anyone: liveness for orchestrators, metrics for Prometheus (no secrets, no key
#: or user names in any label).
PUBLIC_PATHS: frozenset[str] = frozenset({"/health", "/metrics"})
PRINCIPAL = "pulse.principal"


def _headers(scope: dict[str, Any]) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}


def _cookies(headers: Mapping[str, str]) -> dict[str, str]:
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(headers.get("cookie", ""))
    except Exception:  # a malformed Cookie header is no credential
        return {}
    return {key: morsel.value for key, morsel in jar.items()}


async def send_json(
    send: Any, status: int, payload: Any, headers: Sequence[tuple[bytes, bytes]] = ()
) -> None:
    await send({
        "type": "http.response.start", "status": status,
        "headers": [(b"content-type", b"application/json"), *headers],
    })
    await send({"type": "http.response.body", "body": json.dumps(payload).encode()})


def _wants_page(scope: dict[str, Any]) -> bool:
    """A browser asking for a page (not an API client)."""
    accept = _headers(scope).get("accept", "")
    return "text/html" in accept and not scope["path"].startswith("/api/")


async def _send_forbidden_page(send: Any, reason: str) -> None:
    body = (
        "<!DOCTYPE html><meta charset=utf-8><title>Not allowed</title>"
        f"<h1>Not allowed</h1><p>{html.escape(reason)}.</p><p><a href=\"/\">Back</a></p>"
    ).encode()
    await send({"type": "http.response.start", "status": 403,
                "headers": [(b"content-type", b"text/html; charset=utf-8")]})
    await send({"type": "http.response.body", "body": body})


def required_permission(policy: RoutePolicy, method: str) -> Permission | None:
    if isinstance(policy, Permission):
        return policy
    method = method.upper()
    if method == "HEAD":
        method = "GET"
    return policy.get(method)


async def authenticate(auth: Authenticator, scope: dict[str, Any]) -> Principal | None:
    headers = _headers(scope)
    return await asyncio.to_thread(auth.authenticate, headers, _cookies(headers))


def guard(
    app: ASGIApp, policy: RoutePolicy, auth: Authenticator, *, signin_path: str | None = None,
) -> ASGIApp:
    """``app`` behind authentication and ``policy``."""

    async def guarded(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        permission = required_permission(policy, scope.get("method", "GET"))
        if permission is None:
            await send_json(send, 405, {"error": "method not allowed"})
            return
        principal = await authenticate(auth, scope)
        if principal is None:
            if signin_path and _wants_page(scope):
                target = scope["path"] + (
                    "?" + scope["query_string"].decode() if scope.get("query_string") else ""
                )
                location = f"{signin_path}?next={quote(target, safe='')}"
                await send({"type": "http.response.start", "status": 303,
                            "headers": [(b"location", location.encode())]})
                await send({"type": "http.response.body", "body": b""})
                return
            await send_json(
                send, 401, {"error": "sign in: send Authorization: Bearer <token>"},
                [(b"www-authenticate", b'Bearer realm="pulse"')],
            )
            return
        if not can(principal.role, permission):
            log.info("access_denied", user=principal.name, role=principal.role.value,
                     path=scope["path"], permission=permission.value)
            reason = f"role {principal.role.value!r} may not {permission.value}"
            if _wants_page(scope):
                await _send_forbidden_page(send, reason)
                return
            await send_json(send, 403, {"error": reason})
            return
        scope[PRINCIPAL] = principal
        await app(scope, receive, send)

    guarded.policy = policy  # type: ignore[attr-defined]  # read by the route matrix test
    return guarded


def principal_of(scope: Mapping[str, Any]) -> Principal | None:
    found = scope.get(PRINCIPAL)
    return found if isinstance(found, Principal) else None


class UnguardedRoute(ValueError):
    pass


def guard_routes(
    routes: Sequence[tuple[str, ASGIApp]],
    policies: Mapping[str, RoutePolicy],
    auth: Authenticator,
    *,
    public: frozenset[str] = PUBLIC_PATHS,
    signin_path: str | None = None,
) -> list[tuple[str, ASGIApp]]:
    """Every route behind its policy; :class:`UnguardedRoute` names a route that has none
    (and is not public)."""
    guarded: list[tuple[str, ASGIApp]] = []
    for path, app in routes:
        if path in public:
            guarded.append((path, app))
            continue
        policy = policies.get(path)
        if policy is None:
            raise UnguardedRoute(f"route {path} has no access policy (pulse_shared.auth)")
        guarded.append((path, guard(app, policy, auth, signin_path=signin_path)))
    return guarded
