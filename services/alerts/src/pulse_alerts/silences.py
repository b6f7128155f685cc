"""Silences shared by the CLI and the HTTP API: create, list, expire."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Mapping

from pulse_alerts import storage
from pulse_alerts.domain.durations import parse_duration
from pulse_alerts.domain.model import Silence
from pulse_shared.store import Store

#: A silence longer than this is refused: a mute "until 2126" hides every future incident;
#: a longer quiet period is a rule change, not a silence.
MAX_SILENCE = dt.timedelta(days=90)


def parse_matchers(items: list[str] | Mapping[str, str]) -> dict[str, str]:
    """``["alertname=spend_*", "channel=email"]`` → dict (values may use wildcards)."""
    if isinstance(items, Mapping):
        pairs = dict(items)
    else:
        pairs = {}
        for item in items:
            key, sep, value = item.partition("=")
            if not sep or not key.strip():
                raise ValueError(f"matcher {item!r} must look like label=value")
            pairs[key.strip()] = value.strip()
    if not pairs:
        raise ValueError("a silence needs at least one matcher")
    return pairs


def create_silence(
    store: Store,
    matchers: dict[str, str],
    duration: str | dt.timedelta,
    now: dt.datetime,
    created_by: str = "",
    comment: str = "",
) -> Silence:
    length = parse_duration(duration)
    if length <= dt.timedelta(0):
        raise ValueError("silence duration must be positive")
    if length > MAX_SILENCE:
        raise ValueError(
            f"silence duration {duration} is longer than {MAX_SILENCE.days} days; change "
            "the rule instead"
        )
    raw = f"{sorted(matchers.items())}|{now.isoformat()}|{created_by}"
    silence = Silence(
        silence_id=hashlib.sha256(raw.encode()).hexdigest()[:16],
        matchers=matchers,
        starts_at=now,
        ends_at=now + length,
        created_by=created_by,
        comment=comment,
    )
    storage.save_silence(store, silence)
    return silence


def expire_silence(store: Store, silence_id: str, now: dt.datetime) -> Silence | None:
    for silence in storage.load_silences(store):
        if silence.silence_id == silence_id:
            expired = Silence(
                silence_id=silence.silence_id,
                matchers=silence.matchers,
                starts_at=min(silence.starts_at, now),
                ends_at=now,
                created_by=silence.created_by,
                comment=silence.comment,
            )
            storage.save_silence(store, expired)
            return expired
    return None


def silence_json(silence: Silence, now: dt.datetime) -> dict[str, object]:
    return {
        "silence_id": silence.silence_id,
        "matchers": silence.matchers,
        "starts_at": silence.starts_at.isoformat(),
        "ends_at": silence.ends_at.isoformat(),
        "created_by": silence.created_by,
        "comment": silence.comment,
        "active": silence.active(now),
    }
