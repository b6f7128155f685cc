"""Every value an event column cannot hold is a validation error naming the field.

The walk below takes every field of every event model, finds the ClickHouse column it lands
in (``system.columns`` of the migrated embedded store, so the real DDL) and checks that the
model's bounds fit the column type — probing the model, not trusting its annotations. A
new field without a bound, or a model nobody mapped to a table, fails here. Then the
extreme values the models accept are written to copies of the real tables and read back.
"""

from __future__ import annotations

import datetime as dt
import re
import sys
import types
import typing
import uuid
from dataclasses import dataclass
from decimal import Decimal
from enum import Enum
from typing import Any

import pytest
from pydantic import AfterValidator, AwareDatetime, BaseModel, ValidationError
from pydantic.fields import FieldInfo

from pulse_shared.events import (
    COUNT_MAX,
    AccountProfile,
    Alert,
    AttributionCredit,
    Budget,
    CampaignAction,
    EmailDeliveryStats,
    Erasure,
    Event,
    FeedbackResponse,
    InRange,
    InWindow,
    KpiSnapshot,
    MartechCost,
    MmmRunCompleted,
    PipelineEvent,
    ProductUsage,
    ReportReady,
    Spend,
    Subscription,
    SupportTicket,
    Touchpoint,
    event_window,
)
from pulse_shared.settings import common_settings
from pulse_shared.store import Store

#: Where each event model is stored, field by field (column = field name unless renamed).
MODEL_TABLES: dict[type[Event], str] = {
    Touchpoint: "touchpoints",
    Spend: "spend",
    Subscription: "subscriptions",
    PipelineEvent: "pipeline_events",
    Budget: "budgets",
    MartechCost: "martech_costs",
    AccountProfile: "account_profiles",
    EmailDeliveryStats: "email_deliverability",
    ProductUsage: "product_usage",
    FeedbackResponse: "feedback_responses",
    SupportTicket: "support_tickets",
    AttributionCredit: "attribution_credits",
    KpiSnapshot: "kpi_values",
    Alert: "alert_events",
    ReportReady: "reports",
    Erasure: "erasures",
    MmmRunCompleted: "mmm_runs",
}
#: Fields stored under another name: a report's paths become one row per format → path.
RENAMED: dict[tuple[type[Event], str], str] = {(ReportReady, "paths"): "path"}
#: Fields that travel on the bus only (they still need bounds). ``complete`` depends on the
#: day it is read, not only on the value, so readers derive it from the period (a stored flag
#: would stay false after the period ends).
NOT_STORED = {(KpiSnapshot, "final"), (KpiSnapshot, "complete"), (KpiSnapshot, "schema_version"),
              # a run's channels are stored one row each in mmm_channel_results
              (MmmRunCompleted, "channels"), (MmmRunCompleted, "schema_version")}
#: Models stored whole as JSON inside a String column (their fields still need bounds).
STORED_AS_JSON = {CampaignAction: "alert_events.actions"}

INT_COLUMNS = {f"{u}Int{b}": ((0, 2**b - 1) if u else (-(2 ** (b - 1)), 2 ** (b - 1) - 1))
               for u in ("U", "") for b in (8, 16, 32, 64)}
DATETIME64_RANGE = (dt.datetime(1900, 1, 1, tzinfo=dt.UTC),
                    dt.datetime(2299, 12, 31, 23, 59, 59, 999000, tzinfo=dt.UTC))
DATE_RANGE = (dt.date(1970, 1, 1), dt.date(2149, 6, 6))
INVISIBLE = ["\x00", "\u202e", "\u200b", "\u200f", "\u2060", "\ufeff", "\x1b", "\u2028"]


def all_event_models() -> list[type[Event]]:
    found: list[type[Event]] = []
    todo = list(Event.__subclasses__())
    while todo:
        model = todo.pop()
        found.append(model)
        todo.extend(model.__subclasses__())
    return sorted(found, key=lambda m: m.__name__)


