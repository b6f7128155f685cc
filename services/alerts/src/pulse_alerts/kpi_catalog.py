"""The KPI catalog as the rules loader needs it (names, grains, dimensions).

The catalog belongs to the KPI service (``pulse_kpi.domain.catalog``). The alerts package
does not depend on ``pulse-kpi`` (its image ships without it), so the catalog is read when
that package is installed — always in the ``pulse`` CLI and the workspace — and rules are
otherwise checked for grains and dimensions only.
"""

from __future__ import annotations

import importlib
from typing import Any

from pulse_alerts.domain.rules import KpiCatalog, KpiScope


def installed_catalog() -> KpiCatalog | None:
    """The KPI catalog when ``pulse_kpi`` is importable, else None."""
    try:
        module: Any = importlib.import_module("pulse_kpi.domain.catalog")
    except ImportError:
        return None
    return {
        kpi.name: KpiScope(
            grains=frozenset(str(getattr(g, "value", g)) for g in kpi.grains),
            dimensions=frozenset(kpi.dimensions),
        )
        for kpi in module.CATALOG
    }
