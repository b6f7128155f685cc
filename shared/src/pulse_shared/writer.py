"""Writes processed rows to ClickHouse in batches, off the event loop.

Rows of erased subjects are dropped before every insert (:mod:`pulse_shared.erasure`): a
replay or a late redelivery never stores them again.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from typing import Any

from pulse_shared.canonical import CanonicalInsert, field_values
from pulse_shared.erasure import ErasureFilter, erasure_filter
from pulse_shared.metrics import BATCH_WRITE_SECONDS, ROWS_WRITTEN
from pulse_shared.store import Store, StoreDataError, StoreError, StoreUnavailable

#: After a canonical batch that ClickHouse's PII pre-check flagged, this many batches of
#: the table are checked in Python before their insert (~1.5 µs per touchpoint instead of
#: a refused insert, ~3 µs of server CPU per touchpoint plus the upload); then the
#: pre-check in ClickHouse is tried again.
PII_CHECKS_FIRST_AFTER_FLAG = 10


class RowWriter:
    """Inserts one table's rows; returns only after ClickHouse has confirmed them."""

    def __init__(self, store: Store, service: str) -> None:
        self.store = store
        self.service = service
        #: Per table: canonical batches still to check for PII in Python before inserting
        #: (see :meth:`write_canonical`).
        self._pii_checks_first: dict[str, int] = {}

    @property
    def erasures(self) -> ErasureFilter:
        """The store's erased subjects (shared by every writer of the store)."""
        return erasure_filter(self.store)

    async def write(
        self, table: str, rows: Sequence[Mapping[str, Any]], columns: Sequence[str]
    ) -> None:
        if not rows:
            return
        if self.erasures.applies_to(columns):
            if self.erasures.stale:
                await asyncio.to_thread(self.erasures.current)
            rows = self.erasures.keep(rows, columns)
            if not rows:
                return
        started = time.perf_counter()
        await asyncio.to_thread(self.store.insert, table, rows, columns)
        self._confirmed(table, started, len(rows))

    async def write_canonical(self, spec: CanonicalInsert, lines: bytes, count: int) -> bool:
        """Insert ``count`` canonical records, ``spec.frame(values)`` (see
        :mod:`pulse_shared.canonical`).

        Returns False, having written nothing, when the batch is not entirely canonical
        or ClickHouse refuses some of it (the caller then validates record by record and
        isolates the refused records). ClickHouse being unavailable raises
        :class:`StoreUnavailable`, so the fast path is retried rather than abandoned.
        """
        if await self._holds_erased(spec, lines):
            return False  # the record-by-record path drops the erased subjects' rows
        started = time.perf_counter()
        try:
            flagged = await asyncio.to_thread(self._insert_canonical, spec, lines)
        except StoreUnavailable:
            raise
        except StoreError:
            return False
        if flagged:
            # Values the pre-check flags (dates in campaign names, UUIDs…) tend to recur:
            # for the next batches, the check in Python first instead of an insert that
            # ClickHouse would parse only to refuse it.
            self._pii_checks_first[spec.table] = PII_CHECKS_FIRST_AFTER_FLAG
        self._confirmed(spec.table, started, count)
        return True

    def _insert_canonical(self, spec: CanonicalInsert, lines: bytes) -> bool:
        """One canonical batch; True if ClickHouse's PII pre-check flagged it."""
        pending = self._pii_checks_first.get(spec.table, 0)
        if not pending:
            return self.store.insert_canonical(spec, lines)
        self._pii_checks_first[spec.table] = pending - 1
        if spec.holds_pii(lines):
            raise StoreDataError("a free-text value holds PII (the model refuses it)")
        self.store.insert_canonical(spec, lines, pii_checked=True)
        return False

    async def _holds_erased(self, spec: CanonicalInsert, lines: bytes) -> bool:
        if not self.erasures.applies_to(spec.column_names):
            return False
        if self.erasures.stale:
            await asyncio.to_thread(self.erasures.current)
        erased = self.erasures.current()
        if not erased:
            return False
        names = set(spec.column_names)
        return any(
            not subjects.isdisjoint(field_values(lines, column))
            for column, subjects in (("account_id", erased.accounts),
                                     ("contact_id", erased.contacts))
            if column in names and subjects
        )

    def _confirmed(self, table: str, started: float, rows: int) -> None:
        BATCH_WRITE_SECONDS.labels(self.service, table).observe(time.perf_counter() - started)
        ROWS_WRITTEN.labels(self.service, table).inc(rows)
