"""Users, tokens and sessions (pulse_shared.auth) on both ClickHouse backends: tokens are
stored only as salted Argon2id hashes, expire, and stop working when revoked; sessions are
signed and end with their user."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest

from pulse_shared.access import Role
from pulse_shared.auth import Authenticator, AuthSettings, Principal, UserDirectory, UserError
from pulse_shared.auth.users import TABLE
from pulse_shared.store import Store


class Clock:
    def __init__(self) -> None:
        self.now = dt.datetime.now(dt.UTC)

    def __call__(self) -> dt.datetime:
        return self.now


def name() -> str:
    return f"u-{uuid.uuid4().hex[:10]}"


def test_token_is_stored_only_as_a_salted_argon2_hash(any_store: Store) -> None:
    directory = UserDirectory(any_store)
    first, second = name(), name()
    _, token_a = directory.add(first, "cmo", created_by="test")
    _, token_b = directory.add(second, "cmo", created_by="test")
    rows = any_store.query(
        f"SELECT * FROM {TABLE} FINAL WHERE name IN ({{a:String}}, {{b:String}})",
        {"a": first, "b": second},
    )
    assert len(rows) == 2
    for row, token in zip(sorted(rows, key=lambda r: r["name"] != first), (token_a, token_b),
                          strict=True):
        secret = token.split("_", 2)[2]
        assert all(secret not in str(value) for value in row.values())
        assert str(row["token_hash"]).startswith("$argon2id$")
    assert rows[0]["token_hash"] != rows[1]["token_hash"]


def test_token_checks_secret_expiry_and_revocation(any_store: Store) -> None:
    clock = Clock()
    directory = UserDirectory(any_store, clock=clock)
    auth = Authenticator(directory, AuthSettings(recheck_s=0))
    user = name()
    _, token = directory.add(user, Role.CX, created_by="test", valid_days=30)
    assert auth.from_token(token) == Principal(user, Role.CX, "token")
    token_id = token.split("_")[1]
    assert auth.from_token(f"pulse_{token_id}_{'x' * 43}") is None  # wrong secret
    assert auth.from_token(f"pulse_{'0' * 16}_{'x' * 43}") is None  # unknown id
    assert auth.from_token("not-a-token") is None
    clock.now += dt.timedelta(days=31)
    assert auth.from_token(token) is None  # expired
    clock.now -= dt.timedelta(days=31)
    assert auth.from_token(token) is not None
    directory.revoke(user, revoked_by="test")
    assert auth.from_token(token) is None  # revoked: immediately with recheck_s=0
    assert [u.status(clock()) for u in directory.list() if u.name == user] == ["revoked"]


def test_revocation_is_seen_after_the_recheck_interval(any_store: Store) -> None:
    directory = UserDirectory(any_store)
    auth = Authenticator(directory, AuthSettings(recheck_s=3600))
    user = name()
    _, token = directory.add(user, Role.CMO, created_by="test")
    assert auth.from_token(token) is not None
    directory.revoke(user, revoked_by="test")
    assert auth.from_token(token) is not None  # trusted until the recheck interval ends
    fresh = Authenticator(directory, AuthSettings(recheck_s=3600))
    assert fresh.from_token(token) is None  # a new reader (or the next recheck) sees it


def test_user_commands_refuse_what_they_cannot_do(any_store: Store) -> None:
    directory = UserDirectory(any_store)
    user = name()
    directory.add(user, "director", created_by="test")
    with pytest.raises(UserError, match="exists"):
        directory.add(user, "cmo", created_by="test")
    with pytest.raises(ValueError, match="unknown role 'ceo'"):
        directory.add(name(), "ceo", created_by="test")
    with pytest.raises(UserError, match="user name"):
        directory.add("<script>", "cmo", created_by="test")
    with pytest.raises(UserError, match="no user"):
        directory.revoke(name(), revoked_by="test")
    directory.revoke(user, revoked_by="test")
    replaced, _ = directory.add(user, "cmo", created_by="test")  # a revoked name is reusable
    assert replaced.role is Role.CMO and directory.get(user) == replaced


def test_sessions_are_signed_and_end_with_their_user(any_store: Store) -> None:
    directory = UserDirectory(any_store)
    settings = AuthSettings(recheck_s=0, session_secret="s" * 40)
    auth = Authenticator(directory, settings)
    user = name()
    _, token = directory.add(user, Role.MARKETING_OPS, created_by="test")
    principal = auth.from_token(token)
    assert principal is not None
    cookie = auth.new_session(
        Principal(principal.name, principal.role, "session"), auth.session_token_id(token)
    )
    session = auth.from_session(cookie)
    assert session is not None and session.name == user and session.csrf
    assert auth.from_session(cookie[:-2] + ("AA" if cookie[-2:] != "AA" else "BB")) is None
    other_key = Authenticator(directory, AuthSettings(session_secret="t" * 40))
    assert other_key.from_session(cookie) is None  # signed with another key
    assert auth.authenticate({}, {"pulse_session": cookie}) == session
    directory.revoke(user, revoked_by="test")
    assert auth.from_session(cookie) is None


@pytest.mark.parametrize("secret", ["change-me-session-secret-0123456789", "too-short"])
def test_a_weak_or_placeholder_session_key_refuses_to_start(secret: str) -> None:
    from pulse_shared.config_checks import ConfigurationError

    with pytest.raises(ConfigurationError, match="PULSE_AUTH_SESSION_SECRET"):
        AuthSettings(session_secret=secret)
    assert AuthSettings(session_secret="k" * 32).session_secret.get_secret_value()
