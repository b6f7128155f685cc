"""Persona views of the dashboard (CMO, marketing ops, CX): each page reads its KPIs by
name from kpi_values, shows n/a for what is absent, and is cut to the viewer's role —
cx gets 403 on the CMO and ops pages and, on its own page, only the families it may see."""

from __future__ import annotations

import datetime as dt
import sys
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from starlette.testclient import TestClient

sys.path.insert(0, str(Path(__file__).parent))

from auth_support import issue_token
from reporting_fixtures import bearer, insert_kpis, kpi, period_kpis

from pulse_reporting.domain.periods import parse_period
from pulse_reporting.domain.personas import churn_risks
from pulse_reporting.main import ReportingComponent, build
from pulse_reporting.settings import ReportingSettings
from pulse_reporting.web import create_dashboard
from pulse_shared.access import kpi_family, kpi_visible, scope
from pulse_shared.bus import Bus, make_broker
from pulse_shared.store import Store

MONTH = parse_period("monthly", "2044-03")
TODAY = dt.date(2044, 4, 10)
QUERY = "grain=month&period=2044-03&model=position_based"
EVIL = "<script>alert(1)</script>"


def _usage(account: str, day: dt.date, count: int, i: int) -> dict[str, object]:
    return {"event_id": f"s5-pu-{account}-{i}", "day": day, "account_id": account,
            "feature": "editor", "count": count}


@pytest.fixture(scope="module")
def component(
    embedded_store: Store, tmp_path_factory: pytest.TempPathFactory
) -> ReportingComponent:
    store = embedded_store
    feb = MONTH.previous()
    insert_kpis(store, period_kpis(MONTH, 1.2) + period_kpis(feb, 1.0))
    insert_kpis(store, [
        kpi("bounce_rate", MONTH, 0.031, unit="ratio"),  # above the 2 % threshold
        kpi("complaint_rate", MONTH, 0.0004, unit="ratio"),
        kpi("emails_sent", MONTH, 120000.0, unit="count"),
        kpi("bounce_rate", MONTH, 0.05, "sending_domain", "news.example.com", "ratio"),
        kpi("cac_fully_loaded", MONTH, 2100.0),
        kpi("active_accounts_monthly", MONTH, 140.0, unit="count"),
        kpi("active_accounts_monthly", feb, 150.0, unit="count"),
        kpi("feature_adoption_rate", MONTH, 0.4, "feature", EVIL, "ratio"),
        kpi("churn_risk_accounts", MONTH, 1.0, unit="count"),
        kpi("nps", MONTH, 31.0, unit="count"),
    ])
    store.insert("product_usage", [
        # acct-drop: 62 uses in February, 3 in March: −95 % per day
        *(_usage("acct-drop", dt.date(2044, 2, d), 2 if d > 1 else 8, d) for d in range(1, 29)),
        _usage("acct-drop", dt.date(2044, 3, 2), 3, 100),
        # acct-steady: same use per day
        _usage("acct-steady", dt.date(2044, 2, 5), 28, 1),
        _usage("acct-steady", dt.date(2044, 3, 5), 31, 2),
        # acct-gone: stopped paying in March: not listed (CX follows paying accounts)
        _usage("acct-gone", dt.date(2044, 2, 5), 50, 1),
    ], ("event_id", "day", "account_id", "feature", "count"))
    movement_columns = ("event_id", "account_id", "occurred_at", "kind", "mrr_before",
                        "mrr_after", "paying_delta", "computed_at")
    at = dt.datetime(2044, 1, 10, tzinfo=dt.UTC)
    store.insert("kpi_mrr_movements", [
        {"event_id": f"s5-mm-{a}", "account_id": a, "occurred_at": at, "kind": "new",
         "mrr_before": Decimal(0), "mrr_after": Decimal(mrr), "paying_delta": 1,
         "computed_at": at}
        for a, mrr in (("acct-drop", 300), ("acct-steady", 200), ("acct-gone", 100))
    ] + [{"event_id": "s5-mm-gone-2", "account_id": "acct-gone",
          "occurred_at": dt.datetime(2044, 3, 15, tzinfo=dt.UTC), "kind": "churn",
          "mrr_before": Decimal(100), "mrr_after": Decimal(0), "paying_delta": -1,
          "computed_at": at}], movement_columns)
    settings = ReportingSettings(output_dir=tmp_path_factory.mktemp("persona"),
                                 schedule_enabled=False)
    return build(store, Bus(make_broker(None), "reporting"), settings)


@pytest.fixture(scope="module")
def client(component: ReportingComponent) -> Iterator[TestClient]:
    app = create_dashboard(component, today=lambda: TODAY, host="127.0.0.1")
    with TestClient(app, base_url="http://127.0.0.1") as c:
        yield c


def _get(client: TestClient, component: ReportingComponent, role: str, path: str):  # type: ignore[no-untyped-def]
    return client.get(path, headers=bearer(issue_token(component.store, role)))


def test_cmo_sees_revenue_pipeline_cac_ltv_and_mmm(
    client: TestClient, component: ReportingComponent
) -> None:
    r = _get(client, component, "cmo", f"/persona/cmo?{QUERY}")
    assert r.status_code == 200, r.text
    page = r.text
    for panel in ("revenue", "pipeline", "cac-ltv", "mmm"):
        assert f'id="panel-{panel}"' in page
    for name in ("mrr", "attributed_pipeline", "cac", "cac_fully_loaded", "ltv_cac"):
        assert f'data-kpi="{name}"' in page
    assert 'data-kpi="cac_fully_loaded"' in page and "$2,100" in page
    assert 'href="/persona/ops' in page and 'href="/persona/cx' in page  # navigation


