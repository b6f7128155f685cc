"""Reporting settings (env prefix ``PULSE_REPORTING_``)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from pulse_reporting.domain.periods import ReportKind
from pulse_reporting.domain.schedule import DEFAULT_KINDS
from pulse_shared.attribution_models import DEFAULT_MODEL
from pulse_shared.config_checks import ConfigurationError, check_secret
from pulse_shared.settings import PulseSettings

ALL_FORMATS: tuple[str, ...] = ("md", "html", "pdf", "json", "csv")


class ReportingSettings(BaseSettings):
    """Where reports go, when they are scheduled, and how ClickHouse is read."""

    model_config = SettingsConfigDict(env_prefix="PULSE_REPORTING_", extra="ignore")

    output_dir: Path = Field(default=Path("reports"), description="Report files root.")
    timezone: str = Field(default="UTC", description="Time zone of the schedules.")
    clickhouse_user: str | None = Field(
        default=None, description="Read-only ClickHouse user; required when "
        "PULSE_CLICKHOUSE_URL is set (embedded chDB has no users).",
    )
    clickhouse_password: SecretStr | None = Field(
        default=None, description="Password of the read-only user (no placeholders)."
    )
    host: str = Field(
        default="127.0.0.1",
        description="Address to listen on; the container image sets 0.0.0.0.",
    )
    port: int = 8004
    model: str = Field(
        default=DEFAULT_MODEL,
        description="Attribution model of scheduled reports (default: the executive default).",
    )
    formats: tuple[str, ...] = ALL_FORMATS
    schedule_enabled: bool = True
    schedule_in_process: bool = Field(
        default=False,
        description="Also run the schedule in short-lived in-process (embedded CLI) "
        "pipelines; off by default there, `pulse report` produces on demand.",
    )
    schedule_hour: int = Field(default=6, ge=0, le=23, description="Local hour of runs.")
    scheduled_kinds: list[ReportKind] = Field(
        default_factory=lambda: list(DEFAULT_KINDS),
        description="Report kinds the schedule produces and delivers (JSON list): weekly, "
        "monthly and quarterly by default; add daily (the briefing, at "
        "PULSE_REPORTING_DAILY_BRIEFING_HOUR) and annual (on 1 January).",
    )
    daily_briefing_hour: int = Field(
        default=7, ge=0, le=23, description="Local hour of the daily briefing, when scheduled.")
    path_model: str = Field(
        default="linear", description="Credits of this model give the conversion paths."
    )
    path_milestone: str = "won"
    base_url: str = Field(default="", description="Prefix for report links (ReportReady).")

    # -- delivery to subscribers (pulse_reporting.delivery) --------------------------------
    delivery_enabled: bool = Field(
        default=True, description="Send scheduled reports to their subscribers "
        "(`pulse report subscribe`); `pulse report send` works either way.",
    )
    dashboard_url: str = Field(
        default="", description="Public URL of the dashboard (e.g. https://pulse.example.com): "
        "links in report e-mails and webhook messages; none without it.",
    )
    smtp_host: str = Field(default="", description="SMTP server; e-mail delivery is off without.")
    smtp_port: int = Field(default=587, ge=1, le=65535, description="SMTP port (465 for ssl).")
    smtp_security: Literal["starttls", "ssl", "none"] = Field(
        default="starttls", description="starttls (port 587), ssl (implicit TLS, port 465) or "
        "none (a local relay only).",
    )
    smtp_ca_file: Path | None = Field(
        default=None, description="CA bundle that verifies the SMTP server's certificate (a "
        "private CA); default: the system's CAs. Certificates are always verified.",
    )
    smtp_user: str = Field(default="", description="SMTP login; no AUTH without.")
    smtp_password: SecretStr = Field(default=SecretStr(""), description="SMTP password.")
    smtp_timeout_s: float = Field(default=30.0, gt=0, description="SMTP connect/reply timeout.")
    email_from: str = Field(
        default="Pulse reports <pulse-reports@localhost>", description="From: of report e-mails."
    )
    webhook_timeout_s: float = Field(
        default=10.0, gt=0, description="Timeout of one webhook POST (then it is retried)."
    )
    delivery_attempts: int = Field(
        default=4, ge=1, le=10, description="Tries per recipient before it is logged failed."
    )
    delivery_backoff_s: float = Field(
        default=2.0, ge=0, description="Wait before the 2nd try; doubles each try."
    )
    delivery_max_backoff_s: float = Field(default=60.0, ge=0, description="Longest wait.")
    delivery_key: SecretStr = Field(
        default=SecretStr(""), description="Fernet key(s) encrypting the e-mail addresses "
        "and webhook URLs of report subscriptions in ClickHouse, comma-separated: the first "
        "encrypts, every one decrypts (key rotation). Required for e-mail and webhook "
        "subscriptions on a ClickHouse server; the embedded store keeps a random one beside "
        "its data. New key: `python -c 'from cryptography.fernet import Fernet; "
        "print(Fernet.generate_key().decode())'`.",
    )

    def reader_credentials(self, common: PulseSettings) -> tuple[str | None, str | None]:
        """(user, password) of the read-only store. Against a ClickHouse server the
        read-only user is required: reports never read with the writer's rights."""
        if common.embedded:
            return self.clickhouse_user, (
                self.clickhouse_password.get_secret_value() if self.clickhouse_password else None
            )
        if not self.clickhouse_user:
            raise ConfigurationError(
                "PULSE_REPORTING_CLICKHOUSE_USER (the read-only ClickHouse user) is required "
                "when PULSE_CLICKHOUSE_URL is set"
            )
        password = self.clickhouse_password.get_secret_value() if self.clickhouse_password else ""
        return self.clickhouse_user, check_secret("PULSE_REPORTING_CLICKHOUSE_PASSWORD", password)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        ZoneInfo(value)
        return value

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)
