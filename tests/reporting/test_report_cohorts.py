"""Cohort retention and trials in reports (issue 17): a hand-checkable ledger → reports.

The ledger is in 2008, a year no other test uses (the stores are shared by the session).
The monthly report of 2008-05 has ``as_of`` = 2008-06-01 (the day after the period), so
January … May are the ended months. MRR at the end of each month, by hand:

    account  first paid  Jan   Feb   Mar   Apr   May   Jun   notes
    A        Jan 10      100   100   200   200   200   200   upgrade Mar 1
    B        Jan 20      100     0     0    50    50    50   churn Feb 14, reactivated Apr 2
    C        Jan 25      100   100   100     0     0     0   churn Apr 20
    D        Feb  3        0   100   100    75    75    75   trial Jan 28, downgrade Apr 9
    E        Feb 15        -     0     0     0     0     0   churn Feb 27 (same month)
    H        Mar  5        -     -     0     0    40    40   churn Mar 20, reactivated May 2
    F        Apr 10        -     -     -    80    80    80
    G        May 12        -     -     -     -    60    60
    J        Jun  3        (after the monthly report's period: no cohort in it)
    I        trial only    (never paid: no cohort)

Cohorts (k = months since the first paid month):

    cohort   logo retention k=0…           MRR retention k=0…
    2008-01  100, 66.7, 66.7, 66.7, 66.7    100, 66.7, 100, 83.3, 83.3   (start $300)
    2008-02   50, 50, 50, 50                100, 100, 75, 75             (start $100)
    2008-03    0, 0, 100                    n/a, n/a, n/a                (start $0)
    2008-04  100, 100                       100, 100
    2008-05  100                            100

Trial KPIs are read from ``kpi_values`` like every KPI; generated on 2008-06-10 the trial-to-
paid rate and days to convert of May are provisional (final 30 days after May, on
2008-07-01); trials started is final as soon as May has ended.
"""

from __future__ import annotations

import csv
import datetime as dt
import importlib.util
import json
import shutil
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from reporting_fixtures import insert_kpis, kpi

from pulse_kpi.domain.cohorts import cohort_retention as kpi_cohort_retention
from pulse_kpi.domain.mrr import MovementKind, MrrEvent, movements
from pulse_kpi.storage import SUBSCRIPTION_COLUMNS, subscription_rows
from pulse_reporting.domain.cohorts import cohort_section, cohort_window
from pulse_reporting.domain.periods import parse_period
from pulse_reporting.domain.scoping import scoped_report
from pulse_reporting.generate import ReportResult, produce_report
from pulse_reporting.render.drawing import report_charts
from pulse_reporting.storage import ReportingStorage
from pulse_shared.cohorts import LedgerEvent, account_histories
from pulse_shared.events import Subscription
from pulse_shared.store import Store

PREFIX = "rcoh08"
MONTH = parse_period("monthly", "2008-05")
QUARTER = parse_period("quarterly", "2008-Q2")
EARLY = dt.datetime(2008, 6, 10, 6, tzinfo=dt.UTC)  # May ended, its trials not yet final
LATE = dt.datetime(2008, 7, 2, 6, tzinfo=dt.UTC)  # May's trials final, Q2's not

# (account, month, day, hh:mm, event type, MRR after, plan)
LEDGER: tuple[tuple[str, int, int, str, str, int, str], ...] = (
    ("A", 1, 10, "12:00", "subscription_started", 100, "basic"),
    ("A", 3, 1, "00:00", "subscription_upgraded", 200, "pro"),
    ("B", 1, 20, "12:00", "subscription_started", 100, "basic"),
    ("B", 2, 14, "12:00", "subscription_canceled", 0, "basic"),
    ("B", 4, 2, "12:00", "subscription_reactivated", 50, "basic"),
    ("C", 1, 25, "12:00", "subscription_started", 100, "pro"),
    ("C", 4, 20, "12:00", "subscription_canceled", 0, "pro"),
    ("D", 1, 28, "12:00", "trial_started", 0, "pro"),
    ("D", 2, 3, "12:00", "subscription_started", 100, "pro"),
    ("D", 4, 9, "12:00", "subscription_downgraded", 75, "basic"),
    ("E", 2, 15, "12:00", "subscription_started", 50, "basic"),
    ("E", 2, 27, "12:00", "subscription_canceled", 0, "basic"),
    ("H", 3, 5, "12:00", "subscription_started", 40, "starter"),
    ("H", 3, 20, "12:00", "subscription_canceled", 0, "starter"),
    ("H", 5, 2, "12:00", "subscription_reactivated", 40, "starter"),
    ("F", 4, 10, "12:00", "subscription_started", 80, "basic"),
    ("G", 5, 12, "12:00", "subscription_started", 60, "basic"),
    ("J", 6, 3, "12:00", "subscription_started", 90, "basic"),
    ("I", 2, 1, "12:00", "trial_started", 0, "basic"),
)

