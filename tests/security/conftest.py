"""Shared by the injection tests: did any statement delete rows or drop a table?"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from pulse_shared.store import Store


def logical_row_counts(store: Store) -> dict[str, int]:
    """Rows per table as queries see them (``count() FINAL``), keyed by table name.

    Not ``system.tables.total_rows``: that counts stored rows, and a background merge of a
    ReplacingMergeTree collapses duplicates between the two readings, so it can drop with no
    statement deleting anything (CI saw exactly that). FINAL counts do not move on a merge.
    """
    names = [r["name"] for r in store.query(
        "SELECT name FROM system.tables WHERE database = currentDatabase() "
        "AND engine LIKE '%MergeTree'")]
    return {name: int(store.query_value("SELECT count() FROM {table:Identifier} FINAL",
                                        {"table": name})) for name in names}


@pytest.fixture
def row_counts() -> Callable[[Store], dict[str, int]]:
    return logical_row_counts
