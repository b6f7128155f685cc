"""Persona views of the dashboard: what the CMO, marketing ops and customer experience
each look at first, cut to what the viewer's role may see (:mod:`pulse_shared.access`).

Pure: no I/O, no clock. A view is panels of KPI tiles (the period against the previous
one, read from ``kpi_values`` by KPI name), tables and chart names, built from the
dashboard's report of the period (budget pacing, alerts, campaigns, marketing mix model)
and the KPI rows of the period. A KPI without a value is n/a, never 0; a KPI the catalog
does not know (yet) is shown as n/a to roles that see every KPI and hidden from a
narrowed role (fails closed).

* ``cmo`` — revenue, pipeline, CAC and LTV (with and without tools), incrementality.
* ``ops`` — budget pacing, alerts, deliverability (with the industry thresholds),
  campaigns.
* ``cx`` — retention, customer experience (NPS, CSAT, tickets), product usage and the
  accounts at churn risk.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction

from pulse_reporting.domain.assemble import KpiTable, delta
from pulse_reporting.domain.formatting import fmt_value
from pulse_reporting.domain.kpis import spec as kpi_spec
from pulse_reporting.domain.model import (
    Better,
    Delta,
    Fmt,
    KpiValue,
    Report,
    Tone,
)
from pulse_reporting.domain.tables import Column, Table, alert_data_period
from pulse_shared.access import Permission, Role, kpi_visible
from pulse_shared.access import scope as role_scope
from pulse_shared.attribution_models import MODEL_NAMES
from pulse_shared.kpi_catalog import BY_NAME, CHURN_RISK_DROP_DEFAULT

#: Industry thresholds drawn on the deliverability tiles (the alert rule templates' defaults).
BOUNCE_THRESHOLD = 0.02
COMPLAINT_THRESHOLD = 0.001
#: Accounts listed on the CX page (the riskiest first).
CHURN_RISK_LIST = 25
#: Labels and formats of KPIs other slices add, used until the catalog has them (then the
#: catalog's win): the page can be built before their data exists.
FALLBACK: dict[str, tuple[str, Fmt, Better]] = {
    "nps": ("NPS", Fmt.COUNT, Better.UP),
    "nps_responses": ("NPS responses", Fmt.COUNT, Better.UP),
    "csat": ("CSAT", Fmt.PERCENT, Better.UP),
    "tickets_created": ("Tickets created", Fmt.COUNT, Better.DOWN),
    "tickets_resolved": ("Tickets resolved", Fmt.COUNT, Better.UP),
    "first_response_hours": ("First response (hours, median)", Fmt.COUNT, Better.DOWN),
    "tickets_per_account": ("Tickets per paying account", Fmt.RATIO, Better.DOWN),
}
#: Ratios of the catalog shown as percentages on persona pages (rates people read as %).
PERCENT_RATES = frozenset({
    "delivery_rate", "bounce_rate", "hard_bounce_rate", "complaint_rate", "unsubscribe_rate",
    "open_rate", "click_rate", "feature_adoption_rate", "trial_to_paid_rate", "csat",
    "marketing_roi_fully_loaded",
})
#: The active-accounts KPI of each dashboard grain (a quarter has none).
ACTIVE_BY_GRAIN = {"week": "active_accounts_weekly", "month": "active_accounts_monthly"}


@dataclass(frozen=True)
class Tile:
    kpi: str
    label: str
    fmt: Fmt
    value: float | None
    change: Delta
    threshold: float | None = None  # an alert threshold: the value above it is flagged
    over: bool = False


@dataclass(frozen=True)
class Panel:
    key: str  # html id
    title: str
    tiles: tuple[Tile, ...] = ()
    tables: tuple[Table, ...] = ()
    charts: tuple[str, ...] = ()  # report chart names (render.drawing.report_charts)
    text: tuple[str, ...] = ()
    empty: str = "No data yet for this period."


@dataclass(frozen=True)
class PersonaSpec:
    key: str
    title: str
    nav: str  # its link in the navigation
    summary: str
    permission: Permission  # what the route requires (the guard answers 403 otherwise)


PERSONAS: dict[str, PersonaSpec] = {
    "cmo": PersonaSpec("cmo", "CMO", "CMO view",
                       "Revenue, pipeline, CAC and LTV, incrementality.",
                       Permission.VIEW_CAMPAIGNS),
    "ops": PersonaSpec("ops", "Marketing ops", "Ops view",
                       "Budget pacing, alerts, deliverability, campaigns.",
                       Permission.VIEW_CAMPAIGNS),
    "cx": PersonaSpec("cx", "Customer experience", "CX view",
                      "Retention, NPS and support, product usage, accounts at churn risk.",
                      Permission.VIEW_OVERVIEW),
}


@dataclass(frozen=True)
class ChurnRiskAccount:
    """An account paying at the period's end whose usage per day dropped by ``drop``."""

    account_id: str
    mrr: float
    uses: int
    previous_uses: int
    drop: float


