"""Crash, restart and rebalance tests of the KPI and attribution consumers and of ingest
publishing (issue 14).

The real components run in subprocesses (``fault_service.py``) against a Kafka broker and
a ClickHouse server DEDICATED to this module, while known events are produced; processes
are SIGKILLed at random points once they have written something, then restarted. Each test
uses its own ClickHouse database and consumer-group prefix (the group's offsets start at
the topics' current ends), so tests never see each other's data.

Checks: every produced event is in its table exactly once after ``FINAL`` (raw duplicates
before FINAL are counted and reported), derived rows (conversions, credits) are exactly
the expected ones, and ``kpi_values`` equals both sums computed here from the produced
events and a recomputation from the raw tables (``pulse_kpi.main.recompute_range``).
For ingest, the real ``pulse-ingest`` is SIGKILLed while clients post rows (retrying
failed requests, as clients do): every row of a request answered 200 must be on the topic.
Event dates are relative to today (the last 14 days); waits are bounded by generous
deadlines, never asserted on.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import math
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from fault_process import ChildProcess

from pulse_shared.events import (
    Channel,
    Event,
    PipelineEvent,
    PipelineStage,
    Spend,
    Subscription,
    SubscriptionEventType,
    Touchpoint,
    TouchType,
)
from pulse_shared.schema.migrations import migrate
from pulse_shared.store.server import ServerStore
from pulse_shared.topics import (
    ALL_TOPICS,
    BUDGETS,
    CREDITS,
    PIPELINE,
    SPEND,
    SUBSCRIPTIONS,
    TOUCHPOINTS,
    Topic,
)
from pulse_testinfra.clickhouse import ClickHouseServer
from pulse_testinfra.kafka import KafkaBroker

pytestmark = [pytest.mark.kafka, pytest.mark.clickhouse, pytest.mark.timeout(300)]

RUNNER = Path(__file__).with_name("fault_service.py")
PARTITIONS = 3
KPI_TOPICS = (SPEND, SUBSCRIPTIONS, PIPELINE, BUDGETS, CREDITS)
ATTRIBUTION_TOPICS = (TOUCHPOINTS, PIPELINE, SUBSCRIPTIONS)
#: Rule models: credited for every conversion with a touch (data-driven ones need a run).
RULE_MODELS = (
    "first_touch", "last_touch", "last_non_direct", "linear", "time_decay",
    "position_based", "w_shaped", "full_path",
)
#: Records per consumed batch: the KPI default; attribution's default (20000) is lowered
#: because a batch's credits are computed and published without yielding long enough to
#: heartbeat, and the runner's 2 s group session (quick restarts) would evict it.
MAX_RECORDS = {"kpi": 5000, "attribution": 2000}
RATE = 100  # events/s while processes are killed
LOOKBACK = dt.timedelta(days=90)  # AttributionSettings.lookback_days default


# -- dedicated servers -------------------------------------------------------------------


@pytest.fixture(scope="module")
def svc_kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaBroker]:
    broker = KafkaBroker(
        tmp_path_factory.mktemp("svc-kafka"),
        # lets the consumers use a 2 s session, so a killed member is evicted quickly
        extra_properties={"group.min.session.timeout.ms": "1000"},
    )
    try:
        broker.start()
        names = [t.name for t in ALL_TOPICS] + [t.dead_letter for t in ALL_TOPICS]
        broker.create_topics(names, PARTITIONS)
        yield broker
    finally:
        broker.stop()


@pytest.fixture(scope="module")
def svc_clickhouse(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClickHouseServer]:
    server = ClickHouseServer(tmp_path_factory.mktemp("svc-clickhouse"))
    try:
        server.start()
        yield server
    finally:
        server.stop()


@dataclass
class Env:
    """One test's isolated world: database, group prefix, event-id prefix, days."""

    kafka: KafkaBroker
    ch: ClickHouseServer
    database: str
    group_prefix: str
    run: str
    store: ServerStore
    days: list[dt.date]
    logs: Path
    procs: list[Service] = field(default_factory=list)

    @property
    def bootstrap(self) -> str:
        return self.kafka.bootstrap_servers

    def group(self, service: str) -> str:
        return f"{self.group_prefix}pulse-{service}"

    def start(self, service: str, name: str, standby: bool = False) -> Service:
        proc = Service(self, service, self.logs / f"{name}.log", standby)
        self.procs.append(proc)
        return proc


