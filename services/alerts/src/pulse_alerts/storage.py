"""ClickHouse reads/writes of the alerts service (through :class:`Store`)."""

from __future__ import annotations

import datetime as dt
import functools
import json
from collections.abc import Iterable, Sequence
from typing import Any

from pulse_alerts.domain.model import AlertStatus, Silence, Status
from pulse_shared.columns import model_columns
from pulse_shared.events import Alert, CampaignAction, Severity
from pulse_shared.periods import period_of
from pulse_shared.store import Store
from pulse_shared.topics import ALERTS, BY_INGEST_KIND

# Insert column lists, paired with their tables in TABLE_COLUMNS (checked against the DDL
# by tests/test_storage_columns.py). alert_events stores an Alert event's fields and
# alert_silences a Silence's, plus delivery bookkeeping, so those come from the model
# (pulse_shared.columns); alert_state names AlertStatus.status ``state`` and lists its own.
STATE_COLUMNS = (
    "fingerprint", "rule", "state", "severity", "kpi", "labels", "annotations", "value",
    "threshold", "active_since", "fired_at", "resolved_at", "consecutive", "notified",
    "last_sent_at", "period_start", "as_of", "updated_at",
)
EVENT_COLUMNS = model_columns(Alert, extra=("group_key", "actions", "delivered", "updated_at"))
SILENCE_COLUMNS = model_columns(Silence, extra=("updated_at",))
STATE_TABLE = "alert_state"
EVENTS_TABLE = ALERTS.stored_table()
SILENCES_TABLE = "alert_silences"
TABLE_COLUMNS: dict[str, tuple[str, ...]] = {
    STATE_TABLE: STATE_COLUMNS,
    EVENTS_TABLE: EVENT_COLUMNS,
    SILENCES_TABLE: SILENCE_COLUMNS,
}

# alert_events.delivered: outbox progress of one notification
PENDING, PUBLISHED, NOTIFIED = 0, 1, 2  # nothing sent / on alerts.v1 / webhook+e-mail done
# Raw event table of each freshness source (an ingest kind), from the topic registry.
FRESHNESS_TABLES = {kind: t.stored_table() for kind, t in BY_INGEST_KIND.items()}


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


# -- alert state --------------------------------------------------------------------------
def state_row(state: AlertStatus) -> dict[str, Any]:
    return {
        "fingerprint": state.fingerprint,
        "rule": state.rule,
        "state": state.status.value,
        "severity": state.severity.value,
        "kpi": state.kpi,
        "labels": state.labels,
        "annotations": state.annotations,
        "value": state.value,
        "threshold": state.threshold,
        "active_since": state.active_since,
        "fired_at": state.fired_at,
        "resolved_at": state.resolved_at,
        "consecutive": state.consecutive,
        "notified": state.notified,
        "last_sent_at": state.last_sent_at,
        "period_start": state.period_start,
        "as_of": state.as_of,
        "updated_at": state.updated_at or _utcnow(),
    }


def state_from_row(row: dict[str, Any]) -> AlertStatus:
    return AlertStatus(
        fingerprint=row["fingerprint"],
        rule=row["rule"],
        status=Status(row["state"]),
        severity=Severity(row["severity"]),
        kpi=row["kpi"],
        labels=dict(row["labels"] or {}),
        annotations=dict(row["annotations"] or {}),
        value=row["value"],
        threshold=row["threshold"],
        active_since=row["active_since"],
        fired_at=row["fired_at"],
        resolved_at=row["resolved_at"],
        consecutive=int(row["consecutive"]),
        notified=row["notified"],
        last_sent_at=row["last_sent_at"],
        period_start=row["period_start"],
        as_of=row["as_of"],
        updated_at=row["updated_at"],
    )


def load_states(store: Store, states: Sequence[str] | None = None) -> list[AlertStatus]:
    sql = f"SELECT {', '.join(STATE_COLUMNS)} FROM alert_state FINAL"  # noqa: S608
    params: dict[str, Any] = {}
    if states:
        sql += " WHERE state IN {states:Array(String)}"
        params["states"] = list(states)
    return [state_from_row(r) for r in store.query(sql + " ORDER BY fingerprint", params)]


def save_states(store: Store, states: Iterable[AlertStatus]) -> None:
    rows = [state_row(s) for s in states]
    if rows:
        store.insert(STATE_TABLE, rows, STATE_COLUMNS)


