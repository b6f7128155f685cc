"""Canonical fast path: let ClickHouse parse and check records that are provably valid.

Decoding every record with pydantic costs ~7 µs in Python; a consumer that does it tops out
near 30k events/s per core. Records produced by Pulse's own services are the canonical JSON
of a valid model (``model_dump_json``: every field, in order, UTC ``Z`` timestamps, decimals
as strings). For those, a batch can go to ClickHouse as raw JSON lines: an ``INSERT …
SELECT … FROM input(…)`` parses them server side and ``throwIf`` aborts the whole insert
unless every row passes conditions *derived from the model* — a deliberately conservative
subset of what pydantic accepts (no ``@`` at all instead of "no e-mail address", no edge
whitespace instead of stripping it, no JSON escapes, all fields present). Phone numbers (and
disguised addresses) are beyond SQL, but their conservative pre-check
(:func:`~pulse_shared.privacy.quick_clean`: no ``@ % & + :``, no non-ASCII, no grouped
digits) is not: ClickHouse runs it on the free-text values it parses and refuses a batch
it flags with :data:`PII_CHECK_NEEDED`; only then does Python run the model's own PII
detector (:meth:`CanonicalInsert.holds_pii`) and insert again without the pre-check, or
send a batch holding PII to the pydantic path (``Store.insert_canonical``). The model's own
checks are mirrored exactly where they are not a formatting question: the characters
:func:`~pulse_shared.events.visible` forbids (one character class built from the same
predicate), and the :class:`~pulse_shared.events.InWindow` time window, whose bounds are
computed when the statement is built, just before the insert (a later pydantic validation
only sees a later, wider window).

Soundness (tested with generated inputs): whenever the canonical insert succeeds, pydantic
accepts every record and the stored rows equal the rows the pydantic path stores. When it
fails — one non-canonical or invalid record — nothing of the batch is trusted: the caller
falls back to per-record pydantic validation, which dead-letters the bad records with reasons.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
import types
import typing
from dataclasses import dataclass
from decimal import Decimal
from enum import Enum
from typing import Any

from annotated_types import Ge
from pydantic import AfterValidator, AwareDatetime, BaseModel, StringConstraints

from pulse_shared.events import (
    VISIBLE_ALLOW,
    EventWindow,
    InWindow,
    event_window,
    is_forbidden_char,
    no_raw_pii,
    to_utc,
)
from pulse_shared.privacy import QUICK_CLEAN_REFUSES, contains_pii, quick_clean

#: Model-level validators whose effect the conditions below reproduce conservatively.
KNOWN_MODEL_VALIDATORS: frozenset[str] = frozenset()
#: Printable ASCII except ``@``: the first and last character of a stripped string.
_EDGE = "[!-?A-~]"
_DATETIME = (
    r"^(?:19[0-9]{2}|2[0-2][0-9]{2})-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12][0-9]|3[01])"
    # At most millisecond precision (the tables' DateTime64(3)), so no rounding question.
    r"T(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:[.][0-9]{1,3}0{0,3})?Z$"
)
_DATE = r"^(?:19[0-9]{2}|2[0-2][0-9]{2})-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12][0-9]|3[01])$"
#: Input parsing as strict as pydantic's JSON mode: no coercion from numbers, bools,
#: objects or arrays to strings, no null for non-nullable columns, no unknown fields;
#: and single-threaded (see below).
INSERT_SETTINGS: dict[str, int] = {
    "input_format_skip_unknown_fields": 0,
    "input_format_null_as_default": 0,
    "input_format_json_read_numbers_as_strings": 0,
    "input_format_json_read_bools_as_strings": 0,
    "input_format_json_read_objects_as_strings": 0,
    "input_format_json_read_arrays_as_strings": 0,
    # One thread parses and checks a batch: below the 10 MiB parallel-parsing chunk the
    # extra threads only cost CPU (~0.5 µs/event of server CPU on 20k-record inserts,
    # ~9 % of the insert; bench/pipeline/README.md).
    "input_format_parallel_parsing": 0,
    "max_threads": 1,
}
#: A second object (or array) after one closes, within a line (lines hold no newline).
_TWO_OBJECTS = re.compile(rb"\}[ \t\r]*,?[ \t\r]*[\[{]")
#: The insert's messages: a record fails the conditions (the batch takes the pydantic
#: path), or some free-text value needs the full PII check (:meth:`CanonicalInsert.sql`).
NOT_CANONICAL = "record not in canonical form"
PII_CHECK_NEEDED = "a value needs the PII check"


class UnsupportedModel(TypeError):
    """The model has a field or validator the canonical conditions cannot express."""


def sql_string(text: str) -> str:
    """A ClickHouse string literal (for SQL built from code, never from input)."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


