"""Martech spend (issue 17): monthly tool/licence costs counted in marketing cost.

KPIs: ``martech_cost`` (a month's cost spread evenly over its days), ``marketing_cost`` (ad
spend + martech), ``cac_fully_loaded`` beside ``cac`` and ``marketing_roi_fully_loaded``
beside ``marketing_roi``; the breakdown by tool category is ``pulse kpi martech``.

Hand-checkable ledger in 2023 (a year no other test writes; the stores are shared):

* tests/data/martech_costs.csv: March HubSpot 3100 + Salesforce 1550 + Amplitude 620 =
  5270 (170 a day over 31 days), April 3000 + 1500 = 4500 (150 a day over 30 days); the
  Clearbit row has a negative amount and is rejected with a one-line row/field error.
* Ad spend: Mar 10 1000, Mar 31 730, Apr 3 500.
* New customers (first paid subscriptions): 2 on Mar 10, 2 on Mar 20, 1 on Apr 3.
* Won revenue credited (default model) on Mar 15: 14000.

March: spend 1730, martech 5270, marketing cost 7000; cac 1730 / 4 = 432.5, fully loaded
7000 / 4 = 1750; ROI (14000 − 1730) / 1730, fully loaded (14000 − 7000) / 7000 = 1.
Week 2023-W13 (Mar 27 – Apr 2): martech 5 × 170 + 2 × 150 = 1150, spend 730 → 1880.
April: martech 4500, spend 500, 1 customer → cac 500, fully loaded 5000, ROI fully loaded −1.
"""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from pulse_attribution.storage import CREDIT_COLUMNS, credit_row
from pulse_cli.ingesting import report
from pulse_ingest.service import IngestService, ingest_file
from pulse_ingest.settings import IngestSettings
from pulse_kpi.app import KpiComponent, SilentBus
from pulse_kpi.cli import app as kpi_cli
from pulse_kpi.cli import catalog_markdown
from pulse_kpi.domain.compute import martech_cost
from pulse_kpi.domain.facts import MartechRow
from pulse_kpi.main import build
from pulse_kpi.settings import SERVICE, KpiSettings
from pulse_kpi.storage import (
    SPEND_COLUMNS,
    SUBSCRIPTION_COLUMNS,
    KpiStorage,
    martech_processor,
    spend_rows,
    subscription_rows,
)
from pulse_shared import access, kpi_catalog
from pulse_shared.attribution_models import DEFAULT_MODEL
from pulse_shared.bus import make_broker
from pulse_shared.events import (
    AttributionCredit,
    Channel,
    ConversionMilestone,
    Event,
    MartechCost,
    Spend,
    Subscription,
    SubscriptionEventType,
)
from pulse_shared.store import Store
from pulse_shared.topics import MARTECH, Topic

DATA = Path(__file__).resolve().parents[1] / "data"
ROOT = Path(__file__).resolve().parents[2]
Y = 2023
MARTECH_KPIS = ("martech_cost", "marketing_cost", "cac_fully_loaded",
                "marketing_roi_fully_loaded")
CHECKED = (*MARTECH_KPIS, "spend", "cac", "new_customers", "marketing_roi")


class RecordingBus:
    """What ingest publishes, per topic (the KPI consumer then stores it)."""

    def __init__(self) -> None:
        self.published: dict[str, list[Event]] = {}

    async def publish(self, topic: Topic, events: list[Event]) -> None:
        self.published.setdefault(topic.name, []).extend(events)


def at(m: int, d: int, h: int = 10) -> dt.datetime:
    return dt.datetime(Y, m, d, h, tzinfo=dt.UTC)


def load_ledger(store: Store) -> list[Subscription]:
    """Spend, subscriptions and credits as their consumers / attribution store them."""
    spend = [
        Spend(event_id=f"mt{Y}-s1", date=dt.date(Y, 3, 10), channel=Channel.PAID_SEARCH,
              campaign_id="mt-c1", amount=Decimal(1000)),
        Spend(event_id=f"mt{Y}-s2", date=dt.date(Y, 3, 31), channel=Channel.PAID_SOCIAL,
              campaign_id="mt-c2", amount=Decimal(730)),
        Spend(event_id=f"mt{Y}-s3", date=dt.date(Y, 4, 3), channel=Channel.PAID_SEARCH,
              campaign_id="mt-c1", amount=Decimal(500)),
    ]
    store.insert("spend", spend_rows(spend), list(SPEND_COLUMNS))
    starts = [("A", at(3, 10)), ("B", at(3, 10)), ("C", at(3, 20)), ("D", at(3, 20)),
              ("E", at(4, 3))]
    subs = [
        Subscription(event_id=f"mt{Y}-sub-{a}", occurred_at=when, account_id=f"mt{Y}-{a}",
                     event_type=SubscriptionEventType.SUBSCRIPTION_STARTED, mrr=Decimal(100),
                     plan="growth")
        for a, when in starts
    ]
    store.insert("subscriptions", subscription_rows(subs), list(SUBSCRIPTION_COLUMNS))
    won = AttributionCredit(
        conversion_id=f"mt{Y}-won-1", milestone=ConversionMilestone.WON, model=DEFAULT_MODEL,
        account_id=f"mt{Y}-A", touchpoint_event_id=f"mt{Y}-tp-1",
        channel=Channel.PAID_SEARCH, campaign_id="mt-c1", touched_at=at(3, 1),
        converted_at=at(3, 15), credit=1.0, credited_revenue=Decimal(14000), version=1,
    )
    store.insert("attribution_credits", [credit_row(won)], list(CREDIT_COLUMNS))
    return subs


