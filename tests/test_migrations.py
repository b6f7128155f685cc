"""Migrations are code: their order and idempotency are tested without any server."""

from __future__ import annotations

import re
from importlib import resources

from pulse_shared.schema.migrations import load_migrations, split_statements


def test_migration_numbers_are_unique_and_increasing() -> None:
    names = [e.name for e in resources.files("pulse_shared.schema.sql").iterdir()
             if e.name.endswith(".sql")]
    numbers = [int(n[:4]) for n in names]
    assert len(numbers) == len(set(numbers)), "two migrations share a number"
    assert [m.number for m in load_migrations()] == sorted(numbers)
    assert all(re.match(r"^\d{4}_[a-z0-9_]+\.sql$", n) for n in names)


def test_every_statement_is_idempotent() -> None:
    for migration in load_migrations():
        for statement in migration.statements:
            head = " ".join(statement.split()[:6]).upper()
            if head.startswith(("CREATE", "ALTER TABLE")):
                assert "IF NOT EXISTS" in statement.upper(), (migration.name, head)


def test_statement_splitting_ignores_comments() -> None:
    sql = "-- a; comment\nCREATE TABLE IF NOT EXISTS a (x UInt8) ENGINE = Memory;\n\nSELECT 1;"
    assert split_statements(sql) == (
        "CREATE TABLE IF NOT EXISTS a (x UInt8) ENGINE = Memory",
        "SELECT 1",
    )
