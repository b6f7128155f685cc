"""Trial KPIs: trials_started, trials_converted, trial_expired, trials_running,
trial_to_paid_rate and days_to_convert — cohort style (by trial START period), with a
30-day conversion window, in total and by first-touch channel.

The ledger is hand-checkable and built relative to fixed days of a year no other test uses
(never today's date). Trials of March (window = start day + 30 days, inclusive):

====  ==================  =====================  ======================  ==============
acct  trial started       first paid             outcome as of Apr 25    first touch
====  ==================  =====================  ======================  ==============
A     Mar 1 10:00         Mar 15 10:00 (14 d)    converted               paid_search
B     Mar 5 12:00         Apr 4 00:00 (29.5 d)   converted (last day)    paid_search
C     Mar 10 00:00        Apr 20 (after Apr 9)   expired                 email
D     Mar 20 00:00        never                  expired                 (none) unknown
E     Mar 31 06:00        never                  running (until Apr 30)  paid_search
H     Mar 25, again Apr 10  never                expired (first trial)   (none) unknown
F     paid Feb 1, trial Mar 12                   not a trial (paid first) email
G     Apr 2 09:00         Apr 3 09:00 (1 d)      converted (April)       email
====  ==================  =====================  ======================  ==============

March as of Apr 25: started 6, converted 2, expired 3, running 1, rate 2/6, median days to
convert (14 + 29.5) / 2 = 21.75. After the daily close of Apr 30, E's window is over:
expired 4, running 0. April: G only (1, 1, 0, 0, rate 1, 1 day). B converts in April but
counts in March (cohort style).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from decimal import Decimal
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pulse_attribution.storage import TOUCHPOINT_COLUMNS, touchpoint_row
from pulse_ingest.domain.imports import map_export
from pulse_kpi.app import KpiComponent, SilentBus
from pulse_kpi.cli import app as kpi_cli
from pulse_kpi.cli import catalog_markdown
from pulse_kpi.domain.compute import (
    KpiValue,
    TrialOutcome,
    account_trials,
    compute,
    trial_outcome,
    trial_values,
    with_derived,
)
from pulse_kpi.domain.facts import AccountTrial, Facts, Scope
from pulse_kpi.domain.snapshots import to_snapshot
from pulse_kpi.main import build
from pulse_kpi.settings import SERVICE, KpiSettings
from pulse_kpi.storage import SUBSCRIPTION_COLUMNS, KpiStorage, subscription_rows
from pulse_shared import kpi_catalog
from pulse_shared.bus import make_broker
from pulse_shared.events import (
    Channel,
    Grain,
    Subscription,
    SubscriptionEventType,
    Touchpoint,
    TouchType,
)
from pulse_shared.periods import GRAINS, Period, period_of
from pulse_shared.store import Store

DATA = Path(__file__).resolve().parents[1] / "data"
ROOT = Path(__file__).resolve().parents[2]
TRIAL_KPIS = ("trials_started", "trials_converted", "trial_expired", "trials_running",
              "trial_to_paid_rate", "days_to_convert")
T = SubscriptionEventType
#: Streaming test year and recompute test year: years no other test writes (the stores are
#: shared by the session, and kpi_values keeps the row with the latest computed_at).
Y_STREAM, Y_RECOMPUTE, Y_DOMAIN = 2018, 2022, 2001


def at(y: int, m: int, d: int, h: int = 0) -> dt.datetime:
    return dt.datetime(y, m, d, h, tzinfo=dt.UTC)


def ledger(y: int) -> tuple[list[Subscription], list[Touchpoint]]:
    """The module docstring's ledger in year ``y`` (ids unique per year)."""
    p = f"trial{y}"

    def sub(n: str, account: str, when: dt.datetime, kind: SubscriptionEventType,
            mrr: int = 0) -> Subscription:
        return Subscription(event_id=f"{p}-{n}", occurred_at=when, account_id=f"{p}-{account}",
                            event_type=kind, mrr=Decimal(mrr), plan="growth")

    subs = [
        sub("a1", "A", at(y, 3, 1, 10), T.TRIAL_STARTED),
        sub("a2", "A", at(y, 3, 15, 10), T.SUBSCRIPTION_STARTED, 100),
        sub("b1", "B", at(y, 3, 5, 12), T.TRIAL_STARTED),
        sub("b2", "B", at(y, 4, 4), T.SUBSCRIPTION_STARTED, 200),
        sub("c1", "C", at(y, 3, 10), T.TRIAL_STARTED),
        sub("c2", "C", at(y, 4, 20), T.SUBSCRIPTION_STARTED, 50),
        sub("d1", "D", at(y, 3, 20), T.TRIAL_STARTED),
        sub("e1", "E", at(y, 3, 31, 6), T.TRIAL_STARTED),
        sub("h1", "H", at(y, 3, 25), T.TRIAL_STARTED),
        sub("h2", "H", at(y, 4, 10), T.TRIAL_STARTED),
        sub("f1", "F", at(y, 2, 1), T.SUBSCRIPTION_STARTED, 80),
        sub("f2", "F", at(y, 3, 12), T.TRIAL_STARTED, 80),
        sub("g1", "G", at(y, 4, 2, 9), T.TRIAL_STARTED),
        sub("g2", "G", at(y, 4, 3, 9), T.SUBSCRIPTION_STARTED, 70),
    ]
    touches = [
        ("A", at(y, 2, 20), Channel.PAID_SEARCH), ("B", at(y, 2, 1), Channel.PAID_SEARCH),
        ("B", at(y, 3, 1), Channel.EMAIL),  # later touch: B stays paid_search (first touch)
        ("C", at(y, 3, 2), Channel.EMAIL), ("E", at(y, 3, 30), Channel.PAID_SEARCH),
        ("F", at(y, 1, 5), Channel.EMAIL), ("G", at(y, 3, 28), Channel.EMAIL),
    ]
    tps = [
        Touchpoint(event_id=f"{p}-t{i}", occurred_at=when, account_id=f"{p}-{account}",
                   contact_id=hashlib.sha256(account.encode()).hexdigest(), channel=channel,
                   touch_type=TouchType.AD_CLICK)
        for i, (account, when, channel) in enumerate(touches)
    ]
    return subs, tps


