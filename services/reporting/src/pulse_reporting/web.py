"""Dashboard served by the reporting service: overview, campaigns, report list, JSON API.

Pages and API are built from the very same :class:`Report` the report files use, so the
numbers on a page always equal the API's. Mounted on the service's FastStream ASGI app as
exact-path routes (see :func:`dashboard_routes`).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import html
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, Response
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
from pulse_reporting.domain.to_date import ToDate, daily_names, period_to_date, running_period
from pulse_reporting.generate import read_inputs
from pulse_reporting.metrics import DASHBOARD_REQUESTS
from pulse_reporting.render.drawing import report_charts
from pulse_reporting.render.html import _css, _env
from pulse_shared.attribution_models import MODEL_NAMES
from pulse_shared.logging import get_logger
from pulse_shared.periods import period_complete

if TYPE_CHECKING:
    from pulse_reporting.app import ReportingComponent

log = get_logger(__name__)

GRAINS = {grain.value: kind for grain, kind in BY_GRAIN.items()}
PATHS = (
    "/",
    "/campaigns",
    "/reports",
    "/reports/file",
    "/api/overview",
    "/api/campaigns",
    "/api/reports",
    "/api/periods",
)
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
        self._chart_cache: dict[str, list[str]] = {}
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

    def charts(self, report: Report) -> list[str]:
        key = report.meta.report_id
        if key not in self._chart_cache:
            wanted = ("mrr_bridge", "channels", "trend_")
            self._chart_cache = {
                key: [c.svg() for c in report_charts(report) if c.name.startswith(wanted)][:4]
            }
        return self._chart_cache[key]

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


def _page(template: str, **context: Any) -> HTMLResponse:
    html = _env().get_template(template).render(css=_css(), **context)
    return HTMLResponse(html)


def create_dashboard(
    component: ReportingComponent, *, today: Callable[[], dt.date] | None = None
) -> Starlette:
    """The dashboard app; ``today`` overrides the component's clock for what counts as
    complete and running (tests and screenshots pin a date with it)."""
    dash = Dashboard(component, today)

    async def selection(request: Request) -> tuple[str, Period, str, list[str], Report]:
        grain, period, model, periods = await asyncio.to_thread(dash.select, request)
        report = await asyncio.to_thread(dash.report, period, model)
        return grain, period, model, periods, report

    def context(
        page: str, grain: str, period: Period, model: str, periods: list[str]
    ) -> dict[str, Any]:
        return {
            "page": page,
            "page_title": page.capitalize(),
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
        try:
            grain, period, model, periods, report = await selection(request)
        except BadRequest as exc:
            return bad(exc, False)
        svgs = await asyncio.to_thread(dash.charts, report)
        to_date = await asyncio.to_thread(dash.to_date, grain, model)
        return _page(
            "dash_overview.html.j2",
            report=report,
            charts=svgs,
            to_date=to_date,
            **context("overview", grain, period, model, periods),
        )

    async def campaigns(request: Request) -> Response:
        DASHBOARD_REQUESTS.labels("campaigns").inc()
        try:
            grain, period, model, periods, report = await selection(request)
        except BadRequest as exc:
            return bad(exc, False)
        return _page(
            "dash_campaigns.html.j2",
            report=report,
            **context("campaigns", grain, period, model, periods),
        )

    async def reports_page(request: Request) -> Response:
        DASHBOARD_REQUESTS.labels("reports").inc()
        rows = await asyncio.to_thread(dash.reports)
        return _page(
            "dash_reports.html.j2",
            reports=rows,
            page="reports",
            page_title="Reports",
            selectors=False,
            query="",
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
        try:
            grain, period, model, _, report = await selection(request)
        except BadRequest as exc:
            return bad(exc, True)
        to_date = await asyncio.to_thread(dash.to_date, grain, model)
        body = report.model_dump(
            mode="json",
            include={
                "meta", "headline", "mrr_bridge", "channels", "alerts", "trends", "forecast",
                "notes",
            },
        )
        # Whether the period shown has ended (UTC, service clock): a running period's
        # figures are "to date", not comparable with a whole one.
        body["meta"]["complete"] = dash.complete(period)
        # The running period against the same days of the previous one, and its landing.
        body["to_date"] = to_date.model_dump(mode="json")
        return JSONResponse(body)

    async def api_campaigns(request: Request) -> Response:
        DASHBOARD_REQUESTS.labels("api_campaigns").inc()
        try:
            _, period, *_, report = await selection(request)
        except BadRequest as exc:
            return bad(exc, True)
        body = report.model_dump(
            mode="json",
            include={
                "meta", "campaigns", "top_campaigns", "bottom_campaigns", "model_comparison",
            },
        )
        body["meta"]["complete"] = dash.complete(period)
        return JSONResponse(body)

    async def api_reports(request: Request) -> Response:
        DASHBOARD_REQUESTS.labels("api_reports").inc()
        rows = await asyncio.to_thread(dash.reports)
        return JSONResponse(
            {"reports": [{**r, "created_at": r["created_at"].isoformat()} for r in rows]}
        )

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
        ]
    )


def dashboard_routes(component: ReportingComponent) -> list[tuple[str, Any]]:
    """Exact-path routes for ``create_service_app(extra_routes=...)``."""
    app = create_dashboard(component)
    return [(path, app) for path in PATHS]
