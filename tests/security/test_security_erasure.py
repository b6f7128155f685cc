"""Erasure and retention (issue 15): `pulse privacy erase` removes every row of an account or
a contact from every table on both backends, tombstones keep replays from restoring them,
and retention settings become table TTLs."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import uuid
from decimal import Decimal
from pathlib import Path

import pytest

from pulse_cli.runtime import in_process_pipeline
from pulse_shared.bus import Bus, make_broker
from pulse_shared.erasure import (
    ErasureFilter,
    RetentionSettings,
    account_subject,
    apply_retention,
    contact_subject,
    erase,
    subject_tables,
)
from pulse_shared.events import (
    Channel,
    ErasureSubjectKind,
    PipelineEvent,
    PipelineStage,
    Subscription,
    SubscriptionEventType,
    Touchpoint,
    TouchType,
)
from pulse_shared.privacy import contact_hash
from pulse_shared.store import Store
from pulse_shared.topics import ERASURES, PIPELINE, SUBSCRIPTIONS, TOUCHPOINTS

PULSE = str(Path(sys.executable).parent / "pulse")
SALT = "erasure-test-salt"

pytestmark = pytest.mark.timeout(240)


# -- helpers -----------------------------------------------------------------------------


def journey(account: str, emails: list[str], now: dt.datetime) -> dict[str, list]:  # type: ignore[type-arg]
    """Touches of the account's contacts, then it becomes a customer: rows in touchpoints,
    pipeline_events, subscriptions, conversions, attribution_credits, kpi_mrr_movements."""
    start = now - dt.timedelta(days=20)
    touches = [
        Touchpoint(
            event_id=f"{account}-t{i}", occurred_at=start + dt.timedelta(days=i),
            account_id=account, contact_id=contact_hash(email, SALT),
            channel=Channel.EMAIL if i % 2 else Channel.PAID_SEARCH,
            touch_type=TouchType.EMAIL_CLICK if i % 2 else TouchType.AD_CLICK,
            campaign_id="erasure-test",
        )
        for i, email in enumerate(emails)
    ]
    won = start + dt.timedelta(days=len(emails) + 1)
    pipeline = [PipelineEvent(event_id=f"{account}-won", occurred_at=won, account_id=account,
                              stage=PipelineStage.WON, amount=Decimal("1200"))]
    subscriptions = [Subscription(
        event_id=f"{account}-sub", occurred_at=won + dt.timedelta(hours=1), account_id=account,
        event_type=SubscriptionEventType.SUBSCRIPTION_STARTED, mrr=Decimal("100"), plan="pro")]
    return {TOUCHPOINTS.name: touches, PIPELINE.name: pipeline,
            SUBSCRIPTIONS.name: subscriptions}


async def publish_all(bus: Bus, events: dict[str, list]) -> None:  # type: ignore[type-arg]
    for topic in (TOUCHPOINTS, PIPELINE, SUBSCRIPTIONS):
        await bus.publish(topic, events[topic.name])


def rows_naming(store: Store, value: str) -> dict[str, int]:
    """Rows per table holding ``value`` in any String column (tables holding none left out),
    as FINAL queries see them."""
    columns = store.query(
        "SELECT c.table AS table, any(t.engine) AS engine, groupArray(c.name) AS names "
        "FROM system.columns AS c "
        "INNER JOIN system.tables AS t ON t.database = c.database AND t.name = c.table "
        "WHERE c.database = currentDatabase() AND t.engine LIKE '%MergeTree' "
        "AND c.type IN ('String', 'LowCardinality(String)') GROUP BY c.table")
    found = {}
    for row in columns:
        if row["table"] == "erasures":
            continue  # the audit log names the subject on purpose
        condition = " OR ".join(f"`{name}` = {{v:String}}" for name in row["names"])
        final = " FINAL" if "Replacing" in row["engine"] else ""
        n = int(store.query_value(
            f"SELECT count() FROM `{row['table']}`{final} WHERE {condition}", {"v": value}))
        if n:
            found[row["table"]] = n
    return found


def contact_rows(store: Store, contact_id: str) -> int:
    return int(store.query_value(
        "SELECT count() FROM touchpoints FINAL WHERE contact_id = {c:String}", {"c": contact_id}))


# -- erasure on both backends -----------------------------------------------------------


async def test_erase_account_removes_every_row_and_redelivery_does_not_restore_it(
    any_store: Store,
) -> None:
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    erased, kept = f"acct-erase-{uuid.uuid4().hex[:8]}", f"acct-keep-{uuid.uuid4().hex[:8]}"
    emails = [f"{uuid.uuid4().hex[:8]}@erase.example" for _ in range(3)]
    events_erased, events_kept = journey(erased, emails, now), journey(kept, emails[:1], now)
    async with in_process_pipeline(any_store) as pipeline:
        bus = pipeline.bus
        await publish_all(bus, events_erased)
        await publish_all(bus, events_kept)
    before = rows_naming(any_store, erased)
    assert {"touchpoints", "pipeline_events", "subscriptions", "conversions",
            "attribution_credits", "kpi_mrr_movements"} <= set(before)
    kept_before = rows_naming(any_store, kept)

    result = erase(any_store, account_subject(erased), "dpo@test")

    assert rows_naming(any_store, erased) == {}
    assert {t: n for t, n in result.row_counts.items() if n} == before
    assert rows_naming(any_store, kept) == kept_before  # nobody else lost a row
    assert result.first_day == (now - dt.timedelta(days=20)).date()
    assert result.end_day is not None and result.end_day > result.first_day
    # The daily aggregates were rebuilt without the erased account's touches.
    day = events_erased[TOUCHPOINTS.name][1].occurred_at.date()
    accounts = any_store.query_value(
        "SELECT uniqExactMerge(accounts) FROM touchpoints_daily WHERE day = {d:Date} "
        "AND campaign_id = 'erasure-test'", {"d": day})
    expected = int(any_store.query_value(
        "SELECT uniqExact(account_id) FROM touchpoints FINAL WHERE toDate(occurred_at) = "
        "{d:Date} AND campaign_id = 'erasure-test'", {"d": day}))
    assert int(accounts or 0) == expected
    audit = any_store.query(
        "SELECT subject_kind, subject, actor, completed_at, row_counts FROM erasures FINAL "
        "WHERE erasure_id = {e:String}", {"e": result.erasure_id})
    assert [(a["subject_kind"], a["subject"], a["actor"]) for a in audit] == [
        ("account", erased, "dpo@test")]
    assert audit[0]["completed_at"] is not None
    assert {t: int(n) for t, n in audit[0]["row_counts"].items()} == result.row_counts

    # A redelivery (or replay) of the same events: the writers drop the erased account.
    async with in_process_pipeline(any_store) as pipeline:
        bus = pipeline.bus
        await publish_all(bus, events_erased)
    assert rows_naming(any_store, erased) == {}


async def test_erase_contact_by_email_keeps_the_account_s_other_contacts(
    any_store: Store,
) -> None:
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    account = f"acct-contact-{uuid.uuid4().hex[:8]}"
    jane, bob = f"jane-{uuid.uuid4().hex[:6]}@acme.example", f"bob-{uuid.uuid4().hex[:6]}@acme.example"
    events = journey(account, [jane, bob, jane], now)
    async with in_process_pipeline(any_store) as pipeline:
        bus = pipeline.bus
        await publish_all(bus, events)
    jane_id, bob_id = contact_hash(jane, SALT), contact_hash(bob, SALT)
    assert (contact_rows(any_store, jane_id), contact_rows(any_store, bob_id)) == (2, 1)

    # The address as a person types it: the same hash as ingest computes.
    subject = contact_subject(f"  {jane.upper()} ", SALT)
    assert (subject.kind, subject.value) == (ErasureSubjectKind.CONTACT, jane_id)
    result = erase(any_store, subject, "dpo@test")

    assert result.row_counts["touchpoints"] == 2
    assert (contact_rows(any_store, jane_id), contact_rows(any_store, bob_id)) == (0, 1)
    stored = any_store.query(
        "SELECT subject FROM erasures FINAL WHERE erasure_id = {e:String}",
        {"e": result.erasure_id})
    assert stored == [{"subject": jane_id}]  # the hash, never the address
    async with in_process_pipeline(any_store) as pipeline:
        bus = pipeline.bus
        await bus.publish(TOUCHPOINTS, events[TOUCHPOINTS.name])
    assert (contact_rows(any_store, jane_id), contact_rows(any_store, bob_id)) == (0, 1)


def test_erasure_filter_rereads_after_its_interval_or_an_invalidation(
    embedded_store: Store,
) -> None:
    account = f"acct-filter-{uuid.uuid4().hex[:8]}"
    ticks = [0.0]
    erasures = ErasureFilter(embedded_store, refresh_s=10.0, clock=lambda: ticks[0])
    row = {"account_id": account, "contact_id": "x"}
    assert erasures.keep([row], ["account_id"]) == [row]
    embedded_store.insert(
        "erasures",
        [{"erasure_id": uuid.uuid4().hex, "subject_kind": "account", "subject": account,
          "actor": "t", "requested_at": dt.datetime.now(dt.UTC),
          "updated_at": dt.datetime.now(dt.UTC)}],
        ["erasure_id", "subject_kind", "subject", "actor", "requested_at", "updated_at"])
    ticks[0] = 9.0
    assert erasures.keep([row], ["account_id"]) == [row]  # still the list read at 0
    ticks[0] = 10.0
    assert erasures.keep([row], ["account_id"]) == []
    assert erasures.keep([row], ["channel"]) == [row]  # no subject column: untouched
    fresh = ErasureFilter(embedded_store, refresh_s=1000.0, clock=lambda: 0.0)
    assert fresh.keep([{"account_id": "other"}], ["account_id"]) == [{"account_id": "other"}]
    fresh.invalidate()
    assert fresh.keep([row], ["account_id"]) == []


def test_subject_tables_are_found_from_the_schema(any_store: Store) -> None:
    accounts = {t.table for t in subject_tables(any_store, ErasureSubjectKind.ACCOUNT)}
    assert {"touchpoints", "subscriptions", "pipeline_events", "conversions",
            "attribution_credits", "kpi_mrr_movements"} <= accounts
    assert "erasures" not in accounts
    contacts = {t.table for t in subject_tables(any_store, ErasureSubjectKind.CONTACT)}
    assert "touchpoints" in contacts


# -- retention ---------------------------------------------------------------------------


def engine_full(store: Store, table: str) -> str:
    return str(store.query_value(
        "SELECT engine_full FROM system.tables WHERE database = currentDatabase() "
        "AND name = {t:String}", {"t": table}))


def test_retention_settings_become_ttls_through_migrate(
    any_store: Store, monkeypatch: pytest.MonkeyPatch,
) -> None:
    from pulse_shared.schema.migrations import migrate

    # Long enough that no row of any other test expires while the TTL is on.
    days = 36500
    monkeypatch.setenv("PULSE_RETENTION_SPEND_DAYS", str(days))
    monkeypatch.setenv("PULSE_RETENTION_TOUCHPOINTS_DAYS", str(days + 1))
    try:
        migrate(any_store)
        assert f"TTL date + toIntervalDay({days})" in engine_full(any_store, "spend")
        assert f"TTL toDateTime(occurred_at) + toIntervalDay({days + 1})" in engine_full(
            any_store, "touchpoints")
        assert f"TTL day + toIntervalDay({days + 1})" in engine_full(
            any_store, "touchpoints_daily")
        create = str(any_store.query_value(
            "SELECT create_table_query FROM system.tables WHERE database = currentDatabase() "
            "AND name = 'spend'"))
        assert f"toIntervalDay({days})" in create
        assert "TTL" not in engine_full(any_store, "subscriptions")  # unset: no TTL
        # Already as configured: nothing is altered again.
        assert apply_retention(any_store) == {}
    finally:
        monkeypatch.delenv("PULSE_RETENTION_SPEND_DAYS")
        monkeypatch.delenv("PULSE_RETENTION_TOUCHPOINTS_DAYS")
        changed = apply_retention(any_store, RetentionSettings())
    assert changed == {"spend": "removed", "touchpoints": "removed",
                       "touchpoints_daily": "removed"}
    assert "TTL" not in engine_full(any_store, "spend")


def test_retention_days_must_be_positive() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="touchpoints_days"):
        RetentionSettings(touchpoints_days=0)


# -- the command line ---------------------------------------------------------------------


def run(tmp_path: Path, *args: str, env: dict[str, str] | None = None,
        ) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items()
            if k not in ("PULSE_KAFKA_BOOTSTRAP", "PULSE_CLICKHOUSE_URL")}
    base["PULSE_DATA_DIR"] = str(tmp_path / "pulse-data")
    return subprocess.run([PULSE, *args], env={**base, **(env or {})}, cwd=tmp_path,
                          capture_output=True, text=True, timeout=200)


def test_cli_erases_on_the_embedded_store_and_keeps_an_audit_log(tmp_path: Path) -> None:
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    at = [(now - dt.timedelta(days=d)).strftime("%Y-%m-%dT%H:%M:%SZ") for d in (9, 8, 7, 3)]
    touches = tmp_path / "touchpoints.ndjson"
    touches.write_text("".join(json.dumps({
        "event_id": e, "occurred_at": t, "account_id": a, "contact_email": c,
        "channel": "email", "touch_type": "email_click", "campaign_id": "nurture"}) + "\n"
        for e, t, a, c in [("e1", at[0], "acct-A", "jane@acme.example"),
                           ("e2", at[1], "acct-B", "bob@acme.example"),
                           ("e3", at[2], "acct-B", "jane@acme.example")]))
    pipeline = tmp_path / "pipeline.ndjson"
    pipeline.write_text(json.dumps({
        "event_id": "p1", "occurred_at": at[3], "account_id": "acct-A", "stage": "won",
        "amount": 1000, "currency": "USD"}) + "\n")
    for wrong in ((), ("--account-id", "acct-A", "--contact", "jane@acme.example")):
        refused = run(tmp_path, "privacy", "erase", *wrong)
        assert refused.returncode == 2, refused.stderr
        assert refused.stderr.strip().count("\n") == 0, refused.stderr
        assert "exactly one of --account-id or --contact" in refused.stderr
    for kind, file in (("touchpoints", touches), ("pipeline", pipeline)):
        done = run(tmp_path, "ingest", kind, str(file))
        assert done.returncode == 0, done.stderr

    erased = run(tmp_path, "privacy", "erase", "--account-id", "acct-A", "--actor", "dpo",
                 "--format", "json")
    assert erased.returncode == 0, erased.stderr
    counts = {r["table"]: r["rows"] for r in json.loads(erased.stdout)}
    assert (counts["touchpoints"], counts["pipeline_events"], counts["conversions"]) == (1, 1, 1)
    assert counts["attribution_credits"] > 0
    assert "KPIs recomputed --from" in erased.stderr

    by_contact = run(tmp_path, "privacy", "erase", "--contact", "Jane@Acme.example",
                     "--format", "csv")
    assert by_contact.returncode == 0, by_contact.stderr
    assert "touchpoints,1" in by_contact.stdout.splitlines()  # e3 (e1 went with acct-A)

    # Ingesting the same records again stores nothing of either subject.
    again = run(tmp_path, "ingest", "touchpoints", str(touches))
    assert again.returncode == 0, again.stderr
    recount = run(tmp_path, "privacy", "erase", "--account-id", "acct-A", "--format", "json")
    assert recount.returncode == 0, recount.stderr
    assert all(r["rows"] == 0 for r in json.loads(recount.stdout))
    log = run(tmp_path, "privacy", "erasures", "--format", "json")
    assert log.returncode == 0, log.stderr
    entries = json.loads(log.stdout)
    assert [(e["subject_kind"], e["actor"]) for e in entries][-2:] == [
        ("contact", entries[-2]["actor"]), ("account", "dpo")]
    assert "jane" not in log.stdout.lower()  # a contact appears only as its hash
    assert len(entries[-2]["subject"]) == 64

    wrong = run(tmp_path, "privacy", "erase")
    assert wrong.returncode != 0
    assert wrong.stderr.strip().count("\n") == 0 and "--account-id or --contact" in wrong.stderr
    assert "Traceback" not in wrong.stderr


# -- server mode: Kafka, tombstone, replay -----------------------------------------------


async def read_topic(bootstrap: str, topic: str) -> list[dict]:  # type: ignore[type-arg]
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=None,
                                auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    try:
        batches = await consumer.getmany(timeout_ms=5000)
        return [json.loads(r.value) for records in batches.values() for r in records]
    finally:
        await consumer.stop()


@pytest.mark.kafka
@pytest.mark.clickhouse
async def test_erased_account_stays_gone_after_a_replay(  # type: ignore[no-untyped-def]
    kafka_broker, clickhouse_server, server_store, tmp_path: Path,
) -> None:
    from pulse_cli.replay import batch_consumers, replay_topic
    from pulse_cli.runtime import build_components

    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    since = now - dt.timedelta(seconds=5)
    erased, kept = f"acct-gone-{uuid.uuid4().hex[:8]}", f"acct-stay-{uuid.uuid4().hex[:8]}"
    emails = [f"{uuid.uuid4().hex[:8]}@replay.example" for _ in range(2)]
    bootstrap = kafka_broker.bootstrap_servers
    broker = make_broker(bootstrap)
    await broker.connect()
    try:
        bus = Bus(broker, "test")
        await publish_all(bus, journey(erased, emails, now))
        await publish_all(bus, journey(kept, emails[:1], now))
        components = build_components(server_store, broker, in_memory=False)
        for topic in (TOUCHPOINTS, PIPELINE, SUBSCRIPTIONS):  # the services consume them
            await replay_topic(bootstrap, topic.name, since,
                               batch_consumers(components, topic.name))
    finally:
        await broker.stop()
    assert {"touchpoints", "conversions", "attribution_credits", "kpi_mrr_movements"} <= set(
        rows_naming(server_store, erased))
    kept_before = rows_naming(server_store, kept)

    env = {"PULSE_KAFKA_BOOTSTRAP": bootstrap, "PULSE_CLICKHOUSE_URL": clickhouse_server.url,
           "PULSE_ERASURE_REFRESH_S": "0.2"}
    erasure = run(tmp_path, "privacy", "erase", "--account-id", erased, "--format", "json",
                  env=env)
    assert erasure.returncode == 0, erasure.stderr
    assert "tombstone published" in erasure.stderr
    assert rows_naming(server_store, erased) == {}
    tombstones = [t for t in await read_topic(bootstrap, ERASURES.name)
                  if t["subject"] == erased]
    assert [(t["subject_kind"]) for t in tombstones] == ["account"]

    for topic in (TOUCHPOINTS, PIPELINE, SUBSCRIPTIONS):
        replay = run(tmp_path, "replay", "--topic", topic.name, "--from",
                     since.strftime("%Y-%m-%dT%H:%M:%S"), env=env)
        assert replay.returncode == 0, replay.stderr
    assert rows_naming(server_store, erased) == {}
    assert rows_naming(server_store, kept) == kept_before  # replayed, unchanged