@dataclass(frozen=True)
class CanonicalColumn:
    name: str
    input_type: str  # type in the input() structure
    select: str  # expression producing the table column from the input column
    conditions: tuple[str, ...]
    window: str | None = None  # InWindow horizon, checked against the window of the insert
    visible_allow: str | None = None  # no forbidden character but these (VISIBLE_ALLOW)
    nullable: bool = False
    #: Checked by :func:`~pulse_shared.events.no_raw_pii` (mirrored by the insert's
    #: pre-check and :meth:`CanonicalInsert.holds_pii`).
    pii_scan: bool = False

    def window_condition(self, window: EventWindow) -> str:
        """The value lies in ``window`` (for the column's horizon), as pydantic checks it.

        Compared as text, which costs a fraction of parsing again: the patterns above
        already fixed the layout (``YYYY-MM-DD``, ``YYYY-MM-DDTHH:MM:SS[.fff]Z``), in which
        text order is time order up to the second. A fraction only makes a time later, so
        the earliest bound (a midnight) holds on the whole seconds; the latest is taken
        strictly below its whole second, which refuses (to the pydantic path) at most the
        last second of the window, never admits a time past it.
        """
        latest = window.latest if self.window == "event" else window.latest_planned
        if "DateTime64" in self.select:
            value = f"substring({self.name}, 1, 19)"
            low = sql_string(window.earliest.strftime("%Y-%m-%dT%H:%M:%S"))
            cond = (f"{value} >= {low} AND "
                    f"{value} < {sql_string(latest.strftime('%Y-%m-%dT%H:%M:%S'))}")
        else:
            cond = (f"{self.name} >= {sql_string(window.earliest.date().isoformat())} AND "
                    f"{self.name} <= {sql_string(latest.date().isoformat())}")
        return f"({self.name} IS NULL OR ({cond}))" if self.nullable else cond


@functools.cache
def forbidden_class(allow: str = "") -> str:
    """An RE2 character class matching every :func:`is_forbidden_char` not in ``allow``.

    Scanned from the same predicate pydantic uses. Outside planes 0, 1 and 14 the only
    forbidden code points are the noncharacters U+xFFFE/U+xFFFF and planes 15-16 (private
    use), so those are added whole instead of scanned (tests compare with a full scan).
    Surrogates are left out: they cannot occur in valid UTF-8 (``lines`` checks it) and RE2
    refuses them in a class.
    """
    codes = [c for plane in (0, 1, 14) for c in range(plane << 16, (plane + 1) << 16)
             if not 0xD800 <= c <= 0xDFFF and chr(c) not in allow and is_forbidden_char(chr(c))]
    codes += [(plane << 16) | low for plane in range(2, 14) for low in (0xFFFE, 0xFFFF)]
    codes += range(0xF0000, 0x110000)
    ranges: list[list[int]] = []
    for code in sorted(codes):
        if ranges and ranges[-1][1] == code - 1:
            ranges[-1][1] = code
        else:
            ranges.append([code, code])
    parts = (f"\\x{{{a:X}}}" if a == b else f"\\x{{{a:X}}}-\\x{{{b:X}}}" for a, b in ranges)
    return "[" + "".join(parts) + "]"