def samples(now: dt.datetime) -> dict[type[Event], dict[str, Any]]:
    """One valid event per model, every optional field given, relative to ``now``."""
    day = now.date()
    return {
        Touchpoint: {"event_id": "e-1", "occurred_at": now, "account_id": "acct-1",
                     "contact_id": "ab" * 32, "channel": "email", "source": "google",
                     "medium": "cpc", "campaign_id": "c-1", "touch_type": "web_visit",
                     "utm_source": "g", "utm_medium": "m", "utm_campaign": "c", "utm_term": "t",
                     "utm_content": "x", "cost": Decimal("1.5"), "currency": "USD"},
        Spend: {"event_id": "s-1", "date": day, "channel": "email", "campaign_id": "c-1",
                "amount": Decimal(10), "currency": "USD", "impressions": 10, "clicks": 1},
        Subscription: {"event_id": "u-1", "occurred_at": now, "account_id": "acct-1",
                       "event_type": "subscription_started", "mrr": Decimal(99),
                       "currency": "USD", "plan": "growth"},
        PipelineEvent: {"event_id": "p-1", "occurred_at": now, "account_id": "acct-1",
                        "stage": "won", "amount": Decimal(5), "currency": "USD"},
        Budget: {"event_id": "b-1", "month": f"{day:%Y-%m}", "channel": "email",
                 "campaign_id": "c-1", "amount": Decimal(100), "currency": "USD"},
        AccountProfile: {"event_id": "ap-1", "account_id": "acct-1", "effective_from": day,
                         "plan": "pro", "segment": "mid_market", "industry": "retail",
                         "region": "emea", "employee_band": "51-200",
                         "acquisition_channel": "email"},
        MartechCost: {"event_id": "m-1", "month": f"{day:%Y-%m}", "vendor": "hubspot",
                      "category": "crm", "amount": Decimal(100), "currency": "USD"},
        EmailDeliveryStats: {"event_id": "d-1", "day": day, "sending_domain": "mail.example.com",
                             "campaign_id": "c-1", "esp": "sendgrid", "sent": 10,
                             "delivered": 9, "hard_bounces": 1, "soft_bounces": 0,
                             "spam_complaints": 0, "unsubscribes": 1, "unique_opens": 5,
                             "unique_clicks": 2},
        ProductUsage: {"event_id": "pu-1", "account_id": "acct-1", "feature": "automations",
                       "day": day, "count": 3},
        FeedbackResponse: {"event_id": "fb-1", "account_id": "acct-1", "survey": "nps",
                           "score": 9, "responded_at": now},
        SupportTicket: {"event_id": "tk-1", "ticket_id": "T-1", "account_id": "acct-1",
                        "created_at": now, "first_response_at": now, "resolved_at": now,
                        "status": "solved", "channel": "email", "updated_at": now},
        AttributionCredit: {"conversion_id": "cv-1", "milestone": "won", "model": "linear",
                            "account_id": "acct-1", "touchpoint_event_id": "e-1",
                            "channel": "email", "campaign_id": "c-1", "touched_at": now,
                            "converted_at": now, "credit": 0.5,
                            "credited_revenue": Decimal(1), "currency": "USD", "version": 1},
        KpiSnapshot: {"kpi": "spend", "grain": "day", "period": day.isoformat(),
                      "period_start": day, "dimension": "all", "dimension_value": "",
                      "value": 1.5, "unit": "usd", "computed_at": now, "final": False,
                      "complete": False, "schema_version": 1},
        Alert: {"alert_id": "al-1", "fingerprint": "fp", "rule": "r", "state": "firing",
                "severity": "info", "kpi": "spend", "labels": {"channel": "email"},
                "annotations": {"summary": "high\nvery"}, "value": 1.0, "threshold": 0.5,
                "starts_at": now, "ends_at": now, "sent_at": now},
        CampaignAction: {"action_id": "ac-1", "action": "pause_campaign", "channel": "email",
                         "campaign_id": "c-1", "reason": "r", "source_alert": "al-1",
                         "created_at": now},
        Erasure: {"erasure_id": "x-1", "subject_kind": "account", "subject": "acct-1",
                  "requested_at": now},
        ReportReady: {"report_id": "r-1", "report_kind": "weekly", "period": "2026-W48",
                      "paths": {"md": "/reports/r.md"}, "created_at": now},
        MmmRunCompleted: {"run_id": "run-1", "version": 1, "target": "won_revenue",
                          "grain": "week", "date_from": day - dt.timedelta(days=700),
                          "date_to": day, "status": "published", "reason": "none",
                          "channels": [MMM_CHANNEL], "finished_at": now, "schema_version": 1},
    }


