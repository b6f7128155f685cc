"""One ClickHouse interface, two backends (server via clickhouse-connect, embedded chDB).

Both speak the same SQL and run the same migrations. Queries take server-side parameters
(``{name:Type}`` placeholders) only: no value is ever formatted into SQL text.
"""

from __future__ import annotations

import datetime as dt
import re
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pulse_shared.canonical import CanonicalInsert

Row = dict[str, Any]


class StoreError(RuntimeError):
    """A ClickHouse statement failed; carries the backend's message.

    ``code``/``name`` are ClickHouse's error code and symbolic name when known, ``column``
    the column (or input key) the message names. Raised as is when the cause is neither
    of the two kinds below (a bug, a missing table, a syntax error…).
    """

    def __init__(
        self,
        message: str,
        *,
        code: int | None = None,
        name: str | None = None,
        column: str | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.name = name
        self.column = column


class StoreDataError(StoreError):
    """ClickHouse refused the data itself (a value a column cannot hold, a parse, range or
    constraint error): sending it again cannot succeed, the refused rows must be set aside."""


class StoreUnavailable(StoreError):
    """ClickHouse could not take the statement right now (unreachable, connection reset,
    timeout, memory limit, too many parts…): the same statement may succeed later."""


class ReadOnlyStoreError(StoreError):
    """A write was attempted through a read-only store."""


# ClickHouse error names (src/Common/ErrorCodes.cpp) meaning "these values are refused".
# Any name starting with CANNOT_PARSE_ is one too.
DATA_ERROR_NAMES = frozenset({
    "ARGUMENT_OUT_OF_BOUND", "CANNOT_CONVERT_TYPE", "CANNOT_INSERT_NULL_IN_ORDINARY_COLUMN",
    "CANNOT_READ_ARRAY_FROM_TEXT", "DECIMAL_OVERFLOW",
    "FUNCTION_THROW_IF_VALUE_IS_NON_ZERO", "INCORRECT_DATA", "INCORRECT_NUMBER_OF_COLUMNS",
    "NUMBER_OF_DIMENSIONS_MISMATCHED", "SIZES_OF_ARRAYS_DONT_MATCH", "TOO_LARGE_ARRAY_SIZE",
    "TOO_LARGE_STRING_SIZE", "TYPE_MISMATCH", "UNKNOWN_ELEMENT_OF_ENUM",
    "VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE", "VIOLATED_CONSTRAINT", "CANNOT_CONVERT_CHARSET",
    "DATETIME_OVERFLOW", "CANNOT_PARSE_UUID", "CANNOT_PARSE_IPV4", "CANNOT_PARSE_IPV6",
})
# Names meaning "not now": the server is overloaded, restarting or its storage is busy.
TRANSIENT_ERROR_NAMES = frozenset({
    "ABORTED", "ALL_CONNECTION_TRIES_FAILED", "ALL_REPLICAS_ARE_STALE",
    "CANNOT_ALLOCATE_MEMORY", "KEEPER_EXCEPTION", "MEMORY_LIMIT_EXCEEDED",
    "NETWORK_ERROR", "NOT_ENOUGH_SPACE", "NO_REPLICA_HAS_PART", "QUERY_WAS_CANCELLED",
    "SOCKET_TIMEOUT", "TABLE_IS_READ_ONLY", "TIMEOUT_EXCEEDED", "TOO_MANY_PARTS",
    "TOO_MANY_SIMULTANEOUS_QUERIES", "TOO_MANY_QUERIES", "UNEXPECTED_PACKET_FROM_SERVER",
    "UNKNOWN_STATUS_OF_INSERT", "UNKNOWN_STATUS_OF_DISTRIBUTED_DDL_TASK",
    "REPLICA_IS_NOT_IN_QUORUM", "TOO_FEW_LIVE_REPLICAS",
    "DISTRIBUTED_TOO_MANY_PENDING_BYTES", "SERVER_OVERLOADED", "CANNOT_SCHEDULE_TASK",
    "POCO_EXCEPTION",
})
_NAME_RE = re.compile(r"\(([A-Z][A-Z0-9_]{2,})\)")
_CODE_RE = re.compile(r"\bCode:\s*(\d+)")
# Where ClickHouse (server, chDB) and clickhouse-connect name the offending column.
_COLUMN_RES = (
    re.compile(r"for column `([^`]+)`"),  # clickhouse-connect: Unable to create native array
    re.compile(r"value of key ([A-Za-z_][\w.]*)"),  # JSONEachRow parse errors
    re.compile(r"Column values: ([A-Za-z_][\w.]*) ="),  # VIOLATED_CONSTRAINT
    re.compile(r"\bcolumn `([^`]+)`", re.IGNORECASE),
)
_CLIENT_PREFIX_RE = re.compile(r"^Received ClickHouse exception, code: \d+, server response: ")
_URL_TRAILER_RE = re.compile(r"\s*\((?:version [^()]*(?:\([^()]*\))?[^()]*|for url [^()]*)\)")


def error_name(message: str) -> str | None:
    """ClickHouse's symbolic error name in a message (the last ``(NAME)``)."""
    names = _NAME_RE.findall(message)
    return str(names[-1]) if names else None


def error_code(message: str) -> int | None:
    match = _CODE_RE.search(message)
    return int(match.group(1)) if match else None


def error_column(message: str) -> str | None:
    """The column or input key a ClickHouse error message is about, if it names one."""
    for pattern in _COLUMN_RES:
        match = pattern.search(message)
        if match:
            return match.group(1)
    return None


def clean_message(message: str) -> str:
    """The message without the server version / URL trailers (stable, shorter reasons)."""
    return _URL_TRAILER_RE.sub("", _CLIENT_PREFIX_RE.sub("", message.strip())).strip()


def classify_error(
    message: str, *, code: int | None = None, name: str | None = None,
    data: bool = False, transient: bool = False,
) -> StoreError:
    """The :class:`StoreError` subclass for a backend failure: refused data, unavailable
    server, or (neither recognised) plain :class:`StoreError`. ``data``/``transient`` force
    the kind when the caller knows it from the exception type."""
    name = name or error_name(message)
    code = code if code is not None else error_code(message)
    text = clean_message(message)
    kind: type[StoreError] = StoreError
    if data or (name is not None and (
        name in DATA_ERROR_NAMES or name.startswith("CANNOT_PARSE_")
    )):
        kind = StoreDataError
    elif transient or (name is not None and name in TRANSIENT_ERROR_NAMES):
        kind = StoreUnavailable
    column = error_column(text) if kind is StoreDataError else None
    return kind(text, code=code, name=name, column=column)


def normalise_value(value: Any) -> Any:
    """Make both backends return the same Python types (UTC-aware datetimes, …)."""
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)
    if isinstance(value, list):
        return [normalise_value(v) for v in value]
    if isinstance(value, tuple):
        return tuple(normalise_value(v) for v in value)
    if isinstance(value, dict):
        return {k: normalise_value(v) for k, v in value.items()}
    return value


