"""Report assembly: query results (``kpi_values`` rows, alerts, paths) → :class:`Report`.

Pure: no I/O, no clock. KPI numbers are taken from ``kpi_values`` as they are — this
module never recomputes a KPI; it only picks, orders and compares them.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from pulse_reporting.domain.cohorts import cohort_section, trial_metrics
from pulse_reporting.domain.forecast import forecast_check, forecast_series
from pulse_reporting.domain.kpis import KpiSpec
from pulse_reporting.domain.kpis import spec as kpi_spec
from pulse_reporting.domain.mmm import (
    KINDS_WITH_MODEL,
    MmmInputs,
    mmm_recommendation,
    mmm_section,
)
from pulse_reporting.domain.model import (
    AlertRecord,
    Better,
    BudgetRow,
    CohortSection,
    Delta,
    DimensionRow,
    Fmt,
    ForecastCheck,
    ForecastSeries,
    FunnelStep,
    KpiFootnote,
    KpiTile,
    KpiValue,
    MmmSection,
    ModelComparison,
    ModelComparisonRow,
    MrrBridge,
    PathRecord,
    Recommendation,
    Report,
    ReportMeta,
    Tone,
    Trend,
    TrendPoint,
)
from pulse_reporting.domain.periods import Period, ReportKind, parse_data_period
from pulse_reporting.domain.recommend import consensus, rank, recommend
from pulse_shared import kpi_catalog
from pulse_shared.attribution_models import (
    BESIDE_MODEL,
    BY_NAME,
    DATA_DRIVEN_MODELS,
    DEFAULT_MODEL,
    MODEL_NAMES,
)
from pulse_shared.attribution_models import label as model_label
from pulse_shared.cohorts import LedgerEvent
from pulse_shared.periods import period_complete

ATTRIBUTED_KPIS = frozenset({"attributed_pipeline", "attributed_revenue", "roas", "marketing_roi"})
FUNNEL_STAGES: tuple[tuple[str, str], ...] = (
    ("lead", "leads"),
    ("mql", "mqls"),
    ("sql", "sqls"),
    ("opportunity", "opportunities"),
    ("won", "wins"),
)
BUDGET_KPIS: tuple[str, ...] = ("budget", "spend_to_date", "pacing", "projected_spend")
TOP_N = 5
HISTORY_DAYS = 90
# (kpi, label, format, stock?) — daily series shown as trends and forecast 30 days ahead.
DAILY_SERIES: tuple[tuple[str, str, Fmt, bool], ...] = (
    ("spend", "Spend", Fmt.MONEY, False),
    ("attributed_revenue", "Attributed revenue", Fmt.MONEY, False),
    ("leads", "Leads", Fmt.COUNT, False),
    ("mrr", "MRR", Fmt.MONEY, True),
)


# The headline, in order; label, format and direction come from the catalog.
HEADLINE: tuple[KpiSpec, ...] = tuple(kpi_spec(k) for k in (
    "spend", "attributed_revenue", "attributed_pipeline", "roas", "marketing_roi", "cac",
    "ltv", "ltv_cac", "cac_payback_months", "mrr", "arr", "mrr_net_new", "nrr",
    "gross_mrr_churn_rate", "leads", "new_customers", "cpl",
))
SPECS: dict[str, KpiSpec] = {s.kpi: s for s in HEADLINE}
# Attribution KPIs of the headline that show the beside model's value next to the report's.
BESIDE_KPIS = frozenset({"attributed_revenue", "roas"})
# Numbers that must reconcile (CAC = spend / new customers, and deals won from the CRM):
# the headline's footnotes name the source of each.
FOOTNOTE_KPIS: tuple[tuple[str, str], ...] = (
    ("cac", "CAC"), ("new_customers", "New customers"), ("wins", "Deals won"),
)


def kpi_label(kpi: str, fallback: str) -> str:
    """The catalog's label for people when it has one."""
    definition = kpi_catalog.BY_NAME.get(kpi)
    return definition.label if definition is not None and definition.label else fallback