#: One channel of a sample MMM run (its fields are bounded like an event's).
MMM_CHANNEL = {"channel": "paid_search", "spend": 1.0, "contribution": 2.0, "roi": 2.0,
               "roi_lower": 1.5, "roi_upper": 2.5, "marginal_roi": 1.8}


# -- field introspection ---------------------------------------------------------------------
@dataclass(frozen=True)
class FieldShape:
    base: Any  # the Python type under Optional / Annotated
    metadata: tuple[Any, ...]
    optional: bool

    def bound(self, attr: str, pick: Any) -> Any:
        """The tightest ``attr`` (ge, le, max_length, max_digits …) of the metadata."""
        values = [getattr(m, attr) for m in self.metadata if getattr(m, attr, None) is not None]
        return pick(values) if values else None

    @property
    def window(self) -> str | None:
        horizons = [m.func.horizon for m in self.metadata
                    if isinstance(m, AfterValidator) and isinstance(m.func, InWindow)]
        return horizons[0] if horizons else None

    @property
    def range(self) -> InRange | None:
        ranges = [m.func for m in self.metadata
                  if isinstance(m, AfterValidator) and isinstance(m.func, InRange)]
        return ranges[0] if ranges else None


def shape(info: FieldInfo) -> FieldShape:
    annotation, metadata, optional = info.annotation, list(info.metadata), False
    while True:
        origin = typing.get_origin(annotation)
        if origin is typing.Annotated:
            annotation, *extra = typing.get_args(annotation)
            for item in extra:
                metadata.extend(getattr(item, "metadata", None) or [item])
        elif origin in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(annotation) if a is not type(None)]
            assert len(args) == 1, annotation
            annotation, optional = args[0], True
        else:
            return FieldShape(annotation, tuple(metadata), optional)


def outcome(model: type[BaseModel], values: dict[str, Any], name: str, value: Any) -> bool:
    """True if ``model`` accepts ``value`` for ``name``; a refusal must be located there."""
    try:
        model.model_validate({**values, name: value})
    except ValidationError as exc:
        where = {e["loc"][0] for e in exc.errors()}
        assert where == {name}, f"{model.__name__}.{name}={value!r:.60}: errors at {where}"
        return False
    return True


def refuses(model: type[BaseModel], values: dict[str, Any], name: str, value: Any) -> bool:
    return not outcome(model, values, name, value)


# -- every field is bounded --------------------------------------------------------------------
def check_bounded(model: type[Event], values: dict[str, Any], name: str, info: FieldInfo) -> None:
    """The field refuses what no column could hold, whatever its column (or none)."""
    s = shape(info)
    what = f"{model.__name__}.{name}"
    if s.base is bool or isinstance(s.base, type) and issubclass(s.base, Enum):
        assert refuses(model, values, name, "no-such-member") or s.base is bool, what
    elif s.base is int:
        assert s.bound("ge", max) is not None and s.bound("le", min) is not None, what
        assert refuses(model, values, name, 10**30) and refuses(model, values, name, -(10**30))
    elif s.base is float:
        for bad in (float("inf"), float("-inf"), float("nan")):
            assert refuses(model, values, name, bad), (what, bad)
    elif s.base is Decimal:
        for bad in ("1e30", "1e-30", "NaN", "Infinity"):
            assert refuses(model, values, name, Decimal(bad)), (what, bad)
    elif s.base in (AwareDatetime, dt.datetime):
        assert s.window or s.range, f"{what}: neither a plausibility window nor a range"
        for year in (1, 1899, 2300, 2999):
            assert refuses(model, values, name, dt.datetime(year, 6, 1, tzinfo=dt.UTC)), what
    elif s.base is dt.date:
        assert s.window is not None, f"{what}: no plausibility window"
        for year in (1, 1969, 2999):
            assert refuses(model, values, name, dt.date(year, 6, 1)), what
    elif s.base is str:
        check_text(model, values, name, str(values.get(name) or "abc"))
    elif typing.get_origin(s.base) is dict:
        key, value = next(iter(values[name].items()))
        for bad in (*INVISIBLE, "x" * 100_000):
            assert refuses(model, values, name, {key[:1] + bad + key[1:] + "z": value}), what
        for bad in [c for c in INVISIBLE if c not in "\n"] + ["x" * 100_000]:
            assert refuses(model, values, name, {key: value[:1] + bad + value[1:] + "z"}), what
    elif typing.get_origin(s.base) is list:
        # a bounded number of items, each of a model whose every field is bounded
        (item_model,) = typing.get_args(s.base)
        assert s.bound("max_length", min) is not None, f"{what}: no max_length"
        assert refuses(model, values, name, values[name] * 100_000), what
        item = values[name][0]
        for item_name, item_info in item_model.model_fields.items():
            check_bounded(item_model, item, item_name, item_info)
    else:
        pytest.fail(f"{what}: no known bound for {s.base!r}: give it a bounded type from "
                    "pulse_shared.events (and teach this test its column type)")


