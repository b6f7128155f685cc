"""Service flow on the in-memory bus and the embedded store: touches + conversions in,
versioned credits written and published."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import uuid
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import pytest
from faststream.kafka import TestKafkaBroker

from pulse_attribution.main import AttributionComponent, build
from pulse_attribution.settings import AttributionSettings
from pulse_shared.bus import Bus, make_broker
from pulse_shared.events import (
    AttributionCredit,
    Channel,
    ConversionMilestone,
    PipelineEvent,
    PipelineStage,
    Subscription,
    SubscriptionEventType,
    Touchpoint,
    TouchType,
)
from pulse_shared.store import Store
from pulse_shared.topics import CREDITS, PIPELINE, SUBSCRIPTIONS, TOUCHPOINTS

T0 = dt.datetime(2026, 10, 1, 9, 0, tzinfo=dt.UTC)


def contact(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()


def touch(account: str, who: str, channel: Channel, at: dt.datetime) -> Touchpoint:
    return Touchpoint(
        event_id=f"t-{uuid.uuid4().hex[:12]}",
        occurred_at=at,
        account_id=account,
        contact_id=contact(who),
        channel=channel,
        campaign_id=f"{channel.value}-c1",
        touch_type=TouchType.WEB_VISIT,
    )


class Harness:
    def __init__(self, component: AttributionComponent, bus: Bus) -> None:
        self.component = component
        self.bus = bus
        self.published: list[AttributionCredit] = []


@pytest.fixture
async def harness(embedded_store: Store) -> AsyncIterator[Harness]:
    broker = make_broker(None)
    bus = Bus(broker, "attribution")
    component = build(embedded_store, bus, AttributionSettings(recompute_interval_s=0))
    broker.include_router(component.router)
    h = Harness(component, bus)

    @broker.subscriber(CREDITS.name)
    async def collect(body: dict[str, Any]) -> None:
        h.published.append(AttributionCredit.model_validate(body))

    async with TestKafkaBroker(broker):
        yield h


def latest(store: Store, conversion_id: str, model: str) -> list[dict[str, Any]]:
    return [
        r
        for r in store.query(
            "SELECT * FROM attribution_credits_latest WHERE conversion_id = {c:String} "
            "AND model = {m:String} ORDER BY touched_at",
            {"c": conversion_id, "m": model},
        )
    ]


async def test_touch_then_conversion_gives_written_and_published_credit(
    harness: Harness, embedded_store: Store
) -> None:
    account = f"acc-{uuid.uuid4().hex[:8]}"
    t1 = touch(account, "ann", Channel.PAID_SEARCH, T0)
    t2 = touch(account, "bob", Channel.EMAIL, T0 + dt.timedelta(days=2))
    await harness.bus.publish(TOUCHPOINTS, [t1, t2])
    won = PipelineEvent(
        event_id=f"p-{uuid.uuid4().hex[:12]}",
        occurred_at=T0 + dt.timedelta(days=10),
        account_id=account,
        stage=PipelineStage.WON,
        amount=Decimal("1000"),
    )
    await harness.bus.publish(PIPELINE, [won])

    rows = latest(embedded_store, won.event_id, "last_touch")
    assert [(r["touchpoint_event_id"], r["credit"], r["credited_revenue"]) for r in rows] == [
        (t2.event_id, 1.0, Decimal("1000"))
    ]
    assert rows[0]["milestone"] == "won" and rows[0]["version"] == 1
    linear = latest(embedded_store, won.event_id, "linear")
    assert [r["credited_revenue"] for r in linear] == [Decimal("500"), Decimal("500")]

    published = [c for c in harness.published if c.conversion_id == won.event_id]
    last = [c for c in published if c.model == "last_touch"]
    assert len(last) == 1
    assert last[0].touchpoint_event_id == t2.event_id
    assert last[0].credited_revenue == Decimal("1000")
    # Every rule model got credits for this conversion.
    assert {c.model for c in published} >= {
        "first_touch", "last_touch", "last_non_direct", "linear", "time_decay",
        "position_based", "w_shaped", "full_path",
    }


async def test_subscription_started_is_worth_mrr_times_12(
    harness: Harness, embedded_store: Store
) -> None:
    account = f"acc-{uuid.uuid4().hex[:8]}"
    t1 = touch(account, "cid", Channel.WEBINAR, T0)
    await harness.bus.publish(TOUCHPOINTS, [t1])
    started = Subscription(
        event_id=f"s-{uuid.uuid4().hex[:12]}",
        occurred_at=T0 + dt.timedelta(days=1),
        account_id=account,
        event_type=SubscriptionEventType.SUBSCRIPTION_STARTED,
        mrr=Decimal("250"),
    )
    upgraded = Subscription(
        event_id=started.event_id + "u",
        occurred_at=T0 + dt.timedelta(days=2),
        account_id=account,
        event_type=SubscriptionEventType.SUBSCRIPTION_UPGRADED,
        mrr=Decimal("400"),
    )
    await harness.bus.publish(SUBSCRIPTIONS, [started, upgraded])
    rows = latest(embedded_store, started.event_id, "first_touch")
    assert [(r["milestone"], r["credited_revenue"]) for r in rows] == [
        ("new_subscription", Decimal("3000"))
    ]
    assert latest(embedded_store, upgraded.event_id, "first_touch") == []


async def test_late_touch_creates_new_version_and_redelivery_does_not(
    harness: Harness, embedded_store: Store
) -> None:
    account = f"acc-{uuid.uuid4().hex[:8]}"
    early = touch(account, "ann", Channel.DISPLAY, T0)
    await harness.bus.publish(TOUCHPOINTS, [early])
    lead = PipelineEvent(
        event_id=f"p-{uuid.uuid4().hex[:12]}",
        occurred_at=T0 + dt.timedelta(days=5),
        account_id=account,
        stage=PipelineStage.LEAD,
    )
    await harness.bus.publish(PIPELINE, [lead])
    # Redelivery of the same conversion: credits unchanged, no new version.
    await harness.bus.publish(PIPELINE, [lead])
    assert [r["version"] for r in latest(embedded_store, lead.event_id, "last_touch")] == [1]

    # A touch that happened before the lead but arrives after it (other contact).
    late = touch(account, "bob", Channel.REFERRAL, T0 + dt.timedelta(days=3))
    # And one after the conversion: outside its window, must not be credited.
    after = touch(account, "bob", Channel.EMAIL, T0 + dt.timedelta(days=6))
    await harness.bus.publish(TOUCHPOINTS, [late, after])

    rows = latest(embedded_store, lead.event_id, "last_touch")
    assert [(r["touchpoint_event_id"], r["version"]) for r in rows] == [(late.event_id, 2)]
    # first_touch did not change, so it keeps version 1.
    first = latest(embedded_store, lead.event_id, "first_touch")
    assert [(r["touchpoint_event_id"], r["version"]) for r in first] == [(early.event_id, 1)]
    linear = latest(embedded_store, lead.event_id, "linear")
    assert sorted(r["touchpoint_event_id"] for r in linear) == sorted(
        [early.event_id, late.event_id]
    )
    assert all(r["version"] == 2 for r in linear)
    versions = {
        c.version
        for c in harness.published
        if c.conversion_id == lead.event_id and c.model == "last_touch"
    }
    assert versions == {1, 2}


async def test_conversion_before_its_touches(harness: Harness, embedded_store: Store) -> None:
    account = f"acc-{uuid.uuid4().hex[:8]}"
    opp = PipelineEvent(
        event_id=f"p-{uuid.uuid4().hex[:12]}",
        occurred_at=T0 + dt.timedelta(days=30),
        account_id=account,
        stage=PipelineStage.OPPORTUNITY,
        amount=Decimal("5000"),
    )
    await harness.bus.publish(PIPELINE, [opp])
    assert latest(embedded_store, opp.event_id, "last_touch") == []
    t1 = touch(account, "ann", Channel.PAID_SOCIAL, T0)
    old = touch(account, "ann", Channel.PAID_SOCIAL, T0 - dt.timedelta(days=70))  # > 90 d
    await harness.bus.publish(TOUCHPOINTS, [t1, old])
    rows = latest(embedded_store, opp.event_id, "first_touch")
    assert [(r["touchpoint_event_id"], r["version"]) for r in rows] == [(t1.event_id, 1)]


async def test_data_driven_recompute_stores_runs_and_versioned_credits(
    harness: Harness, embedded_store: Store
) -> None:
    account_a = f"acc-{uuid.uuid4().hex[:8]}"
    account_b = f"acc-{uuid.uuid4().hex[:8]}"
    account_n = f"acc-{uuid.uuid4().hex[:8]}"
    a1 = touch(account_a, "ann", Channel.PAID_SEARCH, T0)
    a2 = touch(account_a, "bob", Channel.EMAIL, T0 + dt.timedelta(days=1))
    b1 = touch(account_b, "cid", Channel.EMAIL, T0)
    n1 = touch(account_n, "dan", Channel.DISPLAY, T0)
    await harness.bus.publish(TOUCHPOINTS, [a1, a2, b1, n1])
    won_a = PipelineEvent(
        event_id=f"p-{uuid.uuid4().hex[:12]}", occurred_at=T0 + dt.timedelta(days=3),
        account_id=account_a, stage=PipelineStage.WON, amount=Decimal("900"),
    )
    won_b = PipelineEvent(
        event_id=f"p-{uuid.uuid4().hex[:12]}", occurred_at=T0 + dt.timedelta(days=3),
        account_id=account_b, stage=PipelineStage.WON, amount=Decimal("100"),
    )
    await harness.bus.publish(PIPELINE, [won_a, won_b])

    runs = await harness.component.recompute_data_driven(milestones=[ConversionMilestone.WON])
    assert {(r.model, str(r.milestone)) for r in runs} == {("markov", "won"), ("shapley", "won")}
    markov_a = latest(embedded_store, won_a.event_id, "markov")
    assert sum(r["credit"] for r in markov_a) == pytest.approx(1.0)
    assert sum(r["credited_revenue"] for r in markov_a) == Decimal("900")
    assert {r["touchpoint_event_id"] for r in markov_a} <= {a1.event_id, a2.event_id}
    # A one-channel journey gets everything under both data-driven models.
    for model in ("markov", "shapley"):
        rows = latest(embedded_store, won_b.event_id, model)
        assert [(r["touchpoint_event_id"], r["credit"], r["version"]) for r in rows] == [
            (b1.event_id, 1.0, 1)
        ]
    stored = harness.component.storage.model_runs("markov")
    mine = [r for r in stored if r["run_id"] == max(s["run_id"] for s in stored)]
    assert mine and '"order": 1' in mine[0]["parameters"]
    channels = harness.component.storage.channel_results(mine[0]["run_id"])
    assert {"email", "paid_search", "display"} <= {c["channel"] for c in channels}
    assert all(c["removal_effect"] is not None and c["removal_effect"] >= 0 for c in channels)
    published = {c.model for c in harness.published if c.conversion_id == won_b.event_id}
    assert {"markov", "shapley"} <= published

    # Nothing changed: a second run adds runs but no new credit versions.
    before = len(harness.published)
    await harness.component.recompute_data_driven(milestones=[ConversionMilestone.WON])
    assert [c for c in harness.published[before:] if c.account_id in (account_a, account_b)] == []
    assert max(r["version"] for r in harness.component.storage.model_runs("markov")) >= 2

    # A late touch re-credits the conversion under the latest run's weights right away,
    # and a new conversion gets data-driven credits without waiting for the next run.
    late = touch(account_b, "eve", Channel.PAID_SEARCH, T0 + dt.timedelta(days=1))
    await harness.bus.publish(TOUCHPOINTS, [late])
    rows = latest(embedded_store, won_b.event_id, "markov")
    assert {r["touchpoint_event_id"] for r in rows} == {b1.event_id, late.event_id}
    assert {r["version"] for r in rows} == {2}
    assert sum(r["credit"] for r in rows) == pytest.approx(1.0)
    account_c = f"acc-{uuid.uuid4().hex[:8]}"
    c1 = touch(account_c, "fay", Channel.EMAIL, T0)
    await harness.bus.publish(TOUCHPOINTS, [c1])
    won_c = PipelineEvent(
        event_id=f"p-{uuid.uuid4().hex[:12]}", occurred_at=T0 + dt.timedelta(days=2),
        account_id=account_c, stage=PipelineStage.WON, amount=Decimal("50"),
    )
    await harness.bus.publish(PIPELINE, [won_c])
    for model in ("markov", "shapley"):
        assert [r["credit"] for r in latest(embedded_store, won_c.event_id, model)] == [1.0]


async def test_scheduled_recompute_runs_and_stops(embedded_store: Store) -> None:
    broker = make_broker(None)
    settings = AttributionSettings(recompute_interval_s=0.05, recompute_initial_delay_s=0)
    component = build(embedded_store, Bus(broker, "attribution"), settings)
    broker.include_router(component.router)
    account = f"acc-{uuid.uuid4().hex[:8]}"
    async with TestKafkaBroker(broker):
        await component.bus.publish(TOUCHPOINTS, [touch(account, "ann", Channel.EVENTS, T0)])
        won = PipelineEvent(
            event_id=f"p-{uuid.uuid4().hex[:12]}", occurred_at=T0 + dt.timedelta(days=1),
            account_id=account, stage=PipelineStage.WON, amount=Decimal("10"),
        )
        await component.bus.publish(PIPELINE, [won])
        before = len(component.storage.model_runs("markov"))
        await component.start()
        try:
            for _ in range(200):
                if len(component.storage.model_runs("markov")) > before:
                    break
                await asyncio.sleep(0.05)
        finally:
            await component.stop()
        assert [r["credit"] for r in latest(embedded_store, won.event_id, "markov")] == [1.0]
        assert len(component.storage.model_runs("markov")) > before
        assert component._schedule is None


def test_metrics_are_registered() -> None:
    from pulse_shared.metrics import metric_names

    names = metric_names()
    expected = {
        "pulse_attribution_conversions_total",
        "pulse_attribution_credits_written_total",
        "pulse_attribution_credit_versions_total",
        "pulse_attribution_recompute_seconds_bucket",
        "pulse_attribution_model_run_seconds_bucket",
        "pulse_attribution_model_runs_total",
    }
    assert expected - names == set()


async def test_lookback_is_configurable_per_milestone(embedded_store: Store) -> None:
    broker = make_broker(None)
    settings = AttributionSettings(
        recompute_interval_s=0, lookback_days_by_milestone={ConversionMilestone.LEAD: 5}
    )
    component = build(embedded_store, Bus(broker, "attribution"), settings)
    broker.include_router(component.router)
    account = f"acc-{uuid.uuid4().hex[:8]}"
    old = touch(account, "ann", Channel.EMAIL, T0)
    async with TestKafkaBroker(broker):
        await component.bus.publish(TOUCHPOINTS, [old])
        lead = PipelineEvent(
            event_id=f"p-{uuid.uuid4().hex[:12]}", occurred_at=T0 + dt.timedelta(days=10),
            account_id=account, stage=PipelineStage.LEAD,
        )
        opp = PipelineEvent(
            event_id=f"p-{uuid.uuid4().hex[:12]}", occurred_at=T0 + dt.timedelta(days=10),
            account_id=account, stage=PipelineStage.OPPORTUNITY, amount=Decimal("5"),
        )
        await component.bus.publish(PIPELINE, [lead, opp])
    assert latest(embedded_store, lead.event_id, "linear") == []  # 10 d > 5 d lookback
    assert [r["touchpoint_event_id"] for r in latest(embedded_store, opp.event_id, "linear")] == [
        old.event_id
    ]


async def test_failed_credit_write_is_retried_and_still_published(
    harness: Harness, embedded_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    account = f"acc-{uuid.uuid4().hex[:8]}"
    t1 = touch(account, "ann", Channel.PARTNER, T0)
    await harness.bus.publish(TOUCHPOINTS, [t1])
    original = harness.component.writer.write
    failures = []

    async def flaky(table: str, rows: Any, columns: Any) -> None:
        if table == "attribution_credits" and not failures:
            failures.append(table)
            raise RuntimeError("clickhouse hiccup")
        await original(table, rows, columns)

    monkeypatch.setattr(harness.component.writer, "write", flaky)
    won = PipelineEvent(
        event_id=f"p-{uuid.uuid4().hex[:12]}", occurred_at=T0 + dt.timedelta(days=1),
        account_id=account, stage=PipelineStage.WON, amount=Decimal("42"),
    )
    await harness.bus.publish(PIPELINE, [won])
    assert failures == ["attribution_credits"]
    rows = latest(embedded_store, won.event_id, "last_touch")
    assert [(r["touchpoint_event_id"], r["version"]) for r in rows] == [(t1.event_id, 1)]
    published = [
        c for c in harness.published if c.conversion_id == won.event_id and c.model == "last_touch"
    ]
    # At least once, always the same version.
    assert len(published) >= 1 and {c.version for c in published} == {1}


async def test_lead_arriving_after_its_opportunity_moves_w_shaped_roles(
    harness: Harness, embedded_store: Store
) -> None:
    account = f"acc-{uuid.uuid4().hex[:8]}"
    ts = [touch(account, "ann", Channel.EMAIL, T0 + dt.timedelta(days=d)) for d in (0, 1, 2, 3)]
    await harness.bus.publish(TOUCHPOINTS, ts)
    opp = PipelineEvent(
        event_id=f"p-{uuid.uuid4().hex[:12]}", occurred_at=T0 + dt.timedelta(days=3.5),
        account_id=account, stage=PipelineStage.OPPORTUNITY, amount=Decimal("100"),
    )
    await harness.bus.publish(PIPELINE, [opp])
    # Without a recorded lead, the lead role falls on the opportunity's last touch.
    before = {r["touchpoint_event_id"]: r["credit"] for r in latest(embedded_store, opp.event_id, "w_shaped")}
    assert before[ts[3].event_id] == pytest.approx(0.6)
    lead = PipelineEvent(
        event_id=f"p-{uuid.uuid4().hex[:12]}", occurred_at=T0 + dt.timedelta(days=1.5),
        account_id=account, stage=PipelineStage.LEAD,
    )
    await harness.bus.publish(PIPELINE, [lead])
    rows = latest(embedded_store, opp.event_id, "w_shaped")
    after = {r["touchpoint_event_id"]: r["credit"] for r in rows}
    assert after == pytest.approx(
        {ts[0].event_id: 0.3, ts[1].event_id: 0.3, ts[2].event_id: 0.1, ts[3].event_id: 0.3}
    )
    assert {r["version"] for r in rows} == {2}
    # Models without milestone roles are untouched.
    assert {r["version"] for r in latest(embedded_store, opp.event_id, "linear")} == {1}


async def test_canonical_batches_skip_decoding_and_odd_ones_fall_back(
    harness: Harness, embedded_store: Store
) -> None:
    from prometheus_client import REGISTRY

    def batches(outcome: str) -> float:
        return REGISTRY.get_sample_value("pulse_canonical_batches_total", {
            "service": "attribution", "topic": TOUCHPOINTS.name, "outcome": outcome}) or 0.0

    account = f"acc-{uuid.uuid4().hex[:8]}"
    hits, fallbacks = batches("hit"), batches("fallback")
    canonical = [touch(account, f"c{i}", Channel.EMAIL, T0) for i in range(3)]
    await harness.bus.broker.publish_batch(*(e.to_json() for e in canonical),
                                           topic=TOUCHPOINTS.name)
    assert (batches("hit"), batches("fallback")) == (hits + 1, fallbacks)

    # Valid but not canonical (sub-millisecond time) next to a broken record: the batch
    # is validated record by record; valid ones land, the broken one is dead-lettered.
    odd = touch(account, "odd", Channel.EMAIL, T0 + dt.timedelta(microseconds=1))
    plain = touch(account, "plain", Channel.EMAIL, T0)
    await harness.bus.broker.publish_batch(
        plain.to_json(), odd.to_json(), b'{"event_id": "broken"}', topic=TOUCHPOINTS.name
    )
    assert (batches("hit"), batches("fallback")) == (hits + 1, fallbacks + 1)
    stored = {
        r["event_id"]: r["occurred_at"]
        for r in embedded_store.query(
            "SELECT event_id, occurred_at FROM touchpoints FINAL WHERE account_id = {a:String}",
            {"a": account},
        )
    }
    assert set(stored) == {e.event_id for e in [*canonical, odd, plain]}
    assert stored[canonical[0].event_id] == T0


def test_conversion_consumers_top_their_batches_up_briefly(embedded_store: Store) -> None:
    """A conversion's credit waits for its batch's top-up: the conversion consumers use
    their own (short) one; touchpoints, many and not waited for, keep the common one."""
    from pulse_shared.settings import common_settings

    component = build(embedded_store, Bus(make_broker(None), "attribution"),
                      AttributionSettings(conversion_flush_after_s=0.03))
    assert component.pipeline.flush_after_s == 0.03
    assert component.subscriptions.flush_after_s == 0.03
    assert component.touchpoints.flush_after_s == common_settings().consumer_flush_after_s
    assert AttributionSettings().conversion_flush_after_s < common_settings().consumer_flush_after_s
