"""Product usage KPIs (pure): active accounts, feature adoption, launch curves, churn risk.

Input is the daily usage ledger (:class:`UsageRow`: account × feature × day × count, as
``product_usage`` holds it) and, for churn risk, the accounts' MRR over time
(:class:`MrrLookup`, from the MRR movements). Definitions (the catalog's
``pulse_shared.kpi_catalog._usage`` says the same for people):

* an account is *active* on a day it has any usage row (counts are ≥ 1);
* ``active_accounts_daily|weekly|monthly``: distinct active accounts of the day, ISO week
  or calendar month (each KPI at its own grain only: a "monthly" number per week would
  mislead);
* ``usage_events``: sum of the counts (in total and per feature);
* ``feature_adoption_rate``: accounts that used the feature in the period ÷ accounts
  active in the period (per feature);
* ``churn_risk_accounts`` (month grain): accounts paying at the month's end (MRR > 0; for
  the running month, at the start of ``as_of``, "today") whose usage per day fell by more
  than ``drop`` against the previous month. Usage per day = uses ÷ days of the month; for
  the running month its complete days before ``as_of`` (daily aggregates of today are not
  in yet), so a short February or a half-run month compares fairly.
  An account without usage in the previous month has no baseline and is never at risk;
  one with no usage this month dropped 100 %.
* launch curve of a feature released on ``R``: for ``k`` = 0, 1, … the share of the
  accounts active on days ``R … R+k`` that used the feature on one of those days.

Shares are compared exactly (fractions), so a drop of exactly the threshold is not a risk.
"""

from __future__ import annotations

import bisect
import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction

from pulse_shared.events import Grain
from pulse_shared.kpi_catalog import CHURN_RISK_DROP_DEFAULT
from pulse_shared.periods import GRAINS, Period, period_of

ZERO = Decimal(0)
ONE_DAY = dt.timedelta(days=1)
#: The active-accounts KPI of each grain (there is none at quarter grain).
ACTIVE_KPI: dict[Grain, str] = {
    Grain.DAY: "active_accounts_daily",
    Grain.WEEK: "active_accounts_weekly",
    Grain.MONTH: "active_accounts_monthly",
}


@dataclass(frozen=True, slots=True)
class UsageRow:
    """Uses of one feature by one account on one day (rows of one key summed)."""

    day: dt.date
    account_id: str
    feature: str
    count: int


@dataclass(frozen=True, slots=True)
class MrrChange:
    """An account's MRR from ``at`` on (the ``mrr_after`` of one MRR movement)."""

    account_id: str
    at: dt.datetime
    mrr: Decimal


class MrrLookup:
    """Each account's MRR at the start of any day (after every movement of earlier days)."""

    def __init__(self, changes: Iterable[MrrChange]) -> None:
        by_account: dict[str, list[tuple[dt.date, dt.datetime, Decimal]]] = defaultdict(list)
        for c in changes:
            by_account[c.account_id].append((c.at.date(), c.at, c.mrr))
        self._days: dict[str, list[dt.date]] = {}
        self._mrr: dict[str, list[Decimal]] = {}
        for account, items in by_account.items():
            items.sort(key=lambda item: item[1])
            self._days[account] = [d for d, _, _ in items]
            self._mrr[account] = [m for _, _, m in items]

    def at_start_of(self, account_id: str, day: dt.date) -> Decimal:
        days = self._days.get(account_id)
        if not days:
            return ZERO
        i = bisect.bisect_left(days, day)  # movements strictly before ``day``
        return self._mrr[account_id][i - 1] if i else ZERO


class UsageLedger:
    """Usage rows indexed by day, for period queries."""

    def __init__(self, rows: Iterable[UsageRow]) -> None:
        self.by_day: dict[dt.date, list[UsageRow]] = defaultdict(list)
        for r in rows:
            self.by_day[r.day].append(r)

    def rows(self, start: dt.date, end: dt.date) -> Iterable[UsageRow]:
        """Rows of the half-open day range ``[start, end)``."""
        day = start
        while day < end:
            yield from self.by_day.get(day, ())
            day += ONE_DAY

    def features(self) -> list[str]:
        return sorted({r.feature for rows in self.by_day.values() for r in rows})

    def first_day(self, feature: str) -> dt.date | None:
        days = [d for d, rows in self.by_day.items() if any(r.feature == feature for r in rows)]
        return min(days) if days else None

    def last_day(self) -> dt.date | None:
        return max(self.by_day) if self.by_day else None

    def per_account(self, start: dt.date, end: dt.date) -> dict[str, int]:
        uses: dict[str, int] = defaultdict(int)
        for r in self.rows(start, end):
            uses[r.account_id] += r.count
        return dict(uses)


# --------------------------------------------------------------------------- periods