def footnotes() -> list[KpiFootnote]:
    """Source of CAC, new customers and deals won (catalog ``source``, else definition)."""
    out: list[KpiFootnote] = []
    for kpi, fallback in FOOTNOTE_KPIS:
        definition = kpi_catalog.BY_NAME.get(kpi)
        if definition is None:
            continue
        out.append(KpiFootnote(kpi=kpi, label=kpi_label(kpi, fallback),
                               source=definition.source or definition.definition))
    return out

# Which source tables a KPI is computed from. A comparison needs data from every source
# of the KPI over the whole base period; otherwise the "previous" value is an empty sum
# (0), not a measurement, and the comparison is shown as n/a with the reason.
SPEND, SUBSCRIPTIONS, PIPELINE, TOUCHPOINTS = (
    "spend", "subscriptions", "pipeline_events", "touchpoints",
)
SOURCES: tuple[str, ...] = (SPEND, SUBSCRIPTIONS, PIPELINE, TOUCHPOINTS)
_ATTRIBUTED = (TOUCHPOINTS, PIPELINE)
KPI_SOURCES: dict[str, tuple[str, ...]] = {
    "spend": (SPEND,),
    "attributed_revenue": _ATTRIBUTED,
    "attributed_pipeline": _ATTRIBUTED,
    "roas": (SPEND, *_ATTRIBUTED),
    "marketing_roi": (SPEND, *_ATTRIBUTED),
    "cac": (SPEND, SUBSCRIPTIONS),
    "ltv": (SUBSCRIPTIONS,),
    "ltv_cac": (SPEND, SUBSCRIPTIONS),
    "cac_payback_months": (SPEND, SUBSCRIPTIONS),
    "mrr": (SUBSCRIPTIONS,),
    "arr": (SUBSCRIPTIONS,),
    "mrr_net_new": (SUBSCRIPTIONS,),
    "mrr_new": (SUBSCRIPTIONS,),
    "nrr": (SUBSCRIPTIONS,),
    "gross_mrr_churn_rate": (SUBSCRIPTIONS,),
    "leads": (PIPELINE,),
    "wins": (PIPELINE,),
    "new_customers": (SUBSCRIPTIONS,),
    "cpl": (SPEND, PIPELINE),
    "cac_fully_loaded": (SPEND, SUBSCRIPTIONS),
    "marketing_roi_fully_loaded": (SPEND, *_ATTRIBUTED),
}
Coverage = Mapping[str, tuple[dt.date, dt.date]]
"""Source table → (first day, last day) with data. A source absent from it has no data."""

_EPSILON = 1e-9


def kpi_name(kpi: str, model: str) -> str:
    """Name of an attribution-based KPI under ``model`` (``roas__linear``)."""
    if kpi in ATTRIBUTED_KPIS and model != DEFAULT_MODEL:
        return f"{kpi}__{model}"
    return kpi


def _candidates(kpi: str, model: str) -> tuple[str, ...]:
    if kpi not in ATTRIBUTED_KPIS:
        return (kpi,)
    if model == DEFAULT_MODEL:
        return (kpi, f"{kpi}__{model}")
    return (f"{kpi}__{model}",)


class KpiTable:
    """Lookup of ``kpi_values`` rows by (kpi, period, dimension, dimension value)."""

    def __init__(self, rows: Iterable[KpiValue]) -> None:
        self._values: dict[tuple[str, str, str, str], float | None] = {}
        self._members: dict[tuple[str, str], set[str]] = defaultdict(set)
        for row in rows:
            self._values[(row.kpi, row.period, row.dimension, row.dimension_value)] = row.value
            if row.dimension != "all":
                self._members[(row.period, row.dimension)].add(row.dimension_value)

    def has(self, kpi: str, period: str, dimension: str = "all", member: str = "") -> bool:
        return (kpi, period, dimension, member) in self._values

    def get(
        self, kpi: str, period: str, dimension: str = "all", member: str = "",
        model: str = DEFAULT_MODEL,
    ) -> float | None:
        for name in _candidates(kpi, model):
            key = (name, period, dimension, member)
            if key in self._values:
                return self._values[key]
        return None

    def resolved_name(self, kpi: str, period: str, model: str) -> str:
        for name in _candidates(kpi, model):
            if (name, period, "all", "") in self._values:
                return name
        return kpi_name(kpi, model)

    def members(self, period: str, dimension: str) -> list[str]:
        return sorted(self._members.get((period, dimension), set()))