@pytest.fixture
async def env(
    svc_kafka: KafkaBroker, svc_clickhouse: ClickHouseServer, tmp_path: Path
) -> Any:
    tag = uuid.uuid4().hex[:8]
    database = f"faults_{tag}"
    admin = ServerStore(svc_clickhouse.url)
    admin.command(f"CREATE DATABASE {database}")
    admin.close()
    store = ServerStore(svc_clickhouse.url, database=database)
    migrate(store)
    today = dt.datetime.now(dt.UTC).date()
    days = [today - dt.timedelta(days=k) for k in range(14, 0, -1)]
    world = Env(svc_kafka, svc_clickhouse, database, f"faults-{tag}-", f"{tag}-", store,
                days, tmp_path)
    # The new groups start where the topics end now: earlier tests' events stay unseen.
    for service, topics in (("kpi", KPI_TOPICS), ("attribution", ATTRIBUTION_TOPICS)):
        await commit_at_end(world.bootstrap, world.group(service), topics)
    try:
        yield world
    finally:
        for proc in world.procs:
            proc.kill()
        store.close()


# -- processes ---------------------------------------------------------------------------


class Service(ChildProcess):
    """One service process (``fault_service.py``)."""

    stop_timeout_s = 60.0

    def __init__(self, env: Env, service: str, log: Path, standby: bool = False) -> None:
        self.service = service
        super().__init__(
            [sys.executable, str(RUNNER), service, env.bootstrap, env.ch.url, env.database,
             str(MAX_RECORDS[service])],
            log,
            stdin=True,
            env={**os.environ, "PULSE_CONSUMER_GROUP_PREFIX": env.group_prefix,
                 "FAULT_STANDBY": "1" if standby else "0"},
        )

    def go(self) -> None:
        """Let a standby process connect (it has already imported everything)."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(b"go\n")
        self.proc.stdin.flush()

    def stop(self) -> bool:
        """SIGTERM: the component's own stop (breakdowns refreshed, snapshots flushed)."""
        if not super().stop():
            raise AssertionError(f"{self.service} did not stop\n{self.tail()}")
        assert self.proc.returncode == 0, self.tail()
        return True

    def batches(self, since: int = 0) -> dict[str, dict[int, int]]:
        """Records received per topic and partition (from the runner's ``batch`` lines)."""
        seen: dict[str, dict[int, int]] = defaultdict(lambda: defaultdict(int))
        for line in self.text()[since:].splitlines():
            parts = line.split()
            if len(parts) == 4 and parts[0] == "batch":
                seen[parts[1]][int(parts[2])] += int(parts[3])
        return seen


# -- Kafka helpers -----------------------------------------------------------------------


def partitions(topics: tuple[Topic, ...]) -> list[Any]:
    from aiokafka import TopicPartition

    return [TopicPartition(t.name, p) for t in topics for p in range(PARTITIONS)]


async def commit_at_end(bootstrap: str, group: str, topics: tuple[Topic, ...]) -> None:
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group,
                                enable_auto_commit=False)
    await consumer.start()
    try:
        tps = partitions(topics)
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)
        await consumer.commit({tp: ends[tp] for tp in tps})
    finally:
        await consumer.stop()


async def wait_committed(bootstrap: str, group: str, topics: tuple[Topic, ...],
                         timeout: float, procs: list[Service]) -> None:
    """Wait until the group committed every record of ``topics`` (lag 0)."""
    from aiokafka import AIOKafkaConsumer
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    ends_client = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await admin.start()
    await ends_client.start()
    lag: dict[Any, int] = {}
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            tps = partitions(topics)
            ends = await ends_client.end_offsets(tps)
            committed = await admin.list_consumer_group_offsets(group)
            lag = {
                tp: ends[tp] - (committed[tp].offset if tp in committed else 0)
                for tp in tps
            }
            if not any(lag.values()):
                return
            await asyncio.sleep(0.3)
    finally:
        await ends_client.stop()
        await admin.close()
    tails = "\n".join(p.tail() for p in procs if p.alive())
    raise AssertionError(f"group {group} still lags after {timeout}s: "
                         f"{ {f'{k.topic}/{k.partition}': v for k, v in lag.items() if v} }"
                         f"\n{tails}")


