"""Canonical fast path: whatever ClickHouse accepts through it, pydantic accepts too, and
the stored row is the row the pydantic path stores (generated records, both backends)."""

from __future__ import annotations

import datetime as dt
import re
import uuid
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from pulse_attribution.storage import TOUCHPOINT_COLUMNS, touchpoint_row
from pulse_shared.canonical import (
    CanonicalInsert,
    UnsupportedModel,
    canonical_insert,
    field_values,
    forbidden_class,
)
from pulse_shared.events import (
    Channel,
    Spend,
    Touchpoint,
    TouchType,
    event_window,
    is_forbidden_char,
)
from pulse_shared.privacy import QUICK_CLEAN_REFUSES, quick_clean
from pulse_shared.settings import common_settings
from pulse_shared.store import Store, StoreDataError, StoreError

CONTACT = "ab" * 32
TEXT = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12)


def touchpoint(**overrides: Any) -> Touchpoint:
    fields: dict[str, Any] = {
        "event_id": f"c-{uuid.uuid4().hex[:10]}", "account_id": "acct-1", "contact_id": CONTACT,
        "occurred_at": dt.datetime(2026, 3, 31, 23, 59, 59, 123000, tzinfo=dt.UTC),
        "channel": Channel.EMAIL, "touch_type": TouchType.EMAIL_CLICK,
        "campaign_id": "Spring Sale 2026", "cost": Decimal("12.5"),
    }
    fields.update(overrides)
    return Touchpoint(**fields)


@pytest.fixture()
def twin_tables(any_store: Store) -> tuple[Store, CanonicalInsert, str]:
    """Two empty tables like ``touchpoints``: one per path."""
    suffix = uuid.uuid4().hex[:8]
    for name in (f"canon_{suffix}", f"pyd_{suffix}"):
        any_store.command(f"CREATE TABLE {name} AS touchpoints")
    return any_store, canonical_insert(Touchpoint, f"canon_{suffix}"), f"pyd_{suffix}"


def rows(store: Store, table: str) -> list[dict[str, Any]]:
    cols = ", ".join(TOUCHPOINT_COLUMNS)
    return store.query(f"SELECT {cols} FROM {table} ORDER BY event_id")


# Mutations of a canonical record: each keeps valid JSON, most make it non-canonical or
# invalid. The property below must hold whichever the result.
MUTATIONS: list[tuple[bytes, bytes]] = [
    (b'"campaign_id":"', b'"campaign_id":" '),  # edge whitespace (pydantic strips)
    (b'"campaign_id":"', b'"campaign_id":"\\u00a0'),  # escaped NBSP
    (b'"account_id":"', b'"account_id":"x@example.com'),  # raw e-mail
    (b'"currency":"USD"', b'"currency":"usd"'),  # pydantic upper-cases
    (b'"currency":"USD"', b'"currency":null'),
    (b'"cost":"12.5"', b'"cost":12.5'),  # number instead of string
    (b'"cost":"12.5"', b'"cost":"12.55555"'),  # too many decimal places
    (b'"cost":"12.5"', b'"cost":"-1"'),
    (b"2026-03-31T", b"2026-02-30T"),  # no such day
    (b"2026-03-31T", b"2026-04-31T"),
    (b".123000Z", b".123456Z"),  # sub-millisecond precision
    (b".123000Z", b"+02:00"),  # an offset: pydantic converts to UTC
    (b".123000Z", b""),  # naive: pydantic rejects
    (b'"channel":"email"', b'"channel":"fax"'),
    (b'"channel":"email"', b'"channel":"EMAIL"'),
    (b',"touch_type":"email_click"', b""),  # required field missing
    (b'"contact_id":"', b'"contact_id":"A'),
    (b"}", b',"extra":1}'),  # unknown field
    (b"}", b',"event_id":"dup"}'),  # duplicate key
    (b'"account_id":"acct-1"', b'"account_id":1'),
    (b'"account_id":"acct-1"', b'"account_id":""'),
    (b'"account_id":"acct-1"', b'"account_id":["acct-1"]'),
]


def check_sound(store: Store, spec: CanonicalInsert, pyd_table: str, record: bytes) -> bool:
    """Canonical accepted ⇒ pydantic accepts and both paths store the same row."""
    lines = spec.lines([record])
    accepted = False
    if lines is not None:
        try:
            store.insert_canonical(spec, lines)
            accepted = True
        except StoreError:
            accepted = False
    if not accepted:
        return False
    event = Touchpoint.model_validate_json(record)  # raises → the fast path was unsound
    store.insert(pyd_table, [touchpoint_row(event)], TOUCHPOINT_COLUMNS)
    ours = [r for r in rows(store, spec.table) if r["event_id"] == event.event_id]
    theirs = [r for r in rows(store, pyd_table) if r["event_id"] == event.event_id]
    assert ours == theirs and len(ours) == 1
    return True