# -- alert events (notification log + outbox) ---------------------------------------------
def event_row(
    alert: Alert,
    group: str,
    actions: Sequence[CampaignAction],
    delivered: bool,
    updated_at: dt.datetime | None = None,
) -> dict[str, Any]:
    return {
        "alert_id": alert.alert_id,
        "fingerprint": alert.fingerprint,
        "rule": alert.rule,
        "state": alert.state.value,
        "severity": alert.severity.value,
        "kpi": alert.kpi,
        "labels": alert.labels,
        "annotations": alert.annotations,
        "value": alert.value,
        "threshold": alert.threshold,
        "starts_at": alert.starts_at,
        "ends_at": alert.ends_at,
        "sent_at": alert.sent_at,
        "group_key": group,
        "actions": json.dumps([a.model_dump(mode="json") for a in actions]),
        "delivered": NOTIFIED if delivered else PENDING,
        "updated_at": updated_at or _utcnow(),
    }


def save_events(store: Store, rows: Sequence[dict[str, Any]]) -> None:
    if rows:
        store.insert(EVENTS_TABLE, rows, EVENT_COLUMNS)


def mark_delivered(store: Store, rows: Sequence[dict[str, Any]], level: int = NOTIFIED) -> None:
    now = _utcnow()
    save_events(store, [{**r, "delivered": level, "updated_at": now} for r in rows])


def undelivered_events(store: Store) -> list[dict[str, Any]]:
    """Outbox rows not yet fully delivered (published and/or notified)."""
    return store.query(
        f"SELECT {', '.join(EVENT_COLUMNS)} FROM alert_events FINAL "  # noqa: S608
        "WHERE delivered < {done:UInt8} ORDER BY sent_at, alert_id",
        {"done": NOTIFIED},
    )


def alert_from_event_row(row: dict[str, Any]) -> tuple[Alert, list[CampaignAction]]:
    alert = Alert(
        alert_id=row["alert_id"],
        fingerprint=row["fingerprint"],
        rule=row["rule"],
        state=row["state"],
        severity=row["severity"],
        kpi=row["kpi"],
        labels=dict(row["labels"] or {}),
        annotations=dict(row["annotations"] or {}),
        value=row["value"],
        threshold=row["threshold"],
        starts_at=row["starts_at"],
        ends_at=row["ends_at"],
        sent_at=row["sent_at"],
    )
    actions = [CampaignAction.model_validate(a) for a in json.loads(row["actions"] or "[]")]
    return alert, actions


def list_events(
    store: Store, limit: int = 100, fingerprint: str | None = None
) -> list[dict[str, Any]]:
    sql = f"SELECT {', '.join(EVENT_COLUMNS)} FROM alert_events FINAL"  # noqa: S608
    params: dict[str, Any] = {"limit": limit}
    if fingerprint:
        sql += " WHERE fingerprint = {fp:String}"
        params["fp"] = fingerprint
    return store.query(sql + " ORDER BY sent_at DESC, alert_id LIMIT {limit:UInt32}", params)


# -- silences -----------------------------------------------------------------------------
def save_silence(store: Store, silence: Silence) -> None:
    store.insert(
        SILENCES_TABLE,
        [
            {
                "silence_id": silence.silence_id,
                "matchers": silence.matchers,
                "starts_at": silence.starts_at,
                "ends_at": silence.ends_at,
                "created_by": silence.created_by,
                "comment": silence.comment,
                "updated_at": _utcnow(),
            }
        ],
        SILENCE_COLUMNS,
    )


def load_silences(store: Store, active_at: dt.datetime | None = None) -> list[Silence]:
    sql = f"SELECT {', '.join(SILENCE_COLUMNS)} FROM alert_silences FINAL"  # noqa: S608
    params: dict[str, Any] = {}
    if active_at is not None:
        sql += " WHERE ends_at > {now:DateTime64(3, 'UTC')}"
        params["now"] = active_at
    rows = store.query(sql + " ORDER BY starts_at, silence_id", params)
    return [
        Silence(
            silence_id=r["silence_id"],
            matchers=dict(r["matchers"] or {}),
            starts_at=r["starts_at"],
            ends_at=r["ends_at"],
            created_by=r["created_by"],
            comment=r["comment"],
        )
        for r in rows
    ]


