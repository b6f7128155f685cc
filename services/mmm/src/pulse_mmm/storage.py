"""ClickHouse reads and writes of the marketing mix model (through :class:`Store`).

Every SQL statement of the service is here, parameterized (``{name:Type}``). Synchronous:
the runner and the service call it off the event loop (``asyncio.to_thread``).

What a fit reads (:meth:`MmmStorage.dataset`), per period of the grain — ISO weeks
starting Monday, or days — over an inclusive day window:

- spend per channel: ``spend FINAL`` (ingest's replacing table, one row per event id);
- the target: ``won_revenue`` = the won pipeline ``amount`` (``pipeline_events FINAL``,
  stage ``won``); ``new_mrr`` = the MRR of accounts' first paid subscription
  (``kpi_mrr_movements FINAL``, kind ``new``: the KPI service's movements, the table its
  ``mrr_new`` KPI sums); ``kpi:<name>`` = an additive KPI's day values (``kpi_values``,
  dimension ``all``) summed per period;
- periods without spend or outcome are 0.

What a run writes (:meth:`MmmStorage.write_result`): every result table, then the
``mmm_runs`` row last, so a reader never sees a published run without its rows.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, TypeVar

from pulse_mmm.domain.model import (
    BASELINE,
    AllocationRow,
    ChannelResultRow,
    ContributionRow,
    MmmDataset,
    MmmRunResult,
    MmmRunRow,
    ModelGrain,
    PosteriorDrawRow,
    ResponseCurveRow,
    RunStatus,
    Target,
)
from pulse_shared.attribution_models import DEFAULT_MODEL
from pulse_shared.columns import model_columns
from pulse_shared.credits import latest_credits
from pulse_shared.events import ConversionMilestone
from pulse_shared.kpi_catalog import BY_NAME, MODELS
from pulse_shared.store import Store
from pulse_shared.topics import MMM_RESULTS

# Insert column lists: each table stores one row type's fields (domain/model.py).
# TABLE_COLUMNS pairs them with their tables (tests/test_storage_columns.py checks them
# against the migrated DDL).
RUNS_TABLE = MMM_RESULTS.stored_table()
CHANNEL_RESULTS_TABLE = "mmm_channel_results"
CONTRIBUTIONS_TABLE = "mmm_contributions"
CURVES_TABLE = "mmm_response_curves"
DRAWS_TABLE = "mmm_posterior_draws"
ALLOCATIONS_TABLE = "mmm_allocations"
RUN_COLUMNS = model_columns(MmmRunRow)
CHANNEL_RESULT_COLUMNS = model_columns(ChannelResultRow)
CONTRIBUTION_COLUMNS = model_columns(ContributionRow)
CURVE_COLUMNS = model_columns(ResponseCurveRow)
DRAW_COLUMNS = model_columns(PosteriorDrawRow)
ALLOCATION_COLUMNS = model_columns(AllocationRow)
TABLE_COLUMNS: dict[str, tuple[str, ...]] = {
    RUNS_TABLE: RUN_COLUMNS,
    CHANNEL_RESULTS_TABLE: CHANNEL_RESULT_COLUMNS,
    CONTRIBUTIONS_TABLE: CONTRIBUTION_COLUMNS,
    CURVES_TABLE: CURVE_COLUMNS,
    DRAWS_TABLE: DRAW_COLUMNS,
    ALLOCATIONS_TABLE: ALLOCATION_COLUMNS,
}
#: Every table of the service (access scopes, docs).
TABLES: tuple[str, ...] = tuple(TABLE_COLUMNS)

KPI_TARGET_PREFIX = "kpi:"
#: KPIs whose day values add up to the value of a week: flows (amounts and counts of
#: things that happened in the period). Stocks (MRR, paying accounts), ratios (ROAS, CAC,
#: conversion rates), medians (velocities) and budget-grain KPIs do not, and a mix model
#: of a per-period sum of them would explain a number nobody reads.
ADDITIVE_KPIS: frozenset[str] = frozenset({
    "spend", "impressions", "clicks", "leads", "mqls", "sqls", "opportunities", "wins",
    "new_customers", "attributed_pipeline", "attributed_revenue", "mrr_new",
    "mrr_expansion", "mrr_contraction", "mrr_churn", "mrr_reactivation", "mrr_net_new",
    *(f"{kpi}__{model}" for kpi in ("attributed_pipeline", "attributed_revenue")
      for model in MODELS),
})
#: The attribution model whose credited revenue ÷ spend is shown beside incremental ROI:
#: the executive default, the ROAS every other executive view shows (last touch credits
#: the sales call before a close, so paid channels read 0x under it).
ROAS_MODEL = DEFAULT_MODEL
#: Months of MRR a new-subscription conversion is worth in attribution (MRR × 12): its
#: credited revenue ÷ this is credited new MRR, comparable with the new_mrr target.
MONTHS_PER_YEAR = 12

# Period start of a day: Monday of its ISO week, or the day itself.
_PERIOD = "if({weekly:UInt8} = 1, toMonday({column}), toDate({column}))"


def _period_of(column: str) -> str:
    return _PERIOD.replace("{column}", column)


_SPEND_SQL = (
    f"SELECT {_period_of('date')} AS period_start, channel, "  # noqa: S608 - constant text
    "toFloat64(sum(amount)) AS amount FROM spend FINAL "
    "WHERE date >= {start:Date} AND date <= {end:Date} "
    "GROUP BY period_start, channel ORDER BY period_start, channel"
)
_WON_REVENUE_SQL = (
    f"SELECT {_period_of('occurred_at')} AS period_start, "  # noqa: S608 - constant text
    "toFloat64(sum(amount)) AS value FROM pipeline_events FINAL "
    "WHERE stage = 'won' AND amount IS NOT NULL "
    "AND toDate(occurred_at) >= {start:Date} AND toDate(occurred_at) <= {end:Date} "
    "GROUP BY period_start"
)
_NEW_MRR_SQL = (
    f"SELECT {_period_of('occurred_at')} AS period_start, "  # noqa: S608 - constant text
    "toFloat64(sum(mrr_after - mrr_before)) AS value FROM kpi_mrr_movements FINAL "
    "WHERE kind = 'new' "
    "AND toDate(occurred_at) >= {start:Date} AND toDate(occurred_at) <= {end:Date} "
    "GROUP BY period_start"
)
_KPI_SQL = (
    f"SELECT {_period_of('period_start')} AS period_start, "  # noqa: S608 - constant text
    "sum(ifNull(value, 0)) AS value FROM kpi_values FINAL "
    "WHERE kpi = {kpi:String} AND grain = 'day' AND dimension = 'all' "
    "AND period_start >= {start:Date} AND period_start <= {end:Date} "
    "GROUP BY period_start"
)
_CREDITED_SQL = (
    "SELECT channel, toFloat64(sum(credited_revenue)) AS revenue FROM "  # noqa: S608
    + latest_credits("model = {model:String} AND milestone = {milestone:String} "
                     "AND toDate(converted_at) >= {start:Date} "
                     "AND toDate(converted_at) <= {end:Date}")
    + " GROUP BY channel"
)


_FIRST_TOUCH_SQL = (
    "SELECT if(count() = 0, NULL, min(toDate(touched_at))) FROM "  # noqa: S608
    + latest_credits("model = {model:String} AND milestone = {milestone:String} "
                     "AND toDate(converted_at) >= {start:Date} "
                     "AND toDate(converted_at) <= {end:Date}")
)


class UnknownTarget(ValueError):
    """A target the model cannot explain (unknown, or a KPI that does not add up)."""


def parse_target(text: str) -> str:
    """The canonical target named by ``text``: ``won_revenue``, ``new_mrr`` or
    ``kpi:<name>`` of an additive KPI; :class:`UnknownTarget` (one line) otherwise."""
    name = text.strip()
    if name in tuple(Target):
        return name
    if name.startswith(KPI_TARGET_PREFIX):
        kpi = name[len(KPI_TARGET_PREFIX):]
        if kpi not in BY_NAME:
            raise UnknownTarget(f"unknown KPI {kpi!r} (names: pulse kpi list)")
        if kpi not in ADDITIVE_KPIS:
            raise UnknownTarget(
                f"KPI {kpi!r} is not additive (a stock, ratio or median: its days do not sum "
                f"to a week); additive KPIs: {', '.join(sorted(ADDITIVE_KPIS))}"
            )
        return f"{KPI_TARGET_PREFIX}{kpi}"
    raise UnknownTarget(
        f"unknown target {name!r}; one of {', '.join(Target)} or kpi:<additive KPI>"
    )


def period_starts(grain: ModelGrain | str, start: dt.date, end: dt.date) -> list[dt.date]:
    """Every period start of ``grain`` covering the inclusive day window ``[start, end]``."""
    if ModelGrain(grain) is ModelGrain.WEEK:
        first = start - dt.timedelta(days=start.weekday())
        step = dt.timedelta(days=7)
    else:
        first, step = start, dt.timedelta(days=1)
    out: list[dt.date] = []
    day = first
    while day <= end:
        out.append(day)
        day += step
    return out


def complete_window(
    grain: ModelGrain | str, first_day: dt.date, last_day: dt.date, periods: int
) -> tuple[dt.date, dt.date] | None:
    """The last ``periods`` complete periods of ``grain`` within ``[first_day, last_day]``
    (a week counts when all its days are in the span), as an inclusive day window; None
    when not even one complete period fits."""
    if ModelGrain(grain) is ModelGrain.WEEK:
        # The Sunday ending the last complete week, the Monday starting the first.
        end = last_day - dt.timedelta(days=(last_day.weekday() + 1) % 7)
        earliest = first_day + dt.timedelta(days=(7 - first_day.weekday()) % 7)
        start = max(earliest, end - dt.timedelta(days=7 * periods - 1))
    else:
        end = last_day
        start = max(first_day, end - dt.timedelta(days=periods - 1))
    return (start, end) if start <= end else None


RowT = TypeVar("RowT")


def _row_dict(row: Any, columns: Sequence[str]) -> dict[str, Any]:
    return {c: getattr(row, c) for c in columns}


def _rows_of(kind: type[RowT], rows: Iterable[Mapping[str, Any]]) -> list[RowT]:
    return [kind(**dict(r)) for r in rows]


def _columns(columns: Sequence[str]) -> str:
    return ", ".join(columns)


class MmmStorage:
    """Synchronous queries; callers run them off the event loop."""

    def __init__(self, store: Store) -> None:
        self.store = store

    # ------------------------------------------------------------------ inputs
    def spend_span(self) -> tuple[dt.date, dt.date] | None:
        """First and last day with spend (the default window ends with the data)."""
        rows = self.store.query(
            "SELECT min(date) AS first, max(date) AS last, count() AS n FROM spend FINAL"
        )
        if not rows or not int(rows[0]["n"]):
            return None
        return rows[0]["first"], rows[0]["last"]

    def dataset(
        self, target: str, grain: ModelGrain | str, start: dt.date, end: dt.date
    ) -> MmmDataset:
        """Spend per channel and the target per period of ``grain`` over the inclusive day
        window ``[start, end]``; gaps are 0. Channels: those with spend in the window."""
        target = parse_target(target)
        grain = ModelGrain(grain)
        params: dict[str, Any] = {
            "start": start, "end": end, "weekly": int(grain is ModelGrain.WEEK),
        }
        starts = period_starts(grain, start, end)
        index = {p: i for i, p in enumerate(starts)}
        spend: dict[str, list[float]] = {}
        for row in self.store.query(_SPEND_SQL, params):
            series = spend.setdefault(row["channel"], [0.0] * len(starts))
            series[index[row["period_start"]]] += float(row["amount"])
        outcome = [0.0] * len(starts)
        for row in self.store.query(*self._target_query(target, params)):
            outcome[index[row["period_start"]]] += float(row["value"])
        channels = tuple(sorted(c for c, s in spend.items() if any(s)))
        return MmmDataset(
            target=target,
            grain=grain,
            period_starts=tuple(starts),
            channels=channels,
            spend={c: tuple(spend[c]) for c in channels},
            outcome=tuple(outcome),
        )

    @staticmethod
    def _target_query(target: str, params: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        if target == Target.WON_REVENUE:
            return _WON_REVENUE_SQL, params
        if target == Target.NEW_MRR:
            return _NEW_MRR_SQL, params
        return _KPI_SQL, {**params, "kpi": target[len(KPI_TARGET_PREFIX):]}

    def attribution_roas(
        self, target: str, start: dt.date, end: dt.date
    ) -> dict[str, float | None]:
        """Per channel: revenue of the conversions in ``[start, end]`` credited under the
        executive default model (:data:`ROAS_MODEL`) ÷ the channel's spend from the first
        credited touch to ``end`` (None without spend, or without any credited touch: no
        evidence is not 0x). Won revenue credits for ``won_revenue``,
        new-subscription credits as monthly MRR for ``new_mrr``; empty for a KPI target
        (attribution credits no KPI)."""
        target = parse_target(target)
        if target == Target.WON_REVENUE:
            milestone, scale = ConversionMilestone.WON, 1.0
        elif target == Target.NEW_MRR:
            milestone, scale = ConversionMilestone.NEW_SUBSCRIPTION, 1.0 / MONTHS_PER_YEAR
        else:
            return {}
        credit_params = {"start": start, "end": end, "model": ROAS_MODEL,
                         "milestone": str(milestone)}
        # Attribution can only credit spend from when touches were tracked: ROAS counts the
        # spend from the first credited touch on (older spend, e.g. history imported without
        # journeys, would read as 0x). No credited touch at all: n/a, not 0.
        first_touch = self.store.query_value(_FIRST_TOUCH_SQL, credit_params)
        if first_touch is None or first_touch > end:
            spans = self.store.query(_SPEND_SQL, {"start": start, "end": end, "weekly": 0})
            return {channel: None for channel in sorted({r["channel"] for r in spans})}
        params: dict[str, Any] = {"start": max(start, first_touch), "end": end, "weekly": 0}
        spent: dict[str, float] = defaultdict(float)
        for row in self.store.query(_SPEND_SQL, params):
            spent[row["channel"]] += float(row["amount"])
        credited = {
            r["channel"]: float(r["revenue"]) * scale
            for r in self.store.query(_CREDITED_SQL, credit_params)
        }
        return {
            channel: (credited.get(channel, 0.0) / amount if amount else None)
            for channel, amount in sorted(spent.items())
        }

    # ------------------------------------------------------------------ runs
    def next_version(self, target: str, grain: ModelGrain | str) -> int:
        """The version of the next run of ``target`` × ``grain`` (1 for the first)."""
        value = self.store.query_value(
            "SELECT max(version) FROM mmm_runs FINAL "
            "WHERE target = {target:String} AND grain = {grain:String}",
            {"target": target, "grain": str(grain)},
        )
        return int(value or 0) + 1

    def write_result(self, result: MmmRunResult) -> None:
        """Store a run: its result rows first, the ``mmm_runs`` row last (a reader looking
        for the latest published run then always finds its rows)."""
        parts: tuple[tuple[str, Sequence[Any]], ...] = (
            (CHANNEL_RESULTS_TABLE, result.channels),
            (CONTRIBUTIONS_TABLE, result.contributions),
            (CURVES_TABLE, result.curves),
            (DRAWS_TABLE, result.draws),
            (ALLOCATIONS_TABLE, result.allocations),
        )
        for table, rows in parts:
            if rows:
                columns = TABLE_COLUMNS[table]
                self.store.insert(table, [_row_dict(r, columns) for r in rows], columns)
        self.store.insert(RUNS_TABLE, [_row_dict(result.run, RUN_COLUMNS)], RUN_COLUMNS)

    def runs(
        self, target: str | None = None, grain: ModelGrain | str | None = None,
        status: RunStatus | str | None = None,
    ) -> list[MmmRunRow]:
        """Runs, newest first, optionally of one target, grain and status."""
        rows = self.store.query(
            f"SELECT {_columns(RUN_COLUMNS)} FROM mmm_runs FINAL "  # noqa: S608 - constant columns
            "WHERE ({target:String} = '' OR target = {target:String}) "
            "AND ({grain:String} = '' OR grain = {grain:String}) "
            "AND ({status:String} = '' OR status = {status:String}) "
            "ORDER BY finished_at DESC, version DESC, run_id DESC",
            {"target": target or "", "grain": str(grain or ""), "status": str(status or "")},
        )
        return _rows_of(MmmRunRow, rows)

    def run(self, run_id: str) -> MmmRunRow | None:
        rows = self.store.query(
            f"SELECT {_columns(RUN_COLUMNS)} FROM mmm_runs FINAL "  # noqa: S608 - constant columns
            "WHERE run_id = {run:String} LIMIT 1",
            {"run": run_id},
        )
        found = _rows_of(MmmRunRow, rows)
        return found[0] if found else None

    def latest_published_run(
        self, target: str | None = None, grain: ModelGrain | str | None = None
    ) -> MmmRunRow | None:
        """The most recently finished published run (of ``target`` × ``grain`` when
        given): what ``pulse mmm roi``/``optimize`` and the reports read."""
        found = self.runs(target, grain, RunStatus.PUBLISHED)
        return found[0] if found else None

    def channel_results(self, run_id: str) -> list[ChannelResultRow]:
        return _rows_of(ChannelResultRow, self.store.query(
            f"SELECT {_columns(CHANNEL_RESULT_COLUMNS)} FROM mmm_channel_results FINAL "  # noqa: S608
            "WHERE run_id = {run:String} ORDER BY channel",
            {"run": run_id},
        ))

    def contributions(self, run_id: str) -> list[ContributionRow]:
        return _rows_of(ContributionRow, self.store.query(
            f"SELECT {_columns(CONTRIBUTION_COLUMNS)} FROM mmm_contributions FINAL "  # noqa: S608
            "WHERE run_id = {run:String} ORDER BY channel, period_start",
            {"run": run_id},
        ))

    def curves(self, run_id: str) -> list[ResponseCurveRow]:
        return _rows_of(ResponseCurveRow, self.store.query(
            f"SELECT {_columns(CURVE_COLUMNS)} FROM mmm_response_curves FINAL "  # noqa: S608
            "WHERE run_id = {run:String} ORDER BY channel, spend",
            {"run": run_id},
        ))

    def draws(self, run_id: str) -> list[PosteriorDrawRow]:
        return _rows_of(PosteriorDrawRow, self.store.query(
            f"SELECT {_columns(DRAW_COLUMNS)} FROM mmm_posterior_draws FINAL "  # noqa: S608
            "WHERE run_id = {run:String} ORDER BY channel, draw",
            {"run": run_id},
        ))

    def allocations(self, run_id: str) -> list[AllocationRow]:
        return _rows_of(AllocationRow, self.store.query(
            f"SELECT {_columns(ALLOCATION_COLUMNS)} FROM mmm_allocations FINAL "  # noqa: S608
            "WHERE run_id = {run:String} ORDER BY budget, periods, channel",
            {"run": run_id},
        ))

    def recent_spend(self, run_id: str, periods: int = 8) -> dict[str, float]:
        """Mean spend per period of each media channel over the run's last ``periods``
        periods (its stored contribution rows: the spend the model saw): the current mix
        the optimiser compares with."""
        rows = self.store.query(
            "SELECT channel, avg(spend) AS spend FROM mmm_contributions FINAL "
            "WHERE run_id = {run:String} AND channel != {baseline:String} AND period_start IN ("
            "SELECT DISTINCT period_start FROM mmm_contributions FINAL "
            "WHERE run_id = {run:String} ORDER BY period_start DESC LIMIT {n:UInt32}) "
            "GROUP BY channel ORDER BY channel",
            {"run": run_id, "n": periods, "baseline": BASELINE},
        )
        return {r["channel"]: float(r["spend"]) for r in rows}
