"""Grafana provisioning: dashboards are generated, their SQL runs on the migrated schema
and their PromQL names only metrics that Pulse processes expose."""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from deploy_support import (
    ROOT,
    metric_names,
    migration_schema,
    promql_metric_names,
    referenced_tables,
)

GRAFANA = ROOT / "deploy" / "grafana"
DASHBOARDS = sorted((GRAFANA / "dashboards").glob("*.json"))
REQUIRED = {"pulse-executive.json", "pulse-campaigns.json", "pulse-operations.json"}


def generator() -> Any:
    spec = importlib.util.spec_from_file_location(
        "generate_dashboards", GRAFANA / "generate_dashboards.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def all_panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])


def sql_queries() -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(id, sql, dashboard) for every ClickHouse panel target and query variable."""
    for path in DASHBOARDS:
        dash = load(path)
        for panel in all_panels(dash):
            for target in panel.get("targets", []):
                if target["datasource"]["type"] == "grafana-clickhouse-datasource":
                    yield f"{path.stem}:{panel['title']}:{target['refId']}", target["rawSql"], dash
        for var in dash["templating"]["list"]:
            if var["type"] == "query" and var["datasource"]["type"].endswith("clickhouse-datasource"):
                yield f"{path.stem}:${var['name']}", var["query"], dash


def promql_queries() -> Iterator[tuple[str, str]]:
    for path in DASHBOARDS:
        for panel in all_panels(load(path)):
            for target in panel.get("targets", []):
                if target["datasource"]["type"] == "prometheus":
                    yield f"{path.stem}:{panel['title']}:{target['refId']}", target["expr"]


SQL = list(sql_queries())
PROMQL = list(promql_queries())

# --- Grafana macro / variable expansion for running the SQL ------------------------
FROM, TO = "2026-01-01 00:00:00", "2026-12-31 23:59:59"
TODAY = "2026-07-15"


def variable_values(dashboard: dict[str, Any]) -> dict[str, list[str]]:
    values: dict[str, list[str]] = {}
    for var in dashboard["templating"]["list"]:
        if var["type"] == "custom":
            values[var["name"]] = [o["value"] for o in var["options"]]
        else:  # query variables: any plausible value, the tables are empty anyway
            values[var["name"]] = ["paid_search", "email"]
    return values


def expand(
    sql: str,
    dashboard: dict[str, Any],
    pick: int = 0,
    *,
    time_range: tuple[str, str] = (FROM, TO),
    chosen: dict[str, str] | None = None,
    today: str = TODAY,
) -> str:
    """What Grafana sends: macros and ``$var`` / ``${var}`` / ``${var:singlequote}``; and
    ClickHouse's ``today()`` pinned to ``today`` (no test depends on the real date)."""
    start, end = time_range
    sql = sql.replace("today()", f"toDate('{today}')")
    macros = {
        r"\$__dateFilter\((\w+)\)": rf"\1 >= toDate('{start[:10]}') AND \1 <= toDate('{end[:10]}')",
        r"\$__timeFilter\((\w+)\)": (
            rf"\1 >= toDateTime('{start}', 'UTC') AND \1 <= toDateTime('{end}', 'UTC')"
        ),
        r"\$__fromTime\b": f"toDateTime('{start}', 'UTC')",
        r"\$__toTime\b": f"toDateTime('{end}', 'UTC')",
    }
    for pattern, replacement in macros.items():
        sql = re.sub(pattern, replacement, sql)
    values = variable_values(dashboard)
    for name, value in (chosen or {}).items():
        values[name] = [value]

    def substitute(match: re.Match[str]) -> str:
        name, fmt = match.group(1) or match.group(3), match.group(2)
        options = values[name]
        if fmt == "singlequote":
            return ", ".join(f"'{v}'" for v in options)
        assert fmt is None, f"unsupported variable format {fmt}"
        return options[pick % len(options)]

    sql = re.sub(r"\$\{(\w+)(?::(\w+))?\}|\$(\w+)", substitute, sql)
    assert "$" not in sql, f"unexpanded macro or variable in: {sql}"
    return sql


# --- tests --------------------------------------------------------------------------
def test_required_dashboards_exist_and_match_the_generator() -> None:
    assert REQUIRED <= {p.name for p in DASHBOARDS}
    rendered = generator().render()
    assert set(rendered) == {p.name for p in DASHBOARDS}
    for name, text in rendered.items():
        assert (GRAFANA / "dashboards" / name).read_text() == text, (
            f"{name} is stale: run .venv/bin/python deploy/grafana/generate_dashboards.py"
        )


def test_dashboards_have_unique_uids_and_panel_ids_on_a_valid_grid() -> None:
    uids = [load(p)["uid"] for p in DASHBOARDS]
    assert len(uids) == len(set(uids))
    for path in DASHBOARDS:
        panels = list(all_panels(load(path)))
        ids = [p["id"] for p in panels]
        assert len(ids) == len(set(ids)), path
        for p in panels:
            pos = p["gridPos"]
            assert 0 <= pos["x"] and pos["x"] + pos["w"] <= 24, (path, p["title"])


def test_panels_use_only_provisioned_data_sources() -> None:
    provisioned = yaml.safe_load(
        (GRAFANA / "provisioning" / "datasources" / "datasources.yml").read_text()
    )["datasources"]
    by_uid = {d["uid"]: d["type"] for d in provisioned}
    assert set(by_uid.values()) == {"prometheus", "grafana-clickhouse-datasource"}
    for path in DASHBOARDS:
        for panel in all_panels(load(path)):
            for target in panel.get("targets", []):
                ds = target["datasource"]
                assert by_uid.get(ds["uid"]) == ds["type"], (path.name, panel["title"])


def test_executive_dashboard_has_kpi_tiles_mrr_bridge_and_roas_by_channel() -> None:
    dash = load(GRAFANA / "dashboards" / "pulse-executive.json")
    titles = {p["title"]: p for p in all_panels(dash)}
    tiles = [p for p in titles.values() if p["type"] == "stat"]
    assert len(tiles) >= 12
    assert all("FROM kpi_values FINAL" in t["targets"][0]["rawSql"] for t in tiles)
    assert "MRR bridge over the range" in titles
    assert "ROAS by channel (latest period in range)" in titles
    kpis_used = {
        kpi for _, sql, d in SQL if d["uid"] == "pulse-executive"
        for kpi in re.findall(r"kpi = '(\w+)'", sql)
    }
    assert {"mrr", "arr", "cac", "ltv_cac", "mrr_new", "mrr_churn", "spend"} <= kpis_used
    # Opens on months: budget pacing exists only per month (empty under week).
    grain = next(v for v in dash["templating"]["list"] if v["name"] == "grain")
    assert grain["current"] == {"text": "month", "value": "month"}
    assert [o["value"] for o in grain["options"] if o["selected"]] == ["month"]


def test_operations_dashboard_covers_lag_throughput_errors_dlq_latency_alerts() -> None:
    exprs = " ".join(e for i, e in PROMQL if i.startswith("pulse-operations"))
    for metric in ("pulse_consumer_lag", "pulse_messages_consumed_total",
                   "pulse_handler_errors_total", "pulse_messages_dead_lettered_total",
                   "pulse_processing_latency_seconds_bucket", "pulse_alerts_firing"):
        assert metric in exprs, metric
    assert "ALERTS{" in exprs


def test_sql_references_only_tables_from_the_migrations() -> None:
    tables = set(migration_schema().tables)
    assert SQL, "no ClickHouse queries found"
    for ident, sql, _ in SQL:
        assert referenced_tables(sql) <= tables, (ident, referenced_tables(sql) - tables)


def test_kpi_names_in_sql_are_catalog_kpis() -> None:
    """Literal KPI names must be ones the KPI service computes (pulse_kpi.catalog)."""
    from pulse_shared.kpi_catalog import BY_NAME

    catalog = set(BY_NAME)
    for ident, sql, _ in SQL:
        if "kpi_values" not in sql:
            continue
        names = set(re.findall(r"kpi = '(\w+)'", sql))
        for group in re.findall(r"kpi IN \(([^)]*)\)", sql):
            names |= set(re.findall(r"'(\w+)'", group))
        for prefix in re.findall(r"startsWith\(kpi, '(\w+)'\)", sql):
            assert any(k.startswith(prefix) for k in catalog), (ident, prefix)
        assert names <= catalog, (ident, names - catalog)


def test_model_variable_yields_catalog_kpi_names() -> None:
    """``if('${model}' = 'position_based', 'roas', concat('roas__', '${model}'))`` …: the
    KPI service writes the default model's attribution KPIs without suffix."""
    from pulse_shared.attribution_models import DEFAULT_MODEL
    from pulse_shared.kpi_catalog import BY_NAME, MODELS

    for path in DASHBOARDS:
        dash = load(path)
        model_vars = [v for v in dash["templating"]["list"] if v["name"] == "model"]
        if not model_vars:
            continue
        options = {o["value"] for o in model_vars[0]["options"]}
        assert options == set(MODELS), path.name
        assert model_vars[0]["current"]["value"] == DEFAULT_MODEL, path.name
        sqls = " ".join(sql for _, sql, d in SQL if d["uid"] == dash["uid"])
        assert f"if('${{model}}' = '{DEFAULT_MODEL}', " in sqls
        assert "'last_touch'" not in sqls, path.name  # no hard-coded default any more
        bases = {
            base for _, sql, d in SQL if d["uid"] == dash["uid"]
            for base in re.findall(r"concat\('(\w+)__', '\$\{model\}'\)", sql)
        }
        assert bases, path.name
        for base in bases:
            assert base in BY_NAME
            for model in options - {DEFAULT_MODEL}:
                assert f"{base}__{model}" in BY_NAME, (path.name, base, model)


@pytest.mark.parametrize("ident,sql,dashboard", SQL, ids=[i for i, _, _ in SQL])
def test_sql_runs_against_the_migrated_schema(
    ident: str, sql: str, dashboard: dict[str, Any], embedded_store: Any
) -> None:
    """Executing the query proves every table, column and function exists."""
    variants = max(len(v) for v in variable_values(dashboard).values()) if dashboard[
        "templating"]["list"] else 1
    for pick in range(min(variants, 3)):
        embedded_store.query(expand(sql, dashboard, pick))


@pytest.mark.parametrize("ident,expr", PROMQL, ids=[i for i, _ in PROMQL])
def test_promql_names_only_exposed_metrics(ident: str, expr: str) -> None:
    used = promql_metric_names(expr)
    missing = used - metric_names()
    assert not missing, f"{ident}: unknown metrics {sorted(missing)}"
    assert expr.count("(") == expr.count(")") and expr.count("{") == expr.count("}")


# --- panels on data: the numbers a panel shows are the kpi_values the KPI service wrote --
DATA_RANGE = ("2031-01-01 00:00:00", "2031-03-31 23:59:59")  # no other test writes 2031
KPI_COLUMNS = ["kpi", "grain", "period", "period_start", "dimension", "dimension_value",
               "value", "unit", "computed_at"]


def panel_sql(dashboard_file: str, title: str) -> tuple[str, dict[str, Any]]:
    dash = load(GRAFANA / "dashboards" / dashboard_file)
    for panel in all_panels(dash):
        if panel["title"] == title:
            return panel["targets"][0]["rawSql"], dash
    raise AssertionError(f"no panel {title!r} in {dashboard_file}")


def kpi_row(kpi: str, week: int, value: float, *, dimension: str = "all",
            dimension_value: str = "", computed: int = 0) -> dict[str, Any]:
    import datetime as dt

    start = dt.date.fromisocalendar(2031, week, 1)
    return {
        "kpi": kpi, "grain": "week", "period": f"2031-W{week:02d}", "period_start": start,
        "dimension": dimension, "dimension_value": dimension_value, "value": value,
        "unit": "usd",
        "computed_at": dt.datetime(2031, 6, 1, tzinfo=dt.UTC) + dt.timedelta(seconds=computed),
    }


@pytest.fixture(scope="module")
def kpi_data(embedded_store: Any) -> Any:
    rows = [
        # two weeks of MRR movements; contraction/churn stored as positive amounts
        *(kpi_row(k, w, v) for w in (2, 3) for k, v in (
            ("mrr_new", 100.0), ("mrr_expansion", 50.0), ("mrr_reactivation", 10.0),
            ("mrr_contraction", 20.0), ("mrr_churn", 30.0))),
        kpi_row("mrr", 2, 1000.0), kpi_row("mrr", 3, 1110.0),
        # a recomputation of week 3's MRR: FINAL must keep the newest computed_at
        kpi_row("mrr", 3, 1125.0, computed=60),
        # ROAS per channel, default model and linear
        kpi_row("roas", 2, 1.5, dimension="channel", dimension_value="paid_search"),
        kpi_row("roas", 3, 2.5, dimension="channel", dimension_value="paid_search"),
        kpi_row("roas", 3, 0.8, dimension="channel", dimension_value="email"),
        kpi_row("roas__linear", 3, 1.9, dimension="channel", dimension_value="paid_search"),
    ]
    embedded_store.insert("kpi_values", rows, KPI_COLUMNS)
    return embedded_store


DATA_TODAY = "2031-06-30"  # every week of DATA_RANGE has ended


def run_panel(store: Any, file: str, title: str, today: str = DATA_TODAY,
              **chosen: str) -> list[dict[str, Any]]:
    sql, dash = panel_sql(file, title)
    return list(store.query(expand(sql, dash, time_range=DATA_RANGE, today=today,
                                   chosen={"grain": "week", **chosen})))


def test_mrr_bridge_sums_movements_with_losses_below_zero(kpi_data: Any) -> None:
    rows = run_panel(kpi_data, "pulse-executive.json", "MRR bridge over the range")
    assert [(r["step"], r["amount"]) for r in rows] == [
        ("1 new", 200.0), ("2 expansion", 100.0), ("3 reactivation", 20.0),
        ("4 contraction", -40.0), ("5 churn", -60.0),
    ]
    per_period = run_panel(kpi_data, "pulse-executive.json", "MRR movements per period")
    assert len(per_period) == 2
    assert per_period[0]["churn"] == -30.0 and per_period[0]["new"] == 100.0


def test_mrr_tile_shows_the_latest_computation_of_each_period(kpi_data: Any) -> None:
    rows = run_panel(kpi_data, "pulse-executive.json", "MRR")
    assert [r["value"] for r in rows] == [1000.0, 1125.0]


def test_roas_by_channel_takes_the_latest_period_and_follows_the_model(kpi_data: Any) -> None:
    from pulse_shared.attribution_models import DEFAULT_MODEL

    title = "ROAS by channel (latest period in range)"
    rows = run_panel(kpi_data, "pulse-executive.json", title, model=DEFAULT_MODEL)
    assert [(r["channel"], r["roas"]) for r in rows] == [("paid_search", 2.5), ("email", 0.8)]
    linear = run_panel(kpi_data, "pulse-executive.json", title, model="linear")
    assert [(r["channel"], r["roas"]) for r in linear] == [("paid_search", 1.9)]


def test_tiles_leave_out_the_running_period_unless_asked() -> None:
    """The executive and campaign views open on complete periods; the running one is
    shown only with 'Running period = include' (then as a partial value)."""
    for name in ("pulse-executive.json", "pulse-campaigns.json"):
        partial = next(v for v in load(GRAFANA / "dashboards" / name)["templating"]["list"]
                       if v["name"] == "partial")
        assert partial["current"]["value"] == "exclude", name
    for ident, sql, _ in SQL:
        if "kpi_values" in sql and "grain = '${grain}'" in sql:
            running = "(running month)" in ident  # pacing: about the month in progress
            assert ("'${partial}' = 'include' OR" in sql) is not running, ident


def test_mrr_tile_skips_the_running_week_by_default(kpi_data: Any) -> None:
    running_w03 = "2031-01-15"  # a Wednesday of 2031-W03: W02 is complete, W03 is not
    assert dt.date.fromisoformat(running_w03).isocalendar()[1] == 3
    default = run_panel(kpi_data, "pulse-executive.json", "MRR", today=running_w03)
    assert [r["value"] for r in default] == [1000.0]
    included = run_panel(kpi_data, "pulse-executive.json", "MRR", today=running_w03,
                         partial="include")
    assert [r["value"] for r in included] == [1000.0, 1125.0]
    # Budget pacing is about the running month: not filtered.
    sql, _ = panel_sql("pulse-executive.json", "Budget pacing (running month)")
    assert "${partial}" not in sql


def day_row(kpi: str, day: dt.date, value: float) -> dict[str, Any]:
    return {"kpi": kpi, "grain": "day", "period": day.isoformat(), "period_start": day,
            "dimension": "all", "dimension_value": "", "value": value, "unit": "usd",
            "computed_at": dt.datetime(2031, 6, 1, tzinfo=dt.UTC)}


@pytest.fixture(scope="module")
def day_data(embedded_store: Any) -> Any:
    """Day values 2031-02-01 … 2031-03-14: March spends 10 × day-of-month, February 5 ×;
    attributed revenue (default model, un-suffixed) is 3 × spend; 2 leads a day."""
    from pulse_shared.attribution_models import DEFAULT_MODEL

    rows = []
    for i in range(42):
        day = dt.date(2031, 2, 1) + dt.timedelta(days=i)
        spend = (10.0 if day.month == 3 else 5.0) * day.day
        rows += [day_row("spend", day, spend), day_row("leads", day, 2.0),
                 day_row("attributed_revenue", day, 3 * spend),
                 day_row("attributed_revenue__linear", day, 2 * spend)]
    embedded_store.insert("kpi_values", rows, KPI_COLUMNS)
    assert DEFAULT_MODEL != "linear"
    return embedded_store


def mtd(store: Any, title: str, today: str, **chosen: str) -> dict[str, Any]:
    sql, dash = panel_sql("pulse-executive.json", title)
    rows = store.query(expand(sql, dash, today=today, chosen=chosen))
    assert len(rows) == 1
    return dict(rows[0])


def test_month_to_date_tiles_compare_the_same_days_of_last_month(day_data: Any) -> None:
    from pulse_shared.attribution_models import DEFAULT_MODEL

    march = sum(10.0 * d for d in range(1, 15))  # 1–14 March: complete days before the 15th
    february = sum(5.0 * d for d in range(1, 15))
    spend = mtd(day_data, "Spend · month to date", "2031-03-15")
    assert spend == {"month_to_date": march, "same_days_last_month": february,
                     "change": pytest.approx(march / february - 1)}
    leads = mtd(day_data, "Leads · month to date", "2031-03-15")
    assert (leads["month_to_date"], leads["same_days_last_month"]) == (28.0, 28.0)
    roas = mtd(day_data, "ROAS · month to date", "2031-03-15", model=DEFAULT_MODEL)
    assert roas["month_to_date"] == pytest.approx(3.0)
    linear = mtd(day_data, "ROAS · month to date", "2031-03-15", model="linear")
    assert linear["month_to_date"] == pytest.approx(2.0)
    cpl = mtd(day_data, "CPL · month to date", "2031-03-15")
    assert cpl["month_to_date"] == pytest.approx(march / 28.0)
    # 31 March: 30 days to date against all 28 days of February (clipped).
    late = mtd(day_data, "Spend · month to date", "2031-03-31")
    assert late["same_days_last_month"] == sum(5.0 * d for d in range(1, 29))
    # 1 March: no complete day yet — empty, never 0 or a change.
    first = mtd(day_data, "Spend · month to date", "2031-03-01")
    assert first == {"month_to_date": None, "same_days_last_month": None, "change": None}
