"""The "Product usage" insight section (monthly, quarterly, annual reports): active
accounts, adoption per feature, the launch curve of the most recently released feature and
the accounts at churn risk (usage dropping month over month), for CX.

Pure: no I/O, no clock. Definitions are the KPI catalog's (family product):

* active accounts of a period: distinct accounts with any usage in it (MAU for a month);
* adoption of a feature: accounts that used it in the period ÷ active accounts;
* a feature's release: the first day any account used it (no release events exist); only a
  feature first used after the first day with any usage counts as launched;
* churn risk in a month (the period's last month): accounts paying at its end whose usage
  per day dropped by more than ``drop`` against the previous month
  (:func:`pulse_reporting.domain.personas.churn_risks`, the KPI ``churn_risk_accounts``).

No usage at all: the section says so (``unavailable``); a number it cannot compute is n/a,
never 0.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field

from pulse_reporting.domain.formatting import fmt_value
from pulse_reporting.domain.model import (
    Fmt,
    InsightChart,
    InsightColumn,
    InsightSection,
    InsightSeries,
    InsightTable,
)
from pulse_reporting.domain.periods import Period
from pulse_reporting.domain.personas import ChurnRiskAccount, churn_risks
from pulse_shared.events import Grain
from pulse_shared.kpi_catalog import CHURN_RISK_DROP_DEFAULT
from pulse_shared.periods import period_of

KEY = "usage"
TITLE = "Product usage"
KPIS: tuple[str, ...] = ("active_accounts_monthly", "feature_adoption_rate",
                         "churn_risk_accounts")
LAUNCH_DAYS = 30
CHURN_LIST_ROWS = 15


@dataclass(frozen=True)
class Adoption:
    """Active accounts of one period and, per feature, the accounts that used it."""

    active: int
    adopters: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Launch:
    """The most recently released feature as of the period's end and its daily usage since
    the release: per day, the accounts active that day and whether each used the feature."""

    feature: str
    released: dt.date
    #: (day, account, used the feature that day) for every account active on the day
    days: list[tuple[dt.date, str, bool]] = field(default_factory=list)


@dataclass(frozen=True)
class UsageInputs:
    """What the section reads (ReportingStorage.usage_inputs)."""

    period: Period
    previous: Period
    year_ago: Period
    first_day: dt.date | None  # first and last day with any usage (None: no usage at all)
    last_day: dt.date | None
    #: (month label, active accounts) of the 12 months ending with the period's last month
    monthly_active: list[tuple[str, int]] = field(default_factory=list)
    #: period label → adoption (the period, the previous one and a year ago)
    adoption: dict[str, Adoption] = field(default_factory=dict)
    launch: Launch | None = None
    #: churn risk candidates of the period's last month: (account, MRR at the month's end,
    #: uses in the month, uses in the previous month), storage.churn_risk_rows
    churn_month: Period | None = None
    churn_rows: list[tuple[str, float, int, int]] = field(default_factory=list)
    drop: float = CHURN_RISK_DROP_DEFAULT




def churn_month(period: Period) -> Period:
    """The month whose churn risk the report lists: the period's last month."""
    return period_of(period.end - dt.timedelta(days=1), Grain.MONTH)


def _share(part: int | None, whole: int | None) -> float | None:
    if part is None or not whole:
        return None
    return part / whole


def _change(current: float | None, previous: float | None) -> str:
    if current is None or not previous:
        return "n/a"
    return f"{(current - previous) / previous * 100:+.1f}%"


def _count(value: float | None) -> str:
    return fmt_value(value, Fmt.COUNT)


def _pct(value: float | None) -> str:
    return fmt_value(value, Fmt.PERCENT)


def launch_curve(launch: Launch, days: int, until: dt.date) -> list[tuple[int, int, int]]:
    """(days since release, adopters so far, accounts active so far) for day 0 … ``days``−1
    since the release, up to the day before ``until``."""
    adopters: set[str] = set()
    active: set[str] = set()
    by_day: dict[dt.date, list[tuple[str, bool]]] = {}
    for day, account, used in launch.days:
        by_day.setdefault(day, []).append((account, used))
    out: list[tuple[int, int, int]] = []
    for k in range(days):
        day = launch.released + dt.timedelta(days=k)
        if day >= until:
            break
        for account, used in by_day.get(day, ()):
            active.add(account)
            if used:
                adopters.add(account)
        out.append((k, len(adopters), len(active)))
    return out


