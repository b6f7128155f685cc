"""The annual (board) report: the year's twelve months of headline KPIs against the previous
year's, monthly trends, cohort retention, LTV:CAC, the marketing mix model when a published
run covers the year, and a forecast of the next quarter.

Pure: no I/O, no clock. KPIs are not computed per year: the year is read from month-grain
``kpi_values``. A flow's year value is the sum of its twelve months (n/a unless every month
was measured: a partial year is not a year); a stock's (MRR, ARR, LTV, LTV:CAC) is its
December value; CAC and ROAS are recomputed from the year's sums exactly as the KPI service
defines them (spend ÷ new customers, attributed revenue ÷ spend), as the to-date panel does.
A previous year without data shows n/a, never a 0 or an arrow.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from pulse_reporting.domain.assemble import (
    DAILY_SERIES,
    Coverage,
    KpiTable,
    _measured,
    delta,
    footnotes,
    kpi_name,
    missing_reason,
    model_header,
    report_id,
    unavailable,
)
from pulse_reporting.domain.cohorts import cohort_section
from pulse_reporting.domain.forecast import forecast_series
from pulse_reporting.domain.kpis import spec as kpi_spec
from pulse_reporting.domain.mmm import MmmInputs, mmm_section
from pulse_reporting.domain.model import (
    AnnualKpiRow,
    AnnualSection,
    Delta,
    ForecastSeries,
    KpiTile,
    KpiValue,
    ModelComparison,
    MrrBridge,
    Report,
    ReportMeta,
    Trend,
    TrendPoint,
)
from pulse_reporting.domain.periods import YEAR, YearPeriod, period_complete
from pulse_shared.cohorts import LedgerEvent
from pulse_shared.events import Grain
from pulse_shared.forecasting import MAX_HORIZON
from pulse_shared.periods import Period

SUM, DECEMBER, RATIO = "sum", "december", "ratio"
#: (kpi, how the year's value is made; for a ratio: numerator, denominator), in order.
ANNUAL_KPIS: tuple[tuple[str, str, str, str], ...] = (
    ("spend", SUM, "", ""),
    ("leads", SUM, "", ""),
    ("attributed_pipeline", SUM, "", ""),
    ("attributed_revenue", SUM, "", ""),
    ("roas", RATIO, "attributed_revenue", "spend"),
    ("new_customers", SUM, "", ""),
    ("cac", RATIO, "spend", "new_customers"),
    ("mrr_new", SUM, "", ""),
    ("mrr", DECEMBER, "", ""),
    ("arr", DECEMBER, "", ""),
    ("ltv", DECEMBER, "", ""),
    ("ltv_cac", DECEMBER, "", ""),
)
#: KPIs drawn as monthly trend charts.
TREND_KPIS: tuple[str, ...] = ("spend", "attributed_revenue", "leads", "mrr", "ltv_cac")
_EPSILON = 1e-9


def months_of(year: YearPeriod) -> list[Period]:
    return year.month_periods()


def next_quarter(year: YearPeriod) -> Period:
    return YearPeriod.of_year(year.year + 1).quarter(1)


@dataclass
class AnnualInputs:
    """Everything the storage layer read for one annual report."""

    period: YearPeriod
    model: str
    kpis: Sequence[KpiValue]  # month grain: the year's and the previous year's months
    coverage: Coverage | None = None
    # day-grain values (kpi → days) up to the year's last day: the next quarter's forecast
    daily: Mapping[str, Sequence[TrendPoint]] = field(default_factory=dict)
    forecast_interval: float = 0.8
    mmm: MmmInputs | None = None
    cohort_ledger: Sequence[LedgerEvent] | None = None
    notes: list[str] = field(default_factory=list)


def _month_value(
    table: KpiTable, kpi: str, month: Period, model: str, coverage: Coverage | None,
) -> float | None:
    """A month's stored value; an empty sum (0 without source data) is None, and so is a
    month whose data starts inside it (a partial month is not compared with a whole one)."""
    value = table.get(kpi, month.label, model=model)
    reason = missing_reason(coverage, kpi, month)
    if reason is not None and reason.startswith("no data before"):
        return None
    if not _measured(value) and reason is not None:
        return None
    return value


def _ratio(num: float | None, den: float | None) -> float | None:
    if num is None or den is None or abs(den) < _EPSILON:
        return None
    return num / den


def _year_values(
    table: KpiTable, year: YearPeriod, model: str, coverage: Coverage | None,
) -> dict[str, tuple[list[float | None], float | None]]:
    """kpi → (January … December values, year value)."""
    months = months_of(year)
    out: dict[str, tuple[list[float | None], float | None]] = {}
    for kpi, how, _, _ in ANNUAL_KPIS:
        values = [_month_value(table, kpi, m, model, coverage) for m in months]
        total: float | None = None
        if how == SUM and all(v is not None for v in values):
            total = sum(v for v in values if v is not None)
        elif how == DECEMBER:
            total = values[-1]
        out[kpi] = (values, total)
    for kpi, how, num, den in ANNUAL_KPIS:
        if how == RATIO:
            out[kpi] = (out[kpi][0], _ratio(out[num][1], out[den][1]))
    return out


def _year_reason(coverage: Coverage | None, kpi: str, how: str, year: YearPeriod) -> str | None:
    """Why ``year`` has no value to compare ``kpi`` with (None: it has one)."""
    months = months_of(year)
    checked = [months[-1]] if how == DECEMBER else months
    for month in checked:
        if missing_reason(coverage, kpi, month) is not None:
            return f"no data for all of {year.label}" if how != DECEMBER else (
                f"no data for {months[-1].label}")
    return None


def _headline(
    current: Mapping[str, tuple[list[float | None], float | None]],
    previous: Mapping[str, tuple[list[float | None], float | None]],
    table: KpiTable, period: YearPeriod, model: str, coverage: Coverage | None,
) -> tuple[list[KpiTile], list[AnnualKpiRow]]:
    tiles: list[KpiTile] = []
    rows: list[AnnualKpiRow] = []
    before = period.previous()
    for kpi, how, num, den in ANNUAL_KPIS:
        spec = kpi_spec(kpi)
        values, total = current[kpi]
        prev_values, prev_total = previous[kpi]
        sources = (num, den) if how == RATIO else (kpi,)
        reason = next(
            (r for s in sources if (r := _year_reason(coverage, s, how, before))), None
        )
        if prev_total is None and reason is None and total is not None:
            reason = f"no complete {before.label} to compare with"
        comparison: Delta = (
            unavailable(prev_total, reason) if reason and total is not None and not (
                prev_total is not None and _measured(prev_total))
            else delta(total, prev_total, spec.better)
        )
        name = table.resolved_name(kpi, months_of(period)[-1].label, model)
        tiles.append(KpiTile(
            kpi=name, label=spec.label, fmt=spec.fmt, better=spec.better, value=total,
            pop=comparison, yoy=comparison,
        ))
        rows.append(AnnualKpiRow(
            kpi=name, label=spec.label, fmt=spec.fmt, better=spec.better, values=values,
            previous=prev_values, total=total, previous_total=prev_total,
            aggregate=how,
        ))
    return tiles, rows


def _trends(rows: Sequence[AnnualKpiRow], year: YearPeriod) -> list[Trend]:
    by_kpi = {r.kpi.split("__")[0]: r for r in rows}
    out: list[Trend] = []
    for kpi in TREND_KPIS:
        row = by_kpi.get(kpi)
        if row is None or all(v is None for v in row.values):
            continue
        points = [TrendPoint(day=m.start, value=v)
                  for m, v in zip(months_of(year), row.values, strict=True)]
        out.append(Trend(kpi=row.kpi, label=row.label, fmt=row.fmt, points=points,
                         grain=Grain.MONTH.value))
    return out


def _forecast(inputs: AnnualInputs) -> tuple[list[ForecastSeries], int]:
    """The next quarter from the daily history up to the year's last day (the forecasting
    library's horizon is at most :data:`MAX_HORIZON` days: a 91-day quarter is cut to 90)."""
    quarter = next_quarter(inputs.period)
    horizon = min(quarter.days, MAX_HORIZON)
    last_day = inputs.period.last_day
    out: list[ForecastSeries] = []
    for kpi, label, fmt, stock in DAILY_SERIES:
        name = kpi_name(kpi, inputs.model)
        points = sorted(
            (p for p in inputs.daily.get(name, ()) if p.day <= last_day), key=lambda p: p.day
        )
        if not points:
            continue
        series = forecast_series(
            name, label, fmt, points, last_day, interval=inputs.forecast_interval,
            stock=stock, horizon=horizon,
        )
        if series is not None:
            out.append(series)
    return out, horizon


