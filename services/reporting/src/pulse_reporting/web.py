"""Dashboard served by the reporting service: overview, campaigns, report list, JSON API.

Pages and API are built from the very same :class:`Report` the report files use, so the
numbers on a page always equal the API's. Mounted on the service's FastStream ASGI app as
exact-path routes (see :func:`dashboard_routes`), or served alone by ``pulse dashboard``
(:func:`create_dashboard`); both behind the same sign-in (:mod:`pulse_shared.auth`):

* every page and API route has a permission (:data:`DASHBOARD_POLICIES`); API clients send
  ``Authorization: Bearer <token>``, browsers sign in at ``/signin`` (paste a token, or
  single sign-on through the company's OpenID Connect provider when configured) and carry
  the signed ``pulse_session`` cookie;
* what a page or API answer shows is cut to the caller's role (:func:`scoped_report`):
  e.g. ``cx`` sees revenue-retention KPIs in total only — no channels, campaigns, spend or
  model comparison.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import html
import ipaddress
import re
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, quote, urlsplit

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import (
    FileResponse,
    HTMLResponse,
    JSONResponse,
    RedirectResponse,
    Response,
)
from starlette.routing import Route

from pulse_reporting.domain.assemble import assemble_report
from pulse_reporting.domain.model import Report
from pulse_reporting.domain.periods import (
    BY_GRAIN,
    Period,
    PeriodError,
    ReportKind,
    last_complete,
    parse_period,
)
from pulse_reporting.domain.personas import (
    PERSONAS,
    PersonaInputs,
    PersonaView,
    churn_risks,
    persona_kpis,
    persona_view,
)
from pulse_reporting.domain.scoping import scoped_report
from pulse_reporting.domain.to_date import ToDate, daily_names, period_to_date, running_period
from pulse_reporting.generate import read_inputs
from pulse_reporting.metrics import DASHBOARD_REQUESTS
from pulse_reporting.render.drawing import report_charts
from pulse_reporting.render.html import _css, _env
from pulse_shared.access import Permission, Role, kpi_visible, parse_role
from pulse_shared.access import scope as role_scope
from pulse_shared.attribution_models import MODEL_NAMES
from pulse_shared.auth import (
    PUBLIC_PATHS,
    SESSION_COOKIE,
    Authenticator,
    AuthSettings,
    Principal,
    RoutePolicy,
    UserDirectory,
    guard_routes,
    principal_of,
)
from pulse_shared.logging import get_logger
from pulse_shared.periods import period_complete
from pulse_shared.service import health_asgi, store_health

if TYPE_CHECKING:
    from pulse_reporting.app import ReportingComponent

log = get_logger(__name__)

GRAINS = {grain.value: kind for grain, kind in BY_GRAIN.items()}
#: The permission of every dashboard route (a route without one cannot be served:
#: :func:`pulse_shared.auth.guard_routes` refuses it).
DASHBOARD_POLICIES: dict[str, RoutePolicy] = {
    "/": Permission.VIEW_OVERVIEW,
    "/api/overview": Permission.VIEW_OVERVIEW,
    "/api/periods": Permission.VIEW_OVERVIEW,
    "/campaigns": Permission.VIEW_CAMPAIGNS,
    "/api/campaigns": Permission.VIEW_CAMPAIGNS,
    "/reports": Permission.VIEW_REPORTS,
    "/reports/file": Permission.VIEW_REPORTS,
    "/api/reports": Permission.VIEW_REPORTS,
    # persona views: CMO and marketing ops need channel economics; cx opens its own
    **{f"/persona/{key}": spec.permission for key, spec in PERSONAS.items()},
    **{f"/api/persona/{key}": spec.permission for key, spec in PERSONAS.items()},
}
PATHS = tuple(DASHBOARD_POLICIES)
#: Pages in the navigation, each shown only to roles that may open it.
NAV_PAGES: tuple[tuple[str, str, str, Permission], ...] = (
    ("overview", "/", "Overview", Permission.VIEW_OVERVIEW),
    ("campaigns", "/campaigns", "Campaigns", Permission.VIEW_CAMPAIGNS),
    *((f"persona-{key}", f"/persona/{key}", spec.nav, spec.permission)
      for key, spec in PERSONAS.items()),
    ("reports", "/reports", "Reports", Permission.VIEW_REPORTS),
)
SIGNIN_PATH = "/signin"
SIGNOUT_PATH = "/signout"
OIDC_START_PATH = "/signin/oidc"
OIDC_CALLBACK_PATH = "/auth/callback"
#: Double-submit cookie of the sign-in form (its value is also the form's hidden field).
SIGNIN_CSRF_COOKIE = "pulse_signin_csrf"
#: Authlib keeps the OIDC state and nonce in this signed cookie between the redirect to
#: the identity provider and its callback.
OIDC_STATE_COOKIE = "pulse_oidc_state"
CSRF_TOKEN = re.compile(r"[A-Za-z0-9_-]{32}")  # secrets.token_urlsafe(24)
MAX_FORM_BYTES = 16 * 1024
CACHE_SECONDS = 30.0
# Daily history read for the to-date panel's landing forecast (before the running period).
TO_DATE_HISTORY_DAYS = 120
# Reports read trailing trends and year-ago periods, and ClickHouse DateTime ends in 2106:
# a period outside these years is refused (400) instead of failing deep in a query.
PERIOD_YEARS = (1980, 2099)


class BadRequest(ValueError):
    pass


def selected_period(kind: ReportKind, text: str) -> Period:
    """The period a user asked for, or :class:`BadRequest` (garbage, impossible dates such
    as ``9999-12`` whose end is past year 9999, years outside :data:`PERIOD_YEARS`)."""
    first, last = PERIOD_YEARS
    outside = BadRequest(
        f"period {text.strip()[:40]!r} is outside the supported years {first}-{last}"
    )
    year = text.strip()[:4]
    if year.isdigit() and not first <= int(year) <= last:
        raise outside  # before the calendar arithmetic, which ends in year 9999
    try:
        period = parse_period(kind, text)
    except PeriodError as exc:
        raise BadRequest(str(exc)) from exc
    except (ValueError, OverflowError):  # pragma: no cover - years are checked above
        raise outside from None
    if not first <= period.start.year <= last:  # 1980-W01 starts on 1979-12-31
        raise outside
    return period


class Dashboard:
    def __init__(
        self, component: ReportingComponent, today: Callable[[], dt.date] | None = None
    ) -> None:
        self.component = component
        self._today = today
        self._cache: dict[tuple[str, str, str], tuple[float, Report]] = {}
        self._chart_cache: dict[tuple[str, str], list[str]] = {}
        self._to_date_cache: dict[tuple[str, str, dt.date], tuple[float, ToDate]] = {}

    # -- selection ---------------------------------------------------------------------
    def today(self) -> dt.date:
        """Today in UTC by the service's clock (or the ``today`` hook given to
        :func:`create_dashboard`): it decides which periods are complete and running."""
        if self._today is not None:
            return self._today()
        return self.component.clock().astimezone(dt.UTC).date()

    def complete(self, period: Period) -> bool:
        return period_complete(period.grain, period.start, self.today())

    def partial_note(self, period: Period) -> str | None:
        """What a page says above a period that has not ended (None: it is complete)."""
        today = self.today()
        if self.complete(period):
            return None
        if period.start >= today:
            return f"{period.label} has not started: it has no complete day yet."
        last = today - dt.timedelta(days=1)
        return (
            f"{period.label} is running (partial): figures cover {period.start.isoformat()} – "
            f"{last.isoformat()} ({(today - period.start).days} of {period.days} days) and "
            f"are compared with whole periods below; the to-date panel compares like "
            f"with like."
        )

    def period_labels(self, grain: str, periods: list[str]) -> dict[str, str]:
        """Selector text per period: incomplete ones are flagged, e.g. "2026-12 (to date)"."""
        kind = GRAINS[grain]
        return {
            label: label if self.complete(parse_period(kind, label)) else f"{label} (to date)"
            for label in periods
        }

    def to_date(self, grain: str, model: str) -> ToDate:
        """The running period of ``grain`` against the same days of the previous one, with
        the forecast landing (day-grain kpi_values; cached like reports)."""
        today = self.today()
        key = (grain, model, today)
        hit = self._to_date_cache.get(key)
        if hit is not None and time.monotonic() - hit[0] < CACHE_SECONDS:
            return hit[1]
        period = running_period(grain, today)
        storage = self.component.storage
        start = period.previous().start - dt.timedelta(days=TO_DATE_HISTORY_DAYS)
        daily = storage.daily(daily_names(model), start, today)
        result = period_to_date(grain, today, daily, model=model, coverage=storage.coverage())
        self._to_date_cache = {key: (time.monotonic(), result)}
        return result

    def periods(self, grain: str) -> list[str]:
        kind = GRAINS[grain]
        found = self.component.storage.available_periods(grain)
        if not found:
            found = [last_complete(kind, self.today()).label]
        return found

    def default_period(self, grain: str, periods: list[str]) -> Period:
        """The newest period with data that is complete (a running month compared with a
        whole one misleads); without one, the calendar's last complete period."""
        kind = GRAINS[grain]
        for label in periods:  # newest first
            period = parse_period(kind, label)
            if self.complete(period):
                return period
        return last_complete(kind, self.today())

    def select(self, request: Request) -> tuple[str, Period, str, list[str]]:
        grain = request.query_params.get("grain", "month")
        if grain not in GRAINS:
            raise BadRequest(f"grain must be one of {', '.join(GRAINS)}")
        model = request.query_params.get("model") or self.component.settings.model
        if model not in MODEL_NAMES:
            raise BadRequest(f"unknown attribution model {model!r}")
        text = request.query_params.get("period")
        chosen = selected_period(GRAINS[grain], text) if text else None
        periods = self.periods(grain)
        period = chosen or self.default_period(grain, periods)
        if period.label not in periods:
            periods = sorted([*periods, period.label], reverse=True)
        return grain, period, model, periods

    def report(self, period: Period, model: str) -> Report:
        key = (ReportKind.of(period).value, period.label, model)
        hit = self._cache.get(key)
        if hit is not None and time.monotonic() - hit[0] < CACHE_SECONDS:
            return hit[1]
        settings = self.component.settings
        inputs = read_inputs(
            self.component.storage,
            period,
            model,
            path_model=settings.path_model,
            path_milestone=settings.path_milestone,
        )
        report = assemble_report(inputs, dt.datetime.now(dt.UTC))
        self._cache[key] = (time.monotonic(), report)
        return report

    def charts(self, report: Report, role: Role) -> list[str]:
        """Charts of ``report`` as the role sees it (pass the :func:`scoped_report`)."""
        key = (report.meta.report_id, role.value)
        if key not in self._chart_cache:
            wanted = ("mrr_bridge", "channels", "trend_")
            if len(self._chart_cache) >= 2 * len(Role):  # one report's charts per role
                self._chart_cache.clear()
            self._chart_cache[key] = [
                c.svg() for c in report_charts(report) if c.name.startswith(wanted)
            ][:4]
        return self._chart_cache[key]

    def persona(
        self, persona: str, grain: str, period: Period, model: str, role: Role
    ) -> tuple[PersonaView, dict[str, str]]:
        """The persona's view of ``period`` as ``role`` sees it, and the SVG of the report
        charts its panels show."""
        storage = self.component.storage
        previous = period.previous()
        rows = storage.kpis_by_name(persona_kpis(persona, grain), [grain],
                                    [period.label, previous.label])
        report = scoped_report(self.report(period, model), role)
        risks: list[Any] = []
        note = ""
        if persona == "cx":
            if grain == "month":
                candidates = storage.churn_risk_rows(period.start, period.end, previous.start)
                risks = churn_risks(candidates, period.days, previous.days)
            else:
                note = "Churn risk compares calendar months: choose the month grain."
        view = persona_view(PersonaInputs(
            persona=persona, role=role, grain=grain, period=period.label,
            previous_period=previous.label, model=model, kpis=rows, report=report,
            churn_risks=risks, churn_risk_note=note,
        ))
        wanted = {name for panel in view.panels for name in panel.charts}
        svg = {c.name: c.svg() for c in report_charts(report) if c.name in wanted} \
            if wanted else {}
        return view, svg

    def reports(self) -> list[dict[str, Any]]:
        return self.component.storage.list_reports()

    def report_file(self, report_id: str, fmt: str) -> Path | None:
        for row in self.reports():
            if row["report_id"] == report_id and row["format"] == fmt:
                path = Path(row["path"]).resolve()
                root = self.component.output_dir.resolve()
                if path.is_file() and path.is_relative_to(root):
                    return path
        return None


