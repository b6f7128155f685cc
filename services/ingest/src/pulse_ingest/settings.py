"""Ingest settings (env prefix ``PULSE_INGEST_``).

API keys are configured as JSON, hashed, never in clear::

    PULSE_INGEST_API_KEYS='[{"name": "hubspot", "key_sha256": "<sha256 hex of the key>",
                             "kinds": ["touchpoints", "pipeline"]}]'

``kinds`` empty = every kind. ``python -m pulse_ingest.settings hash-key KEY`` prints the
hash to put in the configuration.
"""

from __future__ import annotations

import hashlib
import hmac
import sys
from typing import Annotated

from pydantic import BaseModel, Field, SecretStr, StringConstraints
from pydantic_settings import BaseSettings, SettingsConfigDict

from pulse_ingest.domain.normalize import KINDS

DEMO_SALT = "pulse-demo-salt-not-secret"
#: A shorter salt (or one of blanks) is guessable: contact hashes could be reversed by
#: hashing candidate addresses. ``openssl rand -hex 32`` gives a good one.
MIN_SALT_LENGTH = 16


class ConfigurationError(RuntimeError):
    """The service cannot start with these settings (e.g. no PII salt)."""


def hash_api_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class ApiKey(BaseModel):
    """One client (usually one source tool) allowed to send some kinds of events."""

    name: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    key_sha256: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
    kinds: list[str] = Field(default_factory=list, description="Allowed kinds; [] = all.")

    def allows(self, kind: str) -> bool:
        return not self.kinds or kind in self.kinds


class IngestSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PULSE_INGEST_", extra="ignore")

    pii_salt: SecretStr = Field(
        default=SecretStr(""),
        description="Salt for hashing contact identifiers (at least 16 characters besides "
        "surrounding blanks, e.g. `openssl rand -hex 32`); required unless demo.",
    )
    api_keys: list[ApiKey] = Field(default_factory=list)
    auth_required: bool = Field(
        default=True, description="False only for local/demo use: no API key needed."
    )
    demo: bool = Field(default=False, description="Demo mode: demo salt, no auth.")
    max_rows: int = Field(default=10_000, ge=1, description="Rows per request (413 above).")
    max_body_bytes: int = Field(
        default=16 * 1024 * 1024, ge=1024,
        description="Request body size; 413 as soon as more arrives (checked while reading).",
    )
    max_depth: int = Field(
        default=32, ge=2, le=500,
        description="Nesting depth of a JSON row; deeper rows are rejected (422).",
    )
    max_csv_field_chars: int = Field(
        default=64 * 1024, ge=1024,
        description="Characters in one CSV cell; a longer cell rejects the request (422).",
    )
    max_row_errors: int = Field(
        default=100, ge=1,
        description="Unparsable NDJSON lines after which reading stops (422, nothing published).",
    )
    max_inflight_rows: int = Field(
        default=50_000, ge=1, description="Rows being published at once; 503 above."
    )
    publish_timeout_s: float = Field(default=10.0, gt=0, description="503 after this.")
    retry_after_s: int = Field(default=5, ge=1)
    connect_retry_s: float = Field(
        default=2.0, gt=0, description="Retry interval when Kafka is down at startup."
    )
    dedup_window: int = Field(default=100_000, ge=0, description="Event ids remembered per kind.")
    host: str = "0.0.0.0"
    port: int = 8000

    def salt(self) -> str:
        """The PII salt; refuses to run without a real one (the demo has its own)."""
        value = self.pii_salt.get_secret_value()
        if not value:
            if self.demo:
                return DEMO_SALT
            raise ConfigurationError(
                "PULSE_INGEST_PII_SALT is required (set PULSE_INGEST_DEMO=true for the demo)"
            )
        length = len(value.strip())
        if length < MIN_SALT_LENGTH:
            raise ConfigurationError(
                f"PULSE_INGEST_PII_SALT is too weak: {length} characters besides surrounding "
                f"blanks, at least {MIN_SALT_LENGTH} needed (e.g. `openssl rand -hex 32`)"
            )
        # Returned as configured (not stripped): existing hashes stay the same.
        return value

    @property
    def open_access(self) -> bool:
        return self.demo or not self.auth_required

    def find_key(self, presented: str) -> ApiKey | None:
        digest = hash_api_key(presented)
        found: ApiKey | None = None
        for key in self.api_keys:
            if hmac.compare_digest(key.key_sha256, digest):
                found = key
        return found

    def validate_kinds(self) -> None:
        for key in self.api_keys:
            unknown = set(key.kinds) - set(KINDS)
            if unknown:
                raise ConfigurationError(f"API key {key.name!r}: unknown kinds {sorted(unknown)}")


if __name__ == "__main__":  # pragma: no cover - tiny helper
    if len(sys.argv) == 3 and sys.argv[1] == "hash-key":
        print(hash_api_key(sys.argv[2]))
    else:
        print("usage: python -m pulse_ingest.settings hash-key KEY", file=sys.stderr)
        sys.exit(2)
