"""Cohort retention and cohort economics (issue 17): a hand-checkable ledger.

The ledger is built relative to ``as_of`` (month index 0 = six months before ``as_of``'s
month); at the fixed ``AS_OF`` = 2006-07-15 (a year no other test uses: the stores are
shared by the session) index 0 is January 2006, and July, the running month, is not a
retention point. MRR at the end of each month, by hand:

    account  first paid  Jan   Feb   Mar   Apr   May   Jun   notes
    A        Jan 10      100   100   200   200   200   200   upgrade on 1 Mar 00:00 (counts in March)
    B        Jan 20       50     0     0    80    80    80   churn Feb 14, reactivated Apr 2: stays in Jan
    C        Jan 25      100    60    60    60     0     0   downgrade Feb 10, churn May 20
    D        Feb  3        0   120   120    90    90    90   trial (MRR 0) Jan 28, downgrade Apr 9
    E        Feb 15        -     0     0     0     0    40   churn Feb 27 (same month), reactivated Jun 1
    F        Mar  1        -     -   200   200   200     0   churn Jun 30 23:59 (counts in June)
    H        Apr 10        -     -     -     0     0    30   churn Apr 20 (same month), reactivated Jun 5
    G        Jul  3        (running month: no cohort yet)
    I        trial only    (never paid: no cohort)

First paid month cohorts: Jan = A, B, C (MRR end of Jan 250); Feb = D, E (120); Mar = F
(200); Apr = H (0 → mrr_retention n/a).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pulse_attribution.storage import TOUCHPOINT_COLUMNS, touchpoint_row
from pulse_cli.main import app
from pulse_kpi.domain.cohorts import (
    CohortBy,
    LedgerEvent,
    account_histories,
    cohort_economics,
    cohort_retention,
)
from pulse_kpi.storage import SPEND_COLUMNS, SUBSCRIPTION_COLUMNS, spend_rows, subscription_rows
from pulse_shared.events import Channel, Spend, Subscription, Touchpoint, TouchType
from pulse_shared.settings import common_settings
from pulse_shared.store import Store

AS_OF = dt.date(2006, 7, 15)
PREFIX = "coh06"  # account and event ids of this file
LAST_DAY = 0  # day 0 = the month's last day

# (account, month index, day, hh:mm, event type, MRR after, plan)
LEDGER = [
    ("A", 0, 10, "12:00", "subscription_started", 100, "basic"),
    ("A", 2, 1, "00:00", "subscription_upgraded", 200, "pro"),
    ("B", 0, 20, "12:00", "subscription_started", 50, "basic"),
    ("B", 1, 14, "12:00", "subscription_canceled", 0, "basic"),
    ("B", 3, 2, "12:00", "subscription_reactivated", 80, "basic"),
    ("C", 0, 25, "12:00", "subscription_started", 100, "pro"),
    ("C", 1, 10, "12:00", "subscription_downgraded", 60, "basic"),
    ("C", 4, 20, "12:00", "subscription_canceled", 0, "basic"),
    ("D", 0, 28, "12:00", "trial_started", 0, "pro"),
    ("D", 1, 3, "12:00", "subscription_started", 120, "pro"),
    ("D", 3, 9, "12:00", "subscription_downgraded", 90, "basic"),
    ("E", 1, 15, "12:00", "subscription_started", 40, "basic"),
    ("E", 1, 27, "12:00", "subscription_canceled", 0, "basic"),
    ("E", 5, 1, "12:00", "subscription_reactivated", 40, "basic"),
    ("F", 2, 1, "00:00", "subscription_started", 200, "enterprise"),
    ("F", 5, LAST_DAY, "23:59", "subscription_canceled", 0, "enterprise"),
    ("H", 3, 10, "12:00", "subscription_started", 30, "starter"),
    ("H", 3, 20, "12:00", "subscription_canceled", 0, "starter"),
    ("H", 5, 5, "12:00", "subscription_reactivated", 30, "starter"),
    ("G", 6, 3, "12:00", "subscription_started", 70, "basic"),
    ("I", 1, 1, "12:00", "trial_started", 0, "basic"),
]
# First touches: A paid_search (before an email touch), B email, C paid_search, D webinar;
# E, F, H have none ("unknown"). (account, month index, day, channel)
TOUCHES = [
    ("A", -1, 5, Channel.PAID_SEARCH), ("A", -1, 20, Channel.EMAIL),
    ("B", 0, 3, Channel.EMAIL), ("C", 0, 2, Channel.PAID_SEARCH), ("D", 0, 15, Channel.WEBINAR),
]
# Spend per month index: Jan 600 (two channels), Feb 300, Mar 500, Apr 90.
SPEND = [(0, 5, Channel.PAID_SEARCH, 400), (0, 6, Channel.EMAIL, 200),
         (1, 5, Channel.PAID_SEARCH, 300), (2, 5, Channel.DISPLAY, 500),
         (3, 5, Channel.PAID_SEARCH, 90)]


def month_start(as_of: dt.date, index: int) -> dt.date:
    """First day of the month ``index`` months after the first cohort month."""
    n = as_of.year * 12 + as_of.month - 1 - 6 + index
    return dt.date(n // 12, n % 12 + 1, 1)


def day_of(as_of: dt.date, index: int, day: int) -> dt.date:
    if day == LAST_DAY:
        return month_start(as_of, index + 1) - dt.timedelta(days=1)
    return month_start(as_of, index).replace(day=day)


def at(as_of: dt.date, index: int, day: int, hhmm: str) -> dt.datetime:
    hour, minute = (int(x) for x in hhmm.split(":"))
    return dt.datetime.combine(day_of(as_of, index, day), dt.time(hour, minute), tzinfo=dt.UTC)


def subscriptions(as_of: dt.date) -> list[Subscription]:
    return [
        Subscription(event_id=f"{PREFIX}-{account}-{n}", occurred_at=at(as_of, m, d, hhmm),
                     account_id=f"{PREFIX}-{account}", event_type=kind, mrr=Decimal(mrr),
                     plan=plan)
        for n, (account, m, d, hhmm, kind, mrr, plan) in enumerate(LEDGER)
    ]


def ledger(as_of: dt.date) -> list[LedgerEvent]:
    return [LedgerEvent(s.event_id, s.account_id, s.occurred_at, s.mrr, s.plan)
            for s in subscriptions(as_of)]


def touchpoints(as_of: dt.date) -> list[Touchpoint]:
    return [
        Touchpoint(event_id=f"{PREFIX}-t-{n}", occurred_at=at(as_of, m, d, "09:00"),
                   account_id=f"{PREFIX}-{account}",
                   contact_id=hashlib.sha256(account.encode()).hexdigest(),
                   channel=channel, touch_type=TouchType.AD_CLICK)
        for n, (account, m, d, channel) in enumerate(TOUCHES)
    ]


def first_touch(as_of: dt.date) -> dict[str, str]:
    first: dict[str, str] = {}
    for t in sorted(touchpoints(as_of), key=lambda t: t.occurred_at):
        first.setdefault(t.account_id, str(t.channel))
    return first


def spend(as_of: dt.date) -> list[Spend]:
    return [Spend(event_id=f"{PREFIX}-s-{n}", date=day_of(as_of, m, d), channel=channel,
                  amount=Decimal(amount))
            for n, (m, d, channel, amount) in enumerate(SPEND)]


# ------------------------------------------------------------------ expected, by hand
BY_MONTH_CSV = """\
cohort,months_since,accounts,logo_retention,mrr_retention
2006-01,0,3,1.0000,1.0000
2006-01,1,3,0.6667,0.6400
2006-01,2,3,0.6667,1.0400
2006-01,3,3,1.0000,1.3600
2006-01,4,3,0.6667,1.1200
2006-01,5,3,0.6667,1.1200
2006-02,0,2,0.5000,1.0000
2006-02,1,2,0.5000,1.0000
2006-02,2,2,0.5000,0.7500
2006-02,3,2,0.5000,0.7500
2006-02,4,2,1.0000,1.0833
2006-03,0,1,1.0000,1.0000
2006-03,1,1,1.0000,1.0000
2006-03,2,1,1.0000,1.0000
2006-03,3,1,0.0000,0.0000
2006-04,0,1,0.0000,
2006-04,1,1,0.0000,
2006-04,2,1,1.0000,
"""

# months_since from each account's own first paid month; later k observe fewer accounts.
BY_CHANNEL_CSV = """\
cohort,months_since,accounts,logo_retention,mrr_retention
email,0,1,1.0000,1.0000
email,1,1,0.0000,0.0000
email,2,1,0.0000,0.0000
email,3,1,1.0000,1.6000
email,4,1,1.0000,1.6000
email,5,1,1.0000,1.6000
paid_search,0,2,1.0000,1.0000
paid_search,1,2,1.0000,0.8000
paid_search,2,2,1.0000,1.3000
paid_search,3,2,1.0000,1.3000
paid_search,4,2,0.5000,1.0000
paid_search,5,2,0.5000,1.0000
unknown,0,3,0.3333,1.0000
unknown,1,3,0.3333,1.0000
unknown,2,3,0.6667,1.1500
unknown,3,2,0.0000,0.0000
unknown,4,1,1.0000,
webinar,0,1,1.0000,1.0000
webinar,1,1,1.0000,1.0000
webinar,2,1,1.0000,0.7500
webinar,3,1,1.0000,0.7500
webinar,4,1,1.0000,0.7500
"""

# Plan at the end of the first paid month: A, B, E basic; C, D pro; F enterprise; H starter.
BY_PLAN_CSV = """\
cohort,months_since,accounts,logo_retention,mrr_retention
basic,0,3,0.6667,1.0000
basic,1,3,0.3333,0.6667
basic,2,3,0.3333,1.3333
basic,3,3,0.6667,1.8667
basic,4,3,1.0000,2.1333
basic,5,2,1.0000,1.8667
enterprise,0,1,1.0000,1.0000
enterprise,1,1,1.0000,1.0000
enterprise,2,1,1.0000,1.0000
enterprise,3,1,0.0000,0.0000
pro,0,2,1.0000,1.0000
pro,1,2,1.0000,0.8182
pro,2,2,1.0000,0.6818
pro,3,2,1.0000,0.6818
pro,4,2,0.5000,0.4091
pro,5,1,0.0000,0.0000
starter,0,1,0.0000,
starter,1,1,0.0000,
starter,2,1,1.0000,
"""

# Revenue = month-end MRR. Jan: 250+160+260+340+280+280 = 1570 → 523.33/account, CAC
# 600/3 = 200, reached at k=2 (223.33). Feb: 120+120+90+90+130 = 550 → 275, CAC 150,
# k=2 (165). Mar: 200+200+200+0 → 600, CAC 500, k=2 (600). Apr: 0+0+30 → 30 < CAC 90.
ECONOMICS_CSV = """\
cohort,accounts,spend,cac,months_observed,revenue_per_account,ltv_cac,payback_months
2006-01,3,600.00,200.00,6,523.33,2.6167,2
2006-02,2,300.00,150.00,5,275.00,1.8333,2
2006-03,1,500.00,500.00,4,600.00,1.2000,2
2006-04,1,90.00,90.00,3,30.00,0.3333,
"""


def cells(rows: list) -> list[tuple[str, int, int, int, Decimal, Decimal]]:  # type: ignore[type-arg]
    return [(r.cohort, r.months_since, r.accounts, r.retained_accounts, r.mrr, r.starting_mrr)
            for r in rows]


# ------------------------------------------------------------------ pure domain
class TestCohortDomain:
    def test_first_paid_month_cohorts_counts_and_mrr(self) -> None:
        rows = cohort_retention(ledger(AS_OF), AS_OF)
        d = Decimal
        assert cells(rows) == [
            ("2006-01", 0, 3, 3, d(250), d(250)), ("2006-01", 1, 3, 2, d(160), d(250)),
            ("2006-01", 2, 3, 2, d(260), d(250)), ("2006-01", 3, 3, 3, d(340), d(250)),
            ("2006-01", 4, 3, 2, d(280), d(250)), ("2006-01", 5, 3, 2, d(280), d(250)),
            ("2006-02", 0, 2, 1, d(120), d(120)), ("2006-02", 1, 2, 1, d(120), d(120)),
            ("2006-02", 2, 2, 1, d(90), d(120)), ("2006-02", 3, 2, 1, d(90), d(120)),
            ("2006-02", 4, 2, 2, d(130), d(120)),
            ("2006-03", 0, 1, 1, d(200), d(200)), ("2006-03", 1, 1, 1, d(200), d(200)),
            ("2006-03", 2, 1, 1, d(200), d(200)), ("2006-03", 3, 1, 0, d(0), d(200)),
            ("2006-04", 0, 1, 0, d(0), d(0)), ("2006-04", 1, 1, 0, d(0), d(0)),
            ("2006-04", 2, 1, 1, d(30), d(0)),
        ]
        assert rows[1].logo_retention == Decimal(2) / Decimal(3)
        assert rows[1].mrr_retention == Decimal("0.64")
        assert rows[-1].mrr_retention is None  # no MRR at the end of April: undefined

    def test_reactivated_accounts_stay_in_their_first_cohort(self) -> None:
        first = {h.account_id.removeprefix(f"{PREFIX}-"): h.first_paid.label
                 for h in account_histories(ledger(AS_OF))}
        assert first == {"A": "2006-01", "B": "2006-01", "C": "2006-01", "D": "2006-02",
                         "E": "2006-02", "F": "2006-03", "H": "2006-04", "G": "2006-07"}
        # I (trial only) never paid: no history.

    def test_the_running_month_is_never_a_retention_point(self) -> None:
        on_the_first = cohort_retention(ledger(AS_OF), dt.date(2006, 7, 1))
        assert cells(on_the_first) == cells(cohort_retention(ledger(AS_OF), AS_OF))
        in_june = cohort_retention(ledger(AS_OF), dt.date(2006, 6, 30))
        assert max(r.months_since for r in in_june if r.cohort == "2006-01") == 4
        assert [r.retained_accounts for r in in_june if r.cohort == "2006-03"] == [1, 1, 1]
        # A cohort whose first month is running has no row at all (G, July).
        assert {r.cohort for r in cohort_retention(ledger(AS_OF), dt.date(2006, 8, 1))} == {
            "2006-01", "2006-02", "2006-03", "2006-04", "2006-07"}

    def test_the_ledger_is_relative_to_as_of(self) -> None:
        """The same ledger six years later gives the same cells under other labels."""
        later = dt.date(2012, 3, 2)
        shifted = cohort_retention(ledger(later), later)
        assert [r.cohort for r in shifted][:1] == ["2011-09"]
        assert [c[1:] for c in cells(shifted)] == [
            c[1:] for c in cells(cohort_retention(ledger(AS_OF), AS_OF))]

    def test_by_plan_and_first_touch_count_from_each_accounts_first_month(self) -> None:
        by_plan = cohort_retention(ledger(AS_OF), AS_OF, CohortBy.PLAN)
        assert [(r.cohort, r.months_since, r.accounts, r.retained_accounts, r.mrr)
                for r in by_plan if r.cohort == "basic"] == [
            ("basic", 0, 3, 2, Decimal(150)), ("basic", 1, 3, 1, Decimal(100)),
            ("basic", 2, 3, 1, Decimal(200)), ("basic", 3, 3, 2, Decimal(280)),
            ("basic", 4, 3, 3, Decimal(320)),
            ("basic", 5, 2, 2, Decimal(280)),  # E's month 5 (July) has not ended
        ]
        by_touch = cohort_retention(ledger(AS_OF), AS_OF, CohortBy.FIRST_TOUCH_CHANNEL,
                                    first_touch(AS_OF))
        unknown = [r for r in by_touch if r.cohort == "unknown"]
        assert [(r.accounts, r.retained_accounts, r.mrr, r.starting_mrr) for r in unknown] == [
            (3, 1, Decimal(200), Decimal(200)), (3, 1, Decimal(200), Decimal(200)),
            (3, 2, Decimal(230), Decimal(200)), (2, 0, Decimal(0), Decimal(200)),
            (1, 1, Decimal(40), Decimal(0)),
        ]
        assert {r.cohort for r in by_touch} == {"email", "paid_search", "unknown", "webinar"}

    def test_from_to_restrict_cohorts_by_first_paid_month(self) -> None:
        rows = cohort_retention(ledger(AS_OF), AS_OF, first_month=dt.date(2006, 2, 1),
                                last_month=dt.date(2006, 3, 1))
        assert sorted({r.cohort for r in rows}) == ["2006-02", "2006-03"]
        by_plan = cohort_retention(ledger(AS_OF), AS_OF, CohortBy.PLAN,
                                   first_month=dt.date(2006, 3, 1))
        assert {r.cohort for r in by_plan} == {"enterprise", "starter"}

    def test_economics(self) -> None:
        spent = {dt.date(2006, 1, 1): Decimal(600), dt.date(2006, 2, 1): Decimal(300),
                 dt.date(2006, 3, 1): Decimal(500), dt.date(2006, 4, 1): Decimal(90)}
        rows = cohort_economics(ledger(AS_OF), AS_OF, spent)
        assert [(r.cohort, r.accounts, r.cac, r.months_observed, r.revenue, r.payback_months)
                for r in rows] == [
            ("2006-01", 3, Decimal(200), 6, Decimal(1570), 2),
            ("2006-02", 2, Decimal(150), 5, Decimal(550), 2),
            ("2006-03", 1, Decimal(500), 4, Decimal(600), 2),
            ("2006-04", 1, Decimal(90), 3, Decimal(30), None),
        ]
        free = cohort_economics(ledger(AS_OF), AS_OF, {})
        assert all(r.payback_months == 0 and r.ltv_cac is None for r in free)

    def test_no_paid_account_no_rows(self) -> None:
        trial = [e for e in ledger(AS_OF) if e.account_id == f"{PREFIX}-I"]
        assert cohort_retention(trial, AS_OF) == []
        assert cohort_economics(trial, AS_OF, {}) == []


# ------------------------------------------------------------------ CLI on both backends
@pytest.fixture
def cohort_store(any_store: Store, request: pytest.FixtureRequest,
                 monkeypatch: pytest.MonkeyPatch) -> Iterator[Store]:
    """The ledger in the store (twice: redelivery is harmless), the CLI pointed at it."""
    subs = subscription_rows(subscriptions(AS_OF))
    any_store.insert("subscriptions", subs + subs[:5], list(SUBSCRIPTION_COLUMNS))
    touches = [touchpoint_row(t) for t in touchpoints(AS_OF)]
    any_store.insert("touchpoints", touches + touches[:1], list(TOUCHPOINT_COLUMNS))
    spent = spend_rows(spend(AS_OF))
    any_store.insert("spend", spent + spent[:2], list(SPEND_COLUMNS))
    if any_store.backend == "server":
        monkeypatch.setenv("PULSE_CLICKHOUSE_URL", request.getfixturevalue("clickhouse_server").url)
    else:
        monkeypatch.setenv("PULSE_DATA_DIR", str(request.getfixturevalue("embedded_data_dir")))
        monkeypatch.delenv("PULSE_CLICKHOUSE_URL", raising=False)
    common_settings.cache_clear()
    yield any_store
    common_settings.cache_clear()


def pulse(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


COHORT_SPAN = ("--from", "2006-01", "--to", "2006-12", "--as-of", AS_OF.isoformat())


class TestCohortsCli:
    def test_by_first_paid_month_csv_is_exact(self, cohort_store: Store) -> None:
        code, out, err = pulse("kpi", "cohorts", "--by", "first_paid_month", *COHORT_SPAN,
                               "--format", "csv")
        assert (code, err) == (0, ""), err
        assert out == BY_MONTH_CSV

    def test_by_first_touch_channel_and_plan_csv(self, cohort_store: Store) -> None:
        code, out, _ = pulse("kpi", "cohorts", "--by", "first_touch_channel", *COHORT_SPAN,
                             "--format", "csv")
        assert (code, out) == (0, BY_CHANNEL_CSV)
        code, out, _ = pulse("kpi", "cohorts", "--by", "plan", *COHORT_SPAN, "--format", "csv")
        assert (code, out) == (0, BY_PLAN_CSV)

    def test_economics_csv_is_exact(self, cohort_store: Store) -> None:
        code, out, err = pulse("kpi", "cohort-economics", *COHORT_SPAN, "--format", "csv")
        assert (code, err) == (0, ""), err
        assert out == ECONOMICS_CSV

    def test_json_numbers_range_and_file(self, cohort_store: Store, tmp_path: Path) -> None:
        code, out, _ = pulse("kpi", "cohorts", "--from", "2006-03", "--to", "2006-04",
                             "--as-of", AS_OF.isoformat(), "--format", "json")
        assert code == 0
        data = json.loads(out)
        assert [r["cohort"] for r in data] == ["2006-03"] * 4 + ["2006-04"] * 3
        assert data[0] == {"cohort": "2006-03", "months_since": 0, "accounts": 1,
                           "logo_retention": 1, "mrr_retention": 1}
        assert data[-1]["mrr_retention"] is None and data[-1]["logo_retention"] == 1
        target = tmp_path / "cohorts.csv"
        code, out, _ = pulse("kpi", "cohorts", *COHORT_SPAN, "--output", str(target))
        assert (code, out) == (0, "")
        assert target.read_text() == BY_MONTH_CSV  # csv by default in a file
        code, out, _ = pulse("kpi", "cohorts", *COHORT_SPAN)
        assert code == 0 and "2006-04" in out and "n/a" in out  # the table for a person

    def test_nothing_to_show_is_said_on_stderr(self, cohort_store: Store) -> None:
        code, out, err = pulse("kpi", "cohorts", "--from", "2006-07", "--to", "2006-07",
                               "--as-of", AS_OF.isoformat(), "--format", "csv")
        assert code == 0 and out == BY_MONTH_CSV.splitlines()[0] + "\n"
        assert "no cohort" in err  # G's first month (July) is still running


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--by", "industry"], "unknown cohort dimension 'industry'"),
        (["--from", "2026-13"], "--from"),
        (["--from", "2026-05", "--to", "2026-04"], "--to"),
        (["--as-of", "tomorrow"], "--as-of"),
    ],
)
def test_bad_options_are_one_line_usage_errors(args: list[str], message: str) -> None:
    code, out, err = pulse("kpi", "cohorts", *args)
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and err.startswith("error: ")
    assert message in err
