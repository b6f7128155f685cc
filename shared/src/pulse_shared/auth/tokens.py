"""User tokens: ``pulse_<token_id>_<secret>``. The id finds the user's row; only an
Argon2id hash of the secret (salted, via argon2-cffi) is stored, and checking it is
constant-time."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_HASHER = PasswordHasher()  # argon2-cffi's RFC 9106 low-memory profile (~50 ms, 64 MiB)
_TOKEN = re.compile(r"^pulse_([0-9a-f]{16})_([A-Za-z0-9_-]{32,128})$")


@dataclass(frozen=True)
class IssuedToken:
    token_id: str
    token: str
    token_hash: str


def issue_token() -> IssuedToken:
    token_id = secrets.token_hex(8)
    secret = secrets.token_urlsafe(32)
    return IssuedToken(token_id, f"pulse_{token_id}_{secret}", _HASHER.hash(secret))


def split_token(token: str) -> tuple[str, str] | None:
    """(token_id, secret) of a well-formed token, else None."""
    match = _TOKEN.match(token.strip())
    return (match.group(1), match.group(2)) if match else None


def verify_secret(secret: str, token_hash: str) -> bool:
    try:
        return _HASHER.verify(token_hash, secret)
    except (VerificationError, InvalidHashError):
        return False
