"""Reporting's ClickHouse access: reads KPI values, alerts, credits; records reports.

Every value reaches ClickHouse as a server-side parameter. Reads use ``FINAL`` (all
tables are ReplacingMergeTree) so numbers are exact.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

from pulse_reporting.domain import cx as cx_domain
from pulse_reporting.domain.deliverability import DeliverabilityInputs, day_labels, week_labels
from pulse_reporting.domain.martech import KPIS as MARTECH_KPIS
from pulse_reporting.domain.martech import MartechInputs, compared, kpi_parts
from pulse_reporting.domain.mmm import MmmInputs, select_runs
from pulse_reporting.domain.model import (
    AlertRecord,
    KpiValue,
    MmmAllocation,
    MmmChannel,
    MmmCurvePoint,
    MmmRunInfo,
    PathRecord,
    TrendPoint,
)
from pulse_reporting.domain.periods import Period, trend_months
from pulse_reporting.domain.quarter import (
    MONTH_KPIS,
    QUARTER_KPIS,
    QuarterInputs,
    quarter_months,
    quarter_periods,
)
from pulse_reporting.domain.segments import KPIS as SEGMENT_KPIS
from pulse_reporting.domain.segments import SegmentInputs
from pulse_reporting.domain.usage import (
    LAUNCH_DAYS,
    Adoption,
    Launch,
    UsageInputs,
    churn_month,
)
from pulse_reporting.metrics import QUERY_SECONDS
from pulse_shared.cohorts import LedgerEvent
from pulse_shared.credits import latest_credits
from pulse_shared.kpi_catalog import DELIVERABILITY_KPIS
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


# Marketing mix model results (written by pulse_mmm, migration 0070). Read here with SQL:
# reporting must not import pulse_mmm (it would pull PyMC into the reporting image).
_MMM_RUNS_SQL = """
SELECT run_id, version, target, grain, date_from, date_to, periods, channels, status, reason,
       library, max_rhat, min_ess, divergences, holdout_periods, holdout_mape, r_squared,
       finished_at
FROM mmm_runs FINAL
ORDER BY finished_at DESC, version DESC
LIMIT {limit:UInt32}
"""

_MMM_CHANNELS_SQL = """
SELECT channel, spend, contribution, contribution_lower, contribution_upper, roi, roi_lower,
       roi_upper, marginal_roi, attribution_roas
FROM mmm_channel_results FINAL
WHERE run_id = {run_id:String}
ORDER BY channel
"""

_MMM_CURVES_SQL = """
SELECT channel, spend, contribution, lower, upper
FROM mmm_response_curves FINAL
WHERE run_id = {run_id:String}
ORDER BY channel, spend
"""

_MMM_ALLOCATIONS_SQL = """
SELECT budget, periods, channel, current_spend, recommended_spend, current_contribution,
       expected_contribution, expected_contribution_lower, expected_contribution_upper,
       gain_lower, gain_upper
FROM mmm_allocations FINAL
WHERE run_id = {run_id:String}
ORDER BY periods, budget, channel
"""

# Spend of the run's last ``periods`` model periods: the budget of the allocation stored
# with the run (the current budget), to tell it from other budgets optimised later.
_MMM_RECENT_SPEND_SQL = """
SELECT sum(spend) AS spend
FROM mmm_contributions FINAL
WHERE run_id = {run_id:String}
  AND channel != 'baseline'
  AND period_start IN (
    SELECT DISTINCT period_start FROM mmm_contributions FINAL
    WHERE run_id = {run_id:String}
    ORDER BY period_start DESC
    LIMIT {periods:UInt32}
  )