# -- KPI history (read-only: kpi_values is owned by the kpi service) ----------------------
def series_history(
    store: Store,
    kpi: str,
    grain: str,
    dimension: str,
    dimension_value: str,
    before: dt.date,
    periods: int,
) -> list[float | None]:
    """Values of the ``periods`` periods before ``before``, oldest first (those stored:
    a period without a row is left out, never replaced by an older one; see
    :func:`history_window_start`)."""
    rows = store.query(
        "SELECT period_start, value FROM kpi_values FINAL "
        "WHERE kpi = {kpi:String} AND grain = {grain:String} AND dimension = {dim:String} "
        "AND dimension_value = {dv:String} AND period_start < {before:Date} "
        "AND period_start >= {since:Date} "
        "ORDER BY period_start DESC LIMIT {n:UInt32}",
        {"kpi": kpi, "grain": grain, "dim": dimension, "dv": dimension_value,
         "before": before, "since": history_window_start(grain, before, periods),
         "n": periods},
    )
    return [r["value"] for r in reversed(rows)]


#: (kpis, grain, dimension, dimension_value, until, periods): for each KPI, the last
#: ``periods`` values up to and including ``until``; see :func:`bulk_related`.
RelatedRequest = tuple[tuple[str, ...], str, str, str, dt.date, int]


def bulk_related(
    store: Store, requests: Sequence[RelatedRequest]
) -> dict[RelatedRequest, dict[str, list[float | None]]]:
    """For each request and each of its KPIs, the last ``periods`` values up to and
    including ``until`` (oldest first; day grain gaps are ``None``, so positions mean days),
    in one query per grain and dimension for all requests.

    Campaign rules need several KPIs of every campaign in a batch; one query each made a
    batch of campaign snapshots take ~0.8 s (the alerts service fell behind the KPIs).
    """
    out: dict[RelatedRequest, dict[str, list[float | None]]] = {}
    groups: dict[tuple[str, str], list[RelatedRequest]] = {}
    for req in requests:
        groups.setdefault((req[1], req[2]), []).append(req)
    for (grain, dimension), reqs in groups.items():
        rows = store.query(
            "SELECT kpi, dimension_value, period_start, value FROM kpi_values FINAL "
            "WHERE kpi IN {kpis:Array(String)} AND grain = {grain:String} "
            "AND dimension = {dim:String} AND dimension_value IN {dvs:Array(String)} "
            "AND period_start <= {until:Date} AND period_start >= {since:Date} "
            "ORDER BY kpi, period_start",
            {"kpis": sorted({k for r in reqs for k in r[0]}), "grain": grain,
             "dim": dimension, "dvs": sorted({r[3] for r in reqs}),
             "until": max(r[4] for r in reqs),
             "since": min(_related_start(grain, r[4], r[5]) for r in reqs)},
        )
        series: dict[tuple[str, str], list[tuple[dt.date, float | None]]] = {}
        for row in rows:
            series.setdefault((row["kpi"], row["dimension_value"]), []).append(
                (row["period_start"], row["value"])
            )
        for req in reqs:
            kpis, _, _, dv, until, periods = req
            start = _related_start(grain, until, periods)
            window = {
                k: [(d, v) for d, v in series.get((k, dv), []) if start <= d <= until]
                for k in kpis
            }
            if grain == "day":
                days = [until - dt.timedelta(days=i) for i in range(periods - 1, -1, -1)]
                by_day = {k: dict(points) for k, points in window.items()}
                out[req] = {k: [values.get(d) for d in days] for k, values in by_day.items()}
            else:
                out[req] = {k: [v for _, v in points][-periods:] for k, points in window.items()}
    return out


