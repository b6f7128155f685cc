"""AttributionStorage against both backends (embedded chDB and the ClickHouse server)."""

from __future__ import annotations

import datetime as dt
import hashlib
import uuid
from decimal import Decimal

from pulse_attribution.domain.credits import credit_events
from pulse_attribution.domain.model import Conversion, Milestone, Touch, TouchCredit
from pulse_attribution.storage import (
    CONVERSION_COLUMNS,
    CREDIT_COLUMNS,
    TOUCHPOINT_COLUMNS,
    AttributionStorage,
    conversion_row,
    credit_row,
    touchpoint_row,
)
from pulse_shared.events import Channel, Touchpoint, TouchType
from pulse_shared.store import Store

T0 = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.UTC)


def _touch(account: str, days: float, channel: Channel = Channel.EMAIL) -> Touchpoint:
    return Touchpoint(
        event_id=f"st-{uuid.uuid4().hex[:10]}",
        occurred_at=T0 + dt.timedelta(days=days),
        account_id=account,
        contact_id=hashlib.sha256(account.encode()).hexdigest(),
        channel=channel,
        touch_type=TouchType.EMAIL_CLICK,
        cost=Decimal("1.5"),
    )


class TestAttributionStorage:
    def test_touches_window_and_dedup(self, any_store: Store) -> None:
        storage = AttributionStorage(any_store)
        account = f"s-{uuid.uuid4().hex[:8]}"
        inside, edge, outside = _touch(account, 1), _touch(account, 10), _touch(account, 11)
        rows = [touchpoint_row(t) for t in (inside, edge, outside, inside)]  # redelivery
        any_store.insert("touchpoints", rows, TOUCHPOINT_COLUMNS)
        got = storage.touches([account, "nobody"], T0, T0 + dt.timedelta(days=10))
        assert list(got) == [account]
        assert [t.event_id for t in got[account]] == [inside.event_id, edge.event_id]
        assert got[account][0] == Touch(
            inside.event_id, inside.occurred_at, Channel.EMAIL, "", inside.contact_id
        )
        assert storage.touches([], T0, T0) == {}

    def test_conversions_and_latest_credit_version(self, any_store: Store) -> None:
        storage = AttributionStorage(any_store)
        account = f"s-{uuid.uuid4().hex[:8]}"
        conversion = Conversion(
            f"sc-{uuid.uuid4().hex[:8]}", account, Milestone.WON,
            T0 + dt.timedelta(days=5), Decimal("250.5"),
        )
        any_store.insert("conversions", [conversion_row(conversion)] * 2, CONVERSION_COLUMNS)
        assert storage.conversions_of([account]) == [conversion]
        assert conversion in storage.all_conversions(Milestone.WON)
        assert conversion not in storage.all_conversions(Milestone.LEAD)

        a, b = _touch(account, 1), _touch(account, 2)
        ta = Touch(a.event_id, a.occurred_at, a.channel)
        tb = Touch(b.event_id, b.occurred_at, b.channel)
        v1 = credit_events(conversion, "linear", [TouchCredit(ta, 1.0)], 1)
        v2 = credit_events(conversion, "linear", [TouchCredit(ta, 0.5), TouchCredit(tb, 0.5)], 2)
        rows = [credit_row(c) for c in v1 + v2]
        any_store.insert("attribution_credits", rows, CREDIT_COLUMNS)
        latest = storage.latest_credits([conversion.conversion_id], ["linear", "markov"])
        assert list(latest) == [(conversion.conversion_id, "linear")]
        version, credits = latest[(conversion.conversion_id, "linear")]
        assert version == 2
        assert sorted(credits) == sorted([(a.event_id, 0.5), (b.event_id, 0.5)])
        shown = storage.credits_latest(conversion_id=conversion.conversion_id)
        assert [(r["touchpoint_event_id"], r["version"]) for r in shown] == [
            (a.event_id, 2), (b.event_id, 2)
        ]
        assert sum(r["credited_revenue"] for r in shown) == Decimal("250.5")
        assert storage.credits_latest(account_id=account) == shown

    def test_run_versions_start_at_zero(self, any_store: Store) -> None:
        storage = AttributionStorage(any_store)
        assert storage.last_run_version(f"m-{uuid.uuid4().hex[:6]}", Milestone.LEAD) == 0
