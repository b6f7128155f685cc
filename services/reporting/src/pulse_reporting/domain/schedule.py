"""When scheduled reports are due: weekly (Monday), monthly (1st), quarterly (1st of
Jan/Apr/Jul/Oct), each at a local hour in a configured time zone, for the period that
just ended."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from pulse_reporting.domain.periods import Period, ReportKind, containing


@dataclass(frozen=True)
class ScheduledRun:
    kind: ReportKind
    period: Period
    due_at: dt.datetime  # aware, UTC


def _due_local(kind: ReportKind, day: dt.date) -> bool:
    if kind is ReportKind.WEEKLY:
        return day.weekday() == 0
    if kind is ReportKind.MONTHLY:
        return day.day == 1
    return day.day == 1 and day.month in (1, 4, 7, 10)


def _run_at(day: dt.date, hour: int, zone: ZoneInfo) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, hour, tzinfo=zone).astimezone(dt.UTC)


def due_runs(
    since: dt.datetime, now: dt.datetime, zone: ZoneInfo, hour: int = 6,
    kinds: tuple[ReportKind, ...] = tuple(ReportKind),
) -> list[ScheduledRun]:
    """Runs scheduled in ``(since, now]``; each covers the period that ended that day."""
    runs: list[ScheduledRun] = []
    day = since.astimezone(zone).date()
    last = now.astimezone(zone).date()
    while day <= last:
        for kind in kinds:
            if not _due_local(kind, day):
                continue
            at = _run_at(day, hour, zone)
            if since < at <= now:
                runs.append(
                    ScheduledRun(kind, containing(kind, day - dt.timedelta(days=1)), at)
                )
        day += dt.timedelta(days=1)
    return sorted(runs, key=lambda r: (r.due_at, r.kind.value))


def latest_runs(
    now: dt.datetime, zone: ZoneInfo, hour: int = 6,
    kinds: tuple[ReportKind, ...] = tuple(ReportKind),
) -> list[ScheduledRun]:
    """The most recent scheduled run of each kind at or before ``now`` (for catch-up)."""
    out: list[ScheduledRun] = []
    for kind in kinds:
        runs = due_runs(now - dt.timedelta(days=95), now, zone, hour, (kind,))
        if runs:
            out.append(runs[-1])
    return out
