"""One ClickHouse interface, two backends (server via clickhouse-connect, embedded chDB).

Both speak the same SQL and run the same migrations. Queries take server-side parameters
(``{name:Type}`` placeholders) only: no value is ever formatted into SQL text.
"""

from __future__ import annotations

import datetime as dt
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pulse_shared.canonical import CanonicalInsert

Row = dict[str, Any]


class StoreError(RuntimeError):
    """A ClickHouse statement failed; carries the backend's message."""


class ReadOnlyStoreError(StoreError):
    """A write was attempted through a read-only store."""


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

    @abstractmethod
    def insert_canonical(self, spec: CanonicalInsert, lines: bytes) -> None:
        """Insert canonical JSON lines through ``spec``'s checked ``INSERT … SELECT``.

        All or nothing: raises :class:`StoreError` if any line fails the conditions.
        """

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
