"""One storage test class, run against both ClickHouse backends (eventsourcing style)."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pulse_shared.schema.migrations import load_migrations, migrate
from pulse_shared.store import ReadOnlyStoreError, Store, StoreError

TABLE_DDL = (
    "CREATE TABLE IF NOT EXISTS store_contract (id String, at DateTime64(3, 'UTC'), "
    "day Date, amount Decimal(18, 4), ratio Nullable(Float64), tags Map(String, String), "
    "n UInt64) ENGINE = ReplacingMergeTree ORDER BY id"
)
COLUMNS = ["id", "at", "day", "amount", "ratio", "tags", "n"]


class StoreContract:
    """Behaviour every Store backend must have; subclasses provide the ``store`` fixture."""

    @pytest.fixture
    def store(self) -> Store:  # pragma: no cover - overridden
        raise NotImplementedError

    @pytest.fixture
    def table(self, store: Store) -> str:
        store.command(TABLE_DDL)
        return "store_contract"

    def test_round_trip_keeps_python_types(self, store: Store, table: str) -> None:
        key = uuid.uuid4().hex
        at = dt.datetime(2026, 11, 2, 9, 30, 15, 123000, tzinfo=dt.UTC)
        store.insert(
            table,
            [{"id": key, "at": at, "day": dt.date(2026, 11, 2), "amount": Decimal("12.3456"),
              "ratio": None, "tags": {"channel": "email"}, "n": 2**63 + 5}],
            COLUMNS,
        )
        rows = store.query(f"SELECT * FROM {table} WHERE id = {{id:String}}", {"id": key})
        assert rows == [
            {"id": key, "at": at, "day": dt.date(2026, 11, 2), "amount": Decimal("12.3456"),
             "ratio": None, "tags": {"channel": "email"}, "n": 2**63 + 5}
        ]

    def test_parameters_are_bound_not_interpolated(self, store: Store, table: str) -> None:
        hostile = "x' OR 1=1 --"
        key = uuid.uuid4().hex
        store.insert(
            table,
            [{"id": key, "at": dt.datetime(2026, 1, 1, tzinfo=dt.UTC), "day": dt.date(2026, 1, 1),
              "amount": Decimal(1), "ratio": 0.5, "tags": {}, "n": 1}],
            COLUMNS,
        )
        assert store.query(f"SELECT id FROM {table} WHERE id = {{id:String}}", {"id": hostile}) == []
        assert store.query_value("SELECT {v:String}", {"v": hostile}) == hostile

    def test_replacing_table_deduplicates_redelivered_rows(self, store: Store, table: str) -> None:
        key = uuid.uuid4().hex
        row = {"id": key, "at": dt.datetime(2026, 1, 1, tzinfo=dt.UTC), "day": dt.date(2026, 1, 1),
               "amount": Decimal("3.5"), "ratio": 1.0, "tags": {}, "n": 7}
        store.insert(table, [row], COLUMNS)
        store.insert(table, [row], COLUMNS)  # a redelivered batch
        count = store.query_value(
            f"SELECT count() FROM {table} FINAL WHERE id = {{id:String}}", {"id": key}
        )
        assert count == 1

    def test_date_and_array_parameters(self, store: Store, table: str) -> None:
        keys = [uuid.uuid4().hex, uuid.uuid4().hex]
        store.insert(
            table,
            [{"id": k, "at": dt.datetime(2026, 3, 1, tzinfo=dt.UTC), "day": dt.date(2026, 3, 1 + i),
              "amount": Decimal(i), "ratio": None, "tags": {}, "n": i} for i, k in enumerate(keys)],
            COLUMNS,
        )
        rows = store.query(
            f"SELECT id FROM {table} WHERE id IN {{ids:Array(String)}} AND day >= {{d:Date}}",
            {"ids": keys, "d": dt.date(2026, 3, 2)},
        )
        assert rows == [{"id": keys[1]}]

    def test_string_parameters_with_escapes_arrive_unchanged(self, store: Store) -> None:
        texts = ["back\\slash", "it's", "new\nline", "tab\tand\rreturn", "plain"]
        for text in texts:
            assert store.query_value("SELECT {v:String}", {"v": text}) == text
        assert store.query_value("SELECT {v:Array(String)}", {"v": texts}) == texts

    def test_long_string_arrays_arrive_unchanged(self, store: Store) -> None:
        # Long enough for the server store's own array formatting (string_array_bind).
        texts = ["back\\slash", "it's", "new\nline", "tab\tand\rreturn", "`tick`", "", "é 🚀",
                 "a', 'b", "\\'", *(f"acct-{i}" for i in range(20))]
        assert store.query_value("SELECT {v:Array(String)}", {"v": texts}) == texts
        with_nul = [*texts, "nul\x00inside"]  # (formatted by clickhouse-connect instead)
        assert store.query_value("SELECT {v:Array(String)}", {"v": with_nul}) == with_nul

    def test_bad_sql_raises_store_error(self, store: Store) -> None:
        with pytest.raises(StoreError):
            store.query("SELECT * FROM table_that_does_not_exist")

    def test_migrations_are_idempotent(self, store: Store) -> None:
        assert migrate(store) == []  # the fixture already applied every migration
        versions = {r["version"] for r in store.query("SELECT version FROM pulse_migrations FINAL")}
        assert versions == {m.number for m in load_migrations()}

    def test_materialized_view_columns_match_target(self, store: Store) -> None:
        views = store.query(
            "SELECT name, create_table_query FROM system.tables "
            "WHERE database = currentDatabase() AND engine = 'MaterializedView'"
        )
        assert views, "the schema defines at least one materialized view"
        for view in views:
            target = view["create_table_query"].split(" TO ", 1)[1].split()[0].split(".")[-1]
            target = target.strip("`")
            view_columns = store.query(
                "SELECT name, type FROM system.columns WHERE database = currentDatabase() "
                "AND table = {t:String} ORDER BY name", {"t": view["name"]},
            )
            target_columns = store.query(
                "SELECT name, type FROM system.columns WHERE database = currentDatabase() "
                "AND table = {t:String} ORDER BY name", {"t": target},
            )
            assert view_columns == target_columns, view["name"]


class TestEmbeddedStore(StoreContract):
    @pytest.fixture
    def store(self, embedded_store: Store) -> Store:
        return embedded_store

    def test_readonly_store_refuses_writes(self, embedded_data_dir) -> None:  # type: ignore[no-untyped-def]
        from pulse_shared.store.embedded import EmbeddedStore

        readonly = EmbeddedStore(embedded_data_dir, readonly=True)
        with pytest.raises(ReadOnlyStoreError):
            readonly.command("CREATE TABLE IF NOT EXISTS nope (a String) ENGINE = Memory")
        assert readonly.query_value("SELECT 1") == 1

    def test_insert_takes_rows_in_any_key_order_and_narrows_other_rows(
        self, store: Store, table: str
    ) -> None:
        """Rows holding exactly the columns are encoded as they are, whatever their key
        order; rows with other keys are narrowed to the columns, a missing one null."""
        keys = [uuid.uuid4().hex for _ in range(3)]
        at = dt.datetime(2026, 5, 1, 8, tzinfo=dt.UTC)
        exact = {"n": 1, "tags": {"a": "b"}, "ratio": 0.25, "amount": Decimal("1.5"),
                 "day": dt.date(2026, 5, 1), "at": at, "id": keys[0]}
        extra = {"id": keys[1], "at": at, "day": dt.date(2026, 5, 2), "amount": Decimal(2),
                 "ratio": 0.5, "tags": {}, "n": 2, "not_a_column": "ignored"}
        missing = {"id": keys[2], "at": at, "day": dt.date(2026, 5, 3), "amount": Decimal(3),
                   "tags": {}, "n": 3}  # no ratio: stored as null
        store.insert(table, [exact, extra, missing], COLUMNS)
        rows = store.query(
            f"SELECT id, day, amount, ratio, tags, n FROM {table} "
            "WHERE id IN {ids:Array(String)} ORDER BY n", {"ids": keys},
        )
        assert rows == [
            {"id": keys[0], "day": dt.date(2026, 5, 1), "amount": Decimal("1.5"),
             "ratio": 0.25, "tags": {"a": "b"}, "n": 1},
            {"id": keys[1], "day": dt.date(2026, 5, 2), "amount": Decimal(2), "ratio": 0.5,
             "tags": {}, "n": 2},
            {"id": keys[2], "day": dt.date(2026, 5, 3), "amount": Decimal(3), "ratio": None,
             "tags": {}, "n": 3},
        ]

    def test_query_normalises_timestamps_inside_arrays_and_maps(self, store: Store) -> None:
        """Timestamps come back UTC-aware in every column that holds them, nested ones
        too; columns in select order, nulls and other types as they are."""
        rows = store.query(
            "SELECT 'x' AS s, [toDateTime64('2026-01-01 10:00:00', 3, 'Europe/Paris')] AS l, "
            "map('k', toDateTime64('2026-07-01 10:00:00', 3, 'Europe/Paris')) AS m, "
            "CAST(NULL, 'Nullable(DateTime64(3, \\'UTC\\'))') AS none, "
            "toDate('2026-01-02') AS d"
        )
        assert rows == [{
            "s": "x",
            "l": [dt.datetime(2026, 1, 1, 9, tzinfo=dt.UTC)],
            "m": {"k": dt.datetime(2026, 7, 1, 8, tzinfo=dt.UTC)},
            "none": None,
            "d": dt.date(2026, 1, 2),
        }]
        assert list(rows[0]) == ["s", "l", "m", "none", "d"]
        assert rows[0]["l"][0].tzinfo is dt.UTC and rows[0]["m"]["k"].tzinfo is dt.UTC


@pytest.mark.clickhouse
class TestServerStore(StoreContract):
    @pytest.fixture
    def store(self, server_store: Store) -> Store:
        return server_store

    def test_reader_user_cannot_write(self, clickhouse_server) -> None:  # type: ignore[no-untyped-def]
        from pulse_shared.store.server import ServerStore

        reader = ServerStore(clickhouse_server.url, user=clickhouse_server.reader_user,
                             password=clickhouse_server.reader_password)
        assert reader.query_value("SELECT count() FROM touchpoints") is not None
        with pytest.raises(StoreError, match="READONLY"):
            reader.command("INSERT INTO store_contract (id) VALUES ('x')")

    def test_inserts_describe_a_table_once_and_again_after_it_changed(
        self, clickhouse_server  # type: ignore[no-untyped-def]
    ) -> None:
        """clickhouse-connect sends DESCRIBE TABLE before each insert unless told the
        column types; the store remembers them per table, and forgets them on DDL of its
        own and after a failed insert (a table changed by another process)."""
        from pulse_shared.store.server import ServerStore

        store = ServerStore(clickhouse_server.url)
        other = ServerStore(clickhouse_server.url)  # another process's migrations
        table = f"insert_types_{uuid.uuid4().hex[:8]}"
        described: list[str] = []
        create_context = store._client.create_insert_context

        def counting(table, column_names=None, database=None, column_types=None,  # type: ignore[no-untyped-def]
                     column_type_names=None, *rest, **kwargs):
            if column_types is None and column_type_names is None:  # it sends DESCRIBE
                described.append(table)
            return create_context(table, column_names, database, column_types,
                                  column_type_names, *rest, **kwargs)

        store._client.create_insert_context = counting  # type: ignore[method-assign]
        store.command("CREATE TABLE {t:Identifier} (id String, n UInt32) "
                      "ENGINE = MergeTree ORDER BY id", {"t": table})
        for i in range(5):
            store.insert(table, [{"id": f"r{i}", "n": i}], ["id", "n"])
        store.insert(table, [{"id": "only-id"}], ["id"])
        assert described == [table]

        store.command("ALTER TABLE {t:Identifier} ADD COLUMN note String", {"t": table})
        store.insert(table, [{"id": "r9", "n": 9, "note": "x"}], ["id", "n", "note"])
        assert described == [table, table]

        other.command("ALTER TABLE {t:Identifier} MODIFY COLUMN n String", {"t": table})
        with pytest.raises(StoreError):  # remembered UInt32, the table holds String now
            store.insert(table, [{"id": "r10", "n": "ten", "note": ""}], ["id", "n", "note"])
        store.insert(table, [{"id": "r10", "n": "ten", "note": ""}], ["id", "n", "note"])
        assert described == [table, table, table]
        assert store.query("SELECT n FROM {t:Identifier} WHERE id = 'r10'", {"t": table}) == [
            {"n": "ten"}]
        store.command("DROP TABLE {t:Identifier}", {"t": table})


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.text(), st.text(alphabet="\\'`\t\n\x00a,[] ")), max_size=30))
def test_server_string_arrays_are_bound_as_clickhouse_connect_binds_them(
    values: list[str],
) -> None:
    from clickhouse_connect.driver.binding import format_bind_value

    from pulse_shared.store.server import string_array_bind

    text = string_array_bind(values)
    if text is None:  # only a value holding the NUL that joins them
        assert any("\x00" in v for v in values)
    else:
        assert text == format_bind_value(values)
