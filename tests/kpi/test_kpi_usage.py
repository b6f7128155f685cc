"""Product usage (issue 17): active accounts, feature adoption, launch curve, churn risk.

Hand-checkable ledger in 2017 (a year no other test writes; the stores are shared). Every
account pays from Feb 1 unless said otherwise; usage per day = uses ÷ days of the month
(March 31 days, April 30):

* A (MRR 100): Mar 1 campaigns 310 (10/day); Apr 3 campaigns 60 (2/day) → drop 80 %.
* B (MRR 200): Mar 2 campaigns 62 (2/day); Apr 3 campaigns 20 + 10 (two rows: 1/day) →
  drop exactly 50 %: not more than the threshold, not at risk.
* C (MRR 300): Mar 2 templates 31 (1/day); no April usage → drop 100 %.
* D (MRR 100, cancelled Mar 20): Mar 1 campaigns 31; no April usage → not paying.
* E (trial from Apr 1, MRR 0): Apr 3 campaigns 5 and ab_testing 2 → no March baseline.
* F (MRR 50): Mar 5 automations 31 (1/day); Apr 10 automations 14 (14/30) → drop 53.3 %.

DAU: Mar 1 = 2 (A, D), Mar 2 = 2 (B, C), Apr 3 = 3 (A, B, E). WAU: 2017-W09 (Feb 27 – Mar 5)
= 5, W14 = 3, W15 = 1. MAU: March 5, April 4. Uses: March 465, April 111.
Adoption March: campaigns 3/5, templates 1/5, automations 1/5; April: campaigns 3/4,
ab_testing 1/4, automations 1/4. Churn risk April: C, A, F (3); May (running on the
clock's May 15, its 14 days before): A, B, F have no May usage → 3.
ab_testing launch (first use Apr 3): day 0 = 1/3 (E of A, B, E), day 7 (Apr 10) = 1/4.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import defaultdict
from collections.abc import Iterator
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pulse_ingest.domain.generator import generate_dataset
from pulse_ingest.domain.usage_gen import LAUNCH_FEATURE, launch_day
from pulse_kpi.app import KpiComponent, SilentBus
from pulse_kpi.cli import app as kpi_cli
from pulse_kpi.domain.usage import (
    MrrChange,
    MrrLookup,
    UsageLedger,
    UsageRow,
    churn_risks,
    launch_curve,
    usage_drop,
    usage_range,
)
from pulse_kpi.main import build
from pulse_kpi.settings import SERVICE, KpiSettings
from pulse_kpi.storage import (
    SUBSCRIPTION_COLUMNS,
    KpiStorage,
    subscription_rows,
    usage_processor,
)
from pulse_shared import access, kpi_catalog
from pulse_shared.bus import make_broker
from pulse_shared.events import Grain, ProductUsage, Subscription, SubscriptionEventType
from pulse_shared.periods import period_of, periods_between
from pulse_shared.settings import common_settings
from pulse_shared.store import Store

Y = 2017
ROOT = Path(__file__).resolve().parents[2]
CLOCK = dt.datetime(Y, 5, 15, 12, tzinfo=dt.UTC)


def acct(name: str) -> str:
    return f"pu{Y}-{name}"


def day(m: int, d: int) -> dt.date:
    return dt.date(Y, m, d)


def subscriptions() -> list[Subscription]:
    def sub(n: int, name: str, when: dt.date, kind: SubscriptionEventType, mrr: int) -> Subscription:
        return Subscription(
            event_id=f"pu{Y}-sub-{n}", occurred_at=dt.datetime.combine(
                when, dt.time(9), tzinfo=dt.UTC), account_id=acct(name), event_type=kind,
            mrr=Decimal(mrr), plan="growth")

    started = SubscriptionEventType.SUBSCRIPTION_STARTED
    return [
        sub(1, "A", day(2, 1), started, 100), sub(2, "B", day(2, 1), started, 200),
        sub(3, "C", day(2, 1), started, 300), sub(4, "D", day(2, 1), started, 100),
        sub(5, "D", day(3, 20), SubscriptionEventType.SUBSCRIPTION_CANCELED, 0),
        sub(6, "E", day(4, 1), SubscriptionEventType.TRIAL_STARTED, 0),
        sub(7, "F", day(2, 1), started, 50),
    ]


USES = [  # account, feature, day, count
    ("A", "campaigns", day(3, 1), 310), ("A", "campaigns", day(4, 3), 60),
    ("B", "campaigns", day(3, 2), 62), ("B", "campaigns", day(4, 3), 20),
    ("B", "campaigns", day(4, 3), 10),
    ("C", "templates", day(3, 2), 31), ("D", "campaigns", day(3, 1), 31),
    ("E", "campaigns", day(4, 3), 5), ("E", "ab_testing", day(4, 3), 2),
    ("F", "automations", day(3, 5), 31), ("F", "automations", day(4, 10), 14),
]


def usage_events() -> list[ProductUsage]:
    return [ProductUsage(event_id=f"pu{Y}-u{i}", account_id=acct(a), feature=f, day=d, count=n)
            for i, (a, f, d, n) in enumerate(USES)]


def ledger() -> UsageLedger:
    return UsageLedger(UsageRow(e.day, e.account_id, e.feature, e.count) for e in usage_events())


def mrr_lookup() -> MrrLookup:
    return MrrLookup(MrrChange(s.account_id, s.occurred_at, s.mrr) for s in subscriptions())


# ------------------------------------------------------------------ pure definitions
def test_churn_risk_list_compares_usage_per_day_and_counts_paying_accounts_only() -> None:
    april = period_of(day(4, 1), Grain.MONTH)
    risks = churn_risks(ledger(), mrr_lookup(), april, day(5, 15))
    assert [(r.account_id[-1], r.usage_before, r.usage_after, r.drop, r.mrr) for r in risks] == [
        ("C", 31, 0, Fraction(1), Decimal(300)),
        ("A", 310, 60, Fraction(4, 5), Decimal(100)),
        ("F", 31, 14, 1 - Fraction(14, 30), Decimal(50)),
    ]
    assert [r.account_id[-1] for r in churn_risks(ledger(), mrr_lookup(), april, day(5, 15),
                                                  0.9)] == ["C"]
    # The running month: its days before "today" (the 14 days of May before May 15).
    may = churn_risks(ledger(), mrr_lookup(), period_of(day(5, 1), Grain.MONTH), day(5, 15))
    assert sorted((r.account_id[-1], r.days_after) for r in may) == [
        ("A", 14), ("B", 14), ("F", 14)]
    assert usage_drop(0, 31, 5, 30) is None  # no baseline, no drop
    assert usage_drop(31, 31, 15, 30) == Fraction(1, 2)


def test_launch_curve_and_usage_range() -> None:
    curve = launch_curve(ledger(), "ab_testing", day(4, 3), 8, day(5, 14))
    assert [(p.days_since_release, p.adopters, p.active_accounts) for p in (curve[0], curve[7])
            ] == [(0, 1, 3), (7, 1, 4)]
    assert curve[0].adoption == pytest.approx(1 / 3) and curve[7].adoption == 0.25
    early = launch_curve(ledger(), "ab_testing", day(4, 1), 3, day(5, 14))
    assert [p.adoption for p in early] == [None, None, pytest.approx(1 / 3)]
    # A day in April: its quarter (Q2) and March (the baseline of April's churn risk).
    assert usage_range([day(4, 3)], day(5, 15)) == (day(3, 1), day(7, 1))


def test_catalog_family_and_access() -> None:
    names = kpi_catalog.USAGE_KPIS
    assert set(names) == {"active_accounts_daily", "active_accounts_weekly",
                          "active_accounts_monthly", "usage_events", "feature_adoption_rate",
                          "churn_risk_accounts"}
    assert {kpi_catalog.BY_NAME[n].family for n in names} == {kpi_catalog.Family.PRODUCT}
    assert kpi_catalog.BY_NAME["active_accounts_daily"].grains == (Grain.DAY,)
    assert kpi_catalog.BY_NAME["churn_risk_accounts"].grains == (Grain.MONTH,)
    assert kpi_catalog.BY_NAME["feature_adoption_rate"].dimensions == ("feature",)
    assert "feature" in access.ALL_DIMENSIONS
    assert "product_usage" in access.BUSINESS_TABLES
    assert "product_usage" in access.SCOPES[access.Role.CX].tables
    assert access.kpi_visible(access.Role.CMO, "churn_risk_accounts")
    committed = (ROOT / "docs" / "asyncapi" / "kpi-catalog.md").read_text()
    for name in names:
        assert f"`{name}`" in committed


# ------------------------------------------------------------------ consumer → KPIs, both backends
def component(store: Store) -> KpiComponent:
    kpi = build(store, SilentBus(make_broker(None), SERVICE),
                KpiSettings(close_enabled=False, snapshot_min_interval_s=0))
    kpi.clock = lambda: CLOCK
    kpi.mrr_cap = dt.date(Y, 12, 31)  # other tests' later subscriptions stay out of 2017
    return kpi


async def load(store: Store) -> KpiComponent:
    """The ledger as the subscription and usage consumers store it, with their follow-ups."""
    kpi = component(store)
    subs = subscriptions()
    store.insert("subscriptions", subscription_rows(subs), list(SUBSCRIPTION_COLUMNS))
    await kpi.after_subscriptions(subs)
    events = usage_events()
    for table_rows in usage_processor(events + events[:3]):  # with a redelivery
        store.insert(table_rows.table, table_rows.rows, list(table_rows.columns))
    await kpi.after_usage(events)
    return kpi


EXPECTED: dict[tuple[str, str, str, str], float | None] = {
    ("active_accounts_daily", "all", "", f"{Y}-03-01"): 2.0,
    ("active_accounts_daily", "all", "", f"{Y}-03-02"): 2.0,
    ("active_accounts_daily", "all", "", f"{Y}-04-03"): 3.0,
    # A billing day before any usage: no usage data yet is not zero usage.
    ("active_accounts_daily", "all", "", f"{Y}-02-01"): None,
    ("active_accounts_monthly", "all", "", f"{Y}-02"): None,
    ("active_accounts_weekly", "all", "", f"{Y}-W09"): 5.0,
    ("active_accounts_weekly", "all", "", f"{Y}-W14"): 3.0,
    ("active_accounts_weekly", "all", "", f"{Y}-W15"): 1.0,
    ("active_accounts_monthly", "all", "", f"{Y}-03"): 5.0,
    ("active_accounts_monthly", "all", "", f"{Y}-04"): 4.0,
    ("usage_events", "all", "", f"{Y}-03"): 465.0,
    ("usage_events", "all", "", f"{Y}-04"): 111.0,
    ("usage_events", "all", "", f"{Y}-Q1"): 465.0,
    ("usage_events", "all", "", f"{Y}-Q2"): 111.0,
    ("usage_events", "all", "", f"{Y}-04-03"): 97.0,
    ("usage_events", "feature", "campaigns", f"{Y}-03"): 403.0,
    ("usage_events", "feature", "campaigns", f"{Y}-04"): 95.0,
    ("feature_adoption_rate", "feature", "campaigns", f"{Y}-03"): 0.6,
    ("feature_adoption_rate", "feature", "templates", f"{Y}-03"): 0.2,
    ("feature_adoption_rate", "feature", "automations", f"{Y}-03"): 0.2,
    ("feature_adoption_rate", "feature", "ab_testing", f"{Y}-03"): 0.0,  # not used yet
    ("feature_adoption_rate", "feature", "campaigns", f"{Y}-04"): 0.75,
    ("feature_adoption_rate", "feature", "ab_testing", f"{Y}-04"): 0.25,
    ("feature_adoption_rate", "feature", "automations", f"{Y}-04"): 0.25,
    ("feature_adoption_rate", "feature", "ab_testing", f"{Y}-W14"): pytest.approx(1 / 3),
    ("churn_risk_accounts", "all", "", f"{Y}-03"): 0.0,  # no February usage: no baseline
    ("churn_risk_accounts", "all", "", f"{Y}-04"): 3.0,
    ("churn_risk_accounts", "all", "", f"{Y}-05"): 3.0,
}


def stored(store: Store) -> dict[tuple[str, str, str, str], float | None]:
    rows = KpiStorage(store).kpi_values(start=dt.date(Y, 1, 1), end=dt.date(Y + 1, 1, 1),
                                        kpis=list(kpi_catalog.USAGE_KPIS))
    return {(r["kpi"], r["dimension"], r["dimension_value"], r["period"]): r["value"]
            for r in rows}


class TestUsageKpisOnBothBackends:
    """The usage consumer's processor and sink → its recompute (totals and features), on
    embedded chDB and the real ClickHouse server."""

    @pytest.fixture
    def store(self, any_store: Store) -> Store:
        return any_store

    async def test_active_accounts_adoption_and_churn_risk(self, store: Store) -> None:
        await load(store)
        got = stored(store)
        for key, value in EXPECTED.items():
            assert got.get(key) == value, (key, got.get(key))
        # Each KPI only at its grains and dimensions.
        assert not [k for k in got if k[0] == "active_accounts_daily" and "-W" in k[3]]
        assert not [k for k in got if k[0] == "feature_adoption_rate" and k[1] == "all"]
        assert not [k for k in got if k[0] == "churn_risk_accounts" and k[3].count("-") != 1]


# ------------------------------------------------------------------ CLI (embedded store)
@pytest.fixture
def cli_env(embedded_data_dir: Path, embedded_store: Store,
            monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("PULSE_DATA_DIR", str(embedded_data_dir))
    monkeypatch.delenv("PULSE_CLICKHOUSE_URL", raising=False)
    common_settings.cache_clear()
    yield
    common_settings.cache_clear()


@pytest.fixture
async def loaded(cli_env: None, embedded_store: Store) -> None:
    await load(embedded_store)


def run(*args: str) -> str:
    as_of = [] if args[0] == "adoption" else ["--as-of", f"{Y}-05-15"]  # adoption: no "today"
    result = CliRunner().invoke(kpi_cli, [*args, *as_of])
    assert result.exit_code == 0, result.output
    return result.output


def test_churn_risk_cli_csv_json_and_file(loaded: None, tmp_path: Path) -> None:
    csv = run("churn-risk", "--month", f"{Y}-04", "--format", "csv").strip().splitlines()
    assert csv == [
        "account_id,month,usage_before,usage_after,drop,mrr",
        f"{acct('C')},{Y}-04,31,0,1.0000,300.00",
        f"{acct('A')},{Y}-04,310,60,0.8000,100.00",
        f"{acct('F')},{Y}-04,31,14,0.5333,50.00",
    ]
    rows = json.loads(run("churn-risk", "--month", f"{Y}-04", "--drop", "0.9",
                          "--format", "json"))
    assert [(r["account_id"], r["drop"]) for r in rows] == [(acct("C"), 1.0)]
    out = tmp_path / "risk.csv"
    run("churn-risk", "--month", f"{Y}-04", "--output", str(out))
    assert out.read_text().splitlines()[0] == "account_id,month,usage_before,usage_after,drop,mrr"
    table = run("churn-risk", "--month", f"{Y}-04")
    assert acct("A") in table and "0.8000" in table


def test_usage_adoption_and_launch_cli(loaded: None) -> None:
    monthly = run("usage", "--from", f"{Y}-03", "--to", f"{Y}-04", "--format", "csv")
    assert monthly.strip().splitlines() == [
        "period,active_accounts,avg_daily_active,usage_events",
        f"{Y}-03,5,0.16,465",  # 5 account-days over 31 days
        f"{Y}-04,4,0.13,111",  # 4 account-days over 30 days
    ]
    weekly = json.loads(run("usage", "--grain", "week", "--from", f"{Y}-W09", "--to",
                            f"{Y}-W09", "--format", "json"))
    assert weekly == [{"period": f"{Y}-W09", "active_accounts": 5,
                       "avg_daily_active": 0.71, "usage_events": 465}]
    adoption = run("adoption", "--feature", "campaigns", "--from", f"{Y}-03", "--to",
                   f"{Y}-04", "--format", "csv")
    assert adoption.strip().splitlines() == [
        "period,feature,adopters,active_accounts,adoption_rate",
        f"{Y}-03,campaigns,3,5,0.6000", f"{Y}-04,campaigns,3,4,0.7500",
    ]
    launch = json.loads(run("launch", "ab_testing", "--released", f"{Y}-04-03", "--days", "8",
                            "--format", "json"))
    assert [(p["days_since_release"], p["adopters"], p["active_accounts"], p["adoption"])
            for p in (launch[0], launch[-1])] == [(0, 1, 3, 0.3333), (7, 1, 4, 0.25)]


@pytest.mark.parametrize(("args", "field"), [
    (["churn-risk", "--month", f"{Y}-13"], "--month"),
    (["churn-risk", "--drop", "1.5"], "--drop"),
    (["adoption", "--feature", "no_such_feature"], "--feature"),
    (["launch", "no_such_feature"], "FEATURE"),
    (["launch", "ab_testing", "--released", "April"], "--released"),
    (["usage", "--from", f"{Y}-05", "--to", f"{Y}-03"], "--to"),
])
def test_user_errors_name_the_field(cli_env: None, args: list[str], field: str) -> None:
    from pulse_cli.main import app as pulse

    result = CliRunner().invoke(pulse, ["kpi", *args])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and field in lines[0], result.output


# ------------------------------------------------------------------ demo data coherence
def test_generated_usage_drops_before_churn_and_a_feature_launches_mid_window() -> None:
    end, days = dt.date(2026, 6, 30), 240
    data = generate_dataset(seed=7, days=days, accounts=400, end=end, product_usage=True)
    assert generate_dataset(seed=7, days=days, accounts=400, end=end).usage == []
    start = end - dt.timedelta(days=days - 1)
    usage = UsageLedger(UsageRow(e.day, e.account_id, e.feature, e.count) for e in data.usage)
    mrr = MrrLookup(MrrChange(s.account_id, s.occurred_at, s.mrr) for s in data.subscriptions)
    cancelled: dict[str, list[dt.date]] = defaultdict(list)
    last: dict[str, Decimal] = {}
    for s in sorted(data.subscriptions, key=lambda s: (s.occurred_at, s.event_id)):
        if last.get(s.account_id, Decimal(0)) > 0 and s.mrr == 0:
            cancelled[s.account_id].append(s.occurred_at.date())
        last[s.account_id] = s.mrr
    flagged, others = [0, 0], [0, 0]  # [accounts, of which churned within 2 months]
    for month in periods_between(start, end - dt.timedelta(days=62), Grain.MONTH)[1:]:
        at_risk = {r.account_id for r in churn_risks(usage, mrr, month, end)}
        for account in last:
            if mrr.at_start_of(account, month.end) <= 0:
                continue
            churned = any(month.end <= c < month.end + dt.timedelta(days=62)
                          for c in cancelled[account])
            group = flagged if account in at_risk else others
            group[0] += 1
            group[1] += churned
    assert flagged[0] >= 5, flagged
    assert flagged[1] / flagged[0] > 0.5 > 5 * others[1] / others[0], (flagged, others)
    # The launched feature: nobody before its release, then a rising adoption curve.
    released = launch_day(start, end)
    assert usage.first_day(LAUNCH_FEATURE) is not None
    assert usage.first_day(LAUNCH_FEATURE) >= released  # type: ignore[operator]
    curve = launch_curve(usage, LAUNCH_FEATURE, released, 60, end)
    shares = [p.adoption or 0.0 for p in curve]
    assert shares[5] < shares[20] < shares[59] and 0.3 < shares[59] < 0.8, shares[::10]
