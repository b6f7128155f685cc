"""How reports and the dashboard show a KPI, read from the one catalog
(:mod:`pulse_shared.kpi_catalog`): its label, number format and which direction of change
is good news. Reports only choose which KPIs to show, and which ratios read better as
percentages (a display choice the catalog leaves to the reader)."""

from __future__ import annotations

from dataclasses import dataclass

from pulse_reporting.domain.model import Better, Fmt
from pulse_shared import kpi_catalog
from pulse_shared.kpi_catalog import Direction, Unit

#: Ratios shown as percentages (5.0 %) rather than multiples (3.20x).
PERCENT_KPIS = frozenset({
    "marketing_roi", "nrr", "gross_mrr_churn_rate", "net_mrr_churn_rate", "logo_churn_rate",
    "ctr", "pacing",
})
_FMT = {Unit.USD: Fmt.MONEY, Unit.COUNT: Fmt.COUNT, Unit.RATIO: Fmt.RATIO,
        Unit.MONTHS: Fmt.MONTHS, Unit.DAYS: Fmt.DAYS, Unit.HOURS: Fmt.HOURS,
        Unit.POINTS: Fmt.POINTS}
_BETTER = {Direction.UP: Better.UP, Direction.DOWN: Better.DOWN,
           Direction.NEUTRAL: Better.NEUTRAL}


@dataclass(frozen=True)
class KpiSpec:
    kpi: str
    label: str
    fmt: Fmt
    better: Better


def spec(kpi: str) -> KpiSpec:
    """Display metadata of a catalog KPI (KeyError for a name the catalog does not know)."""
    definition = kpi_catalog.BY_NAME[kpi]
    fmt = _FMT[definition.unit]
    if fmt is Fmt.RATIO and (kpi in PERCENT_KPIS or kpi.startswith("conv_")):
        fmt = Fmt.PERCENT
    return KpiSpec(kpi, definition.label or kpi, fmt, _BETTER[definition.direction])
