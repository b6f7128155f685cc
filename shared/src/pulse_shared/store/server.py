"""Server backend: a ClickHouse server through clickhouse-connect (HTTP)."""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlparse

import clickhouse_connect
from clickhouse_connect.driver.exceptions import ClickHouseError, DataError, OperationalError

from pulse_shared.canonical import INSERT_SETTINGS, CanonicalInsert, sql_string
from pulse_shared.store.base import (
    Row,
    Store,
    StoreError,
    classify_error,
    normalise_value,
    to_insertable,
)

# Raised by clickhouse-connect while serialising a value its column type cannot hold
# (an int beyond UInt64, a date before 1970, text in a number column…).
_SERIALISATION_ERRORS = (ValueError, TypeError, OverflowError, ArithmeticError, struct.error)


class _BindText:
    """A parameter value already in clickhouse-connect's bind format: its formatter passes
    any type it does not know through ``str()``."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text

    def __str__(self) -> str:
        return self.text


#: clickhouse-connect's escapes in a quoted bind string (``binding.must_escape``),
#: backslash first.
_BIND_ESCAPES = (("\\", "\\\\"), ("'", "\\'"), ("`", "\\`"), ("\t", "\\\t"), ("\n", "\\\n"))


def string_array_bind(values: list[Any]) -> str | None:
    """The bind text clickhouse-connect makes of a list of strings (``['a', 'b']``), built
    by a few replaces over the joined list instead of a formatting call per element (~1 µs
    each: ~5 ms for the 5000 accounts of a 20k-touchpoint batch's late-touch lookup).
    None when that does not apply (an element that is not text, or holds the NUL used to
    join them): clickhouse-connect formats it then. Tests compare the two."""
    if not values:
        return "[]"
    try:
        text = "\x00".join(values)
    except TypeError:
        return None
    if text.count("\x00") != len(values) - 1:
        return None
    for raw, escaped in _BIND_ESCAPES:
        text = text.replace(raw, escaped)
    return "['" + text.replace("\x00", "', '") + "']"


def _bind_values(parameters: Mapping[str, Any] | None) -> dict[str, Any]:
    """``parameters`` with long lists of strings already formatted (see above)."""
    out = dict(parameters or {})
    for name, value in out.items():
        if isinstance(value, list) and len(value) > 8:  # (a tuple binds as a tuple)
            text = string_array_bind(value)
            if text is not None:
                out[name] = _BindText(text)
    return out


def store_error(exc: Exception) -> StoreError:
    """A clickhouse-connect failure as refused data, unavailable server or other error."""
    code, name = getattr(exc, "code", None), getattr(exc, "name", None)
    message = str(exc)
    if isinstance(exc, DataError) or "Unable to create native array" in message:
        return classify_error(message, code=code, name=name, data=True)
    if isinstance(exc, ClickHouseError):
        # Without a server error code, an operational error is the transport failing
        # (connection refused or reset, read timeout).
        transient = isinstance(exc, OperationalError) and code is None and name is None
        return classify_error(message, code=code, name=name, transient=transient)
    return classify_error(f"{type(exc).__name__}: {message}", data=True)


class ServerStore(Store):
    backend = "server"
    supports_access_control = True

    def __init__(
        self,
        url: str,
        user: str = "default",
        password: str = "",
        database: str = "default",
        readonly: bool = False,
        cluster: str | None = None,
    ) -> None:
        super().__init__(readonly=readonly)
        self.cluster = cluster or None
        parsed = urlparse(url)
        try:
            self._client = clickhouse_connect.get_client(
                host=parsed.hostname or "127.0.0.1",
                port=parsed.port or 8123,
                secure=parsed.scheme == "https",
                username=user,
                password=password,
                database=database,
                # No HTTP session: lets several threads share the client safely.
                autogenerate_session_id=False,
            )
        except ClickHouseError as exc:
            raise store_error(exc) from exc
        # Column types by table, for inserts (_insert_types).
        self._column_types: dict[str, dict[str, Any]] = {}

    def command(self, sql: str, parameters: Mapping[str, Any] | None = None) -> None:
        self._check_writable()
        self._column_types.clear()  # DDL (a migration, a test's table) may change them
        try:
            self._client.command(sql, parameters=dict(parameters or {}))
        except ClickHouseError as exc:
            raise store_error(exc) from exc

    def query(self, sql: str, parameters: Mapping[str, Any] | None = None) -> list[Row]:
        try:
            result = self._client.query(sql, parameters=_bind_values(parameters))
        except ClickHouseError as exc:
            raise store_error(exc) from exc
        names = result.column_names
        return [
            {n: normalise_value(v) for n, v in zip(names, row, strict=True)}
            for row in result.result_rows
        ]

    def insert(
        self, table: str, rows: Sequence[Mapping[str, Any]], columns: Sequence[str]
    ) -> None:
        self._check_writable()
        if not rows:
            return
        data = [[to_insertable(row.get(c)) for c in columns] for row in rows]
        try:
            types = self._insert_types(table, columns)
            self._client.insert(table, data, column_names=list(columns), column_types=types)
        except (ClickHouseError, *_SERIALISATION_ERRORS) as exc:
            # The table may have changed under the remembered types (a migration while
            # running): the next insert, a retry, describes it again.
            self._column_types.pop(table, None)
            raise store_error(exc) from exc

    def _insert_types(self, table: str, columns: Sequence[str]) -> list[Any]:
        """The ClickHouse types of ``columns`` of ``table``, remembered per table.
        clickhouse-connect otherwise sends ``DESCRIBE TABLE`` before every insert: a
        round trip more on each write (1,887 in one minute of bench/latency at 10k/s)."""
        known = self._column_types.get(table)
        if known is None or any(c not in known for c in columns):
            context = self._client.create_insert_context(table, column_names=list(columns))
            known = {**(known or {}),
                     **dict(zip(context.column_names, context.column_types, strict=True))}
            self._column_types[table] = known
        return [known[c] for c in columns]

    def _insert_canonical(self, spec: CanonicalInsert, lines: bytes, *, pii_checked: bool) -> None:
        self._check_writable()
        # The lines travel as the request body; input() reads them on the server.
        source = f"input({sql_string(spec.structure)})"
        sql = spec.sql(source, pii_checked=pii_checked) + " FORMAT JSONEachRow"
        try:
            self._client.command(sql, data=lines, settings=INSERT_SETTINGS)
        except ClickHouseError as exc:
            raise store_error(exc) from exc

    def close(self) -> None:
        self._client.close()