async def produce_until(
    bootstrap: str, make: Callable[[int], tuple[Topic, Event]], rate: float,
    stop: asyncio.Event, produced: list[tuple[Topic, Event]], limit: int = 10**9,
) -> None:
    """Produce ``make(0), make(1), …`` at ~``rate``/s until ``stop`` is set (or ``limit``);
    ``produced`` lists every acknowledged event."""
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all",
                                enable_idempotence=True, linger_ms=5)
    await producer.start()
    try:
        chunk = max(1, int(rate / 10))
        started = time.monotonic()
        i = 0
        while not stop.is_set() and i < limit:
            events = [make(j) for j in range(i, min(i + chunk, limit))]
            futures = [await producer.send(topic.name, e.to_json(), key=topic.key_of(e))
                       for topic, e in events]
            await asyncio.gather(*futures)
            produced.extend(events)
            i += len(events)
            await asyncio.sleep(max(0.0, started + i / rate - time.monotonic()))
    finally:
        await producer.stop()


# -- ClickHouse helpers ------------------------------------------------------------------


def query(store: ServerStore, sql: str, params: dict[str, Any] | None = None) -> Any:
    for _ in range(50):  # the server is shared by busy processes; retry a transient error
        try:
            return store.query(sql, params or {})
        except Exception:
            time.sleep(0.2)
    return store.query(sql, params or {})


def raw_rows(store: ServerStore, tables: tuple[str, ...]) -> int:
    return sum(int(query(store, f"SELECT count() AS n FROM {t}")[0]["n"]) for t in tables)  # constant names


async def wait_until(check: Callable[[], bool], timeout: float, what: str,
                     procs: list[Service]) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await asyncio.to_thread(check):
            return
        await asyncio.sleep(0.3)
    tails = "\n".join(p.tail() for p in procs if p.alive())
    raise AssertionError(f"{what} not reached after {timeout}s\n{tails}")


async def kill_repeatedly(
    env: Env, service: str, kills: int, tables: tuple[str, ...], rng: random.Random,
) -> tuple[list[int], Service]:
    """Start ``service``; once it wrote rows, SIGKILL it at a random point and let the
    next incarnation (started in standby meanwhile) take over; ``kills`` times.
    Returns the raw row count at each kill and the incarnation left running."""
    at_kill: list[int] = []
    proc = env.start(service, f"{service}-0")
    for k in range(kills):
        before = await asyncio.to_thread(raw_rows, env.store, tables)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.alive():
            if await asyncio.to_thread(raw_rows, env.store, tables) > before:
                break
            await asyncio.sleep(0.05)
        assert proc.alive(), proc.tail()
        assert time.monotonic() < deadline, f"incarnation {k} wrote nothing\n{proc.tail()}"
        successor = env.start(service, f"{service}-{k + 1}", standby=True)
        await asyncio.sleep(rng.uniform(0.0, 1.0))
        proc.kill()
        at_kill.append(await asyncio.to_thread(raw_rows, env.store, tables))
        successor.go()
        proc = successor
    return at_kill, proc


def exact_ids(store: ServerStore, table: str, id_column: str, expected: set[str],
              label: str) -> int:
    """``table FINAL`` holds exactly ``expected`` ids; returns raw duplicates before FINAL."""
    got = [r["id"] for r in query(store, f"SELECT {id_column} AS id FROM {table} FINAL")]  # constant names
    assert len(got) == len(set(got)), f"{label}: FINAL returned duplicate ids"
    missing, extra = expected - set(got), set(got) - expected
    assert not missing, f"{label}: {len(missing)} lost, e.g. {sorted(missing)[:5]}"
    assert not extra, f"{label}: {len(extra)} unexpected, e.g. {sorted(extra)[:5]}"
    raw = int(query(store, f"SELECT count() AS n FROM {table}")[0]["n"])
    assert raw >= len(expected)
    return raw - len(expected)


# -- events ------------------------------------------------------------------------------

CHANNELS = list(Channel)


def at(day: dt.date, rng: random.Random) -> dt.datetime:
    """A whole-millisecond instant of ``day`` (ClickHouse keeps milliseconds)."""
    return dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC) + dt.timedelta(
        milliseconds=rng.randrange(86_400_000)
    )


