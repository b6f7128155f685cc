"""Campaign KPIs recomputed member by member (pulse_kpi.domain.campaigns) give exactly what
the whole breakdown computation gives: the split into campaign KPIs and the other
breakdowns loses and duplicates no key, and a pass over some members' rows gives those
members' values of a pass over every row."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from decimal import Decimal
from typing import Any

import pytest
from faststream.kafka import TestKafkaBroker

from pulse_kpi.domain.campaigns import (
    CAMPAIGN_PARTS,
    Member,
    campaign_kpis,
    campaign_scope,
    members_of,
)
from pulse_kpi.domain.compute import KpiValue, Params, compute
from pulse_kpi.domain.deliverability import DeliverabilityRow
from pulse_kpi.domain.facts import (
    AccountTrial,
    BudgetRow,
    CreditRow,
    Facts,
    Scope,
    SpendRow,
)
from pulse_kpi.main import KpiComponent, build
from pulse_kpi.settings import KpiSettings
from pulse_kpi.storage import BUDGET_COLUMNS, SPEND_COLUMNS, KpiStorage, budget_rows
from pulse_shared.attribution_models import DEFAULT_MODEL
from pulse_shared.bus import Bus, make_broker
from pulse_shared.events import AttributionCredit, Budget, Channel, KpiSnapshot, Spend
from pulse_shared.kpi_catalog import ACCOUNT_DIMS
from pulse_shared.store import Store
from pulse_shared.topics import BUDGETS, CREDITS, KPI_SNAPSHOTS, SPEND

D = dt.date
Y = 2031
DAYS = frozenset({D(Y, 3, 3), D(Y, 3, 4), D(Y, 5, 20)})
MONTHS = frozenset({D(Y, 3, 1), D(Y, 4, 1)})
AS_OF = D(Y, 5, 21)
#: every breakdown dimension the KPI service computes
BREAKDOWNS = ("channel", "campaign", "sending_domain", *ACCOUNT_DIMS)
P = Params()


def ts(m: int, d: int) -> dt.datetime:
    return dt.datetime(Y, m, d, 12, tzinfo=dt.UTC)


def facts() -> Facts:
    spend = [
        SpendRow(D(Y, 3, 3), "email", "c1", Decimal("10.5"), 1000, 30),
        SpendRow(D(Y, 3, 3), "email", "c2", Decimal("4"), 200, 2),
        SpendRow(D(Y, 3, 4), "display", "c3", Decimal("7"), 900, 9),
        SpendRow(D(Y, 3, 4), "paid_search", "", Decimal("3"), 50, 5),  # no campaign
        # one campaign under two channels: its values sum both
        SpendRow(D(Y, 3, 4), "email", "c4", Decimal("2"), 100, 1),
        SpendRow(D(Y, 3, 4), "display", "c4", Decimal("5"), 100, 4),
        SpendRow(D(Y, 5, 20), "email", "c1", Decimal("8"), 300, 6),
    ]
    credits = [
        CreditRow(D(Y, 3, 3), DEFAULT_MODEL, "won", "email", "c1", 0.5, Decimal(500)),
        CreditRow(D(Y, 3, 3), "linear", "won", "email", "c1", 0.25, Decimal(250)),
        CreditRow(D(Y, 3, 3), DEFAULT_MODEL, "lead", "webinar", "c5", 1.0, Decimal(0)),
        CreditRow(D(Y, 3, 4), "linear", "new_subscription", "display", "c3", 1.0,
                  Decimal(90)),
        CreditRow(D(Y, 5, 20), DEFAULT_MODEL, "opportunity", "email", "", 1.0, Decimal(40)),
    ]
    budgets = [
        BudgetRow(D(Y, 3, 1), "display", "", Decimal(300)),  # channel level
        BudgetRow(D(Y, 3, 1), "email", "c1", Decimal(100)),
        BudgetRow(D(Y, 3, 1), "email", "c2", Decimal(50)),
        BudgetRow(D(Y, 4, 1), "email", "c2", Decimal(60)),  # budget, no spend
    ]
    trials = [AccountTrial("a1", ts(3, 3), ts(3, 10), "email"),
              AccountTrial("a2", ts(3, 4), None, "display")]
    # an ESP campaign named like an ad campaign: other KPIs, other keys
    deliverability = [DeliverabilityRow(D(Y, 3, 3), "mail.example", "c1", 100, 95, 1, 2, 0,
                                        1, 40, 9)]
    return Facts(spend=spend, credits=credits, budgets=budgets, trials=trials,
                 deliverability=deliverability)


#: Members with stored values but no rows any more (e.g. a credit moved away): 0, not stale.
KNOWN = frozenset({("day", D(Y, 3, 3), "channel", "events"),
                   ("month", D(Y, 3, 1), "campaign", "gone"),
                   ("month", D(Y, 3, 1), "campaign", "c1")})


def whole(f: Facts) -> dict[str, float | None]:
    """The breakdowns of one pass over everything (what the service computed before)."""
    scope = Scope(flow_days=DAYS, budget_months=MONTHS, trial_days=DAYS,
                  dimensions=BREAKDOWNS, known_members=KNOWN)
    return by_key(compute(f, scope, AS_OF, P))


def by_key(values: list[KpiValue]) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    for v in values:
        assert v.key not in out, f"{v.key} computed twice"
        out[v.key] = v.value
    return out


def test_campaign_kpis_and_the_other_breakdowns_split_the_breakdowns_exactly() -> None:
    f = facts()
    campaigns = by_key(campaign_kpis(f, campaign_scope(DAYS, MONTHS, KNOWN), AS_OF, P))
    # The other breakdowns load no spend, credits or budgets, and know no flow members.
    other_facts = Facts(trials=f.trials, deliverability=f.deliverability)
    other = by_key(compute(other_facts, Scope(
        flow_days=DAYS, budget_months=MONTHS, trial_days=DAYS, dimensions=BREAKDOWNS,
        known_members=frozenset(k for k in KNOWN if k[2] in ACCOUNT_DIMS),
    ), AS_OF, P))
    assert not set(campaigns) & set(other)
    assert {**campaigns, **other} == whole(f)
    # what the split is about: the campaign side has the flows and budgets …
    assert campaigns[f"spend|month|campaign|c4|{Y}-03"] == 7
    assert campaigns[f"spend|month|channel|email|{Y}-03"] == 16.5
    assert campaigns[f"budget|month|channel|email|{Y}-04"] == 60
    assert campaigns[f"spend|month|campaign|gone|{Y}-03"] == 0
    assert f"spend|day|channel|events|{Y}-03-03" in campaigns
    # … the other side the trials by channel and the ESP campaigns
    assert other[f"trials_started|month|channel|email|{Y}-03"] == 1
    assert any("|campaign|c1|" in k for k in other)


def rows_of(f: Facts, members: frozenset[Member]) -> Facts:
    """What storage loads for ``members``: rows counting in one of them (any channel of a
    campaign, any campaign of a channel) and the models of every credit."""
    def counts(channel: str, campaign: str) -> bool:
        return bool(members_of([(channel, campaign)]) & members)

    return Facts(
        spend=[s for s in f.spend if counts(s.channel, s.campaign_id)],
        credits=[c for c in f.credits if counts(c.channel, c.campaign_id)],
        budgets=[b for b in f.budgets if counts(b.channel, b.campaign_id)],
        credit_models=sorted({c.model for c in f.credits}),
    )


def test_a_pass_over_some_members_rows_gives_their_values() -> None:
    f = facts()
    every = by_key(campaign_kpis(f, campaign_scope(DAYS, MONTHS, KNOWN), AS_OF, P))
    for touched in (
        [("paid_search", "")],  # no credits: still every model's ROAS (credit_models)
        [("email", "c2")],
        [("display", "c4")],  # a campaign of two channels, and one of them
        [("webinar", "c5"), ("email", "c1")],  # credits
        [("events", ""), ("x", "gone")],  # known members without rows: zeros
    ):
        members = members_of(touched)
        scope = campaign_scope(DAYS, MONTHS, KNOWN, members)
        some = by_key(campaign_kpis(rows_of(f, members), scope, AS_OF, P, members))
        expected = {k: v for k, v in every.items()
                    if (k.split("|")[2], k.split("|")[3]) in members}
        assert some == expected, touched
        assert some


def test_without_the_credit_models_a_spend_only_member_would_miss_model_kpis() -> None:
    """Why storage loads ``credit_models``: the per-model KPIs of a member come from the
    models credited in the whole range, not from its own credits."""
    f = facts()
    members = members_of([("paid_search", "")])  # no credits of its own
    scope = campaign_scope(DAYS, MONTHS, KNOWN, members)
    rows = rows_of(f, members)
    with_models = by_key(campaign_kpis(rows, scope, AS_OF, P, members))
    without = by_key(campaign_kpis(Facts(spend=rows.spend, credits=rows.credits,
                                         budgets=rows.budgets), scope, AS_OF, P, members))
    key = f"roas__linear|month|channel|paid_search|{Y}-03"
    assert with_models[key] == 0
    assert key not in without


def test_campaign_kpis_read_only_their_parts() -> None:
    assert CAMPAIGN_PARTS == {"spend", "credits", "budgets"}
    f = facts()
    # trials and deliverability handed over by mistake change nothing
    assert campaign_kpis(f, campaign_scope(DAYS, MONTHS, KNOWN), AS_OF, P) == campaign_kpis(
        Facts(spend=f.spend, credits=f.credits, budgets=f.budgets),
        campaign_scope(DAYS, MONTHS, KNOWN), AS_OF, P)


# ----------------------------------------------------------------- storage and service


class TestMemberRows:
    """KpiStorage.load_facts(members=…) on both backends."""

    @pytest.fixture
    def store(self, any_store: Store) -> Store:
        return any_store

    def test_rows_of_some_members_and_the_latest_credits(self, store: Store) -> None:
        y = 2000  # a year no other test writes (the stores are shared by the session)
        day = D(y, 6, 2)
        at = dt.datetime(y, 6, 2, 9, tzinfo=dt.UTC)
        spend = [
            {"event_id": f"mr-{y}-{i}", "date": day, "channel": ch, "campaign_id": camp,
             "amount": Decimal(amount), "currency": "USD", "impressions": 10, "clicks": 1}
            for i, (ch, camp, amount) in enumerate([
                ("email", "mr-a", 1), ("email", "mr-b", 2), ("display", "mr-c", 4),
                ("display", "mr-a", 8), ("webinar", "mr-d", 16)])
        ]
        store.insert("spend", spend, SPEND_COLUMNS)
        credits = [credit("mr-x", 1, "email", "mr-a", at), credit("mr-x", 2, "display", "mr-c", at),
                   credit("mr-y", 1, "webinar", "mr-d", at, model="linear")]
        store.insert("attribution_credits", credits, list(credits[0]))
        budgets = budget_rows(
            Budget(event_id=f"mr-b{i}", month=f"{y}-06", channel=ch, campaign_id=camp,
                   amount=Decimal(100))
            for i, (ch, camp) in enumerate([("email", ""), ("display", "mr-c"),
                                            ("webinar", "mr-d")]))
        store.insert("budgets", budgets, BUDGET_COLUMNS)
        storage = KpiStorage(store)
        start, end = D(y, 6, 1), D(y, 7, 1)

        facts = storage.load_facts(start, end, CAMPAIGN_PARTS, members=(["email"], ["mr-c"]))
        assert sorted((s.channel, s.campaign_id) for s in facts.spend) == [
            ("display", "mr-c"), ("email", "mr-a"), ("email", "mr-b")]
        # the latest version only, though version 1 credited a member (email)
        assert [(c.channel, c.campaign_id) for c in facts.credits] == [("display", "mr-c")]
        assert sorted(facts.credit_models) == sorted([DEFAULT_MODEL, "linear"])
        assert sorted((b.channel, b.campaign_id) for b in facts.budgets) == [
            ("display", "mr-c"), ("email", "")]

        campaigns_only = storage.load_facts(start, end, CAMPAIGN_PARTS,
                                            members=([], ["mr-a"]))
        assert sorted(s.amount for s in campaigns_only.spend) == [1, 8]
        assert campaigns_only.credits == [] and campaigns_only.budgets == []
        everything = storage.load_facts(start, end, CAMPAIGN_PARTS)
        assert len(everything.spend) == 5 and everything.credit_models == ()

        assert storage.credit_members(["mr-x"]) == {
            (day, "email", "mr-a"), (day, "display", "mr-c")}


def credit(conv: str, version: int, channel: str, campaign: str, at: dt.datetime,
           model: str = DEFAULT_MODEL, revenue: int = 100) -> dict[str, Any]:
    return {"conversion_id": conv, "milestone": "won", "model": model, "version": version,
            "account_id": f"{conv}-acct", "touchpoint_event_id": f"{conv}-t{version}",
            "channel": channel, "campaign_id": campaign, "touched_at": at,
            "converted_at": at, "credit": 1.0, "credited_revenue": Decimal(revenue),
            "currency": "USD"}


@asynccontextmanager
async def running(
    store: Store, year: int, watch: Callable[[KpiSnapshot], None] | None = None,
    **overrides: Any,
) -> AsyncIterator[tuple[KpiComponent, Bus, list[KpiSnapshot]]]:
    """The KPI component on the in-memory bus; its breakdown pass never runs by itself.
    ``watch`` sees each snapshot as it arrives."""
    broker = make_broker(None)
    bus = Bus(broker, "kpi", in_memory=True)
    options: dict[str, Any] = {"snapshot_min_interval_s": 0,
                               "snapshot_dimension_min_interval_s": 0,
                               "close_enabled": False, "breakdown_interval_s": 3600,
                               "snapshot_horizon_days": 0, **overrides}
    component = build(store, bus, KpiSettings(**options))
    component.clock = lambda: dt.datetime(year, 12, 31, 12, tzinfo=dt.UTC)
    component.mrr_cap = dt.date(year, 12, 31)  # (other tests' later subscriptions)
    broker.include_router(component.router)
    received: list[KpiSnapshot] = []

    @broker.subscriber(KPI_SNAPSHOTS.name)
    async def sink(snapshot: KpiSnapshot) -> None:
        if watch is not None:
            watch(snapshot)
        received.append(snapshot)

    async with TestKafkaBroker(broker):
        await component.start()
        yield component, bus, received
        await component.stop()


def stored(store: Store, year: int, start: dt.date | None = None,
           end: dt.date | None = None, grain: Any = None) -> dict[str, float | None]:
    """Stored values by key, of ``year`` (or of ``[start, end)``, of ``grain``)."""
    rows = KpiStorage(store).kpi_values(grain=grain, start=start or D(year, 1, 1),
                                        end=end or D(year + 1, 1, 1))
    return {f"{r['kpi']}|{r['grain']}|{r['dimension']}|{r['dimension_value']}|{r['period']}":
            r["value"] for r in rows}


def spend(i: int, day: dt.date, amount: int, campaign: str, channel: Channel = Channel.EMAIL,
          ) -> Spend:
    return Spend(event_id=f"cp-{day}-{i}", date=day, channel=channel, campaign_id=campaign,
                 amount=Decimal(amount), impressions=100, clicks=amount)


async def test_the_campaign_pass_follows_each_batch_by_itself(embedded_store: Store) -> None:
    """Campaign snapshots come from the campaign pass right after the batch, not from the
    periodic breakdown pass (an hour away here)."""
    y = 2024
    day = D(y, 2, 3)
    async with running(embedded_store, y) as (_, bus, received):
        await bus.publish(SPEND, [spend(1, day, 6, "cp-live")])
        key = f"ctr|day|campaign|cp-live|{day}"
        for _ in range(400):  # at most 20 s on a loaded machine; ~0.1 s normally
            if any(s.key == key for s in received):
                break
            await asyncio.sleep(0.05)
        assert [s.value for s in received if s.key == key] == [0.06]


async def test_a_snapshot_arrives_after_its_value_is_stored(
    embedded_store: Store, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Subscribers (the alerts service) read a KPI's history from kpi_values when its
    snapshot arrives: every snapshot, totals and campaigns, of a batch spanning several
    days finds its own value stored already, however slow the write (slowed down here,
    so a publish racing the write would be seen)."""
    insert = embedded_store.insert

    def slow_insert(table: str, rows: Any, columns: Any) -> None:
        if table == KPI_SNAPSHOTS.stored_table():
            time.sleep(0.2)
        insert(table, rows, columns)

    monkeypatch.setattr(embedded_store, "insert", slow_insert)
    y = 2025
    days = [D(y, 2, 3) + dt.timedelta(days=i) for i in range(5)]
    missing: list[str] = []

    def check(snapshot: KpiSnapshot) -> None:
        # (by the snapshot's own period: the MRR stocks reach back into other tests' years)
        start = snapshot.period_start
        values = stored(embedded_store, y, start, start + dt.timedelta(days=1), snapshot.grain)
        if values.get(snapshot.key, "absent") != snapshot.value:
            missing.append(snapshot.key)

    async with running(embedded_store, y, watch=check) as (_, bus, received):
        await bus.publish(SPEND, [spend(i, day, 5 + i, "cp-order") for i, day in enumerate(days)])
        keys = {f"ctr|day|campaign|cp-order|{day}" for day in days}
        for _ in range(400):  # at most 20 s on a loaded machine; ~0.2 s normally
            if keys <= {s.key for s in received}:
                break
            await asyncio.sleep(0.05)
        assert keys <= {s.key for s in received}
    assert len(received) > len(keys) and missing == []