def check_text(model: type[Event], values: dict[str, Any], name: str, good: str) -> None:
    assert refuses(model, values, name, good + "x" * 100_000), f"{model.__name__}.{name}: no max"
    for bad in INVISIBLE:
        inside = good[:1] + bad + (good[1:] or "z")  # not at an edge, where it is stripped
        assert refuses(model, values, name, inside), (model, name, bad)


@pytest.mark.parametrize("model", all_event_models(), ids=lambda m: m.__name__)
def test_every_field_of_every_event_is_bounded(model: type[Event]) -> None:
    values = samples(dt.datetime.now(dt.UTC))[model]
    assert model.model_validate(values)
    assert set(values) == set(model.model_fields), "the sample gives every field"
    for name, info in model.model_fields.items():
        check_bounded(model, values, name, info)


def test_every_event_model_is_mapped_to_where_it_is_stored() -> None:
    assert set(all_event_models()) == set(MODEL_TABLES) | set(STORED_AS_JSON)


# -- every stored field fits its column --------------------------------------------------------
def columns(store: Store, table: str) -> dict[str, str]:
    rows = store.query("SELECT name, type FROM system.columns "
                       "WHERE database = currentDatabase() AND table = {t:String}", {"t": table})
    assert rows, f"no table {table}"
    return {r["name"]: r["type"] for r in rows}


def unwrap(column_type: str) -> tuple[str, bool]:
    nullable = column_type.startswith("Nullable(")
    inner = column_type.removeprefix("Nullable(").removesuffix(")") if nullable else column_type
    if inner.startswith("LowCardinality("):
        inner = inner.removeprefix("LowCardinality(").removesuffix(")")
        if inner.startswith("Nullable("):
            inner, nullable = inner.removeprefix("Nullable(").removesuffix(")"), True
    return inner, nullable


