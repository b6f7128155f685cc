"""Credits are computed per conversion, in parallel: no global lock, yet every version of a
conversion × model is written by exactly one computation, in increasing order.

The app-level tests hold a computation in the middle of its credit write with
``asyncio.Event``s (no sleeps); the ``asyncio.timeout`` guards only turn a deadlock (what a
global lock would cause here) into a failure instead of a hang.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Collection
from contextlib import AbstractAsyncContextManager
from decimal import Decimal
from typing import Any

import pytest
from faststream.kafka import TestKafkaBroker

from pulse_attribution.domain.model import ALL_MODELS, Conversion, Milestone
from pulse_attribution.keyed_lock import KeyedLock
from pulse_attribution.main import AttributionComponent, build
from pulse_attribution.settings import AttributionSettings
from pulse_attribution.storage import (
    CONVERSION_COLUMNS,
    CONVERSIONS_TABLE,
    TOUCHPOINT_COLUMNS,
    conversion_row,
    touchpoint_row,
)
from pulse_shared.bus import Bus, make_broker
from pulse_shared.events import AttributionCredit, Channel, Touchpoint, TouchType
from pulse_shared.store import Store
from pulse_shared.topics import CREDITS, TOUCHPOINTS

T0 = dt.datetime(2026, 9, 7, 9, 0, tzinfo=dt.UTC)
#: Only turns a deadlock into a failure; nothing here depends on how fast things run.
DEADLOCK_GUARD_S = 120


def touch(account: str, who: str, channel: Channel, days: float) -> Touchpoint:
    return Touchpoint(
        event_id=f"t-{uuid.uuid4().hex[:12]}",
        occurred_at=T0 + dt.timedelta(days=days),
        account_id=account,
        contact_id=hashlib.sha256(f"{account}/{who}".encode()).hexdigest(),
        channel=channel,
        campaign_id=f"{channel.value}-c1",
        touch_type=TouchType.WEB_VISIT,
    )


def won(account: str, days: float, amount: str = "1000") -> Conversion:
    return Conversion(
        conversion_id=f"p-{uuid.uuid4().hex[:12]}",
        account_id=account,
        milestone=Milestone.WON,
        converted_at=T0 + dt.timedelta(days=days),
        revenue=Decimal(amount),
    )


class Harness:
    def __init__(self, component: AttributionComponent) -> None:
        self.component = component
        self.published: list[AttributionCredit] = []

    async def store_touches(self, touches: list[Touchpoint]) -> None:
        """What the touchpoint consumer's sink does (no follow-up)."""
        await self.component.writer.write(
            TOUCHPOINTS.stored_table(), [touchpoint_row(t) for t in touches], TOUCHPOINT_COLUMNS
        )

    async def store_conversions(self, conversions: list[Conversion]) -> None:
        """What the pipeline consumer's sink does (no follow-up)."""
        await self.component.writer.write(
            CONVERSIONS_TABLE, [conversion_row(c) for c in conversions], CONVERSION_COLUMNS
        )

    async def late_touches(self, touches: list[Touchpoint]) -> None:
        """The touchpoint consumer: sink, then the follow-up that re-attributes."""
        await self.store_touches(touches)
        await self.component.after_touchpoints(touches)


@pytest.fixture
async def harness(embedded_store: Store) -> AsyncIterator[Harness]:
    broker = make_broker(None)
    component = build(
        embedded_store, Bus(broker, "attribution"), AttributionSettings(recompute_interval_s=0)
    )
    broker.include_router(component.router)
    h = Harness(component)

    @broker.subscriber(CREDITS.name)
    async def collect(body: dict[str, Any]) -> None:
        h.published.append(AttributionCredit.model_validate(body))

    async with TestKafkaBroker(broker):
        yield h


def hold_credit_write(
    harness: Harness, monkeypatch: pytest.MonkeyPatch, conversion_id: str
) -> tuple[asyncio.Event, asyncio.Event]:
    """Makes the first credit write of ``conversion_id`` wait (its computation is done
    and its key held). Returns (reached, release): set when the write is reached, and the
    event that lets it go on."""
    reached, release = asyncio.Event(), asyncio.Event()
    original = harness.component.writer.write

    async def write(table: str, rows: Any, columns: Any) -> None:
        if (
            table == CREDITS.stored_table()
            and not reached.is_set()
            and any(r["conversion_id"] == conversion_id for r in rows)
        ):
            reached.set()
            await release.wait()
        await original(table, rows, columns)

    monkeypatch.setattr(harness.component.writer, "write", write)
    return reached, release


def credit_written(
    harness: Harness, monkeypatch: pytest.MonkeyPatch, conversion_id: str
) -> asyncio.Event:
    """An event set once credits of ``conversion_id`` have been written."""
    written = asyncio.Event()
    original = harness.component.writer.write

    async def write(table: str, rows: Any, columns: Any) -> None:
        await original(table, rows, columns)
        if table == CREDITS.stored_table() and any(
            r["conversion_id"] == conversion_id for r in rows
        ):
            written.set()

    monkeypatch.setattr(harness.component.writer, "write", write)
    return written