async def test_a_pass_recomputes_the_touched_members_a_close_and_a_recompute_all(
    embedded_store: Store,
) -> None:
    y = 2025
    day = D(y, 3, 6)
    async with running(embedded_store, y, campaign_breakdown_delay_s=3600) as (c, bus, _):
        await bus.publish(SPEND, [spend(1, day, 5, "cp-a")])
        await c.refresh_campaigns()  # the first pass over a range: every member
        # A row nobody announced (as if its batch's pass were still to come) …
        row = spend(2, day, 7, "cp-quiet", Channel.DISPLAY).model_dump()
        embedded_store.insert("spend", [row], SPEND_COLUMNS)
        await bus.publish(SPEND, [spend(3, day, 4, "cp-a")])
        await c.refresh_campaigns()
        kpis = stored(embedded_store, y)
        assert kpis[f"spend|day|campaign|cp-a|{day}"] == 9
        assert kpis[f"spend|day|channel|email|{day}"] == 9
        # … is not read by a pass over other members
        assert f"spend|day|campaign|cp-quiet|{day}" not in kpis
        # The daily close: every member's budget KPIs (pacing moves with the day) …
        await c.close_day(day)
        assert stored(embedded_store, y)[f"spend_to_date|month|channel|display|{y}-03"] == 7
        # … an offline recompute: everything
        await c.recompute_range(day, day + dt.timedelta(days=1))
    assert stored(embedded_store, y)[f"spend|day|campaign|cp-quiet|{day}"] == 7


