"""Domain values: what an evaluation observed, an alert's state, a silence."""

from __future__ import annotations

import datetime as dt
import fnmatch
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cached_property
from typing import Any

from pulse_shared.events import Severity


class Status(StrEnum):
    """Lifecycle of one fingerprint; ``inactive`` = was pending, never fired."""

    INACTIVE = "inactive"
    PENDING = "pending"
    FIRING = "firing"
    RESOLVED = "resolved"


def fingerprint_of(rule: str, labels: Mapping[str, str]) -> str:
    """Stable id of an alert: the rule plus its labels (order-independent)."""
    canonical = "\x1f".join([rule, *(f"{k}={labels[k]}" for k in sorted(labels))])
    return hashlib.sha256(canonical.encode()).hexdigest()[:32]


@dataclass(frozen=True)
class Observation:
    """One evaluation of one rule on one series: breaching or not, with its numbers."""

    rule: str
    kpi: str
    labels: dict[str, str]
    breaching: bool
    value: float | None
    threshold: float | None
    as_of: dt.datetime
    period_start: dt.date | None = None
    context: dict[str, Any] = field(default_factory=dict)

    @cached_property
    def fingerprint(self) -> str:
        return fingerprint_of(self.rule, self.labels)


@dataclass(frozen=True)
class AlertStatus:
    """Persisted state of one fingerprint (one row of ``alert_state``)."""

    fingerprint: str
    rule: str
    status: Status
    severity: Severity
    kpi: str
    labels: dict[str, str]
    annotations: dict[str, str] = field(default_factory=dict)
    value: float | None = None
    threshold: float | None = None
    active_since: dt.datetime | None = None
    fired_at: dt.datetime | None = None
    resolved_at: dt.datetime | None = None
    consecutive: int = 0
    notified: str = ""
    last_sent_at: dt.datetime | None = None
    period_start: dt.date | None = None
    as_of: dt.datetime | None = None
    updated_at: dt.datetime | None = None


@dataclass(frozen=True)
class Silence:
    """Mutes notifications of alerts whose labels match every matcher (wildcards)."""

    silence_id: str
    matchers: dict[str, str]
    starts_at: dt.datetime
    ends_at: dt.datetime
    created_by: str = ""
    comment: str = ""

    def active(self, now: dt.datetime) -> bool:
        return self.starts_at <= now < self.ends_at

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(
            key in labels and fnmatch.fnmatchcase(labels[key], pattern)
            for key, pattern in self.matchers.items()
        )


def is_silenced(
    labels: Mapping[str, str], silences: list[Silence] | tuple[Silence, ...], now: dt.datetime
) -> bool:
    return any(s.active(now) and s.matches(labels) for s in silences)