def kpi_event(run: str, days: list[dt.date], i: int) -> tuple[Topic, Event]:
    """Event ``i``: half spend, 30 % pipeline, 20 % subscription events."""
    rng = random.Random(f"{run}{i}")
    day = days[i % len(days)] if i < len(days) else rng.choice(days)  # every day has spend
    kind = i % 10 if i >= len(days) else 0
    if kind < 5:
        return SPEND, Spend(
            event_id=f"{run}sp{i}", date=day, channel=rng.choice(CHANNELS),
            campaign_id=f"cmp-{rng.randrange(20)}",
            amount=Decimal(rng.randrange(100, 200_000)) / 100,
            impressions=rng.randrange(5000), clicks=rng.randrange(200),
        )
    if kind < 8:
        stage = rng.choice(list(PipelineStage))
        return PIPELINE, PipelineEvent(
            event_id=f"{run}pl{i}", occurred_at=at(day, rng),
            account_id=f"acct-{rng.randrange(150)}", stage=stage,
            amount=Decimal(rng.randrange(1000, 90_000)) if stage != PipelineStage.LEAD else None,
        )
    event_type = rng.choice(list(SubscriptionEventType))
    mrr = 0 if event_type == SubscriptionEventType.SUBSCRIPTION_CANCELED else rng.randrange(50, 900)
    return SUBSCRIPTIONS, Subscription(
        event_id=f"{run}sb{i}", occurred_at=at(day, rng), account_id=f"acct-{rng.randrange(120)}",
        event_type=event_type, mrr=Decimal(mrr),
    )


def attribution_event(run: str, days: list[dt.date], i: int) -> tuple[Topic, Event]:
    """Event ``i``: 50 % touchpoints, 35 % pipeline (lead/mql/opportunity/won), 15 %
    subscriptions, over 400 accounts: conversions get a few touches before and after them
    (journeys of realistic length, so a batch's credits stay in the thousands)."""
    rng = random.Random(f"{run}{i}")
    account = f"acct-{rng.randrange(400)}"
    occurred = at(rng.choice(days), rng)
    kind = i % 20
    if kind < 10:
        return TOUCHPOINTS, Touchpoint(
            event_id=f"{run}tp{i}", occurred_at=occurred, account_id=account,
            contact_id=hashlib.sha256(f"{account}-{rng.randrange(4)}".encode()).hexdigest(),
            channel=rng.choice(CHANNELS), campaign_id=f"cmp-{rng.randrange(12)}",
            touch_type=rng.choice(list(TouchType)),
        )
    if kind < 17:
        stage = rng.choice([PipelineStage.LEAD, PipelineStage.MQL, PipelineStage.OPPORTUNITY,
                            PipelineStage.WON])
        return PIPELINE, PipelineEvent(
            event_id=f"{run}pl{i}", occurred_at=occurred, account_id=account, stage=stage,
            amount=Decimal(rng.randrange(1000, 90_000)) if stage != PipelineStage.LEAD else None,
        )
    event_type = rng.choice([SubscriptionEventType.SUBSCRIPTION_STARTED,
                             SubscriptionEventType.SUBSCRIPTION_UPGRADED])
    return SUBSCRIPTIONS, Subscription(
        event_id=f"{run}sb{i}", occurred_at=occurred, account_id=account,
        event_type=event_type, mrr=Decimal(rng.randrange(50, 900)),
    )


def of(produced: list[tuple[Topic, Event]], topic: Topic) -> list[Any]:
    return [e for t, e in produced if t is topic]


# -- KPI checks --------------------------------------------------------------------------


def close(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is b
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-6)


def kpi_table(store: ServerStore) -> dict[tuple[str, str, str, str, str], float | None]:
    rows = query(store, "SELECT kpi, grain, dimension, dimension_value, period, value "
                        "FROM kpi_values FINAL")
    return {(r["kpi"], r["grain"], r["dimension"], r["dimension_value"], r["period"]): r["value"]
            for r in rows}


def expected_totals(produced: list[tuple[Topic, Event]]) -> dict[tuple[str, str, str], float]:
    """KPI totals (dimension ``all``) computed here from the produced events:
    (kpi, grain, period) → value for spend, impressions, clicks, funnel counts and MRR."""
    out: dict[tuple[str, str, str], float] = defaultdict(float)
    for s in of(produced, SPEND):
        for grain, period in (("day", s.date.isoformat()), ("month", s.date.strftime("%Y-%m"))):
            out[("spend", grain, period)] += float(s.amount)
            out[("impressions", grain, period)] += s.impressions
            out[("clicks", grain, period)] += s.clicks
    stage_kpi = {"lead": "leads", "mql": "mqls", "sql": "sqls", "opportunity": "opportunities",
                 "won": "wins"}
    for p in of(produced, PIPELINE):
        if p.stage in stage_kpi:
            day = p.occurred_at.date()
            for grain, period in (("day", day.isoformat()), ("month", day.strftime("%Y-%m"))):
                out[(stage_kpi[p.stage], grain, period)] += 1
    subscriptions = of(produced, SUBSCRIPTIONS)
    if subscriptions:
        latest: dict[str, Subscription] = {}
        for s in sorted(subscriptions, key=lambda s: (s.occurred_at, s.event_id)):
            latest[s.account_id] = s
        last_day = max(s.occurred_at.date() for s in subscriptions)
        # MRR at the end of the last day with billing events = every account's last MRR
        out[("mrr", "day", last_day.isoformat())] = float(sum(s.mrr for s in latest.values()))
        out[("paying_accounts", "day", last_day.isoformat())] = sum(
            1 for s in latest.values() if s.mrr > 0)
    return dict(out)


