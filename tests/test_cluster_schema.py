"""The schema rendered for a ClickHouse cluster (``PULSE_CLICKHOUSE_CLUSTER``): every
migration renders, every rendered statement parses with ClickHouse's own parser, and the
single-node schema is unchanged.

What this cannot show here: the rendered schema running on a real multi-node cluster.
chDB's clickhouse-local (the only ClickHouse on this machine) refuses ``ON CLUSTER``
("Replicated DDL queries are disabled") and has no inter-server listener for replicas to
fetch parts from; see docs/operations.md.
"""

from __future__ import annotations

import re

import pytest

from pulse_shared.schema.cluster import (
    ClusterRenderError,
    ClusterSchema,
    local_table,
    mutation_table,
    replicated_tables,
)
from pulse_shared.schema.migrations import (
    cluster_schema,
    load_migrations,
    statements_for,
)
from pulse_shared.store import Store

CLUSTER = "pulse"


@pytest.fixture(scope="module")
def schema() -> ClusterSchema:
    return cluster_schema(CLUSTER)


def _every_statement() -> list[str]:
    return [s for m in load_migrations() for s in m.statements]


def test_every_mergetree_table_is_replicated_and_distributed(schema: ClusterSchema) -> None:
    created = replicated_tables(_every_statement())
    assert {"touchpoints", "kpi_values", "attribution_credits", "mmm_runs"} <= created
    rendered = schema.render_all(_every_statement())
    for table in created - {"pulse_migrations"}:
        local = [s for s in rendered
                 if s.startswith(f"CREATE TABLE IF NOT EXISTS {local_table(table)} ")]
        dist = [s for s in rendered if s.startswith(f"CREATE TABLE IF NOT EXISTS {table} ")]
        assert len(local) == 1 and len(dist) == 1, table
        assert re.search(r"ENGINE = Replicated\w*MergeTree\('/clickhouse/tables/\{shard\}/"
                         rf"\{{database\}}/{local_table(table)}', '\{{replica\}}'", local[0])
        assert (f"ENGINE = Distributed('{CLUSTER}', currentDatabase(), "
                f"{local_table(table)}, sipHash64(") in dist[0]
    # ReplacingMergeTree keeps its version column after the replica arguments
    (credits,) = [s for s in rendered
                  if s.startswith("CREATE TABLE IF NOT EXISTS attribution_credits_local ")]
    assert "ReplicatedReplacingMergeTree(" in credits


def test_every_statement_runs_on_the_whole_cluster(schema: ClusterSchema) -> None:
    for migration in load_migrations():
        for statement in schema.render_all(migration.statements):
            assert f"ON CLUSTER {CLUSTER}" in statement, (migration.label, statement[:80])


def test_every_rendered_statement_parses(schema: ClusterSchema, embedded_store: Store) -> None:
    """ClickHouse's own parser (``formatQuery``) accepts every rendered statement."""
    rendered = schema.render_all(_every_statement())
    assert len(rendered) > len(_every_statement())
    for statement in rendered:
        formatted = embedded_store.query_value(
            "SELECT formatQuery({q:String})", {"q": statement})
        assert "ON CLUSTER" in formatted, statement[:80]


def test_the_single_node_schema_is_unchanged(embedded_store: Store) -> None:
    assert embedded_store.cluster is None
    for migration in load_migrations():
        assert statements_for(embedded_store, migration.statements) == migration.statements


def test_materialized_views_aggregate_each_shard_locally(schema: ClusterSchema) -> None:
    (mv,) = schema.render(
        "CREATE MATERIALIZED VIEW IF NOT EXISTS touchpoints_daily_mv TO touchpoints_daily AS\n"
        "SELECT toDate(occurred_at) AS day FROM touchpoints GROUP BY day"
    )
    assert "TO touchpoints_daily_local AS" in mv and "FROM touchpoints_local " in mv
    with pytest.raises(ClusterRenderError, match="not a replicated table"):
        schema.render("CREATE MATERIALIZED VIEW IF NOT EXISTS x_mv TO nowhere AS SELECT 1")


def test_sharding_key_is_the_sorting_key(schema: ClusterSchema) -> None:
    _, dist = schema.render(
        "CREATE TABLE IF NOT EXISTS t (a String, b Date, v UInt64) "
        "ENGINE = ReplacingMergeTree(v) ORDER BY (a, toYYYYMM(b)) SETTINGS index_granularity = 8192"
    )
    # rows that replace each other share the sorting key, so they meet in one shard
    assert dist.endswith("t_local, sipHash64(a, toYYYYMM(b)))")
    _, single = schema.render(
        "CREATE TABLE IF NOT EXISTS u (a String) ENGINE = MergeTree ORDER BY a")
    assert single.endswith("u_local, sipHash64(a))")


def test_columns_change_on_both_tables_and_mutations_on_the_shards(
    schema: ClusterSchema,
) -> None:
    add = schema.render("ALTER TABLE mmm_allocations ADD COLUMN IF NOT EXISTS g Float64")
    assert add == (
        "ALTER TABLE mmm_allocations_local ON CLUSTER pulse ADD COLUMN IF NOT EXISTS g Float64",
        "ALTER TABLE mmm_allocations ON CLUSTER pulse ADD COLUMN IF NOT EXISTS g Float64",
    )
    (ttl,) = schema.render("ALTER TABLE spend MODIFY TTL date + INTERVAL 30 DAY")
    assert ttl.startswith("ALTER TABLE spend_local ON CLUSTER pulse MODIFY TTL")
    assert mutation_table("spend", None) == "spend"
    assert mutation_table("spend", "pulse") == "spend_local ON CLUSTER pulse"
    assert mutation_table("spend", "eu-west") == "spend_local ON CLUSTER `eu-west`"


def test_access_control_covers_distributed_and_local_tables(schema: ClusterSchema) -> None:
    assert schema.render("CREATE ROLE IF NOT EXISTS pulse_cmo") == (
        "CREATE ROLE IF NOT EXISTS pulse_cmo ON CLUSTER pulse",)
    assert schema.render("GRANT SELECT ON spend TO pulse_cmo") == (
        "GRANT ON CLUSTER pulse SELECT ON spend TO pulse_cmo",
        "GRANT ON CLUSTER pulse SELECT ON spend_local TO pulse_cmo",
    )
    policy = schema.render(
        "CREATE ROW POLICY IF NOT EXISTS pulse_cx_scope ON kpi_values AS PERMISSIVE FOR SELECT "
        "USING dimension = 'all' TO pulse_cx")
    assert [p.split(" USING")[0] for p in policy] == [
        "CREATE ROW POLICY IF NOT EXISTS pulse_cx_scope ON CLUSTER pulse ON kpi_values AS "
        "PERMISSIVE FOR SELECT",
        "CREATE ROW POLICY IF NOT EXISTS pulse_cx_scope ON CLUSTER pulse ON kpi_values_local "
        "AS PERMISSIVE FOR SELECT",
    ]


def test_an_unknown_statement_is_refused_not_run_on_one_node(schema: ClusterSchema) -> None:
    with pytest.raises(ClusterRenderError, match="no cluster rendering for statement: "
                                                 "CREATE DICTIONARY"):
        schema.render("CREATE DICTIONARY IF NOT EXISTS d (k UInt64) PRIMARY KEY k "
                      "SOURCE(NULL()) LAYOUT(FLAT()) LIFETIME(0)")
