"""Embedded backend: chDB (ClickHouse in-process) on a local data directory."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Mapping, Sequence
from decimal import Decimal
from enum import Enum
from pathlib import Path
from typing import Any

import orjson

from pulse_shared.canonical import INSERT_SETTINGS, CanonicalInsert, sql_string
from pulse_shared.store.base import Row, Store, StoreError, classify_error, normalise_value

# chDB allows one open database per process; every EmbeddedStore on the same directory
# shares it, and a lock serialises statements because the connection is not thread-safe.
_CONNECTIONS: dict[Path, Any] = {}
_CONNECTIONS_LOCK = threading.Lock()
_STATEMENT_LOCK = threading.RLock()


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dt.datetime):
        aware = value.astimezone(dt.UTC) if value.tzinfo else value
        return aware.strftime("%Y-%m-%d %H:%M:%S.%f")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    raise TypeError(f"cannot serialise {type(value).__name__}")


def _value_text(value: Any) -> str:
    """A scalar as text ClickHouse parses: datetimes in UTC without zone, enums by value."""
    if isinstance(value, dt.datetime):
        aware = value.astimezone(dt.UTC) if value.tzinfo else value
        return aware.strftime("%Y-%m-%d %H:%M:%S.%f")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, Enum):
        return str(value.value)
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(value)


def _param_text(value: Any) -> str:
    """chDB takes parameter values as text in ClickHouse's escaped-value form."""
    if isinstance(value, list | tuple):
        # Array elements are parsed as literals: text-like ones quoted, and escaped only
        # by the quoting (escaping them for a scalar first would double their backslashes).
        inner = ",".join(
            sql_string(_value_text(v)) if isinstance(v, str | Enum | dt.date) else _param_text(v)
            for v in value
        )
        return f"[{inner}]"
    text = _value_text(value)
    if isinstance(value, str):  # escaped form: a raw newline or backslash would not survive
        return (text.replace("\\", "\\\\").replace("\n", "\\n").replace("\t", "\\t")
                .replace("\r", "\\r"))
    return text


def _unencodable_column(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> str | None:
    """The first column holding a value orjson cannot encode (only on the error path)."""
    for row in rows:
        for column in columns:
            try:
                orjson.dumps(row.get(column), default=_json_default)
            except (orjson.JSONEncodeError, TypeError, ValueError):
                return column
    return None


class EmbeddedStore(Store):
    backend = "embedded"

    def __init__(self, data_dir: Path | str, readonly: bool = False) -> None:
        super().__init__(readonly=readonly)
        try:
            import chdb  # imported lazily: the server backend never needs it
        except ImportError as exc:  # service images are built without the extra
            raise StoreError(
                "the embedded store needs chDB: install pulse-shared[embedded], "
                "or set PULSE_CLICKHOUSE_URL to use a ClickHouse server"
            ) from exc

        self.data_dir = Path(data_dir).resolve()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with _CONNECTIONS_LOCK:
            if self.data_dir not in _CONNECTIONS:
                if _CONNECTIONS:
                    other = next(iter(_CONNECTIONS))
                    raise StoreError(
                        f"chDB already open on {other}; one embedded data dir per process"
                    )
                _CONNECTIONS[self.data_dir] = chdb.connect(str(self.data_dir))
            self._conn = _CONNECTIONS[self.data_dir]

    def _run(self, sql: str, fmt: str, parameters: Mapping[str, Any] | None) -> Any:
        params = {k: _param_text(v) for k, v in (parameters or {}).items()}
        try:
            with _STATEMENT_LOCK:
                return self._conn.query(sql, fmt, params=params or None)
        except Exception as exc:  # chDB raises its own error types
            raise classify_error(str(exc)) from exc

    def command(self, sql: str, parameters: Mapping[str, Any] | None = None) -> None:
        self._check_writable()
        self._run(sql, "TabSeparated", parameters)

    def query(self, sql: str, parameters: Mapping[str, Any] | None = None) -> list[Row]:
        table = self._run(sql, "ArrowTable", parameters)
        # Column by column: only columns whose Arrow type holds timestamps can hold values
        # normalise_value changes (it returns every other value as an equal one), so the
        # per-value Python call is made for those alone; rows are assembled once at the
        # end (KPI loads read ~100k rows per recompute).
        columns: list[list[Any]] = []
        for field, column in zip(table.schema, table.columns, strict=True):
            kind = str(field.type)
            values = column.to_pylist()
            if kind.startswith("map<"):
                values = [None if v is None else dict(v) for v in values]
            if "timestamp" in kind:
                values = [normalise_value(v) for v in values]
            columns.append(values)
        names = table.column_names
        return [dict(zip(names, row, strict=True)) for row in zip(*columns, strict=True)]

    def insert(
        self, table: str, rows: Sequence[Mapping[str, Any]], columns: Sequence[str]
    ) -> None:
        self._check_writable()
        if not rows:
            return
        wanted = frozenset(columns)
        try:
            # A dict holding exactly the columns is encoded as it is (JSONEachRow matches
            # fields by name, so key order does not matter); any other row is first
            # narrowed to the columns, with None for a missing one (an explicit null, not
            # the column default). Most callers build rows from the columns: that skips a
            # dict per row.
            body = b"\n".join(
                orjson.dumps(
                    row if type(row) is dict and row.keys() == wanted
                    else {c: row.get(c) for c in columns},
                    default=_json_default,
                )
                for row in rows
            )
        except (orjson.JSONEncodeError, TypeError, ValueError) as exc:
            # A value JSON cannot carry to chDB (e.g. "Integer exceeds 64-bit range"):
            # refused data, like the server's own errors for such values.
            column = _unencodable_column(rows, columns)
            where = f" for column `{column}`" if column else ""
            raise classify_error(f"{exc}{where}", data=True) from exc
        # Identifiers cannot be parameters; table and column names come from code only.
        column_list = ", ".join(f"`{c}`" for c in columns)
        self._run(
            f"INSERT INTO `{table}` ({column_list}) FORMAT JSONEachRow\n{body.decode()}",
            "TabSeparated",
            None,
        )

    def _insert_canonical(self, spec: CanonicalInsert, lines: bytes, *, pii_checked: bool) -> None:
        self._check_writable()
        # chDB has no request body for input(): the lines go in as one String parameter.
        source = f"format(JSONEachRow, {sql_string(spec.structure)}, {{lines:String}})"
        settings = ", ".join(f"{k} = {v}" for k, v in INSERT_SETTINGS.items())
        self._run(f"{spec.sql(source, pii_checked=pii_checked)} SETTINGS {settings}", "TabSeparated",
                  {"lines": lines.decode()})

    def close(self) -> None:
        # The process-wide connection stays open for other stores on the same directory.
        pass


def close_all_embedded() -> None:
    """Close every chDB connection (tests and CLI shutdown)."""
    with _CONNECTIONS_LOCK:
        for conn in _CONNECTIONS.values():
            conn.close()
        _CONNECTIONS.clear()