async def check_kpis(env: Env, produced: list[tuple[Topic, Event]], record_property: Any,
                     label: str) -> dict[str, int]:
    """``kpi_values`` equals sums of the produced events and a recompute from raw tables."""
    from pulse_kpi.main import recompute_range

    live = await asyncio.to_thread(kpi_table, env.store)
    expected = expected_totals(produced)
    wrong = [
        (key, value, live.get((key[0], key[1], "all", "", key[2])))
        for key, value in sorted(expected.items())
        if not close(value, live.get((key[0], key[1], "all", "", key[2])))
    ]
    assert not wrong, f"{label}: {len(wrong)} KPI totals differ from the produced events " \
                      f"(kpi, expected, stored): {wrong[:10]}"
    days = [e.date if isinstance(e, Spend) else e.occurred_at.date() for _, e in produced
            if isinstance(e, Spend | PipelineEvent | Subscription)]
    first, last = min(days), max(days)
    changed = await recompute_range(env.store, first, last + dt.timedelta(days=1))
    recomputed = await asyncio.to_thread(kpi_table, env.store)
    differ = [(k, live.get(k), v) for k, v in recomputed.items()
              if k in live and not close(live[k], v)]
    new = sorted(k for k in recomputed if k not in live)
    assert not differ, f"{label}: {len(differ)} stored KPI values differ from a recompute " \
                       f"(key, stored, recomputed): {differ[:10]}"
    assert not new, f"{label}: {len(new)} KPI values were never computed, e.g. {new[:10]}"
    assert changed == 0, f"{label}: recompute changed {changed} values"
    record_property(f"{label}_kpi_values_compared", len(recomputed))
    record_property(f"{label}_kpi_totals_checked", len(expected))
    return {"kpi_values": len(recomputed), "kpi_totals_checked": len(expected)}


def raw_events(env: Env, produced: list[tuple[Topic, Event]], label: str) -> dict[str, int]:
    """Exact sets of spend, subscriptions and pipeline events; raw duplicates per table."""
    duplicates = {}
    for topic, table in ((SPEND, "spend"), (SUBSCRIPTIONS, "subscriptions"),
                         (PIPELINE, "pipeline_events")):
        ids = {e.event_id for e in of(produced, topic)}
        duplicates[table] = exact_ids(env.store, table, "event_id", ids, f"{label} {table}")
    return duplicates


class Phases:
    """Seconds per phase, printed for information (never asserted on)."""

    def __init__(self) -> None:
        self.laps: dict[str, float] = {}
        self._last = time.monotonic()

    def lap(self, name: str) -> None:
        now = time.monotonic()
        self.laps[name] = round(now - self._last, 1)
        self._last = now


def summary(label: str, record_property: Any, **figures: Any) -> None:
    for name, value in figures.items():
        record_property(f"{label}_{name}", value)
    print(f"\n{label}: " + ", ".join(f"{k}={v}" for k, v in figures.items()))


# -- tests -------------------------------------------------------------------------------

KPI_TABLES = ("spend", "subscriptions", "pipeline_events")


async def test_kpi_sigkill_five_times_keeps_rows_and_kpis_exact(
    env: Env, record_property: Any
) -> None:
    rng = random.Random(14)
    stop = asyncio.Event()
    produced: list[tuple[Topic, Event]] = []
    producer = asyncio.create_task(produce_until(
        env.bootstrap, lambda i: kpi_event(env.run, env.days, i), RATE, stop, produced))
    clock = Phases()
    try:
        # load runs until the 5th kill, so every kill hits a consumer with work to do
        at_kill, final = await kill_repeatedly(env, "kpi", 5, KPI_TABLES, rng)
        stop.set()
        await producer
        clock.lap("kills")
        await wait_committed(env.bootstrap, env.group("kpi"), KPI_TOPICS, 120, [final])
        final.stop()  # graceful: the pending channel/campaign breakdowns are refreshed
        clock.lap("drain")
    finally:
        stop.set()
        producer.cancel()
    # (raw counts may shrink between kills: background merges drop replaced rows)
    assert len(at_kill) == 5, at_kill
    duplicates = await asyncio.to_thread(raw_events, env, produced, "kpi_sigkill")
    kpis = await check_kpis(env, produced, record_property, "kpi_sigkill")
    clock.lap("checks")
    summary("kpi_sigkill", record_property, events=len(produced), kills=len(at_kill),
            seconds=clock.laps,
            raw_rows_at_kills=at_kill, raw_duplicates=sum(duplicates.values()),
            raw_duplicates_by_table=duplicates, lost=0, duplicated=0, **kpis)