# cohort → logo retention (%) and MRR retention (%, None = n/a) by months since, monthly report
LOGO = {
    "2008-01": [100.0, 66.7, 66.7, 66.7, 66.7],
    "2008-02": [50.0, 50.0, 50.0, 50.0],
    "2008-03": [0.0, 0.0, 100.0],
    "2008-04": [100.0, 100.0],
    "2008-05": [100.0],
}
MRR: dict[str, list[float | None]] = {
    "2008-01": [100.0, 66.7, 100.0, 83.3, 83.3],
    "2008-02": [100.0, 100.0, 75.0, 75.0],
    "2008-03": [None, None, None],
    "2008-04": [100.0, 100.0],
    "2008-05": [100.0],
}
SIZES = {"2008-01": 3, "2008-02": 2, "2008-03": 1, "2008-04": 1, "2008-05": 1}


def subscriptions() -> list[Subscription]:
    out = []
    for n, (account, month, day, hhmm, kind, mrr, plan) in enumerate(LEDGER):
        hour, minute = (int(x) for x in hhmm.split(":"))
        out.append(Subscription(
            event_id=f"{PREFIX}-{account}-{n}", account_id=f"{PREFIX}-{account}",
            occurred_at=dt.datetime(2008, month, day, hour, minute, tzinfo=dt.UTC),
            event_type=kind, mrr=Decimal(mrr), plan=plan,
        ))
    return out


def ledger() -> list[LedgerEvent]:
    return [LedgerEvent(s.event_id, s.account_id, s.occurred_at, s.mrr, s.plan)
            for s in subscriptions()]


def trial_kpis() -> list[dict[str, Any]]:
    rows = []
    for period, started, converted, rate, days in (
        (MONTH, 10.0, 3.0, 0.3, 6.5), (MONTH.previous(), 8.0, 2.0, 0.25, 9.0),
        (QUARTER, 30.0, 6.0, 0.2, 7.0), (QUARTER.previous(), 20.0, 5.0, 0.25, 8.0),
    ):
        rows += [
            kpi("trials_started", period, started, unit="count"),
            kpi("trials_converted", period, converted, unit="count"),
            kpi("trial_to_paid_rate", period, rate, unit="ratio"),
            kpi("days_to_convert", period, days, unit="days"),
        ]
    return rows


_REPORTS: dict[str, dict[str, ReportResult]] = {}


@pytest.fixture
def reports(any_store: Store, tmp_path_factory: pytest.TempPathFactory
            ) -> dict[str, ReportResult]:
    """Monthly (early: trials provisional; late: final) and quarterly reports, per backend
    (made once per backend: the ledger is written twice, redelivery is harmless)."""
    backend = any_store.backend
    if backend not in _REPORTS:
        rows = subscription_rows(subscriptions())
        any_store.insert("subscriptions", rows + rows[:3], list(SUBSCRIPTION_COLUMNS))
        insert_kpis(any_store, trial_kpis())
        out = tmp_path_factory.mktemp(f"cohorts-{backend}")
        _REPORTS[backend] = {
            "monthly": produce_report(any_store, "monthly", MONTH, formats="all",
                                      out_dir=out / "monthly", now=EARLY),
            "monthly_late": produce_report(any_store, "monthly", MONTH, formats=["md", "json"],
                                           out_dir=out / "late", now=LATE),
            "quarterly": produce_report(any_store, "quarterly", QUARTER, formats="all",
                                        out_dir=out / "quarterly", now=LATE),
            "weekly": produce_report(any_store, "weekly", parse_period("weekly", "2008-05-14"),
                                     formats=["json"], out_dir=out / "weekly", now=LATE),
        }
    return _REPORTS[backend]


