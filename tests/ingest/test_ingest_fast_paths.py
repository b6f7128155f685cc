"""Normalisation's fast paths give exactly what the plain steps give.

* A row's texts are checked for PII at once (joined); only a row that may hold some has each
  text scrubbed. Compared with every text scrubbed on its own (the check forced to "maybe").
* A missing event id is hashed from the event's JSON dump and set on the new event itself;
  compared with the former steps: the dump without ``event_id``, then ``model_copy``. Stored
  ids of re-sent rows must keep matching.
* The in-memory bus hands a batch over with its bodies in order, one time stamp for the batch.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Mapping
from typing import Any
from unittest import mock

import pytest
from faststream import AckPolicy
from faststream.kafka import TestKafkaBroker
from faststream.kafka.annotations import KafkaMessage
from hypothesis import given, settings
from hypothesis import strategies as st
from ingest_support import SALT
from pydantic import ValidationError

from pulse_ingest.domain import normalize
from pulse_ingest.domain.generator import generate_dataset
from pulse_ingest.domain.normalize import (
    ALIASES,
    KIND_TOPICS,
    KINDS,
    PLACEHOLDER_ID,
    RowError,
    normalise_row,
    normalise_rows,
    text_fields,
)
from pulse_shared.bus import Bus, make_broker
from pulse_shared.events import Event, Touchpoint, deterministic_event_id
from pulse_shared.streaming import batch_parser, raw_body_decoder
from pulse_shared.topics import TOUCHPOINTS


def reference_normalise_row(kind: str, row: Mapping[str, Any], index: int) -> Event | list[RowError]:
    """:func:`normalise_row` by the plain steps: every kept text scrubbed on its own (the
    joined check made to answer "maybe"), the id hashed from the dump without it and set
    on a copy."""
    model = KIND_TOPICS[kind].model
    with mock.patch.object(normalize, "quick_clean", return_value=False):
        try:
            prepared = normalize.prepare_row(kind, row, SALT)
        except (TypeError, ValueError) as exc:
            return [RowError(index, "(row)", str(exc))]
    client_id = prepared.get("event_id")
    if client_id is None:
        prepared["event_id"] = PLACEHOLDER_ID
    try:
        event = model.model_validate(prepared)
    except ValidationError as exc:
        return normalize._errors(index, exc)
    if client_id is None:
        canonical = event.model_dump(mode="json", exclude={"event_id"})
        event = event.model_copy(update={"event_id": deterministic_event_id(model.kind, canonical)})
    return event


def assert_same_outcome(kind: str, rows: list[dict[str, Any]]) -> int:
    """Same events (equal, same JSON, fields set and hash) and errors; returns the events."""
    batch = normalise_rows(kind, rows, SALT)
    # Ingest replaces PII in texts by tokens: the models' PII refusal never fires on them.
    assert not [e for e in batch.errors if "looks like it holds" in e.reason]
    expected = [reference_normalise_row(kind, row, i) for i, row in enumerate(rows)]
    assert batch.errors == [e for r in expected if isinstance(r, list) for e in r]
    events = [r for r in expected if not isinstance(r, list)]
    assert len(batch.events) == len(events)
    for got, want in zip(batch.events, events, strict=True):
        assert type(got) is type(want)
        assert got == want
        assert got.to_json() == want.to_json()
        assert got.model_fields_set == want.model_fields_set
        assert hash(got) == hash(want)
    return len(events)


def dataset_rows() -> dict[str, list[dict[str, Any]]]:
    """Rows of every kind from the demo's generator, as a client sends them (no ids)."""
    end = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)
    data = generate_dataset(seed=11, days=10, accounts=12, end=end, history_weeks=2,
                            martech_tools=True, product_usage=True, email_deliverability=True,
                            account_profiles=True, customer_experience=True)
    rows: dict[str, list[dict[str, Any]]] = {}
    for kind in KINDS:
        dumped = [e.model_dump(mode="json", exclude={"event_id"}) for e in getattr(data, kind)]
        rows[kind] = dumped[:150]
    return rows


def test_generated_rows_of_every_kind_normalise_as_by_the_plain_steps() -> None:
    rows = dataset_rows()
    assert set(rows) == set(KINDS)
    for kind, kind_rows in rows.items():
        assert kind_rows, kind
        assert assert_same_outcome(kind, kind_rows) == len(kind_rows), kind


# Values of text fields: clean labels and ids, ids with grouped digits (a closer look, no
# PII), and identifiers, plain or disguised, that must be replaced by tokens.
TEXTS = [
    "google", "cpc", "camp-7", "acct-00042", "2026-11-25", "INV-2026-000123", "Q4 2026",
    " padded ", "Brand – Ünïcode", "100% off", "red+shoes", "logo@2x",
    "jane@acme.example", "jane%40acme.example", "call +1-555-867-5309", "(415) 555-2671",
    "mailto:jane&#64;acme.example", "\uff4a\uff41\uff4e\uff45\uff20acme.example",
]


