"""Grafana persona dashboards (CMO, marketing ops, CX): in the right folders, cut to each
persona's scope, the new KPI families generated from the catalog, deliverability drawn
against the industry thresholds, and the churn-risk list exact on a small ledger."""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
from decimal import Decimal
from typing import Any

from deploy_support import ROOT

from pulse_shared import access
from pulse_shared.kpi_catalog import BY_NAME
from pulse_shared.store import Store

GRAFANA = ROOT / "deploy" / "grafana"
DASHBOARDS = GRAFANA / "dashboards"


def generator() -> Any:
    spec = importlib.util.spec_from_file_location("generate_dashboards",
                                                  GRAFANA / "generate_dashboards.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load(path: str) -> dict[str, Any]:
    return json.loads((DASHBOARDS / path).read_text())


def titles(dashboard: dict[str, Any]) -> list[str]:
    return [p["title"] for p in dashboard["panels"]]


def sqls(dashboard: dict[str, Any]) -> str:
    return " ".join(t.get("rawSql", "") for p in dashboard["panels"] for t in p.get("targets", []))


def test_each_persona_folder_opens_on_its_own_view() -> None:
    for role, first in ((access.Role.CMO, "pulse-persona-cmo.json"),
                        (access.Role.DIRECTOR, "pulse-persona-cmo.json"),
                        (access.Role.MARKETING_OPS, "pulse-persona-ops.json"),
                        (access.Role.CX, "pulse-persona-cx.json")):
        assert generator().PERSONA_DASHBOARDS[role][0] == first
        assert (DASHBOARDS / role.value / first).exists()
    assert not (DASHBOARDS / "cx" / "pulse-persona-ops.json").exists()
    assert not (DASHBOARDS / "cx" / "pulse-persona-cmo.json").exists()


def test_cmo_view_has_cac_with_and_without_tools_martech_and_mmm() -> None:
    cmo = load("cmo/pulse-persona-cmo.json")
    shown = titles(cmo)
    for title in ("MRR", "Attributed pipeline", "CAC", "LTV:CAC", "CAC (with tools)",
                  "ROI (with tools)", "Martech cost by tool category (months in range)"):
        assert title in shown, title
    assert any("Incremental ROI" in t for t in shown)
    assert "FROM martech_costs FINAL" in sqls(cmo)


def test_new_families_are_generated_from_the_catalog() -> None:
    full = {name: json.loads((DASHBOARDS / name).read_text())
            for name in ("pulse-persona-ops.json", "pulse-persona-cx.json")}
    text = {name: sqls(d) for name, d in full.items()}
    for family, title in generator().NEW_FAMILIES:
        kpis = [k for k, d in BY_NAME.items() if d.family.value == family
                and "all" in d.dimensions]
        where = "pulse-persona-ops.json" if family == "deliverability" else "pulse-persona-cx.json"
        if not kpis:  # the family is not in the catalog yet: nothing to query
            assert title not in titles(full[where])
            continue
        assert title in titles(full[where]), family
        for kpi in kpis:
            assert f"'{kpi}'" in text[where], (family, kpi)


def test_deliverability_tiles_carry_the_industry_thresholds() -> None:
    ops = load("marketing_ops/pulse-persona-ops.json")
    by_title = {p["title"]: p for p in ops["panels"]}
    for title, threshold in (("Bounce rate", 0.02), ("Spam complaint rate", 0.001)):
        if title not in by_title:  # named by the catalog; absent before deliverability exists
            assert "bounce_rate" not in BY_NAME
            continue
        steps = by_title[title]["fieldConfig"]["defaults"]["thresholds"]["steps"]
        assert steps[-1] == {"color": "red", "value": threshold}


def test_cx_view_is_cut_to_cx_scope() -> None:
    cx = load("cx/pulse-persona-cx.json")
    scope = access.scope(access.Role.CX)
    text = sqls(cx)
    assert "'spend'" not in text and "martech_costs" not in text and "bounce_rate" not in text
    assert {"NRR", "Logo churn"} <= set(titles(cx))
    assert all(ds["uid"] == "pulse-clickhouse-cx" for p in cx["panels"]
               for ds in [p.get("datasource", {})] if ds.get("type", "").endswith("clickhouse-datasource"))
    gen = generator()
    for p in cx["panels"]:
        for t in p.get("targets", []):
            assert gen.allowed(scope, t["rawSql"]), p["title"]


def test_churn_risk_list_sql_is_exact(embedded_store: Store) -> None:
    """Paying at the month's end, usage per day down by more than half: listed; steady,
    churned and new accounts are not (2045-02 has 28 days, 2045-03 31)."""
    def usage(i: int, account: str, day: dt.date, count: int) -> dict[str, Any]:
        return {"event_id": f"s5-gf-{i}", "day": day, "account_id": account,
                "feature": "editor", "count": count}

    embedded_store.insert("product_usage", [
        usage(1, "gf-drop", dt.date(2045, 2, 3), 56), usage(2, "gf-drop", dt.date(2045, 3, 3), 30),
        usage(3, "gf-steady", dt.date(2045, 2, 3), 28),
        usage(4, "gf-steady", dt.date(2045, 3, 3), 31),
        usage(5, "gf-gone", dt.date(2045, 2, 3), 90),
        usage(6, "gf-new", dt.date(2045, 3, 3), 5),
        # exactly half the use per day (1/day after 2/day): not above the threshold
        usage(7, "gf-half", dt.date(2045, 2, 3), 56), usage(8, "gf-half", dt.date(2045, 3, 3), 31),
    ], ("event_id", "day", "account_id", "feature", "count"))
    at = dt.datetime(2045, 1, 5, tzinfo=dt.UTC)
    embedded_store.insert("kpi_mrr_movements", [
        {"event_id": f"s5-gf-m-{a}", "account_id": a, "occurred_at": at, "kind": "new",
         "mrr_before": Decimal(0), "mrr_after": Decimal(100), "paying_delta": 1,
         "computed_at": at} for a in ("gf-drop", "gf-steady", "gf-gone", "gf-new", "gf-half")
    ] + [{"event_id": "s5-gf-m-gone", "account_id": "gf-gone",
          "occurred_at": dt.datetime(2045, 3, 20, tzinfo=dt.UTC), "kind": "churn",
          "mrr_before": Decimal(100), "mrr_after": Decimal(0), "paying_delta": -1,
          "computed_at": at}],
        ("event_id", "account_id", "occurred_at", "kind", "mrr_before", "mrr_after",
         "paying_delta", "computed_at"))
    sql = generator().CHURN_RISK_SQL.replace(
        "$__toTime", "toDateTime('2045-04-10 00:00:00', 'UTC')").replace(
        "today()", "toDate('2045-06-01')")
    rows = embedded_store.query(sql, {})
    assert [r["account_id"] for r in rows] == ["gf-drop"]
    assert abs(rows[0]["usage_drop"] - (1 - (30 / 31) / (56 / 28))) < 1e-9  # 51.6 %