def _pct(value: float | None) -> float | None:
    return None if value is None else round(value * 100, 1)


def _csv(result: ReportResult, name: str) -> list[dict[str, str]]:
    with (result.paths["csv"] / f"{name}.csv").open() as fh:
        return list(csv.DictReader(fh))


def _pdf_text(result: ReportResult) -> str:
    pdftotext = shutil.which("pdftotext")
    assert pdftotext, "pdftotext missing: apt-get install -y poppler-utils"
    return subprocess.run([pdftotext, "-layout", str(result.paths["pdf"]), "-"], check=True,
                          capture_output=True, text=True).stdout


def _md_row(values: list[float | None], months: int) -> str:
    cells = ["n/a" if v is None else f"{v:.1f}%" for v in values]
    cells += [""] * (months - len(values))
    return " | ".join(cells)


# ------------------------------------------------------------------ pure computation
def test_the_window_is_the_last_twelve_months_as_of_the_period_end() -> None:
    assert cohort_window(MONTH) == (dt.date(2007, 6, 1), dt.date(2008, 5, 1),
                                    dt.date(2008, 6, 1))
    assert cohort_window(QUARTER) == (dt.date(2007, 7, 1), dt.date(2008, 6, 1),
                                      dt.date(2008, 7, 1))


def test_section_matches_the_hand_computed_cells_and_pulse_kpi_cohorts() -> None:
    section = cohort_section(MONTH, ledger())
    assert section.as_of == dt.date(2008, 6, 1)
    assert {c.cohort: c.accounts for c in section.cohorts} == SIZES
    assert {c.cohort: [_pct(x.logo_retention) for x in c.cells]
            for c in section.cohorts} == LOGO
    assert {c.cohort: [_pct(x.mrr_retention) for x in c.cells]
            for c in section.cohorts} == MRR
    # one definition: the KPI service's `pulse kpi cohorts` gives the very same cells
    first, last, as_of = cohort_window(MONTH)
    kpi_rows = kpi_cohort_retention(ledger(), as_of, first_month=first, last_month=last)
    assert [(c.cohort, x.months_since, x.accounts, x.retained_accounts, x.mrr, x.starting_mrr)
            for c in section.cohorts for x in c.cells] == [
        (r.cohort, r.months_since, r.accounts, r.retained_accounts, float(r.mrr),
         float(r.starting_mrr)) for r in kpi_rows]
    # the table shows every month in a monthly report, quarter over quarter in a quarterly
    assert section.table_months == list(range(12))
    assert cohort_section(QUARTER, ledger()).table_months == [0, 3, 6, 9]


def test_first_paid_month_is_the_month_of_the_new_mrr_movement() -> None:
    """The shared definition's first paid event is the KPI service's ``new`` movement."""
    new = {m.account_id: f"{m.occurred_at:%Y-%m}" for m in movements(
        MrrEvent(e.event_id, e.account_id, e.occurred_at, e.mrr) for e in ledger())
        if m.kind is MovementKind.NEW}
    assert {h.account_id: h.first_paid.label for h in account_histories(ledger())} == new


# ------------------------------------------------------------------ reports, both backends
def test_storage_reads_only_the_window_accounts_up_to_as_of(any_store: Store,
                                                            reports: dict[str, ReportResult]
                                                            ) -> None:
    events = ReportingStorage(any_store).cohort_ledger(*cohort_window(MONTH))
    mine = {e.account_id.removeprefix(f"{PREFIX}-") for e in events
            if e.account_id.startswith(PREFIX)}
    # J first paid in June (outside the window), I never paid
    assert mine == {"A", "B", "C", "D", "E", "H", "F", "G"}
    assert all(e.occurred_at.date() < dt.date(2008, 6, 1) for e in events)


