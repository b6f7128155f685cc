"""Settings shared by all services (env prefix ``PULSE_``).

Each service adds its own settings class with its own prefix (``PULSE_INGEST_`` …) and
reads the common ones through :func:`common_settings`.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class PulseSettings(BaseSettings):
    """Connection and runtime settings every service needs."""

    model_config = SettingsConfigDict(env_prefix="PULSE_", extra="ignore")

    kafka_bootstrap: str | None = Field(
        default=None, description="Kafka bootstrap servers; unset = in-process bus."
    )
    clickhouse_url: str | None = Field(
        default=None, description="ClickHouse HTTP URL; unset = embedded chDB."
    )
    clickhouse_user: str = Field(default="default", description="ClickHouse user.")
    clickhouse_password: SecretStr = Field(
        default=SecretStr(""), description="ClickHouse password."
    )
    clickhouse_database: str = Field(default="default", description="ClickHouse database.")
    data_dir: Path = Field(
        default=Path("pulse-data"), description="Embedded chDB data directory."
    )
    consumer_group_prefix: str = Field(
        default="", description="Prefix of every consumer group id (e.g. 'staging-')."
    )
    log_level: str = Field(default="INFO", description="Log level (DEBUG, INFO, WARNING…).")
    log_json: bool = Field(default=True, description="JSON logs (services); text for CLI.")

    @property
    def embedded(self) -> bool:
        return self.clickhouse_url is None


@lru_cache(maxsize=1)
def common_settings() -> PulseSettings:
    return PulseSettings()
