"""End to end on the real Kafka broker and ClickHouse server: multi-contact journeys in,
credits for every model out (ClickHouse and the credits topic), late touch handled."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import json
import uuid
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

import pytest

from pulse_attribution.domain.model import ALL_MODELS
from pulse_attribution.main import build
from pulse_attribution.settings import AttributionSettings
from pulse_shared.attribution_models import RULE_MODELS
from pulse_shared.bus import Bus, make_broker
from pulse_shared.events import (
    AttributionCredit,
    Channel,
    PipelineEvent,
    PipelineStage,
    Subscription,
    SubscriptionEventType,
    Touchpoint,
    TouchType,
)
from pulse_shared.store import Store
from pulse_shared.topics import CREDITS, PIPELINE, SUBSCRIPTIONS, TOUCHPOINTS, all_topic_names

T0 = dt.datetime(2026, 8, 3, 8, 0, tzinfo=dt.UTC)


async def until(check: Callable[[], Awaitable[bool]], limit_s: float = 90.0) -> None:
    deadline = asyncio.get_running_loop().time() + limit_s
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.25)


def tp(account: str, who: str, channel: Channel, days: float) -> Touchpoint:
    return Touchpoint(
        event_id=f"e2e-{uuid.uuid4().hex[:12]}",
        occurred_at=T0 + dt.timedelta(days=days),
        account_id=account,
        contact_id=hashlib.sha256(f"{account}/{who}".encode()).hexdigest(),
        channel=channel,
        campaign_id=f"{channel.value}-q3",
        touch_type=TouchType.AD_CLICK,
    )


def stage(account: str, s: PipelineStage, days: float, amount: str | None = None) -> PipelineEvent:
    return PipelineEvent(
        event_id=f"e2e-{uuid.uuid4().hex[:12]}",
        occurred_at=T0 + dt.timedelta(days=days),
        account_id=account,
        stage=s,
        amount=Decimal(amount) if amount else None,
    )


@pytest.mark.kafka
@pytest.mark.clickhouse
async def test_multi_contact_accounts_all_models_and_late_touch(
    kafka_broker: Any, server_store: Store
) -> None:
    await kafka_broker.create_topics_async(all_topic_names())
    broker = make_broker(kafka_broker.bootstrap_servers, client_id="attr-e2e")
    component = build(server_store, Bus(broker, "attribution"), AttributionSettings(recompute_interval_s=0))
    broker.include_router(component.router)
    received: list[AttributionCredit] = []

    @broker.subscriber(CREDITS.name, group_id=f"e2e-{uuid.uuid4().hex}", auto_offset_reset="earliest")
    async def collect(body: dict[str, Any]) -> None:
        received.append(AttributionCredit.model_validate(body))

    run = uuid.uuid4().hex[:6]
    a, b, n = f"e2e-A-{run}", f"e2e-B-{run}", f"e2e-N-{run}"
    touches = [
        tp(a, "cmo", Channel.PAID_SOCIAL, 0),
        tp(a, "analyst", Channel.ORGANIC_SEARCH, 2),
        tp(a, "analyst", Channel.WEBINAR, 5),
        tp(a, "buyer", Channel.EMAIL, 9),
        tp(a, "cmo", Channel.DIRECT, 14),
        tp(b, "founder", Channel.PAID_SEARCH, 1),
        tp(b, "dev", Channel.CONTENT, 3),
        tp(n, "x", Channel.DISPLAY, 2),
        tp(n, "y", Channel.DISPLAY, 4),
    ]
    lead = stage(a, PipelineStage.LEAD, 6)
    opp = stage(a, PipelineStage.OPPORTUNITY, 10, "20000")
    won = stage(a, PipelineStage.WON, 15, "24000")
    sub = Subscription(
        event_id=f"e2e-{uuid.uuid4().hex[:12]}", occurred_at=T0 + dt.timedelta(days=4),
        account_id=b, event_type=SubscriptionEventType.SUBSCRIPTION_STARTED, mrr=Decimal("500"),
    )
    conversions = {lead.event_id: 0, opp.event_id: 20000, won.event_id: 24000, sub.event_id: 6000}

    def latest_rows() -> list[dict[str, Any]]:
        return server_store.query(
            "SELECT conversion_id, model, version, touchpoint_event_id, credit, credited_revenue "
            "FROM attribution_credits_latest WHERE account_id IN {acc:Array(String)}",
            {"acc": [a, b, n]},
        )

    async with broker:
        await broker.start()
        await component.start()
        bus = Bus(broker, "e2e")
        await bus.publish(TOUCHPOINTS, touches)
        await bus.publish(PIPELINE, [lead, opp, won])
        await bus.publish(SUBSCRIPTIONS, [sub])

        async def all_rule_models_done() -> bool:
            rows = await asyncio.to_thread(latest_rows)
            done = {(r["conversion_id"], r["model"]) for r in rows}
            linear_won = [r for r in rows if r["conversion_id"] == won.event_id and r["model"] == "linear"]
            return done >= {(c, m) for c in conversions for m in RULE_MODELS} and len(linear_won) == 5

        await until(all_rule_models_done)
        rows = latest_rows()
        for conversion_id, revenue in conversions.items():
            for model in RULE_MODELS:
                mine = [r for r in rows if r["conversion_id"] == conversion_id and r["model"] == model]
                assert sum(r["credit"] for r in mine) == pytest.approx(1.0), (conversion_id, model)
                assert sum(r["credited_revenue"] for r in mine) == Decimal(revenue)
        by = {(r["conversion_id"], r["model"]): r for r in rows}
        # Won: last touch is the direct touch of the CMO, last non-direct the buyer's email.
        assert by[(won.event_id, "last_touch")]["touchpoint_event_id"] == touches[4].event_id
        assert by[(won.event_id, "last_non_direct")]["touchpoint_event_id"] == touches[3].event_id
        assert by[(won.event_id, "first_touch")]["touchpoint_event_id"] == touches[0].event_id
        assert by[(sub.event_id, "first_touch")]["credited_revenue"] == Decimal("6000")
        # Non-converting account has no credits.
        assert not [r for r in rows if r["touchpoint_event_id"] in {touches[7].event_id, touches[8].event_id}]

        # Late touch: happened on day 5.5 (just before the lead) but arrives now.
        late = tp(a, "intern", Channel.REFERRAL, 5.5)
        await bus.publish(TOUCHPOINTS, [late])

        async def late_touch_credited() -> bool:
            rows = await asyncio.to_thread(latest_rows)
            mine = [r for r in rows if r["conversion_id"] == lead.event_id and r["model"] == "last_touch"]
            return [(r["touchpoint_event_id"], r["version"]) for r in mine] == [(late.event_id, 2)]

        await until(late_touch_credited)
        rows = latest_rows()
        linear_lead = [r for r in rows if r["conversion_id"] == lead.event_id and r["model"] == "linear"]
        assert len(linear_lead) == 4 and {r["version"] for r in linear_lead} == {2}
        first_lead = [r for r in rows if r["conversion_id"] == lead.event_id and r["model"] == "first_touch"]
        assert [r["version"] for r in first_lead] == [1]  # unchanged → not re-versioned

        # Data-driven models on demand.
        runs = await component.recompute_data_driven()
        assert {r.model for r in runs} == {"markov", "shapley"}
        rows = latest_rows()
        for conversion_id in conversions:
            for model in ("markov", "shapley"):
                mine = [r for r in rows if r["conversion_id"] == conversion_id and r["model"] == model]
                assert mine and sum(r["credit"] for r in mine) == pytest.approx(1.0)
                assert all(r["credit"] >= 0 for r in mine)

        async def published_everything() -> bool:
            got = {(c.conversion_id, c.model) for c in received}
            return got >= {(c, m) for c in conversions for m in ALL_MODELS} and any(
                c.conversion_id == lead.event_id and c.version == 2 for c in received
            )

        await until(published_everything)
        await component.stop()


@pytest.mark.clickhouse
async def test_cli_recompute_and_credits_on_the_server(
    server_store: Store, clickhouse_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from pulse_attribution.cli import app
    from pulse_shared.settings import common_settings

    broker = make_broker(None)
    component = build(server_store, Bus(broker, "attribution"), AttributionSettings())
    account = f"cli-{uuid.uuid4().hex[:8]}"
    touch = tp(account, "ann", Channel.PARTNER, 0)
    won = stage(account, PipelineStage.WON, 2, "777")
    await component.touchpoints.consume([touch])
    from pulse_attribution.domain.conversions import from_pipeline

    conversion = from_pipeline(won)
    assert conversion is not None
    await asyncio.to_thread(
        server_store.insert,
        "conversions",
        [{
            "conversion_id": conversion.conversion_id, "account_id": account,
            "milestone": "won", "converted_at": conversion.converted_at,
            "revenue": conversion.revenue, "currency": "USD",
        }],
        ["conversion_id", "account_id", "milestone", "converted_at", "revenue", "currency"],
    )
    monkeypatch.setenv("PULSE_CLICKHOUSE_URL", clickhouse_server.url)
    monkeypatch.delenv("PULSE_KAFKA_BOOTSTRAP", raising=False)
    common_settings.cache_clear()
    try:
        runner = CliRunner()
        result = await asyncio.to_thread(
            runner.invoke, app, ["recompute", "--model", "markov", "--milestone", "won"]
        )
        assert result.exit_code == 0, result.output
        assert "markov" in result.output and "won" in result.output
        shown = await asyncio.to_thread(
            runner.invoke, app, ["credits", "--account-id", account, "--format", "json"])
        assert shown.exit_code == 0, shown.output
        [markov] = [c for c in json.loads(shown.stdout) if c["model"] == "markov"]
        assert markov["touchpoint_event_id"] == touch.event_id
        assert markov["credited_revenue"] == 777  # a JSON number, not a string
        # Production wiring builds against the same settings (in-process bus, server store).
        from faststream.asgi import AsgiFastStream

        from pulse_attribution.main import create_app

        assert isinstance(await asyncio.to_thread(create_app), AsgiFastStream)
    finally:
        common_settings.cache_clear()