def first_touch(tps: list[Touchpoint]) -> dict[str, str]:
    first: dict[str, str] = {}
    for t in sorted(tps, key=lambda t: t.occurred_at):
        first.setdefault(t.account_id, str(t.channel))
    return first


def expected(y: int, matured: bool) -> dict[tuple[str, str, str, str], float | None]:
    """KPI values by (kpi, period, dimension, member): as of Apr 25 of ``y`` or, ``matured``,
    after the close of Apr 30 (E expired)."""

    def kpis(started: int, converted: int, expired: int, running: int, rate: float | None,
             days: float | None) -> dict[str, float | None]:
        return {"trials_started": started, "trials_converted": converted,
                "trial_expired": expired, "trials_running": running,
                "trial_to_paid_rate": rate, "days_to_convert": days}

    e_running = 0 if matured else 1
    march = kpis(6, 2, 4 - e_running, e_running, 0.333333333, 21.75)
    rows = {
        (f"{y}-03", "all", ""): march,
        (f"{y}-Q1", "all", ""): march,
        (f"{y}-04", "all", ""): kpis(1, 1, 0, 0, 1.0, 1.0),
        (f"{y}-Q2", "all", ""): kpis(1, 1, 0, 0, 1.0, 1.0),
        (f"{y}-03-05", "all", ""): kpis(1, 1, 0, 0, 1.0, 29.5),
        (f"{y}-03-04", "all", ""): kpis(0, 0, 0, 0, None, None),
        (f"{y}-03", "channel", "paid_search"): kpis(3, 2, 1 - e_running, e_running,
                                                    0.666666667, 21.75),
        (f"{y}-03", "channel", "email"): kpis(1, 0, 1, 0, 0.0, None),
        (f"{y}-03", "channel", "unknown"): kpis(2, 0, 2, 0, 0.0, None),
        (f"{y}-04", "channel", "email"): kpis(1, 1, 0, 0, 1.0, 1.0),
    }
    return {(kpi, period, dim, member): value
            for (period, dim, member), values in rows.items()
            for kpi, value in values.items()}


def wanted_year(y: int) -> dict[Grain, set[Period]]:
    days = [dt.date(y, 1, 1) + dt.timedelta(days=i) for i in range(181)]
    return {g: {period_of(d, g) for d in days} for g in GRAINS}