def _metadata(annotation: Any, metadata: list[Any]) -> tuple[Any, list[Any], bool]:
    """Unwrap ``Optional[Annotated[T, ...]]`` into (T, all metadata, nullable)."""
    items = list(metadata)
    nullable = False
    while True:
        origin = typing.get_origin(annotation)
        if origin is typing.Annotated:
            annotation, *extra = typing.get_args(annotation)
            for item in extra:
                items.extend(getattr(item, "metadata", None) or [item])
        elif origin in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(annotation) if a is not type(None)]
            if len(args) != 1:
                raise UnsupportedModel(f"union {annotation!r}")
            nullable = True
            annotation = args[0]
        else:
            return annotation, items, nullable


def _string_conditions(name: str, constraints: list[StringConstraints]) -> list[str]:
    conds = [f"position({name}, '@') = 0"]  # stricter than the model's e-mail rule
    min_len = max((c.min_length or 0 for c in constraints), default=0)
    if min_len:
        conds.append(f"lengthUTF8({name}) >= {min_len}")
    max_lens = [c.max_length for c in constraints if c.max_length is not None]
    if max_lens:
        conds.append(f"lengthUTF8({name}) <= {min(max_lens)}")
    if any(c.strip_whitespace for c in constraints):
        # Nothing for strip() to remove: ASCII printable first and last characters.
        conds.append(f"match({name}, {sql_string(f'^(?:{_EDGE}(?:(?s:.*){_EDGE})?)?$')})")
    for c in constraints:
        if c.pattern is not None:
            conds.append(f"match({name}, {sql_string(str(c.pattern))})")
        if c.to_upper:
            conds.append(f"{name} = upper({name})")
        if c.to_lower:
            conds.append(f"{name} = lower({name})")
    return conds


def _column(name: str, field: Any) -> CanonicalColumn:
    base, meta, nullable = _metadata(field.annotation, field.metadata)
    validators = [m.func for m in meta if isinstance(m, AfterValidator)]
    if any(v is not to_utc and v is not no_raw_pii and v not in VISIBLE_ALLOW
           and not isinstance(v, InWindow) for v in validators):
        raise UnsupportedModel(f"{name}: custom validator")
    window = next((v.horizon for v in validators if isinstance(v, InWindow)), None)
    visible = next((VISIBLE_ALLOW[v] for v in validators if v in VISIBLE_ALLOW), None)
    if visible is not None and base is not str or window is not None and base is str:
        raise UnsupportedModel(f"{name}: validator on an unexpected type")
    conds: list[str]
    input_type = "String"
    select = name
    string_constraints = [m for m in meta if isinstance(m, StringConstraints)]
    pii_scan = no_raw_pii in validators
    if pii_scan and base is not str:
        raise UnsupportedModel(f"{name}: PII validator on an unexpected type")
    if isinstance(base, type) and issubclass(base, Enum):
        values = ", ".join(sql_string(str(m.value)) for m in base)
        conds = [f"{name} IN ({values})"]
    elif base is str:
        conds = _string_conditions(name, string_constraints)
    elif base in (AwareDatetime, dt.datetime) and to_utc in validators:
        # Only UTC 'Z' timestamps; the date must survive parsing (no 30 February).
        conds = [
            f"match({name}, {sql_string(_DATETIME)})",
            f"toString(toDate(parseDateTime64BestEffortOrZero({name}, 6, 'UTC'))) "
            f"= substring({name}, 1, 10)",
        ]
        select = f"parseDateTime64BestEffort({name}, 3, 'UTC')"
    elif base is dt.date:
        conds = [f"match({name}, {sql_string(_DATE)})",
                 f"toString(toDateOrZero({name})) = {name}"]
        select = f"toDate({name})"
    elif base is Decimal:
        general = {k: getattr(m, k) for m in meta for k in ("max_digits", "decimal_places")
                   if getattr(m, k, None) is not None}
        if not any(isinstance(m, Ge) and m.ge == 0 for m in meta) or len(general) != 2:
            raise UnsupportedModel(f"{name}: only non-negative decimals with fixed precision")
        places, digits = general["decimal_places"], general["max_digits"]
        pattern = f"^[0-9]{{1,{digits - places}}}(?:[.][0-9]{{1,{places}}})?$"
        conds = [f"match({name}, {sql_string(pattern)})"]
        select = f"toDecimal64({name}, {places})"
    else:
        raise UnsupportedModel(f"{name}: {base!r}")
    if nullable:
        input_type = f"Nullable({input_type})"
        conds = [f"({name} IS NULL OR ({' AND '.join(conds)}))"]
        select = f"if({name} IS NULL, NULL, {select})"
    # No alias: WHERE must see the input column, not the converted one of the same name.
    return CanonicalColumn(
        name, input_type, select, tuple(conds), window, visible, nullable, pii_scan
    )