def _month_before(month: Period) -> Period:
    return period_of(month.start - ONE_DAY, Grain.MONTH)


def _month_after(month: Period) -> Period:
    return period_of(month.end, Grain.MONTH)


def usage_periods(days: Iterable[dt.date], as_of: dt.date) -> dict[Grain, set[Period]]:
    """Periods whose usage KPIs change with usage of ``days``: those containing them, and
    the following month (its churn risk compares against their month) once it has begun
    on ``as_of``."""
    wanted: dict[Grain, set[Period]] = {g: set() for g in GRAINS}
    for day in days:
        for grain in GRAINS:
            wanted[grain].add(period_of(day, grain))
        following = _month_after(period_of(day, Grain.MONTH))
        if following.start <= as_of:
            wanted[Grain.MONTH].add(following)
    return wanted


def usage_range(days: Iterable[dt.date], as_of: dt.date) -> tuple[dt.date, dt.date] | None:
    """Half-open day range of usage needed for :func:`usage_values` of ``days`` (their
    periods, and the month before each month for churn risk); None without days."""
    wanted = usage_periods(days, as_of)
    periods = [p for ps in wanted.values() for p in ps]
    if not periods:
        return None
    starts = [p.start for p in periods] + [_month_before(m).start for m in wanted[Grain.MONTH]]
    return min(starts), max(p.end for p in periods)


# --------------------------------------------------------------------------- KPIs

UsageKey = tuple[Grain, Period, str, str]


def _ratio(num: int, den: int) -> float | None:
    return None if den == 0 else round(num / den, 9)


def period_values(
    ledger: UsageLedger, period: Period, features: Iterable[str] = (),
) -> dict[tuple[str, str], dict[str, float | None]]:
    """Usage KPIs of one period (churn risk aside): (dimension, member) → values; a feature
    of ``features`` unused in the period gets 0 uses and 0 adoption (not no row: a feature
    whose last user was erased drops to 0 instead of keeping its old value)."""
    active: set[str] = set()
    uses = 0
    feature_accounts: dict[str, set[str]] = defaultdict(set)
    feature_uses: dict[str, int] = defaultdict(int)
    for r in ledger.rows(period.start, period.end):
        active.add(r.account_id)
        uses += r.count
        feature_accounts[r.feature].add(r.account_id)
        feature_uses[r.feature] += r.count
    totals: dict[str, float | None] = {"usage_events": float(uses)}
    active_kpi = ACTIVE_KPI.get(period.grain)
    if active_kpi is not None:
        totals[active_kpi] = float(len(active))
    out: dict[tuple[str, str], dict[str, float | None]] = {("all", ""): totals}
    for feature in sorted(set(feature_accounts) | set(features)):
        out[("feature", feature)] = {
            "usage_events": float(feature_uses[feature]),
            "feature_adoption_rate": _ratio(len(feature_accounts[feature]), len(active)),
        }
    return out


@dataclass(frozen=True, slots=True)
class ChurnRisk:
    """One paying account whose usage dropped: uses and days compared, the drop, its MRR."""

    account_id: str
    month: str
    usage_before: int  # uses in the previous month
    usage_after: int  # uses in the month (to date for the running month)
    days_before: int
    days_after: int
    drop: Fraction  # 1 − (usage_after / days_after) ÷ (usage_before / days_before)
    mrr: Decimal  # at the month's end (the running month: today's)


def usage_drop(before: int, days_before: int, after: int, days_after: int) -> Fraction | None:
    """Drop of usage per day from one span to the next (None without a baseline)."""
    if before <= 0 or days_before <= 0 or days_after <= 0:
        return None
    return 1 - Fraction(after, days_after) / Fraction(before, days_before)


def churn_risks(
    ledger: UsageLedger, mrr: MrrLookup, month: Period, as_of: dt.date,
    drop: float = CHURN_RISK_DROP_DEFAULT,
) -> list[ChurnRisk]:
    """The paying accounts of ``month`` whose usage per day dropped by more than ``drop``
    against the previous month, largest drop first (then highest MRR, then account)."""
    if month.start > as_of:
        return []
    threshold = Fraction(str(drop))
    end = min(month.end, as_of)  # the running month: its days before today
    previous = _month_before(month)
    before = ledger.per_account(previous.start, previous.end)
    after = ledger.per_account(month.start, end)
    days_before, days_after = previous.days, (end - month.start).days
    if days_after <= 0:  # the first day of the running month: nothing to compare yet
        return []
    out: list[ChurnRisk] = []
    for account, used_before in before.items():
        used_after = after.get(account, 0)
        change = usage_drop(used_before, days_before, used_after, days_after)
        if change is None or change <= threshold:
            continue
        paying = mrr.at_start_of(account, end)
        if paying > 0:
            out.append(ChurnRisk(account, month.label, used_before, used_after, days_before,
                                 days_after, change, paying))
    out.sort(key=lambda r: (-r.drop, -r.mrr, r.account_id))
    return out


