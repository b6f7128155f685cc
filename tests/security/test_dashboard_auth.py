"""Sign-in and roles on the reporting dashboard (security issue 15).

In process (Starlette's TestClient on the session's embedded store): every route needs a
user, the sign-in form (double-submit CSRF, no open redirect, cookie flags), sign-out
against the session's CSRF token, revocation within the recheck time, what each role sees
(``cx``: revenue-retention KPIs in total only), and single sign-on's role mapping.

End to end, as a new user would on the embedded default: ``pulse users add`` through the
CLI, ``pulse dashboard`` as a subprocess, then API calls, the browser's form flow and
``pulse users revoke``.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest
from auth_support import issue_token
from starlette.testclient import TestClient

sys.path.insert(0, str(Path(__file__).parents[1] / "reporting"))

from reporting_fixtures import alert, insert_alerts, insert_kpis, period_kpis

from pulse_reporting.domain.periods import parse_period
from pulse_reporting.main import ReportingComponent, build
from pulse_reporting.settings import ReportingSettings
from pulse_reporting.web import (
    DASHBOARD_POLICIES,
    SIGNIN_CSRF_COOKIE,
    SignIn,
    create_dashboard,
    oidc_role,
    safe_next,
)
from pulse_shared.access import Family, Role, kpi_family
from pulse_shared.auth import SESSION_COOKIE, Authenticator, AuthSettings, UserDirectory
from pulse_shared.bus import Bus, make_broker
from pulse_shared.store import Store
from pulse_testinfra import free_port

MONTH = parse_period("monthly", "2047-05")
QUERY = {"grain": "month", "period": MONTH.label, "model": "linear"}
SECRET = "test-session-secret-0123456789abcdefghij"
CSRF_FIELD = re.compile(r'name="csrf" value="([^"]+)"')


@pytest.fixture(scope="module")
def component(embedded_store: Store, tmp_path_factory: pytest.TempPathFactory
              ) -> ReportingComponent:
    insert_kpis(embedded_store, period_kpis(MONTH, 1.2) + period_kpis(MONTH.previous()))
    insert_alerts(embedded_store, [  # a channel CAC alert: acquisition, not for cx
        alert("auth-cac", dt.datetime(2047, 5, 10, 9, tzinfo=dt.UTC), period=MONTH.label)])
    settings = ReportingSettings(output_dir=tmp_path_factory.mktemp("auth-reports"),
                                 schedule_enabled=False)
    return build(embedded_store, Bus(make_broker(None), "reporting"), settings)


def add_user(store: Store, role: str) -> tuple[str, str]:
    """(name, token) of a new user of ``role``."""
    name = f"auth-{role}-{uuid.uuid4().hex[:8]}"
    return name, issue_token(store, role, name)


def dashboard(component: ReportingComponent, *, host: str | None = "127.0.0.1",
              base_url: str = "http://127.0.0.1", **settings: Any) -> TestClient:
    auth = Authenticator(UserDirectory(component.store),
                         AuthSettings(session_secret=SECRET, **settings))
    app = create_dashboard(component, authenticator=auth, host=host,
                           today=lambda: dt.date(2047, 6, 10))
    return TestClient(app, base_url=base_url, follow_redirects=False)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def signin_form(client: TestClient, next_path: str = "") -> str:
    """GET the sign-in page; the CSRF token of its form (its cookie is now in ``client``)."""
    page = client.get("/signin", params={"next": next_path} if next_path else None)
    assert page.status_code == 200
    found = CSRF_FIELD.search(page.text)
    assert found is not None and client.cookies.get(SIGNIN_CSRF_COOKIE) == found.group(1)
    return found.group(1)


def sign_in(client: TestClient, token: str, next_path: str = "") -> httpx.Response:
    csrf = signin_form(client, next_path)
    return client.post("/signin", data={"token": token, "csrf": csrf, "next": next_path})


# -- every route is guarded -----------------------------------------------------------


def test_every_route_needs_a_user_health_is_open(component: ReportingComponent) -> None:
    client = dashboard(component)
    assert client.get("/health").status_code == 200
    for path in DASHBOARD_POLICIES:
        api = client.get(path)
        assert api.status_code == 401, path
        assert api.headers["www-authenticate"].startswith("Bearer")
        page = client.get(path, headers={"accept": "text/html"})
        if path.startswith("/api/"):
            assert page.status_code == 401, path
        else:  # a browser is sent to sign in, and back afterwards
            assert page.status_code == 303, path
            assert page.headers["location"].startswith("/signin?next=")
    for credentials in ("Bearer nope", "Bearer pulse_0123456789abcdef_" + "x" * 43, "Basic a"):
        assert client.get("/api/overview", headers={"authorization": credentials}
                          ).status_code == 401
    forged = client.get("/api/overview", cookies={SESSION_COOKIE: "eyJzdWIiOiJ4In0.forged"})
    assert forged.status_code == 401


# -- sign-in form ---------------------------------------------------------------------


def test_sign_in_sets_an_httponly_lax_session_and_returns_to_the_page(
    component: ReportingComponent,
) -> None:
    name, token = add_user(component.store, "cmo")
    client = dashboard(component)
    wanted = "/campaigns?grain=month&period=2047-05"
    signed = sign_in(client, token, wanted)
    assert signed.status_code == 303 and signed.headers["location"] == wanted
    cookie = next(c for c in signed.headers.get_list("set-cookie")
                  if c.startswith(f"{SESSION_COOKIE}="))
    flags = {part.strip().lower() for part in cookie.split(";")[1:]}
    assert {"httponly", "samesite=lax", "path=/"} <= flags
    assert "secure" not in flags  # bound to loopback: local use over plain http
    page = client.get(wanted)
    assert page.status_code == 200 and "<h1>Campaigns" in page.text
    assert f">{name} · cmo<" in page.text and 'action="/signout"' in page.text
    assert token not in page.text and token not in cookie


def test_sign_in_without_or_with_a_wrong_csrf_token_is_refused(
    component: ReportingComponent,
) -> None:
    _, token = add_user(component.store, "cmo")
    client = dashboard(component)
    assert client.post("/signin", data={"token": token}).status_code == 403
    csrf = signin_form(client)
    for forged in ("", "x" * len(csrf), csrf[:-1]):
        r = client.post("/signin", data={"token": token, "csrf": forged})
        assert r.status_code == 403 and SESSION_COOKIE not in r.cookies
    # The right field without its cookie (another site's form) is refused too.
    other = dashboard(component)
    r = other.post("/signin", data={"token": token, "csrf": csrf})
    assert r.status_code == 403
    assert other.get("/api/overview").status_code == 401


def test_a_wrong_token_is_401_and_sets_no_session(component: ReportingComponent) -> None:
    _, token = add_user(component.store, "cmo")
    client = dashboard(component)
    for wrong in ("", "pulse_nope", token[:-2] + "zz"):
        r = sign_in(client, wrong)
        assert r.status_code == 401 and SESSION_COOKIE not in r.cookies
        assert "not valid" in r.text


@pytest.mark.parametrize("evil", [
    "https://evil.example/", "//evil.example/", "/\\evil.example", "\\\\evil.example",
    "javascript:alert(1)", "http:/evil.example", "/%0d%0aSet-Cookie:x=1\r\n", " //evil",
    "/signin", "/signout",
])
def test_next_never_leaves_the_site(component: ReportingComponent, evil: str) -> None:
    _, token = add_user(component.store, "cmo")
    r = sign_in(dashboard(component), token, evil)
    assert r.status_code == 303 and r.headers["location"] == "/"  # the role's first page


def test_safe_next() -> None:
    assert safe_next("/reports?x=1") == "/reports?x=1"
    for evil in ("//x", "https://x", "/\\x", "x", "", None, "/\x00", "/signin?next=/"):
        assert safe_next(evil) is None, evil


def test_sign_out_needs_the_session_csrf_token(component: ReportingComponent) -> None:
    _, token = add_user(component.store, "cmo")
    client = dashboard(component)
    sign_in(client, token)
    page = client.get("/reports")
    session_csrf = CSRF_FIELD.search(page.text)
    assert session_csrf is not None
    # A cross-site form cannot sign the user out: it does not know the token.
    assert client.post("/signout", data={}).status_code == 403
    assert client.post("/signout", data={"csrf": "guess"}).status_code == 403
    assert client.get("/reports").status_code == 200
    out = client.post("/signout", data={"csrf": session_csrf.group(1)})
    assert out.status_code == 303 and out.headers["location"] == "/signin"
    cleared = next(c for c in out.headers.get_list("set-cookie")
                   if c.startswith(f"{SESSION_COOKIE}="))
    assert "max-age=0" in cleared.lower()
    assert client.get("/reports", headers={"accept": "text/html"}).status_code == 303


def test_session_cookie_is_secure_unless_on_loopback(component: ReportingComponent) -> None:
    _, token = add_user(component.store, "cmo")
    exposed = dashboard(component, host="0.0.0.0", base_url="https://pulse.example")
    r = sign_in(exposed, token)
    cookie = next(c for c in r.headers.get_list("set-cookie")
                  if c.startswith(f"{SESSION_COOKIE}="))
    assert "secure" in cookie.lower()
    assert exposed.get("/").status_code == 200  # over https the browser sends it back
    forced = dashboard(component, host="0.0.0.0", cookie_secure=False)
    cookie = next(c for c in sign_in(forced, token).headers.get_list("set-cookie")
                  if c.startswith(f"{SESSION_COOKIE}="))
    assert "secure" not in cookie.lower()


def test_revoked_user_is_refused_within_the_recheck_time(
    component: ReportingComponent,
) -> None:
    name, token = add_user(component.store, "cmo")
    client = dashboard(component, recheck_s=0)
    sign_in(client, token)
    assert client.get("/api/periods").status_code == 200  # by the session
    assert client.get("/api/periods", headers=bearer(token)).status_code == 200
    UserDirectory(component.store).revoke(name, revoked_by="test")
    assert client.get("/api/periods").status_code == 401
    assert client.get("/", headers={"accept": "text/html"}).status_code == 303
    assert client.get("/api/periods", headers=bearer(token)).status_code == 401
    assert sign_in(dashboard(component), token).status_code == 401


# -- what each role sees --------------------------------------------------------------


def _kpis(body: dict[str, Any]) -> set[str]:
    names = {t["kpi"] for t in body["headline"]}
    names |= {t["kpi"] for t in body["trends"]} | {f["kpi"] for f in body["forecast"]}
    names |= {a["kpi"] for a in body["alerts"]}
    if body.get("to_date"):
        names |= {k["kpi"] for k in body["to_date"]["kpis"]}
    return names


def test_cx_sees_revenue_retention_in_total_only(component: ReportingComponent) -> None:
    _, cmo = add_user(component.store, "cmo")
    _, cx = add_user(component.store, "cx")
    client = dashboard(component)
    full = client.get("/api/overview", params=QUERY, headers=bearer(cmo)).json()
    assert {kpi_family(k) for k in _kpis(full)} >= {Family.ACQUISITION, Family.REVENUE}
    assert full["channels"] and "cac" in {a["kpi"] for a in full["alerts"]}

    answer = client.get("/api/overview", params=QUERY, headers=bearer(cx))
    assert answer.status_code == 200
    body = answer.json()
    shown = _kpis(body)
    assert shown and {kpi_family(k) for k in shown} == {Family.REVENUE}, shown
    assert "channels" not in body and body["alerts"] == [] and body["notes"] == []
    assert body["mrr_bridge"]["new"] == full["mrr_bridge"]["new"]  # MRR movements: yes
    assert all(f["dimension"] == "all" for f in body["forecast"])
    for path in ("/api/campaigns", "/campaigns", "/api/reports", "/reports", "/reports/file"):
        assert client.get(path, params=QUERY, headers=bearer(cx)).status_code == 403, path

    page = client.get("/", params=QUERY, headers=bearer(cx))
    assert page.status_code == 200
    assert 'id="channels"' not in page.text and 'id="alerts"' not in page.text
    assert 'data-kpi="spend"' not in page.text and 'data-kpi="mrr"' in page.text
    assert 'id="nav-campaigns"' not in page.text and 'id="nav-reports"' not in page.text
    cmo_page = client.get("/", params=QUERY, headers=bearer(cmo)).text
    assert 'id="channels"' in cmo_page and 'id="nav-campaigns"' in cmo_page


def test_platform_role_has_no_dashboard_pages(component: ReportingComponent) -> None:
    _, token = add_user(component.store, "platform")
    client = dashboard(component)
    for path in DASHBOARD_POLICIES:
        assert client.get(path, headers=bearer(token)).status_code == 403, path
    signed = sign_in(client, token, "/")
    assert signed.status_code == 303 and signed.headers["location"] == "/signin"
    assert "Your role has no dashboard pages" in client.get("/signin").text


# -- single sign-on -------------------------------------------------------------------


def test_oidc_role_claim_mapping() -> None:
    settings = AuthSettings(oidc_role_claim="groups",
                            oidc_role_map={"mkt-leadership": "cmo", "support": "cx"})
    assert oidc_role({"groups": ["staff", "support"]}, settings) is Role.CX
    assert oidc_role({"groups": "mkt-leadership"}, settings) is Role.CMO
    assert oidc_role({"groups": ["director"]}, settings) is Role.DIRECTOR  # a role name
    assert oidc_role({"groups": ["staff", 7, None]}, settings) is None
    assert oidc_role({"pulse_role": "cmo"}, settings) is None  # another claim
    assert oidc_role({}, settings) is None
    assert oidc_role({"pulse_role": ["nobody", "CX"]}, AuthSettings()) is Role.CX


def test_single_sign_on_routes_only_when_configured(component: ReportingComponent) -> None:
    plain = dashboard(component)
    assert "signin-sso" not in plain.get("/signin").text
    assert plain.get("/signin/oidc").status_code in (401, 404)
    assert plain.get("/auth/callback").status_code in (401, 404)
    auth = Authenticator(None, AuthSettings(
        oidc_metadata_url="https://idp.example/.well-known/openid-configuration",
        oidc_client_id="pulse"))
    paths = [path for path, _ in SignIn(auth).routes()]
    assert {"/signin/oidc", "/auth/callback"} <= set(paths)
    sso = dashboard(component, oidc_metadata_url="https://idp.example/.well-known/x",
                    oidc_client_id="pulse")
    assert 'id="signin-sso"' in sso.get("/signin").text
    # The callback without the state of a started sign-in is refused, never a session.
    r = sso.get("/auth/callback", params={"code": "x", "state": "forged"})
    assert r.status_code == 403 and SESSION_COOKIE not in r.cookies


# -- end to end: pulse users + pulse dashboard ------------------------------------------


def pulse(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pulse_cli.main", *args], env=env,
                          capture_output=True, text=True, timeout=180, check=False)


@pytest.fixture
def data_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PULSE_")}
    env.update(PULSE_DATA_DIR=str(tmp_path / "data"), PULSE_AUTH_RECHECK_S="0",
               PULSE_AUTH_SESSION_SECRET=SECRET,
               PULSE_REPORTING_OUTPUT_DIR=str(tmp_path / "reports"))
    return env


def start_dashboard(env: dict[str, str], port: int) -> Iterator[str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "pulse_cli.main", "dashboard", "--port", str(port)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            assert process.poll() is None, process.communicate()[1][-2000:]
            try:
                if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "pulse dashboard did not start"
            time.sleep(0.25)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_new_user_signs_in_to_pulse_dashboard(data_env: dict[str, str]) -> None:
    added = pulse(data_env, "users", "add", "alice", "--role", "cmo")
    assert added.returncode == 0, added.stderr
    alice = added.stdout.strip().splitlines()[-1]
    assert alice.startswith("pulse_") and "shown once" in added.stderr
    carol = pulse(data_env, "users", "add", "carol", "--role", "cx").stdout.strip().split()[-1]
    wrong = pulse(data_env, "users", "add", "bob", "--role", "boss")
    assert wrong.returncode == 1 and wrong.stderr.count("\n") == 1
    assert "unknown role 'boss'" in wrong.stderr
    listed = pulse(data_env, "users", "list", "--format", "csv")
    assert listed.returncode == 0 and alice not in listed.stdout
    assert listed.stdout.splitlines()[0].startswith("name,role,status,created,expires")
    assert {line.split(",")[0] for line in listed.stdout.splitlines()[1:]} == {"alice", "carol"}

    port = free_port()
    server = start_dashboard(data_env, port)
    base = next(server)
    try:
        assert httpx.get(f"{base}/api/overview").status_code == 401
        assert httpx.get(f"{base}/api/overview", headers=bearer(alice)).status_code == 200
        assert httpx.get(f"{base}/api/campaigns", headers=bearer(carol)).status_code == 403
        cx = httpx.get(f"{base}/api/overview", headers=bearer(carol), timeout=60)
        assert cx.status_code == 200
        full = httpx.get(f"{base}/api/overview", headers=bearer(alice), timeout=60).json()
        assert any(kpi_family(k) is Family.ACQUISITION for k in _kpis(full))
        assert all(kpi_family(k) is Family.REVENUE for k in _kpis(cx.json()))
        assert "channels" not in cx.json()

        with httpx.Client(base_url=base, follow_redirects=False, timeout=60) as browser:
            first = browser.get("/", headers={"accept": "text/html"})
            assert first.status_code == 303
            assert first.headers["location"] == "/signin?next=%2F"
            form = browser.get(first.headers["location"])
            csrf = CSRF_FIELD.search(form.text)
            assert csrf is not None
            assert browser.post("/signin", data={"token": alice}).status_code == 403
            signed = browser.post("/signin", data={"token": alice, "csrf": csrf.group(1),
                                                   "next": "/"})
            assert signed.status_code == 303 and signed.headers["location"] == "/"
            assert SESSION_COOKIE in browser.cookies
            page = browser.get("/")
            assert page.status_code == 200 and ">alice · cmo<" in page.text
            session = browser.cookies[SESSION_COOKIE]

            # The embedded data directory is this dashboard's while it runs: the CLI
            # says so in one line instead of failing obscurely.
            busy = pulse(data_env, "users", "revoke", "alice")
            assert busy.returncode == 1 and "in use" in busy.stderr
            assert busy.stderr.count("\n") == 1
    finally:
        server.close()

    revoked = pulse(data_env, "users", "revoke", "alice")
    assert revoked.returncode == 0, revoked.stderr
    assert "alice,cmo,revoked" in pulse(data_env, "users", "list", "--format", "csv").stdout
    server = start_dashboard(data_env, port)
    base = next(server)
    try:  # same session key: the session is intact, but its user is revoked
        assert httpx.get(f"{base}/api/overview", headers=bearer(alice)).status_code == 401
        assert httpx.get(f"{base}/api/overview",
                         cookies={SESSION_COOKIE: session}).status_code == 401
        assert httpx.get(f"{base}/api/overview", headers=bearer(carol)).status_code == 200
    finally:
        server.close()


# -- single sign-on against a local identity provider -----------------------------------


class FakeIdentityProvider:
    """A minimal OpenID Connect provider on 127.0.0.1: discovery, JWKS and a token
    endpoint issuing RS256 ID tokens for codes the test hands out."""

    def __init__(self) -> None:
        from joserfc.jwk import RSAKey

        self.key = RSAKey.generate_key(2048, parameters={"kid": "test-key"})
        self.port = free_port()
        self.issuer = f"http://127.0.0.1:{self.port}"
        self.codes: dict[str, dict[str, Any]] = {}
        self.client_secret = "idp-client-secret-0123456789"

    def issue_code(self, claims: dict[str, Any]) -> str:
        code = uuid.uuid4().hex
        self.codes[code] = claims
        return code

    def app(self) -> Any:
        from joserfc import jwt
        from starlette.applications import Starlette
        from starlette.requests import Request
        from starlette.responses import JSONResponse
        from starlette.routing import Route

        async def metadata(request: Request) -> JSONResponse:
            return JSONResponse({
                "issuer": self.issuer,
                "authorization_endpoint": f"{self.issuer}/authorize",
                "token_endpoint": f"{self.issuer}/token",
                "jwks_uri": f"{self.issuer}/jwks",
                "response_types_supported": ["code"],
                "id_token_signing_alg_values_supported": ["RS256"],
            })

        async def jwks(request: Request) -> JSONResponse:
            return JSONResponse({"keys": [self.key.as_dict(private=False)]})

        async def token(request: Request) -> JSONResponse:
            form = dict(parse_qsl((await request.body()).decode()))
            claims = self.codes.pop(form.get("code", ""), None)
            if claims is None:
                return JSONResponse({"error": "invalid_grant"}, status_code=400)
            now = int(time.time())
            id_token = jwt.encode(
                {"alg": "RS256", "kid": "test-key"},
                {"iss": self.issuer, "aud": "pulse", "iat": now, "exp": now + 300, **claims},
                self.key,
            )
            return JSONResponse({"access_token": uuid.uuid4().hex, "token_type": "Bearer",
                                 "expires_in": 300, "id_token": id_token})

        return Starlette(routes=[
            Route("/.well-known/openid-configuration", metadata), Route("/jwks", jwks),
            Route("/token", token, methods=["POST"]),
        ])


@pytest.fixture(scope="module")
def identity_provider() -> Iterator[FakeIdentityProvider]:
    import threading

    import uvicorn

    idp = FakeIdentityProvider()
    server = uvicorn.Server(uvicorn.Config(idp.app(), host="127.0.0.1", port=idp.port,
                                           log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        assert time.monotonic() < deadline, "identity provider did not start"
        time.sleep(0.02)
    yield idp
    server.should_exit = True
    thread.join(timeout=10)


def sso_dashboard(component: ReportingComponent, idp: FakeIdentityProvider) -> TestClient:
    return dashboard(
        component, oidc_metadata_url=f"{idp.issuer}/.well-known/openid-configuration",
        oidc_client_id="pulse", oidc_client_secret=idp.client_secret,
        oidc_role_claim="groups", oidc_role_map={"mkt-leadership": "cmo"},
    )


def start_sso(client: TestClient, next_path: str) -> dict[str, str]:
    """Follow /signin/oidc to the provider; the authorization request's parameters."""
    r = client.get("/signin/oidc", params={"next": next_path})
    assert r.status_code == 302, r.text
    location = urlsplit(r.headers["location"])
    assert location.path == "/authorize"
    params = dict(parse_qsl(location.query))
    assert params["client_id"] == "pulse" and params["redirect_uri"].endswith("/auth/callback")
    assert "openid" in params["scope"].split()
    return params


