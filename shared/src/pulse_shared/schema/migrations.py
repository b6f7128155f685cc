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
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from importlib import resources

from pulse_shared.logging import get_logger
from pulse_shared.store.base import Store

log = get_logger(__name__)
MIGRATIONS_TABLE = "pulse_migrations"
_FILE_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True)
class Migration:
    number: int
    name: str
    statements: tuple[str, ...]


def split_statements(sql: str) -> tuple[str, ...]:
    body = "\n".join(line for line in sql.splitlines() if not line.strip().startswith("--"))
    return tuple(s.strip() for s in re.split(r";\s*(?:\n|$)", body) if s.strip())


def load_migrations() -> list[Migration]:
    """All migrations sorted by number (file names are the source of truth)."""
    found: list[Migration] = []
    for entry in resources.files("pulse_shared.schema.sql").iterdir():
        match = _FILE_NAME.match(entry.name)
        if match:
            found.append(
                Migration(
                    int(match.group(1)), match.group(2), split_statements(entry.read_text())
                )
            )
    return sorted(found, key=lambda m: m.number)


def applied_versions(store: Store) -> set[int]:
    store.command(
        f"CREATE TABLE IF NOT EXISTS {MIGRATIONS_TABLE} (version UInt32, name String, "
        "applied_at DateTime64(3, 'UTC') DEFAULT now64(3)) "
        "ENGINE = ReplacingMergeTree ORDER BY version"
    )
    rows = store.query(f"SELECT version FROM {MIGRATIONS_TABLE}")  # noqa: S608 - constant
    return {int(r["version"]) for r in rows}


def migrate(
    store: Store, on_applied: Callable[[Migration], None] | None = None
) -> list[Migration]:
    """Apply every migration not yet recorded; returns the ones applied now."""
    done = applied_versions(store)
    applied: list[Migration] = []
    for migration in load_migrations():
        if migration.number in done:
            continue
        for statement in migration.statements:
            store.command(statement)
        store.insert(
            MIGRATIONS_TABLE,
            [{"version": migration.number, "name": migration.name}],
            ["version", "name"],
        )
        applied.append(migration)
        if on_applied:
            on_applied(migration)
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
                "migrations_applied", migrations=[f"{m.number:04d}_{m.name}" for m in applied]
            )

    return apply_migrations
