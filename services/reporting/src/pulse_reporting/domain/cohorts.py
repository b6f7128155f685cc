"""Cohort retention section and trial KPIs of a report (issue 17). Pure: no I/O, no clock.

Retention is computed by the one shared definition (:func:`pulse_shared.cohorts.
cohort_retention`, the same as ``pulse kpi cohorts``) over the ledger that
:meth:`pulse_reporting.storage.ReportingStorage.cohort_ledger` reads — reporting is a separate
deployable and never imports the KPI service.

Trial KPIs come from ``kpi_values`` like every other KPI of the report; a trial KPI whose
period is not yet final (:func:`pulse_shared.kpi_catalog.complete_on`: the conversion window
of trials started late in the period is still open) is marked provisional.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable

from pulse_reporting.domain.model import (
    CohortCell,
    CohortLine,
    CohortSection,
    Fmt,
    TrialMetric,
)
from pulse_reporting.domain.periods import Period, ReportKind
from pulse_shared import kpi_catalog
from pulse_shared.cohorts import CohortBy, LedgerEvent, cohort_retention

#: Cohorts shown: the last twelve first-paid months that ended by the period's end.
COHORTS = 12
#: Trial KPIs shown with the funnel, in order (label and format from here, the catalog's
#: ``matures_after_days`` decides when each is final).
TRIAL_KPIS: tuple[tuple[str, str, Fmt], ...] = (
    ("trials_started", "Trials started", Fmt.COUNT),
    ("trial_to_paid_rate", "Trial-to-paid rate", Fmt.PERCENT),
    ("days_to_convert", "Days to convert (median)", Fmt.DAYS),
)


def _month_start(day: dt.date, back: int = 0) -> dt.date:
    """First day of the month ``back`` months before ``day``'s month."""
    index = day.year * 12 + day.month - 1 - back
    return dt.date(index // 12, index % 12 + 1, 1)


def cohort_window(period: Period) -> tuple[dt.date, dt.date, dt.date]:
    """``(first_month, last_month, as_of)`` of a report period's cohort section: the last
    :data:`COHORTS` months up to the period's last month; ``as_of`` is the day after the
    period, so only months that ended within it are retention points."""
    last = _month_start(period.last_day)
    return _month_start(last, COHORTS - 1), last, period.end


def _label(month: dt.date) -> str:
    return f"{month.year:04d}-{month.month:02d}"


def cohort_section(period: Period, ledger: Iterable[LedgerEvent]) -> CohortSection:
    """The heat-map data of ``period``'s report from its subscription ledger."""
    first, last, as_of = cohort_window(period)
    rows = cohort_retention(ledger, as_of, CohortBy.FIRST_PAID_MONTH,
                            first_month=first, last_month=last)
    lines: dict[str, list[CohortCell]] = {}
    for r in rows:
        retention = r.mrr_retention
        lines.setdefault(r.cohort, []).append(CohortCell(
            months_since=r.months_since, accounts=r.accounts,
            retained_accounts=r.retained_accounts, mrr=float(r.mrr),
            starting_mrr=float(r.starting_mrr), logo_retention=float(r.logo_retention),
            mrr_retention=None if retention is None else float(retention),
        ))
    cohorts = [
        CohortLine(cohort=c, accounts=cells[0].accounts, starting_mrr=cells[0].starting_mrr,
                   cells=cells)
        for c, cells in sorted(lines.items())
    ]
    months = list(range(COHORTS))
    quarterly = ReportKind.of(period) is ReportKind.QUARTERLY
    if cohorts:
        statement = (
            f"{len(cohorts)} first-paid-month cohorts ({_label(first)} – {_label(last)}) as of "
            f"{as_of.isoformat()}: logo retention = share of a cohort's accounts paying "
            "(MRR > 0) at the end of month c + k; MRR retention = the cohort's MRR then ÷ its "
            "MRR at the end of its first month. Reactivated accounts stay in their first "
            "cohort; months not ended yet are blank."
        )
    else:
        statement = (
            f"No account paid for the first time in {_label(first)} – {_label(last)}: "
            "no cohorts."
        )
    return CohortSection(
        as_of=as_of, first_cohort=_label(first), last_cohort=_label(last), months=months,
        table_months=list(range(0, COHORTS, 3)) if quarterly else months,
        cohorts=cohorts, statement=statement,
    )


def trial_metrics(
    get: Callable[[str, str], float | None],
    has: Callable[[str, str], bool],
    period: Period,
    today: dt.date,
) -> list[TrialMetric]:
    """The trial KPIs of ``period`` (``get``/``has``: kpi, period label → value/stored).

    Empty when the KPI service stored no trial KPI for the period (not computed is not 0).
    """
    cur, prev = period.label, period.previous().label
    if not any(has(kpi, cur) for kpi, _, _ in TRIAL_KPIS):
        return []
    out: list[TrialMetric] = []
    for kpi, label, fmt in TRIAL_KPIS:
        definition = kpi_catalog.BY_NAME.get(kpi)
        lag = definition.matures_after_days if definition is not None else 0
        out.append(TrialMetric(
            kpi=kpi, label=definition.label if definition and definition.label else label,
            fmt=fmt, value=get(kpi, cur), previous=get(kpi, prev),
            provisional=not kpi_catalog.complete_on(kpi, period.grain, period.start, today),
            final_on=period.end + dt.timedelta(days=lag),
        ))
    return out


def trial_status(metric: TrialMetric) -> str:
    """``final`` or ``provisional until YYYY-MM-DD`` (shown beside every trial number)."""
    if metric.provisional:
        return f"provisional until {metric.final_on.isoformat()}"
    return "final"
