"""Who may see and do what: the Pulse roles and their written scopes (one place).

Every surface reads this module: the HTTP guards of every service (permissions), the
dashboard and its JSON API (KPI families and dimensions a role sees), the ClickHouse
roles created by migration ``0060_access_roles`` (table grants, with later access
migrations such as ``0071_mmm_access`` and ``0072_martech_access`` for newer tables, and
the ``kpi_values`` row policy; a test checks the grants against :data:`SCOPES`), Grafana's per-role data
sources and docs/security.md.

The roles are the company's personas:

* ``cmo`` and ``director`` — marketing leadership: every KPI, channel and campaign
  economics, reports, alerts (read).
* ``marketing_ops`` — runs the numbers: everything leadership sees, and manages alert
  silences and rules.
* ``cx`` — customer experience: revenue retention of paying customers (MRR movements,
  churn, NRR, paying accounts, ARPA, LTV), product usage and customer experience (NPS,
  CSAT, tickets) KPIs in total and by segment, plus account-level subscriptions, MRR
  movements, usage, survey answers and tickets in ClickHouse (to follow up accounts at
  risk); no spend, funnel, campaign or channel economics, no report files (they carry
  economics).
* ``platform`` — the platform team: operations only (API docs, silences and rules, users),
  no business data.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from pulse_shared.kpi_catalog import BY_NAME, Family


class Role(StrEnum):
    CMO = "cmo"
    DIRECTOR = "director"
    MARKETING_OPS = "marketing_ops"
    CX = "cx"
    PLATFORM = "platform"


class Permission(StrEnum):
    """An action on an HTTP surface. Data permissions are further narrowed by the role's
    KPI families and dimensions."""

    VIEW_OVERVIEW = "view_overview"
    """Dashboard overview and its API (KPIs filtered to the role's families)."""
    VIEW_CAMPAIGNS = "view_campaigns"
    """Channel and campaign economics (campaign page and API)."""
    VIEW_REPORTS = "view_reports"
    """Report list and report files."""
    VIEW_ALERTS = "view_alerts"
    """Alert silences (list)."""
    MANAGE_SILENCES = "manage_silences"
    MANAGE_RULES = "manage_rules"
    MANAGE_USERS = "manage_users"
    VIEW_API_DOCS = "view_api_docs"
    """AsyncAPI / OpenAPI documents of a service."""


#: Dimensions of KPI values (``kpi_values.dimension``): "all" is the company total.
TOTAL = "all"
ALL_DIMENSIONS: frozenset[str] = frozenset({"all", "channel", "campaign", "sending_domain",
                                            "feature"})
#: Breakdowns by the account's profile at the time (account_profiles, migration 0026).
ACCOUNT_DIMENSIONS: frozenset[str] = frozenset({
    "segment", "plan", "region", "industry", "employee_band",
})
ALL_DIMENSIONS |= ACCOUNT_DIMENSIONS

#: The marketing mix model's tables (migration 0070): spend economics (incremental ROI,
#: spend per channel and period, budget allocations), so leadership and marketing ops
#: read them and cx and platform do not. Granted by the access migration 0071_mmm_access.
MMM_TABLES: frozenset[str] = frozenset({
    "mmm_runs", "mmm_channel_results", "mmm_contributions", "mmm_response_curves",
    "mmm_posterior_draws", "mmm_allocations",
})
#: Martech (tool and licence) costs (migration 0025): budget economics, so leadership and
#: marketing ops read them and cx and platform do not (the martech KPIs are in the budget
#: and acquisition families, outside cx's). Granted by the access migration 0072.
MARTECH_TABLES: frozenset[str] = frozenset({"martech_costs"})
#: E-mail deliverability counts (migration 0028): marketing operations, so leadership and
#: marketing ops read them and cx and platform do not (the deliverability family is not
#: cx's). Granted by the access migration 0075.
DELIVERABILITY_TABLES: frozenset[str] = frozenset({"email_deliverability"})
#: Product usage per account and feature (migration 0027): leadership and marketing ops
#: read it, and cx (who follows up the accounts whose usage drops, the churn-risk list).
#: Granted by the access migration 0074.
USAGE_TABLES: frozenset[str] = frozenset({"product_usage"})
#: Customer experience: NPS / CSAT answers and support tickets per account (migration
#: 0029): leadership and marketing ops read them, and cx (whose data it is: who answered
#: what, which tickets wait). Granted by the access migration 0076.
CX_TABLES: frozenset[str] = frozenset({"feedback_responses", "support_tickets"})
#: Account profiles (firmographics per account over time, migration 0026): leadership and
#: marketing ops read them, and cx (retention by segment and plan, per account). Granted by
#: the access migration 0073.
ACCOUNT_TABLES: frozenset[str] = frozenset({"account_profiles"})
#: Analytics tables and views a ClickHouse role may be granted (never the users,
#: erasure audit or migration tables).
BUSINESS_TABLES: frozenset[str] = frozenset({
    "touchpoints", "spend", "subscriptions", "pipeline_events", "budgets",
    "touchpoints_daily", "attribution_credits", "attribution_credits_latest", "conversions",
    "attribution_model_runs", "attribution_channel_results", "kpi_values",
    "kpi_mrr_movements", "alert_state", "alert_events", "alert_silences", "reports",
}) | MMM_TABLES | MARTECH_TABLES | USAGE_TABLES | DELIVERABILITY_TABLES | ACCOUNT_TABLES
BUSINESS_TABLES |= CX_TABLES


@dataclass(frozen=True)
class Scope:
    role: Role
    summary: str
    permissions: frozenset[Permission]
    kpi_families: frozenset[Family]
    dimensions: frozenset[str]
    tables: frozenset[str]
    """Tables and views its ClickHouse role may SELECT (``kpi_values`` rows further
    limited to :attr:`kpi_families` × :attr:`dimensions` by a row policy when narrower
    than everything)."""

    def can(self, permission: Permission) -> bool:
        return permission in self.permissions

    @property
    def all_kpis(self) -> bool:
        return self.kpi_families == frozenset(Family) and self.dimensions == ALL_DIMENSIONS


_LEADERSHIP = frozenset({
    Permission.VIEW_OVERVIEW, Permission.VIEW_CAMPAIGNS, Permission.VIEW_REPORTS,
    Permission.VIEW_ALERTS, Permission.VIEW_API_DOCS,
})
_OPERATIONS = frozenset({Permission.MANAGE_SILENCES, Permission.MANAGE_RULES})

SCOPES: dict[Role, Scope] = {
    Role.CMO: Scope(
        Role.CMO, "Every KPI, channel and campaign economics, reports, alerts (read).",
        _LEADERSHIP, frozenset(Family), ALL_DIMENSIONS, BUSINESS_TABLES,
    ),
    Role.DIRECTOR: Scope(
        Role.DIRECTOR, "As the CMO: every KPI, channels and campaigns, reports, alerts (read).",
        _LEADERSHIP, frozenset(Family), ALL_DIMENSIONS, BUSINESS_TABLES,
    ),
    Role.MARKETING_OPS: Scope(
        Role.MARKETING_OPS, "Everything leadership sees; manages alert silences and rules.",
        _LEADERSHIP | _OPERATIONS, frozenset(Family), ALL_DIMENSIONS, BUSINESS_TABLES,
    ),
    Role.CX: Scope(
        Role.CX, "Customer retention and experience: revenue retention (MRR movements, churn, "
        "NRR, paying accounts, ARPA, LTV), product usage (active accounts, adoption, churn "
        "risk) and customer experience (NPS, CSAT, tickets, first response time) KPIs in "
        "total and by segment (usage also by feature), and per account the subscriptions, MRR movements, usage, "
        "survey answers and tickets behind them; no spend, funnel, channel or campaign "
        "economics, no deliverability and no report files.",
        frozenset({Permission.VIEW_OVERVIEW}),
        frozenset({Family.REVENUE, Family.PRODUCT, Family.EXPERIENCE}),
        # feature: adoption per feature (product family only has KPIs by feature)
        frozenset({TOTAL, "segment", "feature"}),
        frozenset({"kpi_values", "kpi_mrr_movements", "subscriptions"}) | USAGE_TABLES
        | ACCOUNT_TABLES | CX_TABLES,
    ),
    Role.PLATFORM: Scope(
        Role.PLATFORM, "Operations: API docs, alert silences and rules, users; no business "
        "data.",
        frozenset({Permission.VIEW_API_DOCS, Permission.VIEW_ALERTS, Permission.MANAGE_USERS})
        | _OPERATIONS,
        frozenset(), frozenset(), frozenset({"alert_silences"}),
    ),
}

ROLE_NAMES: tuple[str, ...] = tuple(r.value for r in Role)


def parse_role(text: str) -> Role:
    """The role named ``text`` or ``ValueError`` listing the roles."""
    try:
        return Role(text.strip().lower())
    except ValueError:
        raise ValueError(f"unknown role {text!r}; one of {', '.join(ROLE_NAMES)}") from None


def scope(role: Role | str) -> Scope:
    return SCOPES[Role(role)]


def can(role: Role | str, permission: Permission) -> bool:
    return scope(role).can(permission)


def kpi_family(kpi: str) -> Family | None:
    """The family of ``kpi`` (per-model names ``<kpi>__<model>`` as their base KPI); None
    for a name outside the catalog."""
    found = BY_NAME.get(kpi) or BY_NAME.get(kpi.split("__", 1)[0])
    return found.family if found is not None else None


def kpi_visible(role: Role | str, kpi: str, dimension: str = TOTAL) -> bool:
    """Whether ``role`` may see ``kpi`` at ``dimension`` ("all", "channel", "campaign")."""
    s = scope(role)
    family = kpi_family(kpi)
    return family is not None and family in s.kpi_families and dimension in s.dimensions


def visible_kpis(role: Role | str, kpis: Iterable[str], dimension: str = TOTAL) -> list[str]:
    return [k for k in kpis if kpi_visible(role, k, dimension)]


def clickhouse_role(role: Role | str) -> str:
    """The ClickHouse role of a Pulse role (created by the access migration)."""
    return f"pulse_{Role(role).value}"