def tone(better: Better, change: float | None) -> Tone:
    """Direction-aware colouring: a rise is good for revenue, bad for CAC."""
    if change is None or better is Better.NEUTRAL or abs(change) < _EPSILON:
        return Tone.NEUTRAL
    good = change > 0 if better is Better.UP else change < 0
    return Tone.GOOD if good else Tone.BAD


def kpi_span(coverage: Coverage, kpi: str) -> tuple[dt.date, dt.date] | None:
    """Days on which every source of ``kpi`` has data (None: some source has none)."""
    spans = [coverage.get(src) for src in KPI_SOURCES.get(kpi, SOURCES)]
    if any(span is None for span in spans):
        return None
    first = max(span[0] for span in spans if span is not None)
    last = min(span[1] for span in spans if span is not None)
    return (first, last) if first <= last else None


def _measured(value: float | None) -> bool:
    """A stored non-zero value is a measurement whatever the raw tables hold now (they may
    have expired, or the value was loaded directly); only a zero or a gap can be an empty
    sum that coverage has to explain."""
    return value is not None and abs(value) > _EPSILON


def missing_reason(coverage: Coverage | None, kpi: str, base: Period) -> str | None:
    """Why ``base`` cannot serve as a comparison for ``kpi`` (None: it can)."""
    if coverage is None:  # unknown coverage: trust the values
        return None
    span = kpi_span(coverage, kpi)
    if span is None or base.last_day < span[0] or base.start > span[1]:
        return f"no data for {base.label}"
    if base.start < span[0]:
        return f"no data before {span[0].isoformat()}"
    return None


def covered(
    coverage: Coverage | None, kpi: str, period: Period, value: float | None
) -> float | None:
    """``value`` of ``kpi`` in ``period``, or None when it is an empty sum over a period
    none of the KPI's sources has data for (missing, not zero) — the headline's rule, for
    sections that show values of several periods. A measurement (non-zero) is kept."""
    if coverage is None or kpi not in KPI_SOURCES or _measured(value):
        return value
    if missing_reason(coverage, kpi, period) == f"no data for {period.label}":
        return None
    return value


def unavailable(previous: float | None, reason: str) -> Delta:
    del previous  # an empty sum, not a measurement: not shown
    return Delta(previous=None, change=None, change_pct=None, tone=Tone.NEUTRAL,
                 unavailable=reason)


def delta(current: float | None, previous: float | None, better: Better) -> Delta:
    if current is None or previous is None:
        return Delta(previous=previous, change=None, change_pct=None, tone=Tone.NEUTRAL)
    change = current - previous
    pct = change / abs(previous) if abs(previous) > _EPSILON else None
    return Delta(previous=previous, change=change, change_pct=pct, tone=tone(better, change))


@dataclass
class ReportInputs:
    """Everything the storage layer read for one report."""

    period: Period
    model: str
    kpis: Sequence[KpiValue]  # report grain: current, previous and year-ago periods
    budget_kpis: Sequence[KpiValue] = ()  # budget/pacing KPIs (grain month or report grain)
    alerts: Sequence[AlertRecord] = ()
    paths: Sequence[PathRecord] = ()
    daily: Mapping[str, Sequence[TrendPoint]] = field(default_factory=dict)  # kpi → days
    forecast_interval: float = 0.8
    recommendations: Sequence[Recommendation] = ()  # extra ones, appended
    notes: list[str] = field(default_factory=list)
    coverage: Coverage | None = None  # None: unknown (every value is trusted)
    forecast_horizon: int = 30
    # day-grain values per channel: kpi → channel → days (per-channel forecasts)
    daily_by_channel: Mapping[str, Mapping[str, Sequence[TrendPoint]]] = field(
        default_factory=dict
    )
    # Marketing mix model runs and the shown run's results (monthly and quarterly
    # reports; None: not read, no section).
    mmm: MmmInputs | None = None
    # The subscription ledger of the cohort section's accounts (monthly and quarterly
    # reports; None: not read, no section).
    cohort_ledger: Sequence[LedgerEvent] | None = None


