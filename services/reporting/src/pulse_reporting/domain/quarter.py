"""The quarterly report's own section: the quarter against the previous quarter and the
same quarter a year earlier, the last five quarters, and the quarter month by month.

Pure: no I/O, no clock. Every number is a ``kpi_values`` row as stored (quarter grain for
the quarters, month grain for the months; attribution KPIs under the default model): a
missing value is n/a and its change too, never 0. The cohort table of the quarterly
report is quarter-spaced already (``CohortSection.table_months`` 0, 3, 6, 9).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field

from pulse_reporting.domain.assemble import Coverage, covered
from pulse_reporting.domain.formatting import fmt_value
from pulse_reporting.domain.kpis import KpiSpec
from pulse_reporting.domain.kpis import spec as kpi_spec
from pulse_reporting.domain.model import (
    Better,
    Fmt,
    InsightChart,
    InsightColumn,
    InsightSection,
    InsightSeries,
    InsightTable,
    KpiValue,
)
from pulse_reporting.domain.periods import Period, period_complete
from pulse_shared.attribution_models import DEFAULT_MODEL
from pulse_shared.attribution_models import label as model_label
from pulse_shared.events import Grain
from pulse_shared.periods import periods_between

KEY = "quarter"
#: The KPIs compared quarter over quarter (the monthly headline's, in its order).
QUARTER_KPIS: tuple[str, ...] = (
    "spend", "attributed_revenue", "attributed_pipeline", "roas", "marketing_roi", "cac",
    "ltv", "ltv_cac", "mrr", "arr", "mrr_net_new", "nrr", "gross_mrr_churn_rate", "leads",
    "new_customers", "cpl",
)
#: The KPIs of the five-quarter charts: money flows, then counts.
MONEY_CHART = ("spend", "attributed_revenue", "mrr_net_new")
COUNT_CHART = ("leads", "new_customers")
#: The KPIs shown month by month (flows and stocks whose months read on their own).
MONTH_KPIS = ("spend", "attributed_revenue", "leads", "new_customers", "mrr_net_new", "mrr")
QUARTERS = 5  # the quarter and the four before it (the fifth back is a year ago)


@dataclass(frozen=True)
class QuarterInputs:
    quarters: tuple[Period, ...]  # oldest first; the last is the report's quarter
    months: tuple[Period, ...]  # the quarter's months
    kpis: list[KpiValue] = field(default_factory=list)  # quarter and month grain, total
    coverage: Coverage | None = None  # source table → days with data (None: unknown)


def quarter_periods(period: Period) -> tuple[Period, ...]:
    out = [period]
    for _ in range(QUARTERS - 1):
        out.append(out[-1].previous())
    return tuple(reversed(out))


def quarter_months(period: Period) -> tuple[Period, ...]:
    return tuple(periods_between(period.start, period.last_day, Grain.MONTH))


def _change(current: float | None, previous: float | None) -> float | None:
    if current is None or not previous:
        return None
    return (current - previous) / abs(previous)


def _good(spec: KpiSpec, change: float | None) -> float | None:
    """The change signed so that positive is good news (None for neutral KPIs)."""
    if change is None or spec.better is Better.NEUTRAL:
        return None
    return change if spec.better is Better.UP else -change


def _specs() -> list[KpiSpec]:
    return [kpi_spec(k) for k in QUARTER_KPIS]


def quarter_section(
    inputs: QuarterInputs, period: Period, now: dt.datetime
) -> InsightSection | None:
    if period.grain != Grain.QUARTER.value:
        return None
    periods = {p.label: p for p in (*inputs.quarters, *inputs.months)}
    # an empty sum over a period without source data is missing, not 0 (the headline's rule)
    values: dict[tuple[str, str], float | None] = {
        (r.kpi, r.period): covered(inputs.coverage, r.kpi, periods[r.period], r.value)
        for r in inputs.kpis
        if r.dimension == "all" and r.dimension_value == "" and r.period in periods
    }
    quarters = [q.label for q in inputs.quarters]
    cur, prev, year = quarters[-1], quarters[-2], quarters[0]
    specs = _specs()
    title = f"{cur}: quarter over quarter and year over year"
    notes = [
        f"QoQ: {cur} vs {prev}; YoY: {cur} vs {year}. Changes are relative (a rate's change "
        "is relative to the rate). Attributed revenue, pipeline, ROAS and ROI under the "
        f"default model, {model_label(DEFAULT_MODEL)}.",
        "Cohort retention in this report is quarter-spaced (M0, M3, M6, M9).",
    ]
    first = _data_from(inputs.coverage)
    if first is not None and first > inputs.quarters[0].start:
        notes.insert(0, f"Not every source has data before {first.isoformat()}: the "
                        "quarters before it are partial or n/a (an empty sum is not 0).")
    if not period_complete(period, now.date()):
        notes.insert(0, f"{cur} is still running: its figures are to date, not a whole "
                        "quarter.")
    kpis = list(QUARTER_KPIS)
    if not any(values.get((s.kpi, cur)) is not None for s in specs):
        return InsightSection(key=KEY, title=title, kpis=kpis, notes=notes[-1:],
                              unavailable=f"No quarter-grain KPI values for {cur} yet.")
    rows: list[list[str | float | int | None]] = []
    movers: list[tuple[float, str, float]] = []
    for s in specs:
        c, p, y = values.get((s.kpi, cur)), values.get((s.kpi, prev)), values.get((s.kpi, year))
        qoq, yoy = _change(c, p), _change(c, y)
        rows.append([s.label, c, p, qoq, y, yoy])
        good = _good(s, qoq)
        if good is not None and qoq is not None:
            movers.append((good, s.label, qoq))
    comparison = InsightTable(
        name="quarter_comparison", title=f"Headline KPIs: {cur} vs {prev} and {year}",
        columns=[
            InsightColumn(key="kpi", title="KPI"),
            InsightColumn(key="quarter", title=cur, row_fmt=True),
            InsightColumn(key="previous_quarter", title=prev, row_fmt=True),
            InsightColumn(key="qoq_change", title="QoQ", fmt=Fmt.PERCENT),
            InsightColumn(key="year_ago_quarter", title=year, row_fmt=True),
            InsightColumn(key="yoy_change", title="YoY", fmt=Fmt.PERCENT),
        ],
        rows=rows, row_fmts=[s.fmt for s in specs],
    )
    by_kpi = {s.kpi: s for s in specs}
    month_specs = [by_kpi[k] for k in MONTH_KPIS]
    month_labels = [m.label for m in inputs.months]
    months = InsightTable(
        name="quarter_months", title=f"{cur} month by month",
        columns=[InsightColumn(key="kpi", title="KPI"),
                 *(InsightColumn(key=f"m{i + 1}", title=label, row_fmt=True)
                   for i, label in enumerate(month_labels)),
                 InsightColumn(key="quarter", title=cur, row_fmt=True)],
        rows=[[s.label, *(values.get((s.kpi, m)) for m in month_labels),
               values.get((s.kpi, cur))] for s in month_specs],
        row_fmts=[s.fmt for s in month_specs],
    )
    charts = [
        InsightChart(
            name=name, title=chart_title, kind="bar", fmt=fmt, labels=quarters,
            series=[InsightSeries(name=by_kpi[k].label,
                                  values=[values.get((k, q)) for q in quarters]) for k in names],
        )
        for name, chart_title, fmt, names in (
            ("money", "Spend, attributed revenue and net new MRR, last five quarters",
             Fmt.MONEY, MONEY_CHART),
            ("counts", "Leads and new customers, last five quarters", Fmt.COUNT, COUNT_CHART),
        )
    ]
    return InsightSection(
        key=KEY, title=title, statements=_statements(values, cur, prev, year, movers),
        charts=charts, tables=[comparison, months], notes=notes, kpis=kpis,
    )


def _data_from(coverage: Coverage | None) -> dt.date | None:
    """The first day every source table has data (None: unknown)."""
    if not coverage:
        return None
    return max(first for first, _ in coverage.values())


def _statements(
    values: dict[tuple[str, str], float | None], cur: str, prev: str, year: str,
    movers: Sequence[tuple[float, str, float]],
) -> list[str]:
    out: list[str] = []
    for kpi in ("mrr", "attributed_revenue", "new_customers", "cac"):
        s = kpi_spec(kpi)
        c = values.get((kpi, cur))
        if c is None:
            continue
        parts = []
        for base in (prev, year):
            p = values.get((kpi, base))
            change = _change(c, p)
            parts.append(f"{fmt_value(p, s.fmt)} in {base}"
                         + ("" if change is None else f", {change * 100:+.1f}%"))
        out.append(f"{s.label} {cur}: {fmt_value(c, s.fmt)} ({'; '.join(parts)}).")
    ranked = sorted(movers, key=lambda m: (-m[0], m[1]))
    best = [m for m in ranked if m[0] > 0][:3]
    worst = [m for m in reversed(ranked) if m[0] < 0][:3]
    if best:
        out.append(f"Improved most over {prev}: "
                   + ", ".join(f"{label} {change * 100:+.1f}%" for _, label, change in best)
                   + ".")
    if worst:
        out.append(f"Worsened most over {prev}: "
                   + ", ".join(f"{label} {change * 100:+.1f}%" for _, label, change in worst)
                   + ".")
    return out