# -- what a role sees ---------------------------------------------------------------------


def scoped_to_date(to_date: ToDate, role: Role | str) -> ToDate | None:
    """The to-date panel with the role's KPIs only (None: none of them is visible)."""
    role = Role(role)
    if role_scope(role).all_kpis:
        return to_date
    kpis = [k for k in to_date.kpis if kpi_visible(role, k.kpi)]
    if not kpis:
        return None
    return to_date.model_copy(update={"kpis": kpis, "notes": []})


def overview_sections(role: Role | str) -> dict[str, bool]:
    """Which overview sections the role's page and API answer carry."""
    return {"channels": kpi_visible(Role(role), "spend", "channel")}


def nav_pages(role: Role | str) -> list[dict[str, str]]:
    return [{"id": page, "href": href, "label": label}
            for page, href, label, permission in NAV_PAGES if role_scope(role).can(permission)]


def landing_page(role: Role | str, wanted: str | None = None) -> str:
    """Where a user goes after signing in: ``wanted`` (a safe local path the role may
    open), else its first page, else the sign-in page (which says the role has none)."""
    if wanted:
        path = urlsplit(wanted).path
        policy = DASHBOARD_POLICIES.get(path)
        if isinstance(policy, Permission) and role_scope(role).can(policy):
            return wanted
    pages = nav_pages(role)
    return pages[0]["href"] if pages else SIGNIN_PATH