def check_fits(model: type[Event], values: dict[str, Any], name: str, column_type: str) -> None:
    s = shape(model.model_fields[name])
    what = f"{model.__name__}.{name} → {column_type}"
    inner, nullable = unwrap(column_type)
    assert not s.optional or nullable, f"{what}: None has nowhere to go"
    if not nullable:
        assert refuses(model, values, name, None), what
    window = event_window()
    if inner in INT_COLUMNS:
        low, high = INT_COLUMNS[inner]
        ge, le = s.bound("ge", max), s.bound("le", min)
        assert s.base is int and ge is not None and le is not None, what
        assert low <= ge and le <= high, f"{what}: [{ge}, {le}] exceeds [{low}, {high}]"
        assert outcome(model, values, name, ge) and outcome(model, values, name, le), what
        assert refuses(model, values, name, ge - 1) and refuses(model, values, name, le + 1)
    elif match := re.fullmatch(r"Decimal\((\d+), (\d+)\)", inner):
        precision, scale = int(match[1]), int(match[2])
        digits = s.bound("max_digits", min)
        places = s.bound("decimal_places", min)
        assert s.base is Decimal and digits is not None and places is not None, what
        assert places <= scale and digits - places <= precision - scale, what
        assert refuses(model, values, name, Decimal(10) ** (precision - scale))
        assert refuses(model, values, name, Decimal(1).scaleb(-scale - 1))
    elif inner in ("Float64", "Float32"):
        assert s.base is float, what
        assert refuses(model, values, name, float("inf")), what
    elif re.fullmatch(r"DateTime64\([36], 'UTC'\)", inner):
        assert s.base in (AwareDatetime, dt.datetime), what
        if s.range is not None:  # a time Pulse stamps itself: the column's whole range
            low, high = s.range.low, s.range.high
        else:
            assert s.window, f"{what}: no plausibility window"
            low = window.earliest
            high = window.latest if s.window == "event" else window.latest_planned
        assert DATETIME64_RANGE[0] <= low and high <= DATETIME64_RANGE[1], what
        before = DATETIME64_RANGE[0] - dt.timedelta(microseconds=1)
        assert refuses(model, values, name, before), what
        assert refuses(model, values, name, DATETIME64_RANGE[1] + dt.timedelta(days=1)), what
    elif inner == "Date":
        assert s.base in (dt.date, str) and s.window, f"{what}: no plausibility window"
        latest = window.latest if s.window == "event" else window.latest_planned
        assert DATE_RANGE[0] <= window.earliest.date() and latest.date() <= DATE_RANGE[1], what
        if s.base is str:  # a YYYY-MM month, stored as its first day
            assert refuses(model, values, name, "1969-12"), what
            assert refuses(model, values, name, "2149-07"), what
        else:
            assert refuses(model, values, name, DATE_RANGE[0] - dt.timedelta(days=1)), what
            assert refuses(model, values, name, DATE_RANGE[1] + dt.timedelta(days=1)), what
    elif inner == "String":
        # Any bounded, visible text fits (checked above); a dict is stored item by item.
        assert s.base is str or typing.get_origin(s.base) is dict or issubclass(s.base, Enum)
    elif inner == "Map(String, String)":
        assert typing.get_origin(s.base) is dict and typing.get_args(s.base)[0] is not Any
    else:
        pytest.fail(f"{what}: this test does not know the column type {inner}")


def related_neutral(model: type[Event], name: str, values: dict[str, Any]) -> dict[str, Any]:
    """``values`` where the field ``name`` may take each of its bounds alone: e-mail
    delivery counts are parts of a whole (delivered ≤ sent, opens ≤ delivered …), so the
    other parts are 0 and the wholes at their maximum (0 below ``sent`` itself)."""
    if model is SupportTicket:  # response and resolution are not before creation
        if name in ("first_response_at", "resolved_at"):
            return {**values, "created_at": event_window().earliest}
        if name == "created_at":
            return {**values, "first_response_at": None, "resolved_at": None,
                    "status": "open"}
        return values
    if model is not EmailDeliveryStats:
        return values
    parts = ("hard_bounces", "soft_bounces", "spam_complaints", "unsubscribes",
             "unique_opens", "unique_clicks")
    whole = 0 if name == "sent" else COUNT_MAX
    return {**values, **dict.fromkeys(parts, 0), "sent": COUNT_MAX, "delivered": whole}


@pytest.mark.parametrize("model", list(MODEL_TABLES), ids=lambda m: m.__name__)
def test_every_stored_field_fits_its_column(embedded_store: Store, model: type[Event]) -> None:
    table = columns(embedded_store, MODEL_TABLES[model])
    values = samples(dt.datetime.now(dt.UTC))[model]
    for name in model.model_fields:
        if (model, name) in NOT_STORED:
            continue
        column = RENAMED.get((model, name), name)
        assert column in table, f"{model.__name__}.{name}: no column {column} in the table"
        check_fits(model, related_neutral(model, name, values), name, table[column])


