"""When scheduled reports are due: the daily briefing (every day), weekly (Monday), monthly
(1st), quarterly (1st of Jan/Apr/Jul/Oct), annual (1 January), each at a local hour in a
configured time zone (one hour for all, or an hour per kind: the briefing is read first
thing), for the period that just ended."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from pulse_reporting.domain.periods import Period, ReportKind, containing


@dataclass(frozen=True)
class ScheduledRun:
    kind: ReportKind
    period: Period
    due_at: dt.datetime  # aware, UTC


def _due_local(kind: ReportKind, day: dt.date) -> bool:
    if kind is ReportKind.DAILY:
        return True
    if kind is ReportKind.WEEKLY:
        return day.weekday() == 0
    if kind is ReportKind.MONTHLY:
        return day.day == 1
    if kind is ReportKind.ANNUAL:
        return day.day == 1 and day.month == 1
    return day.day == 1 and day.month in (1, 4, 7, 10)


#: Kinds scheduled when the caller names none: the reports the schedule has always run.
#: The daily briefing and the annual report are scheduled when the caller asks for them
#: (``kinds=ALL_KINDS``, the briefing's hour in ``hours``) — the service opts in through
#: its settings, so a deployment does not start writing a report every day unannounced.
DEFAULT_KINDS: tuple[ReportKind, ...] = (
    ReportKind.WEEKLY, ReportKind.MONTHLY, ReportKind.QUARTERLY,
)
ALL_KINDS: tuple[ReportKind, ...] = tuple(ReportKind)

# How far back :func:`latest_runs` looks for a kind's last run (longer than its period).
_LOOKBACK_DAYS: dict[ReportKind, int] = {ReportKind.ANNUAL: 370}


def _run_at(day: dt.date, hour: int, zone: ZoneInfo) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, hour, tzinfo=zone).astimezone(dt.UTC)


def due_runs(
    since: dt.datetime, now: dt.datetime, zone: ZoneInfo, hour: int = 6,
    kinds: tuple[ReportKind, ...] = DEFAULT_KINDS,
    hours: Mapping[ReportKind, int] | None = None,
) -> list[ScheduledRun]:
    """Runs scheduled in ``(since, now]``; each covers the period that ended that day.
    ``hours``: a local hour per kind overriding ``hour`` (e.g. the daily briefing at 7)."""
    runs: list[ScheduledRun] = []
    day = since.astimezone(zone).date()
    last = now.astimezone(zone).date()
    while day <= last:
        for kind in kinds:
            if not _due_local(kind, day):
                continue
            at = _run_at(day, (hours or {}).get(kind, hour), zone)
            if since < at <= now:
                runs.append(
                    ScheduledRun(kind, containing(kind, day - dt.timedelta(days=1)), at)
                )
        day += dt.timedelta(days=1)
    return sorted(runs, key=lambda r: (r.due_at, r.kind.value))


def latest_runs(
    now: dt.datetime, zone: ZoneInfo, hour: int = 6,
    kinds: tuple[ReportKind, ...] = DEFAULT_KINDS,
    hours: Mapping[ReportKind, int] | None = None,
) -> list[ScheduledRun]:
    """The most recent scheduled run of each kind at or before ``now`` (for catch-up)."""
    out: list[ScheduledRun] = []
    for kind in kinds:
        lookback = dt.timedelta(days=_LOOKBACK_DAYS.get(kind, 95))
        runs = due_runs(now - lookback, now, zone, hour, (kind,), hours)
        if runs:
            out.append(runs[-1])
    return out
