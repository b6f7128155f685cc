"""ClickHouse reads and writes of the attribution service (through :class:`Store`)."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from pulse_attribution.domain.conversions import from_pipeline, from_subscription
from pulse_attribution.domain.model import Conversion, Milestone, Touch
from pulse_shared import topics
from pulse_shared.canonical import canonical_insert
from pulse_shared.columns import model_columns
from pulse_shared.consumers import TableRows
from pulse_shared.credits import latest_credits
from pulse_shared.events import (
    AttributionCredit,
    Channel,
    PipelineEvent,
    Subscription,
    Touchpoint,
)
from pulse_shared.store import Store

# Latest credit versions are read through the shared fragment (pulse_shared.credits), the
# one spelling of "latest version"; values are query parameters.
_LATEST_CREDITS_SQL = (
    "SELECT conversion_id, model, version, touchpoint_event_id, credit FROM "  # noqa: S608
    + latest_credits("conversion_id IN {ids:Array(String)} AND model IN {models:Array(String)}")
    + " ORDER BY conversion_id, model, touchpoint_event_id"
)
_CREDITS_LATEST_SQL = (
    "SELECT * FROM "  # noqa: S608
    + latest_credits("({cid:String} = '' OR conversion_id = {cid:String}) "
                     "AND ({aid:String} = '' OR account_id = {aid:String})")
    + " ORDER BY conversion_id, model, touched_at, touchpoint_event_id"
)

# Insert column lists. touchpoints and attribution_credits store an event model's fields,
# conversions a domain Conversion's, so those come from the model (pulse_shared.columns);
# the model-run tables store computed rows and list theirs. TABLE_COLUMNS pairs each with
# its table (tests/test_storage_columns.py checks them against the DDL).
TOUCHPOINT_COLUMNS = model_columns(Touchpoint)
#: Canonical touchpoint JSON goes straight into ``touchpoints`` (same columns, checked).
TOUCHPOINTS_CANONICAL = canonical_insert(Touchpoint, topics.TOUCHPOINTS.stored_table())
assert TOUCHPOINTS_CANONICAL.column_names == TOUCHPOINT_COLUMNS
CONVERSION_COLUMNS = model_columns(Conversion)
CREDIT_COLUMNS = model_columns(AttributionCredit)
RUN_COLUMNS = (
    "run_id", "model", "milestone", "version", "parameters", "started_at", "finished_at",
    "journeys", "conversions", "channels", "approximate", "total_conversion_value",
)
CHANNEL_RESULT_COLUMNS = (
    "run_id", "model", "milestone", "channel", "removal_effect", "shapley_value", "share",
    "total_conversions", "total_conversion_value", "computed_at",
)
RUNS_TABLE = "attribution_model_runs"
CHANNEL_RESULTS_TABLE = "attribution_channel_results"
CONVERSIONS_TABLE = "conversions"
TABLE_COLUMNS: dict[str, tuple[str, ...]] = {
    topics.TOUCHPOINTS.stored_table(): TOUCHPOINT_COLUMNS,
    CONVERSIONS_TABLE: CONVERSION_COLUMNS,
    topics.CREDITS.stored_table(): CREDIT_COLUMNS,
    RUNS_TABLE: RUN_COLUMNS,
    CHANNEL_RESULTS_TABLE: CHANNEL_RESULT_COLUMNS,
}


def touchpoint_row(event: Touchpoint) -> dict[str, Any]:
    # Attribute reads, not model_dump(): this runs once per touchpoint on the hot path.
    return {c: getattr(event, c) for c in TOUCHPOINT_COLUMNS}


def conversion_row(conversion: Conversion) -> dict[str, Any]:
    return {
        "conversion_id": conversion.conversion_id,
        "account_id": conversion.account_id,
        "milestone": str(conversion.milestone),
        "converted_at": conversion.converted_at,
        "revenue": conversion.revenue,
        "currency": conversion.currency,
    }


# Processors of the attribution consumers (pure: events → rows).
def touchpoint_processor(events: Sequence[Touchpoint]) -> list[TableRows]:
    rows = [touchpoint_row(e) for e in events]
    return [TableRows(topics.TOUCHPOINTS.stored_table(), TOUCHPOINT_COLUMNS, rows)]


def pipeline_conversions(events: Sequence[PipelineEvent]) -> list[Conversion]:
    """The conversions (milestones) among pipeline events."""
    return [c for e in events if (c := from_pipeline(e))]


def subscription_conversions(events: Sequence[Subscription]) -> list[Conversion]:
    """The conversions (new paying customers) among subscription events."""
    return [c for e in events if (c := from_subscription(e))]


def conversion_rows(conversions: Sequence[Conversion]) -> list[TableRows]:
    rows = [conversion_row(c) for c in conversions]
    return [TableRows(CONVERSIONS_TABLE, CONVERSION_COLUMNS, rows)] if rows else []


def pipeline_processor(events: Sequence[PipelineEvent]) -> list[TableRows]:
    return conversion_rows(pipeline_conversions(events))


def subscription_processor(events: Sequence[Subscription]) -> list[TableRows]:
    return conversion_rows(subscription_conversions(events))


def credit_row(credit: AttributionCredit) -> dict[str, Any]:
    # Attribute access: ~3x cheaper than model_dump on 100k-row batches.
    return {c: getattr(credit, c) for c in CREDIT_COLUMNS}


def _conversion(row: dict[str, Any]) -> Conversion:
    return Conversion(
        conversion_id=row["conversion_id"],
        account_id=row["account_id"],
        milestone=Milestone(row["milestone"]),
        converted_at=row["converted_at"],
        revenue=Decimal(row["revenue"]),
        currency=row["currency"],
    )


class AttributionStorage:
    """Synchronous queries; callers run them off the event loop."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def touches(
        self, account_ids: Sequence[str], start: dt.datetime, end: dt.datetime
    ) -> dict[str, list[Touch]]:
        """Touches of all contacts of the accounts in ``[start, end]``, per account."""
        if not account_ids:
            return {}
        rows = self.store.query(
            "SELECT event_id, occurred_at, account_id, contact_id, channel, campaign_id "
            "FROM touchpoints FINAL "
            "WHERE account_id IN {accounts:Array(String)} "
            "AND occurred_at >= {start:DateTime64(6, 'UTC')} "
            "AND occurred_at <= {end:DateTime64(6, 'UTC')} "
            "ORDER BY account_id, occurred_at, event_id",
            {"accounts": list(account_ids), "start": start, "end": end},
        )
        out: dict[str, list[Touch]] = defaultdict(list)
        for row in rows:
            out[row["account_id"]].append(
                Touch(
                    event_id=row["event_id"],
                    occurred_at=row["occurred_at"],
                    channel=Channel(row["channel"]),
                    campaign_id=row["campaign_id"],
                    contact_id=row["contact_id"],
                )
            )
        return dict(out)

    def conversions_of(self, account_ids: Sequence[str]) -> list[Conversion]:
        if not account_ids:
            return []
        rows = self.store.query(
            "SELECT conversion_id, account_id, milestone, converted_at, revenue, currency "
            "FROM conversions FINAL WHERE account_id IN {accounts:Array(String)} "
            "ORDER BY account_id, converted_at, conversion_id",
            {"accounts": list(account_ids)},
        )
        return [_conversion(r) for r in rows]

    def all_conversions(self, milestone: Milestone | None = None) -> list[Conversion]:
        rows = self.store.query(
            "SELECT conversion_id, account_id, milestone, converted_at, revenue, currency "
            "FROM conversions FINAL "
            "WHERE {milestone:String} = '' OR milestone = {milestone:String} "
            "ORDER BY account_id, converted_at, conversion_id",
            {"milestone": str(milestone) if milestone else ""},
        )
        return [_conversion(r) for r in rows]

    def latest_credits(
        self, conversion_ids: Sequence[str], models: Sequence[str]
    ) -> dict[tuple[str, str], tuple[int, list[tuple[str, float]]]]:
        """Per (conversion, model): the latest version and its (touch id, credit) list."""
        if not conversion_ids:
            return {}
        rows = self.store.query(_LATEST_CREDITS_SQL,
                                {"ids": list(conversion_ids), "models": list(models)})
        latest: dict[tuple[str, str], tuple[int, list[tuple[str, float]]]] = {}
        for row in rows:
            key = (row["conversion_id"], row["model"])
            latest.setdefault(key, (int(row["version"]), []))[1].append(
                (row["touchpoint_event_id"], float(row["credit"]))
            )
        return latest

    def credits_latest(
        self, *, conversion_id: str | None = None, account_id: str | None = None
    ) -> list[dict[str, Any]]:
        """Latest-version credit rows (what reports and KPIs should see)."""
        return self.store.query(
            _CREDITS_LATEST_SQL,
            {"cid": conversion_id or "", "aid": account_id or ""},
        )

    def all_touches(self) -> dict[str, list[Touch]]:
        """Every stored touch, per account, in journey order (data-driven runs)."""
        rows = self.store.query(
            "SELECT event_id, occurred_at, account_id, contact_id, channel, campaign_id "
            "FROM touchpoints FINAL ORDER BY account_id, occurred_at, event_id"
        )
        out: dict[str, list[Touch]] = defaultdict(list)
        for row in rows:
            out[row["account_id"]].append(
                Touch(
                    event_id=row["event_id"],
                    occurred_at=row["occurred_at"],
                    channel=Channel(row["channel"]),
                    campaign_id=row["campaign_id"],
                    contact_id=row["contact_id"],
                )
            )
        return dict(out)

    def last_run_version(self, model: str, milestone: Milestone) -> int:
        value = self.store.query_value(
            "SELECT max(version) FROM attribution_model_runs FINAL "
            "WHERE model = {model:String} AND milestone = {milestone:String}",
            {"model": model, "milestone": str(milestone)},
        )
        return int(value or 0)

    def model_runs(self, model: str | None = None) -> list[dict[str, Any]]:
        return self.store.query(
            "SELECT * FROM attribution_model_runs FINAL "
            "WHERE {model:String} = '' OR model = {model:String} "
            "ORDER BY started_at, run_id",
            {"model": model or ""},
        )

    def channel_results(self, run_id: str) -> list[dict[str, Any]]:
        return self.store.query(
            "SELECT * FROM attribution_channel_results FINAL WHERE run_id = {run:String} "
            "ORDER BY channel",
            {"run": run_id},
        )

    def latest_channel_weights(self) -> dict[tuple[str, Milestone], dict[str, float]]:
        """Channel shares of the latest run per (model, milestone)."""
        rows = self.store.query(
            "SELECT model, milestone, channel, share FROM attribution_channel_results FINAL "
            "WHERE run_id IN (SELECT argMax(run_id, version) FROM attribution_model_runs "
            "FINAL GROUP BY model, milestone)"
        )
        out: dict[tuple[str, Milestone], dict[str, float]] = defaultdict(dict)
        for row in rows:
            out[(row["model"], Milestone(row["milestone"]))][row["channel"]] = float(row["share"])
        return dict(out)