def domain_values(y: int, as_of: dt.date) -> dict[tuple[str, str, str, str], float | None]:
    subs, tps = ledger(y)
    trials = account_trials(subs, first_touch(tps))
    values = trial_values(trials, wanted_year(y), as_of)
    out: dict[tuple[str, str, str, str], float | None] = {}
    for (grain, period, dim, member), kpis in values.items():
        for kpi, value in with_derived(dict(kpis), grain, dim).items():
            out[(kpi, period.label, dim, member)] = value
    return out


# ------------------------------------------------------------------ pure domain
def test_outcome_window_is_start_day_plus_30_inclusive() -> None:
    start = at(Y_DOMAIN, 3, 5, 12)
    window_end = dt.date(Y_DOMAIN, 4, 4)

    def outcome(paid: dt.datetime | None, as_of: dt.date) -> TrialOutcome:
        return trial_outcome(AccountTrial("x", start, paid, "email"), as_of)

    assert outcome(at(Y_DOMAIN, 4, 4, 23), window_end) is TrialOutcome.CONVERTED  # last day
    assert outcome(at(Y_DOMAIN, 4, 5), dt.date(Y_DOMAIN, 5, 1)) is TrialOutcome.EXPIRED
    assert outcome(None, window_end) is TrialOutcome.RUNNING  # its last day is not over
    assert outcome(None, window_end + dt.timedelta(days=1)) is TrialOutcome.EXPIRED
    # A payment after as_of is not known yet on as_of.
    assert outcome(at(Y_DOMAIN, 3, 20), dt.date(Y_DOMAIN, 3, 19)) is TrialOutcome.RUNNING


def test_account_trials_first_trial_no_paid_before_and_channel() -> None:
    subs, tps = ledger(Y_DOMAIN)
    trials = {t.account_id.split("-")[1]: t for t in account_trials(subs, first_touch(tps))}
    assert sorted(trials) == ["A", "B", "C", "D", "E", "G", "H"]  # F paid before its trial
    assert trials["H"].started_at == at(Y_DOMAIN, 3, 25)  # the first of its two trials
    assert trials["B"].channel == "paid_search" and trials["D"].channel == "unknown"
    assert trials["C"].paid_at == at(Y_DOMAIN, 4, 20) and trials["D"].paid_at is None


def test_trial_values_are_exact_by_start_period() -> None:
    got = domain_values(Y_DOMAIN, dt.date(Y_DOMAIN, 4, 25))
    for key, value in expected(Y_DOMAIN, matured=False).items():
        assert got[key] == value, key
    matured = domain_values(Y_DOMAIN, dt.date(Y_DOMAIN, 5, 1))
    for key, value in expected(Y_DOMAIN, matured=True).items():
        assert matured[key] == value, key
    # ISO weeks: A (Sat Mar 1) is in W09, B (Wed Mar 5) in W10.
    assert got[("trials_converted", f"{Y_DOMAIN}-W09", "all", "")] == 1
    assert got[("days_to_convert", f"{Y_DOMAIN}-W10", "all", "")] == 29.5


def test_as_of_an_earlier_day_sees_only_what_had_happened() -> None:
    got = domain_values(Y_DOMAIN, dt.date(Y_DOMAIN, 3, 20))
    march = {k[0]: v for k, v in got.items() if k[1:] == (f"{Y_DOMAIN}-03", "all", "")}
    # A paid Mar 15; B, C and D (started on as_of itself) run; E and H start later.
    assert march == {"trials_started": 4, "trials_converted": 1, "trial_expired": 0,
                     "trials_running": 3, "trial_to_paid_rate": 0.25, "days_to_convert": 14.0}


