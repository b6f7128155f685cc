"""Privacy erasure and retention.

**Erasure** (``pulse privacy erase``): every row of one subject, an account (its business
id) or a contact (its salted hash, :func:`pulse_shared.privacy.contact_hash`), is removed
from every table holding it: the MergeTree tables of the database with an ``account_id``
or ``contact_id`` column, found in ``system.columns`` (so a table added later is covered
without touching this module). Rows go through ``ALTER TABLE … DELETE`` with
``mutations_sync = 2``: the statement returns once the parts are rewritten, so every read
afterwards, ``FINAL`` or not, sees no row, and the data is gone from disk too (a
lightweight ``DELETE`` only masks rows until the next merge). ``touchpoints_daily``
(aggregate states, no subject column) is rebuilt for the days the erased touches were on.

The erasure is recorded in ``erasures`` first (the tombstone) and completed with the
per-table counts (the audit log). Every writer of Pulse's tables filters rows of erased
subjects out before inserting (:class:`ErasureFilter`, used by
:class:`pulse_shared.writer.RowWriter`), so a ``pulse replay`` of a topic or a late
redelivery cannot bring them back.

**Retention** (:class:`RetentionSettings`, ``PULSE_RETENTION_<TABLE>_DAYS``): a ClickHouse
``TTL`` per table, applied by :func:`apply_retention` after the numbered migrations
(:func:`pulse_shared.schema.migrations.migrate`). Off by default.
"""

from __future__ import annotations

import datetime as dt
import re
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from pulse_shared.events import Erasure, ErasureSubjectKind
from pulse_shared.logging import get_logger
from pulse_shared.schema.cluster import LOCAL_SUFFIX, local_table, mutation_table
from pulse_shared.store.base import Store, StoreError

log = get_logger(__name__)

ERASURES_TABLE = "erasures"
#: Columns naming a subject, by subject kind.
SUBJECT_COLUMNS: dict[ErasureSubjectKind, str] = {
    ErasureSubjectKind.ACCOUNT: "account_id",
    ErasureSubjectKind.CONTACT: "contact_id",
}
#: Tables never erased from: the audit log itself and the migration bookkeeping.
_NOT_ERASED = frozenset({ERASURES_TABLE, "pulse_migrations"})
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
#: The business time of a table's rows: the days whose KPIs an erasure changes.
TIME_COLUMNS: dict[str, str] = {
    "touchpoints": "occurred_at",
    "subscriptions": "occurred_at",
    "pipeline_events": "occurred_at",
    "conversions": "converted_at",
    "attribution_credits": "converted_at",
    "kpi_mrr_movements": "occurred_at",
    "product_usage": "day",
    "feedback_responses": "responded_at",
    "support_tickets": "created_at",
}


def _mutated(store: Store, table: str) -> str:
    """Where a mutation of ``table`` runs: the table, or its shards' local tables on a
    cluster (a Distributed table holds no rows)."""
    _quoted(table)  # checked as an identifier
    return mutation_table(table, store.cluster)


def _quoted(table: str) -> str:
    """A table name from ``system.tables`` as an SQL identifier (names are checked, not
    escaped: Pulse's tables are plain identifiers)."""
    if not _IDENTIFIER.match(table):
        raise ValueError(f"unexpected table name {table!r}")
    return f"`{table}`"


# -- Subjects ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Subject:
    """Who is erased: an account id as is, a contact as its salted hash."""

    kind: ErasureSubjectKind
    value: str

    @property
    def column(self) -> str:
        return SUBJECT_COLUMNS[self.kind]


def account_subject(account_id: str) -> Subject:
    account_id = account_id.strip()
    if not account_id:
        raise ValueError("--account-id must not be empty")
    return Subject(ErasureSubjectKind.ACCOUNT, account_id)


def contact_subject(identifier: str, salt: str) -> Subject:
    """The contact's ``contact_id``: the identifier hashed the way ingest hashes it."""
    from pulse_shared.privacy import contact_hash, is_hashed

    identifier = identifier.strip()
    if not identifier:
        raise ValueError("--contact must not be empty")
    value = identifier if is_hashed(identifier) else contact_hash(identifier, salt)
    return Subject(ErasureSubjectKind.CONTACT, value)


# -- Erasure -------------------------------------------------------------------------------


