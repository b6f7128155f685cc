"""The KPI catalog (re-exported from :mod:`pulse_kpi.domain.catalog`)."""

from pulse_kpi.domain.catalog import (
    BY_NAME,
    CATALOG,
    MODELS,
    STAGE_PAIRS,
    Direction,
    KpiDef,
    Unit,
    unit_of,
)

__all__ = [
    "BY_NAME", "CATALOG", "MODELS", "STAGE_PAIRS", "Direction", "KpiDef", "Unit", "unit_of",
]