def ingest_settings() -> IngestSettings:
    return IngestSettings(pii_salt="test-salt-martech-0123456789", max_rows=10_000,
                          publish_timeout_s=5.0)


def component(store: Store) -> KpiComponent:
    kpi = build(store, SilentBus(make_broker(None), SERVICE),
                KpiSettings(close_enabled=False, snapshot_min_interval_s=0))
    kpi.clock = lambda: dt.datetime(Y, 5, 15, 12, tzinfo=dt.UTC)
    kpi.mrr_cap = dt.date(Y, 12, 31)  # other tests' later subscriptions stay out of 2023
    return kpi


def stored(store: Store) -> dict[tuple[str, str], float | None]:
    rows = KpiStorage(store).kpi_values(start=dt.date(Y, 1, 1), end=dt.date(Y + 1, 1, 1),
                                        dimension="all", kpis=list(CHECKED))
    return {(r["kpi"], r["period"]): r["value"] for r in rows}


EXPECTED: dict[tuple[str, str], float | None] = {
    # month of March
    ("martech_cost", f"{Y}-03"): 5270.0, ("spend", f"{Y}-03"): 1730.0,
    ("marketing_cost", f"{Y}-03"): 7000.0, ("new_customers", f"{Y}-03"): 4.0,
    ("cac", f"{Y}-03"): 432.5, ("cac_fully_loaded", f"{Y}-03"): 1750.0,
    ("marketing_roi_fully_loaded", f"{Y}-03"): 1.0,
    # April
    ("martech_cost", f"{Y}-04"): 4500.0, ("marketing_cost", f"{Y}-04"): 5000.0,
    ("cac", f"{Y}-04"): 500.0, ("cac_fully_loaded", f"{Y}-04"): 5000.0,
    ("marketing_roi_fully_loaded", f"{Y}-04"): -1.0,  # no won revenue in April
    # days: a day carries its month's daily share
    ("martech_cost", f"{Y}-03-10"): 170.0, ("marketing_cost", f"{Y}-03-10"): 1170.0,
    ("cac", f"{Y}-03-10"): 500.0, ("cac_fully_loaded", f"{Y}-03-10"): 585.0,
    ("martech_cost", f"{Y}-04-30"): 150.0, ("marketing_cost", f"{Y}-04-30"): 150.0,
    ("cac_fully_loaded", f"{Y}-04-30"): None,  # no new customer that day
    # ISO week 13 straddles March and April
    ("martech_cost", f"{Y}-W13"): 1150.0, ("marketing_cost", f"{Y}-W13"): 1880.0,
    # quarters: whole months
    ("martech_cost", f"{Y}-Q1"): 5270.0, ("marketing_cost", f"{Y}-Q1"): 7000.0,
    ("cac", f"{Y}-Q1"): 432.5, ("cac_fully_loaded", f"{Y}-Q1"): 1750.0,
    ("martech_cost", f"{Y}-Q2"): 4500.0, ("marketing_cost", f"{Y}-Q2"): 5000.0,
}


# ------------------------------------------------------------------ pure definitions
def test_monthly_cost_is_spread_over_the_days_of_its_month() -> None:
    rows = [MartechRow(dt.date(2001, 2, 1), "HubSpot", "crm", Decimal(2800)),
            MartechRow(dt.date(2001, 3, 1), "HubSpot", "crm", Decimal(3100))]
    assert martech_cost(rows, dt.date(2001, 2, 1), dt.date(2001, 3, 1)) == Decimal(2800)
    # Feb 27-28 at 100 a day (2800 / 28) and Mar 1-2 at 100 a day (3100 / 31)
    assert martech_cost(rows, dt.date(2001, 2, 27), dt.date(2001, 3, 3)) == Decimal(400)
    assert martech_cost(rows, dt.date(2001, 1, 1), dt.date(2002, 1, 1)) == Decimal(5900)
    assert martech_cost(rows, dt.date(2001, 4, 1), dt.date(2001, 5, 1)) == Decimal(0)


