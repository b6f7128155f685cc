"""Pseudonymisation: raw personal identifiers never leave ingest."""

from __future__ import annotations

import hashlib
import hmac
import re

_SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")
EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
REDACTED_EMAIL = "[redacted-email]"


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


def contains_email(text: str) -> bool:
    return "@" in text and EMAIL.search(text) is not None


def redact_emails(text: str) -> str:
    """Replace e-mail addresses, e.g. in a dead letter's copy of a foreign payload."""
    return EMAIL.sub(REDACTED_EMAIL, text) if "@" in text else text
