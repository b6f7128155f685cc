"""The "Product usage" insight section of the monthly report (issue 17).

The ledger of tests/kpi/test_kpi_usage.py (2017, same event ids: whichever test runs first,
the stores hold the same rows): April has 4 active accounts (March 5); adoption in April
campaigns 3/4, ab_testing 1/4 (first used Apr 3: the newest launch), automations 1/4; at
churn risk in April C (100 %), A (80 %), F (53.3 %) carrying 300 + 100 + 50 MRR.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import pytest

from pulse_kpi.app import SilentBus
from pulse_kpi.main import build
from pulse_kpi.settings import SERVICE, KpiSettings
from pulse_kpi.storage import SUBSCRIPTION_COLUMNS, subscription_rows, usage_processor
from pulse_reporting.domain.periods import parse_period
from pulse_reporting.domain.usage import UsageInputs, usage_section
from pulse_reporting.generate import produce_report
from pulse_reporting.storage import ReportingStorage
from pulse_shared.bus import make_broker
from pulse_shared.events import ProductUsage, Subscription, SubscriptionEventType
from pulse_shared.store import Store

Y = 2017
APRIL = parse_period("monthly", f"{Y}-04")
NOW = dt.datetime(Y, 5, 15, 12, tzinfo=dt.UTC)
STARTED = SubscriptionEventType.SUBSCRIPTION_STARTED


def acct(name: str) -> str:
    return f"pu{Y}-{name}"


def day(m: int, d: int) -> dt.date:
    return dt.date(Y, m, d)


SUBS = [  # n, account, day, type, MRR (ids as in tests/kpi/test_kpi_usage.py)
    (1, "A", day(2, 1), STARTED, 100), (2, "B", day(2, 1), STARTED, 200),
    (3, "C", day(2, 1), STARTED, 300), (4, "D", day(2, 1), STARTED, 100),
    (5, "D", day(3, 20), SubscriptionEventType.SUBSCRIPTION_CANCELED, 0),
    (6, "E", day(4, 1), SubscriptionEventType.TRIAL_STARTED, 0), (7, "F", day(2, 1), STARTED, 50),
]
USES = [
    ("A", "campaigns", day(3, 1), 310), ("A", "campaigns", day(4, 3), 60),
    ("B", "campaigns", day(3, 2), 62), ("B", "campaigns", day(4, 3), 20),
    ("B", "campaigns", day(4, 3), 10),
    ("C", "templates", day(3, 2), 31), ("D", "campaigns", day(3, 1), 31),
    ("E", "campaigns", day(4, 3), 5), ("E", "ab_testing", day(4, 3), 2),
    ("F", "automations", day(3, 5), 31), ("F", "automations", day(4, 10), 14),
]


async def load(store: Store) -> None:
    subs = [Subscription(event_id=f"pu{Y}-sub-{n}", account_id=acct(a), event_type=kind,
                         occurred_at=dt.datetime.combine(d, dt.time(9), tzinfo=dt.UTC),
                         mrr=Decimal(mrr), plan="growth") for n, a, d, kind, mrr in SUBS]
    store.insert("subscriptions", subscription_rows(subs), list(SUBSCRIPTION_COLUMNS))
    kpi = build(store, SilentBus(make_broker(None), SERVICE),
                KpiSettings(close_enabled=False, snapshot_min_interval_s=0))
    kpi.clock = lambda: NOW
    kpi.mrr_cap = dt.date(Y, 12, 31)
    await kpi.after_subscriptions(subs)
    events = [ProductUsage(event_id=f"pu{Y}-u{i}", account_id=acct(a), feature=f, day=d,
                           count=n) for i, (a, f, d, n) in enumerate(USES)]
    for rows in usage_processor(events):
        store.insert(rows.table, rows.rows, list(rows.columns))


class TestUsageSectionOnBothBackends:
    @pytest.fixture
    def store(self, any_store: Store) -> Store:
        return any_store

    async def test_reads_and_builds_the_section(self, store: Store) -> None:
        await load(store)
        inputs = ReportingStorage(store).usage_inputs(APRIL)
        section = usage_section(inputs, APRIL, NOW)
        assert section is not None and section.unavailable is None
        assert section.statements == [
            f"Active accounts {Y}-04: 4 ({Y}-03: 5, -20.0%; {Y - 1}-04: n/a).",
            f"Monthly active accounts over {Y}-03 … {Y}-04: from 5 to 4 (peak 5 in {Y}-03).",
            f"Most used feature {Y}-04: campaigns, by 75.0% of active accounts (3 of 4); "
            "least: automations at 25.0% (1 of 4).",
            f"Largest adoption change: ab_testing 25.0% in {Y}-04 against 0.0% in {Y}-03 "
            "(+25.0 pp).",
            f"ab_testing, released {Y}-04-03 (first use): used by 25.0% of the accounts "
            "active in its first 28 days (1 of 4).",
            f"Churn risk {Y}-04: 3 paying accounts used the product over 50% less per day "
            f"than the month before, carrying $450.00 MRR; largest drop {acct('C')} "
            "(100.0%: 31 → 0 uses).",
        ]
        charts = {c.name: c for c in section.charts}
        assert charts["usage_active_accounts"].kind == "line"
        assert charts["usage_active_accounts"].series[0].values == [5.0, 4.0]
        assert charts["usage_adoption"].kind == "bar"
        assert charts["usage_adoption"].labels == ["campaigns", "ab_testing", "automations"]
        assert charts["usage_launch"].series[0].values[0] == pytest.approx(1 / 3)
        risk = next(t for t in section.tables if t.name == "usage_churn_risk")
        assert [(r[0], r[1], r[2], r[3]) for r in risk.rows] == [
            (acct("C"), 300.0, 31, 0), (acct("A"), 100.0, 310, 60), (acct("F"), 50.0, 31, 14)]
        assert risk.rows[2][4] == pytest.approx(1 - 14 / 30 * 31 / 31)


@pytest.mark.parametrize(("kind", "period"), [
    ("monthly", f"{Y}-04"), ("quarterly", f"{Y}-Q2"), ("annual", f"{Y}")])
def test_usage_in_the_report_files(
    embedded_store: Store, tmp_path: Path, kind: str, period: str
) -> None:
    result = produce_report(embedded_store, kind, period, formats="md", out_dir=tmp_path,
                            now=dt.datetime(Y + 1, 1, 15, tzinfo=dt.UTC))
    section = next(s for s in result.report.insights if s.key == "usage")
    assert "Product usage" in result.paths["md"].read_text()
    if section.unavailable is None:  # the ledger is stored (by the class test above)
        month = "12" if kind == "annual" else "06" if kind == "quarterly" else "04"
        assert any(f"Churn risk {Y}-{month}" in text for text in section.statements)


def test_section_says_when_there_is_no_usage() -> None:
    period = parse_period("monthly", "2041-01")
    inputs = UsageInputs(period, period.previous(), period.year_ago(), None, None)
    section = usage_section(inputs, period, dt.datetime(2041, 2, 2, tzinfo=dt.UTC))
    assert section is not None and section.unavailable and not section.statements
