"""The martech insight section (monthly, quarterly, annual reports): what marketing tools
and licences cost, by tool category, and what they do to CAC and marketing ROI.

Pure: no I/O, no clock. CAC and ROI with and without tools are the KPI service's
(``cac`` vs ``cac_fully_loaded``, ``marketing_roi`` vs ``marketing_roi_fully_loaded``,
default attribution model) for a month or a quarter. A year has no KPI grain: its numbers
are recomputed from its four quarters' sums exactly as the catalog defines them
(spend ÷ new customers, (attributed revenue − cost) ÷ cost), n/a unless every quarter was
measured. A value the KPI service does not have is n/a, never 0.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from pulse_reporting.domain.assemble import Coverage, covered
from pulse_reporting.domain.formatting import fmt_value
from pulse_reporting.domain.model import (
    Fmt,
    InsightChart,
    InsightColumn,
    InsightSection,
    InsightSeries,
    InsightTable,
    KpiValue,
)
from pulse_reporting.domain.periods import (
    Period,
    YearPeriod,
    parse_data_period,
    period_complete,
)
from pulse_shared.attribution_models import DEFAULT_MODEL
from pulse_shared.attribution_models import label as model_label
from pulse_shared.events import Grain
from pulse_shared.kpi_catalog import MARTECH_SPREAD

KEY = "martech"
TITLE = "Martech spend: tools and licences"
#: The flows a year's CAC and ROI are recomputed from, and the KPIs read for a month/quarter.
FLOWS = ("spend", "martech_cost", "new_customers", "attributed_revenue")
RATIOS = ("cac", "cac_fully_loaded", "marketing_roi", "marketing_roi_fully_loaded")
KPIS: tuple[str, ...] = (*FLOWS, "marketing_cost", *RATIOS)


@dataclass(frozen=True)
class MartechInputs:
    """What the section reads: per compared period (current, previous, year ago) the KPI
    periods it is made of (itself, or a year's four quarters), their total-dimension KPI
    rows, and tool cost per month and category over the three periods."""

    periods: tuple[Period, Period, Period]
    parts: dict[str, tuple[str, ...]]  # compared period label -> KPI period labels
    kpis: list[KpiValue] = field(default_factory=list)
    # (month's first day, category, amount) rows of martech_costs
    costs: list[tuple[dt.date, str, float]] = field(default_factory=list)
    coverage: Coverage | None = None  # source table → days with data (None: unknown)


def kpi_parts(period: Period) -> tuple[str, tuple[str, ...]]:
    """(grain, labels) of the KPI periods ``period`` is read as: itself, or a year's
    quarters (no year grain)."""
    if isinstance(period, YearPeriod):
        return Grain.QUARTER.value, tuple(period.quarter(q).label for q in range(1, 5))
    return period.grain, (period.label,)


def compared(period: Period) -> tuple[Period, Period, Period]:
    return period, period.previous(), period.year_ago()


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or not denominator:
        return None
    return numerator / denominator


def period_values(inputs: MartechInputs, label: str) -> dict[str, float | None]:
    """The compared period's KPIs: read (one KPI period) or recomputed from its quarters."""
    parts = inputs.parts.get(label, ())
    # an empty sum over a period without source data is missing, not 0 (the headline's rule)
    table: dict[tuple[str, str], float | None] = {}
    for r in inputs.kpis:
        if r.dimension == "all" and r.dimension_value == "":
            of = parse_data_period(r.period)
            table[(r.kpi, r.period)] = (
                r.value if of is None else covered(inputs.coverage, r.kpi, of, r.value))
    if len(parts) == 1:
        return {k: table.get((k, parts[0])) for k in KPIS}
    sums: dict[str, float | None] = {}
    for kpi in FLOWS:
        values = [table.get((kpi, p)) for p in parts]
        sums[kpi] = None if not parts or any(v is None for v in values) else sum(
            v for v in values if v is not None)
    spend, tools = sums["spend"], sums["martech_cost"]
    cost = None if spend is None or tools is None else spend + tools
    revenue, new = sums["attributed_revenue"], sums["new_customers"]
    return {
        **sums, "marketing_cost": cost,
        "cac": _ratio(spend, new) if spend else None,
        "cac_fully_loaded": _ratio(cost, new) if cost else None,
        "marketing_roi": _ratio(None if revenue is None or spend is None else revenue - spend,
                                spend),
        "marketing_roi_fully_loaded": _ratio(
            None if revenue is None or cost is None else revenue - cost, cost),
    }


def category_costs(inputs: MartechInputs, period: Period) -> dict[str, float]:
    out: dict[str, float] = {}
    for month, category, amount in inputs.costs:
        if period.start <= month < period.end:
            out[category or "uncategorised"] = out.get(category or "uncategorised", 0.0) + amount
    return out


def _change(current: float | None, previous: float | None) -> float | None:
    if current is None or not previous:
        return None
    return (current - previous) / abs(previous)


def _money(value: float | None) -> str:
    return fmt_value(value, Fmt.MONEY)


def _statements(
    labels: Sequence[str], values: Mapping[str, Mapping[str, float | None]],
    categories: Mapping[str, Mapping[str, float]],
) -> list[str]:
    cur, prev, year = labels
    v, p = values[cur], values[prev]
    out: list[str] = []
    tools, cost = v["martech_cost"], v["marketing_cost"]
    share = _ratio(tools, cost)
    text = f"Martech cost {cur}: {_money(tools)}"
    if cost is not None:
        text += (f", {fmt_value(share, Fmt.PERCENT)} of marketing cost {_money(cost)} "
                 f"(ad spend {_money(v['spend'])} + tools)")
    text += f"; {prev}: {_money(p['martech_cost'])}; {year}: "
    text += f"{_money(values[year]['martech_cost'])}."
    out.append(text)
    by_category = categories[cur]
    if by_category:
        top, amount = max(by_category.items(), key=lambda item: (item[1], item[0]))
        total = sum(by_category.values())
        out.append(
            f"Largest tool category {cur}: {top} at {_money(amount)} "
            f"({fmt_value(_ratio(amount, total), Fmt.PERCENT)} of {_money(total)} across "
            f"{len(by_category)} categor{'y' if len(by_category) == 1 else 'ies'})."
        )
    cac, loaded = v["cac"], v["cac_fully_loaded"]
    if cac is not None or loaded is not None:
        text = (f"CAC {cur}: {_money(cac)} on ad spend alone, {_money(loaded)} with tools "
                f"({fmt_value(v['new_customers'], Fmt.COUNT)} new customers)")
        if cac is not None and loaded is not None:
            text += (f": tools add {_money(loaded - cac)} per new customer "
                     f"({fmt_value(_change(loaded, cac), Fmt.PERCENT)})")
        out.append(text + f"; {prev}: {_money(p['cac'])} / {_money(p['cac_fully_loaded'])}.")
    roi, roi_loaded = v["marketing_roi"], v["marketing_roi_fully_loaded"]
    if roi is not None or roi_loaded is not None:
        out.append(
            f"Marketing ROI {cur}: {fmt_value(roi, Fmt.PERCENT)} on ad spend alone, "
            f"{fmt_value(roi_loaded, Fmt.PERCENT)} with tools; {prev}: "
            f"{fmt_value(p['marketing_roi'], Fmt.PERCENT)} / "
            f"{fmt_value(p['marketing_roi_fully_loaded'], Fmt.PERCENT)}."
        )
    return out


def martech_section(
    inputs: MartechInputs, period: Period, now: dt.datetime
) -> InsightSection | None:
    """The section, or why it is unavailable (no tool costs recorded in any compared
    period and no martech KPI)."""
    periods = inputs.periods
    labels = [p.label for p in periods]
    values = {label: period_values(inputs, label) for label in labels}
    categories = {p.label: category_costs(inputs, p) for p in periods}
    notes = [
        "Martech = tool and licence costs (ingest kind martech). " + MARTECH_SPREAD,
        "Fully loaded = ad spend + martech. Attributed revenue (ROI) under the default "
        f"model, {model_label(DEFAULT_MODEL)}.",
    ]
    if isinstance(period, YearPeriod):
        notes.append("A year's CAC and ROI are recomputed from its four quarters' spend, "
                     "tool cost, new customers and attributed revenue (n/a unless every "
                     "quarter has values).")
    if not period_complete(period, now.date()):
        notes.append(f"{period.label} is still running: costs and KPIs to date.")
    kpis = ["martech_cost", *RATIOS]
    if not any(categories.values()) and all(
        values[label]["martech_cost"] is None for label in labels
    ):
        return InsightSection(
            key=KEY, title=TITLE, kpis=kpis, notes=notes[:1],
            unavailable=(f"No martech (tool and licence) costs recorded for {labels[0]} or "
                         f"the periods it is compared with ({labels[1]}, {labels[2]})."),
        )
    names = sorted(set(categories[labels[0]]) | set(categories[labels[1]]),
                   key=lambda c: (-categories[labels[0]].get(c, 0.0), c))
    cur, prev = categories[labels[0]], categories[labels[1]]
    total = sum(cur.values())
    by_category = InsightTable(
        name="martech_by_category", title=f"Tool cost by category, {labels[0]} vs {labels[1]}",
        columns=[
            InsightColumn(key="category", title="Category"),
            InsightColumn(key="cost", title=labels[0], fmt=Fmt.MONEY),
            InsightColumn(key="previous", title=labels[1], fmt=Fmt.MONEY),
            InsightColumn(key="change_pct", title="Change", fmt=Fmt.PERCENT),
            InsightColumn(key="share", title="Share", fmt=Fmt.PERCENT),
        ],
        rows=[[c, cur.get(c), prev.get(c), _change(cur.get(c), prev.get(c)),
               _ratio(cur.get(c), total)] for c in names],
    )
    economics = InsightTable(
        name="martech_cac_roi", title="CAC and marketing ROI without and with tools",
        columns=[
            InsightColumn(key="period", title="Period"),
            InsightColumn(key="spend", title="Ad spend", fmt=Fmt.MONEY),
            InsightColumn(key="martech_cost", title="Martech", fmt=Fmt.MONEY),
            InsightColumn(key="cac", title="CAC (ad spend)", fmt=Fmt.MONEY),
            InsightColumn(key="cac_fully_loaded", title="CAC (with tools)", fmt=Fmt.MONEY),
            InsightColumn(key="marketing_roi", title="ROI (ad spend)", fmt=Fmt.PERCENT),
            InsightColumn(key="marketing_roi_fully_loaded", title="ROI (with tools)",
                          fmt=Fmt.PERCENT),
        ],
        rows=[[label, *(values[label][k] for k in ("spend", "martech_cost", *RATIOS))]
              for label in labels],
    )
    charts = []
    if names:
        charts.append(InsightChart(
            name="by_category", title="Martech cost by tool category", kind="bar",
            fmt=Fmt.MONEY, labels=names,
            series=[InsightSeries(name=labels[0], values=[cur.get(c) for c in names]),
                    InsightSeries(name=labels[1], values=[prev.get(c) for c in names])],
        ))
    ordered = [labels[2], labels[1], labels[0]]  # oldest first
    charts.append(InsightChart(
        name="cac", title="CAC: ad spend only vs with tools", kind="bar", fmt=Fmt.MONEY,
        labels=ordered,
        series=[InsightSeries(name="ad spend only",
                              values=[values[p]["cac"] for p in ordered]),
                InsightSeries(name="with tools (fully loaded)",
                              values=[values[p]["cac_fully_loaded"] for p in ordered])],
    ))
    return InsightSection(
        key=KEY, title=TITLE, statements=_statements(labels, values, categories),
        charts=charts, tables=[by_category, economics], notes=notes, kpis=kpis,
    )