def safe_next(value: str | None) -> str | None:
    """``value`` if it is a path on this site (no scheme, no host, no ``//`` or ``\\``
    that a browser would read as another host, no control characters); else None. Keeps
    the sign-in's ``next`` from redirecting anywhere else (no open redirect)."""
    if not value or len(value) > 2000:
        return None
    if not value.startswith("/") or value.startswith("//") or "\\" in value:
        return None
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in value):
        return None
    parts = urlsplit(value)
    if parts.scheme or parts.netloc:
        return None
    if parts.path in (SIGNIN_PATH, SIGNOUT_PATH, OIDC_START_PATH, OIDC_CALLBACK_PATH):
        return None
    return value


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def cookie_secure(settings: AuthSettings, host: str | None, request: Request | None = None
                  ) -> bool:
    """Whether the session cookie is HTTPS-only: ``PULSE_AUTH_COOKIE_SECURE`` when set;
    else on, unless the dashboard listens on a loopback address (local use over plain
    http). ``host`` is the bound address; unknown, the request's server address decides."""
    if settings.cookie_secure is not None:
        return settings.cookie_secure
    if request is not None and request.url.scheme == "https":
        return True
    if host is None and request is not None:
        server = request.scope.get("server") or ("",)
        host = str(server[0])
    return not is_loopback(host or "")


