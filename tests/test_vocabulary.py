"""One vocabulary: kind ↔ topic ↔ table from the topic registry, latest credits one way."""

from __future__ import annotations

import datetime as dt
import re
import uuid
from decimal import Decimal
from importlib import resources

import pytest

from pulse_shared import topics
from pulse_shared.credits import latest_credits
from pulse_shared.store import Store


def _ddl_tables() -> set[str]:
    sql = resources.files("pulse_shared.schema") / "sql"
    text = "\n".join(f.read_text() for f in sql.iterdir() if f.name.endswith(".sql"))
    return set(re.findall(r"CREATE TABLE IF NOT EXISTS (\w+)", text))


def test_every_stored_topic_names_a_table_of_the_schema() -> None:
    tables = {t.name: t.table for t in topics.ALL_TOPICS if t.table is not None}
    assert set(tables.values()) <= _ddl_tables()
    assert tables[topics.PIPELINE.name] == "pipeline_events"
    with pytest.raises(ValueError, match="campaign.actions.v1 is not stored"):
        topics.CAMPAIGN_ACTIONS.stored_table()


def test_ingest_kinds_come_from_the_registry() -> None:
    from pulse_alerts.domain.rule_types import SOURCES
    from pulse_alerts.storage import FRESHNESS_TABLES
    from pulse_cli.ingest_cli import EVENT_KINDS
    from pulse_ingest.domain.generator import KINDS as GENERATED
    from pulse_ingest.domain.normalize import KIND_TOPICS

    assert topics.INGEST_KINDS == (
        "touchpoints", "spend", "subscriptions", "pipeline", "budgets", "martech",
        "deliverability", "usage", "accounts", "feedback", "tickets",
    )
    # lists of kind names kept as literals (the CLI's for a fast start) must match the registry
    for names in (SOURCES, EVENT_KINDS, GENERATED):
        assert tuple(names) == topics.INGEST_KINDS
    assert KIND_TOPICS == topics.BY_INGEST_KIND
    assert FRESHNESS_TABLES["pipeline"] == "pipeline_events"
    assert set(FRESHNESS_TABLES) == set(topics.INGEST_KINDS)


CREDIT_COLUMNS = (
    "conversion_id", "milestone", "model", "version", "account_id", "touchpoint_event_id",
    "channel", "campaign_id", "touched_at", "converted_at", "credit", "credited_revenue",
    "currency",
)


def test_latest_credits_fragment_matches_the_view(any_store: Store) -> None:
    """Re-credited conversions: only the highest version per (conversion, model) is read,
    by the shared fragment exactly as by the ``attribution_credits_latest`` view."""
    run = uuid.uuid4().hex[:8]
    at = dt.datetime(2029, 3, 4, 12, tzinfo=dt.UTC)
    rows = []
    # conversion a: versions 1 and 2 under last_touch, version 1 only under linear;
    # conversion b: version 3 only. Version 2 of a has two touches.
    for conv, model, version, touches in [
        ("a", "last_touch", 1, ["t1"]), ("a", "last_touch", 2, ["t1", "t2"]),
        ("a", "linear", 1, ["t1"]), ("b", "last_touch", 3, ["t3"]),
    ]:
        for touch in touches:
            rows.append({
                "conversion_id": f"{run}-{conv}", "milestone": "won", "model": model,
                "version": version, "account_id": f"{run}-acc", "touchpoint_event_id": touch,
                "channel": "email", "campaign_id": "c", "touched_at": at, "converted_at": at,
                "credit": 1.0 / len(touches), "credited_revenue": Decimal(10 * version),
                "currency": "USD",
            })
    any_store.insert("attribution_credits", rows, CREDIT_COLUMNS)
    columns = "conversion_id, model, version, touchpoint_event_id, credit"
    order = " ORDER BY conversion_id, model, touchpoint_event_id"
    params = {"acc": f"{run}-acc"}
    via_fragment = any_store.query(
        f"SELECT {columns} FROM {latest_credits('account_id = {acc:String}')}{order}",
        params,
    )
    via_view = any_store.query(
        f"SELECT {columns} FROM attribution_credits_latest WHERE account_id = {{acc:String}}"
        f"{order}",
        params,
    )
    got = [(r["conversion_id"][len(run) + 1:], r["model"], int(r["version"]),
            r["touchpoint_event_id"]) for r in via_fragment]
    assert got == [("a", "last_touch", 2, "t1"), ("a", "last_touch", 2, "t2"),
                   ("a", "linear", 1, "t1"), ("b", "last_touch", 3, "t3")]
    assert via_fragment == via_view