def test_json_carries_every_cell(reports: dict[str, ReportResult]) -> None:
    data = json.loads(reports["monthly"].paths["json"].read_text())
    section = data["cohorts"]
    assert section["as_of"] == "2008-06-01"
    mine = {c["cohort"]: c for c in section["cohorts"] if c["cohort"].startswith("2008")}
    assert {k: [_pct(x["logo_retention"]) for x in c["cells"]] for k, c in mine.items()} == LOGO
    assert {k: [_pct(x["mrr_retention"]) for x in c["cells"]] for k, c in mine.items()} == MRR
    assert mine["2008-01"]["starting_mrr"] == 300.0
    assert json.loads(reports["weekly"].paths["json"].read_text())["cohorts"] is None


def test_csv_has_the_long_table(reports: dict[str, ReportResult]) -> None:
    rows = [r for r in _csv(reports["monthly"], "cohorts") if r["cohort"].startswith("2008")]
    assert len(rows) == sum(len(v) for v in LOGO.values())
    jan1 = next(r for r in rows if r["cohort"] == "2008-01" and r["months_since"] == "1")
    assert (jan1["accounts"], jan1["retained_accounts"], jan1["mrr"], jan1["starting_mrr"]) == (
        "3", "2", "200.0", "300.0")
    assert float(jan1["logo_retention"]) == pytest.approx(2 / 3)
    mar = [r for r in rows if r["cohort"] == "2008-03"]
    assert [r["mrr_retention"] for r in mar] == ["", "", ""]  # n/a: empty, never 0
    assert [r["logo_retention"] for r in mar] == ["0.0", "0.0", "1.0"]


def test_markdown_has_both_heat_map_tables(reports: dict[str, ReportResult]) -> None:
    md = reports["monthly"].paths["md"].read_text()
    section = md[md.index("## Cohort retention"):md.index("## Recommendations")]
    logo, mrr = section.split("### MRR retention")
    for cohort, values in LOGO.items():
        assert f"| {cohort} | {SIZES[cohort]} |" in logo
        line = next(x for x in logo.splitlines() if x.startswith(f"| {cohort} |"))
        assert line.endswith(f"| {_md_row(list(values), 12)} |")
    for cohort, mrr_values in MRR.items():
        line = next(x for x in mrr.splitlines() if x.startswith(f"| {cohort} |"))
        assert line.endswith(f"| {_md_row(mrr_values, 12)} |")
    assert "| 2008-03 | 1 | $0.00 | 0.0% | 0.0% | 100.0% |" in logo


def test_quarterly_table_is_quarter_over_quarter(reports: dict[str, ReportResult]) -> None:
    md = reports["quarterly"].paths["md"].read_text()
    section = md[md.index("## Cohort retention"):md.index("## Recommendations")]
    assert "quarter over quarter" in section
    assert "| Cohort | Accounts | Starting MRR | M0 | M3 | M6 | M9 |" in section
    # as of 2008-07-01 June has ended too: Jan's M3 is April's end, M6 (July) not yet
    assert "| 2008-01 | 3 | $300.00 | 100.0% | 66.7% |  |  |" in section
    assert "| 2008-03 | 1 | $0.00 | 0.0% | 100.0% |  |  |" in section
    rows = [r for r in _csv(reports["quarterly"], "cohorts") if r["cohort"] == "2008-01"]
    assert len(rows) == 6  # months 0 … 5 (January … June)


def test_html_has_the_two_heat_maps(reports: dict[str, ReportResult]) -> None:
    html = reports["monthly"].paths["html"].read_text()
    start = html.index('<section id="cohorts">')
    section = html[start:html.index("</section>", start)]
    assert section.count("<svg") == 2
    assert "Logo retention by first-paid-month cohort" in section
    assert "MRR retention by first-paid-month cohort" in section
    assert 'data-table="cohort_logo_retention"' in section
    assert 'data-table="cohort_mrr_retention"' in section


def test_heat_map_draws_values_and_leaves_n_a_blank(reports: dict[str, ReportResult]) -> None:
    report = reports["monthly"].report
    charts = {c.name: c for c in report_charts(report)}
    logo, mrr = charts["cohort_logo_retention"].svg(), charts["cohort_mrr_retention"].svg()
    assert ">67%<" in logo and ">0%<" in logo  # March's logo retention is a real 0 %
    assert ">83%<" in mrr and ">75%<" in mrr
    # March's MRR retention is n/a (no MRR at the end of its first month): no "0%" drawn
    assert ">0%<" not in mrr


