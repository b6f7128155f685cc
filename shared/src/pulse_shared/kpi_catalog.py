"""The KPI catalog: every KPI Pulse computes (one list, read by the KPI service, alerts,
reports, Grafana generation and AsyncAPI), with definition, unit, grains and direction.

``kpi_values`` rows and ``kpi.snapshots.v1`` messages use these names. Money is in account
currency (USD); rates are fractions (0.05 = 5 %). MRR movements are signed as ChartMogul
shows them: churn and contraction are negative, so net new MRR is their plain sum.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from pulse_shared.attribution_models import MODEL_NAMES
from pulse_shared.events import Grain

ALL_GRAINS: tuple[Grain, ...] = (Grain.DAY, Grain.WEEK, Grain.MONTH, Grain.QUARTER)
BUDGET_GRAINS: tuple[Grain, ...] = (Grain.MONTH, Grain.QUARTER)
ALL_DIMS: tuple[str, ...] = ("all", "channel", "campaign")
TOTAL_ONLY: tuple[str, ...] = ("all",)

MODELS: tuple[str, ...] = MODEL_NAMES
#: Funnel stages in order, and the stage pairs whose conversion and velocity are KPIs.
STAGES: tuple[str, ...] = ("lead", "mql", "sql", "opportunity", "won")
STAGE_PAIRS: tuple[tuple[str, str], ...] = (
    ("lead", "mql"), ("mql", "sql"), ("sql", "opportunity"), ("opportunity", "won"),
    ("lead", "won"),
)
STAGE_KPI: dict[str, str] = {
    "lead": "leads", "mql": "mqls", "sql": "sqls", "opportunity": "opportunities", "won": "wins",
}
MODEL_KPIS: tuple[str, ...] = (
    "attributed_pipeline", "attributed_revenue", "roas", "marketing_roi",
)


class Direction(StrEnum):
    UP = "higher_is_better"
    DOWN = "lower_is_better"
    NEUTRAL = "neutral"


class Unit(StrEnum):
    USD = "USD"
    COUNT = "count"
    RATIO = "ratio"
    MONTHS = "months"
    DAYS = "days"


@dataclass(frozen=True, slots=True)
class KpiDef:
    name: str
    definition: str
    unit: Unit
    direction: Direction
    grains: tuple[Grain, ...] = ALL_GRAINS
    dimensions: tuple[str, ...] = TOTAL_ONLY
    label: str = ""
    """Name for people (reports, dashboards, tooltips)."""
    source: str = ""
    """Where the number comes from (which events / system), shown in footnotes and tooltips."""


def _d(
    name: str, definition: str, unit: Unit, direction: Direction,
    grains: tuple[Grain, ...] = ALL_GRAINS, dimensions: tuple[str, ...] = TOTAL_ONLY,
) -> KpiDef:
    return KpiDef(name, definition, unit, direction, grains, dimensions)


U, C, R = Unit.USD, Unit.COUNT, Unit.RATIO
UP, DOWN, NEUTRAL = Direction.UP, Direction.DOWN, Direction.NEUTRAL

_BASE: tuple[KpiDef, ...] = (
    _d("spend", "Ad spend in the period (sum of spend events).", U, NEUTRAL, dimensions=ALL_DIMS),
    _d("impressions", "Ad impressions in the period.", C, UP, dimensions=ALL_DIMS),
    _d("clicks", "Ad clicks in the period.", C, UP, dimensions=ALL_DIMS),
    _d("ctr", "Click-through rate = clicks / impressions.", R, UP, dimensions=ALL_DIMS),
    _d("leads", "Accounts reaching the lead stage in the period (by channel/campaign: "
       "lead credits of the default attribution model).", C, UP, dimensions=ALL_DIMS),
    _d("mqls", "Accounts reaching MQL in the period.", C, UP),
    _d("sqls", "Accounts reaching SQL in the period.", C, UP),
    _d("opportunities", "Accounts reaching opportunity in the period (by channel/campaign: "
       "opportunity credits of the default model).", C, UP, dimensions=ALL_DIMS),
    _d("wins", "Accounts reaching won in the period (by channel/campaign: won credits of the "
       "default model).", C, UP, dimensions=ALL_DIMS),
    _d("cpl", "Cost per lead = spend / leads.", U, DOWN, dimensions=ALL_DIMS),
    _d("cost_per_opportunity", "Spend / opportunities.", U, DOWN, dimensions=ALL_DIMS),
    _d("cac", "Customer acquisition cost = sales & marketing spend / new customers (new MRR "
       "movements; by channel/campaign: new-subscription credits of the default model).",
       U, DOWN, dimensions=ALL_DIMS),
    _d("cac_payback_months", "CAC / (ARPA × gross margin), ARPA at period end.",
       Unit.MONTHS, DOWN),
    _d("attributed_pipeline", "Opportunity amount credited to marketing touches (default "
       "model; `attributed_pipeline__<model>` per model).", U, UP, dimensions=ALL_DIMS),
    _d("attributed_revenue", "Won revenue credited to marketing touches (default model; "
       "`attributed_revenue__<model>` per model).", U, UP, dimensions=ALL_DIMS),
    _d("roas", "Return on ad spend = attributed revenue / spend.", R, UP, dimensions=ALL_DIMS),
    _d("marketing_roi", "(Attributed revenue − spend) / spend.", R, UP, dimensions=ALL_DIMS),
    _d("mrr", "Monthly recurring revenue at period end (sum of every account's MRR).", U, UP),
    _d("arr", "Annual recurring revenue = 12 × MRR at period end.", U, UP),
    _d("mrr_new", "MRR of accounts' first paid subscription in the period.", U, UP),
    _d("mrr_expansion", "MRR increases of paying accounts in the period.", U, UP),
    _d("mrr_contraction", "MRR decreases of still-paying accounts (negative).", U, UP),
    _d("mrr_churn", "MRR lost by accounts going to zero (negative).", U, UP),
    _d("mrr_reactivation", "MRR of accounts paying again after having churned.", U, UP),
    _d("mrr_net_new", "new + expansion + contraction + churn + reactivation.", U, UP),
    _d("gross_mrr_churn_rate", "(churn + contraction) / MRR at period start (magnitudes).",
       R, DOWN),
    _d("net_mrr_churn_rate", "(churn + contraction − expansion − reactivation) / MRR at "
       "period start (magnitudes).", R, DOWN),
    _d("nrr", "Net revenue retention = 1 − net MRR churn rate.", R, UP),
    _d("logo_churn_rate", "Accounts churned in the period / paying accounts at period start.",
       R, DOWN),
    _d("paying_accounts", "Accounts with MRR > 0 at period end.", C, UP),
    _d("arpa", "Average revenue per account = MRR / paying accounts at period end.", U, UP),
    _d("ltv", "ARPA × gross margin / customer churn rate (average monthly logo churn of the "
       "6 months ending with the period's last month).", U, UP),
    _d("ltv_cac", "LTV / CAC (≥ 3 is healthy).", R, UP),
    _d("budget", "Planned budget (channel budget, else the sum of its campaign budgets).",
       U, NEUTRAL, BUDGET_GRAINS, ALL_DIMS),
    _d("spend_to_date", "Spend in the period up to the as-of day.", U, NEUTRAL,
       BUDGET_GRAINS, ALL_DIMS),
    _d("pacing", "Spend to date / (budget × elapsed fraction of the period); 1 = on plan.",
       R, NEUTRAL, BUDGET_GRAINS, ALL_DIMS),
    _d("projected_spend", "Projected period-end spend = spend to date / elapsed fraction.",
       U, NEUTRAL, BUDGET_GRAINS, ALL_DIMS),
)


def _funnel() -> tuple[KpiDef, ...]:
    out: list[KpiDef] = []
    for a, b in STAGE_PAIRS:
        out.append(_d(f"conv_{a}_to_{b}", f"Of the accounts reaching {a} in the period, the "
                      f"fraction that reached {b} (so far).", R, UP))
        out.append(_d(f"velocity_{a}_to_{b}_days", f"Median days from {a} to {b} of the "
                      f"accounts reaching {b} in the period.", Unit.DAYS, DOWN))
    return tuple(out)


def _per_model() -> tuple[KpiDef, ...]:
    base = {k.name: k for k in _BASE}
    return tuple(
        _d(f"{kpi}__{model}", f"{base[kpi].definition.split(' (')[0]} — model {model}.",
           base[kpi].unit, base[kpi].direction, dimensions=ALL_DIMS)
        for kpi in MODEL_KPIS
        for model in MODELS
    )


CATALOG: tuple[KpiDef, ...] = (*_BASE, *_funnel(), *_per_model())
BY_NAME: dict[str, KpiDef] = {k.name: k for k in CATALOG}


def unit_of(kpi: str) -> str:
    return str(BY_NAME[kpi].unit)