def test_compute_emits_totals_channels_and_the_derived_rate() -> None:
    subs, tps = ledger(Y_DOMAIN)
    facts = Facts(trials=account_trials(subs, first_touch(tps)))
    as_of = dt.date(Y_DOMAIN, 4, 25)
    totals = compute(facts, Scope(trial_days=frozenset({dt.date(Y_DOMAIN, 3, 10)}),
                                  dimensions=("all",)), as_of)
    by_key = {(v.kpi, v.period, v.dimension, v.dimension_value): v for v in totals}
    march = (f"{Y_DOMAIN}-03", "all", "")
    assert by_key[("trial_to_paid_rate", *march)].value == 0.333333333
    assert by_key[("trial_to_paid_rate", *march)].unit == "ratio"
    assert by_key[("days_to_convert", *march)].unit == "days"
    assert by_key[("trials_started", f"{Y_DOMAIN}-03-10", "all", "")].value == 1
    assert not any(v.dimension == "channel" for v in totals)
    # The breakdown pass: channels of the trials, plus a known member now without trials.
    known = frozenset({("month", dt.date(Y_DOMAIN, 3, 1), "channel", "display")})
    dims = compute(facts, Scope(trial_days=frozenset({dt.date(Y_DOMAIN, 3, 10)}),
                                dimensions=("channel", "campaign"), known_trial_members=known), as_of)
    channel = {(v.kpi, v.period, v.dimension_value): v.value for v in dims
               if v.kpi in TRIAL_KPIS}
    assert channel[("trials_started", f"{Y_DOMAIN}-03", "paid_search")] == 3
    assert channel[("trial_to_paid_rate", f"{Y_DOMAIN}-03", "paid_search")] == 0.666666667
    assert channel[("trials_started", f"{Y_DOMAIN}-03", "display")] == 0  # drops to 0
    assert channel[("trial_to_paid_rate", f"{Y_DOMAIN}-03", "display")] is None
    assert not any(v.dimension == "campaign" for v in dims if v.kpi in TRIAL_KPIS)


def test_trial_periods_are_complete_only_after_the_window() -> None:
    march = dt.date(Y_DOMAIN, 3, 1)

    def complete(kpi: str, today: dt.date, grain: Grain = Grain.MONTH) -> bool:
        value = KpiValue(kpi, grain, f"{Y_DOMAIN}-03", march, "all", "", 1.0, "count")
        return to_snapshot(value, dt.datetime.combine(today, dt.time(1), dt.UTC)).complete

    # March's last trials (Mar 31) are resolved once Apr 30 is over: final on May 1.
    assert complete("trials_started", dt.date(Y_DOMAIN, 4, 1))
    assert not complete("trials_converted", dt.date(Y_DOMAIN, 4, 30))
    assert complete("trials_converted", dt.date(Y_DOMAIN, 5, 1))
    assert not complete("trial_to_paid_rate", dt.date(Y_DOMAIN, 4, 25))
    assert complete("mrr", dt.date(Y_DOMAIN, 4, 1))  # other KPIs: when the period ends


def test_catalog_and_kpi_list_include_the_trial_kpis() -> None:
    for name in TRIAL_KPIS:
        entry = kpi_catalog.BY_NAME[name]
        assert entry.dimensions == ("all", "channel", *kpi_catalog.ACCOUNT_DIMS)
        assert entry.family == kpi_catalog.Family.FUNNEL
        assert name in catalog_markdown()
    assert "START" in kpi_catalog.BY_NAME["trials_converted"].definition  # cohort style, said
    assert "Median" in kpi_catalog.BY_NAME["days_to_convert"].definition
    assert kpi_catalog.BY_NAME["trials_converted"].matures_after_days == 30
    listed = CliRunner().invoke(kpi_cli, ["list", "--format", "json"])
    assert listed.exit_code == 0, listed.output
    by_name = {k["name"]: k for k in json.loads(listed.output)}
    assert set(TRIAL_KPIS) <= set(by_name)
    assert by_name["trial_to_paid_rate"]["unit"] == "ratio"
    committed = (ROOT / "docs" / "asyncapi" / "kpi-catalog.md").read_text()
    assert all(f"`{name}`" in committed for name in TRIAL_KPIS)