def test_canonical_records_land_like_pydantic_ones(twin_tables: Any) -> None:
    store, spec, pyd_table = twin_tables
    records = [touchpoint(event_id=f"ok-{i}", cost=None if i % 2 else Decimal(i)).to_json()
               for i in range(20)]
    records.append(touchpoint(event_id="naive-ms", occurred_at=dt.datetime(
        2024, 2, 29, 0, 0, tzinfo=dt.UTC)).to_json())  # leap day
    for record in records:
        assert check_sound(store, spec, pyd_table, record), record


def test_every_mutation_is_rejected_or_equivalent(twin_tables: Any) -> None:
    store, spec, pyd_table = twin_tables
    base = touchpoint(event_id="mut").to_json()
    rejected = 0
    for i, (old, new) in enumerate(MUTATIONS):
        assert old in base, old
        record = base.replace(b'"event_id":"mut"', f'"event_id":"mut-{i}"'.encode(), 1)
        record = record.replace(old, new, 1)
        if not check_sound(store, spec, pyd_table, record):
            rejected += 1
    assert rejected == len(MUTATIONS)  # each of these is non-canonical or invalid
    # Valid variations that ClickHouse stores exactly like pydantic does are fine.
    for i, (old, new) in enumerate([(b'"cost":"12.5"', b'"cost":null'),
                                    (b',"utm_term":""', b"")]):
        record = base.replace(b'"event_id":"mut"', f'"event_id":"ok-{i}"'.encode(), 1)
        assert check_sound(store, spec, pyd_table, record.replace(old, new, 1))


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(values=st.fixed_dictionaries({
    "account_id": TEXT, "campaign_id": TEXT, "utm_term": TEXT, "currency": TEXT,
    "cost": st.one_of(st.none(), st.text(alphabet="0123456789.-e", max_size=20)),
    "occurred_at": st.text(alphabet="0123456789-T:.Z+ ", min_size=10, max_size=30),
}))
def test_generated_records_never_pass_unsoundly(twin_tables: Any, values: dict) -> None:
    import orjson

    store, spec, pyd_table = twin_tables
    record = orjson.loads(touchpoint(event_id="gen").to_json())
    record.update(values)
    record["event_id"] = f"gen-{uuid.uuid4().hex[:12]}"
    raw = orjson.dumps(record)
    try:
        Touchpoint.model_validate_json(raw)
        valid = True
    except ValidationError:
        valid = False
    if check_sound(store, spec, pyd_table, raw):
        assert valid


def test_lines_refuses_batches_that_could_hide_records() -> None:
    spec = canonical_insert(Touchpoint, "touchpoints")
    good = touchpoint().to_json()
    assert spec.lines([good, good]) == good + b"\n" + good
    assert spec.lines([good + good]) is None  # two objects in one record
    assert spec.lines([good[:-1] + b"},{" + good[1:]]) is None
    assert spec.lines([good.replace(b'"acct-1"', b'"a\\"b"')]) is None  # an escape
    assert spec.lines([good + b"\n"]) is None
    assert spec.lines([good, "text"]) is None  # type: ignore[list-item]
    assert spec.lines([b"\xff" + good]) is None
    assert spec.lines([]) is None
    assert field_values(spec.lines([good, touchpoint(account_id="b").to_json()]) or b"",
                        "account_id") == ["acct-1", "b"]


def test_models_the_conditions_cannot_mirror_are_refused() -> None:
    with pytest.raises(UnsupportedModel):
        canonical_insert(Spend, "spend")  # int fields: no canonical conditions yet

    class Loose(BaseModel):
        name: str

    with pytest.raises(UnsupportedModel):
        canonical_insert(Loose, "loose")  # unknown fields would be accepted


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    campaign=TEXT, term=TEXT,
    # Around the plausibility window: 1995 to two days ahead of now.
    at=st.datetimes(min_value=dt.datetime(1995, 1, 1),
                    max_value=dt.datetime.now() + dt.timedelta(days=2),
                    timezones=st.just(dt.UTC)),
    cost=st.one_of(st.none(), st.decimals(min_value=0, max_value=10**6, places=4)),
)
def test_generated_valid_touchpoints_round_trip(
    twin_tables: Any, campaign: str, term: str, at: dt.datetime, cost: Decimal | None
) -> None:
    store, spec, pyd_table = twin_tables
    try:
        event = touchpoint(campaign_id=campaign, utm_term=term, occurred_at=at, cost=cost)
    except ValidationError:
        return  # e.g. an e-mail-like campaign name: not a valid event at all
    accepted = check_sound(store, spec, pyd_table, event.to_json())
    plain = all(s.isascii() and s.isalnum() for s in (campaign, term) if s)
    if plain and at.microsecond % 1000 == 0:
        assert accepted  # the fast path is not vacuous: ordinary events take it