def test_ops_sees_pacing_alerts_deliverability_with_thresholds(
    client: TestClient, component: ReportingComponent
) -> None:
    r = _get(client, component, "marketing_ops", f"/api/persona/ops?{QUERY}")
    assert r.status_code == 200, r.text
    panels = {p["key"]: p for p in r.json()["panels"]}
    assert set(panels) == {"pacing", "alerts", "deliverability", "campaigns"}
    tiles = {t["kpi"]: t for t in panels["deliverability"]["tiles"]}
    assert tiles["bounce_rate"]["value"] == 0.031 and tiles["bounce_rate"]["over_threshold"]
    assert not tiles["complaint_rate"]["over_threshold"]
    assert tiles["open_rate"]["value"] is None  # not computed: n/a, not 0
    [by_domain] = panels["deliverability"]["tables"]
    assert by_domain["rows"][0][:1] == ["news.example.com"]
    page = _get(client, component, "marketing_ops", f"/persona/ops?{QUERY}").text
    assert 'data-kpi="bounce_rate" data-threshold="0.02"' in page


def test_cx_gets_403_on_cmo_and_ops_and_only_its_families(
    client: TestClient, component: ReportingComponent
) -> None:
    for path in ("/persona/cmo", "/persona/ops", "/api/persona/cmo", "/api/persona/ops"):
        assert _get(client, component, "cx", f"{path}?{QUERY}").status_code == 403, path
    r = _get(client, component, "cx", f"/api/persona/cx?{QUERY}")
    assert r.status_code == 200, r.text
    families = scope("cx").kpi_families
    tiles = [t for p in r.json()["panels"] for t in p["tiles"]]
    assert tiles and all(kpi_family(t["kpi"]) in families for t in tiles)
    shown = {t["kpi"] for t in tiles}
    # usage is cx's once the product family is in its scope (issue 17's cx scope edit)
    usage = kpi_family("churn_risk_accounts") in families
    assert "nrr" in shown
    assert ({"active_accounts_monthly", "churn_risk_accounts"} <= shown) is usage
    page = _get(client, component, "cx", f"/persona/cx?{QUERY}").text
    assert 'href="/persona/cmo' not in page and 'href="/persona/cx' in page
    assert "data-kpi=\"spend\"" not in page and "bounce" not in page
    if kpi_visible("cx", "feature_adoption_rate", "feature"):
        assert "<script>alert(1)" not in page and "&lt;script&gt;alert(1)" in page
    else:  # adoption per feature is outside cx's dimensions
        assert 'data-table="feature_adoption"' not in page
    if usage:
        risk = page[page.index('data-table="churn_risk"'):]
        risk = risk[:risk.index("</table>")]
        assert "acct-drop" in risk and "acct-steady" not in risk and "acct-gone" not in risk
    else:
        assert "acct-drop" not in page


def test_the_churn_risk_list_on_the_cx_page(
    client: TestClient, component: ReportingComponent
) -> None:
    page = _get(client, component, "director", f"/persona/cx?{QUERY}").text
    assert "<script>alert(1)" not in page and "&lt;script&gt;alert(1)" in page  # a feature
    risk = page[page.index('data-table="churn_risk"'):]
    risk = risk[:risk.index("</table>")]
    # acct-drop: 8 + 27 × 2 = 62 uses in February's 29 days (2044 is a leap year), 3 in
    # March's 31: 1 − (3/31) / (62/29) = 95.47 %
    assert "acct-drop" in risk and "95.5%" in risk
    assert "acct-steady" not in risk and "acct-gone" not in risk


def test_leadership_sees_cx_kpis_not_in_the_catalog_yet_as_values_or_na(
    client: TestClient, component: ReportingComponent
) -> None:
    r = _get(client, component, "cmo", f"/api/persona/cx?{QUERY}")
    tiles = {t["kpi"]: t for p in r.json()["panels"] for t in p["tiles"]}
    assert tiles["nps"]["value"] == 31.0
    assert tiles["csat"]["value"] is None


def test_churn_risk_definition_is_exact() -> None:
    # (account, MRR, uses this month, uses last month); 31 and 28 days
    rows = [("a", 100.0, 14, 28), ("b", 100.0, 15, 28), ("c", 0.0, 0, 50), ("d", 50.0, 0, 0),
            ("e", 80.0, 0, 10)]
    found = churn_risks(rows, 31, 28, 0.5)
    # a: 14/31 vs 28/28 per day → −54.8 %: at risk; b: −51.6 %: at risk; c: not paying;
    # d: no baseline; e: no use this month: −100 %
    assert [(x.account_id, round(x.drop, 3)) for x in found] == [
        ("e", 1.0), ("a", 0.548), ("b", 0.516)]
    # exactly the threshold is not a risk: 14 of 28 over equal months
    assert churn_risks([("x", 1.0, 14, 28)], 28, 28, 0.5) == []


def test_cx_view_at_quarter_grain_says_churn_risk_is_monthly(
    client: TestClient, component: ReportingComponent
) -> None:
    r = _get(client, component, "cmo", "/api/persona/cx?grain=quarter&period=2044-Q1")
    assert r.status_code == 200, r.text
    panels = {p["key"]: p for p in r.json()["panels"]}
    assert panels["churn-risk"]["tables"] == []
    assert "choose the month grain" in panels["churn-risk"]["text"][0]
    usage = {t["kpi"] for t in panels["usage"]["tiles"]}
    assert not any(k.startswith("active_accounts_") for k in usage)  # none per quarter
    bad = _get(client, component, "cmo", "/persona/cx?grain=month&period=2044-13")
    assert bad.status_code == 400