def test_single_sign_on_maps_the_role_claim_to_a_session(
    component: ReportingComponent, identity_provider: FakeIdentityProvider,
) -> None:
    client = sso_dashboard(component, identity_provider)
    assert 'id="signin-sso"' in client.get("/signin").text
    request = start_sso(client, "/reports")
    code = identity_provider.issue_code({
        "sub": "u-1", "email": "dana@example.com", "nonce": request["nonce"],
        "groups": ["staff", "mkt-leadership"],
    })
    done = client.get("/auth/callback", params={"code": code, "state": request["state"]})
    assert done.status_code == 303 and done.headers["location"] == "/reports"
    page = client.get("/reports")
    assert page.status_code == 200 and ">dana@example.com · cmo<" in page.text


def test_single_sign_on_refuses_users_without_a_pulse_role(
    component: ReportingComponent, identity_provider: FakeIdentityProvider,
) -> None:
    client = sso_dashboard(component, identity_provider)
    request = start_sso(client, "/")
    code = identity_provider.issue_code({"sub": "u-2", "email": "eve@example.com",
                                         "nonce": request["nonce"], "groups": ["staff"]})
    refused = client.get("/auth/callback", params={"code": code, "state": request["state"]})
    assert refused.status_code == 403 and "has no Pulse role" in refused.text
    assert SESSION_COOKIE not in client.cookies
    assert client.get("/api/overview").status_code == 401
    # A replayed or forged state gets nothing either.
    request = start_sso(client, "/")
    code = identity_provider.issue_code({"sub": "u-3", "nonce": request["nonce"],
                                         "groups": ["cmo"]})
    forged = client.get("/auth/callback", params={"code": code, "state": "forged"})
    assert forged.status_code == 403 and SESSION_COOKIE not in client.cookies


