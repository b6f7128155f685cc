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

    def command(self, sql: str, parameters: Mapping[str, Any] | None = None) -> None:
        self._check_writable()
        try:
            self._client.command(sql, parameters=dict(parameters or {}))
        except ClickHouseError as exc:
            raise store_error(exc) from exc

    def query(self, sql: str, parameters: Mapping[str, Any] | None = None) -> list[Row]:
        try:
            result = self._client.query(sql, parameters=dict(parameters or {}))
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
            self._client.insert(table, data, column_names=list(columns))
        except (ClickHouseError, *_SERIALISATION_ERRORS) as exc:
            raise store_error(exc) from exc

    def insert_canonical(self, spec: CanonicalInsert, lines: bytes) -> None:
        self._check_writable()
        # The lines travel as the request body; input() reads them on the server.
        sql = spec.sql(f"input({sql_string(spec.structure)})") + " FORMAT JSONEachRow"
        try:
            self._client.command(sql, data=lines, settings=INSERT_SETTINGS)
        except ClickHouseError as exc:
            raise store_error(exc) from exc

    def close(self) -> None:
        self._client.close()