class Store(ABC):
    """ClickHouse access used by every service's ``storage.py``."""

    backend: str = "abstract"
    supports_access_control: bool = False
    """Whether the backend has users and roles at all (a server does; embedded chDB does
    not), i.e. whether access-control migrations can apply to it."""
    cluster: str | None = None
    """The ClickHouse cluster the schema spans (``PULSE_CLICKHOUSE_CLUSTER``), None on one
    node: migrations and mutations are rendered for it (:mod:`pulse_shared.schema.cluster`)."""

    def __init__(self, readonly: bool = False) -> None:
        self.readonly = readonly

    def _check_writable(self) -> None:
        if self.readonly:
            raise ReadOnlyStoreError("this store is read-only")

    @abstractmethod
    def command(self, sql: str, parameters: Mapping[str, Any] | None = None) -> None:
        """Run a statement that returns no rows (DDL, INSERT … SELECT, OPTIMIZE)."""

    @abstractmethod
    def query(self, sql: str, parameters: Mapping[str, Any] | None = None) -> list[Row]:
        """Run a SELECT and return rows as dicts with normalised Python values."""

    @abstractmethod
    def insert(
        self, table: str, rows: Sequence[Mapping[str, Any]], columns: Sequence[str]
    ) -> None:
        """Insert rows (dicts keyed by column) in one batch; returns once confirmed."""

    def insert_canonical(
        self, spec: CanonicalInsert, lines: bytes, *, pii_checked: bool = False
    ) -> bool:
        """Insert canonical JSON lines (``spec.frame(values)``) through ``spec``'s checked
        ``INSERT … SELECT``; ``pii_checked``: the caller found no PII with
        :meth:`CanonicalInsert.holds_pii` already.

        All or nothing: raises :class:`StoreError` if any line fails the conditions, and
        :class:`StoreDataError` if a free-text value holds PII. ClickHouse pre-checks the
        values (:meth:`CanonicalInsert.sql`); only a batch it flags is checked in Python
        and, when clean, inserted again without the pre-check — one more insert for such
        batches, none for the others. Returns True for a batch the pre-check flagged.
        """
        from pulse_shared.canonical import PII_CHECK_NEEDED

        try:
            self._insert_canonical(spec, lines, pii_checked=pii_checked)
            return False
        except StoreError as exc:
            # The thrown message starts ClickHouse's text ("DB::Exception: <message>: while
            # executing …"); quoted in an expression it would not follow "Exception: ".
            if isinstance(exc, StoreUnavailable) or f"Exception: {PII_CHECK_NEEDED}" not in str(exc):
                raise
            if spec.holds_pii(lines):
                raise StoreDataError("a free-text value holds PII (the model refuses it)") from exc
        self._insert_canonical(spec, lines, pii_checked=True)
        return True

    @abstractmethod
    def _insert_canonical(self, spec: CanonicalInsert, lines: bytes, *, pii_checked: bool) -> None:
        """Run ``spec.sql(…, pii_checked=pii_checked)`` on ``lines`` (all or nothing)."""

    def query_value(self, sql: str, parameters: Mapping[str, Any] | None = None) -> Any:
        rows = self.query(sql, parameters)
        if not rows:
            return None
        return next(iter(rows[0].values()))

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def to_insertable(value: Any) -> Any:
    """Values as clickhouse-connect expects them (enums → str, aware datetimes → UTC)."""
    if isinstance(value, str):
        return str(value)  # StrEnum → plain str
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC) if value.tzinfo else value.replace(tzinfo=dt.UTC)
    return value  # Decimal, int, float, date and None go through as they are
