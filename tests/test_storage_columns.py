"""Every column list the services insert with matches the migrated DDL.

Each storage module pairs its insert column lists with their tables in ``TABLE_COLUMNS``;
canonical inserts (:class:`~pulse_shared.canonical.CanonicalInsert`) carry their own table
and columns. Against ``system.columns`` of the migrated embedded store (the real DDL):
every listed column exists, and every column without a DEFAULT / MATERIALIZED / ALIAS
expression is listed, so no insert can silently leave one at its zero value.
"""

from __future__ import annotations

import dataclasses
import types
from collections.abc import Sequence

import pytest
from pydantic import BaseModel

from pulse_alerts import storage as alerts_storage
from pulse_attribution import storage as attribution_storage
from pulse_kpi import storage as kpi_storage
from pulse_mmm import storage as mmm_storage
from pulse_reporting import storage as reporting_storage
from pulse_reporting.delivery import storage as delivery_storage
from pulse_shared import erasure
from pulse_shared.auth import users
from pulse_shared.canonical import CanonicalInsert
from pulse_shared.columns import field_names, model_columns
from pulse_shared.store import Store

STORAGE_MODULES: tuple[types.ModuleType, ...] = (
    kpi_storage, attribution_storage, alerts_storage, reporting_storage, mmm_storage,
    delivery_storage,
)


@dataclasses.dataclass(frozen=True)
class InsertColumns:
    owner: str  # the module declaring the list
    table: str
    columns: tuple[str, ...]

    def __str__(self) -> str:
        return f"{self.owner}:{self.table}"


def insert_column_lists() -> list[InsertColumns]:
    lists = [
        InsertColumns(module.__name__, table, tuple(columns))
        for module in STORAGE_MODULES
        for table, columns in module.TABLE_COLUMNS.items()
    ]
    # Shared writers outside the services that declare their list as a constant.
    lists.append(InsertColumns(users.__name__, users.TABLE, tuple(users.COLUMNS)))
    lists.append(InsertColumns(erasure.__name__, erasure.ERASURES_TABLE, erasure.ERASURES_COLUMNS))
    return lists


def canonical_inserts() -> list[InsertColumns]:
    return [
        InsertColumns(f"{module.__name__}.{name}", spec.table, spec.column_names)
        for module in STORAGE_MODULES
        for name, spec in vars(module).items()
        if isinstance(spec, CanonicalInsert)
    ]


def table_columns(store: Store, table: str) -> dict[str, str]:
    """Column name → default kind ('' when the column has no default expression)."""
    rows = store.query(
        "SELECT name, default_kind FROM system.columns "
        "WHERE database = currentDatabase() AND table = {table:String}",
        {"table": table},
    )
    return {str(r["name"]): str(r["default_kind"]) for r in rows}


def column_problems(store: Store, table: str, listed: Sequence[str]) -> list[str]:
    """What is wrong with inserting into ``table`` with the columns ``listed``."""
    ddl = table_columns(store, table)
    if not ddl:
        return [f"table {table} does not exist"]
    problems = [f"{table}.{c} is listed twice" for c in sorted(set(listed))
                if list(listed).count(c) > 1]
    problems += [f"{table}.{c} is listed but not in the table" for c in listed if c not in ddl]
    problems += [
        f"{table}.{c} has no default and is not listed (would be inserted as its zero value)"
        for c, default_kind in ddl.items() if not default_kind and c not in listed
    ]
    return problems


# -- the registries ------------------------------------------------------------------------
@pytest.mark.parametrize("module", STORAGE_MODULES, ids=lambda m: m.__name__)
def test_every_column_list_of_a_storage_module_is_paired_with_its_table(
    module: types.ModuleType,
) -> None:
    """A ``*_COLUMNS`` list left out of ``TABLE_COLUMNS`` would escape the DDL check."""
    paired = set(module.TABLE_COLUMNS.values())
    unpaired = [
        name for name, value in vars(module).items()
        if name.endswith("_COLUMNS") and name != "TABLE_COLUMNS" and value not in paired
    ]
    assert not unpaired, f"{module.__name__}: {unpaired} not in TABLE_COLUMNS"


def test_canonical_inserts_are_found() -> None:
    # The touchpoint fast path (attribution) is the one canonical insert today.
    assert {c.table for c in canonical_inserts()} >= {"touchpoints"}


# -- against the DDL -----------------------------------------------------------------------
@pytest.mark.parametrize("insert", insert_column_lists(), ids=str)
def test_insert_columns_match_the_table(embedded_store: Store, insert: InsertColumns) -> None:
    problems = column_problems(embedded_store, insert.table, insert.columns)
    assert not problems, f"{insert.owner}: " + "; ".join(problems)


@pytest.mark.parametrize("insert", canonical_inserts(), ids=str)
def test_canonical_insert_columns_match_the_table(
    embedded_store: Store, insert: InsertColumns
) -> None:
    problems = column_problems(embedded_store, insert.table, insert.columns)
    assert not problems, f"{insert.owner}: " + "; ".join(problems)


@pytest.mark.parametrize("insert", canonical_inserts(), ids=str)
def test_canonical_and_row_inserts_of_a_table_write_the_same_columns(
    insert: InsertColumns,
) -> None:
    """Both paths into one table store the same columns (the fast path is an optimisation,
    not a different row)."""
    row_lists = [i for i in insert_column_lists() if i.table == insert.table]
    for row_list in row_lists:
        assert set(row_list.columns) == set(insert.columns), (insert.table, row_list.owner)


def test_the_check_names_the_table_and_column(embedded_store: Store) -> None:
    """The check itself catches each kind of mistake, naming the table and column."""
    spend = list(kpi_storage.TABLE_COLUMNS["spend"])
    assert column_problems(embedded_store, "spend", spend) == []
    without_clicks = [c for c in spend if c != "clicks"]
    assert column_problems(embedded_store, "spend", without_clicks) == [
        "spend.clicks has no default and is not listed (would be inserted as its zero value)"
    ]
    assert column_problems(embedded_store, "spend", [*spend, "cpc"]) == [
        "spend.cpc is listed but not in the table"
    ]
    assert column_problems(embedded_store, "spend", [*spend, "clicks"]) == [
        "spend.clicks is listed twice"
    ]
    # ingested_at has a DEFAULT: leaving it out is how the table is meant to be written.
    assert "ingested_at" not in spend
    assert column_problems(embedded_store, "no_such_table", spend) == [
        "table no_such_table does not exist"
    ]


# -- model_columns -------------------------------------------------------------------------
class _Model(BaseModel):
    a: int
    b: str = ""
    c: float = 0.0


@dataclasses.dataclass
class _Record:
    x: int
    y: int

    @property
    def z(self) -> int:
        return self.x + self.y


def test_model_columns_follow_the_field_order() -> None:
    assert model_columns(_Model) == ("a", "b", "c")
    assert model_columns(_Model, exclude=("b",), extra=("d", "e")) == ("a", "c", "d", "e")
    assert model_columns(_Record, extra=("z",)) == ("x", "y", "z")
    assert field_names(_Record) == ("x", "y")


def test_model_columns_refuse_names_that_do_not_fit_the_model() -> None:
    with pytest.raises(ValueError, match="no fields"):
        model_columns(_Model, exclude=("missing",))
    with pytest.raises(ValueError, match="already has"):
        model_columns(_Model, extra=("a",))
    with pytest.raises(ValueError, match="duplicate"):
        model_columns(_Model, extra=("d", "d"))
    with pytest.raises(TypeError):
        model_columns(dict)