@dataclass(frozen=True)
class SubjectTable:
    table: str
    column: str
    replacing: bool  # ReplacingMergeTree family: counted with FINAL (logical rows)


def subject_tables(store: Store, kind: ErasureSubjectKind) -> list[SubjectTable]:
    """Every MergeTree table of the current database with the subject's column."""
    rows = store.query(
        "SELECT c.table AS table, t.engine AS engine FROM system.columns AS c "
        "INNER JOIN system.tables AS t ON t.database = c.database AND t.name = c.table "
        "WHERE c.database = currentDatabase() AND c.name = {column:String} "
        "AND t.engine LIKE '%MergeTree' ORDER BY c.table",
        {"column": SUBJECT_COLUMNS[kind]},
    )
    found = [
        SubjectTable(str(r["table"]), SUBJECT_COLUMNS[kind], "Replacing" in str(r["engine"]))
        for r in rows
    ]
    if store.cluster:
        # On a cluster the MergeTree tables are the shards' ``<name>_local`` replicas:
        # count through the Distributed ``<name>`` (every shard), mutate the locals
        # (:func:`_delete_pass`).
        found = [
            SubjectTable(t.table.removesuffix(LOCAL_SUFFIX), t.column, t.replacing)
            for t in found if t.table.endswith(LOCAL_SUFFIX)
        ]
    return [t for t in found if t.table not in _NOT_ERASED]


@dataclass
class ErasureResult:
    erasure_id: str
    subject: Subject
    actor: str
    requested_at: dt.datetime
    completed_at: dt.datetime | None = None
    #: table → rows removed (logical rows: duplicates not yet merged count once).
    row_counts: dict[str, int] = field(default_factory=dict)
    #: Aggregate tables rebuilt for the affected days → aggregate rows replaced.
    rebuilt: dict[str, int] = field(default_factory=dict)
    #: Business days ``[first, end)`` whose derived values (KPIs) included the subject.
    first_day: dt.date | None = None
    end_day: dt.date | None = None

    def event(self) -> Erasure:
        return Erasure(
            erasure_id=self.erasure_id, subject_kind=self.subject.kind,
            subject=self.subject.value, requested_at=self.requested_at,
        )


ERASURES_COLUMNS: tuple[str, ...] = (
    "erasure_id", "subject_kind", "subject", "actor", "requested_at", "completed_at",
    "row_counts", "updated_at",
)


def _record(store: Store, result: ErasureResult, now: dt.datetime) -> None:
    store.insert(
        ERASURES_TABLE,
        [{
            "erasure_id": result.erasure_id,
            "subject_kind": str(result.subject.kind),
            "subject": result.subject.value,
            "actor": result.actor,
            "requested_at": result.requested_at,
            "completed_at": result.completed_at,
            "row_counts": result.row_counts,
            "updated_at": now,
        }],
        list(ERASURES_COLUMNS),
    )


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def erase(
    store: Store, subject: Subject, actor: str,
    clock: Callable[[], dt.datetime] = _utc_now, settle_s: float = 0.0,
) -> ErasureResult:
    """Remove every row of ``subject`` from every table; record the tombstone first (so
    writers stop storing the subject while the deletes run) and the counts last.

    ``settle_s``: when other processes write to the store (a server), how long they may
    still use their previous list of erased subjects (:attr:`ErasureSettings.refresh_s`);
    the deletes run again after it, removing what a batch in flight wrote meanwhile.
    """
    result = ErasureResult(uuid.uuid4().hex, subject, actor, clock())
    _record(store, result, clock())
    erasure_filter(store).invalidate()
    days: list[dt.date] = []
    _delete_pass(store, subject, result.row_counts, days)
    if settle_s > 0:
        time.sleep(settle_s)
        _delete_pass(store, subject, result.row_counts, days)
    if days:
        result.first_day, last = min(days), max(days)
        result.end_day = last + dt.timedelta(days=1)
        if result.row_counts.get("touchpoints"):
            result.rebuilt["touchpoints_daily"] = rebuild_touchpoints_daily(
                store, result.first_day, result.end_day
            )
    result.completed_at = clock()
    _record(store, result, clock())
    log.info("subject_erased", erasure_id=result.erasure_id, kind=str(subject.kind),
             actor=actor, row_counts=result.row_counts, rebuilt=result.rebuilt)
    return result


