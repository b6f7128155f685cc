"""Start-up refusals of insecure settings: placeholder secrets, demo mode beside real servers.

One function, :func:`check_secret`, decides whether a configured secret (ClickHouse
and Kafka passwords, the PII salt, API keys) is usable; every service and CLI command calls it, so
`.env.example`'s placeholders and the usual guesses are refused everywhere with the same
one-line message naming the setting. Services call :func:`refuse_insecure_startup` in their
console entry point (``run()``), before binding a port.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from pydantic import ValidationError
from pydantic_settings import BaseSettings

from pulse_shared.settings import PulseSettings

#: Values (compared case-insensitively, blanks stripped) that are known defaults or
#: guesses; a secret equal to one of them, or starting with a prefix below, is refused.
PLACEHOLDER_VALUES = frozenset({
    "", "changeme", "change-me", "change_me", "password", "passw0rd", "secret", "admin",
    "default", "pulse", "test", "example", "xxx", "todo",
})
PLACEHOLDER_PREFIXES = ("change-me", "changeme", "change_me", "replace-me", "<")


class ConfigurationError(RuntimeError):
    """The service cannot start with these settings (e.g. no PII salt, a placeholder)."""


def is_placeholder(value: str) -> bool:
    """True when ``value`` is empty, a known default/guess, or a `change-me…` placeholder."""
    folded = value.strip().lower()
    return folded in PLACEHOLDER_VALUES or folded.startswith(PLACEHOLDER_PREFIXES)


def check_secret(setting: str, value: str, *, min_length: int = 0, hint: str = "") -> str:
    """Return ``value`` unchanged, or raise :class:`ConfigurationError` naming ``setting``
    when it is a placeholder or shorter than ``min_length`` (surrounding blanks not counted).
    """
    how = hint or "e.g. `openssl rand -hex 32`"
    length = len(value.strip())
    if length < min_length:
        raise ConfigurationError(
            f"{setting} is too weak: {length} characters besides surrounding blanks, "
            f"at least {min_length} needed ({how})"
        )
    if is_placeholder(value):
        shown = "empty" if not length else "a placeholder"
        raise ConfigurationError(f"{setting} is {shown}: set a real secret ({how})")
    return value


def check_demo_alone(demo_setting: str, common: PulseSettings) -> None:
    """Demo mode (no auth, a public salt) is for the embedded stack only: refuse it when a
    Kafka cluster or a ClickHouse server is configured, naming both settings."""
    if common.kafka_bootstrap:
        raise ConfigurationError(
            f"{demo_setting}=true refuses to run with PULSE_KAFKA_BOOTSTRAP set "
            "(demo mode has no auth and a public salt): unset one of them"
        )
    if common.clickhouse_url:
        raise ConfigurationError(
            f"{demo_setting}=true refuses to run with PULSE_CLICKHOUSE_URL set "
            "(demo mode has no auth and a public salt): unset one of them"
        )


def check_server_credentials(common: PulseSettings) -> None:
    """A ClickHouse server needs a real password for ``PULSE_CLICKHOUSE_USER`` (embedded
    chDB has no users)."""
    if common.clickhouse_url:
        check_secret("PULSE_CLICKHOUSE_PASSWORD", common.clickhouse_password.get_secret_value())


def check_kafka_credentials(common: PulseSettings) -> None:
    """A SASL Kafka connection needs a real password for ``PULSE_KAFKA_USERNAME`` (that
    both are set is validated by :class:`PulseSettings` itself)."""
    if common.kafka_bootstrap and common.kafka_sasl:
        check_secret("PULSE_KAFKA_PASSWORD", common.kafka_password.get_secret_value())


def refuse_insecure_startup(common: PulseSettings) -> None:
    """The checks every service runs before it listens (raises :class:`ConfigurationError`)."""
    check_server_credentials(common)
    check_kafka_credentials(common)


def _settings_classes(root: type[BaseSettings] = BaseSettings) -> Iterator[type[BaseSettings]]:
    for sub in root.__subclasses__():
        yield sub
        yield from _settings_classes(sub)


def env_variable(settings_class: type[BaseSettings], field: str) -> str:
    """The environment variable that sets ``field`` of ``settings_class`` (prefix + name,
    upper-cased as operators write it; pydantic-settings matches it case-insensitively)."""
    prefix = str(settings_class.model_config.get("env_prefix", ""))
    return f"{prefix}{field}".upper()


def describe_settings_error(exc: ValidationError) -> str:
    """One line naming each bad environment variable and why, e.g.
    ``PULSE_KPI_FLUSH_INTERVAL_S: Input should be greater than 0``.

    The error only carries the settings class's name (its title), so the class is found among
    the loaded subclasses of ``BaseSettings`` to learn its prefix. Inputs are left out: the
    variable may hold a secret.
    """
    settings_class = next((c for c in _settings_classes() if c.__name__ == exc.title), None)
    problems = []
    for error in exc.errors(include_url=False, include_input=False):
        field = ".".join(str(part) for part in error["loc"])
        if settings_class is not None and field:
            where = env_variable(settings_class, field)
        else:  # a model-level check, or not a settings class
            where = ".".join(part for part in (exc.title, field) if part)
        problems.append(f"{where}: {error['msg']}")
    return "; ".join(problems)


@contextmanager
def refusing_to_start() -> Iterator[None]:
    """Turn a :class:`ConfigurationError`, or a settings :class:`ValidationError` (an
    out-of-range or malformed variable), raised while a service starts into one line on
    stderr and exit status 1 (no traceback)."""
    try:
        yield
    except ConfigurationError as exc:
        raise SystemExit(f"configuration: {exc}") from None
    except ValidationError as exc:
        raise SystemExit(f"configuration: {describe_settings_error(exc)}") from None