def stored_versions(store: Store, conversion_id: str) -> dict[tuple[str, int], dict[str, float]]:
    """Every stored version of the conversion: (model, version) → {touch id: credit}."""
    out: dict[tuple[str, int], dict[str, float]] = defaultdict(dict)
    for row in store.query(
        "SELECT model, version, touchpoint_event_id, credit FROM attribution_credits FINAL "
        "WHERE conversion_id = {c:String}",
        {"c": conversion_id},
    ):
        out[(row["model"], int(row["version"]))][row["touchpoint_event_id"]] = row["credit"]
    return dict(out)


# -- the keyed lock ------------------------------------------------------------------------


async def test_keyed_lock_hands_out_free_keys_and_keeps_nothing_once_released() -> None:
    lock = KeyedLock()
    async with lock.hold_free(["a", "b"]) as first:
        assert first == {"a", "b"}
        # Partly busy: the free keys are taken at once, the busy one is left out.
        async with lock.hold_free(["b", "c"]) as second:
            assert second == {"c"}
            assert lock.held == {"a", "b", "c"}
        # Only busy keys: waits until one of them is released.
        waiter = asyncio.create_task(_hold_and_report(lock, ["a"]))
        await _until_waiting(lock, 1)
        assert not waiter.done()
    assert await waiter == {"a"}
    assert lock.held == frozenset() and lock.waiting == 0
    async with lock.hold_free([]) as nothing:
        assert nothing == frozenset()


async def test_keyed_lock_waiter_cancelled_leaves_nothing_held() -> None:
    lock = KeyedLock()
    async with lock.hold_free(["a"]):
        waiter = asyncio.create_task(_hold_and_report(lock, ["a"]))
        await _until_waiting(lock, 1)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        assert lock.waiting == 0
    assert lock.held == frozenset()
    async with lock.hold_free(["a"]) as again:  # not left behind by the cancelled waiter
        assert again == {"a"}


async def _hold_and_report(lock: KeyedLock, keys: list[str]) -> frozenset[str]:
    async with lock.hold_free(keys) as taken:
        return taken


async def _until_waiting(lock: KeyedLock, count: int) -> None:
    # A task reaches its wait on its first step: yielding to the loop is enough.
    for _ in range(100):
        if lock.waiting >= count:
            return
        await asyncio.sleep(0)
    raise AssertionError(f"{count} waiter(s) expected, {lock.waiting} waiting")


# -- the service ---------------------------------------------------------------------------