@st.composite
def raw_rows(draw: st.DrawFn, kind: str) -> dict[str, Any]:
    """A row of ``kind`` with its required fields from a valid one and PII-prone texts in
    its text fields (and their aliases), sometimes with a client id."""
    base = dict(draw(st.sampled_from(ROWS_BY_KIND[kind])))
    texts = sorted(text_fields(kind) - {"event_id", "contact_id", "currency", "month"})
    aliases = [a for a, name in ALIASES.get(kind, {}).items() if name in texts]
    if texts:
        for name in draw(st.lists(st.sampled_from(texts + aliases), max_size=6)):
            base[name] = draw(st.sampled_from(TEXTS) | st.text(max_size=12))
    if draw(st.booleans()):
        base["event_id"] = draw(st.sampled_from(["e-1", " e-2 ", "e-2026-11-25"]))
    return base


ROWS_BY_KIND = {kind: rows[:20] for kind, rows in dataset_rows().items()}


@settings(max_examples=150, deadline=None, database=None)
@given(data=st.data(), kind=st.sampled_from(KINDS))
def test_rows_with_pii_in_any_text_normalise_as_by_the_plain_steps(
    data: st.DataObject, kind: str
) -> None:
    rows = data.draw(st.lists(raw_rows(kind), min_size=1, max_size=5))
    assert_same_outcome(kind, rows)


def test_text_fields_are_never_converted_as_enums_or_times() -> None:
    """prepare_row scrubs a row's texts after mapping it: none was converted meanwhile."""
    for kind in KINDS:
        converted = set(normalize._ENUM_FIELDS) | normalize._DATETIME_FIELDS
        assert not text_fields(kind) & converted, kind


def test_a_row_with_clean_texts_is_not_scrubbed_text_by_text() -> None:
    row = {"occurred_at": "2026-11-20T10:00:00Z", "account_id": "acct-00042",
           "email": "jane@acme.example", "channel": "cpc", "touch_type": "ad_click",
           "source": "google", "campaign_id": "camp-7", "utm_term": "red shoes"}
    with mock.patch.object(normalize, "scrub_text", wraps=normalize.scrub_text) as scrub:
        event = normalise_row("touchpoints", row, SALT)
        assert isinstance(event, Touchpoint)
        assert scrub.call_count == 0
        leaky = normalise_row("touchpoints", {**row, "utm_term": "call +1 555 867 5309"}, SALT)
        assert isinstance(leaky, Touchpoint)
        assert scrub.call_count == 4  # one closer look: then each of its 4 texts on its own
    assert leaky.utm_term.startswith("call [phone:") and "867" not in leaky.to_json().decode()
    assert (event.account_id, event.source, event.utm_term) == ("acct-00042", "google", "red shoes")


def test_the_content_hash_id_is_the_former_formula_and_the_event_stays_frozen() -> None:
    row = {"occurred_at": "2026-11-20T10:00:00.123456+01:00", "account_id": " acme ",
           "email": "Jane@Acme.example", "channel": "Paid Search", "touch_type": "ad_click",
           "cost": "12.50", "currency": "eur"}
    event = normalise_row("touchpoints", row, SALT)
    assert isinstance(event, Touchpoint)
    canonical = event.model_dump(mode="json", exclude={"event_id"})
    assert event.event_id == deterministic_event_id("touchpoint", canonical)
    # Pinned: ids already stored for re-sent rows must keep matching.
    assert canonical["occurred_at"] == "2026-11-20T09:00:00.123456Z"
    assert canonical["cost"] == "12.50" and canonical["currency"] == "EUR"
    text = "|".join(f"{k}={canonical[k]}" for k in sorted(canonical))
    assert event.event_id == hashlib.sha256(f"touchpoint|{text}".encode()).hexdigest()[:32]
    assert "event_id" in event.model_fields_set
    with pytest.raises(ValidationError):
        event.event_id = "changed"  # type: ignore[misc]
    given_id = normalise_row("touchpoints", {**row, "event_id": "client-1"}, SALT)
    assert isinstance(given_id, Touchpoint) and given_id.event_id == "client-1"


def test_events_serialise_as_model_dump_json() -> None:
    for kind, rows in dataset_rows().items():
        for event in normalise_rows(kind, rows[:30], SALT).events:
            assert event.to_json() == event.model_dump_json().encode(), kind


async def test_the_in_memory_bus_hands_a_batch_over_in_order_with_one_time_stamp() -> None:
    broker = make_broker(None)
    batches: list[list[Any]] = []

    @broker.subscriber(TOUCHPOINTS.name, batch=True, group_id="g", parser=batch_parser,
                       decoder=raw_body_decoder, ack_policy=AckPolicy.MANUAL)
    async def handle(body: Any, message: KafkaMessage) -> None:
        batches.append(list(message.raw_message))

    rows = dataset_rows()["touchpoints"][:4]
    events = normalise_rows("touchpoints", rows, SALT).events
    before = dt.datetime.now(dt.UTC).timestamp() * 1000
    async with TestKafkaBroker(broker) as test_broker:
        await Bus(test_broker, "ingest", in_memory=True).publish(TOUCHPOINTS, events)
    [records] = batches
    assert [r.value for r in records] == [e.to_json() for e in events]
    assert len({r.timestamp for r in records}) == 1
    assert before - 1 <= records[0].timestamp <= dt.datetime.now(dt.UTC).timestamp() * 1000 + 1
    assert len({dict(r.headers)["correlation_id"] for r in records}) == 1