def report_id(kind: str, period: str, model: str, generated_at: dt.datetime) -> str:
    seed = f"{kind}|{period}|{model}|{generated_at.isoformat()}"
    return hashlib.sha256(seed.encode()).hexdigest()[:24]


def _headline(
    table: KpiTable, period: Period, model: str, coverage: Coverage | None
) -> list[KpiTile]:
    cur = period.label
    tiles: list[KpiTile] = []
    for spec in HEADLINE:
        value = table.get(spec.kpi, cur, model=model)
        if not _measured(value) and missing_reason(coverage, spec.kpi, period) == (
            f"no data for {cur}"
        ):
            value = None  # nothing measured in the period: not $0
        comparisons: list[Delta] = []
        for base in (period.previous(), period.year_ago()):
            previous = table.get(spec.kpi, base.label, model=model)
            reason = missing_reason(coverage, spec.kpi, base)
            if reason == f"no data for {base.label}" and _measured(previous):
                reason = None  # a stored measurement: the raw rows are gone, not absent
            comparisons.append(
                unavailable(previous, reason) if reason and value is not None
                else delta(value, previous, spec.better)
            )
        beside = spec.kpi in BESIDE_KPIS and model != BESIDE_MODEL
        tiles.append(
            KpiTile(
                kpi=table.resolved_name(spec.kpi, cur, model),
                label=spec.label,
                fmt=spec.fmt,
                better=spec.better,
                value=value,
                pop=comparisons[0],
                yoy=comparisons[1],
                beside_model=BESIDE_MODEL if beside else None,
                beside_value=(
                    table.get(spec.kpi, cur, model=BESIDE_MODEL)
                    if beside and value is not None else None
                ),
            )
        )
    return tiles


def _dimension_rows(
    table: KpiTable, period: str, dimension: str, model: str,
    models: Sequence[str] = (),
) -> list[DimensionRow]:
    total_spend = table.get("spend", period)
    rows: list[DimensionRow] = []
    for member in table.members(period, dimension):
        def g(kpi: str, member: str = member) -> float | None:
            return table.get(kpi, period, dimension, member, model=model)

        spend = g("spend")
        share = (
            spend / total_spend
            if spend is not None and total_spend is not None and total_spend > _EPSILON
            else None
        )
        by_model = {
            m: table.get("roas", period, dimension, member, model=m) for m in models or (model,)
        }
        rows.append(
            DimensionRow(
                name=member,
                spend=spend,
                impressions=g("impressions"),
                clicks=g("clicks"),
                leads=g("leads"),
                wins=g("wins"),
                attributed_pipeline=g("attributed_pipeline"),
                attributed_revenue=g("attributed_revenue"),
                roas=g("roas"),
                cac=g("cac"),
                spend_share=share,
                roas_by_model=by_model,
                consensus_roas=consensus(by_model),
            )
        )
    rows.sort(key=lambda r: (-(r.attributed_revenue or 0.0), -(r.spend or 0.0), r.name))
    return rows