async def test_credits_of_two_accounts_are_computed_at_the_same_time(
    harness: Harness, embedded_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    account_a, account_b = f"acc-{uuid.uuid4().hex[:8]}", f"acc-{uuid.uuid4().hex[:8]}"
    touch_a = touch(account_a, "ann", Channel.EMAIL, 0)
    touch_b = touch(account_b, "bob", Channel.PAID_SEARCH, 0)
    await harness.store_touches([touch_a, touch_b])
    conversion_a, conversion_b = won(account_a, 2), won(account_b, 2)
    await harness.store_conversions([conversion_a, conversion_b])
    a_writing, a_release = hold_credit_write(harness, monkeypatch, conversion_a.conversion_id)

    async with asyncio.timeout(DEADLOCK_GUARD_S):
        task_a = asyncio.create_task(harness.component.attribute([conversion_a], "conversion"))
        await a_writing.wait()
        # A is computed and stuck in its write, its conversion held. B is computed,
        # written and published meanwhile (a global lock would wait for A: deadlock).
        credits_b = await harness.component.attribute([conversion_b], "conversion")
        assert not task_a.done()
        assert harness.component.credit_keys.held == {conversion_a.conversion_id}
        a_release.set()
        credits_a = await task_a

    for conversion, credits, expected_touch in (
        (conversion_a, credits_a, touch_a), (conversion_b, credits_b, touch_b)
    ):
        last = [c for c in credits if c.model == "last_touch"]
        assert [(c.touchpoint_event_id, c.version) for c in last] == [(expected_touch.event_id, 1)]
        assert {c.conversion_id for c in credits} == {conversion.conversion_id}
        assert stored_versions(embedded_store, conversion.conversion_id)[("last_touch", 1)] == {
            expected_touch.event_id: 1.0
        }
    # B's credits were published before A's.
    order = [c.conversion_id for c in harness.published]
    assert order.index(conversion_b.conversion_id) < order.index(conversion_a.conversion_id)
    assert harness.component.credit_keys.held == frozenset()


async def test_a_busy_conversion_does_not_hold_up_the_rest_of_its_batch(
    harness: Harness, embedded_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    account_a, account_b = f"acc-{uuid.uuid4().hex[:8]}", f"acc-{uuid.uuid4().hex[:8]}"
    touch_a = touch(account_a, "ann", Channel.EMAIL, 0)
    touch_b = touch(account_b, "bob", Channel.PAID_SEARCH, 0)
    await harness.store_touches([touch_a, touch_b])
    conversion_a, conversion_b = won(account_a, 2), won(account_b, 2)
    await harness.store_conversions([conversion_a, conversion_b])
    a_writing, a_release = hold_credit_write(harness, monkeypatch, conversion_a.conversion_id)
    b_written = credit_written(harness, monkeypatch, conversion_b.conversion_id)

    async with asyncio.timeout(DEADLOCK_GUARD_S):
        task_a = asyncio.create_task(harness.component.attribute([conversion_a], "late_touch"))
        await a_writing.wait()
        # A batch of both while A is being written elsewhere: B goes through meanwhile,
        # A waits for its turn (one pass per set of free conversions).
        both = asyncio.create_task(
            harness.component.attribute([conversion_a, conversion_b], "conversion")
        )
        await b_written.wait()
        assert not task_a.done() and not both.done()
        a_release.set()
        await task_a
        credits = await both
    assert {c.conversion_id for c in credits} == {
        conversion_a.conversion_id, conversion_b.conversion_id
    }
    # A's second computation came after the first was written: it saw version 1 and,
    # nothing having changed, re-sent it instead of writing a version of its own.
    assert {c.version for c in credits if c.conversion_id == conversion_a.conversion_id} == {1}
    assert {v for _, v in stored_versions(embedded_store, conversion_a.conversion_id)} == {1}


async def test_versions_of_one_conversion_stay_unique_and_increasing_when_recomputes_race(
    harness: Harness, embedded_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    account = f"acc-{uuid.uuid4().hex[:8]}"
    first = touch(account, "ann", Channel.EMAIL, 0)
    await harness.store_touches([first])
    conversion = won(account, 10)
    await harness.store_conversions([conversion])
    await harness.component.attribute_conversions([conversion])
    # A data-driven run: late touches now version markov / shapley credits too.
    await harness.component.recompute_data_driven(milestones=[Milestone.WON])
    key = conversion.conversion_id

    late_1 = touch(account, "bob", Channel.PAID_SEARCH, 3)
    late_2 = touch(account, "cid", Channel.DISPLAY, 5)
    reached, release = hold_credit_write(harness, monkeypatch, key)
    lock = harness.component.credit_keys
    contenders: list[frozenset[str]] = []
    both_waiting = asyncio.Event()
    hold_free: Callable[[Collection[str]], AbstractAsyncContextManager[frozenset[str]]]
    hold_free = lock.hold_free

    def watched(keys: Collection[str]) -> AbstractAsyncContextManager[frozenset[str]]:
        if key in keys and lock.held.issuperset(keys):  # every key busy: it will wait
            contenders.append(frozenset(keys))
            if len(contenders) == 2:
                both_waiting.set()
        return hold_free(keys)

    monkeypatch.setattr(lock, "hold_free", watched)
    async with asyncio.timeout(DEADLOCK_GUARD_S):
        # 1. A late touch's re-attribution, computed and stuck in its write.
        first_late = asyncio.create_task(harness.late_touches([late_1]))
        await reached.wait()
        # 2. Another late touch and a data-driven run of the same conversion race it: both
        #    must wait for the conversion, not compute on top of the unwritten version.
        await harness.store_touches([late_2])
        second_late = asyncio.create_task(harness.component.after_touchpoints([late_2]))
        run = asyncio.create_task(
            harness.component.recompute_data_driven(milestones=[Milestone.WON])
        )
        await both_waiting.wait()
        assert not (first_late.done() or second_late.done() or run.done())
        release.set()
        await asyncio.gather(first_late, second_late, run)

    versions = stored_versions(embedded_store, key)
    by_model: dict[str, list[int]] = defaultdict(list)
    for model, version in versions:
        by_model[model].append(version)
    assert set(by_model) == set(ALL_MODELS)
    for model, numbers in by_model.items():
        # latest + 1 each time: consecutive from 1, none written twice (a collision would
        # merge two computations' touches into one version: credits summing to 2).
        assert sorted(numbers) == list(range(1, len(numbers) + 1)), model
        for version in numbers:
            assert sum(versions[(model, version)].values()) == pytest.approx(1.0), (
                model, version
            )
    # The two late touches gave two new versions of linear, the second on top of the first.
    assert [set(versions[("linear", v)]) for v in sorted(by_model["linear"])] == [
        {first.event_id},
        {first.event_id, late_1.event_id},
        {first.event_id, late_1.event_id, late_2.event_id},
    ]
    # Published in version order per model, each version with what was stored under it
    # (unchanged credits are re-sent under their current version).
    published: dict[str, list[AttributionCredit]] = defaultdict(list)
    for credit in harness.published:
        if credit.conversion_id == key:
            published[credit.model].append(credit)
    for model, credits in published.items():
        numbers = [c.version for c in credits]
        assert numbers == sorted(numbers), model
        for version in set(numbers):
            sent = {c.touchpoint_event_id for c in credits if c.version == version}
            assert sent == set(versions[(model, version)]), (model, version)
    assert lock.held == frozenset() and lock.waiting == 0
