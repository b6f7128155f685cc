"""The schema rendered for a ClickHouse cluster (``PULSE_CLICKHOUSE_CLUSTER``).

The numbered migrations are written once, for a single node. On a cluster every statement
is rendered from them here, so the two schemas cannot drift and the single-node schema is
untouched:

* a ``*MergeTree`` table ``t`` becomes ``t_local`` on every node, engine
  ``Replicated*MergeTree`` (replicas of a shard share a Keeper path; the engine's own
  arguments, such as ReplacingMergeTree's version column, follow the path and replica),
  plus ``t`` as a ``Distributed`` table over ``t_local``. Services keep reading and writing
  ``t``: inserts are routed to a shard by a hash of the table's sorting key (so rows that
  replace each other meet in one shard and ``FINAL`` stays correct), reads fan out.
* a materialized view fires on inserts into the *local* source table and writes the local
  target (each shard aggregates its own rows; the Distributed target merges them).
* plain views and access control (roles, grants, row policies) are created on every node;
  grants and row policies cover both ``t`` and ``t_local`` (a Distributed read runs on the
  shards as the initial user when the cluster has an inter-server ``<secret>``).
* ``ALTER TABLE t`` changes both tables (columns) and mutations (``DELETE``, TTL) target
  the local tables, where the data is (:func:`mutation_table`).

Every statement gets ``ON CLUSTER``: the deployment's ``remote_servers`` names the cluster,
``macros`` give each node its ``{shard}`` and ``{replica}`` (docs/operations.md).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

LOCAL_SUFFIX = "_local"
#: Keeper path of a replicated table: one per shard, database and table.
REPLICA_PATH = "/clickhouse/tables/{shard}/{database}/"
REPLICA_NAME = "{replica}"

_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
_CREATE_TABLE = re.compile(
    rf"^CREATE\s+TABLE\s+IF\s+NOT\s+EXISTS\s+(?P<name>{_NAME})\s*\((?P<columns>.*)\)\s*"
    rf"ENGINE\s*=\s*(?P<engine>\w*MergeTree)\s*(?:\((?P<args>[^)]*)\))?(?P<rest>.*)$",
    re.DOTALL | re.IGNORECASE,
)
_ORDER_BY = re.compile(
    r"\bORDER\s+BY\s+(?P<key>.+?)\s*(?=\bPARTITION\s+BY\b|\bPRIMARY\s+KEY\b|\bSAMPLE\s+BY\b"
    r"|\bTTL\b|\bSETTINGS\b|$)",
    re.DOTALL | re.IGNORECASE,
)
_CREATE_MV = re.compile(
    rf"^CREATE\s+MATERIALIZED\s+VIEW\s+IF\s+NOT\s+EXISTS\s+(?P<name>{_NAME})\s+"
    rf"TO\s+(?P<target>{_NAME})\s+AS\s+(?P<select>.*)$",
    re.DOTALL | re.IGNORECASE,
)
_CREATE_VIEW = re.compile(
    rf"^CREATE\s+VIEW\s+IF\s+NOT\s+EXISTS\s+(?P<name>{_NAME})\s+AS\s+(?P<select>.*)$",
    re.DOTALL | re.IGNORECASE,
)
_ALTER_TABLE = re.compile(
    rf"^ALTER\s+TABLE\s+(?P<name>{_NAME})\s+(?P<rest>.*)$", re.DOTALL | re.IGNORECASE
)
_CREATE_ROLE = re.compile(
    rf"^CREATE\s+ROLE\s+(?P<head>(?:IF\s+NOT\s+EXISTS\s+|OR\s+REPLACE\s+)?)"
    rf"(?P<names>{_NAME}(?:\s*,\s*{_NAME})*)\s*(?P<rest>.*)$",
    re.DOTALL | re.IGNORECASE,
)
_GRANT = re.compile(r"^(?P<verb>GRANT|REVOKE)\s+(?P<rest>.*)$", re.DOTALL | re.IGNORECASE)
_GRANT_TABLE = re.compile(rf"\bON\s+(?P<table>{_NAME})\b(?!\s*\.)", re.IGNORECASE)
_ROW_POLICY = re.compile(
    rf"^(?P<verb>CREATE|ALTER)\s+ROW\s+POLICY\s+"
    rf"(?P<head>(?:IF\s+NOT\s+EXISTS\s+|IF\s+EXISTS\s+|OR\s+REPLACE\s+)?)"
    rf"(?P<name>{_NAME})\s+ON\s+(?P<table>{_NAME})\b(?P<rest>.*)$",
    re.DOTALL | re.IGNORECASE,
)


class ClusterRenderError(ValueError):
    """A migration statement this renderer does not know how to run on a cluster."""


@dataclass(frozen=True)
class ClusterSchema:
    """Renders single-node statements for ``cluster``; ``tables`` are the names that have
    a ``_local`` replicated table beside a Distributed one (every ``*MergeTree`` table of
    the migrations, :func:`replicated_tables`)."""

    cluster: str
    tables: frozenset[str]

    @property
    def on_cluster(self) -> str:
        return f"ON CLUSTER {quote_identifier(self.cluster)}"

    def render(self, statement: str) -> tuple[str, ...]:
        """The statements that do on the cluster what ``statement`` does on one node."""
        text = statement.strip()
        for handler in (
            self._create_table, self._materialized_view, self._view, self._alter_table,
            self._role, self._grant, self._row_policy,
        ):
            rendered = handler(text)
            if rendered is not None:
                return rendered
        raise ClusterRenderError(
            f"no cluster rendering for statement: {' '.join(text.split())[:120]}"
        )

    def render_all(self, statements: Iterable[str]) -> tuple[str, ...]:
        return tuple(out for s in statements for out in self.render(s))

    # -- tables ------------------------------------------------------------------------

    def _create_table(self, text: str) -> tuple[str, ...] | None:
        match = _CREATE_TABLE.match(text)
        if match is None:
            return None
        name, engine = match["name"], match["engine"]
        local = local_table(name)
        args = [f"'{REPLICA_PATH}{local}'", f"'{REPLICA_NAME}'"]
        if match["args"] and match["args"].strip():
            args.append(match["args"].strip())
        order = _ORDER_BY.search(match["rest"])
        if order is None:
            raise ClusterRenderError(f"table {name} has no ORDER BY to shard by")
        key = order["key"].strip()
        sharding = f"sipHash64({key[1:-1] if _is_tuple(key) else key})"
        replicated = (
            f"CREATE TABLE IF NOT EXISTS {local} {self.on_cluster}\n({match['columns']})\n"
            f"ENGINE = Replicated{engine}({', '.join(args)}){match['rest']}"
        )
        distributed = (
            f"CREATE TABLE IF NOT EXISTS {name} {self.on_cluster} AS {local}\n"
            f"ENGINE = Distributed({_sql_string(self.cluster)}, currentDatabase(), {local}, "
            f"{sharding})"
        )
        return replicated, distributed

    def _materialized_view(self, text: str) -> tuple[str, ...] | None:
        match = _CREATE_MV.match(text)
        if match is None:
            return None
        target = match["target"]
        if target not in self.tables:
            raise ClusterRenderError(f"materialized view {match['name']} writes {target}, "
                                     "which is not a replicated table")
        select = self._to_local(match["select"])
        return (
            f"CREATE MATERIALIZED VIEW IF NOT EXISTS {match['name']} {self.on_cluster} "
            f"TO {local_table(target)} AS {select}",
        )

    def _view(self, text: str) -> tuple[str, ...] | None:
        match = _CREATE_VIEW.match(text)
        if match is None:
            return None
        # Reads the Distributed tables: the view sees every shard.
        return (
            f"CREATE VIEW IF NOT EXISTS {match['name']} {self.on_cluster} AS {match['select']}",
        )

    def _alter_table(self, text: str) -> tuple[str, ...] | None:
        match = _ALTER_TABLE.match(text)
        if match is None:
            return None
        name, rest = match["name"], match["rest"]
        if name not in self.tables:
            return (f"ALTER TABLE {name} {self.on_cluster} {rest}",)
        if not re.match(r"(ADD|DROP|MODIFY|RENAME|COMMENT)\s+COLUMN\b", rest, re.IGNORECASE):
            # Mutations, TTL, settings: where the data is.
            return (f"ALTER TABLE {local_table(name)} {self.on_cluster} {rest}",)
        # A column change: the data (local) and the Distributed table that forwards it.
        return (
            f"ALTER TABLE {local_table(name)} {self.on_cluster} {rest}",
            f"ALTER TABLE {name} {self.on_cluster} {rest}",
        )

    # -- access control ----------------------------------------------------------------

    def _role(self, text: str) -> tuple[str, ...] | None:
        match = _CREATE_ROLE.match(text)
        if match is None:
            return None
        rest = f" {match['rest']}" if match["rest"].strip() else ""
        return (f"CREATE ROLE {match['head']}{match['names']} {self.on_cluster}{rest}",)

    def _grant(self, text: str) -> tuple[str, ...] | None:
        match = _GRANT.match(text)
        if match is None:
            return None
        verb, rest = match["verb"].upper(), match["rest"]
        out = [f"{verb} {self.on_cluster} {rest}"]
        table = _GRANT_TABLE.search(rest)
        if table is not None and table["table"] in self.tables:
            local = rest[: table.start("table")] + local_table(table["table"]) + rest[
                table.end("table"):]
            out.append(f"{verb} {self.on_cluster} {local}")
        return tuple(out)

    def _row_policy(self, text: str) -> tuple[str, ...] | None:
        match = _ROW_POLICY.match(text)
        if match is None:
            return None
        tables = [match["table"]]
        if match["table"] in self.tables:
            tables.append(local_table(match["table"]))
        return tuple(
            f"{match['verb'].upper()} ROW POLICY {match['head']}{match['name']} "
            f"{self.on_cluster} ON {table}{match['rest']}"
            for table in tables
        )

    def _to_local(self, select: str) -> str:
        """``FROM t`` / ``JOIN t`` of replicated tables → their local tables."""

        def swap(m: re.Match[str]) -> str:
            name = m["table"]
            return f"{m['kw']}{local_table(name)}" if name in self.tables else m[0]

        return re.sub(rf"(?P<kw>\b(?:FROM|JOIN)\s+)(?P<table>{_NAME})\b", swap, select,
                      flags=re.IGNORECASE)


def local_table(name: str) -> str:
    return f"{name}{LOCAL_SUFFIX}"


def replicated_tables(statements: Iterable[str]) -> frozenset[str]:
    """Names of the ``*MergeTree`` tables the statements create."""
    return frozenset(
        m["name"] for s in statements if (m := _CREATE_TABLE.match(s.strip())) is not None
    )


def mutation_table(name: str, cluster: str | None) -> str:
    """Where an ``ALTER TABLE … DELETE``/``MODIFY TTL`` of ``name`` runs: the table itself
    on one node; ``name_local ON CLUSTER c`` on a cluster (a Distributed table holds no
    data to mutate)."""
    if not cluster:
        return name
    return f"{local_table(name)} ON CLUSTER {quote_identifier(cluster)}"


def quote_identifier(name: str) -> str:
    if re.fullmatch(_NAME, name):
        return name
    return "`" + name.replace("\\", "\\\\").replace("`", "\\`") + "`"


def _sql_string(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _is_tuple(key: str) -> bool:
    """``(a, b)`` is the sorting key's tuple (its parentheses wrap the whole key)."""
    if not (key.startswith("(") and key.endswith(")")):
        return False
    depth = 0
    for i, char in enumerate(key):
        depth += char == "("
        depth -= char == ")"
        if depth == 0 and i < len(key) - 1:
            return False
    return True


def render_statements(
    statements: Sequence[str], cluster: str, tables: frozenset[str]
) -> tuple[str, ...]:
    return ClusterSchema(cluster, tables).render_all(statements)