@dataclass(frozen=True)
class PersonaInputs:
    persona: str
    role: Role
    grain: str
    period: str
    previous_period: str
    model: str
    kpis: Sequence[KpiValue]  # the period and the previous one, every dimension
    report: Report  # the dashboard's report of the period, already cut to the role
    churn_risks: Sequence[ChurnRiskAccount] = ()
    churn_risk_drop: float = CHURN_RISK_DROP_DEFAULT
    churn_risk_note: str = ""


@dataclass(frozen=True)
class PersonaView:
    persona: str
    title: str
    summary: str
    period: str
    previous_period: str
    panels: list[Panel] = field(default_factory=list)


def display(kpi: str) -> tuple[str, Fmt, Better]:
    """Label, format and good direction of ``kpi`` (catalog first, then :data:`FALLBACK`)."""
    if kpi in BY_NAME:
        s = kpi_spec(kpi)
        fmt = Fmt.PERCENT if kpi in PERCENT_RATES else s.fmt
        return s.label, fmt, s.better
    return FALLBACK.get(kpi, (kpi.replace("_", " "), Fmt.COUNT, Better.NEUTRAL))


def visible(role: Role, kpi: str, dimension: str = "all") -> bool:
    """Whether the viewer sees ``kpi`` at ``dimension``: every KPI (even one the catalog
    does not know yet) for roles that see everything, else by the role's scope."""
    if role_scope(role).all_kpis:
        return True
    return kpi_visible(role, kpi, dimension)


def _tiles(
    inputs: PersonaInputs, table: KpiTable, kpis: Sequence[str],
    thresholds: dict[str, float] | None = None,
) -> tuple[Tile, ...]:
    out: list[Tile] = []
    for kpi in kpis:
        if not visible(inputs.role, kpi):
            continue
        label, fmt, better = display(kpi)
        value = table.get(kpi, inputs.period, model=inputs.model)
        previous = table.get(kpi, inputs.previous_period, model=inputs.model)
        threshold = (thresholds or {}).get(kpi)
        out.append(Tile(
            kpi, label, fmt, value, delta(value, previous, better), threshold,
            over=threshold is not None and value is not None and value > threshold,
        ))
    return tuple(out)


def _dimension_table(
    inputs: PersonaInputs, table: KpiTable, name: str, title: str, dimension: str,
    first: str, kpis: Sequence[str],
) -> Table | None:
    shown = [k for k in kpis if visible(inputs.role, k, dimension)]
    members = table.members(inputs.period, dimension)
    if not shown or not members:
        return None
    columns = (Column(dimension, first), *(Column(k, display(k)[0], display(k)[1])
                                            for k in shown))
    rows = tuple(
        (member, *(table.get(k, inputs.period, dimension, member, model=inputs.model)
                   for k in shown))
        for member in members
    )
    return Table(name, title, columns, rows)


def _cmo(inputs: PersonaInputs, table: KpiTable) -> list[Panel]:
    report = inputs.report
    panels = [
        Panel("revenue", "Revenue", _tiles(inputs, table, (
            "mrr", "arr", "mrr_net_new", "nrr", "paying_accounts", "new_customers")),
            charts=("trend_mrr",)),
        Panel("pipeline", "Pipeline", _tiles(inputs, table, (
            "attributed_pipeline", "attributed_revenue", "leads", "opportunities", "wins",
            "trial_to_paid_rate"))),
        Panel("cac-ltv", "CAC and LTV", _tiles(inputs, table, (
            "cac", "cac_fully_loaded", "ltv", "ltv_cac", "cac_payback_months", "roas",
            "marketing_roi", "marketing_roi_fully_loaded")),
            text=("CAC (fully loaded) and ROI (fully loaded) count tool and licence costs "
                  "(martech) beside ad spend.",)),
    ]
    if report.mmm is not None:
        panels.append(Panel("mmm", "Incrementality (marketing mix model)",
                            charts=("mmm_roi",), text=(report.mmm.statement,), empty=""))
    elif visible(inputs.role, "spend", "channel"):
        panels.append(Panel("mmm", "Incrementality (marketing mix model)", empty="",
                            text=("Marketing mix model results are shown for monthly and "
                                  "quarterly periods.",)))
    return panels