def test_pdf_has_the_section(reports: dict[str, ReportResult]) -> None:
    text = _pdf_text(reports["monthly"])
    assert "Cohort retention" in text
    assert "Logo retention by first-paid-month cohort" in text  # chart title and table
    assert "66.7%" in text and "83.3%" in text
    assert "Trials started" in text and "provisional until 2008-07-01" in text


def test_grafana_heat_map_sql_gives_the_same_logo_retention(
    any_store: Store, reports: dict[str, ReportResult]
) -> None:
    """The Grafana panel's constant SQL, with today() pinned to the report's as_of."""
    path = Path(__file__).parents[2] / "deploy" / "grafana" / "generate_dashboards.py"
    spec = importlib.util.spec_from_file_location("generate_dashboards", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    sql = module.COHORT_RETENTION_SQL.replace("today()", "toDate('2008-06-01')")
    rows = any_store.query(
        f"SELECT formatDateTime(time, '%Y-%m', 'UTC') AS cohort, * FROM ({sql})")
    grid = {
        r["cohort"]: [_pct(r[f"M{k}"]) for k in range(12)] for r in rows
        if r["cohort"].startswith("2008")
    }
    assert grid == {c: [*v, *([None] * (12 - len(v)))] for c, v in LOGO.items()}


# ------------------------------------------------------------------ trials
def test_trials_are_marked_provisional_until_mature(reports: dict[str, ReportResult]) -> None:
    early = {t.kpi: t for t in reports["monthly"].report.trials}
    assert list(early) == ["trials_started", "trial_to_paid_rate", "days_to_convert"]
    assert early["trials_started"].value == 10.0 and not early["trials_started"].provisional
    assert early["trial_to_paid_rate"].value == 0.3 and early["trial_to_paid_rate"].provisional
    assert early["trial_to_paid_rate"].final_on == dt.date(2008, 7, 1)
    assert early["days_to_convert"].provisional and early["trial_to_paid_rate"].previous == 0.25
    late = {t.kpi: t for t in reports["monthly_late"].report.trials}
    assert not any(t.provisional for t in late.values())
    # the quarter ended 2008-06-30: on 2008-07-02 its conversions are still maturing
    quarter = {t.kpi: t for t in reports["quarterly"].report.trials}
    assert quarter["trial_to_paid_rate"].provisional and quarter["trials_started"].value == 30.0


def test_every_format_shows_trials_with_the_marker(reports: dict[str, ReportResult]) -> None:
    result = reports["monthly"]
    md = result.paths["md"].read_text()
    funnel = md[md.index("## Funnel"):md.index("## Budget vs actual")]
    assert "| Trials started | 10 | 8 | final |" in funnel
    assert "| Trial-to-paid rate | 30.0% (provisional) | 25.0% | provisional until 2008-07-01 |" \
        in funnel
    assert "6.5 d (provisional)" in funnel
    html = result.paths["html"].read_text()
    start = html.index('<section id="funnel">')
    section = html[start:html.index("</section>", start)]
    assert "30.0% (provisional)" in section and "provisional until 2008-07-01" in section
    rows = {r["kpi"]: r for r in _csv(result, "trials")}
    assert rows["trial_to_paid_rate"]["provisional"] == "true"
    assert rows["trials_started"]["provisional"] == "false"
    assert float(rows["trial_to_paid_rate"]["value"]) == 0.3
    data = json.loads(result.paths["json"].read_text())
    assert {t["kpi"]: t["provisional"] for t in data["trials"]} == {
        "trials_started": False, "trial_to_paid_rate": True, "days_to_convert": True}
    late = reports["monthly_late"].paths["md"].read_text()
    assert "| Trial-to-paid rate | 30.0% | 25.0% | final |" in late


# ------------------------------------------------------------------ scoping
def test_cx_sees_retention_but_not_trials(reports: dict[str, ReportResult]) -> None:
    report = reports["monthly"].report
    cx = scoped_report(report, "cx")
    assert cx.cohorts == report.cohorts  # revenue retention in total: the revenue family
    assert cx.trials == []  # funnel family
    platform = scoped_report(report, "platform")
    assert platform.cohorts is None and platform.trials == []
    assert scoped_report(report, "cmo").trials == report.trials
