"""Signed-in callers for tests: a fresh user of a role and its Bearer header."""

from __future__ import annotations

import uuid

from pulse_shared.access import Role
from pulse_shared.auth import UserDirectory
from pulse_shared.store import Store


def issue_token(store: Store, role: Role | str, name: str | None = None) -> str:
    """A new user of ``role`` in ``store`` (unique name) and its token."""
    user = name or f"t-{Role(role).value}-{uuid.uuid4().hex[:10]}"
    _, token = UserDirectory(store).add(user, role, created_by="test")
    return token


def bearer(store: Store, role: Role | str) -> dict[str, str]:
    return {"Authorization": f"Bearer {issue_token(store, role)}"}