def oidc_role(claims: Mapping[str, Any], settings: AuthSettings) -> Role | None:
    """The Pulse role of an identity-provider user: its ``oidc_role_claim`` (a string or a
    list), each value mapped through ``oidc_role_map`` (values not in the map are role
    names); the first Pulse role found wins. None: no Pulse role (the user is refused)."""
    raw = claims.get(settings.oidc_role_claim)
    values = [raw] if isinstance(raw, str) else list(raw) if isinstance(raw, list | tuple) else []
    for value in values:
        if not isinstance(value, str):
            continue
        try:
            return parse_role(settings.oidc_role_map.get(value, value))
        except ValueError:
            continue
    return None


def oidc_user_name(claims: Mapping[str, Any]) -> str:
    for claim in ("email", "preferred_username", "sub"):
        value = claims.get(claim)
        if isinstance(value, str) and value.strip():
            return value.strip()[:128]
    return "unknown"


# -- pages ----------------------------------------------------------------------------------


def _page(template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    text = _env().get_template(template).render(css=_css(), **context)
    return HTMLResponse(text, status_code=status_code)


def _user(principal: Principal) -> dict[str, str]:
    return {"name": principal.name, "role": principal.role.value, "via": principal.via,
            "csrf": principal.csrf}


def _unauthenticated() -> Response:
    # Only reached if a route were mounted without its guard: fail closed.
    return JSONResponse({"error": "sign in"}, status_code=401)


def dashboard_app(
    component: ReportingComponent, *, today: Callable[[], dt.date] | None = None
) -> Starlette:
    """The dashboard's pages and API, WITHOUT authentication: serve it only behind
    :func:`pulse_shared.auth.guard` with :data:`DASHBOARD_POLICIES` (as
    :func:`create_dashboard` and :func:`dashboard_routes` do). Each route reads the signed-in
    caller from the scope and shows what its role may see."""
    dash = Dashboard(component, today)

    async def selection(request: Request) -> tuple[str, Period, str, list[str], Report]:
        grain, period, model, periods = await asyncio.to_thread(dash.select, request)
        report = await asyncio.to_thread(dash.report, period, model)
        return grain, period, model, periods, report

    def chrome(page: str, principal: Principal) -> dict[str, Any]:
        """What every page's frame shows: navigation for the role, who is signed in."""
        return {"page": page, "page_title": page.capitalize(), "user": _user(principal),
                "nav_pages": nav_pages(principal.role), "signout_path": SIGNOUT_PATH}

    def context(
        page: str, principal: Principal, grain: str, period: Period, model: str,
        periods: list[str],
    ) -> dict[str, Any]:
        return {
            **chrome(page, principal),
            "grain": grain,
            "period": period.label,
            "model": model,
            "periods": periods,
            "period_labels": dash.period_labels(grain, periods),
            "complete": dash.complete(period),
            "partial_note": dash.partial_note(period),
            "grains": list(GRAINS),
            "models": list(MODEL_NAMES),
            "selectors": True,
            "query": f"grain={grain}&period={period.label}&model={model}",
        }

    def bad(exc: Exception, api: bool) -> Response:
        if api:
            return JSONResponse({"error": str(exc)}, status_code=400)
        # The message quotes the user's input: escape it (no reflected markup).
        return HTMLResponse(
            f"<!DOCTYPE html><title>Bad request</title><p>{html.escape(str(exc))}</p>",
            status_code=400,
        )

    async def overview(request: Request) -> Response:
        DASHBOARD_REQUESTS.labels("overview").inc()
        principal = principal_of(request.scope)
        if principal is None:
            return _unauthenticated()
        try:
            grain, period, model, periods, report = await selection(request)
        except BadRequest as exc:
            return bad(exc, False)
        shown = scoped_report(report, principal.role)
        svgs = await asyncio.to_thread(dash.charts, shown, principal.role)
        to_date = await asyncio.to_thread(dash.to_date, grain, model)
        return _page(
            "dash_overview.html.j2",
            report=shown,
            charts=svgs,
            to_date=scoped_to_date(to_date, principal.role),
            show=overview_sections(principal.role),
            **context("overview", principal, grain, period, model, periods),
        )

    async def campaigns(request: Request) -> Response:
        DASHBOARD_REQUESTS.labels("campaigns").inc()
        principal = principal_of(request.scope)
        if principal is None:
            return _unauthenticated()
        try:
            grain, period, model, periods, report = await selection(request)
        except BadRequest as exc:
            return bad(exc, False)
        return _page(
            "dash_campaigns.html.j2",
            report=scoped_report(report, principal.role),
            **context("campaigns", principal, grain, period, model, periods),
        )

    async def reports_page(request: Request) -> Response:
        DASHBOARD_REQUESTS.labels("reports").inc()
        principal = principal_of(request.scope)
        if principal is None:
            return _unauthenticated()
        rows = await asyncio.to_thread(dash.reports)
        return _page(
            "dash_reports.html.j2",
            reports=rows,
            selectors=False,
            query="",
            **chrome("reports", principal),
        )

    async def report_file(request: Request) -> Response:
        DASHBOARD_REQUESTS.labels("report_file").inc()
        path = await asyncio.to_thread(
            dash.report_file,
            request.query_params.get("report_id", ""),
            request.query_params.get("format", ""),
        )
        if path is None:
            return JSONResponse({"error": "no such report file"}, status_code=404)
        return FileResponse(path, filename=path.name)

    async def api_overview(request: Request) -> Response:
        DASHBOARD_REQUESTS.labels("api_overview").inc()
        principal = principal_of(request.scope)
        if principal is None:
            return _unauthenticated()
        try:
            grain, period, model, _, report = await selection(request)
        except BadRequest as exc:
            return bad(exc, True)
        to_date = await asyncio.to_thread(dash.to_date, grain, model)
        sections = {"meta", "headline", "mrr_bridge", "alerts", "trends", "forecast", "notes"}
        if overview_sections(principal.role)["channels"]:
            sections.add("channels")
        body = scoped_report(report, principal.role).model_dump(mode="json", include=sections)
        # Whether the period shown has ended (UTC, service clock): a running period's
        # figures are "to date", not comparable with a whole one.
        body["meta"]["complete"] = dash.complete(period)
        # The running period against the same days of the previous one, and its landing.
        shown_to_date = scoped_to_date(to_date, principal.role)
        body["to_date"] = shown_to_date.model_dump(mode="json") if shown_to_date else None
        return JSONResponse(body)

    async def api_campaigns(request: Request) -> Response:
        DASHBOARD_REQUESTS.labels("api_campaigns").inc()
        principal = principal_of(request.scope)
        if principal is None:
            return _unauthenticated()
        try:
            _, period, *_, report = await selection(request)
        except BadRequest as exc:
            return bad(exc, True)
        body = scoped_report(report, principal.role).model_dump(
            mode="json",
            include={
                "meta", "campaigns", "top_campaigns", "bottom_campaigns", "model_comparison",
            },
        )
        body["meta"]["complete"] = dash.complete(period)
        return JSONResponse(body)

    def persona_page(key: str) -> Callable[[Request], Awaitable[Response]]:
        async def page(request: Request) -> Response:
            DASHBOARD_REQUESTS.labels(f"persona_{key}").inc()
            principal = principal_of(request.scope)
            if principal is None:
                return _unauthenticated()
            try:
                grain, period, model, periods = await asyncio.to_thread(dash.select, request)
            except BadRequest as exc:
                return bad(exc, False)
            view, svg = await asyncio.to_thread(
                dash.persona, key, grain, period, model, principal.role)
            ctx = context(f"persona-{key}", principal, grain, period, model, periods)
            ctx["page_title"] = f"{view.title} view"
            return _page("dash_persona.html.j2", view=view, svg=svg, **ctx)

        return page

    def persona_api(key: str) -> Callable[[Request], Awaitable[Response]]:
        async def api(request: Request) -> Response:
            DASHBOARD_REQUESTS.labels(f"api_persona_{key}").inc()
            principal = principal_of(request.scope)
            if principal is None:
                return _unauthenticated()
            try:
                grain, period, model, _ = await asyncio.to_thread(dash.select, request)
            except BadRequest as exc:
                return bad(exc, True)
            view, _ = await asyncio.to_thread(
                dash.persona, key, grain, period, model, principal.role)
            return JSONResponse(persona_json(view, dash.complete(period)))

        return api

    async def api_reports(request: Request) -> Response:
        DASHBOARD_REQUESTS.labels("api_reports").inc()
        rows = await asyncio.to_thread(dash.reports)
        # File names and download links only: the server's directories are nobody's business.
        return JSONResponse({"reports": [{
            "report_id": r["report_id"], "report_kind": r["report_kind"],
            "period": r["period"], "model": r["model"], "format": r["format"],
            "file_name": Path(str(r["path"])).name, "size_bytes": r["size_bytes"],
            "created_at": r["created_at"].isoformat(),
            "url": f"/reports/file?report_id={quote(str(r['report_id']), safe='')}"
                   f"&format={quote(str(r['format']), safe='')}",
        } for r in rows]})

    async def api_periods(request: Request) -> Response:
        DASHBOARD_REQUESTS.labels("api_periods").inc()
        grain = request.query_params.get("grain", "month")
        if grain not in GRAINS:
            return bad(BadRequest(f"grain must be one of {', '.join(GRAINS)}"), True)
        periods = await asyncio.to_thread(dash.periods, grain)
        kind = GRAINS[grain]
        return JSONResponse({
            "grain": grain,
            "periods": periods,
            # Periods that have not ended (their figures are "to date", i.e. partial).
            "partial": [p for p in periods if not dash.complete(parse_period(kind, p))],
        })

    return Starlette(
        routes=[
            Route("/", overview),
            Route("/campaigns", campaigns),
            Route("/reports", reports_page),
            Route("/reports/file", report_file),
            Route("/api/overview", api_overview),
            Route("/api/campaigns", api_campaigns),
            Route("/api/reports", api_reports),
            Route("/api/periods", api_periods),
            *(Route(f"/persona/{key}", persona_page(key)) for key in PERSONAS),
            *(Route(f"/api/persona/{key}", persona_api(key)) for key in PERSONAS),
        ]
    )


def persona_json(view: PersonaView, complete: bool) -> dict[str, Any]:
    """A persona view as the API answers it: the numbers of the page, panel by panel."""
    return {
        "persona": view.persona, "title": view.title, "period": view.period,
        "previous_period": view.previous_period, "complete": complete,
        "panels": [{
            "key": p.key, "title": p.title, "text": list(p.text),
            "tiles": [{"kpi": t.kpi, "label": t.label, "fmt": t.fmt.value, "value": t.value,
                       "previous": t.change.previous, "change_pct": t.change.change_pct,
                       "tone": t.change.tone.value, "threshold": t.threshold,
                       "over_threshold": t.over} for t in p.tiles],
            "tables": [{"name": t.name, "title": t.title,
                        "columns": [c.key for c in t.columns],
                        "rows": [list(r) for r in t.rows]} for t in p.tables],
        } for p in view.panels],
    }


# -- sign-in --------------------------------------------------------------------------------


async def read_form(request: Request) -> dict[str, str] | None:
    """An ``application/x-www-form-urlencoded`` body (first value of each field); None when
    it is larger than :data:`MAX_FORM_BYTES` or not a form."""
    if not request.headers.get("content-type", "").startswith(
        "application/x-www-form-urlencoded"
    ):
        return None
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            return None
    fields: dict[str, str] = {}
    for key, value in parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True):
        fields.setdefault(key, value)
    return fields