@functools.lru_cache(maxsize=4096)
def history_window_start(grain: str, before: dt.date, periods: int) -> dt.date:
    """First day of the window a rule's history covers: the ``periods`` calendar periods
    just before the one holding ``before`` (28 days of a "28-day mean", however many of
    them have values; a gappy series never reaches back to older periods instead).
    Cached: a batch asks it for every snapshot, mostly of a few periods."""
    start = period_of(before, grain).start
    if grain in ("day", "week"):
        return start - dt.timedelta(days=periods * (1 if grain == "day" else 7))
    months = start.year * 12 + start.month - 1 - periods * (1 if grain == "month" else 3)
    return dt.date(months // 12, months % 12 + 1, 1)


def _related_start(grain: str, until: dt.date, periods: int) -> dt.date:
    """First day of a related read's window: ``periods`` calendar periods up to and
    including the one holding ``until`` (the history window, one period later)."""
    return history_window_start(grain, until, periods - 1)


def kpi_history(
    store: Store,
    kpi: str,
    grain: str,
    dimension: str,
    dimension_value: str,
    start: dt.date,
    end: dt.date,
) -> list[dict[str, Any]]:
    """Rows of one KPI between two dates (inclusive), for backtests."""
    sql = (
        "SELECT kpi, grain, period, period_start, dimension, dimension_value, value, unit, "
        "computed_at FROM kpi_values FINAL WHERE grain = {grain:String} "
        "AND period_start >= {start:Date} AND period_start <= {end:Date}"
    )
    params: dict[str, Any] = {"grain": grain, "start": start, "end": end}
    for name, column, pattern in (
        ("kpi", "kpi", kpi),
        ("dim", "dimension", dimension),
        ("dv", "dimension_value", dimension_value),
    ):
        if pattern != "*":
            sql += f" AND {column} LIKE {{{name}:String}}"
            params[name] = _glob_to_like(pattern)
    return store.query(sql + " ORDER BY dimension, dimension_value, kpi, period_start", params)


def _glob_to_like(pattern: str) -> str:
    escaped = pattern.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped.replace("*", "%").replace("?", "_")


def last_ingested(store: Store, source: str) -> dt.datetime | None:
    """Newest ``ingested_at`` of one raw event table (None when it is empty)."""
    table = FRESHNESS_TABLES[source]
    rows = store.query(f"SELECT count() AS n, max(ingested_at) AS last FROM {table}")  # noqa: S608
    if not rows or int(rows[0]["n"]) == 0:
        return None
    last: dt.datetime = rows[0]["last"]
    return last


HistoryRequest = tuple[str, str, str, str, dt.date, int]  # kpi, grain, dim, value, before, n


def bulk_history(
    store: Store, requests: Sequence[HistoryRequest]
) -> dict[HistoryRequest, list[float | None]]:
    """:func:`series_history` for many series in one query per grain (batch evaluation)."""
    out: dict[HistoryRequest, list[float | None]] = {}
    by_grain: dict[str, list[HistoryRequest]] = {}
    for req in requests:
        by_grain.setdefault(req[1], []).append(req)
    for grain, reqs in by_grain.items():
        since = min(history_window_start(grain, r[4], r[5]) for r in reqs)
        rows = store.query(
            "SELECT kpi, dimension, dimension_value, period_start, value FROM kpi_values FINAL "
            "WHERE grain = {grain:String} AND kpi IN {kpis:Array(String)} "
            "AND dimension IN {dims:Array(String)} AND dimension_value IN {dvs:Array(String)} "
            "AND period_start < {before:Date} AND period_start >= {since:Date} "
            "ORDER BY period_start",
            {"grain": grain, "kpis": sorted({r[0] for r in reqs}),
             "dims": sorted({r[2] for r in reqs}), "dvs": sorted({r[3] for r in reqs}),
             "before": max(r[4] for r in reqs), "since": since},
        )
        series: dict[tuple[str, str, str], list[tuple[dt.date, float | None]]] = {}
        for row in rows:
            key = (row["kpi"], row["dimension"], row["dimension_value"])
            series.setdefault(key, []).append((row["period_start"], row["value"]))
        for req in reqs:
            points = series.get((req[0], req[2], req[3]), [])
            # Each series its own window: not the batch's earliest (what the history of a
            # snapshot holds must not depend on which snapshots it was evaluated with).
            start = history_window_start(grain, req[4], req[5])
            out[req] = [v for d, v in points if start <= d < req[4]][-req[5]:]
    return out


def recent_campaigns(store: Store, until: dt.date, days: int) -> list[str]:
    """Campaigns with daily spend or a budget this month in kpi_values, up to ``until``."""
    rows = store.query(
        "SELECT DISTINCT dimension_value AS campaign FROM kpi_values FINAL "
        "WHERE dimension = 'campaign' AND dimension_value != '' AND ("
        "(kpi = 'spend' AND grain = 'day' AND period_start > {since:Date} "
        "AND period_start <= {until:Date} AND value > 0) OR "
        "(kpi = 'budget' AND grain = 'month' AND period_start = {month:Date} AND value > 0)) "
        "ORDER BY campaign",
        {"since": until - dt.timedelta(days=days), "until": until,
         "month": until.replace(day=1)},
    )
    return [r["campaign"] for r in rows]