def usage_section(
    inputs: UsageInputs, period: Period, now: dt.datetime
) -> InsightSection | None:
    if inputs.first_day is None or inputs.last_day is None:
        return InsightSection(
            key=KEY, title=TITLE, kpis=list(KPIS), dimensions=["all", "feature"],
            unavailable="No product usage events yet (ingest kind usage: account, feature, "
            "day, count).")
    labels = (period.label, inputs.previous.label, inputs.year_ago.label)
    statements: list[str] = []
    notes: list[str] = [
        "Active accounts: distinct accounts with any feature use in the period. Adoption: "
        "accounts that used the feature ÷ active accounts. A feature's release is its first "
        "day of use.",
    ]
    today = now.astimezone(dt.UTC).date()
    if period.end > today:
        notes.append(f"{period.label} is still running: numbers to "
                     f"{today - dt.timedelta(days=1)}.")
    if inputs.first_day > period.start:
        notes.append(f"Usage data starts on {inputs.first_day}: {period.label} is only partly "
                     "covered.")

    # Active accounts: period vs previous and a year ago; the monthly trend.
    actives = {label: (inputs.adoption[label].active if label in inputs.adoption else None)
               for label in labels}
    current, previous, year_ago = (actives[label] for label in labels)
    def against(label: str, value: int | None) -> str:
        if value is None:
            return f"{label}: n/a"
        return f"{label}: {_count(value)}, {_change(current, value)}"

    statements.append(f"Active accounts {labels[0]}: {_count(current)} "
                      f"({against(labels[1], previous)}; {against(labels[2], year_ago)}).")
    charts: list[InsightChart] = []
    trend = [(label, value) for label, value in inputs.monthly_active]
    if trend:
        charts.append(InsightChart(
            name="usage_active_accounts", title="Monthly active accounts (MAU)", kind="line",
            labels=[label for label, _ in trend],
            series=[InsightSeries(name="active accounts",
                                  values=[float(v) if v is not None else None
                                          for _, v in trend])],
            fmt=Fmt.COUNT))
        peak = max(trend, key=lambda item: (item[1], item[0]))
        if inputs.first_day.day != 1 and inputs.first_day.strftime("%Y-%m") == trend[0][0]:
            notes.append(f"Monthly active accounts of {trend[0][0]} count from "
                         f"{inputs.first_day}, the first day with usage data.")
        statements.append(
            f"Monthly active accounts over {trend[0][0]} … {trend[-1][0]}: from "
            f"{_count(trend[0][1])} to {_count(trend[-1][1])} (peak {_count(peak[1])} in "
            f"{peak[0]}).")

    # Adoption per feature.
    tables: list[InsightTable] = []
    now_adoption = inputs.adoption.get(labels[0])
    prev_adoption = inputs.adoption.get(labels[1])
    if now_adoption is not None and now_adoption.adopters:
        features = sorted(now_adoption.adopters,
                          key=lambda f: (-now_adoption.adopters[f], f))
        rates = {f: _share(now_adoption.adopters[f], now_adoption.active) for f in features}
        before = {f: (_share(prev_adoption.adopters.get(f, 0), prev_adoption.active)
                      if prev_adoption is not None else None) for f in features}
        charts.append(InsightChart(
            name="usage_adoption", title=f"Feature adoption {labels[0]} vs {labels[1]}",
            kind="bar", labels=features,
            series=[InsightSeries(name=labels[0], values=[rates[f] for f in features]),
                    InsightSeries(name=labels[1], values=[before[f] for f in features])],
            fmt=Fmt.PERCENT))
        tables.append(InsightTable(
            name="usage_adoption", title=f"Feature adoption {labels[0]}",
            columns=[InsightColumn(key="feature", title="Feature"),
                     InsightColumn(key="adopters", title="Accounts using it", fmt=Fmt.COUNT),
                     InsightColumn(key="active", title="Active accounts", fmt=Fmt.COUNT),
                     InsightColumn(key="rate", title="Adoption", fmt=Fmt.PERCENT),
                     InsightColumn(key="previous", title=f"Adoption {labels[1]}",
                                   fmt=Fmt.PERCENT)],
            rows=[[f, now_adoption.adopters[f], now_adoption.active, rates[f], before[f]]
                  for f in features]))
        top = features[0]
        statements.append(
            f"Most used feature {labels[0]}: {top}, by {_pct(rates[top])} of active accounts "
            f"({now_adoption.adopters[top]} of {now_adoption.active}); least: {features[-1]} "
            f"at {_pct(rates[features[-1]])} ({now_adoption.adopters[features[-1]]} of "
            f"{now_adoption.active}).")
        moved = [(f, rates[f], before[f]) for f in features
                 if rates[f] is not None and before[f] is not None]
        if moved:
            f, rate, was = max(moved, key=lambda m: (abs((m[1] or 0) - (m[2] or 0)), m[0]))
            statements.append(
                f"Largest adoption change: {f} {_pct(rate)} in {labels[0]} against "
                f"{_pct(was)} in {labels[1]} ({((rate or 0) - (was or 0)) * 100:+.1f} pp).")

    # The launch curve.
    launch = inputs.launch
    if launch is not None:
        curve = launch_curve(launch, LAUNCH_DAYS, min(period.end, today))
        if curve:
            shares = [_share(adopters, active) for _, adopters, active in curve]
            charts.append(InsightChart(
                name="usage_launch", title=f"Launch of {launch.feature} (released "
                f"{launch.released}): share of active accounts that used it by day",
                kind="line", labels=[f"day {k}" for k, _, _ in curve],
                series=[InsightSeries(name=launch.feature, values=shares)],
                fmt=Fmt.PERCENT))
            k, adopters, active = curve[-1]
            statements.append(
                f"{launch.feature}, released {launch.released} (first use): used by "
                f"{_pct(shares[-1])} of the accounts active in its first {k + 1} days "
                f"({adopters} of {active}).")
    else:
        notes.append("No feature launch in the data: every feature was in use from the first "
                     "day with usage.")

    # Churn risk: per day of the month (a running month: its days before today).
    risk_month = inputs.churn_month or churn_month(period)
    month = risk_month.label
    days = (min(risk_month.end, today) - risk_month.start).days
    previous_days = (risk_month.start - period_of(
        risk_month.start - dt.timedelta(days=1), Grain.MONTH).start).days
    risks: list[ChurnRiskAccount] = churn_risks(
        inputs.churn_rows, days, previous_days, inputs.drop)
    threshold = f"{inputs.drop:.0%}"
    if days > 0:
        at_risk_mrr = sum(r.mrr for r in risks)
        statements.append(
            f"Churn risk {month}: {len(risks)} paying account"
            f"{'' if len(risks) == 1 else 's'} used the product over {threshold} less per "
            f"day than the month before, carrying {fmt_value(at_risk_mrr, Fmt.MONEY)} MRR"
            + (f"; largest drop {risks[0].account_id} "
               f"({_pct(risks[0].drop)}: {risks[0].previous_uses} → {risks[0].uses} uses)."
               if risks else "."))
        shown = risks[:CHURN_LIST_ROWS]
        tables.append(InsightTable(
            name="usage_churn_risk", title=f"Accounts at churn risk {month} (usage per day "
            f"down more than {threshold} month over month)",
            columns=[InsightColumn(key="account", title="Account"),
                     InsightColumn(key="mrr", title="MRR", fmt=Fmt.MONEY),
                     InsightColumn(key="before", title="Uses, previous month", fmt=Fmt.COUNT),
                     InsightColumn(key="after", title=f"Uses, {month}", fmt=Fmt.COUNT),
                     InsightColumn(key="drop", title="Drop per day", fmt=Fmt.PERCENT)],
            rows=[[r.account_id, r.mrr, r.previous_uses, r.uses, r.drop] for r in shown]))
        if len(risks) > len(shown):
            notes.append(f"Churn-risk list: the {len(shown)} largest drops of {len(risks)}; "
                         f"all: pulse kpi churn-risk --month {month}.")
        notes.append(
            f"Churn risk: uses per day of {month} ({days} days) against the "
            f"previous month ({previous_days} days); accounts paying at the "
            "month's end that used the product the month before.")
    return InsightSection(
        key=KEY, title=TITLE, statements=statements, charts=charts, tables=tables,
        notes=notes, kpis=list(KPIS), dimensions=["all", "feature"])


def adoption_of(rows: Sequence[tuple[str, int]], active: int) -> Adoption:
    """An :class:`Adoption` from (feature, accounts) rows and the active accounts."""
    return Adoption(active, {feature: int(n) for feature, n in rows})