def _same(given: str, expected: str) -> bool:
    return bool(given) and bool(expected) and secrets.compare_digest(
        given.encode(), expected.encode())


@dataclass
class SignIn:
    """The sign-in pages of one dashboard (the Authenticator is the one its guard uses)."""

    auth: Authenticator
    host: str | None = None
    log_name: str = "dashboard"
    _oidc_client: Any = field(default=None, init=False)

    @property
    def settings(self) -> AuthSettings:
        return self.auth.settings

    def secure(self, request: Request) -> bool:
        return cookie_secure(self.settings, self.host, request)

    async def current(self, request: Request) -> Principal | None:
        cookie = request.cookies.get(SESSION_COOKIE)
        if not cookie:
            return None
        return await asyncio.to_thread(self.auth.from_session, cookie)

    def form(self, request: Request, *, status_code: int = 200, error: str | None = None,
             principal: Principal | None = None, next_path: str | None = None) -> Response:
        """The sign-in page, its form's CSRF token in the form and in its cookie (kept
        while the cookie lives, so sign-in pages open in several tabs all work)."""
        csrf = request.cookies.get(SIGNIN_CSRF_COOKIE, "")
        if not CSRF_TOKEN.fullmatch(csrf):
            csrf = secrets.token_urlsafe(24)
        secure = self.secure(request)
        response = _page(
            "dash_signin.html.j2", status_code=status_code,
            page="signin", page_title="Sign in", selectors=False, query="",
            user=_user(principal) if principal else None,
            nav_pages=nav_pages(principal.role) if principal else [],
            signout_path=SIGNOUT_PATH, signin_path=SIGNIN_PATH,
            oidc_path=OIDC_START_PATH if self.settings.oidc_enabled else None,
            csrf=csrf, next=next_path or "", error=error,
            insecure_transport=secure and request.url.scheme != "https",
        )
        response.set_cookie(SIGNIN_CSRF_COOKIE, csrf, max_age=3600, path=SIGNIN_PATH,
                            httponly=True, samesite="strict", secure=secure)
        return response

    def signed_in(self, request: Request, principal: Principal, token_id: str,
                  next_path: str | None) -> Response:
        """Set the session cookie and go to the page asked for (or the role's first)."""
        response = RedirectResponse(landing_page(principal.role, next_path), status_code=303)
        response.set_cookie(
            SESSION_COOKIE, self.auth.new_session(principal, token_id),
            max_age=self.settings.session_max_age_s, path="/", httponly=True,
            samesite="lax", secure=self.secure(request),
        )
        response.delete_cookie(SIGNIN_CSRF_COOKIE, path=SIGNIN_PATH)
        log.info("signed_in", user=principal.name, role=principal.role.value,
                 via=principal.via, surface=self.log_name)
        return response

    async def signin_page(self, request: Request) -> Response:
        principal = await self.current(request)
        return self.form(request, principal=principal,
                         next_path=safe_next(request.query_params.get("next")))

    async def signin_submit(self, request: Request) -> Response:
        fields = await read_form(request)
        if fields is None:
            return self.form(request, status_code=400, error="Send the sign-in form.")
        if not _same(fields.get("csrf", ""), request.cookies.get(SIGNIN_CSRF_COOKIE, "")):
            log.info("signin_refused", reason="csrf", surface=self.log_name)
            return self.form(request, status_code=403,
                             error="The sign-in form expired or did not come from this "
                                   "page: sign in again.")
        next_path = safe_next(fields.get("next"))
        token = fields.get("token", "").strip()
        principal = await asyncio.to_thread(self.auth.from_token, token) if token else None
        if principal is None:
            log.info("signin_refused", reason="token", surface=self.log_name)
            return self.form(request, status_code=401, next_path=next_path,
                             error="That token is not valid (unknown, revoked or expired).")
        session = Principal(principal.name, principal.role, "session")
        return self.signed_in(request, session, self.auth.session_token_id(token), next_path)

    async def signout(self, request: Request) -> Response:
        fields = await read_form(request) or {}
        principal = await self.current(request)
        # A live session is ended only by its own pages (the form carries its CSRF token);
        # a dead or missing one has nothing to protect and is just cleared.
        if principal is not None and not _same(fields.get("csrf", ""), principal.csrf):
            log.info("signout_refused", reason="csrf", user=principal.name)
            return JSONResponse({"error": "sign-out must come from a dashboard page"},
                                status_code=403)
        response = RedirectResponse(SIGNIN_PATH, status_code=303)
        response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="lax",
                               secure=self.secure(request))
        if principal is not None:
            log.info("signed_out", user=principal.name, surface=self.log_name)
        return response

    # -- single sign-on (OpenID Connect) ----------------------------------------------
    def oidc_client(self) -> Any:
        if self._oidc_client is None:
            from authlib.integrations.starlette_client import OAuth

            oauth = OAuth()
            oauth.register(
                "idp",
                server_metadata_url=self.settings.oidc_metadata_url,
                client_id=self.settings.oidc_client_id,
                client_secret=self.settings.oidc_client_secret.get_secret_value(),
                client_kwargs={"scope": "openid email profile"},
            )
            self._oidc_client = oauth.create_client("idp")
        return self._oidc_client

    async def oidc_start(self, request: Request) -> Response:
        request.session["pulse_next"] = safe_next(request.query_params.get("next")) or ""
        callback = str(request.url.replace(path=OIDC_CALLBACK_PATH, query=""))
        response: Response = await self.oidc_client().authorize_redirect(request, callback)
        return response

    async def oidc_callback(self, request: Request) -> Response:
        from authlib.integrations.base_client import OAuthError

        try:
            token = await self.oidc_client().authorize_access_token(request)
        except OAuthError as exc:
            log.info("signin_refused", reason="oidc", error=exc.error, surface=self.log_name)
            return self.form(request, status_code=403,
                             error="Single sign-on failed; try again.")
        claims = token.get("userinfo") or {}
        role = oidc_role(claims, self.settings)
        name = oidc_user_name(claims)
        if role is None:
            log.info("signin_refused", reason="no_role", user=name, surface=self.log_name)
            return self.form(
                request, status_code=403,
                error=f"{name} has no Pulse role at the identity provider (claim "
                      f"{self.settings.oidc_role_claim!r}): ask an administrator.",
            )
        next_path = safe_next(request.session.pop("pulse_next", "") or None)
        return self.signed_in(request, Principal(name, role, "oidc"), "", next_path)

    def routes(self) -> list[tuple[str, Any]]:
        """``(path, ASGI app)`` of the sign-in pages (open: they are how one gets in)."""
        forms = Starlette(routes=[
            Route(SIGNIN_PATH, self.signin_page, methods=["GET"]),
            Route(SIGNIN_PATH, self.signin_submit, methods=["POST"]),
            Route(SIGNOUT_PATH, self.signout, methods=["POST"]),
        ])
        found: list[tuple[str, Any]] = [(SIGNIN_PATH, forms), (SIGNOUT_PATH, forms)]
        if self.settings.oidc_enabled:
            from starlette.middleware.sessions import SessionMiddleware

            secret = self.settings.session_secret.get_secret_value() or secrets.token_urlsafe(32)
            sso = SessionMiddleware(
                Starlette(routes=[
                    Route(OIDC_START_PATH, self.oidc_start, methods=["GET"]),
                    Route(OIDC_CALLBACK_PATH, self.oidc_callback, methods=["GET"]),
                ]),
                secret_key=secret, session_cookie=OIDC_STATE_COOKIE, max_age=600,
                same_site="lax",
                https_only=self.settings.cookie_secure
                if self.settings.cookie_secure is not None
                else not is_loopback(self.host or ""),
            )
            found += [(OIDC_START_PATH, sso), (OIDC_CALLBACK_PATH, sso)]
        return found


