"""The segments insight section (monthly, quarterly, annual reports): MRR, new customers,
churned MRR and ARPA by customer segment (SMB, mid-market, enterprise), against the
previous period.

Pure: no I/O, no clock. The numbers are the KPI service's breakdowns by ``segment`` (the
account's profile at the time, ``unknown`` without one: pulse_kpi.domain.segments). A year
has no KPI grain: it is read as its four quarters — flows (new customers, churned MRR) are
their sum, stocks (MRR, ARPA) the last quarter's, i.e. at the year's end. A value the KPI
service does not have is n/a, never 0.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

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
from pulse_reporting.domain.periods import Period, YearPeriod, period_complete

KEY = "segments"
TITLE = "Segments: SMB, mid-market, enterprise"
DIMENSION = "segment"
FLOWS = ("new_customers", "mrr_churn", "mrr_new")
STOCKS = ("mrr", "arpa", "paying_accounts")
KPIS: tuple[str, ...] = (*STOCKS, *FLOWS)
#: Display order; other members (a CRM's own segment names cannot occur: they are
#: normalised at ingest) and ``unknown`` follow.
ORDER = ("enterprise", "mid_market", "smb")
NAMES = {"smb": "SMB", "mid_market": "Mid-market", "enterprise": "Enterprise",
         "unknown": "No profile"}


@dataclass(frozen=True)
class SegmentInputs:
    """The compared periods (current, previous), the KPI periods each is read as (itself,
    or a year's quarters, in order) and the segment rows of those KPIs."""

    periods: tuple[Period, Period]
    parts: dict[str, tuple[str, ...]]
    kpis: list[KpiValue] = field(default_factory=list)


def segment_values(
    inputs: SegmentInputs, label: str
) -> dict[str, dict[str, float | None]]:
    """segment → KPI → value of the compared period ``label`` (flows summed over its
    parts, stocks from its last part; None when no part has a value)."""
    parts = inputs.parts.get(label, ())
    table: dict[tuple[str, str, str], float | None] = {
        (r.dimension_value, r.kpi, r.period): r.value
        for r in inputs.kpis if r.dimension == DIMENSION
    }
    members = {member for member, _, period in table if period in parts}
    out: dict[str, dict[str, float | None]] = {}
    for member in members:
        values: dict[str, float | None] = {}
        for kpi in FLOWS:
            found = [v for p in parts if (v := table.get((member, kpi, p))) is not None]
            values[kpi] = sum(found) if found else None
        for kpi in STOCKS:
            values[kpi] = table.get((member, kpi, parts[-1])) if parts else None
        out[member] = values
    return out


def _ordered(members: Sequence[str]) -> list[str]:
    return sorted(members, key=lambda m: (ORDER.index(m) if m in ORDER else len(ORDER),
                                          m == "unknown", m))


def _name(member: str) -> str:
    return NAMES.get(member, member)


def _share(part: float | None, whole: float | None) -> float | None:
    return None if part is None or not whole else part / whole


def _change(current: float | None, previous: float | None) -> float | None:
    return None if current is None or not previous else (current - previous) / abs(previous)


def _money(value: float | None) -> str:
    return fmt_value(value, Fmt.MONEY)


def _total(values: Mapping[str, Mapping[str, float | None]], kpi: str) -> float | None:
    found = [v[kpi] for v in values.values() if v.get(kpi) is not None]
    return sum(v for v in found if v is not None) if found else None


def _statements(
    cur: str, prev: str, now_values: Mapping[str, Mapping[str, float | None]],
    before: Mapping[str, Mapping[str, float | None]],
) -> list[str]:
    out: list[str] = []
    total = _total(now_values, "mrr")
    with_mrr = [m for m in now_values if now_values[m]["mrr"] is not None]
    if with_mrr and total:
        top = max(with_mrr, key=lambda m: (now_values[m]["mrr"] or 0.0, m))
        share = _share(now_values[top]["mrr"], total)
        previous_share = _share(before.get(top, {}).get("mrr"), _total(before, "mrr"))
        out.append(
            f"{_name(top)} holds {fmt_value(share, Fmt.PERCENT)} of MRR at the end of {cur}: "
            f"{_money(now_values[top]['mrr'])} of {_money(total)} "
            f"({prev}: {fmt_value(previous_share, Fmt.PERCENT)})."
        )
    new = {m: v["new_customers"] for m, v in now_values.items() if v["new_customers"]}
    if new:
        parts = ", ".join(f"{_name(m)} {fmt_value(new[m], Fmt.COUNT)}" for m in _ordered(list(new)))
        previous_new = _total(before, "new_customers")
        out.append(f"New customers {cur}: {parts} ({fmt_value(sum(new.values()), Fmt.COUNT)} "
                   f"in all; {prev}: {fmt_value(previous_new, Fmt.COUNT)}).")
    churned = {m: v["mrr_churn"] for m, v in now_values.items() if v["mrr_churn"]}
    if churned:
        worst = min(churned, key=lambda m: (churned[m] or 0.0, m))
        out.append(
            f"Churned MRR {cur} was largest in {_name(worst)}: {_money(churned[worst])} of "
            f"{_money(sum(v for v in churned.values() if v is not None))} "
            f"({prev}: {_money(before.get(worst, {}).get('mrr_churn'))})."
        )
    arpa = {m: v["arpa"] for m, v in now_values.items()
            if v["arpa"] is not None and m != "unknown"}
    if len(arpa) >= 2:
        high = max(arpa, key=lambda m: (arpa[m] or 0.0, m))
        low = min(arpa, key=lambda m: (arpa[m] or 0.0, m))
        ratio = _share(arpa[high], arpa[low])
        out.append(
            f"ARPA at the end of {cur}: {_name(high)} {_money(arpa[high])} vs {_name(low)} "
            f"{_money(arpa[low])} ({fmt_value(ratio, Fmt.RATIO)})."
        )
    return out


def segments_section(
    inputs: SegmentInputs, period: Period, now: dt.datetime
) -> InsightSection | None:
    """The section, or why it is unavailable (no segment breakdowns in either period)."""
    cur, prev = (p.label for p in inputs.periods)
    now_values, before = segment_values(inputs, cur), segment_values(inputs, prev)
    notes = [
        "Segment = the account's profile at the time (ingest kind accounts): movements and "
        "new customers on their day, MRR and ARPA at the period's end; accounts without a "
        "profile are 'No profile'. Churned MRR is negative.",
    ]
    if isinstance(period, YearPeriod):
        notes.append("A year is read as its four quarters: new customers and churned MRR "
                     "summed, MRR and ARPA at the end of its last quarter.")
    if not period_complete(period, now.date()):
        notes.append(f"{cur} is still running: new customers and churn to date, MRR and "
                     "ARPA as of today.")
    kpis = list(KPIS)
    if not now_values and not before:
        return InsightSection(
            key=KEY, title=TITLE, kpis=kpis, dimensions=[DIMENSION], notes=notes[:1],
            unavailable=(f"No breakdown by segment for {cur} or {prev}: no account "
                         "profiles ingested yet (ingest kind accounts)."),
        )
    # A member with nothing in either period (no profile-less account left, say) is noise.
    members = _ordered([m for m in sorted(set(now_values) | set(before)) if any(
        values.get(m, {}).get(kpi) for values in (now_values, before) for kpi in KPIS)])
    total = _total(now_values, "mrr")
    empty: dict[str, float | None] = dict.fromkeys(KPIS)

    def value(values: Mapping[str, Mapping[str, float | None]], m: str, kpi: str) -> float | None:
        return values.get(m, empty)[kpi]

    table = InsightTable(
        name="segments", title=f"By segment, {cur} vs {prev}",
        columns=[
            InsightColumn(key="segment", title="Segment"),
            InsightColumn(key="mrr", title=f"MRR {cur}", fmt=Fmt.MONEY),
            InsightColumn(key="mrr_share", title="Share of MRR", fmt=Fmt.PERCENT),
            InsightColumn(key="mrr_previous", title=f"MRR {prev}", fmt=Fmt.MONEY),
            InsightColumn(key="mrr_change", title="Change", fmt=Fmt.PERCENT),
            InsightColumn(key="new_customers", title="New customers", fmt=Fmt.COUNT),
            InsightColumn(key="mrr_churn", title="Churned MRR", fmt=Fmt.MONEY),
            InsightColumn(key="arpa", title="ARPA", fmt=Fmt.MONEY),
        ],
        rows=[[_name(m), value(now_values, m, "mrr"),
               _share(value(now_values, m, "mrr"), total), value(before, m, "mrr"),
               _change(value(now_values, m, "mrr"), value(before, m, "mrr")),
               value(now_values, m, "new_customers"), value(now_values, m, "mrr_churn"),
               value(now_values, m, "arpa")] for m in members],
    )
    names = [_name(m) for m in members]
    charts = [
        InsightChart(
            name="segments_mrr", title="MRR by segment", kind="bar", fmt=Fmt.MONEY,
            labels=names,
            series=[InsightSeries(name=cur, values=[value(now_values, m, "mrr") for m in members]),
                    InsightSeries(name=prev, values=[value(before, m, "mrr") for m in members])],
        ),
        InsightChart(
            name="segments_new_customers", title="New customers by segment", kind="bar",
            fmt=Fmt.COUNT, labels=names,
            series=[InsightSeries(name=cur, values=[value(now_values, m, "new_customers")
                                                    for m in members]),
                    InsightSeries(name=prev, values=[value(before, m, "new_customers")
                                                     for m in members])],
        ),
    ]
    return InsightSection(
        key=KEY, title=TITLE, statements=_statements(cur, prev, now_values, before),
        charts=charts, tables=[table], notes=notes, kpis=kpis, dimensions=[DIMENSION],
    )
