"""Cohort retention and cohort economics from the subscription ledger.

The definition lives in :mod:`pulse_shared.cohorts` so that ``pulse kpi cohorts`` and the
reporting service's cohort section (a separate deployable that must not import pulse_kpi)
compute the same numbers by one definition; this module re-exports it for the KPI service.
"""

from __future__ import annotations

from pulse_shared.cohorts import (
    UNKNOWN,
    AccountHistory,
    CohortBy,
    CohortEconomicsRow,
    CohortRow,
    LedgerEvent,
    account_histories,
    cohort_economics,
    cohort_retention,
)

__all__ = [
    "UNKNOWN",
    "AccountHistory",
    "CohortBy",
    "CohortEconomicsRow",
    "CohortRow",
    "LedgerEvent",
    "account_histories",
    "cohort_economics",
    "cohort_retention",
]
