"""Settings shared by all services (env prefix ``PULSE_``).

Each service adds its own settings class with its own prefix (``PULSE_INGEST_`` …) and
reads the common ones through :func:`common_settings`.
"""

from __future__ import annotations

import datetime as dt
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class PulseSettings(BaseSettings):
    """Connection and runtime settings every service needs."""

    model_config = SettingsConfigDict(env_prefix="PULSE_", extra="ignore")

    kafka_bootstrap: str | None = Field(
        default=None, description="Kafka bootstrap servers; unset = in-process bus."
    )
    # Kafka authentication (docs/kafka-security.md): each service has its own SCRAM user,
    # and the broker's ACLs let it write and read only its own topics.
    kafka_security_protocol: Literal["PLAINTEXT", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        default="PLAINTEXT",
        description="Kafka security protocol; SASL_* authenticate with PULSE_KAFKA_USERNAME "
        "and PULSE_KAFKA_PASSWORD (SCRAM).",
    )
    kafka_sasl_mechanism: Literal["SCRAM-SHA-512", "SCRAM-SHA-256"] = Field(
        default="SCRAM-SHA-512", description="SASL mechanism of the SASL_* protocols."
    )
    kafka_username: str | None = Field(
        default=None, description="Kafka SCRAM user (one per service, e.g. pulse-ingest)."
    )
    kafka_password: SecretStr = Field(
        default=SecretStr(""), description="Password of PULSE_KAFKA_USERNAME."
    )
    kafka_ssl_cafile: Path | None = Field(
        default=None,
        description="SASL_SSL: CA bundle to verify the brokers with (default: system CAs).",
    )
    clickhouse_url: str | None = Field(
        default=None, description="ClickHouse HTTP URL; unset = embedded chDB."
    )
    clickhouse_user: str = Field(default="default", description="ClickHouse user.")
    clickhouse_password: SecretStr = Field(
        default=SecretStr(""), description="ClickHouse password."
    )
    clickhouse_database: str = Field(default="default", description="ClickHouse database.")
    clickhouse_cluster: str | None = Field(
        default=None,
        description="ClickHouse cluster (a remote_servers name): migrations create "
        "replicated local tables and Distributed tables over them on every node (ON "
        "CLUSTER); unset = one server, the plain schema. docs/operations.md.",
    )
    data_dir: Path = Field(
        default=Path("pulse-data"), description="Embedded chDB data directory."
    )
    consumer_group_prefix: str = Field(
        default="", description="Prefix of every consumer group id (e.g. 'staging-')."
    )
    consumer_flush_after_s: float = Field(
        default=0.1,
        ge=0,
        lt=60,
        description="How long a consumer keeps polling to fill an insert batch (up to its "
        "max records) before writing and committing: fewer, larger ClickHouse inserts under "
        "a trickle of small polls, for at most this much extra latency. 0 writes each poll "
        "as it comes.",
    )
    consumer_stall_after_s: float = Field(
        default=60.0,
        gt=0,
        description="A consumer behind the log end that has not committed for this long "
        "makes /health answer 503 naming its topics.",
    )
    log_level: str = Field(default="INFO", description="Log level (DEBUG, INFO, WARNING…).")
    log_json: bool = Field(default=True, description="JSON logs (services); text for CLI.")
    # Plausibility windows of event times and dates (pulse_shared.events), relative to the
    # moment of validation. Every service validates with the same window, so a record
    # ingest accepted is accepted downstream too (the upper bounds only grow with time).
    earliest_event_date: dt.date = Field(
        default=dt.date(2000, 1, 1),
        ge=dt.date(1970, 1, 1),  # ClickHouse Date starts on 1970-01-01
        description="Event times and dates before this day (UTC) are validation errors.",
    )
    max_future_skew: dt.timedelta = Field(
        default=dt.timedelta(days=1),
        ge=dt.timedelta(0),
        le=dt.timedelta(days=31),
        description="How far ahead of now an event time or date may be (clock skew, "
        "time zones); ISO 8601 duration, e.g. P1D or PT12H.",
    )
    max_plan_ahead: dt.timedelta = Field(
        default=dt.timedelta(days=460),
        ge=dt.timedelta(0),
        le=dt.timedelta(days=3660),
        description="How far ahead of now a planned period may start (budget month, KPI "
        "period start); 460 days lets all of next year be budgeted from 1 October.",
    )

    @model_validator(mode="after")
    def _sasl_has_credentials(self) -> PulseSettings:
        if not self.kafka_sasl:
            return self
        missing = [
            name
            for name, value in (
                ("PULSE_KAFKA_USERNAME", (self.kafka_username or "").strip()),
                ("PULSE_KAFKA_PASSWORD", self.kafka_password.get_secret_value().strip()),
            )
            if not value
        ]
        if missing:
            raise ValueError(
                f"PULSE_KAFKA_SECURITY_PROTOCOL={self.kafka_security_protocol} needs "
                f"{' and '.join(missing)} (the service's Kafka SCRAM user)"
            )
        return self

    @model_validator(mode="after")
    def _plan_covers_skew(self) -> PulseSettings:
        if self.max_plan_ahead < self.max_future_skew:
            raise ValueError("PULSE_MAX_PLAN_AHEAD must not be shorter than "
                             "PULSE_MAX_FUTURE_SKEW")
        return self

    @property
    def kafka_sasl(self) -> bool:
        """Whether clients authenticate to Kafka (SASL_PLAINTEXT or SASL_SSL)."""
        return self.kafka_security_protocol.startswith("SASL_")

    @property
    def embedded(self) -> bool:
        return self.clickhouse_url is None


@lru_cache(maxsize=1)
def common_settings() -> PulseSettings:
    return PulseSettings()
