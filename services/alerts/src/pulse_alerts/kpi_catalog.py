"""The KPI catalog as the rules loader needs it (names, grains, dimensions), from the one
catalog in :mod:`pulse_shared.kpi_catalog`."""

from __future__ import annotations

from pulse_alerts.domain.rules import KpiCatalog, KpiScope
from pulse_shared.kpi_catalog import CATALOG


def installed_catalog() -> KpiCatalog:
    """Every KPI's grains and dimensions."""
    return {
        kpi.name: KpiScope(
            grains=frozenset(str(g) for g in kpi.grains),
            dimensions=frozenset(kpi.dimensions),
        )
        for kpi in CATALOG
    }