async def test_a_model_new_to_the_range_reaches_every_member(embedded_store: Store) -> None:
    y = 2024
    at = dt.datetime(y, 10, 8, 10, tzinfo=dt.UTC)  # (credits of no other test's range)
    day = at.date()
    async with running(embedded_store, y, campaign_breakdown_delay_s=3600) as (c, bus, _):
        await bus.publish(SPEND, [spend(1, day, 5, "cp-spend-only")])
        first = credit("cp-conv", 1, "webinar", "cp-won", at)
        embedded_store.insert("attribution_credits", [first], list(first))
        await bus.publish(CREDITS, [AttributionCredit(**first)])
        await c.refresh_campaigns()
        assert f"roas__linear|day|campaign|cp-spend-only|{day}" not in stored(
            embedded_store, y)
        other = credit("cp-conv", 1, "webinar", "cp-won", at, model="linear")
        embedded_store.insert("attribution_credits", [other], list(other))
        await bus.publish(CREDITS, [AttributionCredit(**other)])
        await c.refresh_campaigns()
    kpis = stored(embedded_store, y)
    assert kpis[f"roas__linear|day|campaign|cp-spend-only|{day}"] == 0
    assert kpis[f"attributed_revenue__linear|day|campaign|cp-won|{day}"] == 100


