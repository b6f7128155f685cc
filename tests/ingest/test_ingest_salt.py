"""The PII salt must be a real secret: the service refuses to start with a guessable one."""

from __future__ import annotations

import pytest

from pulse_ingest.settings import DEMO_SALT, MIN_SALT_LENGTH, ConfigurationError, IngestSettings


@pytest.mark.parametrize("salt", ["s", " ", " " * 40, "short-salt", "\t 0123456789abcde \n"])
def test_weak_salts_are_refused_with_the_variable_named(salt: str) -> None:
    with pytest.raises(ConfigurationError, match=f"PULSE_INGEST_PII_SALT.*at least {MIN_SALT_LENGTH}"):
        IngestSettings(pii_salt=salt).salt()
    with pytest.raises(ConfigurationError, match="PULSE_INGEST_PII_SALT"):
        IngestSettings(pii_salt=salt, demo=True).salt()  # a configured salt is never ignored


def test_a_real_salt_is_used_as_configured() -> None:
    salt = " 0123456789abcdef "  # 16 characters besides the blanks, kept for stable hashes
    assert IngestSettings(pii_salt=salt).salt() == salt
    assert len(DEMO_SALT) >= MIN_SALT_LENGTH
    assert IngestSettings(pii_salt="", demo=True).salt() == DEMO_SALT


def test_salt_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PULSE_INGEST_PII_SALT", "x" * (MIN_SALT_LENGTH - 1))
    with pytest.raises(ConfigurationError, match="15 characters"):
        IngestSettings().salt()
    monkeypatch.setenv("PULSE_INGEST_PII_SALT", "x" * MIN_SALT_LENGTH)
    assert IngestSettings().salt() == "x" * MIN_SALT_LENGTH