# -- the extremes a model accepts are stored as they are ---------------------------------------
def extreme(model: type[Event], name: str, high: bool) -> Any:
    """The highest (or lowest) value ``model`` accepts for ``name``."""
    s = shape(model.model_fields[name])
    window = event_window()
    if not high and s.optional:
        return None
    if s.base is bool:
        return high
    if s.base is int:
        return s.bound("le", min) if high else s.bound("ge", max)
    if s.base is float:
        le, ge = s.bound("le", min), s.bound("ge", max)
        return (sys.float_info.max if le is None else le) if high else (
            -sys.float_info.max if ge is None else ge)
    if s.base is Decimal:
        digits, places = s.bound("max_digits", min), s.bound("decimal_places", min)
        top = Decimal(10) ** (digits - places) - Decimal(1).scaleb(-places)
        return top if high else (Decimal(0) if s.bound("ge", max) == 0 else -top)
    if s.base in (AwareDatetime, dt.datetime) and s.range is not None:
        return s.range.high if high else s.range.low
    if s.base in (AwareDatetime, dt.datetime):
        # The latest moment is floored to what DateTime64(3) keeps.
        latest = window.latest.replace(microsecond=window.latest.microsecond // 1000 * 1000)
        return latest if high else window.earliest
    if s.base is dt.date:
        latest = window.latest if s.window == "event" else window.latest_planned
        return latest.date() if high else window.earliest.date()
    if isinstance(s.base, type) and issubclass(s.base, Enum):
        return list(s.base)[-1 if high else 0]
    if name == "month":
        return f"{window.latest_planned:%Y-%m}" if high else f"{window.earliest:%Y-%m}"
    if name == "contact_id":
        return ("f" if high else "0") * 64
    if name == "currency":
        return "ZWL" if high else "AED"
    if typing.get_origin(s.base) is list:
        return []  # a list field is not stored as a column (NOT_STORED)
    if typing.get_origin(s.base) is dict:
        key_shape, value_shape = (shape(FieldInfo.from_annotation(a))
                                  for a in typing.get_args(s.base))
        longest = [x.bound("max_length", min) for x in (key_shape, value_shape)]
        return {"é" * longest[0]: "ü" * longest[1]} if high else {}
    assert s.base is str, (model, name)
    return "é" * s.bound("max_length", min) if high else "a" * (
        s.bound("min_length", max) or 0)


def stored_row(event: Event) -> dict[str, Any]:
    row = {k: (v.value if isinstance(v, Enum) else v) for k, v in dict(event).items()}
    if isinstance(event, Budget | MartechCost):
        row["month"] = event.month_start
    for model, key in NOT_STORED:
        if isinstance(event, model):
            row.pop(key)
    return row


@pytest.mark.parametrize("high", [True, False], ids=["highest", "lowest"])
@pytest.mark.parametrize("model", [m for m in MODEL_TABLES if m is not ReportReady],
                         ids=lambda m: m.__name__)
def test_extreme_accepted_values_round_trip_through_the_store(
    embedded_store: Store, model: type[Event], high: bool
) -> None:
    values = {n: extreme(model, n, high) for n in model.model_fields}
    if model is EmailDeliveryStats and high:  # hard + soft bounces ≤ sent (both at most)
        values["soft_bounces"] = 0
    if model is FeedbackResponse and high:  # the highest score (10) is on the nps scale
        values["survey"] = "nps"
    event = model.model_validate(values)
    row = stored_row(event)
    if isinstance(event, SupportTicket):  # the state's time, the latest state's version
        row["state_at"] = event.state_at
    copy = f"bounds_{uuid.uuid4().hex[:8]}"
    embedded_store.command(f"CREATE TABLE {copy} AS {MODEL_TABLES[model]}")
    try:
        embedded_store.insert(copy, [row], list(row))
        [back] = embedded_store.query(f"SELECT {', '.join(row)} FROM {copy}")
    finally:
        embedded_store.command(f"DROP TABLE {copy}")
    assert back == row


# -- the reported cases, end to end --------------------------------------------------------------
def test_impressions_beyond_any_column_are_an_error_on_impressions() -> None:
    values = samples(dt.datetime.now(dt.UTC))[Spend]
    assert refuses(Spend, values, "impressions", 10**30)
    assert refuses(Spend, values, "impressions", 2**64)
    assert outcome(Spend, values, "impressions", 2**53 - 1)


def test_implausible_times_are_errors_on_the_time_field() -> None:
    now = dt.datetime.now(dt.UTC)
    for model, name in [(Touchpoint, "occurred_at"), (Subscription, "occurred_at"),
                        (PipelineEvent, "occurred_at"), (AttributionCredit, "touched_at"),
                        (AttributionCredit, "converted_at")]:
        values = samples(now)[model]
        for at in ("0001-01-01T00:00:00Z", "2999-01-01T00:00:00Z", "1999-12-31T23:59:59Z"):
            assert refuses(model, values, name, at), (model, name, at)
        with pytest.raises(ValidationError, match="PULSE_MAX_FUTURE_SKEW"):
            model.model_validate({**values, name: now + dt.timedelta(days=2)})
        with pytest.raises(ValidationError, match="PULSE_EARLIEST_EVENT_DATE"):
            model.model_validate({**values, name: "0001-01-01T00:00:00Z"})
        assert outcome(model, values, name, now + dt.timedelta(hours=23))
    spend = samples(now)[Spend]
    assert refuses(Spend, spend, "date", dt.date(1, 1, 1))
    assert refuses(Spend, spend, "date", dt.date(2999, 1, 1))


def test_times_pulse_stamps_itself_need_only_fit_the_column() -> None:
    """computed_at, sent_at, created_at … come from a service's clock (a test's may be
    fixed years ahead); a stored alert is read back as an Alert whatever today is."""
    now = dt.datetime.now(dt.UTC)
    for model, name in [(KpiSnapshot, "computed_at"), (Alert, "starts_at"), (Alert, "sent_at"),
                        (Alert, "ends_at"), (CampaignAction, "created_at"),
                        (ReportReady, "created_at")]:
        values = samples(now)[model]
        assert outcome(model, values, name, dt.datetime(2031, 11, 10, 6, tzinfo=dt.UTC))
        for at in ("1899-12-31T23:59:59Z", "2300-01-01T00:00:00Z", "0001-01-01T00:00:00Z"):
            assert refuses(model, values, name, at), (model, name, at)


def test_budgets_and_kpi_periods_may_be_planned_ahead_within_the_horizon() -> None:
    now = dt.datetime.now(dt.UTC)
    budget, kpi = samples(now)[Budget], samples(now)[KpiSnapshot]
    in_a_year = (now + dt.timedelta(days=365)).date()
    assert outcome(Budget, budget, "month", f"{in_a_year:%Y-%m}")
    assert outcome(KpiSnapshot, kpi, "period_start", in_a_year.replace(day=1))
    beyond = (event_window(now).latest_planned + dt.timedelta(days=32)).date()
    with pytest.raises(ValidationError, match="PULSE_MAX_PLAN_AHEAD"):
        Budget.model_validate({**budget, "month": f"{beyond:%Y-%m}"})
    assert refuses(KpiSnapshot, kpi, "period_start", beyond)
    # Something that happened cannot be a year ahead, though.
    assert refuses(Spend, samples(now)[Spend], "date", in_a_year)


@pytest.mark.parametrize("char", ["\x00", "\u202e", "\u200b", "\u200c", "\u200d", "\u2066",
                                  "\ufeff", "\u00ad", "\U000e0001", "\ue000", "\ufffe"],
                         ids=lambda c: f"U+{ord(c):04X}")
def test_invisible_characters_in_an_identifier_are_errors_naming_it(char: str) -> None:
    values = samples(dt.datetime.now(dt.UTC))[Touchpoint]
    with pytest.raises(ValidationError, match=f"U\\+{ord(char):04X}") as caught:
        Touchpoint.model_validate({**values, "account_id": f"acct{char}-1"})
    assert [e["loc"] for e in caught.value.errors()] == [("account_id",)]


def test_visible_text_of_any_script_is_accepted() -> None:
    values = samples(dt.datetime.now(dt.UTC))[Touchpoint]
    for text in ["Été à Zürich", "春季促销", "حملة", "launch 🚀", "a\u00a0b", "e\u0301"]:
        assert outcome(Touchpoint, values, "campaign_id", text), text
    alert = samples(dt.datetime.now(dt.UTC))[Alert]
    assert outcome(Alert, alert, "annotations", {"summary": "line 1\n\tline 2\r\n"})


def test_ingest_answers_row_level_errors_naming_the_field() -> None:
    from pulse_ingest.domain.normalize import normalise_row

    today = dt.date.today().isoformat()
    errors = normalise_row("spend", {"date": today, "channel": "email", "amount": "5",
                                     "impressions": 10**30}, "salt-0123456789abcdef", index=7)
    assert isinstance(errors, list)
    assert [(e.index, e.field) for e in errors] == [(7, "impressions")]
    errors = normalise_row("touchpoints", {"occurred_at": "2999-01-01T00:00:00Z",
                                           "account_id": "a\u202eb", "contact_id": "c",
                                           "channel": "email", "touch_type": "web_visit"},
                           "salt-0123456789abcdef")
    assert isinstance(errors, list)
    assert sorted(e.field for e in errors) == ["account_id", "occurred_at"]


def test_consumers_dead_letter_what_was_produced_straight_to_the_topic() -> None:
    from pulse_shared.streaming import BatchConsumer
    from pulse_shared.topics import SPEND, TOUCHPOINTS

    @dataclass
    class Record:
        value: bytes
        offset: int
        topic: str
        partition: int = 0
        key: bytes | None = b"k"
        timestamp: int = 0

    async def consume(events: list[Event]) -> None:
        return None

    now = dt.datetime.now(dt.UTC)
    spend = Spend.model_validate(samples(now)[Spend]).to_json()
    touch = Touchpoint.model_validate(samples(now)[Touchpoint]).to_json()
    cases = [
        (SPEND, spend.replace(b'"impressions":10', b'"impressions":' + str(10**30).encode()),
         "impressions"),
        (TOUCHPOINTS, touch.replace(b'"acct-1"', '"acct\u202e-1"'.encode()), "account_id"),
        (TOUCHPOINTS, re.sub(rb'"occurred_at":"[^"]+"', b'"occurred_at":"0001-01-01T00:00:00Z"',
                             touch), "occurred_at"),
    ]
    for topic, value, name in cases:
        consumer = BatchConsumer("test", topic, consume, None)  # type: ignore[arg-type]
        events, letters = consumer.decode([Record(value, 5, topic.name)])
        assert events == [] and [e.field for e in letters[0].errors] == [name], name


def test_the_window_comes_from_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    values = samples(dt.datetime.now(dt.UTC))[Spend]
    monkeypatch.setenv("PULSE_EARLIEST_EVENT_DATE", "2020-01-01")
    monkeypatch.setenv("PULSE_MAX_FUTURE_SKEW", "PT1H")
    common_settings.cache_clear()
    try:
        assert refuses(Spend, values, "date", dt.date(2019, 12, 31))
        assert outcome(Spend, values, "date", dt.date(2020, 1, 1))
        touch = samples(dt.datetime.now(dt.UTC))[Touchpoint]
        late = dt.datetime.now(dt.UTC) + dt.timedelta(hours=2)
        assert refuses(Touchpoint, touch, "occurred_at", late)
        monkeypatch.setenv("PULSE_EARLIEST_EVENT_DATE", "1969-12-31")  # before Date's range
        common_settings.cache_clear()
        with pytest.raises(ValidationError, match="earliest_event_date"):
            common_settings()
    finally:
        monkeypatch.undo()
        common_settings.cache_clear()
    assert outcome(Spend, values, "date", dt.date(2019, 12, 31))


def test_the_window_is_relative_to_the_moment_of_validation() -> None:
    then = dt.datetime(2040, 2, 3, 4, 5, tzinfo=dt.UTC)
    window = event_window(then)
    settings = common_settings()
    assert window.latest == then + settings.max_future_skew
    assert window.latest_planned == then + settings.max_plan_ahead
    assert window.earliest.date() == settings.earliest_event_date


async def test_the_ingest_api_answers_422_naming_row_and_field() -> None:
    import httpx

    from pulse_ingest.main import build_api
    from pulse_ingest.service import IngestService
    from pulse_ingest.settings import IngestSettings
    from pulse_shared.bus import Bus, make_broker

    settings = IngestSettings(pii_salt="bounds-salt-0123456789", auth_required=False)
    service = IngestService(Bus(make_broker(None), "ingest", in_memory=True), settings)
    rows = [{"date": dt.date.today().isoformat(), "channel": "email", "amount": "5",
             "impressions": 10**30},
            {"date": "2999-01-01", "channel": "email\u200b", "amount": "5"}]
    transport = httpx.ASGITransport(app=build_api(service, settings))
    async with httpx.AsyncClient(transport=transport, base_url="http://ingest") as http:
        response = await http.post("/v1/spend", json=rows)
    assert response.status_code == 422
    body = response.json()
    assert body["accepted"] == 0
    assert {(e["index"], e["field"]) for e in body["rejected"]} >= {(0, "impressions"),
                                                                    (1, "date")}
