"""What a role may see of a report (:mod:`pulse_shared.access`): one cut used by the
dashboard, its API and report delivery, so a section added to reports is scoped once."""

from __future__ import annotations

from collections.abc import Mapping

from pulse_reporting.domain.model import InsightSection, ModelComparison, MrrBridge, Report
from pulse_shared.access import Role, kpi_visible, scope


def alert_dimension(labels: Mapping[str, str]) -> str:
    """The KPI dimension an alert is about (its labels name the channel or campaign)."""
    if labels.get("dimension") in ("channel", "campaign"):
        return labels["dimension"]
    for dimension in ("campaign", "channel"):
        if dimension in labels:
            return dimension
    return "all"


#: What an insight section that names no KPIs is about, by its key (the sections of
#: issue 17): (KPIs, dimensions). A key not listed is shown only to roles that see
#: every KPI (fails closed).
INSIGHT_DEFAULT_KPIS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "usage": (("active_accounts_monthly", "feature_adoption_rate", "churn_risk_accounts"),
              ("all",)),
    "deliverability": (("delivery_rate", "bounce_rate", "complaint_rate"), ("all",)),
    "cx": (("nps", "csat", "tickets_created"), ("all",)),
    "martech": (("spend", "cac", "marketing_roi"), ("all",)),
    "segments": (("mrr",), ("segment",)),
    "quarter": (("spend", "cac", "roas", "mrr"), ("all",)),
}


def insight_visible(role: Role | str, section: InsightSection) -> bool:
    """Whether ``role`` may see the whole section: every KPI it shows at every dimension
    (its own ``kpis``/``dimensions``, else its key's :data:`INSIGHT_DEFAULT_KPIS`)."""
    if scope(role).all_kpis:
        return True
    kpis, dimensions = tuple(section.kpis), tuple(section.dimensions)
    if not kpis:
        kpis, dimensions = INSIGHT_DEFAULT_KPIS.get(section.key, ((), ()))
    if not kpis:
        return False
    return all(kpi_visible(role, k, d) for k in kpis for d in dimensions or ("all",))


def scoped_report(report: Report, role: Role | str) -> Report:
    """``report`` cut to what ``role`` may see (:mod:`pulse_shared.access`): KPIs of its
    families at its dimensions only. Sections that are channel or campaign economics
    (channels, campaigns, model comparison, recommendations, paths, budget, funnel,
    marketing mix model) are
    emptied unless the role sees the KPIs they are made of; cohort retention (MRR by
    first paid month, in total) goes with the revenue family (cx sees it) and the trial
    KPIs with the funnel family (cx does not); the daily briefing's month-to-date rows,
    resolved alerts and the annual report's month-by-month rows by their KPI; the notes (free text that may
    name any KPI) are dropped for a narrowed role. Fails closed: a KPI outside the catalog
    is hidden from a narrowed role."""
    role = Role(role)
    if scope(role).all_kpis:
        return report

    def visible(kpi: str, dimension: str = "all") -> bool:
        return kpi_visible(role, kpi, dimension)

    return report.model_copy(update={
        "headline": [t for t in report.headline if visible(t.kpi)],
        "mrr_bridge": report.mrr_bridge if visible("mrr_new") else MrrBridge(
            starting=None, new=None, expansion=None, reactivation=None, contraction=None,
            churn=None, net_new=None, ending=None),
        "channels": report.channels if visible("spend", "channel") else [],
        "campaigns": report.campaigns if visible("spend", "campaign") else [],
        "top_campaigns": report.top_campaigns if visible("spend", "campaign") else [],
        "bottom_campaigns": report.bottom_campaigns if visible("spend", "campaign") else [],
        "model_comparison": report.model_comparison
        if visible("attributed_revenue", "channel") else ModelComparison(models=[], rows=[]),
        "funnel": report.funnel if visible("leads") else [],
        "budget": report.budget if visible("budget", "channel") else [],
        "paths": report.paths if visible("attributed_revenue", "channel") else [],
        "alerts": [a for a in report.alerts if visible(a.kpi, alert_dimension(a.labels))],
        "trends": [t for t in report.trends if visible(t.kpi)],
        "forecast": [f for f in report.forecast if visible(f.kpi, f.dimension)],
        "forecast_check": [c for c in report.forecast_check if visible(c.kpi)],
        "recommendations": report.recommendations if visible("roas", "campaign") else [],
        "notes": [],
        "footnotes": [f for f in report.footnotes if visible(f.kpi)],
        "forecast_by_channel": [
            f for f in report.forecast_by_channel if visible(f.kpi, f.dimension)],
        # incremental ROI, spend shifts: channel economics like the channels section
        "mmm": report.mmm if visible("spend", "channel") else None,
        # Cohort retention is MRR by first paid month, in total (no channel or campaign):
        # revenue retention, the revenue family — cx sees it, as it sees NRR and churn.
        "cohorts": report.cohorts if visible("mrr") else None,
        # trial KPIs are funnel KPIs (catalog family funnel): hidden from cx
        "trials": [t for t in report.trials if visible(t.kpi)],
        # daily briefing: month-to-date rows and resolved alerts by their KPI
        "briefing": report.briefing.model_copy(update={
            "pacing": [r for r in report.briefing.pacing if visible(r.kpi)],
            "alerts_resolved": [a for a in report.briefing.alerts_resolved
                                if visible(a.kpi, alert_dimension(a.labels))],
        }) if report.briefing is not None else None,
        # annual report: the month-by-month rows by their KPI
        "annual": report.annual.model_copy(update={
            "rows": [r for r in report.annual.rows if visible(r.kpi)],
        }) if report.annual is not None else None,
        # insight sections whole: by the KPIs and dimensions each one shows
        "insights": [s for s in report.insights if insight_visible(role, s)],
    })
