"""Local Pulse users, stored in ClickHouse (``pulse_users``): add, list, revoke, and look
up by token id. Every SQL statement of sign-in lives here."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from dataclasses import dataclass

from pulse_shared.access import Role, parse_role
from pulse_shared.auth.tokens import IssuedToken, issue_token
from pulse_shared.store import Store

TABLE = "pulse_users"
COLUMNS = (
    "name", "role", "token_id", "token_hash", "created_at", "created_by", "expires_at",
    "revoked_at", "revoked_by", "updated_at",
)
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
Clock = Callable[[], dt.datetime]


class UserError(ValueError):
    """A user command that cannot be done (unknown user, bad name, user exists)."""


@dataclass(frozen=True)
class User:
    name: str
    role: Role
    token_id: str
    token_hash: str
    created_at: dt.datetime
    created_by: str
    expires_at: dt.datetime | None
    revoked_at: dt.datetime | None
    revoked_by: str

    def active(self, now: dt.datetime) -> bool:
        return self.revoked_at is None and (self.expires_at is None or now < self.expires_at)

    def status(self, now: dt.datetime) -> str:
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and now >= self.expires_at:
            return "expired"
        return "active"


def _utc(value: dt.datetime | None) -> dt.datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def _user(row: dict[str, object]) -> User:
    return User(
        name=str(row["name"]), role=Role(str(row["role"])), token_id=str(row["token_id"]),
        token_hash=str(row["token_hash"]),
        created_at=_utc(row["created_at"]) or dt.datetime.min,  # type: ignore[arg-type]
        created_by=str(row["created_by"]),
        expires_at=_utc(row["expires_at"]),  # type: ignore[arg-type]
        revoked_at=_utc(row["revoked_at"]),  # type: ignore[arg-type]
        revoked_by=str(row["revoked_by"]),
    )


def _ms(value: dt.datetime) -> dt.datetime:
    """To the stored precision (DateTime64(3)), so a returned user equals its row."""
    return value.replace(microsecond=value.microsecond // 1000 * 1000)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class UserDirectory:
    """Users of one store. ``clock`` decides expiry (tests pass one)."""

    def __init__(self, store: Store, clock: Clock = _now) -> None:
        self.store = store
        self.clock = clock

    def _select(self, where: str, parameters: dict[str, object]) -> list[User]:
        rows = self.store.query(
            f"SELECT {', '.join(COLUMNS)} FROM {TABLE} FINAL WHERE {where} ORDER BY name",  # noqa: S608 - constant SQL, values are parameters
            parameters,
        )
        return [_user(r) for r in rows]

    def get(self, name: str) -> User | None:
        found = self._select("name = {name:String}", {"name": name})
        return found[0] if found else None

    def by_token_id(self, token_id: str) -> User | None:
        found = self._select("token_id = {token_id:String}", {"token_id": token_id})
        return found[0] if found else None

    def list(self) -> list[User]:
        return self._select("1", {})

    def add(
        self, name: str, role: Role | str, *, created_by: str, valid_days: int | None = 90,
    ) -> tuple[User, str]:
        """A new user and its token (shown once: only its hash is kept). An existing active
        user is refused; a revoked or expired one is replaced (new token)."""
        if not _NAME.match(name):
            raise UserError(
                f"user name {name!r}: 1-64 letters, digits or . _ @ -, starting with a "
                "letter or digit"
            )
        role = parse_role(str(role)) if not isinstance(role, Role) else role
        now = _ms(self.clock())
        existing = self.get(name)
        if existing is not None and existing.active(now):
            raise UserError(f"user {name!r} exists; revoke it first to issue a new token")
        issued: IssuedToken = issue_token()
        expires = now + dt.timedelta(days=valid_days) if valid_days else None
        user = User(name, role, issued.token_id, issued.token_hash, now, created_by,
                    expires, None, "")
        self._write(user, now)
        return user, issued.token

    def revoke(self, name: str, *, revoked_by: str) -> User:
        user = self.get(name)
        if user is None:
            raise UserError(f"no user {name!r}")
        if user.revoked_at is not None:
            return user
        now = _ms(self.clock())
        revoked = User(user.name, user.role, user.token_id, user.token_hash, user.created_at,
                       user.created_by, user.expires_at, now, revoked_by)
        self._write(revoked, now)
        return revoked

    def _write(self, user: User, now: dt.datetime) -> None:
        row = {
            "name": user.name, "role": user.role.value, "token_id": user.token_id,
            "token_hash": user.token_hash, "created_at": user.created_at,
            "created_by": user.created_by, "expires_at": user.expires_at,
            "revoked_at": user.revoked_at, "revoked_by": user.revoked_by,
            # Strictly increasing per user, even when two changes share a clock reading.
            "updated_at": max(now, dt.datetime.now(dt.UTC)),
        }
        self.store.insert(TABLE, [row], list(COLUMNS))
