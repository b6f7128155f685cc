"""Pseudonymisation: raw personal identifiers never leave ingest."""

from __future__ import annotations

import hashlib
import hmac
import re

_SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")


def hash_identifier(raw: str, salt: str) -> str:
    """Salted SHA-256 (HMAC) of a normalised identifier such as an email address.

    Normalising (trim, lower-case) makes the same person hash the same way across tools.
    """
    if not salt:
        raise ValueError("a non-empty salt is required to hash identifiers")
    normalised = raw.strip().lower()
    return hmac.new(salt.encode(), normalised.encode(), hashlib.sha256).hexdigest()


def is_hashed(value: str) -> bool:
    return bool(_SHA256_HEX.match(value))