#: Characters pydantic refuses in identifiers and labels, raw in the JSON (model_dump_json
#: writes them unescaped, so they reach the canonical path's conditions).
INVISIBLE = ["\u202e", "\u200b", "\u200d", "\u2060", "\ufeff", "\x7f", "\x85", "\u00ad",
             "\u2028", "\ue000", "\U000e0041", "\ufdd0", "\uffff", "\U0010ffff"]


@pytest.mark.parametrize("char", INVISIBLE, ids=lambda c: f"U+{ord(c):04X}")
def test_invisible_characters_never_take_the_fast_path(twin_tables: Any, char: str) -> None:
    store, spec, pyd_table = twin_tables
    base = touchpoint(event_id=f"inv-{ord(char):x}").to_json()
    for old in (b'"account_id":"acct-1"', b'"campaign_id":"Spring Sale 2026"'):
        key, value = old.split(b":", 1)
        record = base.replace(old, key + b":" + value[:3] + char.encode() + value[3:], 1)
        with pytest.raises(ValidationError, match="invisible"):
            Touchpoint.model_validate_json(record)
        assert not check_sound(store, spec, pyd_table, record), record


def test_visible_non_ascii_text_takes_the_fast_path(twin_tables: Any) -> None:
    store, spec, pyd_table = twin_tables
    # (Edge characters are printable ASCII in canonical form: nothing for strip() to do.)
    for i, name in enumerate(["Summer Été à Zürich", "Q1 春季促销 CN", "launch 🚀 now",
                              "a\u00a0b", "ex\u0301x"]):
        record = touchpoint(event_id=f"vis-{i}", campaign_id=name).to_json()
        assert check_sound(store, spec, pyd_table, record), name


def test_out_of_window_times_never_take_the_fast_path(twin_tables: Any) -> None:
    """The canonical format admits years 1900-2299; the model's window is narrower."""
    store, spec, pyd_table = twin_tables
    window = event_window()
    late = window.latest + dt.timedelta(minutes=1)
    base = touchpoint(event_id="win").to_json()
    for i, at in enumerate(["1999-12-31T23:59:59.999Z", "1900-01-01T00:00:00Z",
                            late.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
                            "2299-12-31T23:59:59Z"]):
        record = base.replace(b"2026-03-31T23:59:59.123000Z", at.encode(), 1).replace(
            b'"event_id":"win"', f'"event_id":"win-{i}"'.encode(), 1)
        with pytest.raises(ValidationError, match="occurred_at"):
            Touchpoint.model_validate_json(record)
        assert not check_sound(store, spec, pyd_table, record), at
    # Both ends of the window are inside it, on both paths.
    recent = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)).replace(microsecond=0)
    for i, at in enumerate([window.earliest, recent]):
        record = touchpoint(event_id=f"edge-{i}", occurred_at=at).to_json()
        assert check_sound(store, spec, pyd_table, record), at


def test_window_bounds_are_those_of_the_moment_of_the_insert() -> None:
    spec = canonical_insert(Touchpoint, "touchpoints")
    then = dt.datetime(2031, 5, 6, 7, 8, 9, 987654, tzinfo=dt.UTC)
    sql = spec.sql("input()", now=then)
    latest = then + common_settings().max_future_skew
    earliest = common_settings().earliest_event_date
    assert f"substring(occurred_at, 1, 19) < '{latest:%Y-%m-%dT%H:%M:%S}'" in sql
    assert f"substring(occurred_at, 1, 19) >= '{earliest}T00:00:00'" in sql


def test_forbidden_class_is_exactly_what_pydantic_refuses() -> None:
    """The class is built from a partial scan; a full scan of every code point agrees."""
    # RE2 \x{HEX} escapes → Python \UXXXXXXXX escapes, same class.
    python_class = re.sub(r"\\x\{([0-9A-F]+)\}",
                          lambda m: f"\\U{int(m.group(1), 16):08X}", forbidden_class())
    pattern = re.compile(python_class)
    for code in range(0x110000):
        if 0xD800 <= code <= 0xDFFF:  # cannot occur in UTF-8 input
            continue
        char = chr(code)
        assert bool(pattern.match(char)) == is_forbidden_char(char), hex(code)