@dataclass(frozen=True)
class CanonicalInsert:
    """How one model's canonical JSON lines go into one table (columns = model fields)."""

    model: type[BaseModel]
    table: str
    columns: tuple[CanonicalColumn, ...]
    first_key: bytes  # every canonical record starts with this

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    @property
    def structure(self) -> str:
        return ", ".join(f"{c.name} {c.input_type}" for c in self.columns)

    def sql(
        self, source: str, now: dt.datetime | None = None, *, pii_checked: bool = False
    ) -> str:
        """``INSERT … SELECT`` from ``source`` (``input(…)`` or ``format(…)``), with the
        time window as of ``now`` (default: the wall clock).

        Unless ``pii_checked`` (the batch passed :meth:`holds_pii` already), ClickHouse
        also runs the PII pre-check on the free-text values it has just parsed — the
        conservative :func:`~pulse_shared.privacy.quick_clean`, in RE2 — and refuses the
        batch with :data:`PII_CHECK_NEEDED` if any value needs a closer look. That check
        is per value, which Python could only do by extracting every value (~1.5 µs per
        touchpoint); ClickHouse reads the values anyway. It runs after the canonical
        conditions (``and`` evaluates its second argument only where the first holds), so
        that refusal normally means every record is canonical and only the PII question is
        open; if not, the insert after the full check refuses the batch as not canonical.
        """
        conditions = [cond for c in self.columns for cond in c.conditions]
        conditions += self._visible_conditions()
        window = event_window(now)
        conditions += [c.window_condition(window) for c in self.columns if c.window]
        condition = " AND ".join(conditions)
        where = f"throwIf(NOT ({condition}), {sql_string(NOT_CANONICAL)}) = 0"
        if self.pii_columns and not pii_checked:
            where += (f" AND throwIf({self._pii_precheck()}, "
                      f"{sql_string(PII_CHECK_NEEDED)}) = 0")
        # Built from the model's field names and constraints and the clock's window
        # bounds only; data never enters SQL.
        return (
            f"INSERT INTO {self.table} ({', '.join(self.column_names)}) "  # noqa: S608
            f"SELECT {', '.join(c.select for c in self.columns)} FROM {source} WHERE {where}"
        )

    def _pii_precheck(self) -> str:
        """True for a row with a free-text value that :func:`quick_clean` would not pass:
        one match over the values joined by NUL (no letter, ends digit runs: the join is
        clean only if each value is)."""
        names = [f"ifNull({c.name}, '')" if c.nullable else c.name
                 for c in self.columns if c.pii_scan]
        text = names[0] if len(names) == 1 else f"concat({', char(0), '.join(names)})"
        return f"match({text}, {sql_string(QUICK_CLEAN_REFUSES)})"

    def _visible_conditions(self) -> list[str]:
        """One ``match`` per allowed-character set over the concatenated columns (a
        character cannot straddle two valid UTF-8 strings, so this is per column)."""
        groups: dict[str, list[CanonicalColumn]] = {}
        for column in self.columns:
            if column.visible_allow is not None:
                groups.setdefault(column.visible_allow, []).append(column)
        conditions = []
        for allow, columns in groups.items():
            names = [f"ifNull({c.name}, '')" if c.nullable else c.name for c in columns]
            text = names[0] if len(names) == 1 else f"concat({', '.join(names)})"
            conditions.append(f"NOT match({text}, {sql_string(forbidden_class(allow))})")
        return conditions

    def frame(self, values: list[Any]) -> bytes | None:
        """The batch as JSON lines if it can try the canonical path, else ``None``.

        Cheap whole-buffer checks (C speed): bytes only, valid UTF-8, no escapes (so no
        string can hide a quote or a key), one record per line, one object per record.
        Whether a free-text value holds PII is the insert's question (its pre-check in
        ClickHouse, then :meth:`holds_pii` only for a batch the pre-check flags): nothing
        here costs a step per value.
        """
        if not values:
            return None
        try:
            data = b"\n".join(values)
        except TypeError:  # a value that is not bytes (None, text)
            return None
        if (
            b"\\" in data
            or data.count(b"\n") != len(values) - 1
            or data.count(self.first_key) != len(values)
            or _TWO_OBJECTS.search(data) is not None
        ):
            return None
        if not data.isascii():  # (a word-at-a-time scan; decoding builds a copy)
            try:
                data.decode("utf-8")
            except UnicodeDecodeError:
                return None
        return data

    def lines(self, values: list[Any]) -> bytes | None:
        """:meth:`frame`, and ``None`` too if a free-text value holds PII by the model's
        own detector (:meth:`holds_pii`, in Python: the answer before any insert)."""
        data = self.frame(values)
        if data is None or self.holds_pii(data):
            return None
        return data

    def holds_pii(self, data: bytes) -> bool:
        """Would the model's PII validator refuse a record of these framed lines? Values
        appear verbatim (no escapes, no edge whitespace), so they are exactly what pydantic
        checks. ~1.5 µs per touchpoint (a regex match per value): the insert runs it only
        for batches its pre-check flags."""
        pattern = _text_values_pattern(self.pii_columns)
        if pattern is None:
            return False
        values = pattern.findall(data)
        # One C-speed pre-check over all values; the full check only on flagged ones.
        if quick_clean(b"\x00".join(values)):
            return False
        return any(not quick_clean(v) and contains_pii(v.decode()) for v in values)

    @functools.cached_property
    def pii_columns(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns if c.pii_scan)