def _top_bottom(campaigns: list[DimensionRow]) -> tuple[list[DimensionRow], list[DimensionRow]]:
    """Campaigns with spend, by consensus ROAS (median over the shown models); ties by
    spend, largest first, so a big campaign is never hidden behind an alphabetical tie.
    Top: the best with a positive consensus; bottom: the worst of the others."""
    spent = [
        c for c in campaigns if c.consensus_roas is not None and (c.spend or 0.0) > _EPSILON
    ]
    ranked = sorted(spent, key=lambda c: (-(c.consensus_roas or 0.0), -(c.spend or 0.0), c.name))
    top = [c for c in ranked if (c.consensus_roas or 0.0) > _EPSILON][:TOP_N]
    rest = [c for c in ranked if c not in top]
    bottom = sorted(
        rest, key=lambda c: ((c.consensus_roas or 0.0), -(c.spend or 0.0), c.name)
    )[:TOP_N]
    return top, bottom


def shown_models(table: KpiTable, period: str, channels: Sequence[str]) -> list[str]:
    """Attribution models with any result for ``period`` (the report shows these)."""
    return [
        m for m in MODEL_NAMES
        if table.get("attributed_revenue", period, model=m) is not None
        or any(
            table.get("attributed_revenue", period, "channel", c, model=m) is not None
            for c in channels
        )
    ]


def _model_comparison(table: KpiTable, period: str, channels: list[str]) -> ModelComparison:
    models = shown_models(table, period, channels)
    rows = [
        ModelComparisonRow(
            name="all",
            revenue={m: table.get("attributed_revenue", period, model=m) for m in models},
            roas={m: table.get("roas", period, model=m) for m in models},
        )
    ]
    for channel in channels:
        rows.append(
            ModelComparisonRow(
                name=channel,
                revenue={
                    m: table.get("attributed_revenue", period, "channel", channel, model=m)
                    for m in models
                },
                roas={m: table.get("roas", period, "channel", channel, model=m) for m in models},
            )
        )
    return ModelComparison(models=models, rows=rows)


def _abs(value: float | None) -> float | None:
    return None if value is None else abs(value)


def _mrr_bridge(table: KpiTable, cur: str, prev: str, prev_missing: bool = False) -> MrrBridge:
    return MrrBridge(
        starting=None if prev_missing else table.get("mrr", prev),
        new=table.get("mrr_new", cur),
        expansion=table.get("mrr_expansion", cur),
        reactivation=table.get("mrr_reactivation", cur),
        contraction=_abs(table.get("mrr_contraction", cur)),
        churn=_abs(table.get("mrr_churn", cur)),
        net_new=table.get("mrr_net_new", cur),
        ending=table.get("mrr", cur),
    )


def _funnel(table: KpiTable, period: str) -> list[FunnelStep]:
    steps: list[FunnelStep] = []
    for index, (stage, count_kpi) in enumerate(FUNNEL_STAGES):
        nxt = FUNNEL_STAGES[index + 1][0] if index + 1 < len(FUNNEL_STAGES) else None
        steps.append(
            FunnelStep(
                stage=stage,
                count=table.get(count_kpi, period),
                next_stage=nxt,
                conversion_to_next=table.get(f"conv_{stage}_to_{nxt}", period) if nxt else None,
                days_to_next=(
                    table.get(f"velocity_{stage}_to_{nxt}_days", period) if nxt else None
                ),
            )
        )
    return steps


def _pacing_tone(pacing: float | None) -> Tone:
    if pacing is None:
        return Tone.NEUTRAL
    if 0.9 <= pacing <= 1.1:
        return Tone.GOOD
    return Tone.BAD


def _budget(rows: Sequence[KpiValue]) -> list[BudgetRow]:
    table = KpiTable(rows)
    periods = sorted({r.period for r in rows})
    out: list[BudgetRow] = []
    for period in periods:
        for dim, member in [("all", "")] + [("channel", c) for c in table.members(period, "channel")]:
            values = {k: table.get(k, period, dim, member) for k in BUDGET_KPIS}
            if all(v is None for v in values.values()):
                continue
            out.append(
                BudgetRow(
                    period=period,
                    channel=member or "all",
                    budget=values["budget"],
                    spend_to_date=values["spend_to_date"],
                    pacing=values["pacing"],
                    projected_spend=values["projected_spend"],
                    tone=_pacing_tone(values["pacing"]),
                )
            )
    return out