async def test_attribution_sigkill_five_times_keeps_conversions_and_credits_exact(
    env: Env, record_property: Any
) -> None:
    rng = random.Random(15)
    stop = asyncio.Event()
    produced: list[tuple[Topic, Event]] = []
    kpi = env.start("kpi", "kpi")  # consumes the credits attribution publishes (never killed)
    producer = asyncio.create_task(produce_until(
        env.bootstrap, lambda i: attribution_event(env.run, env.days, i), RATE, stop, produced))
    try:
        clock = Phases()
        at_kill, final = await kill_repeatedly(
            env, "attribution", 5, ("touchpoints", "conversions", "attribution_credits"), rng)
        stop.set()
        await producer
        clock.lap("kills")
        await wait_committed(env.bootstrap, env.group("attribution"), ATTRIBUTION_TOPICS, 120,
                             [final, kpi])
        await wait_committed(env.bootstrap, env.group("kpi"), KPI_TOPICS, 120, [final, kpi])
        final.stop()
        kpi.stop()
        clock.lap("drain")
    finally:
        stop.set()
        producer.cancel()
    label = "attribution_sigkill"
    touches = of(produced, TOUCHPOINTS)
    duplicates = {"touchpoints": exact_ids(env.store, "touchpoints", "event_id",
                                           {t.event_id for t in touches}, f"{label} touchpoints")}
    conversions: dict[str, tuple[str, dt.datetime]] = {}
    for p in of(produced, PIPELINE):
        if p.stage in (PipelineStage.LEAD, PipelineStage.OPPORTUNITY, PipelineStage.WON):
            conversions[p.event_id] = (p.account_id, p.occurred_at)
    for s in of(produced, SUBSCRIPTIONS):
        if s.event_type == SubscriptionEventType.SUBSCRIPTION_STARTED:
            conversions[s.event_id] = (s.account_id, s.occurred_at)
    duplicates["conversions"] = exact_ids(env.store, "conversions", "conversion_id",
                                          set(conversions), f"{label} conversions")
    # The journey of each conversion, from what was produced (journey order: time, id).
    journeys: dict[str, list[Touchpoint]] = {}
    by_account: dict[str, list[Touchpoint]] = defaultdict(list)
    for t in touches:
        by_account[t.account_id].append(t)
    for cid, (account, converted_at) in conversions.items():
        journey = sorted((t for t in by_account[account]
                          if converted_at - LOOKBACK <= t.occurred_at <= converted_at),
                         key=lambda t: (t.occurred_at, t.event_id))
        if journey:
            journeys[cid] = journey
    latest = query(env.store, """
        SELECT conversion_id, model, version, sum(credit) AS total, count() AS rows,
               uniqExact(touchpoint_event_id) AS touches,
               argMax(touchpoint_event_id, credit) AS top
        FROM attribution_credits FINAL
        WHERE (conversion_id, model, version) IN
              (SELECT conversion_id, model, max(version) FROM attribution_credits
               GROUP BY conversion_id, model)
        GROUP BY conversion_id, model, version""")
    credited = {(r["conversion_id"], r["model"]): r for r in latest}
    assert {c for c, _ in credited} <= set(journeys), "credits for unknown conversions or " \
        "conversions without touches"
    missing = [(c, m) for c in journeys for m in RULE_MODELS if (c, m) not in credited]
    assert not missing, f"{len(missing)} conversion × model without credits: {missing[:5]}"
    unexpected_models = {m for _, m in credited} - set(RULE_MODELS)
    assert not unexpected_models, unexpected_models
    bad_sum = [(k, r["total"]) for k, r in credited.items() if not math.isclose(r["total"], 1.0,
                                                                                abs_tol=1e-6)]
    assert not bad_sum, f"credits not summing to 1: {bad_sum[:5]}"
    assert all(r["rows"] == r["touches"] for r in credited.values())
    # Late touches re-attributed despite the kills: last/first touch name the right touch.
    wrong = [(cid, model, credited[(cid, model)]["top"], want.event_id)
             for cid, journey in journeys.items()
             for model, want in (("last_touch", journey[-1]), ("first_touch", journey[0]))
             if credited[(cid, model)]["top"] != want.event_id]
    assert not wrong, f"{len(wrong)} stale credits (conversion, model, credited, expected): " \
                      f"{wrong[:5]}"
    raw_credit_dupes = int(query(env.store, """
        SELECT count() - uniqExact(conversion_id, model, version, touchpoint_event_id) AS n
        FROM attribution_credits""")[0]["n"])
    versions = int(query(env.store, "SELECT max(version) AS v FROM attribution_credits")[0]["v"])
    duplicates["attribution_credits"] = raw_credit_dupes
    kpis = await check_kpis(env, produced, record_property, label)
    clock.lap("checks")
    summary(label, record_property, events=len(produced), kills=len(at_kill),
            seconds=clock.laps, raw_rows_at_kills=at_kill, conversions=len(conversions),
            credited_conversions=len(journeys), credit_sets=len(credited),
            max_credit_version=versions, raw_duplicates=sum(duplicates.values()),
            raw_duplicates_by_table=duplicates, lost=0, duplicated=0, **kpis)