# -- assembly -------------------------------------------------------------------------------

ASGIApp = Callable[..., Awaitable[None]]


@dataclass(frozen=True)
class DashboardRoutes:
    """What :func:`pulse_shared.service.create_service_app` mounts: guarded routes
    (``extra_routes``), the open sign-in pages (``signin_routes``) and ``signin_path``."""

    routes: list[tuple[str, Any, RoutePolicy]]
    signin_routes: list[tuple[str, Any]]
    signin_path: str = SIGNIN_PATH


def default_authenticator(component: ReportingComponent) -> Authenticator:
    """Users read from the component's (read-only) store, settings from PULSE_AUTH_*."""
    return Authenticator(UserDirectory(component.store), AuthSettings())


def dashboard_routes(
    component: ReportingComponent,
    authenticator: Authenticator | None = None,
    *,
    host: str | None = None,
    today: Callable[[], dt.date] | None = None,
) -> DashboardRoutes:
    """The dashboard's routes with their policies and its sign-in pages, for
    ``create_service_app(extra_routes=…, signin_routes=…, signin_path=…)``. Pass the
    service's Authenticator (the sign-in pages and the guard must share it: it signs the
    sessions). ``host``: the address the service binds (decides the cookie's Secure flag
    when PULSE_AUTH_COOKIE_SECURE is unset)."""
    auth = authenticator or default_authenticator(component)
    app = dashboard_app(component, today=today)
    return DashboardRoutes(
        routes=[(path, app, policy) for path, policy in DASHBOARD_POLICIES.items()],
        signin_routes=SignIn(auth, host).routes(),
    )