def daily_kpi_names(model: str) -> list[str]:
    return [kpi_name(k, model) for k, *_ in DAILY_SERIES]


# (kpi, label) forecast per channel from day-grain values with dimension channel.
CHANNEL_FORECAST_KPIS: tuple[tuple[str, str], ...] = (
    ("spend", "Spend"),
    ("attributed_revenue", "Attributed revenue"),
)


# A channel's series needs this many non-zero days to be forecast: attributed revenue per
# channel is mostly zero days (a few won deals), where the interval is all there is.
MIN_ACTIVE_DAYS = 14


def channel_kpi_names(model: str) -> list[str]:
    return [kpi_name(k, model) for k, _ in CHANNEL_FORECAST_KPIS]


def _forecast_by_channel(inputs: ReportInputs) -> list[ForecastSeries]:
    """Next-``horizon``-day forecast per channel, from the last actual day up to the
    period's end (a channel with too little history has none)."""
    out: list[ForecastSeries] = []
    last_day = inputs.period.last_day
    for kpi, fallback in CHANNEL_FORECAST_KPIS:
        name = kpi_name(kpi, inputs.model)
        for channel, series in sorted(inputs.daily_by_channel.get(name, {}).items()):
            points = [p for p in series if p.day <= last_day and p.value is not None]
            if sum(1 for p in points if p.value) < MIN_ACTIVE_DAYS:
                continue  # a few deals scattered over months: no daily model says anything
            anchor = max(p.day for p in points)
            forecast = forecast_series(
                name, kpi_label(kpi, fallback), Fmt.MONEY, points, anchor,
                interval=inputs.forecast_interval, horizon=inputs.forecast_horizon,
            )
            if forecast is not None:
                out.append(forecast.model_copy(
                    update={"dimension": "channel", "dimension_value": channel}
                ))
    return out


def _data_day(alert: AlertRecord, data: Period | None) -> dt.date:
    """The day of the data that fired ``alert``: its data time's day within its data period
    (the period's last day without one); without a data period, the data time's day, else
    (alerts written before they carried them) the processing time's."""
    if data is not None:
        last = data.end - dt.timedelta(days=1)
        day = min(alert.data_time.date(), last) if alert.data_time else last
        return max(day, data.start)
    return (alert.data_time or alert.starts_at).date()


def _inside(data: Period | None, period: Period) -> bool:
    return data is not None and period.start <= data.start and data.end <= period.end


def alert_in_period(alert: AlertRecord, period: Period) -> bool:
    """Whether ``alert`` fired on data of ``period`` (not: was processed in it).

    A data period inside the report period belongs to it. One that straddles it (a week
    across a month's end) or is coarser (a quarter in a monthly report) belongs to the
    report holding its data day (see :func:`_data_day`)."""
    data = parse_data_period(alert.period) if alert.period else None
    if _inside(data, period):
        return True
    return period.start <= _data_day(alert, data) < period.end


def _alert_order(period: Period) -> Callable[[AlertRecord], tuple[dt.date, dt.datetime, str]]:
    """Chronological by data: a data period inside the report from its first day."""
    def key(alert: AlertRecord) -> tuple[dt.date, dt.datetime, str]:
        data = parse_data_period(alert.period) if alert.period else None
        day = data.start if data is not None and _inside(data, period) else _data_day(alert, data)
        return (day, alert.data_time or alert.starts_at, alert.alert_id)

    return key


def _data_as_of(coverage: Coverage | None, period: Period, today: dt.date) -> dt.date:
    """Last day of data the report's figures include: the latest source day (or, unknown,
    yesterday on the generation clock), never after the period's last day."""
    latest = max(span[1] for span in coverage.values()) if coverage else today - dt.timedelta(
        days=1
    )
    return max(min(latest, period.last_day), period.start - dt.timedelta(days=1))