# -- The PII pre-check: ClickHouse flags, Python decides -------------------------------------


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(texts=st.lists(st.one_of(
    TEXT, st.text(alphabet="0123456789-x./()[]~ \t\n\r\x0b\x0c@%&+:aZ_é\x00", max_size=12)),
    min_size=1, max_size=40))
def test_the_sql_pre_check_flags_exactly_what_quick_clean_flags(
    any_store: Store, texts: list[str]
) -> None:
    """ClickHouse's RE2 and Python's re agree with the byte-table check they replace."""
    python = re.compile(QUICK_CLEAN_REFUSES)
    expected = [not quick_clean(t.encode()) for t in texts]
    assert [python.search(t) is not None for t in texts] == expected
    flagged = any_store.query_value(
        "SELECT arrayMap(t -> match(t, {p:String}), {texts:Array(String)})",
        {"p": QUICK_CLEAN_REFUSES, "texts": texts},
    )
    assert [bool(f) for f in flagged] == expected


def test_the_insert_checks_only_flagged_batches_in_python(twin_tables: Any) -> None:
    """Clean batches: one insert; flagged but clean: inserted after the full check; PII:
    refused whole, nothing stored."""
    store, spec, _ = twin_tables
    at = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(days=1)

    def record(event_id: str, **fields: str) -> bytes:
        return touchpoint(event_id=event_id, occurred_at=at).to_json().replace(
            b'"utm_term":""', f'"utm_term":"{fields.get("utm_term", "")}"'.encode(), 1)

    plain = [record(f"plain{i}") for i in range(3)]
    flagged = [record("flagged", utm_term="c-6208717303 2026-11-25 12345678.90")]
    pii = [record("pii", utm_term="call +1-555-867-5309")]
    assert "PII check" in spec.sql("input()") and "PII check" not in spec.sql(
        "input()", pii_checked=True)
    for batch in (plain, plain + flagged):
        lines = spec.frame(batch)
        assert lines is not None and not spec.holds_pii(lines)
        store.insert_canonical(spec, lines)
    lines = spec.frame(plain + pii)
    assert lines is not None and spec.lines(plain + pii) is None  # frame leaves PII to the insert
    with pytest.raises(StoreDataError, match="PII"):
        store.insert_canonical(spec, lines)
    ids = {r["event_id"] for r in store.query(f"SELECT event_id FROM {spec.table}")}
    assert ids == {"plain0", "plain1", "plain2", "flagged"}
    # A batch that is flagged and not canonical is refused as not canonical.
    bad = record("bad").replace(b'"currency":"USD"', b'"currency":"usd"')
    with pytest.raises(StoreError, match="canonical"):
        store.insert_canonical(spec, spec.frame(flagged + [bad]) or b"")


async def test_after_a_flagged_batch_the_writer_checks_in_python_first(
    twin_tables: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stream whose values the pre-check keeps flagging does not pay a refused insert per
    batch: the next batches are checked in Python and inserted once; then ClickHouse's
    pre-check is tried again."""
    from pulse_shared.writer import PII_CHECKS_FIRST_AFTER_FLAG, RowWriter

    store, spec, _ = twin_tables
    at = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(days=1)
    inserts: list[bool] = []  # pii_checked of every insert statement
    original = store._insert_canonical

    def spy(spec: CanonicalInsert, lines: bytes, *, pii_checked: bool) -> None:
        inserts.append(pii_checked)
        original(spec, lines, pii_checked=pii_checked)

    monkeypatch.setattr(store, "_insert_canonical", spy)
    writer = RowWriter(store, "test")

    def batch(i: int, term: str) -> bytes:
        record = touchpoint(event_id=f"w{i}", occurred_at=at).to_json().replace(
            b'"utm_term":""', f'"utm_term":"{term}"'.encode(), 1)  # (PII: no model)
        return spec.frame([record]) or b""

    assert await writer.write_canonical(spec, batch(0, "plain"), 1)
    assert inserts == [False]  # pre-check in ClickHouse, passed
    assert await writer.write_canonical(spec, batch(1, "launch 2026-05-01"), 1)
    assert inserts[1:] == [False, True]  # flagged, checked in Python, inserted again
    for i in range(PII_CHECKS_FIRST_AFTER_FLAG):
        assert await writer.write_canonical(spec, batch(2 + i, "spring 2026-05"), 1)
    assert inserts[3:] == [True] * PII_CHECKS_FIRST_AFTER_FLAG  # one insert each
    assert not await writer.write_canonical(spec, batch(99, "call +1-555-867-5309"), 1)
    assert inserts[-1] is False  # ClickHouse's pre-check again (flagged: PII, refused)
    stored = store.query_value(f"SELECT count() FROM {spec.table}")
    assert stored == 2 + PII_CHECKS_FIRST_AFTER_FLAG