class _Endpoint:
    """An ASGI app as a Starlette route endpoint (a plain function would be taken for a
    request handler)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.app(scope, receive, send)


def create_dashboard(
    component: ReportingComponent,
    *,
    today: Callable[[], dt.date] | None = None,
    authenticator: Authenticator | None = None,
    host: str | None = None,
) -> Starlette:
    """The dashboard as one app (``pulse dashboard``, tests, screenshots): every page and
    API route behind sign-in and its permission (as in the reporting service), the sign-in
    pages, and an open ``/health``. ``today`` overrides the component's clock for what
    counts as complete and running (tests and screenshots pin a date with it)."""
    auth = authenticator or default_authenticator(component)
    # One Authenticator for the guard and the sign-in pages: it signs the sessions.
    mounted = dashboard_routes(component, auth, host=host, today=today)
    guarded = guard_routes(
        [("/health", health_asgi("dashboard", {"clickhouse": store_health(component.store)})),
         *((p, a) for p, a, _ in mounted.routes),
         *mounted.signin_routes],
        {path: policy for path, _, policy in mounted.routes},
        auth,
        public=PUBLIC_PATHS | {path for path, _ in mounted.signin_routes},
        signin_path=mounted.signin_path,
    )
    return Starlette(routes=[Route(path, _Endpoint(app)) for path, app in guarded])

