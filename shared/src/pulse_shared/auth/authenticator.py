"""Who is calling: a Bearer token (APIs) or a signed session cookie (dashboard).

Tokens are checked against :class:`~pulse_shared.auth.users.UserDirectory` (Argon2id,
constant time). A verified token is remembered by a SHA-256 of it, so the Argon2 cost is
paid once per token and process; the user's row is read again after ``recheck_s`` so a
revocation or expiry takes effect within that time. Sessions are signed (itsdangerous)
and carry the user's token id: revoking the user ends its sessions too.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from itsdangerous import BadSignature, URLSafeTimedSerializer

from pulse_shared.access import Role, parse_role
from pulse_shared.auth.settings import AuthSettings
from pulse_shared.auth.tokens import split_token, verify_secret
from pulse_shared.auth.users import User, UserDirectory
from pulse_shared.logging import get_logger

log = get_logger(__name__)
SESSION_COOKIE = "pulse_session"
Clock = Callable[[], dt.datetime]


@dataclass(frozen=True)
class Principal:
    """A signed-in caller. ``via`` is "token", "session" or "oidc"."""

    name: str
    role: Role
    via: str
    csrf: str = ""


@dataclass
class _Verified:
    user: User
    checked: float


class Authenticator:
    def __init__(
        self,
        directory: UserDirectory | None,
        settings: AuthSettings | None = None,
        *,
        clock: Clock | None = None,
    ) -> None:
        self.directory = directory
        self.settings = settings or AuthSettings()
        self.clock = clock or (directory.clock if directory else lambda: dt.datetime.now(dt.UTC))
        secret = self.settings.session_secret.get_secret_value()
        if not secret:
            secret = secrets.token_urlsafe(32)
            log.info("auth_session_key_random", why="PULSE_AUTH_SESSION_SECRET unset: "
                     "sessions end when this process restarts")
        self._sessions = URLSafeTimedSerializer(secret, salt="pulse-session")
        self._verified: dict[bytes, _Verified] = {}
        self._by_id: dict[str, _Verified] = {}
        self._lock = threading.Lock()

    # -- tokens ------------------------------------------------------------------------
    def _current(self, token_id: str) -> User | None:
        """The user of ``token_id`` (re-read after ``recheck_s``), or None."""
        if self.directory is None:
            return None
        hit = self._by_id.get(token_id)
        if hit is not None and time.monotonic() - hit.checked < self.settings.recheck_s:
            return hit.user
        user = self.directory.by_token_id(token_id)
        if user is not None:
            self._by_id[token_id] = _Verified(user, time.monotonic())
        return user

    def from_token(self, token: str) -> Principal | None:
        """The user a Bearer token belongs to, if it is valid now (not revoked/expired)."""
        parts = split_token(token)
        if parts is None:
            return None
        token_id, secret = parts
        user = self._current(token_id)
        if user is None or not user.active(self.clock()):
            return None
        digest = hashlib.sha256(token.encode()).digest()
        with self._lock:
            known = self._verified.get(digest)
        if known is None or known.user.token_hash != user.token_hash:
            if not verify_secret(secret, user.token_hash):
                return None
            with self._lock:
                if len(self._verified) > 10_000:  # bounded: many distinct valid tokens
                    self._verified.clear()
                self._verified[digest] = _Verified(user, time.monotonic())
        return Principal(user.name, user.role, "token")

    # -- sessions ----------------------------------------------------------------------
    def new_session(self, principal: Principal, token_id: str = "") -> str:
        """Cookie value of a session for ``principal`` (with a fresh CSRF token)."""
        payload = {
            "sub": principal.name, "role": principal.role.value, "via": principal.via,
            "tid": token_id, "csrf": secrets.token_urlsafe(24),
        }
        return self._sessions.dumps(payload)

    def session_token_id(self, token: str) -> str:
        parts = split_token(token)
        return parts[0] if parts else ""

    def from_session(self, cookie: str) -> Principal | None:
        try:
            data: dict[str, Any] = self._sessions.loads(
                cookie, max_age=self.settings.session_max_age_s
            )
        except BadSignature:
            return None
        try:
            role = parse_role(str(data["role"]))
        except (KeyError, ValueError):
            return None
        name, via, csrf = str(data.get("sub", "")), str(data.get("via", "")), str(data["csrf"])
        if via == "session":  # a local user: still active, with the same token
            user = self._current(str(data.get("tid", "")))
            if user is None or user.name != name or not user.active(self.clock()):
                return None
            role = user.role
        elif via != "oidc":
            return None
        return Principal(name, role, via, csrf)

    # -- requests ----------------------------------------------------------------------
    def authenticate(self, headers: dict[str, str], cookies: dict[str, str]) -> Principal | None:
        """The caller of a request: ``Authorization: Bearer`` first, then the session."""
        authorization = headers.get("authorization", "")
        scheme, _, credentials = authorization.partition(" ")
        if scheme.lower() == "bearer" and credentials.strip():
            return self.from_token(credentials.strip())
        cookie = cookies.get(SESSION_COOKIE)
        if cookie:
            return self.from_session(cookie)
        return None