def model_header(model: str) -> dict[str, str]:
    """The header's statement of the attribution model (``ReportMeta`` fields)."""
    chosen = BY_NAME.get(model)
    default = BY_NAME[DEFAULT_MODEL]
    return {
        "model_label": model_label(model),
        "model_summary": chosen.summary if chosen else "",
        "default_model": DEFAULT_MODEL,
        "default_model_label": default.label,
        "default_reason": DEFAULT_REASON,
        "beside_model": BESIDE_MODEL,
        "beside_model_label": model_label(BESIDE_MODEL),
    }


DEFAULT_REASON = (
    "it credits both the touch that created demand and the one that converted it (last "
    "touch gives paid acquisition nothing for journeys it started), and as a rule model it "
    "is computed as conversions stream in, so it is never missing or stale"
)


def _trends_and_forecast(
    inputs: ReportInputs,
) -> tuple[list[Trend], list[ForecastSeries], list[ForecastCheck]]:
    trends: list[Trend] = []
    forecasts: list[ForecastSeries] = []
    checks: list[ForecastCheck] = []
    period = inputs.period
    last_day = period.last_day
    shown_from = last_day - dt.timedelta(days=HISTORY_DAYS)
    for kpi, label, fmt, stock in DAILY_SERIES:
        name = kpi_name(kpi, inputs.model)
        points = sorted(
            (p for p in inputs.daily.get(name, ()) if p.day <= last_day), key=lambda p: p.day
        )
        if not points:
            continue
        trends.append(
            Trend(kpi=name, label=label, fmt=fmt, points=[p for p in points if p.day > shown_from])
        )
        series = forecast_series(
            name, label, fmt, points, last_day, interval=inputs.forecast_interval, stock=stock,
            horizon=inputs.forecast_horizon,
        )
        if series is not None:
            forecasts.append(series)
        check = forecast_check(name, label, fmt, points, period.start, last_day, stock=stock)
        if check is not None:
            checks.append(check)
    return trends, forecasts, checks


def _model_note(model: str, period: str, models: Sequence[str], has_rows: bool) -> str | None:
    """Say which command produces a model's results when the report has none."""
    if not has_rows or model in models:
        return None
    if model in DATA_DRIVEN_MODELS:
        how = (
            f"run `pulse attribution recompute --model {model}` (data-driven models are "
            "recomputed on demand or on their schedule), then `pulse kpi recompute`"
        )
    else:
        how = "run `pulse kpi recompute` after the attribution service has credited conversions"
    return f"No {model} attribution results for {period}: {how}. Attributed figures show n/a."


def _coverage_note(coverage: Coverage | None, period: Period) -> tuple[str | None, bool]:
    """(note, no data at all in the period)."""
    if coverage is None:
        return None, False
    if not coverage:
        return f"No source data has been loaded: {period.label} has nothing to report.", True
    first = min(span[0] for span in coverage.values())
    last = max(span[1] for span in coverage.values())
    if period.last_day < first or period.start > last:
        return (
            f"No source data for {period.label}: data covers {first.isoformat()} – "
            f"{last.isoformat()}. Nothing below is a zero; figures are absent.",
            True,
        )
    if period.start < first:
        return (
            f"Data starts {first.isoformat()}, inside {period.label}: figures cover "
            f"{first.isoformat()} – {period.last_day.isoformat()} only.",
            False,
        )
    return None, False


def _mmm(inputs: ReportInputs) -> MmmSection | None:
    """The incrementality section (monthly and quarterly reports that read MMM runs)."""
    if inputs.mmm is None or ReportKind.of(inputs.period) not in KINDS_WITH_MODEL:
        return None
    m = inputs.mmm
    return mmm_section(
        inputs.period, m.runs, m.channels, m.curves, m.allocation, m.allocation_budget,
        m.allocation_periods,
    )


