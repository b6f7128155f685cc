"""Reporting settings (env prefix ``PULSE_REPORTING_``)."""

from __future__ import annotations

from pathlib import Path
from zoneinfo import ZoneInfo

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from pulse_shared.attribution_models import DEFAULT_MODEL

ALL_FORMATS: tuple[str, ...] = ("md", "html", "pdf", "json", "csv")


class ReportingSettings(BaseSettings):
    """Where reports go, when they are scheduled, and how ClickHouse is read."""

    model_config = SettingsConfigDict(env_prefix="PULSE_REPORTING_", extra="ignore")

    output_dir: Path = Field(default=Path("reports"), description="Report files root.")
    timezone: str = Field(default="UTC", description="Time zone of the schedules.")
    clickhouse_user: str | None = Field(
        default=None, description="Read-only ClickHouse user (None = PULSE_CLICKHOUSE_USER)."
    )
    clickhouse_password: SecretStr | None = None
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
    path_model: str = Field(
        default="linear", description="Credits of this model give the conversion paths."
    )
    path_milestone: str = "won"
    base_url: str = Field(default="", description="Prefix for report links (ReportReady).")

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        ZoneInfo(value)
        return value

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)
