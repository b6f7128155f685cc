"""Fixture rows for reporting tests (imported by test_reporting_*.py; no conftest needed)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from pulse_reporting.domain.periods import Period
from pulse_shared.store import Store

KPI_COLUMNS = (
    "kpi", "grain", "period", "period_start", "dimension", "dimension_value", "value", "unit",
    "computed_at",
)
ALERT_COLUMNS = (
    "alert_id", "fingerprint", "rule", "state", "severity", "kpi", "labels", "annotations",
    "value", "threshold", "starts_at", "ends_at", "sent_at",
)
COMPUTED = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)


def kpi(
    name: str, period: Period, value: float | None, dimension: str = "all", member: str = "",
    unit: str = "usd", computed_at: dt.datetime = COMPUTED,
) -> dict[str, Any]:
    return {
        "kpi": name, "grain": period.grain, "period": period.label,
        "period_start": period.start, "dimension": dimension, "dimension_value": member,
        "value": value, "unit": unit, "computed_at": computed_at,
    }


def period_kpis(period: Period, scale: float = 1.0) -> list[dict[str, Any]]:
    """A plausible, internally consistent set of KPI rows for one period."""
    s = scale
    rows = [
        kpi("spend", period, 10000.0 * s),
        kpi("attributed_revenue", period, 40000.0 * s),
        kpi("attributed_revenue__linear", period, 36000.0 * s),
        kpi("attributed_pipeline", period, 90000.0 * s),
        kpi("roas", period, 4.0, unit="ratio"),
        kpi("roas__linear", period, 3.6, unit="ratio"),
        kpi("marketing_roi", period, 3.0, unit="ratio"),
        kpi("cac", period, 2000.0 / s),
        kpi("ltv", period, 24000.0),
        kpi("ltv_cac", period, 12.0 * s, unit="ratio"),
        kpi("mrr", period, 100000.0 * s),
        kpi("arr", period, 1200000.0 * s),
        kpi("mrr_new", period, 5000.0 * s),
        kpi("mrr_expansion", period, 1500.0 * s),
        kpi("mrr_reactivation", period, 500.0 * s),
        kpi("mrr_contraction", period, 700.0 * s),
        kpi("mrr_churn", period, 1300.0 * s),
        kpi("mrr_net_new", period, 5000.0 * s),
        kpi("nrr", period, 1.0 - 0.01 / s, unit="fraction"),
        kpi("gross_mrr_churn_rate", period, 0.02 / s, unit="fraction"),
        kpi("leads", period, 200.0 * s, unit="count"),
        kpi("mqls", period, 100.0 * s, unit="count"),
        kpi("sqls", period, 40.0 * s, unit="count"),
        kpi("opportunities", period, 20.0 * s, unit="count"),
        kpi("wins", period, 5.0 * s, unit="count"),
        # billing's first paid subscriptions: CAC = spend / new customers reconciles
        kpi("new_customers", period, 5.0 * s * s, unit="count"),
        kpi("conv_lead_to_mql", period, 0.5, unit="fraction"),
        kpi("conv_mql_to_sql", period, 0.4, unit="fraction"),
        kpi("velocity_lead_to_mql_days", period, 3.5, unit="days"),
        kpi("cpl", period, 50.0 / s),
    ]
    channels = {
        "paid_search": (6000.0, 30000.0, 27000.0),
        "paid_social": (4000.0, 8000.0, 7000.0),
        "email": (0.0, 2000.0, 2000.0),
    }
    for channel, (spend, rev, rev_lin) in channels.items():
        rows += [
            kpi("spend", period, spend * s, "channel", channel),
            kpi("attributed_revenue", period, rev * s, "channel", channel),
            kpi("attributed_revenue__linear", period, rev_lin * s, "channel", channel),
            kpi("roas", period, rev / spend if spend else None, "channel", channel, "ratio"),
            kpi(
                "roas__linear", period, rev_lin / spend if spend else None, "channel",
                channel, "ratio",
            ),
        ]
    campaigns = {"brand": (1000.0, 9000.0), "generic": (5000.0, 21000.0),
                 "retarget": (4000.0, 8000.0)}
    for campaign, (spend, rev) in campaigns.items():
        rows += [
            kpi("spend", period, spend * s, "campaign", campaign),
            kpi("attributed_revenue", period, rev * s, "campaign", campaign),
            kpi("roas", period, rev / spend, "campaign", campaign, "ratio"),
        ]
    return rows


def insert_kpis(store: Store, rows: list[dict[str, Any]]) -> None:
    store.insert("kpi_values", rows, KPI_COLUMNS)


def alert(
    alert_id: str, starts_at: dt.datetime, state: str = "firing", severity: str = "warning",
    rule: str = "cac_spike", summary: str = "CAC above threshold",
    period: str = "", data_time: dt.datetime | None = None,
) -> dict[str, Any]:
    """An ``alert_events`` row processed at ``starts_at``; ``period``/``data_time`` are the
    annotations naming the data that fired it (absent when empty)."""
    annotations = {"summary": summary}
    if period:
        annotations["period"] = period
    if data_time is not None:
        annotations["data_time"] = data_time.isoformat()
    return {
        "alert_id": alert_id, "fingerprint": f"fp-{alert_id}", "rule": rule, "state": state,
        "severity": severity, "kpi": "cac", "labels": {"channel": "paid_social"},
        "annotations": annotations, "value": 2500.0, "threshold": 2000.0,
        "starts_at": starts_at, "ends_at": None, "sent_at": starts_at,
    }


def insert_alerts(store: Store, rows: list[dict[str, Any]]) -> None:
    store.insert("alert_events", rows, ALERT_COLUMNS)



def bearer(token: str) -> dict[str, str]:
    """Request headers of a signed-in API call (tokens: ``auth_support.issue_token``)."""
    return {"Authorization": f"Bearer {token}"}