def test_stripe_export_trials_become_trial_kpis() -> None:
    """Stripe's Trial Start/Trial End/Status columns → trial_started (and the paid start at
    Trial End only when the trial converted) → trial KPIs."""
    mapped = map_export("stripe_subscriptions", (DATA / "stripe_subscriptions_trials.csv").read_text())
    assert mapped.errors == []
    events = [Subscription.model_validate(r) for r in mapped.rows["subscriptions"]]
    assert sorted((e.account_id, str(e.event_type)) for e in events) == [
        ("cus_T1", "subscription_started"), ("cus_T1", "trial_started"),  # converted at trial end
        ("cus_T2", "trial_started"),  # canceled during the trial
        ("cus_T3", "trial_started"),  # incomplete_expired: never paid
        ("cus_T4", "trial_started"),  # still trialing
        ("cus_T5", "subscription_started"),  # no trial
    ]
    trials = account_trials(events)
    october = period_of(dt.date(2026, 10, 1), Grain.MONTH)
    wanted = {g: {october} if g == Grain.MONTH else set() for g in GRAINS}
    # As of Nov 5: T2's window (Oct 5 + 30 days) is over, T3's and T4's are not.
    early = trial_values(trials, wanted, dt.date(2026, 11, 5))[(Grain.MONTH, october, "all", "")]
    assert early == {"trials_started": 4, "trials_converted": 1, "trial_expired": 1,
                     "trials_running": 2, "days_to_convert": 14.0}
    late = trial_values(trials, wanted, dt.date(2026, 12, 1))[(Grain.MONTH, october, "all", "")]
    assert (late["trials_converted"], late["trial_expired"], late["trials_running"]) == (1, 3, 0)
    assert late["trials_started"] == 4 and late["days_to_convert"] == 14.0


# ------------------------------------------------------------------ both backends
def load_ledger(store: Store, y: int) -> list[Subscription]:
    subs, tps = ledger(y)
    rows = subscription_rows(subs)
    store.insert("subscriptions", rows + rows[:2], list(SUBSCRIPTION_COLUMNS))  # redelivery
    touches = [touchpoint_row(t) for t in tps]
    store.insert("touchpoints", touches, list(TOUCHPOINT_COLUMNS))
    return subs


def stored(store: Store, y: int) -> dict[tuple[str, str, str, str], float | None]:
    rows = KpiStorage(store).kpi_values(start=dt.date(y, 1, 1), end=dt.date(y, 7, 1),
                                        kpis=list(TRIAL_KPIS))
    return {(r["kpi"], r["period"], r["dimension"], r["dimension_value"]): r["value"]
            for r in rows}


def component_at(store: Store, y: int, today: dt.date) -> KpiComponent:
    component = build(store, SilentBus(make_broker(None), SERVICE),
                      KpiSettings(close_enabled=False, snapshot_min_interval_s=0))
    component.clock = lambda: dt.datetime.combine(today, dt.time(12), dt.UTC)
    # Other tests' later subscriptions share the store: MRR is not carried into their years.
    component.mrr_cap = dt.date(y, 6, 30)
    return component


class TestTrialKpisOnBothBackends:
    """The KPI service's real code paths on embedded chDB and the real ClickHouse server."""

    @pytest.fixture
    def store(self, any_store: Store) -> Store:
        return any_store

    async def test_streaming_follow_up_then_the_daily_close(self, store: Store) -> None:
        y = Y_STREAM
        subs = load_ledger(store, y)  # what the subscriptions consumer's sink writes
        component = component_at(store, y, dt.date(y, 4, 25))
        await component.after_subscriptions(subs)
        await component.refresh_breakdowns()
        got = stored(store, y)
        for key, value in expected(y, matured=False).items():
            assert got.get(key) == value, key
        # The day E's window ends is closed: E expires though no event arrived.
        component.clock = lambda: dt.datetime(y, 5, 1, 0, 10, tzinfo=dt.UTC)
        await component.close_day(dt.date(y, 4, 30))
        got = stored(store, y)
        for key, value in expected(y, matured=True).items():
            assert got.get(key) == value, key

    async def test_recompute_range_from_the_raw_tables(self, store: Store) -> None:
        y = Y_RECOMPUTE
        load_ledger(store, y)
        component = component_at(store, y, dt.date(y, 5, 1))
        await component.recompute_range(dt.date(y, 1, 1), dt.date(y, 7, 1))
        got = stored(store, y)
        for key, value in expected(y, matured=True).items():
            assert got.get(key) == value, key
        # Idempotent: trial channels and spend channels do not zero-fill each other.
        again = component_at(store, y, dt.date(y, 5, 1))
        assert await again.recompute_range(dt.date(y, 1, 1), dt.date(y, 7, 1)) == []