async def test_two_kpi_instances_split_partitions_and_survivor_takes_over(
    env: Env, record_property: Any
) -> None:
    rng = random.Random(16)
    stop = asyncio.Event()
    produced: list[tuple[Topic, Event]] = []
    first, second = env.start("kpi", "kpi-a"), env.start("kpi", "kpi-b")
    producer = asyncio.create_task(produce_until(
        env.bootstrap, lambda i: kpi_event(env.run, env.days, i), RATE, stop, produced))
    data_topics = (SPEND.name, SUBSCRIPTIONS.name, PIPELINE.name)
    try:
        def both_consuming() -> bool:
            return all(
                any(p.batches().get(topic) for topic in data_topics) for p in (first, second)
            )

        await wait_until(both_consuming, 60, "both instances receiving records",
                         [first, second])
        await asyncio.sleep(rng.uniform(1.0, 3.0))
        before = {"a": first.batches(), "b": second.batches()}
        mark = len(first.text())
        second.kill()
        killed_at = len(produced)

        def survivor_has_all() -> bool:
            after = first.batches(since=mark)
            return all(set(after.get(t, {})) == set(range(PARTITIONS)) for t in data_topics)

        # the survivor gets the killed member's partitions (load still running)
        await wait_until(survivor_has_all, 60, "survivor consuming every partition", [first])
        # the survivor alone under load for a while (bounded by the event count, not time)
        await wait_until(lambda: len(produced) >= killed_at + 1500, 60, "more load", [first])
        stop.set()
        await producer
        await wait_committed(env.bootstrap, env.group("kpi"), KPI_TOPICS, 120, [first])
        assert first.alive(), first.tail()
        first.stop()
    finally:
        stop.set()
        producer.cancel()
    split = {
        name: {t: sorted(parts) for t, parts in seen.items() if t in data_topics}
        for name, seen in before.items()
    }
    for name, seen in split.items():
        assert any(seen.values()), f"instance {name} received no records: {split}"
    label = "kpi_two_instances"
    duplicates = await asyncio.to_thread(raw_events, env, produced, label)
    kpis = await check_kpis(env, produced, record_property, label)
    summary(label, record_property, events=len(produced), kills=1,
            produced_at_kill=killed_at, partitions_before_kill=split,
            raw_duplicates=sum(duplicates.values()), raw_duplicates_by_table=duplicates,
            lost=0, duplicated=0, **kpis)



# -- ingest ------------------------------------------------------------------------------


