"""Ingest settings (env prefix ``PULSE_INGEST_``).

API keys are configured as JSON, as salted scrypt hashes, never in clear::

    PULSE_INGEST_API_KEYS='[{"name": "hubspot", "key_hash": "scrypt:16384:8:1:<salt>:<hash>",
                             "kinds": ["touchpoints", "pipeline"]}]'

``kinds`` empty = every kind. ``pulse ingest hash-key KEY`` prints the hash to put in the
configuration; a key has at least :data:`MIN_KEY_LENGTH` characters (``python -c "import
secrets; print(secrets.token_urlsafe(32))"`` gives one). The unsalted ``key_sha256`` format
of earlier releases is refused with a message saying how to re-hash.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import sys
from typing import Annotated, Any

from pydantic import BaseModel, Field, PrivateAttr, SecretStr, StringConstraints, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from pulse_ingest.domain.normalize import KINDS
from pulse_shared.config_checks import ConfigurationError, check_demo_alone, check_secret
from pulse_shared.settings import PulseSettings

__all__ = ["DEMO_SALT", "MIN_KEY_LENGTH", "MIN_SALT_LENGTH", "ApiKey", "ConfigurationError",
           "IngestSettings", "hash_api_key", "verify_api_key"]

DEMO_SALT = "pulse-demo-salt-not-secret"
#: A shorter salt (or one of blanks) is guessable: contact hashes could be reversed by
#: hashing candidate addresses. ``openssl rand -hex 32`` gives a good one.
MIN_SALT_LENGTH = 16
#: Shorter API keys are refused by ``hash-key`` and never even hashed at request time:
#: 32 random URL-safe characters are ~190 bits, beyond any guessing.
MIN_KEY_LENGTH = 32
KEY_HINT = "e.g. `python -c \"import secrets; print(secrets.token_urlsafe(32))\"`"
# scrypt cost: ~40 ms per hash on one core, 16 MB; verified keys are remembered in memory
# (by a SHA-256 of the presented key), so the cost is paid once per key and process.
_SCRYPT_N, _SCRYPT_R, _SCRYPT_P, _SCRYPT_LEN = 2**14, 8, 1, 32
_HASH_PATTERN = r"^scrypt:[0-9]+:[0-9]+:[0-9]+:[A-Za-z0-9_=-]+:[A-Za-z0-9_=-]+$"
REHASH = ("re-hash the key with `pulse ingest hash-key KEY` (keys of at least "
          f"{MIN_KEY_LENGTH} characters) and configure the output as \"key_hash\"")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode()


def _scrypt(key: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(key.encode(), salt=salt, n=n, r=r, p=p, dklen=_SCRYPT_LEN,
                          maxmem=256 * n * r + 1024 * 1024)


def hash_api_key(key: str) -> str:
    """The salted hash to configure for ``key``; refuses short or placeholder keys."""
    check_secret("API key", key, min_length=MIN_KEY_LENGTH, hint=KEY_HINT)
    salt = os.urandom(16)
    digest = _scrypt(key, salt, _SCRYPT_N, _SCRYPT_R, _SCRYPT_P)
    # ":" (not "$") separates the fields: no shell or compose interpolation touches it.
    return f"scrypt:{_SCRYPT_N}:{_SCRYPT_R}:{_SCRYPT_P}:{_b64(salt)}:{_b64(digest)}"


def verify_api_key(presented: str, key_hash: str) -> bool:
    """Constant-time check of ``presented`` against a :func:`hash_api_key` value."""
    _, n, r, p, salt, digest = key_hash.split(":")
    expected = base64.urlsafe_b64decode(digest)
    actual = _scrypt(presented, base64.urlsafe_b64decode(salt), int(n), int(r), int(p))
    return hmac.compare_digest(actual, expected)


class ApiKey(BaseModel):
    """One client (usually one source tool) allowed to send some kinds of events."""

    name: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    key_hash: Annotated[str, StringConstraints(pattern=_HASH_PATTERN)]
    kinds: list[str] = Field(default_factory=list, description="Allowed kinds; [] = all.")

    @model_validator(mode="before")
    @classmethod
    def _refuse_unsalted(cls, data: Any) -> Any:
        if isinstance(data, dict) and "key_sha256" in data:
            raise ValueError(f"API key {data.get('name')!r}: unsalted \"key_sha256\" hashes are "
                             f"no longer accepted; {REHASH}")
        return data

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
    host: str = Field(
        default="127.0.0.1",
        description="Address to listen on; the container image sets 0.0.0.0.",
    )
    port: int = 8000
    _verified: dict[str, int] = PrivateAttr(default_factory=dict)

    def salt(self) -> str:
        """The PII salt; refuses to run without a real one (the demo has its own)."""
        value = self.pii_salt.get_secret_value()
        if self.demo:  # no auth and a public salt: never beside a real cluster
            check_demo_alone("PULSE_INGEST_DEMO", PulseSettings())
        if not value:
            if self.demo:
                return DEMO_SALT
            raise ConfigurationError(
                "PULSE_INGEST_PII_SALT is required (set PULSE_INGEST_DEMO=true for the demo)"
            )
        check_secret("PULSE_INGEST_PII_SALT", value, min_length=MIN_SALT_LENGTH)
        # Returned as configured (not stripped): existing hashes stay the same.
        return value

    @property
    def open_access(self) -> bool:
        return self.demo or not self.auth_required

    def find_key(self, presented: str) -> ApiKey | None:
        """The configured key ``presented`` matches, if any. Keys shorter than
        :data:`MIN_KEY_LENGTH` are refused without hashing."""
        if len(presented) < MIN_KEY_LENGTH:
            return None
        # Not a stored secret: a memo of keys already verified by scrypt in this process.
        memo = hashlib.sha256(presented.encode()).hexdigest()
        index = self._verified.get(memo)
        if index is not None and index < len(self.api_keys):
            return self.api_keys[index]
        for index, key in enumerate(self.api_keys):
            if verify_api_key(presented, key.key_hash):
                self._verified[memo] = index
                return key
        return None

    def key_id(self, key: ApiKey) -> str:
        """Non-secret label of ``key`` in /metrics: its position in PULSE_INGEST_API_KEYS
        (``key-1`` is the first entry); key names never appear there."""
        return f"key-{self.api_keys.index(key) + 1}"

    def validate_kinds(self) -> None:
        for key in self.api_keys:
            unknown = set(key.kinds) - set(KINDS)
            if unknown:
                raise ConfigurationError(f"API key {key.name!r}: unknown kinds {sorted(unknown)}")


if __name__ == "__main__":  # pragma: no cover - tiny helper
    if len(sys.argv) == 3 and sys.argv[1] == "hash-key":
        print(hash_api_key(sys.argv[2]))
    else:
        print("usage: pulse ingest hash-key KEY", file=sys.stderr)
        sys.exit(2)