def _budget_table(report: Report) -> Table:
    return Table(
        "pacing", "Budget pacing",
        (Column("period", "Month"), Column("channel", "Channel"),
         Column("budget", "Budget", Fmt.MONEY), Column("spend_to_date", "Spend to date", Fmt.MONEY),
         Column("pacing", "Pacing", Fmt.PERCENT),
         Column("projected_spend", "Projected spend", Fmt.MONEY)),
        tuple((b.period, b.channel, b.budget, b.spend_to_date, b.pacing, b.projected_spend)
              for b in report.budget),
        tuple((None, None, None, None, b.tone.value, None) for b in report.budget),
    )


def _alerts_table(report: Report) -> Table:
    return Table(
        "alerts", "Alerts fired on the period's data",
        (Column("data_period", "Data period"), Column("severity", "Severity"),
         Column("rule", "Rule"), Column("kpi", "KPI"), Column("summary", "Summary")),
        tuple((alert_data_period(a), a.severity, a.rule, a.kpi, a.summary)
              for a in report.alerts),
        tuple((None, "bad" if a.severity == "critical" else None, None, None, None)
              for a in report.alerts),
    )


def _campaigns_table(name: str, title: str, rows: Sequence[object]) -> Table:
    columns = (Column("name", "Campaign"), Column("spend", "Spend", Fmt.MONEY),
               Column("attributed_revenue", "Attributed revenue", Fmt.MONEY),
               Column("roas", "ROAS", Fmt.RATIO), Column("cac", "CAC", Fmt.MONEY),
               Column("consensus_roas", "Median ROAS (all models)", Fmt.RATIO))
    return Table(name, title, columns, tuple(
        tuple(getattr(r, c.key) for c in columns) for r in rows))


def _ops(inputs: PersonaInputs, table: KpiTable) -> list[Panel]:
    report = inputs.report
    thresholds = {"bounce_rate": BOUNCE_THRESHOLD, "complaint_rate": COMPLAINT_THRESHOLD}
    deliverability = ("emails_sent", "delivery_rate", "bounce_rate", "hard_bounce_rate",
                      "complaint_rate", "unsubscribe_rate", "open_rate", "click_rate")
    by_domain = _dimension_table(
        inputs, table, "by_sending_domain", "By sending domain", "sending_domain",
        "Sending domain", ("emails_sent", "delivery_rate", "bounce_rate", "complaint_rate",
                           "open_rate", "click_rate"))
    panels = [
        Panel("pacing", "Budget pacing", tables=(_budget_table(report),) if report.budget
              else (), empty="No budgets for this period."),
        Panel("alerts", "Alerts", tables=(_alerts_table(report),) if report.alerts else (),
              empty="No alerts fired on this period's data."),
        Panel("deliverability", "Deliverability",
              _tiles(inputs, table, deliverability, thresholds),
              tables=(by_domain,) if by_domain else (),
              text=(f"Industry thresholds: bounce rate {fmt_value(BOUNCE_THRESHOLD, Fmt.PERCENT)}"
                    f", complaint rate {COMPLAINT_THRESHOLD * 100:.1f}% (flagged red above).",)),
    ]
    campaigns: list[Table] = []
    if report.top_campaigns:
        campaigns.append(_campaigns_table("top_campaigns", "Top campaigns",
                                          report.top_campaigns))
    if report.bottom_campaigns:
        campaigns.append(_campaigns_table("bottom_campaigns", "Bottom campaigns",
                                          report.bottom_campaigns))
    panels.append(Panel("campaigns", f"Campaigns — {inputs.model}", tables=tuple(campaigns),
                        empty="No campaign KPIs for this period."))
    return panels


