"""The configuration reference, generated from the settings classes themselves.

``docs/configuration.md`` is this module's output; a test fails when it is stale, so the
reference can never drift from the code.
"""

from __future__ import annotations

from typing import Any

from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings

from pulse_shared.config_checks import env_variable


def settings_classes() -> list[tuple[str, type[BaseSettings]]]:
    from pulse_alerts.settings import AlertsSettings
    from pulse_attribution.settings import AttributionSettings
    from pulse_ingest.settings import IngestSettings
    from pulse_kpi.settings import KpiSettings
    from pulse_mmm.settings import MmmSettings
    from pulse_reporting.settings import ReportingSettings
    from pulse_shared.auth.settings import AuthSettings
    from pulse_shared.erasure import ErasureSettings, RetentionSettings
    from pulse_shared.settings import PulseSettings

    return [
        ("Common (every service and the CLI)", PulseSettings),
        ("ingest", IngestSettings),
        ("attribution", AttributionSettings),
        ("kpi", KpiSettings),
        ("alerts", AlertsSettings),
        ("reporting", ReportingSettings),
        ("mmm (marketing mix model)", MmmSettings),
        ("sign-in (every HTTP surface and pulse dashboard)", AuthSettings),
        ("erasure (pulse privacy erase)", ErasureSettings),
        ("retention (ClickHouse TTL, applied by migrate)", RetentionSettings),
    ]


def _default(field: FieldInfo) -> str:
    if field.default_factory is not None:
        try:
            value: Any = field.default_factory()  # type: ignore[call-arg]
        except TypeError:
            return "(computed)"
    else:
        value = field.default
    if value is None:
        return "unset"
    secret = getattr(value, "get_secret_value", None)
    if secret is not None:
        return "unset" if not secret() else "(secret)"
    text = str(value) if value or isinstance(value, bool | int | float) else "empty"
    return f"`{text}`" if text not in ("unset", "empty") else text


def render() -> str:
    lines = [
        "# Configuration reference",
        "",
        "Generated from the settings classes by `pulse config-reference`; do not edit by hand.",
        "Every setting is an environment variable (pydantic-settings; lists and nested values",
        "as JSON). A value a setting cannot hold (malformed, out of range) stops a service or",
        "command at start with one line naming the variable, e.g.",
        "`configuration: PULSE_KPI_FLUSH_INTERVAL_S: Input should be greater than 0`.",
        "",
    ]
    for title, cls in settings_classes():
        lines += [f"## {title}", "", "| variable | default | meaning |", "|---|---|---|"]
        for name, field in cls.model_fields.items():
            description = (field.description or "").replace("|", "\\|")
            lines.append(
                f"| `{env_variable(cls, name)}` | {_default(field)} | {description} |"
            )
        lines.append("")
    return "\n".join(lines)