async def test_campaign_work_survives_a_crash(embedded_store: Store) -> None:
    y = 2025
    day = D(y, 9, 9)
    broker = make_broker(None)
    bus = Bus(broker, "kpi", in_memory=True)
    settings = KpiSettings(close_enabled=False, campaign_breakdown_delay_s=3600,
                           breakdown_interval_s=3600, snapshot_horizon_days=0)
    crashed = build(embedded_store, bus, settings)
    crashed.clock = lambda: dt.datetime(y, 12, 31, tzinfo=dt.UTC)
    broker.include_router(crashed.router)
    async with TestKafkaBroker(broker):
        await bus.publish(SPEND, [spend(1, day, 3, "cp-crash")])
        await bus.publish(BUDGETS, [Budget(event_id="cp-b", month=f"{y}-09",
                                           channel=Channel.EMAIL,
                                           campaign_id="cp-crash", amount=Decimal(90))])
    assert f"spend|day|campaign|cp-crash|{day}" not in stored(embedded_store, y)
    async with running(embedded_store, y, campaign_breakdown_delay_s=3600) as (c, _, _):
        assert day in c._dirty_campaigns.all_days  # replayed from kpi_pending
        assert D(y, 9, 1) in c._dirty_campaigns.all_months
        await c.refresh_breakdowns()
        assert KpiStorage(embedded_store).pending_work_since_done().campaign_days == set()
    kpis = stored(embedded_store, y)
    assert kpis[f"spend|day|campaign|cp-crash|{day}"] == 3
    assert kpis[f"budget|month|campaign|cp-crash|{y}-09"] == 90
