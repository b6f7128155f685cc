"""Schema as code: numbered, idempotent SQL migrations applied in order.

Files live in ``pulse_shared/schema/sql`` as ``NNNN_name.sql``; statements are separated
by ``;`` at the end of a line. Every statement uses ``IF NOT EXISTS`` so a migration that
was interrupted half-way can simply run again. Applied versions are recorded in
``pulse_migrations``.

:func:`migrate` is the one runner: ``pulse migrate`` (the deployment's migrate job), the
CLI's embedded pipeline and every service at start-up (:func:`migrate_on_startup`, the
hook passed to ``create_service_app``) all apply migrations through it. After the numbered
migrations it applies the retention settings as table TTLs
(:func:`pulse_shared.erasure.apply_retention`: settings, so not a numbered migration).

Access-control migrations (first line ``-- pulse: access-control``: roles, grants, row
policies; see docs/clickhouse-roles.md) need a server user with access management. Where
they cannot apply — the embedded store (chDB has no users) or a server whose migrating user
or configuration lacks access management — they are recorded as ``skipped``, not applied:
the next ``pulse migrate`` (or service start) tries them again, and services start anyway.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from importlib import resources

from pulse_shared.logging import get_logger
from pulse_shared.schema.cluster import ClusterSchema, replicated_tables
from pulse_shared.store.base import Store, StoreError

log = get_logger(__name__)
MIGRATIONS_TABLE = "pulse_migrations"
_FILE_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
#: First line of a migration that creates roles, grants or row policies.
ACCESS_CONTROL_MARKER = "-- pulse: access-control"
APPLIED = "applied"
SKIPPED = "skipped"
#: ClickHouse errors meaning "this user or server cannot manage access here", as opposed
#: to a broken statement: no privilege (CREATE ROLE, GRANT OPTION…), or no writeable
#: access storage (no ``local_directory`` in ``user_directories``).
ACCESS_MANAGEMENT_ERRORS = frozenset({
    "ACCESS_DENIED", "ACCESS_STORAGE_FOR_INSERTION_NOT_FOUND", "ACCESS_STORAGE_READONLY",
})


@dataclass(frozen=True)
class Migration:
    number: int
    name: str
    statements: tuple[str, ...]
    access_control: bool = False
    """Creates roles, grants or row policies (needs a user with access management)."""

    @property
    def label(self) -> str:
        return f"{self.number:04d}_{self.name}"


def split_statements(sql: str) -> tuple[str, ...]:
    body = "\n".join(line for line in sql.splitlines() if not line.strip().startswith("--"))
    return tuple(s.strip() for s in re.split(r";\s*(?:\n|$)", body) if s.strip())


def load_migrations() -> list[Migration]:
    """All migrations sorted by number (file names are the source of truth)."""
    found: list[Migration] = []
    for entry in resources.files("pulse_shared.schema.sql").iterdir():
        match = _FILE_NAME.match(entry.name)
        if match:
            text = entry.read_text()
            found.append(
                Migration(
                    int(match.group(1)),
                    match.group(2),
                    split_statements(text),
                    access_control=text.lstrip().startswith(ACCESS_CONTROL_MARKER),
                )
            )
    return sorted(found, key=lambda m: m.number)


_MIGRATIONS_TABLE_DDL = (
    f"CREATE TABLE IF NOT EXISTS {MIGRATIONS_TABLE} (version UInt32, name String, "
    "applied_at DateTime64(3, 'UTC') DEFAULT now64(3)) "
    "ENGINE = ReplacingMergeTree ORDER BY version",
    # Rows written before outcomes were recorded were all applied.
    f"ALTER TABLE {MIGRATIONS_TABLE} ADD COLUMN IF NOT EXISTS "
    f"outcome LowCardinality(String) DEFAULT '{APPLIED}'",
)


def statements_for(store: Store, statements: Sequence[str]) -> tuple[str, ...]:
    """``statements`` as they run on ``store``: unchanged on one node, rendered for its
    cluster (replicated local + Distributed tables, ON CLUSTER) when it has one."""
    if not store.cluster:
        return tuple(statements)
    return cluster_schema(store.cluster).render_all(statements)


def cluster_schema(cluster: str) -> ClusterSchema:
    """The renderer of every migration for ``cluster`` (knows every replicated table)."""
    every = [*_MIGRATIONS_TABLE_DDL]
    for migration in load_migrations():
        every.extend(migration.statements)
    return ClusterSchema(cluster, replicated_tables(every))


def applied_versions(store: Store) -> set[int]:
    """Versions recorded as applied (``skipped`` access-control migrations are pending)."""
    for statement in statements_for(store, _MIGRATIONS_TABLE_DDL):
        store.command(statement)
    rows = store.query(
        f"SELECT version FROM {MIGRATIONS_TABLE} FINAL "  # noqa: S608 - constant
        "WHERE outcome = {applied:String}",
        {"applied": APPLIED},
    )
    return {int(r["version"]) for r in rows}


def _record(store: Store, migration: Migration, outcome: str) -> None:
    store.insert(
        MIGRATIONS_TABLE,
        [{"version": migration.number, "name": migration.name, "outcome": outcome}],
        ["version", "name", "outcome"],
    )


def _apply_access_control(store: Store, migration: Migration) -> bool:
    """Apply an access-control migration where access can be managed; False (logged) when
    it cannot apply here. Other failures (a broken statement) raise as usual."""
    if not store.supports_access_control:
        # Nothing to say: an embedded store never has users. (Not even a debug line: CLI
        # commands that print CSV/JSON on stdout run migrate before configuring logging,
        # and structlog's default prints every level there.)
        return False
    try:
        for statement in statements_for(store, migration.statements):
            store.command(statement)
    except StoreError as exc:
        if exc.name not in ACCESS_MANAGEMENT_ERRORS:
            raise
        log.warning(
            "access_control_migration_not_applied",
            migration=migration.label,
            error=str(exc),
            how_to_apply="run `pulse migrate` as a ClickHouse user with access management "
                         "(deploy: pulse_writer, deploy/clickhouse/users.d/pulse-users.xml) on "
                         "a server whose user_directories include a local_directory; see "
                         "docs/clickhouse-roles.md",
        )
        return False
    return True


def _reload_users(store: Store) -> None:
    """Have the server re-read its XML users (best effort).

    An XML user granted an SQL role (deploy: ``grafana_<role>``, ``GRANT pulse_<role>`` in
    users.d) has it resolved when users.xml is read; read before the roles existed, the
    grant is ignored until the next read. Services and ``pulse migrate`` call this on
    every run, so a grant left unresolved heals at the next start.
    """
    try:
        store.command("SYSTEM RELOAD USERS")
    except StoreError as exc:
        if exc.name not in ACCESS_MANAGEMENT_ERRORS:
            raise
        log.info("reload_users_not_allowed", error=str(exc))


def migrate(
    store: Store, on_applied: Callable[[Migration], None] | None = None
) -> list[Migration]:
    """Apply every migration not yet applied; returns the ones applied now.

    An access-control migration that cannot apply on this store is recorded as
    ``skipped`` (tried again next time) and does not stop the others.
    """
    done = applied_versions(store)
    migrations = load_migrations()
    applied: list[Migration] = []
    for migration in migrations:
        if migration.number in done:
            continue
        if migration.access_control:
            if not _apply_access_control(store, migration):
                _record(store, migration, SKIPPED)
                continue
        else:
            for statement in statements_for(store, migration.statements):
                store.command(statement)
        _record(store, migration, APPLIED)
        applied.append(migration)
        if on_applied:
            on_applied(migration)
    access_applied = {m.number for m in applied} | done
    if store.supports_access_control and any(
        m.access_control and m.number in access_applied for m in migrations
    ):
        _reload_users(store)
    from pulse_shared.erasure import apply_retention

    apply_retention(store)
    return applied


def migrate_on_startup(store: Store) -> Callable[[], Awaitable[None]]:
    """A service's start-up hook: apply pending migrations before the broker starts
    consuming (in a worker thread, so the event loop stays responsive)."""

    async def apply_migrations() -> None:
        applied = await asyncio.to_thread(migrate, store)
        if applied:
            log.info(
                "migrations_applied", migrations=[m.label for m in applied]
            )

    return apply_migrations
