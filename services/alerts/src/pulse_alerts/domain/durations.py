"""Durations written the Prometheus way: ``90s``, ``30m``, ``4h``, ``2d``, ``1w``."""

from __future__ import annotations

import datetime as dt
import re

_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_UNITS = {
    "ms": 0.001,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
    "d": 86400.0,
    "w": 604800.0,
}


def parse_duration(text: str | int | float | dt.timedelta) -> dt.timedelta:
    """``"1h30m"`` → 90 minutes; a bare number means seconds."""
    if isinstance(text, dt.timedelta):
        return text
    if isinstance(text, int | float):
        if text < 0:
            raise ValueError("duration must not be negative")
        return dt.timedelta(seconds=float(text))
    value = text.strip().lower()
    if not value:
        raise ValueError("empty duration")
    pos = 0
    total = 0.0
    for match in _PART.finditer(value):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    if pos != len(value):
        raise ValueError(f"invalid duration {text!r} (use e.g. 90s, 30m, 4h, 2d)")
    return dt.timedelta(seconds=total)


def format_duration(delta: dt.timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds == 0:
        return "0s"
    out = ""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size:
            out += f"{seconds // size}{unit}"
            seconds %= size
    return out