"""


# The subscription ledger of the accounts whose first paid event (MRR > 0) is in the months
# [first, last]: the query of pulse_kpi.storage.KpiStorage.cohort_ledger (reporting must not
# import the KPI service), bounded by the report's as_of — an event on or after it cannot
# change the MRR at the end of a month that ended by then.
_COHORT_LEDGER_SQL = """
SELECT event_id, account_id, occurred_at, mrr, plan FROM subscriptions FINAL
WHERE occurred_at < {as_of:Date}
  AND account_id IN (
    SELECT account_id FROM subscriptions FINAL WHERE mrr > 0 GROUP BY account_id
    HAVING toStartOfMonth(min(occurred_at)) >= {first:Date}
       AND toStartOfMonth(min(occurred_at)) <= {last:Date})
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

    def mmm_runs(self, limit: int = 500) -> list[MmmRunInfo]:
        """Marketing mix model fits, newest first (published and rejected)."""
        rows = self._query("mmm_runs", _MMM_RUNS_SQL, {"limit": limit})
        return [
            MmmRunInfo(
                run_id=r["run_id"], version=int(r["version"]), target=r["target"],
                grain=r["grain"], date_from=_as_date(r["date_from"]),
                date_to=_as_date(r["date_to"]), periods=int(r["periods"]),
                channels=list(r["channels"] or []), status=r["status"], reason=r["reason"],
                library=r["library"], max_rhat=r["max_rhat"], min_ess=r["min_ess"],
                divergences=int(r["divergences"]), holdout_periods=int(r["holdout_periods"]),
                holdout_mape=r["holdout_mape"], r_squared=r["r_squared"],
                finished_at=r["finished_at"],
            )
            for r in rows
        ]

    def mmm_inputs(self, period: Period) -> MmmInputs:
        """Every fit, and the results of the published run a report of ``period`` shows."""
        runs = self.mmm_runs()
        shown, _ = select_runs(runs, period)
        if shown is None:
            return MmmInputs(runs=runs)
        params = {"run_id": shown.run_id}
        channels = [
            MmmChannel(**r)
            for r in self._query("mmm_channels", _MMM_CHANNELS_SQL, params)
        ]
        curves: dict[str, list[MmmCurvePoint]] = {}
        for r in self._query("mmm_curves", _MMM_CURVES_SQL, params):
            curves.setdefault(r["channel"], []).append(MmmCurvePoint(
                spend=r["spend"], contribution=r["contribution"], lower=r["lower"],
                upper=r["upper"],
            ))
        groups: dict[tuple[float, int], list[MmmAllocation]] = {}
        for r in self._query("mmm_allocations", _MMM_ALLOCATIONS_SQL, params):
            groups.setdefault((float(r["budget"]), int(r["periods"])), []).append(
                MmmAllocation(**{k: v for k, v in r.items() if k not in ("budget", "periods")})
            )
        budget, periods, allocation = self._run_allocation(shown.run_id, groups)
        return MmmInputs(
            runs=runs, channels=channels, curves=curves, allocation=allocation,
            allocation_budget=budget, allocation_periods=periods,
        )

    def _run_allocation(
        self, run_id: str, groups: Mapping[tuple[float, int], list[MmmAllocation]]
    ) -> tuple[float | None, int | None, list[MmmAllocation]]:
        """The allocation stored with the run: of the optimised (budget, periods), the one
        whose budget is the run's last periods' spend (later ``pulse mmm optimize`` calls
        may add others)."""
        if not groups:
            return None, None, []
        if len(groups) == 1:
            (budget, periods), rows = next(iter(groups.items()))
            return budget, periods, rows

        def distance(key: tuple[float, int]) -> float:
            recent = self._query(
                "mmm_recent_spend", _MMM_RECENT_SPEND_SQL,
                {"run_id": run_id, "periods": key[1]},
            )
            spend = float(recent[0]["spend"] or 0.0) if recent else 0.0
            return abs(key[0] - spend)

        budget, periods = min(groups, key=lambda k: (distance(k), k))
        return budget, periods, groups[(budget, periods)]

    def cohort_ledger(
        self, first_month: dt.date, last_month: dt.date, as_of: dt.date
    ) -> list[LedgerEvent]:
        """Every subscription event before ``as_of`` of the accounts whose first paid month
        is in ``[first_month, last_month]`` (first days) — the cohort section's ledger."""
        rows = self._query(
            "cohort_ledger", _COHORT_LEDGER_SQL,
            {"first": first_month, "last": last_month, "as_of": as_of},
        )
        return [
            LedgerEvent(r["event_id"], r["account_id"], r["occurred_at"],
                        Decimal(0) if r["mrr"] is None else Decimal(r["mrr"]), r["plan"])
            for r in rows
        ]

    def martech_inputs(self, period: Period) -> MartechInputs:
        """The martech insight section's reads: the total-dimension KPIs of the period,
        the previous one and a year ago (a year: its quarters), and tool cost per month
        and category over the three."""
        periods = compared(period)
        parts: dict[str, tuple[str, ...]] = {}
        grain = ""
        for p in periods:
            grain, parts[p.label] = kpi_parts(p)
        kpis = self.kpis_by_name(
            MARTECH_KPIS, [grain], [label for labels in parts.values() for label in labels])
        rows = self._query(
            "martech_costs",
            "SELECT month, category, sum(amount) AS amount FROM martech_costs FINAL "
            "WHERE month >= {start:Date} AND month < {end:Date} GROUP BY month, category "
            "ORDER BY month, category",
            {"start": min(p.start for p in periods), "end": max(p.end for p in periods)},
        )
        costs = [(_as_date(r["month"]), str(r["category"]), float(r["amount"])) for r in rows]
        return MartechInputs(periods, parts, [k for k in kpis if k.dimension == "all"], costs,
                             self.coverage())

    def segment_inputs(self, period: Period) -> SegmentInputs:
        """The segments section's reads: the segment breakdowns of its KPIs for the period
        and the previous one (a year: their quarters)."""
        periods = (period, period.previous())
        parts: dict[str, tuple[str, ...]] = {}
        grain = ""
        for p in periods:
            grain, parts[p.label] = kpi_parts(p)
        kpis = self.kpis_by_name(
            SEGMENT_KPIS, [grain], [label for labels in parts.values() for label in labels])
        return SegmentInputs(periods, parts, [k for k in kpis if k.dimension == "segment"])

    def deliverability_inputs(self, period: Period) -> DeliverabilityInputs:
        """The deliverability section's reads: its KPIs (total and per sending domain) of
        the period and the previous one, bounce/complaint rates and e-mails sent of the
        weeks overlapping the period, and bounce/complaint rates of its days."""
        previous = period.previous()
        domain_rows = ("all", "sending_domain")
        kpis = self.kpis_by_name(DELIVERABILITY_KPIS, [period.grain],
                                 [period.label, previous.label])
        weeks = self.kpis_by_name(("emails_sent", "bounce_rate", "complaint_rate"), ["week"],
                                  week_labels(period))
        days = self.kpis_by_name(("bounce_rate", "complaint_rate"), ["day"], day_labels(period))
        return DeliverabilityInputs(
            period, previous,
            [k for k in kpis if k.dimension in domain_rows],
            [k for k in weeks if k.dimension in domain_rows],
            [k for k in days if k.dimension in domain_rows],
        )

    def cx_inputs(self, period: Period) -> cx_domain.CxInputs:
        """The customer experience section's reads (domain/cx.py): survey answers and the
        latest states of the tickets created or resolved from the window's start (trend
        months and the previous period) to the period's end; every NPS answer and MRR
        change before the period's end (NPS of churned vs retained accounts)."""
        from pulse_shared.experience import MrrPoint, NpsAnswer

        start, end = cx_domain.window_start(period), period.end
        params = {"start": start, "end": end}
        answers = [
            cx_domain.Answer(str(r["account_id"]), str(r["survey"]), int(r["score"]),
                             r["responded_at"])
            for r in self._query(
                "cx_answers",
                "SELECT account_id, survey, score, responded_at FROM feedback_responses FINAL "
                "WHERE toDate(responded_at) >= {start:Date} AND toDate(responded_at) < "
                "{end:Date} ORDER BY responded_at, account_id", params)
        ]
        tickets = [
            cx_domain.Ticket(r["created_at"], r["first_response_at"],
                             r["resolved_at"] if r["status"] in ("solved", "closed") else None)
            for r in self._query(
                "cx_tickets",
                "SELECT created_at, first_response_at, resolved_at, status "
                "FROM support_tickets FINAL WHERE (toDate(created_at) >= {start:Date} AND "
                "toDate(created_at) < {end:Date}) OR (resolved_at IS NOT NULL AND "
                "toDate(resolved_at) >= {start:Date} AND toDate(resolved_at) < {end:Date}) "
                "ORDER BY created_at", params)
        ]
        history = [
            NpsAnswer(str(r["account_id"]), int(r["score"]), r["responded_at"])
            for r in self._query(
                "cx_nps_history",
                "SELECT account_id, score, responded_at FROM feedback_responses FINAL "
                "WHERE survey = 'nps' AND toDate(responded_at) < {end:Date}", params)
        ]
        mrr = [
            MrrPoint(str(r["account_id"]), r["occurred_at"], Decimal(r["mrr_after"]))
            for r in self._query(
                "cx_mrr",
                "SELECT account_id, occurred_at, mrr_after FROM kpi_mrr_movements FINAL "
                "WHERE toDate(occurred_at) < {end:Date}", params)
        ] if history else []
        return cx_domain.CxInputs(period, period.previous(), trend_months(period),
                                  answers, tickets, history, mrr)

    def quarter_inputs(self, period: Period) -> QuarterInputs:
        """The quarterly section's reads: total-dimension KPIs of the last five quarters
        and of the quarter's months."""
        quarters, months = quarter_periods(period), quarter_months(period)
        rows = self.kpis_by_name(QUARTER_KPIS, ["quarter"], [q.label for q in quarters])
        rows += self.kpis_by_name(MONTH_KPIS, ["month"], [m.label for m in months])
        return QuarterInputs(quarters, months, [r for r in rows if r.dimension == "all"],
                             self.coverage())

    def churn_risk_rows(
        self, start: dt.date, end: dt.date, previous_start: dt.date
    ) -> list[tuple[str, float, int, int]]:
        """(account, MRR at ``end``, uses in [start, end), uses in [previous_start, start))
        of the accounts paying at ``end`` that used the product in the previous period:
        the candidates of the CX page's churn-risk list (domain/personas.churn_risks)."""
        rows = self._query(
            "churn_risk_rows",
            """
SELECT u.account_id AS account_id, m.mrr AS mrr, u.uses AS uses,
       u.previous_uses AS previous_uses
FROM (
    SELECT account_id,
           sumIf(count, day >= {start:Date}) AS uses,
           sumIf(count, day < {start:Date}) AS previous_uses
    FROM product_usage FINAL
    WHERE day >= {previous_start:Date} AND day < {end:Date}
    GROUP BY account_id
) AS u
INNER JOIN (
    SELECT account_id, argMax(mrr_after, occurred_at) AS mrr
    FROM kpi_mrr_movements FINAL
    WHERE toDate(occurred_at) < {end:Date}
    GROUP BY account_id
) AS m ON u.account_id = m.account_id
WHERE m.mrr > 0 AND u.previous_uses > 0
ORDER BY account_id
""",
            {"start": start, "end": end, "previous_start": previous_start},
        )
        return [(str(r["account_id"]), float(r["mrr"]), int(r["uses"]),
                 int(r["previous_uses"])) for r in rows]

    def usage_inputs(self, period: Period) -> UsageInputs:
        """The product usage section's reads (domain/usage.py): the usage span, monthly
        active accounts of the trend, adoption per feature of the period, the previous one
        and a year ago, the most recent launch and the churn-risk candidates of the
        period's last month."""
        previous, year_ago = period.previous(), period.year_ago()
        span = self._query(
            "usage_span",
            "SELECT min(day) AS first, max(day) AS last, count() AS n FROM product_usage",
            {},
        )
        if not span or not int(span[0]["n"]):
            return UsageInputs(period, previous, year_ago, None, None)
        first, last = _as_date(span[0]["first"]), _as_date(span[0]["last"])
        months = trend_months(period)
        rows = self._query(
            "usage_monthly_active",
            "SELECT toStartOfMonth(day) AS month, uniqExact(account_id) AS n "
            "FROM product_usage FINAL WHERE day >= {start:Date} AND day < {end:Date} "
            "GROUP BY month",
            {"start": months[0].start, "end": months[-1].end},
        )
        by_month = {_as_date(r["month"]): int(r["n"]) for r in rows}
        monthly = [(m.label, by_month.get(m.start, 0)) for m in months if m.end > first]
        adoption: dict[str, Adoption] = {}
        for p in (period, previous, year_ago):
            if p.end <= first:
                continue  # before any usage: n/a, not 0
            params = {"start": p.start, "end": p.end}
            features = self._query(
                "usage_adoption",
                "SELECT feature, uniqExact(account_id) AS n FROM product_usage FINAL "
                "WHERE day >= {start:Date} AND day < {end:Date} GROUP BY feature",
                params,
            )
            active = self._query(
                "usage_active",
                "SELECT uniqExact(account_id) AS n FROM product_usage FINAL "
                "WHERE day >= {start:Date} AND day < {end:Date}",
                params,
            )
            adoption[p.label] = Adoption(int(active[0]["n"]) if active else 0,
                                         {str(r["feature"]): int(r["n"]) for r in features})
        launch = None
        newest = self._query(
            "usage_newest_feature",
            "SELECT feature, min(day) AS released FROM product_usage WHERE day < {end:Date} "
            "GROUP BY feature ORDER BY released DESC, feature LIMIT 1",
            {"end": period.end},
        )
        if newest and _as_date(newest[0]["released"]) > first:
            feature, released = str(newest[0]["feature"]), _as_date(newest[0]["released"])
            days = self._query(
                "usage_launch",
                "SELECT day, account_id, max(feature = {feature:String}) AS used "
                "FROM product_usage FINAL WHERE day >= {start:Date} AND day < {end:Date} "
                "GROUP BY day, account_id ORDER BY day, account_id",
                {"feature": feature, "start": released,
                 "end": min(period.end, released + dt.timedelta(days=LAUNCH_DAYS))},
            )
            launch = Launch(feature, released, [
                (_as_date(r["day"]), str(r["account_id"]), bool(r["used"])) for r in days])
        month = churn_month(period)
        before = month.start - dt.timedelta(days=1)
        candidates = self.churn_risk_rows(month.start, month.end, before.replace(day=1))
        return UsageInputs(period, previous, year_ago, first, last, monthly, adoption, launch,
                           month, candidates)

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
