"""Role × endpoint matrix over every route of every service, read from the apps themselves
(so a route added later is covered, or fails here for having no policy).

Alerts, KPI, attribution and reporting: anonymous → 401; a role without the route's
permission (pulse_shared.access) → 403; a role with it → neither. Ingest: the same with
API keys scoped by event kind. ``/health`` and ``/metrics`` are open and ``/metrics``
names no user, token or key.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from auth_support import issue_token

from pulse_shared.access import ROLE_NAMES, Permission, Role, can
from pulse_shared.auth import PUBLIC_PATHS
from pulse_shared.auth.asgi import required_permission
from pulse_shared.settings import common_settings
from pulse_shared.store import Store

# Paths through which a user obtains a session: open by design (they authenticate).
SIGNIN_PREFIXES = ("/signin", "/signout", "/auth/")
# A request body that passes validation for routes that take one (so an allowed role
# gets past the guard and the route answers for itself).
BODIES: dict[tuple[str, str], Any] = {
    ("/api/silences", "POST"): {"matchers": {"alertname": "matrix-test"}, "duration": "1m"},
}


@pytest.fixture
def embedded_env(
    embedded_data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
    monkeypatch.setenv("PULSE_DATA_DIR", str(embedded_data_dir))
    monkeypatch.delenv("PULSE_CLICKHOUSE_URL", raising=False)
    monkeypatch.delenv("PULSE_KAFKA_BOOTSTRAP", raising=False)
    common_settings.cache_clear()
    yield
    common_settings.cache_clear()


def service_app(name: str, tmp_path: Path) -> Any:
    if name == "alerts":
        from pulse_alerts.main import create_app as alerts_app

        return alerts_app()
    if name == "kpi":
        from pulse_kpi.main import create_app as kpi_app

        return kpi_app()
    if name == "attribution":
        from pulse_attribution.main import create_app as attribution_app

        return attribution_app()
    from pulse_reporting.main import create_app as reporting_app
    from pulse_reporting.settings import ReportingSettings

    return reporting_app(ReportingSettings(output_dir=tmp_path, schedule_enabled=False))


def methods(policy: Any) -> list[str]:
    return ["GET"] if isinstance(policy, Permission) else list(policy)


@pytest.mark.usefixtures("embedded_env")
@pytest.mark.parametrize("service", ["alerts", "kpi", "attribution", "reporting"])
async def test_every_route_checks_the_callers_role(
    service: str, embedded_store: Store, tmp_path: Path
) -> None:
    app = service_app(service, tmp_path)
    tokens = {role: issue_token(embedded_store, role) for role in ROLE_NAMES}
    checked = 0
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url=f"http://{service}"
    ) as client:
        for path, route in app.routes:
            if path in PUBLIC_PATHS:
                assert (await client.get(path)).status_code not in (401, 403), path
                continue
            policy = getattr(route, "policy", None)
            if policy is None:
                assert path.startswith(SIGNIN_PREFIXES), f"{service} {path} has no policy"
                continue
            for method in methods(policy):
                permission = required_permission(policy, method)
                assert permission is not None
                body = BODIES.get((path, method))
                anonymous = await client.request(method, path, json=body)
                assert anonymous.status_code == 401, (service, path, method)
                assert "bearer" in anonymous.headers["www-authenticate"].lower()
                bad = await client.request(
                    method, path, json=body, headers={"Authorization": "Bearer pulse_nope"}
                )
                assert bad.status_code == 401, (service, path, method)
                for role in ROLE_NAMES:
                    answer = await client.request(
                        method, path, json=body,
                        headers={"Authorization": f"Bearer {tokens[role]}"},
                    )
                    if can(role, permission):
                        assert answer.status_code not in (401, 403, 405), (
                            service, path, method, role, answer.status_code, answer.text[:200])
                    else:
                        assert answer.status_code == 403, (service, path, method, role)
                    checked += 1
        metrics = (await client.get("/metrics")).text
    assert checked >= len(ROLE_NAMES)  # every service has at least its API documents
    for role, token in tokens.items():
        assert token.split("_")[1] not in metrics, f"a {role} token id is in /metrics"


@pytest.mark.usefixtures("embedded_env")
async def test_silences_are_managed_only_by_marketing_ops_and_platform(
    embedded_store: Store, tmp_path: Path
) -> None:
    """The acceptance example: muting every alert is an operations action, and the
    silence names who set it (the signed-in user, not a body field)."""
    app = service_app("alerts", tmp_path)
    body = {"matchers": {"alertname": "*"}, "duration": "2h", "created_by": "someone-else"}
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://alerts"
    ) as client:
        assert (await client.post("/api/silences", json=body)).status_code == 401
        for role in (Role.CMO, Role.DIRECTOR, Role.CX):
            headers = {"Authorization": f"Bearer {issue_token(embedded_store, role)}"}
            assert (await client.post("/api/silences", json=body, headers=headers)
                    ).status_code == 403
        ops = f"ops-{uuid.uuid4().hex[:8]}"
        token = issue_token(embedded_store, Role.MARKETING_OPS, ops)
        created = await client.post(
            "/api/silences", json=body, headers={"Authorization": f"Bearer {token}"}
        )
        assert created.status_code == 201 and created.json()["created_by"] == ops
        forever = {**body, "duration": "876000h"}
        refused = await client.post(
            "/api/silences", json=forever, headers={"Authorization": f"Bearer {token}"}
        )
        assert refused.status_code == 400 and "90 days" in refused.json()["error"]


async def test_ingest_routes_need_a_key_allowed_for_the_kind() -> None:
    """Ingest's callers are source tools with API keys scoped to event kinds: every route
    but /health and /metrics refuses a missing key (401) and a key outside its kinds
    (403)."""
    from fastapi.routing import APIRoute

    from pulse_ingest.api import build_api
    from pulse_ingest.domain.normalize import KINDS
    from pulse_ingest.service import IngestService
    from pulse_ingest.settings import ApiKey, IngestSettings, hash_api_key

    class Bus:
        async def publish(self, topic: Any, events: Any) -> None:
            return None

    spend_key = "spend-only-key-0123456789abcdefghijkl"
    all_key = "all-kinds-key-0123456789abcdefghijklmn"
    settings = IngestSettings(
        pii_salt="matrix-salt-0123456789abcdef",
        api_keys=[ApiKey(name="spend-tool", key_hash=hash_api_key(spend_key), kinds=["spend"]),
                  ApiKey(name="etl", key_hash=hash_api_key(all_key), kinds=[])],
    )
    app = build_api(IngestService(Bus(), settings))  # type: ignore[arg-type]
    routes = [r for r in app.routes if isinstance(r, APIRoute)]
    assert {f"/v1/{k}" for k in KINDS} <= {r.path for r in routes}
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://ingest"
    ) as client:
        for route in routes:
            path = route.path.replace("{source}", "hubspot_deals")
            method = sorted(route.methods)[0]
            if path in PUBLIC_PATHS:
                assert (await client.request(method, path)).status_code not in (401, 403)
                continue
            assert (await client.request(method, path, json=[])).status_code == 401, path
            full = await client.request(method, path, json=[], headers={"X-API-Key": all_key})
            assert full.status_code not in (401, 403), path
            scoped = await client.request(
                method, path, json=[], headers={"X-API-Key": spend_key}
            )
            allowed = path in ("/v1/spend", "/openapi.json")
            assert (scoped.status_code not in (401, 403)) == allowed, path
        metrics = (await client.get("/metrics")).text
    assert "spend-tool" not in metrics and "etl" not in metrics


@pytest.mark.usefixtures("embedded_env")
async def test_a_browser_gets_pages_for_sign_in_and_refusal(
    embedded_store: Store, tmp_path: Path
) -> None:
    """Pages answer browsers with pages: no session → the sign-in page, a role without
    the page's permission → an HTML 403 that escapes what it says."""
    app = service_app("reporting", tmp_path)
    html = {"Accept": "text/html"}
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://reporting"
    ) as client:
        anonymous = await client.get("/campaigns", headers=html)
        assert anonymous.status_code == 303
        assert anonymous.headers["location"].startswith("/signin?next=%2Fcampaigns")
        cx = {**html, "Authorization": f"Bearer {issue_token(embedded_store, Role.CX)}"}
        refused = await client.get("/campaigns", headers=cx)
        assert refused.status_code == 403
        assert refused.headers["content-type"].startswith("text/html")
        assert "may not view_campaigns" in refused.text
        api = await client.get("/api/campaigns", headers=cx)  # APIs stay JSON
        assert api.status_code == 403 and api.json()["error"]