def assemble_annual(inputs: AnnualInputs, now: dt.datetime) -> Report:
    """The annual report of ``inputs.period`` under ``inputs.model``."""
    period = inputs.period
    before = period.previous()
    table = KpiTable(inputs.kpis)
    current = _year_values(table, period, inputs.model, inputs.coverage)
    previous = _year_values(table, before, inputs.model, inputs.coverage)
    tiles, rows = _headline(current, previous, table, period, inputs.model, inputs.coverage)
    forecasts, horizon = _forecast(inputs)
    notes = list(inputs.notes)
    labels = {m.label for m in months_of(period)}
    if not any(r.period in labels for r in inputs.kpis):
        notes.append(f"No monthly KPI values found for {period.label}; has the KPI service run?")
    missing = [m.label for m in months_of(period)
               if all(v[0][int(m.label[5:]) - 1] is None for v in current.values())]
    if missing and len(missing) < 12:
        notes.append(f"No data for {', '.join(missing)}: the year's sums are n/a.")
    kind = "annual"
    today = now.date()
    latest = max(span[1] for span in inputs.coverage.values()) if inputs.coverage else (
        today - dt.timedelta(days=1))
    mmm = None
    if inputs.mmm is not None:
        m = inputs.mmm
        mmm = mmm_section(period, m.runs, m.channels, m.curves, m.allocation,
                          m.allocation_budget, m.allocation_periods)
    meta = ReportMeta(
        report_id=report_id(kind, period.label, inputs.model, now),
        kind=kind,
        period=period.label,
        period_start=period.start,
        period_end=period.last_day,
        grain=YEAR,
        previous_period=before.label,
        year_ago_period=before.label,
        model=inputs.model,
        generated_at=now,
        title=f"Annual marketing report {period.label}",
        complete=period_complete(period, today),
        data_as_of=max(min(latest, period.last_day), period.start - dt.timedelta(days=1)),
        **model_header(inputs.model),
    )
    return Report(
        meta=meta,
        headline=tiles,
        mrr_bridge=MrrBridge(starting=None, new=None, expansion=None, reactivation=None,
                             contraction=None, churn=None, net_new=None, ending=None),
        channels=[], campaigns=[], top_campaigns=[], bottom_campaigns=[],
        model_comparison=ModelComparison(models=[], rows=[]),
        funnel=[], budget=[], paths=[], alerts=[],
        trends=_trends(rows, period),
        forecast=forecasts,
        notes=notes,
        footnotes=footnotes(),
        mmm=mmm,
        cohorts=(cohort_section(period, inputs.cohort_ledger)
                 if inputs.cohort_ledger is not None else None),
        annual=AnnualSection(
            year=period.label, previous_year=before.label,
            months=[m.label for m in months_of(period)], rows=rows,
            forecast_quarter=next_quarter(period).label, forecast_days=horizon,
        ),
    )