def _delete_pass(
    store: Store, subject: Subject, counts: dict[str, int], days: list[dt.date]
) -> None:
    """Count and delete the subject's rows of every table (adding to ``counts`` and to
    the business ``days`` they were on)."""
    params = {"subject": subject.value}
    for target in subject_tables(store, subject.kind):
        table = _quoted(target.table)
        where = f"{target.column} = {{subject:String}}"
        source = f"{table} FINAL" if target.replacing else table
        time_column = TIME_COLUMNS.get(target.table)
        span = (f", min(toDate({time_column})) AS first, max(toDate({time_column})) AS last"
                if time_column else "")
        found = store.query(
            f"SELECT count() AS n{span} FROM {source} WHERE {where}", params  # noqa: S608
        )[0]
        rows = int(found["n"])
        counts[target.table] = counts.get(target.table, 0) + rows
        if not rows:
            continue
        if time_column:
            days += [found["first"], found["last"]]
        store.command(
            f"ALTER TABLE {_mutated(store, target.table)} DELETE WHERE {where} "
            "SETTINGS mutations_sync = 2", params,
        )


def rebuild_touchpoints_daily(store: Store, first: dt.date, end: dt.date) -> int:
    """Recompute the daily touch aggregates of ``[first, end)`` from ``touchpoints``;
    returns the number of aggregate rows replaced. Touches inserted meanwhile are safe:
    their states hold the same uniqExact sets as the rebuilt rows (merging is a union)."""
    params = {"first": first, "end": end}
    window = "day >= {first:Date} AND day < {end:Date}"
    replaced = int(store.query_value(
        f"SELECT count() FROM (SELECT day, channel, campaign_id FROM touchpoints_daily "  # noqa: S608
        f"WHERE {window} GROUP BY day, channel, campaign_id)", params) or 0)
    store.command(
        f"ALTER TABLE {_mutated(store, 'touchpoints_daily')} DELETE WHERE {window} "
        "SETTINGS mutations_sync = 2",
        params,
    )
    store.command(
        "INSERT INTO touchpoints_daily SELECT toDate(occurred_at) AS day, channel, "
        "campaign_id, uniqExactState(event_id), uniqExactState(account_id) "
        "FROM touchpoints FINAL WHERE toDate(occurred_at) >= {first:Date} "
        "AND toDate(occurred_at) < {end:Date} GROUP BY day, channel, campaign_id",
        params,
    )
    return replaced


def erasure_log(store: Store, limit: int = 100) -> list[dict[str, Any]]:
    """The latest erasures, newest first (the audit log)."""
    return store.query(
        f"SELECT erasure_id, subject_kind, subject, actor, requested_at, completed_at, "  # noqa: S608
        f"row_counts FROM {ERASURES_TABLE} FINAL ORDER BY requested_at DESC "
        "LIMIT {limit:UInt32}",
        {"limit": limit},
    )


# -- The write-path filter ----------------------------------------------------------------


@dataclass(frozen=True)
class ErasedSubjects:
    accounts: frozenset[str] = frozenset()
    contacts: frozenset[str] = frozenset()

    def __bool__(self) -> bool:
        return bool(self.accounts or self.contacts)

    def holds(self, row: Mapping[str, Any]) -> bool:
        return (row.get("account_id") in self.accounts
                or row.get("contact_id") in self.contacts)


class ErasureSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PULSE_ERASURE_", extra="ignore")

    refresh_s: float = Field(
        default=5.0, ge=0,
        description="How often writers re-read the erased subjects (seconds). An erasure "
        "reaches a running service within this time; `pulse privacy erase` waits this "
        "long and deletes again, so rows written meanwhile are removed too.",
    )


