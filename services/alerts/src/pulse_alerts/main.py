"""Alerts service wiring: settings → store → bus → component (:func:`build`) → ASGI app
(:func:`create_app`), and the console entry point (:func:`run`). The component lives in
:mod:`pulse_alerts.app`."""

from __future__ import annotations

from collections.abc import Sequence

from faststream.asgi import AsgiFastStream

from pulse_alerts.app import (
    SERVICE,
    AlertsComponent,
    Clock,
    default_forecaster,
    default_rules_text,
    load_ruleset,
    utc_now,
)
from pulse_alerts.domain.rules import RulesError, RuleSet
from pulse_alerts.notify import Notifier, notifiers_from
from pulse_alerts.settings import AlertsSettings
from pulse_shared.bus import Bus
from pulse_shared.logging import get_logger
from pulse_shared.store import Store

__all__ = ["SERVICE", "AlertsComponent", "build", "create_app", "default_forecaster",
           "default_rules_text", "load_ruleset", "run"]
log = get_logger(__name__)


def build(
    store: Store,
    bus: Bus,
    settings: AlertsSettings | None = None,
    *,
    rules: RuleSet | None = None,
    notifiers: Sequence[Notifier] | None = None,
    clock: Clock = utc_now,
) -> AlertsComponent:
    """The alerts component on a store and a bus (embedded or production)."""
    settings = settings or AlertsSettings()
    return AlertsComponent(
        store,
        bus,
        settings,
        rules or load_ruleset(settings),
        notifiers if notifiers is not None else notifiers_from(settings),
        clock=clock,
        forecaster=default_forecaster(),
    )


def create_app(settings: AlertsSettings | None = None) -> AsgiFastStream:
    """Production wiring: real Kafka broker, store from the common settings."""
    from pulse_shared.bus import make_broker
    from pulse_shared.logging import configure_logging
    from pulse_shared.schema.migrations import migrate_on_startup
    from pulse_shared.service import create_service_app
    from pulse_shared.settings import common_settings
    from pulse_shared.store import open_store

    common = common_settings()
    configure_logging(common.log_level, json=common.log_json)
    settings = settings or AlertsSettings()
    broker = make_broker(common.kafka_bootstrap, client_id="pulse-alerts")
    store = open_store(common)
    component = build(store, Bus(broker, SERVICE), settings)
    broker.include_router(component.router)

    from pulse_alerts.api import SILENCES_POLICY, silences_asgi

    return create_service_app(
        SERVICE,
        broker,
        store,
        consumers=component.consumers,
        on_startup=[migrate_on_startup(store)],
        after_startup=[component.start],
        on_shutdown=[component.stop],
        extra_routes=[("/api/silences", silences_asgi(component), SILENCES_POLICY)],
    )


def run() -> None:
    """Console entry point: uvicorn on ``settings.port``."""
    import uvicorn

    from pulse_shared.config_checks import refuse_insecure_startup, refusing_to_start
    from pulse_shared.settings import common_settings

    with refusing_to_start():
        refuse_insecure_startup(common_settings())
        settings = AlertsSettings()
    try:
        app = create_app(settings)
    except RulesError as exc:
        # Refuse to start: a rule that can never match would silently never alert.
        for problem in exc.problems:
            log.error("rules_invalid", problem=problem)
        raise SystemExit(exc.code) from exc
    uvicorn.run(app, host=settings.host, port=settings.port)