def _cohorts(inputs: ReportInputs) -> CohortSection | None:
    """The cohort retention section (monthly and quarterly reports that read the ledger)."""
    if inputs.cohort_ledger is None or ReportKind.of(inputs.period) is ReportKind.WEEKLY:
        return None
    return cohort_section(inputs.period, inputs.cohort_ledger)


def assemble_report(inputs: ReportInputs, now: dt.datetime) -> Report:
    """Build the report for ``inputs.period`` under ``inputs.model``."""
    period = inputs.period
    cur, prev, yoy = period.label, period.previous().label, period.year_ago().label
    measured = any(r.period == cur and _measured(r.value) for r in inputs.kpis)
    coverage_note, empty_period = (
        _coverage_note(inputs.coverage, period) if not measured else (None, False)
    )
    # A period without any source data: its rows are empty sums (0), not measurements.
    kpis = [r for r in inputs.kpis if not (empty_period and r.period == cur)]
    table = KpiTable(kpis)
    channel_names = table.members(cur, "channel")
    models = shown_models(table, cur, channel_names)
    channels = _dimension_rows(table, cur, "channel", inputs.model, models)
    campaigns = _dimension_rows(table, cur, "campaign", inputs.model, models)
    top, bottom = _top_bottom(campaigns)
    budget = _budget(inputs.budget_kpis)
    mmm = _mmm(inputs)
    mmm_shift = mmm_recommendation(mmm)
    # A current mix model is the better evidence for moving budget between channels: its
    # shift replaces attribution's (which only divides credit among touched channels).
    recommendations = recommend(channels, campaigns, budget, shift=mmm_shift is None)
    if mmm_shift is not None:
        recommendations = rank([mmm_shift, *recommendations])
    recommendations += list(inputs.recommendations)
    trends, forecasts, checks = _trends_and_forecast(inputs)
    notes = list(inputs.notes)
    if coverage_note:
        notes.append(coverage_note)
    if not any(r.period == cur for r in inputs.kpis):
        notes.append(f"No KPI values found for {period.grain} {cur}; has the KPI service run?")
    model_note = _model_note(inputs.model, cur, models, any(r.period == cur for r in kpis))
    if model_note:
        notes.append(model_note)
    kind = ReportKind.of(period).value
    today = now.date()
    meta = ReportMeta(
        report_id=report_id(kind, cur, inputs.model, now),
        kind=kind,
        period=cur,
        period_start=period.start,
        period_end=period.last_day,
        grain=period.grain,
        previous_period=prev,
        year_ago_period=yoy,
        model=inputs.model,
        generated_at=now,
        title=f"{kind.capitalize()} marketing report {cur}",
        complete=period_complete(period.grain, period.start, today),
        data_as_of=_data_as_of(inputs.coverage, period, today),
        **model_header(inputs.model),
    )
    prev_mrr_missing = not _measured(table.get("mrr", prev)) and (
        missing_reason(inputs.coverage, "mrr", period.previous()) is not None
    )
    return Report(
        meta=meta,
        headline=_headline(table, period, inputs.model, inputs.coverage),
        mrr_bridge=_mrr_bridge(table, cur, prev, prev_mrr_missing),
        channels=channels,
        campaigns=campaigns,
        top_campaigns=top,
        bottom_campaigns=bottom,
        model_comparison=_model_comparison(table, cur, [c.name for c in channels]),
        funnel=_funnel(table, cur),
        budget=budget,
        paths=sorted(inputs.paths, key=lambda p: (-p.conversions, p.path)),
        alerts=sorted(
            (a for a in inputs.alerts if alert_in_period(a, period)), key=_alert_order(period)
        ),
        trends=trends,
        forecast=forecasts,
        forecast_check=checks,
        recommendations=recommendations,
        notes=notes,
        footnotes=footnotes(),
        forecast_by_channel=_forecast_by_channel(inputs),
        mmm=mmm,
        cohorts=_cohorts(inputs),
        trials=trial_metrics(
            lambda kpi, label: table.get(kpi, label),
            lambda kpi, label: table.has(kpi, label),
            period, today,
        ),
    )
