"""Accounts and segments (issue 17): KPI breakdowns by the account's profile.

Hand-checkable ledger in 2021 (a year no other test writes; the stores are shared):

    account  profile(s)                                   billing
    A        Jan 1 SMB/basic/emea; Feb 20 Mid-Market/pro  Feb 5 start 100; Feb 20 upgrade 300
    B        Jan 15 Enterprise/enterprise/na              Feb 10 start 1000; Mar 15 churn
    C        none                                         Feb 12 start 50 (plan starter)
    D        Jan 1 smb/basic — ingested LATE, after its   Mar 3 start 80
             billing (first computed as unknown)
    E        Jan 1 smb/basic                              Mar 5 trial; Mar 20 start 60

February by segment: smb new 100 (A's start) and MRR 0 at the end (A moved to mid-market
on Feb 20 with its 100: a transfer, not churn); mid_market expansion 200, MRR 300, ARPA
300; enterprise new 1000; unknown new 50 (C). March: enterprise churn −1000, logo churn
1/1, NRR 0; smb 2 new customers (D once its profile arrived, E) for 180 − 40 = 140, ARPA
70, one trial converted; unknown's new MRR back to 0 after D's late profile. Region emea
keeps A throughout (no transfer): February new 100 + expansion 200, MRR 300.

Other tests' accounts (earlier years, no profile) are in ``unknown``'s MRR: this file
checks unknown's movements only, which are 2021's.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pulse_attribution.storage import TOUCHPOINT_COLUMNS, touchpoint_row
from pulse_cli.main import app as pulse_app
from pulse_ingest.service import IngestService
from pulse_kpi.app import KpiComponent, SilentBus
from pulse_kpi.domain.accounts import (
    UNKNOWN,
    AccountFacts,
    AccountMove,
    ProfileBook,
    ProfileRow,
    profile_as_of,
)
from pulse_kpi.domain.segments import member_series
from pulse_kpi.main import build
from pulse_kpi.settings import SERVICE, KpiSettings
from pulse_kpi.storage import (
    SUBSCRIPTION_COLUMNS,
    KpiStorage,
    account_processor,
    subscription_rows,
)
from pulse_shared import access, kpi_catalog
from pulse_shared.bus import make_broker
from pulse_shared.cohorts import CohortBy, LedgerEvent, cohort_retention
from pulse_shared.events import (
    AccountProfile,
    Channel,
    Segment,
    Subscription,
    Touchpoint,
    TouchType,
)
from pulse_shared.settings import common_settings
from pulse_shared.store import Store
from pulse_shared.topics import ACCOUNTS

Y = 2021
P = f"seg{Y}"  # account and event ids of this file
AS_OF = dt.date(Y, 6, 15)


def at(m: int, d: int) -> dt.datetime:
    return dt.datetime(Y, m, d, 12, tzinfo=dt.UTC)


def sub(eid: str, account: str, when: dt.datetime, kind: str, mrr: int,
        plan: str = "") -> Subscription:
    return Subscription(event_id=f"{P}-{eid}", occurred_at=when, account_id=f"{P}-{account}",
                        event_type=kind, mrr=Decimal(mrr), plan=plan)


SUBSCRIPTIONS = [
    sub("a1", "A", at(2, 5), "subscription_started", 100, "basic"),
    sub("a2", "A", at(2, 20), "subscription_upgraded", 300, "pro"),
    sub("b1", "B", at(2, 10), "subscription_started", 1000, "enterprise"),
    sub("b2", "B", at(3, 15), "subscription_canceled", 0, "enterprise"),
    sub("c1", "C", at(2, 12), "subscription_started", 50, "starter"),
    sub("d1", "D", at(3, 3), "subscription_started", 80, "basic"),
    sub("e1", "E", at(3, 5), "trial_started", 0, "basic"),
    sub("e2", "E", at(3, 20), "subscription_started", 60, "basic"),
]


def profile(account: str, day: dt.date, segment: str, plan: str, region: str,
            industry: str = "retail", band: str = "11-50") -> dict[str, str]:
    """One row as a CRM export has it (segments spelled the CRM's way)."""
    return {"account_id": f"{P}-{account}", "effective_from": day.isoformat(),
            "segment": segment, "plan": plan, "region": region, "industry": industry,
            "employee_band": band}


PROFILES = [
    profile("A", dt.date(Y, 1, 1), "SMB", "basic", "emea"),
    profile("A", dt.date(Y, 2, 20), "Mid-Market", "pro", "emea"),
    profile("B", dt.date(Y, 1, 15), "Enterprise", "enterprise", "na", "finance", "1000+"),
    profile("E", dt.date(Y, 1, 1), "smb", "basic", "na", "", ""),
]
LATE_PROFILE = profile("D", dt.date(Y, 1, 1), "small business", "basic", "apac")


class RecordingBus:
    def __init__(self) -> None:
        self.published: dict[str, list[AccountProfile]] = {}

    async def publish(self, topic: object, events: list[AccountProfile]) -> None:
        self.published.setdefault(getattr(topic, "name", ""), []).extend(events)


async def ingest_profiles(rows: list[dict[str, str]]) -> list[AccountProfile]:
    """Through the ingest service (kind accounts), as the API and CSV import do."""
    from pulse_ingest.settings import IngestSettings

    bus = RecordingBus()
    service = IngestService(bus, IngestSettings(pii_salt="test-salt-accounts-0123456789"))  # type: ignore[arg-type]
    result = await service.ingest("accounts", rows, "test")
    assert (result.accepted, result.rejected_rows) == (len(rows), 0), result.rejected
    return bus.published[ACCOUNTS.name]


def component(store: Store) -> KpiComponent:
    kpi = build(store, SilentBus(make_broker(None), SERVICE),
                KpiSettings(close_enabled=False, snapshot_min_interval_s=0))
    kpi.clock = lambda: dt.datetime(Y, 6, 15, 12, tzinfo=dt.UTC)
    kpi.mrr_cap = dt.date(Y, 12, 31)  # other tests' later subscriptions stay out of 2021
    return kpi


def stored(store: Store) -> dict[tuple[str, str, str, str], float | None]:
    rows = KpiStorage(store).kpi_values(start=dt.date(Y, 1, 1), end=dt.date(Y + 1, 1, 1))
    return {(r["period"], r["dimension"], r["dimension_value"], r["kpi"]): r["value"]
            for r in rows if r["dimension"] in kpi_catalog.ACCOUNT_DIMS}


FEB, MAR, Q1, W07 = f"{Y}-02", f"{Y}-03", f"{Y}-Q1", f"{Y}-W07"
EXPECTED: dict[tuple[str, str, str, str], float | None] = {
    # February: A's start in smb, its upgrade (and its MRR) in mid_market from Feb 20
    (FEB, "segment", "smb", "mrr_new"): 100.0,
    (FEB, "segment", "smb", "new_customers"): 1.0,
    (FEB, "segment", "smb", "mrr"): 0.0,
    (FEB, "segment", "smb", "paying_accounts"): 0.0,
    (FEB, "segment", "smb", "arpa"): None,
    (FEB, "segment", "mid_market", "mrr_new"): 0.0,
    (FEB, "segment", "mid_market", "mrr_expansion"): 200.0,
    (FEB, "segment", "mid_market", "mrr"): 300.0,
    (FEB, "segment", "mid_market", "arpa"): 300.0,
    (FEB, "segment", "mid_market", "new_customers"): 0.0,
    (FEB, "segment", "enterprise", "mrr_new"): 1000.0,
    (FEB, "segment", "enterprise", "mrr"): 1000.0,
    (FEB, "segment", UNKNOWN, "mrr_new"): 50.0,
    (FEB, "segment", UNKNOWN, "new_customers"): 1.0,
    (FEB, "plan", "basic", "mrr_new"): 100.0,
    (FEB, "plan", "pro", "mrr"): 300.0,
    (FEB, "plan", "pro", "mrr_expansion"): 200.0,
    (FEB, "region", "emea", "mrr_new"): 100.0,
    (FEB, "region", "emea", "mrr_expansion"): 200.0,
    (FEB, "region", "emea", "mrr"): 300.0,
    (FEB, "industry", "finance", "mrr"): 1000.0,
    (FEB, "employee_band", "1000+", "paying_accounts"): 1.0,
    # March
    (MAR, "segment", "enterprise", "mrr_churn"): -1000.0,
    (MAR, "segment", "enterprise", "mrr"): 0.0,
    (MAR, "segment", "enterprise", "logo_churn_rate"): 1.0,
    (MAR, "segment", "enterprise", "gross_mrr_churn_rate"): 1.0,
    (MAR, "segment", "enterprise", "nrr"): 0.0,
    (MAR, "segment", "smb", "mrr_new"): 140.0,
    (MAR, "segment", "smb", "new_customers"): 2.0,
    (MAR, "segment", "smb", "mrr"): 140.0,
    (MAR, "segment", "smb", "arpa"): 70.0,
    (MAR, "segment", "smb", "logo_churn_rate"): None,  # nobody paying on Mar 1
    (MAR, "segment", "smb", "trials_started"): 1.0,
    (MAR, "segment", "smb", "trials_converted"): 1.0,
    (MAR, "segment", "smb", "trial_to_paid_rate"): 1.0,
    (MAR, "segment", "mid_market", "mrr"): 300.0,
    (MAR, "segment", "mid_market", "nrr"): 1.0,
    (MAR, "segment", UNKNOWN, "mrr_new"): 0.0,  # D left unknown when its profile came
    (MAR, "segment", UNKNOWN, "new_customers"): 0.0,
    (MAR, "region", "apac", "mrr_new"): 80.0,
    (MAR, "industry", UNKNOWN, "trials_started"): 1.0,  # E's profile has no industry
    # the quarter and a week
    (Q1, "segment", "smb", "mrr_new"): 240.0,
    (Q1, "segment", "smb", "new_customers"): 3.0,
    (Q1, "segment", "mid_market", "mrr_expansion"): 200.0,
    (Q1, "segment", "enterprise", "mrr_new"): 1000.0,
    (Q1, "segment", "enterprise", "mrr_churn"): -1000.0,
    (W07, "segment", "mid_market", "mrr_expansion"): 200.0,
    (W07, "segment", "mid_market", "mrr"): 300.0,
}


# ------------------------------------------------------------------ pure definitions
def test_segments_are_normalised_from_common_spellings() -> None:
    for text, segment in [("SMB", Segment.SMB), ("Small Business", Segment.SMB),
                          ("Mid-Market", Segment.MID_MARKET), ("mid market", Segment.MID_MARKET),
                          ("MidMarket", Segment.MID_MARKET), ("Enterprise", Segment.ENTERPRISE),
                          ("ENT", Segment.ENTERPRISE)]:
        made = AccountProfile(event_id="x", account_id="a", effective_from=dt.date(2020, 1, 1),
                              segment=text)  # type: ignore[arg-type]
        assert made.segment is segment, text
    with pytest.raises(ValueError, match="segment"):
        AccountProfile(event_id="x", account_id="a", effective_from=dt.date(2020, 1, 1),
                       segment="giant")  # type: ignore[arg-type]


def test_profile_as_of_a_day() -> None:
    history = [ProfileRow("a", dt.date(2020, 1, 1), segment="smb"),
               ProfileRow("a", dt.date(2020, 3, 1), segment="mid_market")]
    assert profile_as_of(history, dt.date(2019, 12, 31)) is None
    assert profile_as_of(history, dt.date(2020, 2, 29)) == history[0]
    assert profile_as_of(history, dt.date(2020, 3, 1)) == history[1]
    book = ProfileBook(history)
    assert book.member("a", dt.date(2019, 6, 1), "segment") == UNKNOWN
    assert book.member("a", dt.date(2020, 3, 2), "segment") == "mid_market"
    assert book.member("a", dt.date(2020, 3, 2), "region") == UNKNOWN  # empty value
    assert book.member("nobody", dt.date(2020, 3, 2), "segment") == UNKNOWN


def test_a_profile_change_transfers_mrr_between_members() -> None:
    """start + net new + transfers = end for every member (A of the ledger above)."""
    facts = AccountFacts(
        dt.date(2020, 2, 1), dt.date(2020, 4, 1), opening={"a": Decimal(100)},
        moves=[AccountMove("a", dt.date(2020, 3, 10), "expansion", Decimal(50), 0)],
        profiles=[ProfileRow("a", dt.date(2020, 1, 1), segment="smb"),
                  ProfileRow("a", dt.date(2020, 3, 10), segment="enterprise")],
    )
    series = member_series(facts, ProfileBook(facts.profiles), "segment")
    smb, ent = series["smb"], series["enterprise"]
    assert smb.mrr_at(dt.date(2020, 3, 10)) == 100 and smb.mrr_at(dt.date(2020, 3, 11)) == 0
    assert ent.mrr_at(dt.date(2020, 3, 11)) == 150 and ent.paying_at(dt.date(2020, 4, 1)) == 1
    assert ent.movement("expansion", dt.date(2020, 3, 1), dt.date(2020, 4, 1)) == 50
    assert smb.movement("churn", dt.date(2020, 3, 1), dt.date(2020, 4, 1)) == 0


def test_catalog_lists_the_account_dimensions_where_they_make_sense() -> None:
    for name in ("mrr", "mrr_new", "mrr_churn", "arpa", "paying_accounts", "new_customers",
                 "logo_churn_rate", "trials_started", "trial_to_paid_rate"):
        assert set(kpi_catalog.ACCOUNT_DIMS) <= set(kpi_catalog.BY_NAME[name].dimensions), name
    for name in ("spend", "cac", "leads", "roas", "martech_cost"):
        assert "segment" not in kpi_catalog.BY_NAME[name].dimensions, name
    assert set(kpi_catalog.ACCOUNT_DIMS) <= access.ALL_DIMENSIONS
    assert access.kpi_visible(access.Role.CX, "mrr", "segment")
    assert not access.kpi_visible(access.Role.CX, "mrr", "plan")
    assert "account_profiles" in access.SCOPES[access.Role.CX].tables


def test_cohorts_by_segment_and_plan_use_the_profile_at_the_first_paid_month() -> None:
    ledger = [LedgerEvent(s.event_id, s.account_id, s.occurred_at, s.mrr, s.plan)
              for s in SUBSCRIPTIONS]
    profiles = {
        f"{P}-A": [(dt.date(Y, 1, 1), {"segment": "smb", "plan": "basic"}),
                   (dt.date(Y, 2, 20), {"segment": "mid_market", "plan": "pro"})],
    }
    rows = cohort_retention(ledger, AS_OF, CohortBy.SEGMENT, profiles=profiles)
    assert {r.cohort for r in rows} == {"mid_market", UNKNOWN}
    by_plan = cohort_retention(ledger, AS_OF, CohortBy.PLAN, profiles=profiles)
    # A's profile on Feb 28; the others' billing plan (no profile)
    assert {r.cohort for r in by_plan} == {"pro", "enterprise", "starter", "basic"}


# ------------------------------------------------------------------ both backends
BY_SEGMENT_CSV = "\n".join([
    "cohort,months_since,accounts,logo_retention,mrr_retention",
    *(f"enterprise,{k},1,{v},{v}" for k, v in enumerate(["1.0000"] + ["0.0000"] * 3)),
    *(f"mid_market,{k},1,1.0000,1.0000" for k in range(4)),
    *(f"smb,{k},2,1.0000,1.0000" for k in range(3)),
    *(f"unknown,{k},1,1.0000,1.0000" for k in range(4)),
]) + "\n"
BY_PLAN_COHORTS = {"basic": 2, "enterprise": 1, "pro": 1, "starter": 1}


@pytest.fixture
def cli_store(any_store: Store, request: pytest.FixtureRequest,
              monkeypatch: pytest.MonkeyPatch) -> Iterator[Store]:
    """The CLI pointed at the test's store."""
    if any_store.backend == "server":
        monkeypatch.setenv("PULSE_CLICKHOUSE_URL", request.getfixturevalue("clickhouse_server").url)
    else:
        monkeypatch.setenv("PULSE_DATA_DIR", str(request.getfixturevalue("embedded_data_dir")))
        monkeypatch.delenv("PULSE_CLICKHOUSE_URL", raising=False)
    common_settings.cache_clear()
    yield any_store
    common_settings.cache_clear()


def pulse(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(pulse_app, list(args))
    return result.exit_code, result.stdout, result.stderr


class TestSegmentBreakdownsOnBothBackends:
    """Billing and profiles through the KPI consumers' processors and follow-ups, then the
    background breakdown pass, on embedded chDB and the real ClickHouse server; the CLI
    reads them back."""

    async def test_breakdowns_by_profile_with_a_mid_period_change_and_a_late_profile(
        self, cli_store: Store, tmp_path: Path
    ) -> None:
        store = cli_store
        store.insert("subscriptions", subscription_rows(SUBSCRIPTIONS),
                     list(SUBSCRIPTION_COLUMNS))
        kpi = component(store)
        await kpi.after_subscriptions(SUBSCRIPTIONS)
        profiles = await ingest_profiles(PROFILES)
        assert [p.segment for p in profiles] == [Segment.SMB, Segment.MID_MARKET,
                                                 Segment.ENTERPRISE, Segment.SMB]
        for table_rows in account_processor(profiles + profiles[:1]):  # a redelivery
            store.insert(table_rows.table, table_rows.rows, list(table_rows.columns))
        await kpi.after_accounts(profiles)
        await kpi.refresh_breakdowns()
        before = stored(store)
        assert before[(MAR, "segment", UNKNOWN, "mrr_new")] == 80.0  # D: no profile yet
        assert before[(MAR, "segment", "smb", "new_customers")] == 1.0

        late = await ingest_profiles([LATE_PROFILE])
        for table_rows in account_processor(late):
            store.insert(table_rows.table, table_rows.rows, list(table_rows.columns))
        await kpi.after_accounts(late)
        await kpi.refresh_breakdowns()
        got = stored(store)
        for key, value in EXPECTED.items():
            assert got.get(key, "missing") == value, (key, got.get(key, "missing"))

        # A correction (same event_id) moves D from apac to latam: apac, left without any
        # account, drops to 0 instead of keeping D's new MRR.
        corrected = await ingest_profiles([{**LATE_PROFILE, "region": "latam",
                                            "event_id": late[0].event_id}])
        for table_rows in account_processor(corrected):
            store.insert(table_rows.table, table_rows.rows, list(table_rows.columns))
        await kpi.after_accounts(corrected)
        await kpi.refresh_breakdowns()
        got = stored(store)
        assert got[(MAR, "region", "apac", "mrr_new")] == 0.0
        assert got[(MAR, "region", "latam", "mrr_new")] == 80.0
        assert got[(MAR, "segment", "smb", "mrr_new")] == 140.0
        assert not any(period == f"{Y}-02-05" for period, *_ in got)  # no day grain
        allowed = set(kpi_catalog.ACCOUNT_DIM_KPIS) | set(kpi_catalog.TRIAL_KPIS)
        assert {kpi_name for *_, kpi_name in got} <= allowed  # no spend, leads … by segment

        # pulse kpi show --by segment, every format and a file
        code, out, err = pulse("kpi", "show", "--by", "segment", "--from", FEB, "--to", MAR,
                               "--kpi", "mrr", "--format", "json")
        assert code == 0, err
        shown = {(r["period"], r["dimension_value"]): r["value"] for r in json.loads(out)}
        assert shown[(FEB, "mid_market")] == 300 and shown[(MAR, "enterprise")] == 0
        code, out, _ = pulse("kpi", "show", "--by", "plan", "--from", FEB, "--to", FEB,
                             "--kpi", "mrr_expansion", "--format", "csv")
        assert code == 0 and f"mrr_expansion,month,{FEB},{Y}-02-01,plan,pro,200,USD,true" in out
        target = tmp_path / "segments.csv"
        code, out, _ = pulse("kpi", "show", "--by", "region", "--from", FEB, "--to", FEB,
                             "--kpi", "mrr", "--output", str(target))
        assert (code, out) == (0, "") and "region,emea,300," in target.read_text()
        code, out, _ = pulse("kpi", "show", "--by", "segment", "--from", FEB, "--to", MAR,
                             "--kpi", "arpa")
        assert code == 0 and "mid_market" in out and "segment" in out  # the table
        code, out, err = pulse("kpi", "show", "--grain", "day", "--by", "segment")
        assert code == 2 and out == "" and len(err.strip().splitlines()) == 1
        assert "computed by week, month, quarter" in err

        # pulse kpi accounts: the profile in force on a day; A's acquisition channel is its
        # first touch (the CRM gave none), B has neither
        touch = Touchpoint(event_id=f"{P}-t1", occurred_at=at(1, 3), account_id=f"{P}-A",
                           contact_id="ab" * 32, channel=Channel.PAID_SEARCH,
                           touch_type=TouchType.AD_CLICK)
        store.insert("touchpoints", [touchpoint_row(touch)], list(TOUCHPOINT_COLUMNS))
        code, out, err = pulse("kpi", "accounts", "--as-of", f"{Y}-02-25", "--format", "json")
        assert code == 0, err
        listed = {r["account_id"]: r for r in json.loads(out) if r["account_id"].startswith(P)}
        assert set(listed) == {f"{P}-{a}" for a in "ABDE"}  # C has no profile
        assert (listed[f"{P}-A"]["segment"], listed[f"{P}-A"]["plan"]) == ("mid_market", "pro")
        assert listed[f"{P}-A"]["acquisition_channel"] == "paid_search"
        assert listed[f"{P}-B"]["acquisition_channel"] == ""
        code, out, _ = pulse("kpi", "accounts", "--as-of", f"{Y}-01-10", "--segment", "SMB",
                             "--format", "csv")
        assert code == 0 and f"{P}-A,smb,basic,emea" in out and f"{P}-B" not in out

        # pulse kpi cohorts --by segment / plan: the profile at the first paid month
        span = ("--from", f"{Y}-01", "--to", f"{Y}-12", "--as-of", AS_OF.isoformat())
        code, out, err = pulse("kpi", "cohorts", "--by", "segment", *span, "--format", "csv")
        assert (code, err) == (0, ""), err
        assert out == BY_SEGMENT_CSV
        code, out, _ = pulse("kpi", "cohorts", "--by", "plan", *span, "--format", "json")
        first_months = {r["cohort"]: r["accounts"] for r in json.loads(out)
                        if r["months_since"] == 0}
        assert first_months == BY_PLAN_COHORTS


def test_an_unknown_acquisition_channel_or_segment_is_a_row_error() -> None:
    import asyncio

    from pulse_ingest.settings import IngestSettings

    service = IngestService(RecordingBus(), IngestSettings(pii_salt="test-salt-accounts-0123456789"))  # type: ignore[arg-type]
    rows = [
        {**profile("X", dt.date(2020, 1, 1), "Enterprise", "pro", "emea"),
         "acquisition_channel": "LinkedIn Ads"},
        profile("Y", dt.date(2020, 1, 1), "giant", "pro", "emea"),
    ]
    result = asyncio.run(service.ingest("accounts", rows, "test"))
    assert result.accepted == 1
    assert [(e["index"], e["field"]) for e in result.rejected] == [(1, "segment")]
    assert Channel.PAID_SOCIAL  # LinkedIn Ads is an alias of paid_social


async def test_erasing_an_account_removes_its_profiles(embedded_store: Store) -> None:
    from pulse_shared.erasure import account_subject, erase

    account = f"{P}-erased"
    profiles = await ingest_profiles([
        {**profile("erased", dt.date(Y, 1, 1), "SMB", "basic", "emea")},
        {**profile("erased", dt.date(Y, 2, 1), "Enterprise", "enterprise", "emea")}])
    for table_rows in account_processor(profiles):
        embedded_store.insert(table_rows.table, table_rows.rows, list(table_rows.columns))
    result = erase(embedded_store, account_subject(account), "dpo@test", settle_s=0)
    assert result.row_counts["account_profiles"] == 2
    assert not [p for p in KpiStorage(embedded_store).account_profiles()
                if p.account_id == account]


async def test_the_kpi_consumer_stores_profiles_and_marks_the_account_breakdowns(
    embedded_store: Store,
) -> None:
    """Through the production router (in-memory broker): the accounts consumer writes
    account_profiles (a redelivery is harmless) and leaves the breakdowns by segment …
    to the background pass (marked in kpi_pending, kind segment: replayed after a crash)."""
    from pulse_cli.runtime import in_process_pipeline

    profiles = await ingest_profiles([profile("routed", dt.date(Y, 7, 1), "MM", "pro", "na")])
    async with in_process_pipeline(embedded_store) as pipeline:
        [kpi] = [c for c in pipeline.components if isinstance(c, KpiComponent)]
        # Its passes run on the wall clock: keep them in this file's year, or they would
        # overwrite later years' rows that other tests computed with their own clocks.
        kpi.mrr_cap = dt.date(Y, 12, 31)
        await pipeline.bus.publish(ACCOUNTS, profiles)
        await pipeline.bus.publish(ACCOUNTS, profiles)  # redelivered
    marked = embedded_store.query_value(
        "SELECT count() FROM kpi_pending FINAL WHERE kind = 'segment' AND day = {d:Date}",
        {"d": dt.date(Y, 7, 1)})
    assert marked and int(marked) >= 1
    stored_rows = [p for p in KpiStorage(embedded_store).account_profiles()
                   if p.account_id == f"{P}-routed"]
    assert [(p.segment, p.plan, p.effective_from) for p in stored_rows] == [
        ("mid_market", "pro", dt.date(Y, 7, 1))]


async def test_marked_account_breakdowns_are_replayed_after_a_crash(
    embedded_store: Store,
) -> None:
    crashed = component(embedded_store)
    await crashed._mark_breakdowns(segment_from=dt.date(Y, 8, 3))  # then no pass: a crash
    restarted = component(embedded_store)
    await restarted._replay_pending()
    assert restarted._dirty_dims.mrr_from is not None
    assert restarted._dirty_dims.mrr_from <= dt.date(Y, 8, 3)
    await restarted.refresh_breakdowns()  # done: nothing left for later pipelines to replay
    assert dt.date(Y, 8, 3) not in KpiStorage(embedded_store).pending_segment_days_since_done()


def _reference_member_series(
    accounts: AccountFacts, book: ProfileBook, dimension: str
) -> dict[str, tuple[Decimal, int, list[tuple[dt.date, str, Decimal, int]],
                     list[tuple[dt.date, Decimal, int]]]]:
    """The per-dimension walk the one-pass :func:`member_series_by_dim` replaced, written
    out naively: every account day by day, profile changes before that day's movements.
    Per member: opening MRR, paying accounts, movements, transfers."""
    out: dict[str, tuple[Decimal, int, list[tuple[dt.date, str, Decimal, int]],
                         list[tuple[dt.date, Decimal, int]]]] = {}

    def member(name: str) -> tuple[Decimal, int, list[tuple[dt.date, str, Decimal, int]],
                                   list[tuple[dt.date, Decimal, int]]]:
        return out.setdefault(name, (Decimal(0), 0, [], []))

    eve = accounts.start - dt.timedelta(days=1)
    accounts_seen = sorted(set(accounts.opening) | {m.account_id for m in accounts.moves})
    for account in accounts_seen:
        mrr = accounts.opening.get(account, Decimal(0))
        current = book.member(account, eve, dimension)
        if mrr:
            opening, paying, moves, transfers = member(current)
            out[current] = (opening + mrr, paying + int(mrr > 0), moves, transfers)
        day = accounts.start
        own = [m for m in accounts.moves if m.account_id == account]
        while day < accounts.end:
            now = book.member(account, day, dimension)
            if now != current and mrr > 0:
                member(current)[3].append((day, -mrr, -1))
                member(now)[3].append((day, mrr, 1))
            current = now
            for m in own:
                if m.day == day:
                    member(current)[2].append((m.day, m.kind, m.delta, m.paying_delta))
                    mrr += m.delta
            day += dt.timedelta(days=1)
    return out


@pytest.mark.parametrize("seed", range(6))
def test_one_pass_member_series_match_a_per_dimension_walk(seed: int) -> None:
    """Random ledgers (accounts with and without profiles, profile changes inside and
    before the range, accounts at 0, same-day changes and movements): every dimension's
    members, stocks at every day boundary and movement sums equal the naive walk's."""
    import random

    from pulse_kpi.domain.segments import member_series_by_dim
    from pulse_shared.kpi_catalog import ACCOUNT_DIMS

    rng = random.Random(seed)
    start, end = dt.date(2020, 2, 1), dt.date(2020, 3, 15)
    span = (end - start).days
    opening: dict[str, Decimal] = {}
    moves: list[AccountMove] = []
    profiles: list[ProfileRow] = []
    for n in range(60):
        account = f"acct{n}"
        mrr = Decimal(rng.choice([0, 0, 50, 100, 250])) if rng.random() < 0.6 else None
        if mrr is not None:
            opening[account] = mrr
        current = mrr or Decimal(0)
        for day in sorted(start + dt.timedelta(days=rng.randrange(span))
                          for _ in range(rng.randrange(4))):
            after = Decimal(rng.choice([0, 40, 100, 300]))
            if after == current:
                continue
            kind = ("new" if current == 0 else "churn" if after == 0
                    else "expansion" if after > current else "contraction")
            moves.append(AccountMove(account, day, kind, after - current,
                                     int(after > 0) - int(current > 0)))
            current = after
        for _ in range(rng.choice([0, 1, 1, 2, 3])):
            day = start + dt.timedelta(days=rng.randrange(-40, span + 5))
            profiles.append(ProfileRow(
                account, day, plan=rng.choice(["basic", "pro", ""]),
                segment=rng.choice(["smb", "enterprise", f"only{n}"]),  # (some members of one account)
                region=rng.choice(["emea", "na"]),
                industry=rng.choice(["retail", ""]), employee_band=rng.choice(["1-10", "11-50"]),
            ))
    facts = AccountFacts(start, end, opening=opening, moves=moves, profiles=profiles)
    book = ProfileBook(profiles)
    dims = list(ACCOUNT_DIMS)
    got = member_series_by_dim(facts, book, dims)
    days = [start + dt.timedelta(days=i) for i in range(span + 1)]
    for dim in dims:
        want = _reference_member_series(facts, book, dim)
        assert set(got[dim]) == set(want), dim
        assert member_series(facts, book, dim).keys() == got[dim].keys()
        for name, (opening_mrr, paying, member_moves, transfers) in want.items():
            series = got[dim][name]
            for day in days:
                mrr_then = opening_mrr + sum(
                    (d for (mday, _, d, _) in member_moves if mday < day), Decimal(0)
                ) + sum((t for (tday, t, _) in transfers if tday < day), Decimal(0))
                paying_then = paying + sum(p for (mday, _, _, p) in member_moves if mday < day) \
                    + sum(p for (tday, _, p) in transfers if tday < day)
                assert series.mrr_at(day) == mrr_then, (dim, name, day)
                assert series.paying_at(day) == paying_then, (dim, name, day)
            for kind in ("new", "expansion", "contraction", "churn", "reactivation"):
                assert series.movement(kind, start, end) == sum(
                    (d for (_, k, d, _) in member_moves if k == kind), Decimal(0)
                ), (dim, name, kind)