def field_values(lines: bytes, name: str) -> list[str]:
    """One string field of every canonical record, in record order (C-speed scan).

    Canonical lines contain no escapes, so ``"name":"`` can only be that key, and every
    record has it exactly once.
    """
    return [v.decode() for v in _field_pattern(name).findall(lines)]


def distinct_field_values(lines: bytes, name: str) -> list[str]:
    """The distinct values of one string field of canonical records, sorted (decoded once
    each, not once per record)."""
    return sorted(v.decode() for v in set(_field_pattern(name).findall(lines)))


@functools.cache
def _text_values_pattern(names: tuple[str, ...]) -> re.Pattern[bytes] | None:
    """Every value of these string fields in canonical lines, in one pass."""
    if not names:
        return None
    keys = b"|".join(re.escape(n.encode()) for n in names)
    return re.compile(b'"(?:' + keys + b')":"([^"]*)"')


@functools.cache
def _field_pattern(name: str) -> re.Pattern[bytes]:
    return re.compile(b'"' + re.escape(name.encode()) + b'":"([^"]*)"')


def canonical_insert(model: type[BaseModel], table: str) -> CanonicalInsert:
    """Conditions and conversions for ``model`` (raises :class:`UnsupportedModel`)."""
    decorators = model.__pydantic_decorators__
    if set(decorators.field_validators) - KNOWN_MODEL_VALIDATORS or decorators.model_validators:
        raise UnsupportedModel(f"{model.__name__}: validators the conditions cannot mirror")
    if model.model_config.get("extra") != "forbid":
        raise UnsupportedModel(f"{model.__name__}: unknown fields must be rejected")
    columns = tuple(_column(n, f) for n, f in model.model_fields.items())
    first = next(iter(model.model_fields))
    return CanonicalInsert(model, table, columns, b'{"' + first.encode() + b'":')