@pytest.mark.clickhouse
def test_revoking_a_user_ends_its_access_to_a_running_dashboard(
    server_store: Store, clickhouse_server: Any, tmp_path: Path,
) -> None:
    """On a ClickHouse server the CLI and a running ``pulse dashboard`` share the users
    table: ``pulse users revoke`` ends the user's token and browser session at once
    (PULSE_AUTH_RECHECK_S=0)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PULSE_")}
    env.update(
        PULSE_CLICKHOUSE_URL=clickhouse_server.url,
        PULSE_CLICKHOUSE_USER=clickhouse_server.writer_user,
        PULSE_CLICKHOUSE_PASSWORD=clickhouse_server.writer_password,
        # The dashboard reads users with the read-only user, as the service does.
        PULSE_REPORTING_CLICKHOUSE_USER=clickhouse_server.reader_user,
        PULSE_REPORTING_CLICKHOUSE_PASSWORD=clickhouse_server.reader_password,
        PULSE_REPORTING_OUTPUT_DIR=str(tmp_path / "reports"),
        PULSE_AUTH_RECHECK_S="0",
    )
    name = f"frank-{uuid.uuid4().hex[:8]}"
    added = pulse(env, "users", "add", name, "--role", "director")
    assert added.returncode == 0, added.stderr
    token = added.stdout.strip().splitlines()[-1]
    server = start_dashboard(env, free_port())
    base = next(server)
    try:
        with httpx.Client(base_url=base, follow_redirects=False, timeout=60) as browser:
            form = browser.get("/signin")
            csrf = CSRF_FIELD.search(form.text)
            assert csrf is not None
            signed = browser.post("/signin", data={"token": token, "csrf": csrf.group(1)})
            assert signed.status_code == 303, signed.text
            assert browser.get("/api/periods").status_code == 200
            assert httpx.get(f"{base}/api/periods", headers=bearer(token)).status_code == 200

            revoked = pulse(env, "users", "revoke", name)
            assert revoked.returncode == 0, revoked.stderr
            assert browser.get("/api/periods").status_code == 401
            assert browser.get("/", headers={"accept": "text/html"}).status_code == 303
            assert httpx.get(f"{base}/api/periods", headers=bearer(token)).status_code == 401
    finally:
        server.close()
