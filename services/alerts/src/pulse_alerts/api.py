"""HTTP API for silences (mounted at ``/api/silences`` in the service app).

``GET`` lists silences (``?all=1`` includes expired ones); ``POST`` with JSON
``{"matchers": {"alertname": "x"}, "duration": "2h", "created_by": "", "comment": ""}``
creates one; ``DELETE /api/silences?id=<id>`` expires one now.

Listing needs :attr:`Permission.VIEW_ALERTS`, creating and expiring
:attr:`Permission.MANAGE_SILENCES` (marketing ops and platform); a silence records the
signed-in user as its author (``created_by`` in the body is only a fallback note).
"""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from pulse_alerts import storage
from pulse_alerts.silences import create_silence, expire_silence, parse_matchers, silence_json
from pulse_shared.access import Permission
from pulse_shared.auth import RoutePolicy, principal_of

if TYPE_CHECKING:
    from pulse_alerts.app import AlertsComponent

Scope = dict[str, Any]
SILENCES_POLICY: RoutePolicy = {
    "GET": Permission.VIEW_ALERTS,
    "POST": Permission.MANAGE_SILENCES,
    "DELETE": Permission.MANAGE_SILENCES,
}


async def _read_body(receive: Any) -> bytes:
    body = b""
    while True:
        message = await receive()
        chunk: bytes = message.get("body", b"")
        body += chunk
        if not message.get("more_body"):
            return body


async def _respond(send: Any, status: int, payload: Any) -> None:
    data = json.dumps(payload).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": data})


def silences_asgi(component: AlertsComponent) -> Any:
    async def app(scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        method = scope["method"].upper()
        path = scope.get("path", "")
        store = component.store
        now = component.clock()
        query = parse_qs(scope.get("query_string", b"").decode())
        try:
            if method == "GET":
                active_at = None if query.get("all") else now
                silences = await asyncio.to_thread(storage.load_silences, store, active_at)
                await _respond(send, 200, [silence_json(s, now) for s in silences])
            elif method == "POST":
                body = json.loads(await _read_body(receive) or b"{}")
                who = principal_of(scope)
                author = who.name if who is not None else str(body.get("created_by", ""))
                silence = await asyncio.to_thread(
                    create_silence,
                    store,
                    parse_matchers(body.get("matchers") or {}),
                    str(body.get("duration", "2h")),
                    now,
                    author,
                    str(body.get("comment", "")),
                )
                await component.reload_silences()
                await _respond(send, 201, silence_json(silence, now))
            elif method == "DELETE":
                silence_id = (query.get("id") or [path.rstrip("/").rsplit("/", 1)[-1]])[0]
                expired = await asyncio.to_thread(expire_silence, store, silence_id, now)
                await component.reload_silences()
                if expired is None:
                    await _respond(send, 404, {"error": f"no silence {silence_id}"})
                else:
                    await _respond(send, 200, silence_json(expired, now))
            else:
                await _respond(send, 405, {"error": "method not allowed"})
        except (ValueError, json.JSONDecodeError) as exc:
            await _respond(send, 400, {"error": str(exc)})

    return app
