"""Sign-in settings (env prefix ``PULSE_AUTH_``), shared by every service with an HTTP
surface and by ``pulse dashboard``."""

from __future__ import annotations

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from pulse_shared.config_checks import check_secret

#: Session keys shorter than this could be guessed (HMAC key of the session signature).
MIN_SESSION_SECRET = 32


class AuthSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PULSE_AUTH_", extra="ignore")

    session_secret: SecretStr = Field(
        default=SecretStr(""),
        description="Key signing dashboard session cookies (at least 32 characters; the "
        "same on every replica). Unset: a random key per process, so sessions end when "
        "it restarts.",
    )
    session_max_age_s: int = Field(
        default=8 * 3600, ge=60, description="A dashboard session lasts this long."
    )
    cookie_secure: bool | None = Field(
        default=None,
        description="Send the session cookie over HTTPS only. Unset: on unless the "
        "service binds a loopback address (local use over http).",
    )
    recheck_s: float = Field(
        default=15.0, ge=0,
        description="How long a verified token or session is trusted before its user is "
        "read again (a revocation takes effect within this time).",
    )
    token_days: int = Field(
        default=90, ge=1, description="Default lifetime of a new user's token in days."
    )
    oidc_metadata_url: str | None = Field(
        default=None,
        description="OpenID Connect discovery URL of the company's identity provider "
        "(…/.well-known/openid-configuration). Set it (with client id and secret) to "
        "offer single sign-on on the dashboard.",
    )
    oidc_client_id: str = Field(default="", description="OIDC client id.")
    oidc_client_secret: SecretStr = Field(default=SecretStr(""), description="OIDC secret.")
    oidc_role_claim: str = Field(
        default="pulse_role",
        description="ID-token claim holding the Pulse role (a string or a list; the first "
        "Pulse role found wins). Users without one are refused.",
    )
    oidc_role_map: dict[str, str] = Field(
        default_factory=dict,
        description='Identity-provider group → Pulse role, e.g. {"mkt-leadership": "cmo"}; '
        "claim values not in the map are used as role names.",
    )

    @field_validator("session_secret")
    @classmethod
    def _strong_session_secret(cls, value: SecretStr) -> SecretStr:
        """Unset is allowed (a random key per process); a set key must be a real one."""
        if value.get_secret_value():
            check_secret("PULSE_AUTH_SESSION_SECRET", value.get_secret_value(),
                         min_length=MIN_SESSION_SECRET)
        return value

    @property
    def oidc_enabled(self) -> bool:
        return bool(self.oidc_metadata_url and self.oidc_client_id)
