"""Reporting service wiring: settings → stores (read-only reader, writer for ``reports``)
→ bus → component → ASGI app with the dashboard, and the console entry point. The component
lives in :mod:`pulse_reporting.app`."""

from __future__ import annotations

from faststream.asgi import AsgiFastStream

from pulse_reporting.app import ReportingComponent
from pulse_reporting.settings import ReportingSettings
from pulse_shared.bus import Bus, make_broker
from pulse_shared.logging import configure_logging
from pulse_shared.settings import PulseSettings, common_settings
from pulse_shared.store import Store, open_store

__all__ = ["ReportingComponent", "build", "create_app", "open_stores", "run"]


def build(
    store: Store, bus: Bus, settings: ReportingSettings | None = None, *,
    writer: Store | None = None,
) -> ReportingComponent:
    return ReportingComponent(store, bus, settings or ReportingSettings(), writer=writer)


def open_stores(
    settings: ReportingSettings, common: PulseSettings | None = None
) -> tuple[Store, Store]:
    """(read-only store as the reporting user, writer store for the ``reports`` table)."""
    common = common or common_settings()
    user, password = settings.reader_credentials(common)  # refuses the writer's rights
    reader = open_store(common, readonly=True, user=user, password=password)
    writer = open_store(common)
    return reader, writer


def create_app(settings: ReportingSettings | None = None) -> AsgiFastStream:
    from pulse_reporting.web import dashboard_routes
    from pulse_shared.auth import Authenticator, AuthSettings, UserDirectory
    from pulse_shared.service import create_service_app

    settings = settings or ReportingSettings()
    common = common_settings()
    configure_logging(common.log_level, common.log_json)
    broker = make_broker(common.kafka_bootstrap, client_id="pulse-reporting")
    reader, writer = open_stores(settings, common)
    component = build(reader, Bus(broker, "reporting"), settings, writer=writer)
    broker.include_router(component.router)
    # Users are read with the reporting service's read-only user (it may SELECT
    # pulse_users); one Authenticator for the guard and the sign-in pages, which sign the
    # session cookies with it.
    auth = Authenticator(UserDirectory(reader), AuthSettings())
    dashboard = dashboard_routes(component, auth, host=settings.host)
    return create_service_app(
        "reporting", broker, reader,
        after_startup=[component.start], on_shutdown=[component.stop],
        extra_routes=dashboard.routes, authenticator=auth,
        signin_routes=dashboard.signin_routes, signin_path=dashboard.signin_path,
    )


def run() -> None:
    """Console entry point ``pulse-reporting``: uvicorn on the configured host and port."""
    from pulse_shared.service import serve

    serve(ReportingSettings, create_app)