class Ingest:
    """The real ``pulse-ingest`` console script (uvicorn + FastAPI + Kafka producer)."""

    def __init__(self, env: Env, port: int, log: Path) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self.log = log
        self.proc = subprocess.Popen(
            [str(Path(sys.executable).with_name("pulse-ingest"))],
            stdout=log.open("ab"), stderr=subprocess.STDOUT,
            env={**os.environ, "PULSE_KAFKA_BOOTSTRAP": env.bootstrap,
                 "PULSE_INGEST_PII_SALT": uuid.uuid4().hex, "PULSE_INGEST_AUTH_REQUIRED": "false",
                 "PULSE_INGEST_HOST": "127.0.0.1", "PULSE_INGEST_PORT": str(port)},
        )

    async def ready(self, timeout: float = 60) -> None:
        import httpx

        deadline = time.monotonic() + timeout
        async with httpx.AsyncClient(timeout=2) as client:
            while time.monotonic() < deadline and self.proc.poll() is None:
                try:
                    if (await client.get(f"{self.url}/health")).status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.2)
        raise AssertionError(f"ingest not ready\n{self.log.read_text(errors='replace')[-3000:]}")

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def topic_ids(bootstrap: str, topic: Topic, start: dict[Any, int]) -> list[str]:
    """event_id of every record of ``topic`` after the ``start`` offsets, up to its end."""
    import json

    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    ids: list[str] = []
    try:
        tps = list(start)
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)
        for tp in tps:
            consumer.seek(tp, start[tp])
        deadline = time.monotonic() + 60
        while [tp for tp in tps if await consumer.position(tp) < ends[tp]]:
            assert time.monotonic() < deadline, "could not read the topic to its end"
            for records in (await consumer.getmany(timeout_ms=500)).values():
                ids.extend(json.loads(r.value)["event_id"] for r in records)
    finally:
        await consumer.stop()
    return ids


async def test_ingest_sigkill_loses_no_acknowledged_row(env: Env, record_property: Any) -> None:
    import httpx
    from aiokafka import AIOKafkaConsumer

    ends_client = AIOKafkaConsumer(bootstrap_servers=env.bootstrap)
    await ends_client.start()
    start = await ends_client.end_offsets(partitions((SPEND,)))
    await ends_client.stop()
    rng = random.Random(17)
    requests = [
        [{"event_id": f"{env.run}in{r}-{j}", "date": rng.choice(env.days).isoformat(),
          "channel": rng.choice(CHANNELS).value, "campaign_id": f"cmp-{rng.randrange(20)}",
          "amount": f"{rng.randrange(100, 100_000) / 100:.2f}", "impressions": rng.randrange(900),
          "clicks": rng.randrange(40)} for j in range(40)]
        for r in range(120)
    ]
    port = free_port()
    ingest = Ingest(env, port, env.logs / "ingest-0.log")
    await ingest.ready()
    queue: asyncio.Queue[int] = asyncio.Queue()
    for r in range(len(requests)):
        queue.put_nowait(r)
    acked: set[int] = set()
    attempts = 0
    kills = 0
    restarting = asyncio.Event()
    restarting.set()  # set = the service is up

    async def client_worker(client: httpx.AsyncClient) -> None:
        nonlocal attempts
        while not queue.empty():
            r = queue.get_nowait()
            await restarting.wait()
            attempts += 1
            try:
                ok = (await client.post(f"{ingest.url}/v1/spend", json=requests[r])).status_code
            except httpx.TransportError:
                ok = 0
            if ok == 200:
                acked.add(r)
            else:  # what a client does: retry the request later
                queue.put_nowait(r)
                await asyncio.sleep(0.2)

    async def killer() -> None:
        nonlocal ingest, kills
        for k, share in enumerate((0.2, 0.45, 0.7), start=1):
            deadline = time.monotonic() + 60
            while len(acked) < share * len(requests) and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            await asyncio.sleep(rng.uniform(0.0, 0.3))
            ingest.kill()  # requests in flight fail (or never get their answer)
            kills += 1
            restarting.clear()
            ingest = Ingest(env, port, env.logs / f"ingest-{k}.log")
            await ingest.ready()
            restarting.set()

    try:
        async with httpx.AsyncClient(timeout=30) as client:
            await asyncio.wait_for(
                asyncio.gather(killer(), *(client_worker(client) for _ in range(4))), 180)
    finally:
        ingest.kill()
    assert acked == set(range(len(requests)))
    ids = await topic_ids(env.bootstrap, SPEND, start)
    expected = {row["event_id"] for r in acked for row in requests[r]}
    lost = expected - set(ids)
    assert not lost, f"{len(lost)} acknowledged rows not on the topic, e.g. {sorted(lost)[:5]}"
    assert set(ids) <= expected, "rows on the topic that were never sent"
    summary("ingest_sigkill", record_property, requests=len(requests), rows=len(expected),
            kills=kills, attempts=attempts, records_on_topic=len(ids),
            topic_duplicates=len(ids) - len(set(ids)), lost=0)
