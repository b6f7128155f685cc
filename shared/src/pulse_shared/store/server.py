"""Server backend: a ClickHouse server through clickhouse-connect (HTTP)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlparse

import clickhouse_connect
from clickhouse_connect.driver.exceptions import ClickHouseError

from pulse_shared.canonical import INSERT_SETTINGS, CanonicalInsert, sql_string
from pulse_shared.store.base import Row, Store, StoreError, normalise_value, to_insertable


class ServerStore(Store):
    backend = "server"

    def __init__(
        self,
        url: str,
        user: str = "default",
        password: str = "",
        database: str = "default",
        readonly: bool = False,
    ) -> None:
        super().__init__(readonly=readonly)
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
            raise StoreError(str(exc)) from exc

    def command(self, sql: str, parameters: Mapping[str, Any] | None = None) -> None:
        self._check_writable()
        try:
            self._client.command(sql, parameters=dict(parameters or {}))
        except ClickHouseError as exc:
            raise StoreError(str(exc)) from exc

    def query(self, sql: str, parameters: Mapping[str, Any] | None = None) -> list[Row]:
        try:
            result = self._client.query(sql, parameters=dict(parameters or {}))
        except ClickHouseError as exc:
            raise StoreError(str(exc)) from exc
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
        except ClickHouseError as exc:
            raise StoreError(str(exc)) from exc

    def insert_canonical(self, spec: CanonicalInsert, lines: bytes) -> None:
        self._check_writable()
        # The lines travel as the request body; input() reads them on the server.
        sql = spec.sql(f"input({sql_string(spec.structure)})") + " FORMAT JSONEachRow"
        try:
            self._client.command(sql, data=lines, settings=INSERT_SETTINGS)
        except ClickHouseError as exc:
            raise StoreError(str(exc)) from exc

    def close(self) -> None:
        self._client.close()
