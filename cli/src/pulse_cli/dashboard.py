"""``pulse dashboard``: the reporting dashboard on the configured store, without Kafka.

The same app and sign-in as the reporting service's dashboard
(:func:`pulse_reporting.web.create_dashboard`): every page and API route needs a signed-in
user (``pulse users add``) whose role may open it; ``/health`` is open. Reports are not
scheduled here (``pulse report`` produces them on demand).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from starlette.applications import Starlette

    from pulse_shared.store import Store


def build_dashboard(host: str) -> tuple[Starlette, list[Store]]:
    """The dashboard app for ``host`` and the stores it holds open."""
    from pulse_reporting.main import build, open_stores
    from pulse_reporting.settings import ReportingSettings
    from pulse_reporting.web import create_dashboard
    from pulse_shared.auth import Authenticator, AuthSettings, UserDirectory
    from pulse_shared.bus import Bus, make_broker
    from pulse_shared.config_checks import refuse_insecure_startup
    from pulse_shared.schema.migrations import migrate
    from pulse_shared.settings import common_settings

    settings = ReportingSettings()
    common = common_settings()
    refuse_insecure_startup(common)
    reader, writer = open_stores(settings, common)
    if common.embedded:
        migrate(writer)  # a fresh local data dir needs its tables (pulse_users among them)
    # No broker: the dashboard reads ClickHouse only; the bus is never published on.
    component = build(reader, Bus(make_broker(None), "reporting"), settings, writer=writer)
    auth = Authenticator(UserDirectory(reader), AuthSettings())
    return create_dashboard(component, authenticator=auth, host=host), [reader, writer]


def serve(host: str, port: int | None) -> None:
    import uvicorn

    from pulse_reporting.settings import ReportingSettings
    from pulse_reporting.web import cookie_secure, is_loopback
    from pulse_shared.auth import AuthSettings, UserDirectory

    app, stores = build_dashboard(host)
    port = port if port is not None else ReportingSettings().port
    if not UserDirectory(stores[0]).list():
        typer.echo("no users yet: add one with `pulse users add NAME --role cmo` (stop this "
                   "dashboard first on the embedded store)", err=True)
    if cookie_secure(AuthSettings(), host) and not is_loopback(host):
        typer.echo(f"{host} is reachable from other machines: the session cookie is sent "
                   "over HTTPS only, so serve it behind TLS (or set "
                   "PULSE_AUTH_COOKIE_SECURE=false on a trusted network)", err=True)
    shown = f"[{host}]" if ":" in host else host
    typer.echo(f"Pulse dashboard on http://{shown}:{port}/ (sign in with a token from "
               "`pulse users add`); Ctrl+C stops it", err=True)
    try:
        uvicorn.run(app, host=host, port=port, log_level="warning", lifespan="off")
    finally:
        for store in stores:
            store.close()