def _cx(inputs: PersonaInputs, table: KpiTable) -> list[Panel]:
    usage = [k for k in (ACTIVE_BY_GRAIN.get(inputs.grain), "usage_events",
                         "churn_risk_accounts") if k]
    adoption = _dimension_table(inputs, table, "feature_adoption", "Feature adoption",
                                "feature", "Feature", ("feature_adoption_rate",
                                                       "usage_events"))
    panels = [
        Panel("retention", "Retention", _tiles(inputs, table, (
            "nrr", "gross_mrr_churn_rate", "logo_churn_rate", "mrr_churn", "paying_accounts",
            "arpa", "ltv"))),
        Panel("experience", "NPS and support", _tiles(inputs, table, (
            "nps", "nps_responses", "csat", "tickets_created", "tickets_resolved",
            "first_response_hours", "tickets_per_account"))),
        Panel("usage", "Product usage", _tiles(inputs, table, usage),
              tables=(adoption,) if adoption else ()),
    ]
    if visible(inputs.role, "churn_risk_accounts"):
        rows = tuple(
            (a.account_id, a.mrr, a.previous_uses, a.uses, a.drop)
            for a in inputs.churn_risks[:CHURN_RISK_LIST]
        )
        risk = Table(
            "churn_risk", "Accounts at churn risk",
            (Column("account_id", "Account"), Column("mrr", "MRR", Fmt.MONEY),
             Column("previous_uses", f"Uses {inputs.previous_period}", Fmt.COUNT),
             Column("uses", f"Uses {inputs.period}", Fmt.COUNT),
             Column("drop", "Drop per day", Fmt.PERCENT)),
            rows,
        )
        text = inputs.churn_risk_note or (
            f"Paying accounts whose usage per day fell by more than "
            f"{inputs.churn_risk_drop:.0%} against {inputs.previous_period} (riskiest "
            f"first, at most {CHURN_RISK_LIST}).")
        panels.append(Panel("churn-risk", "Accounts at churn risk",
                            tables=(risk,) if rows else (), text=(text,),
                            empty="No paying account's usage dropped that much."))
    return panels


BUILDERS = {"cmo": _cmo, "ops": _ops, "cx": _cx}


def persona_kpis(persona: str, grain: str) -> list[str]:
    """Every KPI name the persona's panels read (for the storage query)."""
    names = {
        "cmo": ["mrr", "arr", "mrr_net_new", "nrr", "paying_accounts", "new_customers",
                "attributed_pipeline", "attributed_revenue", "leads", "opportunities", "wins",
                "trial_to_paid_rate", "cac", "cac_fully_loaded", "ltv", "ltv_cac",
                "cac_payback_months", "roas", "marketing_roi", "marketing_roi_fully_loaded"],
        "ops": ["emails_sent", "delivery_rate", "bounce_rate", "hard_bounce_rate",
                "complaint_rate", "unsubscribe_rate", "open_rate", "click_rate"],
        "cx": ["nrr", "gross_mrr_churn_rate", "logo_churn_rate", "mrr_churn",
               "paying_accounts", "arpa", "ltv", "nps", "nps_responses", "csat",
               "tickets_created", "tickets_resolved", "first_response_hours",
               "tickets_per_account", "usage_events", "churn_risk_accounts",
               "feature_adoption_rate", *([ACTIVE_BY_GRAIN[grain]]
                                          if grain in ACTIVE_BY_GRAIN else [])],
    }[persona]
    # attribution KPIs are stored per model too (roas__linear …): read every variant
    return names + [f"{k}__{m}" for k in names for m in MODEL_NAMES
                    if k in ("attributed_pipeline", "attributed_revenue", "roas",
                             "marketing_roi")]


def persona_view(inputs: PersonaInputs) -> PersonaView:
    spec = PERSONAS[inputs.persona]
    table = KpiTable(inputs.kpis)
    panels = BUILDERS[inputs.persona](inputs, table)
    return PersonaView(inputs.persona, spec.title, spec.summary, inputs.period,
                       inputs.previous_period, panels)


def churn_risks(
    rows: Sequence[tuple[str, float, int, int]], days: int, previous_days: int,
    drop: float = CHURN_RISK_DROP_DEFAULT,
) -> list[ChurnRiskAccount]:
    """Accounts (id, MRR at the period's end, uses in the period, uses in the previous
    one) whose uses per day fell by more than ``drop``, compared exactly (a drop of
    exactly the threshold is not a risk), riskiest first. Without previous uses there is no
    baseline: never at risk. Same definition as the KPI ``churn_risk_accounts``."""
    out: list[ChurnRiskAccount] = []
    limit = Fraction(str(drop))
    for account, mrr, uses, previous in rows:
        if previous <= 0 or mrr <= 0 or days <= 0 or previous_days <= 0:
            continue
        fall = 1 - Fraction(uses, days) / Fraction(previous, previous_days)
        if fall > limit:
            out.append(ChurnRiskAccount(account, mrr, uses, previous, float(fall)))
    return sorted(out, key=lambda a: (-a.drop, -a.mrr, a.account_id))


def tone_class(tile: Tile) -> str:
    """CSS class of a tile's value: red over an alert threshold."""
    return Tone.BAD.value if tile.over else ""