def usage_values(
    ledger: UsageLedger, mrr: MrrLookup, days: Iterable[dt.date], as_of: dt.date,
    drop: float = CHURN_RISK_DROP_DEFAULT, since: dt.date | None = None,
) -> dict[UsageKey, dict[str, float | None]]:
    """Every usage KPI of the periods :func:`usage_periods` of ``days`` (the ledger must
    cover :func:`usage_range`) that end after ``since``, the first day with any usage
    (default: the ledger's; None without usage): before it there is no usage data, which
    is not zero usage. Totals for every such period (0 without usage); every feature used
    in the ledger's range for each of them (0 where unused)."""
    first = since or (min(ledger.by_day) if ledger.by_day else None)
    out: dict[UsageKey, dict[str, float | None]] = {}
    if first is None:
        return out
    features = ledger.features()
    for grain, periods in usage_periods(days, as_of).items():
        for period in sorted(periods):
            if period.end <= first:
                continue
            for (dim, member), values in period_values(ledger, period, features).items():
                out[(grain, period, dim, member)] = values
            if grain is Grain.MONTH and period.start <= as_of:
                risks = churn_risks(ledger, mrr, period, as_of, drop)
                out[(grain, period, "all", "")]["churn_risk_accounts"] = float(len(risks))
    return out


# --------------------------------------------------------------------------- reads


@dataclass(frozen=True, slots=True)
class LaunchPoint:
    days_since_release: int
    day: dt.date
    adopters: int  # accounts that used the feature on days release … day
    active_accounts: int  # accounts active on days release … day
    adoption: float | None  # adopters ÷ active accounts


def launch_curve(
    ledger: UsageLedger, feature: str, released: dt.date, days: int, last_day: dt.date,
) -> list[LaunchPoint]:
    """Adoption of ``feature`` by day since ``released`` (day 0 = the release day), for
    ``days`` days but not beyond ``last_day``."""
    adopters: set[str] = set()
    active: set[str] = set()
    out: list[LaunchPoint] = []
    for k in range(days):
        day = released + dt.timedelta(days=k)
        if day > last_day:
            break
        for r in ledger.by_day.get(day, ()):
            active.add(r.account_id)
            if r.feature == feature:
                adopters.add(r.account_id)
        out.append(LaunchPoint(k, day, len(adopters), len(active),
                               _ratio(len(adopters), len(active))))
    return out


@dataclass(frozen=True, slots=True)
class ActivityRow:
    """Active accounts of one period (the DAU/WAU/MAU table)."""

    period: str
    period_start: dt.date
    active_accounts: int
    average_daily_active: float | None  # mean DAU over the period's days (elapsed)
    usage_events: int


def activity(ledger: UsageLedger, periods: Sequence[Period], as_of: dt.date) -> list[ActivityRow]:
    """Distinct active accounts, mean daily active accounts and uses per period; the
    running period counts its days before ``as_of`` (today's usage is not complete)."""
    out: list[ActivityRow] = []
    for period in periods:
        end = min(period.end, as_of)
        active: set[str] = set()
        uses = 0
        daily = 0
        for offset in range(max(0, (end - period.start).days)):
            day = period.start + dt.timedelta(days=offset)
            rows = ledger.by_day.get(day, ())
            daily += len({r.account_id for r in rows})
            for r in rows:
                active.add(r.account_id)
                uses += r.count
        elapsed = max(0, (end - period.start).days)
        out.append(ActivityRow(period.label, period.start, len(active),
                               _ratio(daily, elapsed), uses))
    return out


@dataclass(frozen=True, slots=True)
class AdoptionRow:
    period: str
    period_start: dt.date
    feature: str
    adopters: int
    active_accounts: int
    adoption: float | None


def adoption(
    ledger: UsageLedger, periods: Sequence[Period], features: Sequence[str] | None = None,
) -> list[AdoptionRow]:
    """Accounts using each feature ÷ active accounts, per period (every feature seen in
    the ledger unless ``features``; a feature unused in a period has 0 adopters)."""
    names = list(features) if features else ledger.features()
    out: list[AdoptionRow] = []
    for period in periods:
        active: set[str] = set()
        users: dict[str, set[str]] = defaultdict(set)
        for r in ledger.rows(period.start, period.end):
            active.add(r.account_id)
            users[r.feature].add(r.account_id)
        for feature in names:
            n = len(users.get(feature, ()))
            out.append(AdoptionRow(period.label, period.start, feature, n, len(active),
                                   _ratio(n, len(active))))
    return out