class ErasureFilter:
    """The erased subjects of one store, re-read at most every ``refresh_s`` seconds."""

    def __init__(
        self, store: Store, refresh_s: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.refresh_s = ErasureSettings().refresh_s if refresh_s is None else refresh_s
        self.clock = clock
        self._subjects = ErasedSubjects()
        self._read_at: float | None = None
        self._lock = threading.Lock()

    def invalidate(self) -> None:
        """Read the erasures again on next use (an erasure happened)."""
        self._read_at = None

    @property
    def stale(self) -> bool:
        return self._read_at is None or self.clock() - self._read_at >= self.refresh_s

    def current(self) -> ErasedSubjects:
        if self.stale:
            with self._lock:
                if self.stale:
                    self._subjects = self._read()
                    self._read_at = self.clock()
        return self._subjects

    def _read(self) -> ErasedSubjects:
        try:
            rows = self.store.query(
                f"SELECT subject_kind, groupUniqArray(subject) AS subjects "  # noqa: S608
                f"FROM {ERASURES_TABLE} GROUP BY subject_kind"
            )
        except StoreError as exc:
            if exc.name == "UNKNOWN_TABLE" or "UNKNOWN_TABLE" in str(exc):
                return ErasedSubjects()  # not migrated yet: nothing was ever erased
            raise
        by_kind = {str(r["subject_kind"]): frozenset(r["subjects"]) for r in rows}
        return ErasedSubjects(
            accounts=by_kind.get(ErasureSubjectKind.ACCOUNT.value, frozenset()),
            contacts=by_kind.get(ErasureSubjectKind.CONTACT.value, frozenset()),
        )

    @staticmethod
    def applies_to(columns: Sequence[str]) -> bool:
        """Whether rows of these columns can name a subject."""
        return "account_id" in columns or "contact_id" in columns

    def keep(self, rows: Sequence[Mapping[str, Any]], columns: Sequence[str]
             ) -> Sequence[Mapping[str, Any]]:
        """``rows`` without those of erased subjects (the same sequence if none is)."""
        if not self.applies_to(columns):
            return rows
        erased = self.current()
        if not erased:
            return rows
        kept = [row for row in rows if not erased.holds(row)]
        if len(kept) != len(rows):
            log.info("erased_rows_dropped", rows=len(rows) - len(kept))
        return kept


_FILTERS: weakref.WeakKeyDictionary[Store, ErasureFilter] = weakref.WeakKeyDictionary()
_FILTERS_LOCK = threading.Lock()


def erasure_filter(store: Store) -> ErasureFilter:
    """The one filter of ``store`` (shared by its writers, so one erasure invalidates all)."""
    with _FILTERS_LOCK:
        found = _FILTERS.get(store)
        if found is None:
            found = _FILTERS[store] = ErasureFilter(store)
        return found


# -- Retention -----------------------------------------------------------------------------


class RetentionSettings(BaseSettings):
    """Days each table keeps its rows (``PULSE_RETENTION_<TABLE>_DAYS``); unset = forever.

    Applied as a ClickHouse ``TTL`` on the table's business time by :func:`apply_retention`
    (run by every ``migrate``): expired rows are removed by background merges.
    """

    model_config = SettingsConfigDict(env_prefix="PULSE_RETENTION_", extra="ignore")

    touchpoints_days: int | None = Field(
        default=None, ge=1, description="Touchpoints (and their daily aggregates), by "
        "occurred_at. Suggested: 1095 (three years of journeys).")
    subscriptions_days: int | None = Field(
        default=None, ge=1, description="Subscription events, by occurred_at; MRR history "
        "older than this is lost.")
    pipeline_events_days: int | None = Field(
        default=None, ge=1, description="Pipeline stage changes, by occurred_at.")
    spend_days: int | None = Field(default=None, ge=1, description="Ad spend, by date.")
    budgets_days: int | None = Field(default=None, ge=1, description="Budgets, by month.")
    martech_costs_days: int | None = Field(
        default=None, ge=1, description="Martech tool costs, by month.")
    account_profiles_days: int | None = Field(
        default=None, ge=1, description="Account profiles, by effective_from (an account's "
        "profile older than this is lost: its events count as unknown).")
    product_usage_days: int | None = Field(
        default=None, ge=1, description="Product usage per account and feature, by day.")
    email_deliverability_days: int | None = Field(
        default=None, ge=1, description="E-mail deliverability counts, by day.")
    feedback_responses_days: int | None = Field(
        default=None, ge=1, description="NPS / CSAT survey answers, by responded_at.")
    support_tickets_days: int | None = Field(
        default=None, ge=1, description="Support tickets, by created_at.")
    conversions_days: int | None = Field(
        default=None, ge=1, description="Conversion milestones, by converted_at.")
    attribution_credits_days: int | None = Field(
        default=None, ge=1, description="Attribution credits, by converted_at.")
    kpi_mrr_movements_days: int | None = Field(
        default=None, ge=1, description="MRR movements, by occurred_at.")
    kpi_values_days: int | None = Field(
        default=None, ge=1, description="KPI values, by period_start.")
    alert_events_days: int | None = Field(
        default=None, ge=1, description="Alert notifications, by starts_at.")
    reports_days: int | None = Field(
        default=None, ge=1, description="The record of produced reports, by created_at "
        "(the files themselves are not deleted).")
    erasures_days: int | None = Field(
        default=None, ge=1, description="The erasure audit log, by requested_at. Keep it: "
        "the tombstones stop replays from restoring erased subjects.")


@dataclass(frozen=True)
class RetentionRule:
    table: str
    setting: str  # RetentionSettings field
    time_expression: str  # a Date or DateTime expression of the table's business time


RETENTION_RULES: tuple[RetentionRule, ...] = (
    RetentionRule("touchpoints", "touchpoints_days", "toDateTime(occurred_at)"),
    RetentionRule("touchpoints_daily", "touchpoints_days", "day"),
    RetentionRule("subscriptions", "subscriptions_days", "toDateTime(occurred_at)"),
    RetentionRule("pipeline_events", "pipeline_events_days", "toDateTime(occurred_at)"),
    RetentionRule("spend", "spend_days", "date"),
    RetentionRule("budgets", "budgets_days", "month"),
    RetentionRule("martech_costs", "martech_costs_days", "month"),
    RetentionRule("account_profiles", "account_profiles_days", "effective_from"),
    RetentionRule("product_usage", "product_usage_days", "day"),
    RetentionRule("email_deliverability", "email_deliverability_days", "day"),
    RetentionRule("feedback_responses", "feedback_responses_days", "toDateTime(responded_at)"),
    RetentionRule("support_tickets", "support_tickets_days", "toDateTime(created_at)"),
    RetentionRule("conversions", "conversions_days", "toDateTime(converted_at)"),
    RetentionRule("attribution_credits", "attribution_credits_days",
                  "toDateTime(converted_at)"),
    RetentionRule("kpi_mrr_movements", "kpi_mrr_movements_days", "toDateTime(occurred_at)"),
    RetentionRule("kpi_values", "kpi_values_days", "period_start"),
    RetentionRule("alert_events", "alert_events_days", "toDateTime(starts_at)"),
    RetentionRule("reports", "reports_days", "toDateTime(created_at)"),
    RetentionRule("erasures", "erasures_days", "toDateTime(requested_at)"),
)


def ttl_clause(rule: RetentionRule, days: int) -> str:
    """The TTL as ClickHouse writes it back in ``engine_full``."""
    return f"{rule.time_expression} + toIntervalDay({int(days)})"


def _current_ttl(engine_full: str) -> str | None:
    match = re.search(r"\bTTL (.*?)(?: SETTINGS |$)", engine_full)
    return match.group(1).strip() if match else None


def _physical(store: Store, table: str) -> str:
    """The table holding ``table``'s rows and TTL: itself, or its local table on a
    cluster."""
    return local_table(table) if store.cluster else table


def apply_retention(store: Store, settings: RetentionSettings | None = None) -> dict[str, str]:
    """Make every table's TTL match the settings; returns table → what changed. A table
    whose TTL already matches is left alone (``MODIFY TTL`` rewrites the table's parts)."""
    settings = settings or RetentionSettings()
    rows = store.query(
        "SELECT name, engine_full FROM system.tables WHERE database = currentDatabase() "
        "AND name IN {tables:Array(String)}",
        {"tables": [_physical(store, r.table) for r in RETENTION_RULES]},
    )
    engines = {str(r["name"]).removesuffix(LOCAL_SUFFIX if store.cluster else ""):
               str(r["engine_full"]) for r in rows}
    changed: dict[str, str] = {}
    for rule in RETENTION_RULES:
        if rule.table not in engines:
            continue
        days = getattr(settings, rule.setting)
        current = _current_ttl(engines[rule.table])
        table = _mutated(store, rule.table)
        if days is None:
            if current is not None:
                store.command(f"ALTER TABLE {table} REMOVE TTL")
                changed[rule.table] = "removed"
            continue
        wanted = ttl_clause(rule, days)
        if current != wanted:
            # The value is an int validated by the settings (DDL takes no parameters).
            store.command(f"ALTER TABLE {table} MODIFY TTL {wanted}")
            changed[rule.table] = f"{days} days"
    if changed:
        log.info("retention_applied", tables=changed)
    return changed
