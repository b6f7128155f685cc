"""Reporting's ClickHouse access: reads KPI values, alerts, credits; records reports.

Every value reaches ClickHouse as a server-side parameter. Reads use ``FINAL`` (all
tables are ReplacingMergeTree) so numbers are exact.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from pulse_reporting.domain.model import AlertRecord, KpiValue, PathRecord, TrendPoint
from pulse_reporting.metrics import QUERY_SECONDS
from pulse_shared.credits import latest_credits
from pulse_shared.store import Row, Store
from pulse_shared.topics import REPORT_READY

# One row per report file (a ReportReady event lists every format's path), so the columns
# are listed here; TABLE_COLUMNS pairs them with the table for tests/test_storage_columns.py.
REPORT_COLUMNS = (
    "report_id", "report_kind", "period", "model", "format", "path", "size_bytes", "created_at",
)
REPORTS_TABLE = REPORT_READY.stored_table()
TABLE_COLUMNS: dict[str, tuple[str, ...]] = {REPORTS_TABLE: REPORT_COLUMNS}

_KPIS_SQL = """
SELECT kpi, grain, period, dimension, dimension_value, value, unit
FROM kpi_values FINAL
WHERE grain = {grain:String}
  AND period IN {periods:Array(String)}
  AND period_start IN {starts:Array(Date)}
"""

_KPIS_BY_NAME_SQL = """
SELECT kpi, grain, period, dimension, dimension_value, value, unit
FROM kpi_values FINAL
WHERE kpi IN {kpis:Array(String)}
  AND grain IN {grains:Array(String)}
  AND period IN {periods:Array(String)}
"""

_DAILY_SQL = """
SELECT kpi, period_start AS day, value
FROM kpi_values FINAL
WHERE kpi IN {kpis:Array(String)}
  AND grain = 'day'
  AND dimension = 'all'
  AND dimension_value = ''
  AND period_start >= {start:Date}
  AND period_start < {end:Date}
ORDER BY kpi, day
"""

# Alerts by the data that fired them, not by when they were processed: the candidates
# are alerts whose data period (annotation ``period``) overlaps the report period, or,
# without one, whose data time (else processing time) falls in it. The domain
# (``assemble.alert_in_period``) decides the boundary cases.
_ALERTS_SQL = """
SELECT alert_id, rule, state, severity, kpi, labels, annotations, value, threshold,
       starts_at, ends_at
FROM alert_events FINAL
WHERE state = 'firing'
  AND (
    annotations['period'] IN {periods:Array(String)}
    OR (
      annotations['period'] = ''
      AND ifNull(toDate(parseDateTime64BestEffortOrNull(annotations['data_time'], 3, 'UTC')),
                 toDate(starts_at)) >= {start:Date}
      AND ifNull(toDate(parseDateTime64BestEffortOrNull(annotations['data_time'], 3, 'UTC')),
                 toDate(starts_at)) < {end:Date}
    )
  )
ORDER BY starts_at, alert_id
LIMIT {limit:UInt32}
"""

_DAILY_BY_DIMENSION_SQL = """
SELECT kpi, dimension_value, period_start AS day, value
FROM kpi_values FINAL
WHERE kpi IN {kpis:Array(String)}
  AND grain = 'day'
  AND dimension = {dimension:String}
  AND period_start >= {start:Date}
  AND period_start < {end:Date}