def test_derived_formulas_and_catalog_entries() -> None:
    derived = kpi_catalog.DERIVED
    values: dict[str, float | None] = {"spend": 0.1, "martech_cost": 0.2, "new_customers": 3.0,
                                       "attributed_revenue": 0.6}
    values["marketing_cost"] = derived["marketing_cost"].formula(values)
    assert values["marketing_cost"] == 0.3  # exact money sum, not 0.30000000000000004
    assert derived["cac_fully_loaded"].formula(values) == 0.1
    assert derived["marketing_roi_fully_loaded"].formula(values) == 1.0
    assert derived["cac_fully_loaded"].formula({**values, "marketing_cost": 0.0}) is None
    assert kpi_catalog.BY_NAME["martech_cost"].family == kpi_catalog.Family.BUDGET
    for name in MARTECH_KPIS:
        entry = kpi_catalog.BY_NAME[name]
        assert entry.dimensions == ("all",) and entry.grains == kpi_catalog.ALL_GRAINS
        assert not access.kpi_visible(access.Role.CX, name)
        assert access.kpi_visible(access.Role.CMO, name)
    assert "martech_costs" not in access.SCOPES[access.Role.CX].tables
    assert "martech_costs" in access.SCOPES[access.Role.MARKETING_OPS].tables


def test_kpi_list_and_the_committed_catalog_show_the_new_kpis() -> None:
    listed = CliRunner().invoke(kpi_cli, ["list", "--format", "json"])
    assert listed.exit_code == 0, listed.output
    by_name = {k["name"]: k for k in json.loads(listed.output)}
    assert set(MARTECH_KPIS) <= set(by_name) and {"cac", "marketing_roi"} <= set(by_name)
    assert by_name["cac_fully_loaded"]["unit"] == "USD"
    assert by_name["marketing_roi_fully_loaded"]["unit"] == "ratio"
    committed = (ROOT / "docs" / "asyncapi" / "kpi-catalog.md").read_text()
    for name in MARTECH_KPIS:
        assert name in catalog_markdown() and f"`{name}`" in committed


# ------------------------------------------------------------------ ingest → KPIs, both backends
async def ingest_sample() -> tuple[Any, list[MartechCost]]:
    bus = RecordingBus()
    service = IngestService(bus, ingest_settings())  # type: ignore[arg-type]
    result = await ingest_file(service, "martech", DATA / "martech_costs.csv")
    events = [e for e in bus.published.get(MARTECH.name, []) if isinstance(e, MartechCost)]
    return result, events


async def test_sample_csv_rejects_the_bad_row_with_one_line_and_accepts_the_rest(
    capsys: pytest.CaptureFixture[str],
) -> None:
    result, events = await ingest_sample()
    assert (result.accepted, result.rejected_rows) == (5, 1)
    assert [(e["index"], e["field"]) for e in result.rejected] == [(3, "amount")]
    assert {(e.month, e.category) for e in events} == {
        ("2023-03", "marketing_automation"), ("2023-03", "crm"), ("2023-03", "analytics"),
        ("2023-04", "marketing_automation"), ("2023-04", "crm"),
    }
    with pytest.raises(typer.Exit):  # exit 1: something was rejected
        report("martech", DATA / "martech_costs.csv", result, [], "table")
    err = capsys.readouterr().err
    assert "martech: accepted 5, rejected 1" in err
    row_lines = [line for line in err.splitlines() if "amount" in line]
    assert len(row_lines) == 1 and "row 4" in row_lines[0], err


class TestMartechKpisOnBothBackends:
    """Ingest (CSV) → the martech consumer's processor and sink → its follow-up recompute,
    on embedded chDB and the real ClickHouse server."""

    @pytest.fixture
    def store(self, any_store: Store) -> Store:
        return any_store

    async def test_martech_marketing_cost_and_fully_loaded_cac_and_roi(
        self, store: Store
    ) -> None:
        subs = load_ledger(store)
        kpi = component(store)
        await kpi.after_subscriptions(subs)
        _, events = await ingest_sample()
        for table_rows in martech_processor(events + events[:2]):  # a redelivery
            store.insert(table_rows.table, table_rows.rows, list(table_rows.columns))
        await kpi.after_martech(events)
        got = stored(store)
        for key, value in EXPECTED.items():
            assert got.get(key) == value, (key, got.get(key))
        assert got[("marketing_roi", f"{Y}-03")] == pytest.approx((14000 - 1730) / 1730)
        # The breakdown by tool category (not a KPI dimension): pulse kpi martech.
        rows = KpiStorage(store).martech_breakdown(dt.date(Y, 3, 1), dt.date(Y, 4, 1),
                                                   "category")
        assert [(r["member"], Decimal(r["amount"])) for r in rows] == [
            ("analytics", Decimal(620)), ("crm", Decimal(1550)),
            ("marketing_automation", Decimal(3100)),
        ]
