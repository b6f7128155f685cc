"""Settings of the alerts service (env prefix ``PULSE_ALERTS_``)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class AlertsSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PULSE_ALERTS_", extra="ignore")

    rules_file: Path | None = Field(
        default=None, description="YAML rules file; unset = the rules shipped in the package."
    )
    host: str = Field(
        default="127.0.0.1",
        description="Address to listen on; the container image sets 0.0.0.0.",
    )
    port: int = 8003
    tick_interval_s: float = Field(
        default=30.0, gt=0, description="Timer evaluation (freshness, `for`, repeats)."
    )
    flush_after_s: float = Field(
        default=0.0, ge=0, lt=60,
        description="How long a polled batch of snapshots is topped up before it is "
        "evaluated (PULSE_CONSUMER_FLUSH_AFTER_S for this consumer). 0: as it comes; the "
        "service writes no rows in bulk, so waiting would only delay its alerts.",
    )
    # Slack-compatible incoming webhook
    webhook_url: str | None = None
    webhook_timeout_s: float = 5.0
    webhook_attempts: int = Field(default=5, ge=1)
    webhook_backoff_s: float = Field(default=0.5, ge=0)
    webhook_max_backoff_s: float = 10.0
    # SMTP e-mail
    smtp_host: str | None = None
    smtp_port: int = 25
    smtp_user: str | None = None
    smtp_password: SecretStr = SecretStr("")
    smtp_starttls: bool = False
    smtp_timeout_s: float = 10.0
    email_from: str = "pulse-alerts@localhost"
    email_to: list[str] = Field(default_factory=list)
    smtp_attempts: int = Field(default=3, ge=1)