ORDER BY kpi, dimension_value, day
"""

# Latest version per conversion (for one model, read through the shared fragment
# pulse_shared.credits, not the view, whose window cannot use the date filter), touches in
# time order, consecutive repeats of a channel collapsed: "paid_search → email → direct".
_PATHS_CREDITS = latest_credits(
    "model = {model:String} AND milestone = {milestone:String} "
    "AND converted_at >= {start:DateTime64(3, 'UTC')} "
    "AND converted_at < {end:DateTime64(3, 'UTC')}"
)
_PATHS_SQL = """
SELECT path, count() AS conversions, sum(revenue) AS revenue
FROM
(
    SELECT
        conversion_id,
        groupArray((touched_at, touchpoint_event_id, channel)) AS touches,
        sum(credited_revenue) AS revenue,
        arrayMap(t -> t.3, arraySort(touches)) AS channels,
        arrayFilter((c, i) -> i = 1 OR c != channels[i - 1], channels,
                    arrayEnumerate(channels)) AS path
    FROM LATEST_CREDITS
    GROUP BY conversion_id
)
GROUP BY path
ORDER BY conversions DESC, revenue DESC, path
LIMIT {limit:UInt32}
""".replace("LATEST_CREDITS", _PATHS_CREDITS)

_LIST_REPORTS_SQL = """
SELECT report_id, report_kind, period, model, format, path, size_bytes, created_at
FROM reports FINAL
ORDER BY created_at DESC, report_kind, period, format
LIMIT {limit:UInt32}
"""

_PERIODS_SQL = """
SELECT DISTINCT period, period_start
FROM kpi_values FINAL
WHERE grain = {grain:String} AND kpi = 'spend' AND dimension = 'all'
ORDER BY period_start DESC
LIMIT {limit:UInt32}
"""


# First and last day with data per source table: a comparison period without source data is
# "no data", not zero (pulse_reporting.domain.assemble.KPI_SOURCES maps KPIs to these).
_COVERAGE_SQL = """
SELECT 'spend' AS source, min(date) AS first, max(date) AS last, count() AS n FROM spend
UNION ALL
SELECT 'subscriptions', min(toDate(occurred_at)), max(toDate(occurred_at)), count()
FROM subscriptions
UNION ALL
SELECT 'pipeline_events', min(toDate(occurred_at)), max(toDate(occurred_at)), count()
FROM pipeline_events
UNION ALL
SELECT 'touchpoints', min(toDate(occurred_at)), max(toDate(occurred_at)), count()
FROM touchpoints
"""


def _midnight(day: dt.date) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)


def _as_date(value: Any) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(str(value)[:10])


def _data_time(text: str) -> dt.datetime | None:
    """The alert's ``data_time`` annotation (ISO 8601), None when absent or unreadable."""
    try:
        moment = dt.datetime.fromisoformat(text) if text else None
    except ValueError:
        return None
    if moment is not None and moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment


class ReportingStorage:
    """Reads through ``store`` (read-only user); writes ``reports`` through ``writer``."""

    def __init__(self, store: Store, writer: Store | None = None) -> None:
        self.store = store
        self.writer = writer if writer is not None else store

    @contextmanager
    def _timed(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            QUERY_SECONDS.labels(name).observe(time.perf_counter() - started)

    def _query(self, name: str, sql: str, params: Mapping[str, Any]) -> list[Row]:
        with self._timed(name):
            return self.store.query(sql, params)

    def kpis(self, grain: str, periods: Sequence[tuple[str, dt.date]]) -> list[KpiValue]:
        """Every KPI row (all dimensions) of ``grain`` for the (label, start) periods."""
        rows = self._query(
            "kpis",
            _KPIS_SQL,
            {
                "grain": grain,
                "periods": [p for p, _ in periods],
                "starts": [s for _, s in periods],
            },
        )
        return [KpiValue(**r) for r in rows]

    def kpis_by_name(
        self, kpis: Sequence[str], grains: Sequence[str], periods: Sequence[str]
    ) -> list[KpiValue]:
        rows = self._query(
            "kpis_by_name",
            _KPIS_BY_NAME_SQL,
            {"kpis": list(kpis), "grains": list(grains), "periods": list(periods)},
        )
        return [KpiValue(**r) for r in rows]

    def daily(
        self, kpis: Sequence[str], start: dt.date, end: dt.date
    ) -> dict[str, list[TrendPoint]]:
        rows = self._query(
            "daily", _DAILY_SQL, {"kpis": list(kpis), "start": start, "end": end}
        )
        out: dict[str, list[TrendPoint]] = {k: [] for k in kpis}
        for r in rows:
            out[r["kpi"]].append(TrendPoint(day=r["day"], value=r["value"]))
        return out

    def daily_by_dimension(
        self, kpis: Sequence[str], dimension: str, start: dt.date, end: dt.date
    ) -> dict[str, dict[str, list[TrendPoint]]]:
        """Day-grain values per member of ``dimension``: kpi → member → days."""
        rows = self._query(
            "daily_by_dimension", _DAILY_BY_DIMENSION_SQL,
            {"kpis": list(kpis), "dimension": dimension, "start": start, "end": end},
        )
        out: dict[str, dict[str, list[TrendPoint]]] = {k: {} for k in kpis}
        for r in rows:
            out[r["kpi"]].setdefault(r["dimension_value"], []).append(
                TrendPoint(day=r["day"], value=r["value"])
            )
        return out

    def alerts(
        self, start: dt.date, end: dt.date, limit: int = 500,
        periods: Sequence[str] = (),
    ) -> list[AlertRecord]:
        """Firing alerts whose data period is one of ``periods`` (KPI period labels) or,
        without a data period, whose data time falls in [start, end)."""
        rows = self._query(
            "alerts", _ALERTS_SQL,
            {"start": start, "end": end, "limit": limit, "periods": list(periods)},
        )
        return [
            AlertRecord(
                alert_id=r["alert_id"],
                rule=r["rule"],
                state=r["state"],
                severity=r["severity"],
                kpi=r["kpi"],
                labels=dict(r["labels"] or {}),
                summary=(r["annotations"] or {}).get("summary", "")
                or (r["annotations"] or {}).get("description", ""),
                value=r["value"],
                threshold=r["threshold"],
                starts_at=r["starts_at"],
                ends_at=r["ends_at"],
                period=(r["annotations"] or {}).get("period", ""),
                data_time=_data_time((r["annotations"] or {}).get("data_time", "")),
            )
            for r in rows
        ]

    def paths(
        self, model: str, milestone: str, start: dt.date, end: dt.date, limit: int = 10
    ) -> list[PathRecord]:
        rows = self._query(
            "paths",
            _PATHS_SQL,
            {
                "model": model,
                "milestone": milestone,
                "start": _midnight(start),
                "end": _midnight(end),
                "limit": limit,
            },
        )
        return [
            PathRecord(
                path=tuple(r["path"]),
                conversions=int(r["conversions"]),
                revenue=float(r["revenue"] or 0),
            )
            for r in rows
        ]

    def coverage(self) -> dict[str, tuple[dt.date, dt.date]] | None:
        """Source table → (first day, last day) with data; tables without rows are absent.

        None when no source table has any row (KPI values loaded on their own, or the raw
        events expired): coverage is then unknown and every KPI value is trusted."""
        rows = self._query("coverage", _COVERAGE_SQL, {})
        out = {
            str(r["source"]): (_as_date(r["first"]), _as_date(r["last"]))
            for r in rows if int(r["n"] or 0) > 0
        }
        return out or None

    def available_periods(self, grain: str, limit: int = 60) -> list[str]:
        rows = self._query("periods", _PERIODS_SQL, {"grain": grain, "limit": limit})
        return [r["period"] for r in rows]

    def record_reports(self, rows: Sequence[Mapping[str, Any]]) -> None:
        with self._timed("record"):
            self.writer.insert(REPORTS_TABLE, rows, REPORT_COLUMNS)

    def list_reports(self, limit: int = 200) -> list[Row]:
        return self._query("list_reports", _LIST_REPORTS_SQL, {"limit": limit})

    def report_exists(self, kind: str, period: str, model: str) -> bool:
        """Whether a report of ``kind`` for ``period`` under ``model`` was recorded."""
        rows = self.store.query(
            "SELECT count() AS n FROM reports FINAL WHERE report_kind = {kind:String} "
            "AND period = {period:String} AND model = {model:String}",
            {"kind": kind, "period": period, "model": model},
        )
        return bool(rows and rows[0]["n"])
