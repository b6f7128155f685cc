"""The KPI service's ClickHouse reads and writes (all through :class:`Store`).

Raw input tables (spend, subscriptions, pipeline_events, budgets, martech_costs) and ``kpi_mrr_movements``
deduplicate on event ids; every read that must be exact uses ``FINAL``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from pulse_kpi.domain.accounts import AccountFacts, AccountMove, ProfileRow
from pulse_kpi.domain.campaigns import CAMPAIGN_PARTS
from pulse_kpi.domain.cohorts import LedgerEvent
from pulse_kpi.domain.compute import NO_CHANNEL, KpiValue
from pulse_kpi.domain.deliverability import DeliverabilityRow
from pulse_kpi.domain.experience import FeedbackRow, TicketRow
from pulse_kpi.domain.facts import (
    AccountStages,
    AccountTrial,
    BudgetRow,
    CreditRow,
    Facts,
    MartechRow,
    MrrDay,
    SpendRow,
    StageCount,
)
from pulse_kpi.domain.mrr import MrrEvent, MrrMovement
from pulse_kpi.domain.usage import MrrChange, UsageLedger, UsageRow
from pulse_shared.columns import model_columns
from pulse_shared.consumers import TableRows
from pulse_shared.credits import latest_credits
from pulse_shared.events import (
    AccountProfile,
    Budget,
    EmailDeliveryStats,
    FeedbackResponse,
    Grain,
    KpiSnapshot,
    MartechCost,
    PipelineEvent,
    ProductUsage,
    Spend,
    Subscription,
    SupportTicket,
)
from pulse_shared.experience import MrrPoint, NpsAnswer
from pulse_shared.kpi_catalog import STAGES
from pulse_shared.store import Store
from pulse_shared.topics import (
    ACCOUNTS,
    BUDGETS,
    DELIVERABILITY,
    FEEDBACK,
    KPI_SNAPSHOTS,
    MARTECH,
    PIPELINE,
    SPEND,
    SUBSCRIPTIONS,
    TICKETS,
    USAGE,
)

# Insert column lists. The raw input tables and kpi_values store an event model's fields,
# so their columns come from the model (pulse_shared.columns); runtime tables list theirs.
# TABLE_COLUMNS pairs each with its table (tests/test_storage_columns.py checks the DDL).
SPEND_COLUMNS = model_columns(Spend)
SUBSCRIPTION_COLUMNS = model_columns(Subscription)
PIPELINE_COLUMNS = model_columns(PipelineEvent)
BUDGET_COLUMNS = model_columns(Budget)  # month stored as its first day (Budget.month_start)
MARTECH_COLUMNS = model_columns(MartechCost)  # month stored as its first day, like budgets
USAGE_COLUMNS = model_columns(ProductUsage)
DELIVERABILITY_COLUMNS = model_columns(EmailDeliveryStats)
ACCOUNT_COLUMNS = model_columns(AccountProfile)
FEEDBACK_COLUMNS = model_columns(FeedbackResponse)
#: state_at: the time of the state (SupportTicket.state_at), the version of the latest state.
TICKET_COLUMNS = model_columns(SupportTicket, extra=("state_at",))
#: A movement plus what the service adds when it stores one.
MOVEMENT_COLUMNS = model_columns(MrrMovement, extra=("paying_delta", "computed_at"))
#: Snapshot fields without the bus-only ones (kpi_values holds the latest value per key).
KPI_COLUMNS = model_columns(KpiSnapshot, exclude=("final", "complete", "schema_version"))
PENDING_COLUMNS = ("kind", "day", "marked_at")
KPI_STATE_COLUMNS = ("name", "at")
MOVEMENTS_TABLE = "kpi_mrr_movements"
PENDING_TABLE = "kpi_pending"
KPI_STATE_TABLE = "kpi_state"
TABLE_COLUMNS: dict[str, tuple[str, ...]] = {
    SPEND.stored_table(): SPEND_COLUMNS,
    SUBSCRIPTIONS.stored_table(): SUBSCRIPTION_COLUMNS,
    PIPELINE.stored_table(): PIPELINE_COLUMNS,
    BUDGETS.stored_table(): BUDGET_COLUMNS,
    MARTECH.stored_table(): MARTECH_COLUMNS,
    USAGE.stored_table(): USAGE_COLUMNS,
    DELIVERABILITY.stored_table(): DELIVERABILITY_COLUMNS,
    ACCOUNTS.stored_table(): ACCOUNT_COLUMNS,
    FEEDBACK.stored_table(): FEEDBACK_COLUMNS,
    TICKETS.stored_table(): TICKET_COLUMNS,
    MOVEMENTS_TABLE: MOVEMENT_COLUMNS,
    KPI_SNAPSHOTS.stored_table(): KPI_COLUMNS,
    PENDING_TABLE: PENDING_COLUMNS,
    KPI_STATE_TABLE: KPI_STATE_COLUMNS,
}


def spend_rows(events: Iterable[Spend]) -> list[dict[str, Any]]:
    return [e.model_dump(include=set(SPEND_COLUMNS)) for e in events]


def subscription_rows(events: Iterable[Subscription]) -> list[dict[str, Any]]:
    return [e.model_dump(include=set(SUBSCRIPTION_COLUMNS)) for e in events]


def pipeline_rows(events: Iterable[PipelineEvent]) -> list[dict[str, Any]]:
    return [e.model_dump(include=set(PIPELINE_COLUMNS)) for e in events]


def budget_rows(events: Iterable[Budget]) -> list[dict[str, Any]]:
    return [
        {**e.model_dump(include=set(BUDGET_COLUMNS) - {"month"}), "month": e.month_start}
        for e in events
    ]


def martech_rows(events: Iterable[MartechCost]) -> list[dict[str, Any]]:
    return [
        {**e.model_dump(include=set(MARTECH_COLUMNS) - {"month"}), "month": e.month_start}
        for e in events
    ]


# Processors of the KPI consumers (pure: events → rows of the raw-event tables).
def spend_processor(events: Sequence[Spend]) -> list[TableRows]:
    return [TableRows(SPEND.stored_table(), SPEND_COLUMNS, spend_rows(events))]


def subscription_processor(events: Sequence[Subscription]) -> list[TableRows]:
    rows = subscription_rows(events)
    return [TableRows(SUBSCRIPTIONS.stored_table(), SUBSCRIPTION_COLUMNS, rows)]


def pipeline_processor(events: Sequence[PipelineEvent]) -> list[TableRows]:
    return [TableRows(PIPELINE.stored_table(), PIPELINE_COLUMNS, pipeline_rows(events))]


def budget_processor(events: Sequence[Budget]) -> list[TableRows]:
    return [TableRows(BUDGETS.stored_table(), BUDGET_COLUMNS, budget_rows(events))]


def martech_processor(events: Sequence[MartechCost]) -> list[TableRows]:
    return [TableRows(MARTECH.stored_table(), MARTECH_COLUMNS, martech_rows(events))]


def usage_rows(events: Iterable[ProductUsage]) -> list[dict[str, Any]]:
    return [e.model_dump(include=set(USAGE_COLUMNS)) for e in events]


def usage_processor(events: Sequence[ProductUsage]) -> list[TableRows]:
    return [TableRows(USAGE.stored_table(), USAGE_COLUMNS, usage_rows(events))]


def deliverability_processor(events: Sequence[EmailDeliveryStats]) -> list[TableRows]:
    rows = [e.model_dump(include=set(DELIVERABILITY_COLUMNS)) for e in events]
    return [TableRows(DELIVERABILITY.stored_table(), DELIVERABILITY_COLUMNS, rows)]


def account_rows(events: Iterable[AccountProfile]) -> list[dict[str, Any]]:
    return [e.model_dump(include=set(ACCOUNT_COLUMNS)) for e in events]


def account_processor(events: Sequence[AccountProfile]) -> list[TableRows]:
    return [TableRows(ACCOUNTS.stored_table(), ACCOUNT_COLUMNS, account_rows(events))]


def feedback_processor(events: Sequence[FeedbackResponse]) -> list[TableRows]:
    rows = [e.model_dump(include=set(FEEDBACK_COLUMNS)) for e in events]
    return [TableRows(FEEDBACK.stored_table(), FEEDBACK_COLUMNS, rows)]


def ticket_rows(events: Iterable[SupportTicket]) -> list[dict[str, Any]]:
    return [{**e.model_dump(include=set(TICKET_COLUMNS)), "state_at": e.state_at}
            for e in events]


def ticket_processor(events: Sequence[SupportTicket]) -> list[TableRows]:
    return [TableRows(TICKETS.stored_table(), TICKET_COLUMNS, ticket_rows(events))]


def movement_rows(moves: Iterable[MrrMovement], computed_at: dt.datetime) -> list[dict[str, Any]]:
    return [
        {
            "event_id": m.event_id, "account_id": m.account_id, "occurred_at": m.occurred_at,
            "kind": str(m.kind), "mrr_before": m.mrr_before, "mrr_after": m.mrr_after,
            "paying_delta": m.paying_delta, "computed_at": computed_at,
        }
        for m in moves
    ]


def kpi_rows(values: Iterable[KpiValue], computed_at: dt.datetime) -> list[dict[str, Any]]:
    return [
        {
            "kpi": v.kpi, "grain": str(v.grain), "period": v.period,
            "period_start": v.period_start, "dimension": v.dimension,
            "dimension_value": v.dimension_value, "value": v.value, "unit": v.unit,
            "computed_at": computed_at,
        }
        for v in values
    ]


#: Every part of :class:`Facts`; channel/campaign breakdowns need only spend, credits,
#: budgets and trials (trials by first-touch channel); martech costs are totals only.
FACT_PARTS = frozenset({
    "spend", "stages", "credits", "mrr", "budgets", "funnel", "trials", "martech",
    "deliverability",
})
BREAKDOWN_PARTS = frozenset({"spend", "credits", "budgets", "trials", "deliverability"})
#: Per-account MRR and profiles: the breakdowns by segment, plan … only (never totals).
BREAKDOWN_PARTS |= {"accounts"}
#: The breakdown pass leaves campaign KPIs (spend, credits, budgets) to the campaign pass
#: (pulse_kpi.domain.campaigns).
OTHER_BREAKDOWN_PARTS = BREAKDOWN_PARTS - CAMPAIGN_PARTS
_POOL = ThreadPoolExecutor(max_workers=6, thread_name_prefix="kpi-load")


#: kpi_pending kind: account breakdowns (segment …) are dirty from that day on.
SEGMENT_PENDING = "segment"
ACCOUNT_CHUNK = 2000  # ~60 kB of ids: well under http_max_field_value_size (128 kB)
BREAKDOWNS_DONE = "breakdowns_done"
#: kpi_state: start of the last campaign pass that completed (flow and budget kinds).
CAMPAIGNS_DONE = "campaign_breakdowns_done"
# Credits of the days [start, end), latest version only: read through the shared fragment
# (pulse_shared.credits), not the view, whose window cannot use the day filter. Constant SQL
# text: every value is a query parameter.
_CREDITS_SQL = (
    "SELECT toDate(converted_at) AS day, model, milestone, channel, campaign_id, "  # noqa: S608
    "sum(credit) AS credit, sum(credited_revenue) AS revenue FROM "
    + latest_credits("toDate(converted_at) >= {start:Date} AND toDate(converted_at) < {end:Date}")
    + " GROUP BY day, model, milestone, channel, campaign_id"
)
# … of some channels and campaigns only: filtered after the latest version is chosen (a
# filter inside latest_credits may only name conversion columns).
_MEMBER_ROWS = ("(channel IN {channels:Array(String)} "
                "OR campaign_id IN {campaigns:Array(String)})")
_MEMBER_CREDITS_SQL = (
    "SELECT toDate(converted_at) AS day, model, milestone, channel, campaign_id, "  # noqa: S608
    "sum(credit) AS credit, sum(credited_revenue) AS revenue FROM "
    + latest_credits("toDate(converted_at) >= {start:Date} AND toDate(converted_at) < {end:Date}")
    + f" WHERE {_MEMBER_ROWS} GROUP BY day, model, milestone, channel, campaign_id"
)


def pending_rows(
    flow_days: Iterable[dt.date], budget_months: Iterable[dt.date], at: dt.datetime,
    trial_days: Iterable[dt.date] = (), segment_days: Iterable[dt.date] = (),
) -> list[dict[str, Any]]:
    return (
        [{"kind": "flow", "day": d, "marked_at": at} for d in sorted(flow_days)]
        + [{"kind": "budget", "day": m, "marked_at": at} for m in sorted(budget_months)]
        + [{"kind": "trial", "day": d, "marked_at": at} for d in sorted(trial_days)]
        + [{"kind": SEGMENT_PENDING, "day": d, "marked_at": at} for d in sorted(segment_days)]
    )


# Trials of the accounts with a trial_started event in [start, end): first trial, first paid
# event, first-touch channel (the definitions of pulse_kpi.domain.compute.account_trials).
# Constant SQL text: every value is a query parameter.
_TRIAL_ACCOUNTS = (
    "SELECT account_id FROM subscriptions WHERE event_type = 'trial_started' "
    "AND toDate(occurred_at) >= {start:Date} AND toDate(occurred_at) < {end:Date}"
)
_TRIALS_SQL = (
    "SELECT s.account_id AS account_id, s.started_at AS started_at, s.paid_at AS paid_at, "  # noqa: S608
    "t.channel AS channel FROM ("
    "SELECT account_id, minIfOrNull(occurred_at, event_type = 'trial_started') AS started_at, "
    "minIfOrNull(occurred_at, mrr > 0) AS paid_at FROM subscriptions FINAL "
    f"WHERE account_id IN ({_TRIAL_ACCOUNTS}) GROUP BY account_id) AS s "
    "LEFT JOIN (SELECT account_id, argMin(channel, (occurred_at, event_id)) AS channel "
    f"FROM touchpoints FINAL WHERE account_id IN ({_TRIAL_ACCOUNTS}) GROUP BY account_id) AS t "
    "ON s.account_id = t.account_id "
    "WHERE s.paid_at IS NULL OR s.paid_at >= s.started_at"
)


_DELIVERY_COUNTS = (
    "sent", "delivered", "hard_bounces", "soft_bounces", "spam_complaints", "unsubscribes",
    "unique_opens", "unique_clicks",
)
# Constant SQL text: the day range is a query parameter.
_DELIVERABILITY_SQL = (
    "SELECT day, sending_domain, campaign_id, "  # noqa: S608 - constant column names
    + ", ".join(f"sum({c}) AS {c}" for c in _DELIVERY_COUNTS)
    + " FROM email_deliverability FINAL WHERE day >= {start:Date} AND day < {end:Date} "
    "GROUP BY day, sending_domain, campaign_id ORDER BY day, sending_domain, campaign_id"
)


@dataclass(frozen=True)
class PendingWork:
    """Breakdowns marked in kpi_pending after the last completed pass that does them."""

    flow_days: set[dt.date]  # breakdown pass (deliverability …)
    trial_days: set[dt.date]  # breakdown pass
    campaign_days: set[dt.date]  # campaign pass, every member
    campaign_months: set[dt.date]  # campaign pass (budgets), every member


def _dec(value: Any) -> Decimal:
    return Decimal(0) if value is None else Decimal(value)


class KpiStorage:
    """Synchronous queries; the component runs them off the event loop."""

    def __init__(self, store: Store) -> None:
        self.store = store

    # ------------------------------------------------------------------ MRR movements
    def _chunked(self, sql: str, accounts: Sequence[str]) -> list[dict[str, Any]]:
        """Run ``sql`` (with an ``{accounts:Array(String)}`` parameter) over account chunks.

        Parameters travel as HTTP form fields, which the server caps in size.
        """
        chunks = [list(accounts[i : i + ACCOUNT_CHUNK])
                  for i in range(0, len(accounts), ACCOUNT_CHUNK)]
        if self.store.backend == "server" and len(chunks) > 1:
            futures = [_POOL.submit(self.store.query, sql, {"accounts": c}) for c in chunks]
            return [row for f in futures for row in f.result()]
        return [row for c in chunks for row in self.store.query(sql, {"accounts": c})]

    def subscription_history(self, accounts: Sequence[str]) -> list[MrrEvent]:
        rows = self._chunked(
            "SELECT event_id, account_id, occurred_at, mrr FROM subscriptions FINAL "
            "WHERE account_id IN {accounts:Array(String)}",
            accounts,
        )
        return [
            MrrEvent(r["event_id"], r["account_id"], r["occurred_at"], _dec(r["mrr"]))
            for r in rows
        ]

    def last_subscription_day(self) -> dt.date | None:
        rows = self.store.query(
            "SELECT toDate(max(occurred_at)) AS d, count() AS n FROM subscriptions"
        )
        if not rows or int(rows[0]["n"]) == 0:
            return None
        day = rows[0]["d"]
        return day if isinstance(day, dt.date) else None

    def account_trial_days(self, accounts: Sequence[str]) -> set[dt.date]:
        """Days of the accounts' trial starts (their trial KPIs change with their events)."""
        rows = self._chunked(
            "SELECT DISTINCT toDate(occurred_at) AS day FROM subscriptions FINAL "
            "WHERE account_id IN {accounts:Array(String)} AND event_type = 'trial_started'",
            accounts,
        )
        return {r["day"] for r in rows}

    def account_stage_days(self, accounts: Sequence[str]) -> set[dt.date]:
        rows = self._chunked(
            "SELECT DISTINCT toDate(occurred_at) AS day FROM pipeline_events FINAL "
            "WHERE account_id IN {accounts:Array(String)}",
            accounts,
        )
        return {r["day"] for r in rows}

    # ------------------------------------------------------------------ breakdown markers
    def missing_credit_versions(self, keys: Sequence[tuple[str, str, int]]) -> int:
        """How many announced (conversion, model, version) credits are not yet readable."""
        if len(keys) > ACCOUNT_CHUNK:  # keep the HTTP query parameters small
            return sum(
                self.missing_credit_versions(keys[i : i + ACCOUNT_CHUNK])
                for i in range(0, len(keys), ACCOUNT_CHUNK)
            )
        if not keys:
            return 0
        found = self.store.query_value(
            "SELECT count() FROM (SELECT DISTINCT conversion_id, model, version "
            "FROM attribution_credits WHERE (conversion_id, model, version) IN "
            "(SELECT tupleElement(k, 1), tupleElement(k, 2), tupleElement(k, 3) "
            "FROM (SELECT arrayJoin(arrayZip({ids:Array(String)}, {models:Array(String)}, "
            "{versions:Array(UInt32)})) AS k)))",
            {"ids": [k[0] for k in keys], "models": [k[1] for k in keys],
             "versions": [k[2] for k in keys]},
        )
        return len(keys) - int(found or 0)

    def breakdowns_done(self, started: dt.datetime, name: str = BREAKDOWNS_DONE) -> None:
        """Everything marked before ``started`` is done by the pass ``name``
        (:data:`BREAKDOWNS_DONE` or :data:`CAMPAIGNS_DONE`)."""
        self.store.insert(KPI_STATE_TABLE, [{"name": name, "at": started}], KPI_STATE_COLUMNS)

    def pending_work_since_done(self) -> PendingWork:
        """Work marked after the last completed pass that does it: flow days and trial
        start days of the breakdown pass, flow days and budget months of the campaign pass
        (which, before its first marker, follows the breakdown pass's: it used to do it)."""
        rows = self.store.query(
            "WITH (SELECT max(at) FROM kpi_state FINAL WHERE name = {full:String}) AS full, "
            "ifNull((SELECT maxOrNull(at) FROM kpi_state FINAL WHERE name = "
            "{campaigns:String}), full) AS campaigns "
            "SELECT kind, day, marked_at >= full AS for_breakdowns, "
            "marked_at >= campaigns AS for_campaigns FROM kpi_pending FINAL "
            "WHERE marked_at >= least(full, campaigns)",
            {"full": BREAKDOWNS_DONE, "campaigns": CAMPAIGNS_DONE},
        )
        return PendingWork(
            flow_days={r["day"] for r in rows if r["kind"] == "flow" and r["for_breakdowns"]},
            trial_days={r["day"] for r in rows
                        if r["kind"] == "trial" and r["for_breakdowns"]},
            campaign_days={r["day"] for r in rows
                           if r["kind"] == "flow" and r["for_campaigns"]},
            campaign_months={r["day"] for r in rows
                             if r["kind"] == "budget" and r["for_campaigns"]},
        )

    def pending_segment_days_since_done(self) -> set[dt.date]:
        """First days of account breakdowns marked after the last completed pass."""
        rows = self.store.query(
            "SELECT DISTINCT day FROM kpi_pending FINAL WHERE kind = {kind:String} AND "
            "marked_at >= (SELECT max(at) FROM kpi_state FINAL WHERE name = {name:String})",
            {"kind": SEGMENT_PENDING, "name": BREAKDOWNS_DONE},
        )
        return {r["day"] for r in rows}

    # ------------------------------------------------------------------ facts
    def load_facts(
        self, start: dt.date, end: dt.date, parts: frozenset[str] = FACT_PARTS,
        usage: tuple[dt.date, dt.date] | None = None,
        cx: tuple[dt.date, dt.date] | None = None,
        members: tuple[Sequence[str], Sequence[str]] | None = None,
    ) -> Facts:
        """Facts for the half-open day range ``[start, end)`` (only ``parts`` are loaded),
        plus product usage of the day range ``usage`` when given (its own range: see
        :func:`pulse_kpi.domain.usage.usage_range`).

        ``members`` = (channels, campaign ids): spend, credits and budgets counting in one
        of them only, plus the models of every credit of the range (``credit_models``;
        pulse_kpi.domain.campaigns).

        On the server the queries run concurrently (the HTTP client is thread-safe).
        """
        p: dict[str, Any] = {"start": start, "end": end}
        if members is not None:
            p["channels"], p["campaigns"] = list(members[0]), list(members[1])
        loaders: dict[str, Callable[[dict[str, Any]], Any]] = {
            "spend": self._spend, "stages": self._stages, "credits": self._credits,
            "mrr": self._mrr, "budgets": self._budgets, "funnel": self._funnel,
            "trials": self._trials, "martech": self._martech,
            "deliverability": self._deliverability, "accounts": self._accounts,
        }
        wanted = [name for name in loaders if name in parts]
        if members is not None and "credits" in parts:
            loaders["credit_models"] = self._credit_models
            wanted.append("credit_models")
        if usage is not None:
            usage_days = usage  # narrowed, for the closure
            loaders["usage"] = lambda _: self.usage_facts(*usage_days)
            wanted.append("usage")
        if cx is not None:
            cx_days = cx  # narrowed, for the closure
            loaders["cx"] = lambda _: self.experience_facts(*cx_days)
            wanted.append("cx")
        if self.store.backend == "server" and len(wanted) > 1:
            futures = {name: _POOL.submit(loaders[name], p) for name in wanted}
            results: dict[str, Any] = {name: f.result() for name, f in futures.items()}
        else:
            results = {name: loaders[name](p) for name in wanted}
        opening, mrr_days = results.get("mrr", ((Decimal(0), 0), []))
        return Facts(
            spend=results.get("spend", []),
            stages=results.get("stages", []),
            credits=results.get("credits", []),
            mrr_days=mrr_days,
            mrr_opening=opening[0],
            paying_opening=opening[1],
            budgets=results.get("budgets", []),
            funnel=results.get("funnel", []),
            trials=results.get("trials", []),
            martech=results.get("martech", []),
            deliverability=results.get("deliverability", []),
            accounts=results.get("accounts"),
            credit_models=results.get("credit_models", ()),
            usage=results.get("usage", ([], [], None))[0],
            usage_mrr=results.get("usage", ([], [], None))[1],
            usage_since=results.get("usage", ([], [], None))[2],
            feedback=results.get("cx", ([], [], []))[0],
            tickets=results.get("cx", ([], [], []))[1],
            cx_mrr=results.get("cx", ([], [], []))[2],
        )

    def _spend(self, p: dict[str, Any]) -> list[SpendRow]:
        members = f"AND {_MEMBER_ROWS} " if "channels" in p else ""
        return [
            SpendRow(r["day"], r["channel"], r["campaign_id"], _dec(r["amount"]),
                     int(r["impressions"]), int(r["clicks"]))
            for r in self.store.query(
                "SELECT date AS day, channel, campaign_id, sum(amount) AS amount, "  # noqa: S608 - constant fragments
                "sum(impressions) AS impressions, sum(clicks) AS clicks FROM spend FINAL "
                f"WHERE date >= {{start:Date}} AND date < {{end:Date}} {members}"
                "GROUP BY day, channel, campaign_id",
                p,
            )
        ]

    def _stages(self, p: dict[str, Any]) -> list[StageCount]:
        return [
            StageCount(r["day"], r["stage"], int(r["n"]))
            for r in self.store.query(
                "SELECT toDate(occurred_at) AS day, stage, count() AS n "
                "FROM pipeline_events FINAL "
                "WHERE toDate(occurred_at) >= {start:Date} AND toDate(occurred_at) < {end:Date} "
                "GROUP BY day, stage",
                p,
            )
        ]

    def _credits(self, p: dict[str, Any]) -> list[CreditRow]:
        return [
            CreditRow(r["day"], r["model"], r["milestone"], r["channel"], r["campaign_id"],
                      float(r["credit"]), _dec(r["revenue"]))
            for r in self.store.query(
                _MEMBER_CREDITS_SQL if "channels" in p else _CREDITS_SQL,
                p,
            )
        ]

    def _credit_models(self, p: dict[str, Any]) -> list[str]:
        """Models with credits in the range (any version: a model's versions are all its)."""
        return [
            r["model"] for r in self.store.query(
                "SELECT DISTINCT model FROM attribution_credits WHERE "
                "toDate(converted_at) >= {start:Date} AND toDate(converted_at) < {end:Date}",
                p,
            )
        ]

    def credit_members(self, conversions: Sequence[str]) -> set[tuple[dt.date, str, str]]:
        """(day, channel, campaign id) of every stored credit version of ``conversions``:
        where a new version may have added credit, and where an older one may leave some."""
        rows = self._chunked(  # (its chunk parameter is named accounts: ids here)
            "SELECT DISTINCT toDate(converted_at) AS day, channel, campaign_id "
            "FROM attribution_credits WHERE conversion_id IN {accounts:Array(String)}",
            conversions,
        )
        return {(r["day"], r["channel"], r["campaign_id"]) for r in rows}

    def _mrr(self, p: dict[str, Any]) -> tuple[tuple[Decimal, int], list[MrrDay]]:
        days = [
            MrrDay(
                r["day"], _dec(r["new"]), _dec(r["expansion"]), _dec(r["contraction"]),
                _dec(r["churn"]), _dec(r["reactivation"]), int(r["paying_delta"]),
                int(r["new_logos"]), int(r["churned_logos"]),
            )
            for r in self.store.query(
                "SELECT toDate(occurred_at) AS day, "
                "sumIf(mrr_after - mrr_before, kind = 'new') AS new, "
                "sumIf(mrr_after - mrr_before, kind = 'expansion') AS expansion, "
                "sumIf(mrr_after - mrr_before, kind = 'contraction') AS contraction, "
                "sumIf(mrr_after - mrr_before, kind = 'churn') AS churn, "
                "sumIf(mrr_after - mrr_before, kind = 'reactivation') AS reactivation, "
                "sum(paying_delta) AS paying_delta, countIf(kind = 'new') AS new_logos, "
                "countIf(kind = 'churn') AS churned_logos "
                "FROM kpi_mrr_movements FINAL "
                "WHERE toDate(occurred_at) >= {start:Date} AND toDate(occurred_at) < {end:Date} "
                "GROUP BY day",
                p,
            )
        ]
        opening = self.store.query(
            "SELECT sum(mrr_after - mrr_before) AS mrr, sum(paying_delta) AS paying "
            "FROM kpi_mrr_movements FINAL WHERE toDate(occurred_at) < {start:Date}",
            p,
        )
        first = opening[0] if opening else {"mrr": None, "paying": None}
        return (_dec(first["mrr"]), int(first["paying"] or 0)), days

    def _budgets(self, p: dict[str, Any]) -> list[BudgetRow]:
        members = f" AND {_MEMBER_ROWS}" if "channels" in p else ""
        return [
            BudgetRow(r["month"], r["channel"], r["campaign_id"], _dec(r["amount"]))
            for r in self.store.query(
                "SELECT month, channel, campaign_id, amount FROM budgets FINAL "  # noqa: S608 - constant fragments
                f"WHERE month >= {{start:Date}} AND month < {{end:Date}}{members}",
                p,
            )
        ]

    def _martech(self, p: dict[str, Any]) -> list[MartechRow]:
        # Every month overlapping [start, end): a range starting mid-month still needs
        # that month's cost (spread over its days).
        return [
            MartechRow(r["month"], r["vendor"], r["category"], _dec(r["amount"]))
            for r in self.store.query(
                "SELECT month, vendor, category, sum(amount) AS amount FROM martech_costs FINAL "
                "WHERE month >= toStartOfMonth({start:Date}) AND month < {end:Date} "
                "GROUP BY month, vendor, category",
                p,
            )
        ]

    def _accounts(self, p: dict[str, Any]) -> AccountFacts:
        """Per-account MRR before ``start``, movements in ``[start, end)`` and the profiles
        in force by ``end`` (pulse_kpi.domain.segments)."""
        opening = self.store.query(
            "SELECT account_id, sum(mrr_after - mrr_before) AS mrr FROM kpi_mrr_movements "
            "FINAL WHERE toDate(occurred_at) < {start:Date} GROUP BY account_id "
            "HAVING mrr != 0",
            p,
        )
        moves = self.store.query(
            "SELECT account_id, toDate(occurred_at) AS day, kind, "
            "mrr_after - mrr_before AS delta, paying_delta FROM kpi_mrr_movements FINAL "
            "WHERE toDate(occurred_at) >= {start:Date} AND toDate(occurred_at) < {end:Date} "
            "AND kind != 'none' ORDER BY account_id, occurred_at, event_id",
            p,
        )
        return AccountFacts(
            p["start"], p["end"],
            opening={r["account_id"]: _dec(r["mrr"]) for r in opening},
            moves=[AccountMove(r["account_id"], r["day"], r["kind"], _dec(r["delta"]),
                               int(r["paying_delta"])) for r in moves],
            profiles=self.account_profiles(before=p["end"]),
        )

    def account_profiles(
        self, before: dt.date | None = None, first_touch: bool = False
    ) -> list[ProfileRow]:
        """Stored profiles (those effective before ``before`` when given), each account's
        in the order they hold: effective_from, then ingestion (a later row of the same
        day is a correction). ``first_touch``: an absent acquisition_channel is the
        account's first-touch channel (None without touchpoints)."""
        profiles = (
            "SELECT event_id, account_id, effective_from, plan, segment, industry, region, "
            "employee_band, acquisition_channel, ingested_at FROM account_profiles FINAL "
            "WHERE effective_from < {before:Date}"
        )
        params = {"before": before or dt.date(2149, 6, 6)}  # default: Date's last day
        if not first_touch:
            rows = self.store.query(
                profiles + " ORDER BY account_id, effective_from, ingested_at, event_id",
                params,
            )
        else:
            rows = self.store.query(
                "SELECT p.account_id AS account_id, p.effective_from AS effective_from, "  # noqa: S608 - constant fragments
                "p.plan AS plan, p.segment AS segment, p.industry AS industry, "
                "p.region AS region, p.employee_band AS employee_band, "
                "coalesce(p.acquisition_channel, nullIf(t.channel, '')) AS acquisition_channel "
                f"FROM ({profiles}) AS p LEFT JOIN (SELECT account_id, "
                "argMin(channel, (occurred_at, event_id)) AS channel FROM touchpoints FINAL "
                "WHERE account_id IN (SELECT account_id FROM account_profiles) "
                "GROUP BY account_id) AS t ON p.account_id = t.account_id "
                "ORDER BY p.account_id, p.effective_from, p.ingested_at, p.event_id",
                params,
            )
        return [
            ProfileRow(r["account_id"], r["effective_from"], r["plan"], r["segment"],
                       r["industry"], r["region"], r["employee_band"],
                       r["acquisition_channel"] or None)
            for r in rows
        ]

    def _deliverability(self, p: dict[str, Any]) -> list[DeliverabilityRow]:
        return [
            DeliverabilityRow(r["day"], r["sending_domain"], r["campaign_id"],
                              *(int(r[c]) for c in _DELIVERY_COUNTS))
            for r in self.store.query(_DELIVERABILITY_SQL, p)
        ]

    def deliverability_rows(self, start: dt.date, end: dt.date) -> list[DeliverabilityRow]:
        """Delivery counts of the days ``[start, end)`` per day × domain × ESP campaign
        (``pulse kpi deliverability`` sums them over any range)."""
        return self._deliverability({"start": start, "end": end})

    # ------------------------------------------------------------------ product usage
    def usage_rows(
        self, start: dt.date, end: dt.date, features: Sequence[str] | None = None,
    ) -> list[UsageRow]:
        """Usage per day, account and feature of the days ``[start, end)`` (re-sent rows
        counted once, distinct rows of a key summed); only ``features`` when given."""
        where = "day >= {start:Date} AND day < {end:Date}"
        params: dict[str, Any] = {"start": start, "end": end}
        if features:
            where += " AND feature IN {features:Array(String)}"
            params["features"] = list(features)
        return [
            UsageRow(r["day"], r["account_id"], r["feature"], int(r["n"]))
            for r in self.store.query(
                "SELECT day, account_id, feature, sum(count) AS n FROM product_usage FINAL "  # noqa: S608 - fixed fragments, values are parameters
                f"WHERE {where} GROUP BY day, account_id, feature",
                params,
            )
        ]

    def usage_ledger(self, start: dt.date, end: dt.date) -> UsageLedger:
        return UsageLedger(self.usage_rows(start, end))

    def usage_span(self, feature: str | None = None) -> tuple[dt.date, dt.date] | None:
        """First and last day with usage (of ``feature`` when given); None without any."""
        where, params = ("feature = {feature:String}", {"feature": feature}) if feature else (
            "1", {})
        rows = self.store.query(
            f"SELECT min(day) AS first, max(day) AS last, count() AS n FROM product_usage "  # noqa: S608 - fixed fragments, values are parameters
            f"WHERE {where}",
            params,
        )
        if not rows or not int(rows[0]["n"]):
            return None
        return rows[0]["first"], rows[0]["last"]

    def mrr_changes(
        self, end: dt.date, used_in: tuple[dt.date, dt.date] | None = None
    ) -> list[MrrChange]:
        """Every account's MRR changes before the day ``end`` (from the MRR movements); with
        ``used_in``, only of the accounts with product usage on those days ``[start, end)``
        (the only ones the usage KPIs look up: reading every account's history for each
        subscription batch cost the KPI service a tenth of its time at 10k events/s)."""
        where, params = "toDate(occurred_at) < {end:Date}", {"end": end}
        if used_in is not None:
            where += (" AND account_id IN (SELECT account_id FROM product_usage "
                      "WHERE day >= {used_from:Date} AND day < {used_to:Date})")
            params |= {"used_from": used_in[0], "used_to": used_in[1]}
        return [
            MrrChange(r["account_id"], r["occurred_at"], _dec(r["mrr_after"]))
            for r in self.store.query(
                "SELECT account_id, occurred_at, mrr_after FROM kpi_mrr_movements FINAL "  # noqa: S608 - fixed fragments, values are parameters
                f"WHERE {where}",
                params,
            )
        ]

    def usage_facts(
        self, start: dt.date, end: dt.date
    ) -> tuple[list[UsageRow], list[MrrChange], dt.date | None]:
        span = self.usage_span()
        if span is None:  # no usage ever: no usage KPIs (pulse_kpi.domain.usage.usage_values)
            return [], [], None
        return self.usage_rows(start, end), self.mrr_changes(end, (start, end)), span[0]

    # ------------------------------------------------------------------ customer experience
    def feedback_rows(self, start: dt.date, end: dt.date,
                      survey: str | None = None) -> list[FeedbackRow]:
        """Survey answers given on the days ``[start, end)`` (of ``survey`` when given)."""
        where = " AND survey = {survey:String}" if survey is not None else ""
        return [
            FeedbackRow(r["account_id"], r["survey"], int(r["score"]), r["responded_at"])
            for r in self.store.query(
                "SELECT account_id, survey, score, responded_at FROM feedback_responses FINAL "  # noqa: S608 - fixed fragments, values are parameters
                "WHERE toDate(responded_at) >= {start:Date} AND toDate(responded_at) < {end:Date}"
                + where + " ORDER BY responded_at, account_id",
                {"start": start, "end": end, "survey": survey or ""},
            )
        ]

    def ticket_rows(self, start: dt.date, end: dt.date) -> list[TicketRow]:
        """Latest states of the tickets created or resolved on the days ``[start, end)``."""
        return [
            TicketRow(r["ticket_id"], r["account_id"], r["created_at"], r["first_response_at"],
                      r["resolved_at"], r["status"], r["channel"])
            for r in self.store.query(
                "SELECT ticket_id, account_id, created_at, first_response_at, resolved_at, "
                "status, channel FROM support_tickets FINAL WHERE (toDate(created_at) >= "
                "{start:Date} AND toDate(created_at) < {end:Date}) OR (resolved_at IS NOT NULL "
                "AND toDate(resolved_at) >= {start:Date} AND toDate(resolved_at) < {end:Date}) "
                "ORDER BY created_at, ticket_id",
                {"start": start, "end": end},
            )
        ]

    def ticket_days(self, ticket_ids: Sequence[str]) -> set[dt.date]:
        """Creation and resolution days of every stored state (old ones too, not FINAL)
        of the tickets: the days whose KPIs a new state of them may change."""
        if not ticket_ids:
            return set()
        rows = self.store.query(
            "SELECT DISTINCT toDate(created_at) AS created, toDate(resolved_at) AS resolved "
            "FROM support_tickets WHERE ticket_id IN {ids:Array(String)}",
            {"ids": list(ticket_ids)},
        )
        days = {r["created"] for r in rows}
        return days | {r["resolved"] for r in rows if r["resolved"] is not None}

    def has_experience_data(self) -> bool:
        """Whether any survey answer or ticket is stored."""
        return bool(self.store.query_value(
            "SELECT (SELECT count() FROM feedback_responses) + "
            "(SELECT count() FROM support_tickets)"))

    def experience_span(self, tickets: bool = False) -> tuple[dt.date, dt.date] | None:
        """First and last day with a survey answer (``tickets``: a ticket created); None
        without any."""
        sql = ("SELECT min(toDate(created_at)) AS first, max(toDate(created_at)) AS last, "
               "count() AS n FROM support_tickets" if tickets else
               "SELECT min(toDate(responded_at)) AS first, max(toDate(responded_at)) AS last, "
               "count() AS n FROM feedback_responses")
        row = self.store.query(sql)[0]
        return (row["first"], row["last"]) if int(row["n"]) else None

    def experience_facts(
        self, start: dt.date, end: dt.date
    ) -> tuple[list[FeedbackRow], list[TicketRow], list[MrrChange]]:
        feedback, tickets = self.feedback_rows(start, end), self.ticket_rows(start, end)
        # Without answers or tickets there are no experience KPIs (experience_values), so
        # every account's MRR history is not read.
        changes = self.mrr_changes(end) if feedback or tickets else []
        return feedback, tickets, changes

    def nps_answers(self, end: dt.datetime) -> list[NpsAnswer]:
        """Every NPS answer given before ``end`` (for NPS of churned vs retained)."""
        return [
            NpsAnswer(r["account_id"], int(r["score"]), r["responded_at"])
            for r in self.store.query(
                "SELECT account_id, score, responded_at FROM feedback_responses FINAL "
                "WHERE survey = 'nps' AND responded_at < {end:DateTime64(3, 'UTC')}",
                {"end": end},
            )
        ]

    def mrr_points(self, end: dt.datetime) -> list[MrrPoint]:
        """Every account's MRR changes before ``end`` (from the MRR movements)."""
        return [
            MrrPoint(r["account_id"], r["occurred_at"], _dec(r["mrr_after"]))
            for r in self.store.query(
                "SELECT account_id, occurred_at, mrr_after FROM kpi_mrr_movements FINAL "
                "WHERE occurred_at < {end:DateTime64(3, 'UTC')}",
                {"end": end},
            )
        ]

    def martech_breakdown(
        self, start: dt.date, end: dt.date, by: str,
    ) -> list[dict[str, Any]]:
        """Tool cost per month and ``by`` (``category`` or ``vendor``) for the months from
        ``start`` to before ``end`` (month starts), for ``pulse kpi martech``."""
        if by not in ("category", "vendor"):
            raise ValueError(f"unknown breakdown {by!r}; one of category, vendor")
        return self.store.query(
            f"SELECT month, {by} AS member, sum(amount) AS amount "  # noqa: S608 — by is checked
            "FROM martech_costs FINAL WHERE month >= {start:Date} AND month < {end:Date} "
            "GROUP BY month, member ORDER BY month, member",
            {"start": start, "end": end},
        )

    def _funnel(self, p: dict[str, Any]) -> list[AccountStages]:
        stage_cols = ", ".join(
            f"minIfOrNull(occurred_at, stage = '{s}') AS `{s}`" for s in STAGES
        )
        return [
            AccountStages(
                r["account_id"], {s: r[s] for s in STAGES if r[s] is not None}
            )
            for r in self.store.query(
                f"SELECT account_id, {stage_cols} FROM pipeline_events FINAL "  # noqa: S608 - constant stage names
                "WHERE account_id IN (SELECT account_id FROM pipeline_events "
                "WHERE toDate(occurred_at) >= {start:Date} AND toDate(occurred_at) < {end:Date}) "
                "GROUP BY account_id",
                p,
            )
        ]

    def _trials(self, p: dict[str, Any]) -> list[AccountTrial]:
        return [
            AccountTrial(r["account_id"], r["started_at"], r["paid_at"],
                         r["channel"] or NO_CHANNEL)
            for r in self.store.query(_TRIALS_SQL, p)
        ]

    # ------------------------------------------------------------------ kpi_values
    def kpi_values(
        self,
        grain: Grain | None = None,
        start: dt.date | None = None,
        end: dt.date | None = None,
        dimension: str | None = None,
        kpis: Sequence[str] | None = None,
    ) -> list[dict[str, Any]]:
        """Latest KPI rows, filtered; ``[start, end)`` on ``period_start``."""
        where = ["1"]
        params: dict[str, Any] = {}
        if grain is not None:
            where.append("grain = {grain:String}")
            params["grain"] = str(grain)
        if start is not None:
            where.append("period_start >= {start:Date}")
            params["start"] = start
        if end is not None:
            where.append("period_start < {end:Date}")
            params["end"] = end
        if dimension is not None:
            where.append("dimension = {dimension:String}")
            params["dimension"] = dimension
        if kpis:
            where.append("kpi IN {kpis:Array(String)}")
            params["kpis"] = list(kpis)
        columns = "kpi, grain, period, period_start, dimension, dimension_value, value, unit"
        order = "kpi, grain, dimension, dimension_value, period_start"
        sql = f"SELECT {columns}, computed_at FROM kpi_values FINAL WHERE {' AND '.join(where)} ORDER BY {order}"  # noqa: S608 - fixed fragments, values are parameters
        return self.store.query(sql, params)

    def kpi_values_for_periods(
        self, periods: Sequence[tuple[Grain, dt.date]]
    ) -> list[dict[str, Any]]:
        if not periods:
            return []
        return self.store.query(
            "SELECT kpi, grain, period, period_start, dimension, dimension_value, value, unit "
            "FROM kpi_values FINAL "
            "WHERE (grain, period_start) IN "
            "arrayZip({grains:Array(String)}, {starts:Array(Date)})",
            {"grains": [str(g) for g, _ in periods], "starts": [s for _, s in periods]},
        )

    def subscription_accounts(self) -> list[str]:
        """Every account with a subscription event (offline recomputation of MRR)."""
        rows = self.store.query("SELECT DISTINCT account_id FROM subscriptions")
        return [r["account_id"] for r in rows]

    # ------------------------------------------------------------------ cohorts
    def cohort_ledger(
        self, first_month: dt.date | None = None, last_month: dt.date | None = None
    ) -> list[LedgerEvent]:
        """Every subscription event of the accounts whose first paid event (MRR > 0) is in
        the months ``[first_month, last_month]`` (first days; None = open)."""
        having = ["1"]
        params: dict[str, Any] = {}
        if first_month is not None:
            having.append("toStartOfMonth(min(occurred_at)) >= {first:Date}")
            params["first"] = first_month
        if last_month is not None:
            having.append("toStartOfMonth(min(occurred_at)) <= {last:Date}")
            params["last"] = last_month
        rows = self.store.query(
            "SELECT event_id, account_id, occurred_at, mrr, plan FROM subscriptions FINAL "  # noqa: S608 - fixed fragments, values are parameters
            "WHERE account_id IN (SELECT account_id FROM subscriptions FINAL WHERE mrr > 0 "
            f"GROUP BY account_id HAVING {' AND '.join(having)})",
            params,
        )
        return [
            LedgerEvent(r["event_id"], r["account_id"], r["occurred_at"], _dec(r["mrr"]),
                        r["plan"])
            for r in rows
        ]

    def first_touch_channels(self, accounts: Sequence[str]) -> dict[str, str]:
        """Channel of each account's first touchpoint (accounts with none are absent)."""
        rows = self._chunked(
            "SELECT account_id, argMin(channel, (occurred_at, event_id)) AS channel "
            "FROM touchpoints FINAL WHERE account_id IN {accounts:Array(String)} "
            "GROUP BY account_id",
            accounts,
        )
        return {r["account_id"]: r["channel"] for r in rows}

    def monthly_spend(self, start: dt.date, end: dt.date) -> dict[dt.date, Decimal]:
        """Total spend per month (first day) of the days ``[start, end)``."""
        rows = self.store.query(
            "SELECT toStartOfMonth(date) AS month, sum(amount) AS amount FROM spend FINAL "
            "WHERE date >= {start:Date} AND date < {end:Date} GROUP BY month",
            {"start": start, "end": end},
        )
        return {r["month"]: _dec(r["amount"]) for r in rows}
