"""Generate the Grafana dashboards and their provisioning in ``deploy/grafana/``.

The JSON and YAML files are what Grafana loads; this script is their source. Edit the
panels here and run::

    .venv/bin/python deploy/grafana/generate_dashboards.py

It writes, from the panels below and the access scopes (:mod:`pulse_shared.access`):

* ``dashboards/<role>/*.json``: one folder per persona (Pulse role), loaded by one
  dashboard provider each (``provisioning/dashboards/pulse.yml``, folder uid
  ``pulse-<role>``). Each persona's dashboards query ClickHouse through that persona's
  data source only and keep only the panels its scope allows (tables, KPI families,
  dimensions); ``deploy/grafana/init_teams.py`` gives each folder to its team.
* ``provisioning/datasources/datasources.yml``: Prometheus and one ClickHouse data source
  per role (uid ``pulse-clickhouse-<role>``, ClickHouse user ``grafana_<role>`` holding
  the role ``pulse_<role>``: ClickHouse itself enforces the scope, docs/clickhouse-roles.md).
* ``dashboards/*.json``: every panel at full scope (the leadership data source), the
  source the persona folders are cut from and what ``tests/deploy/test_deploy_dashboards.py``
  checks: stale JSON, SQL that does not run against the migrated schema, PromQL naming a
  metric no Pulse process exposes. Grafana does not load these (no provider points here).

KPI numbers come only from ``kpi_values`` (read with FINAL), never recomputed here.
"""

# ruff: noqa: S608 - builds constant dashboard SQL at authoring time; Grafana fills macros.
from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

from pulse_shared.access import SCOPES, Role, Scope, kpi_visible
from pulse_shared.attribution_models import DEFAULT_MODEL, MODEL_NAMES
from pulse_shared.attribution_models import label as model_label
from pulse_shared.kpi_catalog import BY_NAME as KPI_CATALOG
from pulse_shared.kpi_catalog import TRIAL_CONVERSION_WINDOW_DAYS, Unit

GRAFANA_DIR = Path(__file__).resolve().parent
OUT_DIR = GRAFANA_DIR / "dashboards"
PROVISIONING_DIR = GRAFANA_DIR / "provisioning"

CLICKHOUSE_TYPE = "grafana-clickhouse-datasource"


def clickhouse_uid(role: Role) -> str:
    return f"pulse-clickhouse-{role.value}"


#: The full-scope dashboards (dashboards/*.json) read as leadership (every KPI); each
#: persona's copy swaps in its own data source.
CLICKHOUSE = {"type": CLICKHOUSE_TYPE, "uid": clickhouse_uid(Role.CMO)}
PROMETHEUS = {"type": "prometheus", "uid": "pulse-prometheus"}

# ClickHouse plugin query formats.
FMT_TIMESERIES = 0
FMT_TABLE = 1

MILESTONES = ("won", "new_subscription", "opportunity", "lead")
GRAINS = ("week", "day", "month", "quarter")
#: Lag per service × topic. max by partition first: after a rebalance a replica can keep
#: exporting a partition it no longer owns, and summing replicas would double count it.
LAG_BY_TOPIC = "sum by (service, topic) (max by (service, topic, partition) (pulse_consumer_lag))"
MRR_MOVEMENTS = (
    "mrr_new", "mrr_expansion", "mrr_reactivation", "mrr_contraction", "mrr_churn",
)


# --------------------------------------------------------------------------- helpers
class Layout:
    """Places panels left to right on Grafana's 24-column grid."""

    def __init__(self) -> None:
        self.x = 0
        self.y = 0
        self.row_h = 0
        self.next_id = 1

    def place(self, w: int, h: int) -> dict[str, int]:
        if self.x + w > 24:
            self.x, self.y, self.row_h = 0, self.y + self.row_h, 0
        pos = {"x": self.x, "y": self.y, "w": w, "h": h}
        self.x += w
        self.row_h = max(self.row_h, h)
        return pos

    def new_id(self) -> int:
        self.next_id += 1
        return self.next_id - 1

    def row(self, title: str) -> dict[str, Any]:
        if self.x:
            self.x, self.y, self.row_h = 0, self.y + self.row_h, 0
        panel = {
            "id": self.new_id(), "type": "row", "title": title, "collapsed": False,
            "gridPos": {"x": 0, "y": self.y, "w": 24, "h": 1}, "panels": [],
        }
        self.y += 1
        return panel


#: A period counts once it has ended (pulse_shared.periods.period_complete): its end, the
#: first day after it, is on or before today (UTC, the dashboard's timezone). With
#: "Running period = exclude" (the default) panels of the chosen grain leave the running
#: period out, so a week or month to date never sits beside whole ones as if comparable.
PERIOD_END = (
    "multiIf('${grain}' = 'day', addDays(period_start, 1), "
    "'${grain}' = 'week', addWeeks(period_start, 1), "
    "'${grain}' = 'month', addMonths(period_start, 1), addQuarters(period_start, 1))"
)
COMPLETE_ONLY = f"('${{partial}}' = 'include' OR {PERIOD_END} <= today())"
GRAIN_FILTER = "grain = '${grain}'"
DATE_FILTER = "$__dateFilter(period_start)"


def complete_only(sql: str) -> str:
    """Adds the running-period filter to every grain-variable kpi_values range filter."""
    if "kpi_values" not in sql or GRAIN_FILTER not in sql:
        return sql
    return sql.replace(DATE_FILTER, f"{DATE_FILTER} AND {COMPLETE_ONLY}")


def sql_target(sql: str, fmt: int = FMT_TABLE, ref: str = "A", *,
               complete: bool = True) -> dict[str, Any]:
    """``complete``: leave the running period of ``${grain}`` out unless the dashboard's
    ``partial`` variable says include (budget panels are about the running month)."""
    if complete:
        sql = complete_only(sql)
    return {
        "refId": ref,
        "datasource": CLICKHOUSE,
        "editorType": "sql",
        "format": fmt,
        "queryType": "timeseries" if fmt == FMT_TIMESERIES else "table",
        "rawSql": " ".join(sql.split()),
    }


def prom_target(expr: str, legend: str = "", ref: str = "A") -> dict[str, Any]:
    return {
        "refId": ref,
        "datasource": PROMETHEUS,
        "expr": " ".join(expr.split()),
        "legendFormat": legend or "__auto",
        "range": True,
    }


def panel(
    layout: Layout,
    kind: str,
    title: str,
    targets: list[dict[str, Any]],
    *,
    w: int,
    h: int,
    unit: str = "short",
    description: str = "",
    decimals: int | None = None,
    options: dict[str, Any] | None = None,
    custom: dict[str, Any] | None = None,
    thresholds: list[tuple[float | None, str]] | None = None,
) -> dict[str, Any]:
    defaults: dict[str, Any] = {"unit": unit}
    if decimals is not None:
        defaults["decimals"] = decimals
    if custom:
        defaults["custom"] = custom
    if thresholds:
        defaults["thresholds"] = {
            "mode": "absolute",
            "steps": [{"color": color, "value": value} for value, color in thresholds],
        }
    return {
        "id": layout.new_id(),
        "type": kind,
        "title": title,
        "description": description,
        "datasource": targets[0]["datasource"],
        "gridPos": layout.place(w, h),
        "targets": targets,
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "options": options or {},
    }


STAT_OPTIONS = {
    "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
    "colorMode": "value",
    "graphMode": "area",
    "textMode": "value_and_name",
    "justifyMode": "auto",
}
TS_LEGEND = {"legend": {"displayMode": "table", "placement": "right", "calcs": ["lastNotNull"]}}


def kpi_series_sql(kpi_expr: str, alias: str = "value") -> str:
    """One KPI (dimension ``all``) per period of the chosen grain, over the time range."""
    return f"""
        SELECT period_start AS time, value AS {alias}
        FROM kpi_values FINAL
        WHERE kpi = {kpi_expr} AND grain = '${{grain}}' AND dimension = 'all'
          AND $__dateFilter(period_start)
        ORDER BY time
    """


def model_kpi(base: str) -> str:
    """SQL for the KPI name of an attribution-based KPI under the chosen model: the KPI
    service writes the default model's values without suffix."""
    return f"if('${{model}}' = '{DEFAULT_MODEL}', '{base}', concat('{base}__', '${{model}}'))"


#: Grafana units per catalog unit (ratios that are rates use percentunit, set per tile).
GRAFANA_UNITS = {Unit.USD: "currencyUSD", Unit.COUNT: "short", Unit.RATIO: "none",
                 Unit.MONTHS: "months", Unit.DAYS: "d", Unit.HOURS: "h", Unit.POINTS: "none"}
COMPLETE_NOTE = ("Last complete period of the chosen grain; the running one is left out "
                 "unless 'Running period' is set to include (then it is a partial value).")
RUNNING_NOTE = "The running month (pacing is about the period in progress)."


def kpi_unit(kpi: str) -> str:
    return GRAFANA_UNITS[KPI_CATALOG[kpi].unit]


def kpi_description(kpi: str, description: str = "") -> str:
    """The catalog's definition (one definition per number), else ``description``."""
    return KPI_CATALOG[kpi].definition if kpi in KPI_CATALOG else description


def kpi_tile(layout: Layout, title: str, kpi: str, unit: str, description: str,
             *, model_based: bool = False, decimals: int | None = None,
             thresholds: list[tuple[float | None, str]] | None = None,
             running: bool = False) -> dict[str, Any]:
    expr = model_kpi(kpi) if model_based else f"'{kpi}'"
    note = RUNNING_NOTE if running else COMPLETE_NOTE
    return panel(
        layout, "stat", title,
        [sql_target(kpi_series_sql(expr), FMT_TIMESERIES, complete=not running)],
        w=4, h=4, unit=unit, description=f"{kpi_description(kpi, description)} {note}",
        decimals=decimals, options=STAT_OPTIONS, thresholds=thresholds or [(None, "blue")],
    )


def _window(start: str, end: str) -> str:
    return f"period_start >= {start} AND period_start < {end}"


#: Month to date = complete days of this month (before today, UTC); the base is the same
#: number of days from the start of the previous month, clipped to its length.
MTD_THIS = _window("toStartOfMonth(today())", "today()")
MTD_BASE = _window(
    "addMonths(toStartOfMonth(today()), -1)",
    "addDays(addMonths(toStartOfMonth(today()), -1), least("
    "dateDiff('day', toStartOfMonth(today()), today()), "
    "dateDiff('day', addMonths(toStartOfMonth(today()), -1), toStartOfMonth(today()))))",
)


def _mtd_sum(kpi_expr: str, window: str) -> str:
    """Sum over the window, NULL when no day has a value (missing is not zero)."""
    cond = f"kpi = {kpi_expr} AND {window}"
    return f"if(countIf({cond}) = 0, NULL, sumIf(value, {cond}))"


def month_to_date_sql(numerator: str, denominator: str | None = None) -> str:
    """Month to date vs the same days of the previous month, and the change (fraction), of
    a flow KPI (sum of day values) or a ratio recomputed from two sums."""
    def part(window: str) -> str:
        if denominator is None:
            return _mtd_sum(numerator, window)
        return (f"{_mtd_sum(numerator, window)} / "
                f"nullIf({_mtd_sum(denominator, window)}, 0)")

    kpis = f"kpi = {numerator}" if denominator is None else (
        f"(kpi = {numerator} OR kpi = {denominator})")
    return f"""
        SELECT {part(MTD_THIS)} AS month_to_date,
               {part(MTD_BASE)} AS same_days_last_month,
               if(same_days_last_month = 0, NULL,
                  month_to_date / same_days_last_month - 1) AS change
        FROM kpi_values FINAL
        WHERE {kpis} AND grain = 'day' AND dimension = 'all'
          AND period_start >= addMonths(toStartOfMonth(today()), -1)
          AND period_start < today()
    """


def mtd_tile(layout: Layout, title: str, unit: str, description: str, numerator: str,
             denominator: str | None = None) -> dict[str, Any]:
    tile = panel(
        layout, "stat", title, [sql_target(month_to_date_sql(numerator, denominator))],
        w=4, h=5, unit=unit, decimals=2,
        description=f"{description} Complete days of the running month (UTC) against the "
                    "same number of days from the 1st of the previous month; change as a "
                    "fraction. Empty (not 0) without day values.",
        options={**STAT_OPTIONS, "graphMode": "none",
                 "reduceOptions": {"calcs": ["lastNotNull"], "fields": "/.*/",
                                   "values": False}},
        thresholds=[(None, "blue")],
    )
    tile["fieldConfig"]["overrides"] = [{
        "matcher": {"id": "byName", "options": "change"},
        "properties": [{"id": "unit", "value": "percentunit"}, {"id": "decimals", "value": 1}],
    }]
    return tile


def custom_variable(name: str, label: str, options: list[tuple[str, str]],
                    current: int = 0) -> dict[str, Any]:
    return {
        "name": name,
        "label": label,
        "type": "custom",
        "query": ",".join(f"{text} : {value}" if text != value else value
                          for text, value in options),
        "current": {"text": options[current][0], "value": options[current][1]},
        "options": [
            {"text": text, "value": value, "selected": i == current}
            for i, (text, value) in enumerate(options)
        ],
        "hide": 0,
        "multi": False,
        "includeAll": False,
    }


def sql_variable(name: str, label: str, sql: str) -> dict[str, Any]:
    return {
        "name": name,
        "label": label,
        "type": "query",
        "datasource": CLICKHOUSE,
        "query": " ".join(sql.split()),
        "definition": " ".join(sql.split()),
        "refresh": 2,
        "multi": True,
        "includeAll": True,
        "current": {"text": ["All"], "value": ["$__all"]},
        "hide": 0,
        "sort": 1,
    }


def dashboard(uid: str, title: str, description: str, panels: list[dict[str, Any]],
              variables: list[dict[str, Any]], *, time_from: str, tags: list[str],
              links: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {
        "uid": uid,
        "title": title,
        "description": description,
        "tags": ["pulse", *tags],
        "timezone": "utc",
        "editable": False,
        "graphTooltip": 1,
        "refresh": "1m",
        "schemaVersion": 39,
        "version": 1,
        "time": {"from": time_from, "to": "now"},
        "templating": {"list": variables},
        "annotations": {"list": []},
        "links": links or [],
        "panels": panels,
    }


GRAIN_VAR = custom_variable("grain", "Grain", [(g, g) for g in GRAINS])
#: The executive view opens on months: budget pacing has values only per month, and a CMO
#: reads whole months (issue 16).
EXECUTIVE_GRAIN_VAR = custom_variable("grain", "Grain", [(g, g) for g in GRAINS],
                                      current=GRAINS.index("month"))
#: Opens on the executive default model (position-based), last-touch beside it in the list.
MODEL_VAR = custom_variable(
    "model", "Attribution model",
    [(model_label(m), m) for m in MODEL_NAMES],
    current=MODEL_NAMES.index(DEFAULT_MODEL),
)
PARTIAL_VAR = custom_variable(
    "partial", "Running period", [("exclude (complete periods only)", "exclude"),
                                  ("include (partial, to date)", "include")],
)
DASH_LINKS = [
    {"type": "dashboards", "tags": ["pulse"], "asDropdown": True, "title": "Pulse"},
]


# --------------------------------------------------------------------------- executive
def month_to_date_row(lay: Layout) -> list[dict[str, Any]]:
    """Month to date against the same days of the previous month (day-grain kpi_values)."""
    panels = [lay.row("Month to date vs the same days of last month (partial month)")]
    revenue = model_kpi("attributed_revenue")
    flows: list[tuple[str, str, str | None]] = [
        ("Spend", "'spend'", None),
        ("Leads", "'leads'", None),
        ("Attributed revenue", revenue, None),
    ]
    if "new_customers" in KPI_CATALOG:  # added by the KPI service with issue 16
        flows.append(("New customers", "'new_customers'", None))
    ratios = [("ROAS", revenue, "'spend'", "none"), ("CPL", "'spend'", "'leads'", "currencyUSD")]
    for title, kpi_expr, _ in flows:
        base = kpi_expr.strip("'") if kpi_expr.startswith("'") else "attributed_revenue"
        panels.append(mtd_tile(lay, f"{title} · month to date", kpi_unit(base),
                               kpi_description(base), kpi_expr))
    for title, numerator, denominator, unit in ratios:
        base = title.lower()
        panels.append(mtd_tile(lay, f"{title} · month to date", unit,
                               kpi_description(base), numerator, denominator))
    return panels


def executive() -> dict[str, Any]:
    lay = Layout()
    panels: list[dict[str, Any]] = month_to_date_row(lay)
    panels.append(lay.row("Revenue"))
    for title, kpi, unit, desc in (
        ("MRR", "mrr", "currencyUSD", "Ending MRR: sum of every account's MRR."),
        ("ARR", "arr", "currencyUSD", "12 × MRR."),
        ("Net new MRR", "mrr_net_new", "currencyUSD",
         "new + expansion + reactivation − contraction − churn."),
        ("NRR", "nrr", "percentunit", "Net revenue retention = 1 − net MRR churn rate."),
        ("Gross MRR churn", "gross_mrr_churn_rate", "percentunit",
         "(churn + contraction) / MRR at period start."),
        ("Paying accounts", "paying_accounts", "short", "Accounts with MRR > 0."),
    ):
        panels.append(kpi_tile(lay, title, kpi, unit, desc))
    panels.append(lay.row("Marketing efficiency"))
    for title, kpi, unit, desc, model_based in (
        ("Spend", "spend", "currencyUSD", "Ad spend in the period.", False),
        ("Attributed revenue", "attributed_revenue", "currencyUSD",
         "Revenue credited to marketing under the selected model.", True),
        ("ROAS", "roas", "none", "Attributed revenue / spend (selected model).", True),
        ("Marketing ROI", "marketing_roi", "percentunit",
         "(attributed revenue − spend) / spend (selected model).", True),
        ("CAC", "cac", "currencyUSD", "Sales & marketing spend / new customers.", False),
        ("LTV:CAC", "ltv_cac", "none", "≥ 3 is healthy.", False),
    ):
        thresholds: list[tuple[float | None, str]] | None = (
            [(None, "red"), (3.0, "green")] if kpi == "ltv_cac" else None
        )
        panels.append(kpi_tile(lay, title, kpi, unit, desc, model_based=model_based,
                               decimals=2, thresholds=thresholds))
    for title, kpi, unit, desc in (
        ("CAC payback", "cac_payback_months", "months",
         "CAC / (ARPA × gross margin), in months."),
        ("LTV", "ltv", "currencyUSD", "ARPA × gross margin / customer churn rate."),
        ("ARPA", "arpa", "currencyUSD", "MRR / paying accounts."),
        ("CPL", "cpl", "currencyUSD", "Spend / leads."),
        ("Budget pacing (running month)", "pacing", "percentunit",
         "Spend to date / (monthly budget × elapsed fraction of the month)."),
        ("Projected spend (running month)", "projected_spend", "currencyUSD",
         "Projected month-end spend at the current pace."),
    ):
        panels.append(kpi_tile(lay, title, kpi, unit, desc, decimals=2,
                               running=kpi in ("pacing", "projected_spend")))

    panels.append(lay.row("MRR bridge"))
    movements = ", ".join(f"'{k}'" for k in MRR_MOVEMENTS)
    panels.append(panel(
        lay, "timeseries", "MRR movements per period", [sql_target(f"""
            SELECT period_start AS time,
                   sumIf(value, kpi = 'mrr_new') AS new,
                   sumIf(value, kpi = 'mrr_expansion') AS expansion,
                   sumIf(value, kpi = 'mrr_reactivation') AS reactivation,
                   -abs(sumIf(value, kpi = 'mrr_contraction')) AS contraction,
                   -abs(sumIf(value, kpi = 'mrr_churn')) AS churn
            FROM kpi_values FINAL
            WHERE kpi IN ({movements}) AND grain = '${{grain}}' AND dimension = 'all'
              AND $__dateFilter(period_start)
            GROUP BY time
            ORDER BY time
        """, FMT_TIMESERIES)],
        w=16, h=9, unit="currencyUSD",
        description="ChartMogul movements; contraction and churn drawn below zero.",
        custom={"drawStyle": "bars", "fillOpacity": 80, "stacking": {"mode": "normal"}},
        options=TS_LEGEND,
    ))
    panels.append(panel(
        lay, "barchart", "MRR bridge over the range", [sql_target(f"""
            SELECT multiIf(kpi = 'mrr_new', '1 new', kpi = 'mrr_expansion', '2 expansion',
                           kpi = 'mrr_reactivation', '3 reactivation',
                           kpi = 'mrr_contraction', '4 contraction', '5 churn') AS step,
                   if(kpi IN ('mrr_contraction', 'mrr_churn'), -abs(sum(value)), sum(value))
                       AS amount
            FROM kpi_values FINAL
            WHERE kpi IN ({movements}) AND grain = '${{grain}}' AND dimension = 'all'
              AND $__dateFilter(period_start)
            GROUP BY kpi
            ORDER BY step
        """)],
        w=8, h=9, unit="currencyUSD",
        description="Sum of each movement over the selected periods.",
        options={"xField": "step", "orientation": "horizontal", "showValue": "auto"},
    ))
    panels.append(panel(
        lay, "timeseries", "MRR and ARR", [
            sql_target(kpi_series_sql("'mrr'", "mrr"), FMT_TIMESERIES, "A"),
            sql_target(kpi_series_sql("'arr'", "arr"), FMT_TIMESERIES, "B"),
        ],
        w=12, h=8, unit="currencyUSD", options=TS_LEGEND,
    ))
    panels.append(panel(
        lay, "timeseries", "Churn and retention rates", [sql_target("""
            SELECT period_start AS time,
                   sumIf(value, kpi = 'gross_mrr_churn_rate') AS gross_mrr_churn,
                   sumIf(value, kpi = 'net_mrr_churn_rate') AS net_mrr_churn,
                   sumIf(value, kpi = 'logo_churn_rate') AS logo_churn
            FROM kpi_values FINAL
            WHERE kpi IN ('gross_mrr_churn_rate', 'net_mrr_churn_rate', 'logo_churn_rate')
              AND grain = '${grain}' AND dimension = 'all' AND $__dateFilter(period_start)
            GROUP BY time
            ORDER BY time
        """, FMT_TIMESERIES)],
        w=12, h=8, unit="percentunit", options=TS_LEGEND,
    ))

    panels.append(lay.row("Channels"))
    panels.append(panel(
        lay, "barchart", "ROAS by channel (latest period in range)", [sql_target(f"""
            SELECT dimension_value AS channel, argMax(value, period_start) AS roas
            FROM kpi_values FINAL
            WHERE kpi = {model_kpi('roas')} AND grain = '${{grain}}'
              AND dimension = 'channel' AND $__dateFilter(period_start)
            GROUP BY channel
            ORDER BY roas DESC
        """)],
        w=10, h=9, unit="none", decimals=2,
        description="Attributed revenue / spend per channel, selected attribution model.",
        options={"xField": "channel", "orientation": "horizontal", "showValue": "always"},
    ))
    panels.append(panel(
        lay, "timeseries", "ROAS by channel over time", [sql_target(f"""
            SELECT period_start AS time, dimension_value AS channel, value AS roas
            FROM kpi_values FINAL
            WHERE kpi = {model_kpi('roas')} AND grain = '${{grain}}'
              AND dimension = 'channel' AND $__dateFilter(period_start)
            ORDER BY time
        """, FMT_TIMESERIES)],
        w=14, h=9, unit="none", decimals=2, options=TS_LEGEND,
    ))
    panels.append(panel(
        lay, "table", "Channel scorecard (latest period in range)", [sql_target(f"""
            SELECT dimension_value AS channel,
                   argMaxIf(value, period_start, kpi = 'spend') AS spend,
                   argMaxIf(value, period_start, kpi = {model_kpi('attributed_revenue')})
                       AS attributed_revenue,
                   argMaxIf(value, period_start, kpi = {model_kpi('roas')}) AS roas,
                   argMaxIf(value, period_start, kpi = {model_kpi('marketing_roi')})
                       AS marketing_roi,
                   argMaxIf(value, period_start, kpi = 'leads') AS leads,
                   argMaxIf(value, period_start, kpi = 'cpl') AS cpl,
                   argMaxIf(value, period_start, kpi = 'wins') AS wins
            FROM kpi_values FINAL
            WHERE grain = '${{grain}}' AND dimension = 'channel'
              AND $__dateFilter(period_start)
            GROUP BY channel
            ORDER BY spend DESC
        """)],
        w=12, h=9, decimals=2,
    ))
    panels.append(panel(
        lay, "table", "Budget vs plan by channel (current month in range)", [sql_target("""
            SELECT dimension_value AS channel,
                   argMaxIf(value, period_start, kpi = 'budget') AS budget,
                   argMaxIf(value, period_start, kpi = 'spend_to_date') AS spend_to_date,
                   argMaxIf(value, period_start, kpi = 'pacing') AS pacing,
                   argMaxIf(value, period_start, kpi = 'projected_spend') AS projected_spend
            FROM kpi_values FINAL
            WHERE kpi IN ('budget', 'spend_to_date', 'pacing', 'projected_spend')
              AND grain = 'month' AND dimension = 'channel' AND $__dateFilter(period_start)
            GROUP BY channel
            ORDER BY budget DESC
        """)],
        w=12, h=9, decimals=2,
        description="Pacing 1.0 = on plan; projected spend assumes the current daily pace.",
    ))
    panels.append(mmm_roi_panel(lay))

    panels.append(lay.row("Funnel"))
    panels.append(panel(
        lay, "timeseries", "Funnel volumes", [sql_target("""
            SELECT period_start AS time,
                   sumIf(value, kpi = 'leads') AS leads,
                   sumIf(value, kpi = 'mqls') AS mqls,
                   sumIf(value, kpi = 'sqls') AS sqls,
                   sumIf(value, kpi = 'opportunities') AS opportunities,
                   sumIf(value, kpi = 'wins') AS wins
            FROM kpi_values FINAL
            WHERE kpi IN ('leads', 'mqls', 'sqls', 'opportunities', 'wins')
              AND grain = '${grain}' AND dimension = 'all' AND $__dateFilter(period_start)
            GROUP BY time
            ORDER BY time
        """, FMT_TIMESERIES)],
        w=12, h=8, options=TS_LEGEND,
    ))
    panels.append(panel(
        lay, "table", "Stage conversion and velocity (latest period in range)",
        [sql_target("""
            SELECT kpi, argMax(value, period_start) AS latest, any(unit) AS kpi_unit
            FROM kpi_values FINAL
            WHERE (startsWith(kpi, 'conv_') OR startsWith(kpi, 'velocity_'))
              AND grain = '${grain}' AND dimension = 'all' AND $__dateFilter(period_start)
            GROUP BY kpi
            ORDER BY kpi
        """)],
        w=12, h=8, decimals=3,
        description="conv_<from>_to_<to> are fractions; velocity_* are median days.",
    ))
    panels += trial_panels(lay)

    panels.append(lay.row("Retention"))
    panels.append(cohort_heatmap_panel(lay))
    return dashboard(
        "pulse-executive", "Pulse · Executive",
        "CMO view: revenue, MRR bridge, marketing efficiency, ROAS by channel, budget, funnel."
        " All numbers from kpi_values.",
        panels, [EXECUTIVE_GRAIN_VAR, MODEL_VAR, PARTIAL_VAR], time_from="now-180d",
        tags=["executive"],
        links=DASH_LINKS,
    )


#: A trial period is final once the conversion window of its last day's trials has passed
#: (pulse_shared.kpi_catalog.complete_on): until then its rate is provisional (low), so the
#: trial panels leave those periods out unless "Running period = include".
TRIALS_MATURE = (
    f"('${{partial}}' = 'include' OR "
    f"addDays({PERIOD_END}, {TRIAL_CONVERSION_WINDOW_DAYS}) <= today())"
)


def trial_panels(lay: Layout) -> list[dict[str, Any]]:
    """Trial-to-paid rate (total and by first-touch channel) and trials started by channel,
    per period of the chosen grain (trials counted in the period they started)."""
    rate = panel(
        lay, "timeseries", "Trial-to-paid rate (total and by first-touch channel)",
        [sql_target(f"""
            SELECT period_start AS time,
                   if(dimension = 'all', 'all', dimension_value) AS series,
                   value
            FROM kpi_values FINAL
            WHERE kpi = 'trial_to_paid_rate'
              AND (dimension = 'all' OR dimension = 'channel')
              AND grain = '${{grain}}' AND $__dateFilter(period_start)
              AND {TRIALS_MATURE}
            ORDER BY time, series
        """, FMT_TIMESERIES)],
        w=12, h=8, unit="percentunit", decimals=1, options=TS_LEGEND,
        description=kpi_description(
            "trial_to_paid_rate",
            f"Periods whose {TRIAL_CONVERSION_WINDOW_DAYS}-day conversion window is still "
            "open are left out (provisional) unless Running period = include."),
    )
    started = panel(
        lay, "timeseries", "Trials started by first-touch channel",
        [sql_target("""
            SELECT period_start AS time, dimension_value AS channel, value
            FROM kpi_values FINAL
            WHERE kpi = 'trials_started' AND dimension = 'channel'
              AND grain = '${grain}' AND $__dateFilter(period_start)
            ORDER BY time, channel
        """, FMT_TIMESERIES)],
        w=12, h=8, options=TS_LEGEND,
        custom={"drawStyle": "bars", "stacking": {"mode": "normal", "group": "A"},
                "fillOpacity": 80},
        description=kpi_description("trials_started"),
    )
    return [rate, started]


#: Logo retention by first-paid-month cohort × months since, the definition of
#: pulse_shared.cohorts (pulse kpi cohorts, the report's heat-map) in SQL: an account's
#: cohort is the month of its first event with MRR > 0; at months_since k it is retained
#: when its MRR after its last event before the end of month c + k is > 0. The last 12
#: cohorts whose months have ended; a month not ended yet is NULL (blank), never 0.
COHORT_RETENTION_SQL = """
    SELECT toDateTime(cohort, 'UTC') AS time,
           {columns}
    FROM (
        SELECT cohort, k, count() AS accounts, countIf(mrr_end > 0) / count() AS retention
        FROM (
            SELECT a.cohort AS cohort, a.k AS k, a.account_id AS account_id,
                   argMax(s.mrr, (s.occurred_at, s.event_id)) AS mrr_end
            FROM (
                SELECT account_id, cohort, arrayJoin(range(12)) AS k
                FROM (
                    SELECT account_id, toStartOfMonth(minIf(occurred_at, mrr > 0)) AS cohort
                    FROM subscriptions FINAL
                    GROUP BY account_id
                    HAVING countIf(mrr > 0) > 0
                )
                WHERE cohort >= addMonths(toStartOfMonth(today()), -12)
                  AND addMonths(cohort, k + 1) <= toStartOfMonth(today())
            ) AS a
            INNER JOIN (
                SELECT account_id, occurred_at, event_id, mrr FROM subscriptions FINAL
            ) AS s ON s.account_id = a.account_id
            WHERE toDate(s.occurred_at) < addMonths(a.cohort, a.k + 1)
            GROUP BY cohort, k, account_id
        )
        GROUP BY cohort, k
    )
    GROUP BY cohort
    ORDER BY cohort
""".replace("{columns}", ",\n           ".join(
    f"maxIf(toNullable(retention), k = {k}) AS `M{k}`" for k in range(12)))


def cohort_heatmap_panel(lay: Layout) -> dict[str, Any]:
    """Cohort retention heat-map (cohorts × months since first paid), from subscriptions."""
    return panel(
        lay, "heatmap", "Logo retention by first-paid-month cohort (months since first paid)",
        [sql_target(COHORT_RETENTION_SQL)],
        w=24, h=10, unit="percentunit", decimals=0,
        options={
            "calculate": False,
            "cellGap": 2,
            "color": {"mode": "scheme", "scheme": "Blues", "steps": 64, "exponent": 0.5,
                      "fill": "dark-blue", "reverse": False, "min": 0, "max": 1},
            "yAxis": {"axisPlacement": "left", "reverse": True, "unit": "none"},
            "rowsFrame": {"layout": "auto", "value": "logo retention"},
            "cellValues": {"unit": "percentunit", "decimals": 0},
            "showValue": "always",
            "filterValues": {"le": -1e-9},
            "legend": {"show": True},
            "tooltip": {"mode": "single", "yHistogram": False, "showColorScale": True},
            "exemplars": {"color": "rgba(255,0,255,0.7)"},
        },
        description="Share of each first-paid-month cohort's accounts paying (MRR > 0) at "
                    "the end of month c + k (M0 = the first paid month), as `pulse kpi "
                    "cohorts --by first_paid_month` and the monthly report compute it: "
                    "reactivated accounts stay in their first cohort. The last 12 cohorts; "
                    "a month not ended yet is blank (never 0). From the subscription "
                    "ledger; independent of the time range.",
    )


#: The marketing mix model run the panels show: the latest published one, preferring the
#: default target (won revenue) as the reports do (pulse_reporting.domain.mmm).
MMM_LATEST_RUN = """
    SELECT argMax(run_id, (target = 'won_revenue', finished_at, version))
    FROM mmm_runs FINAL
    WHERE status = 'published'
"""


def mmm_roi_panel(lay: Layout) -> dict[str, Any]:
    """Incremental ROI per channel with its 90 % interval beside attribution ROAS, from the
    latest published marketing mix model (tables outside a persona's scope cut it: cx)."""
    table = panel(
        lay, "table",
        "Incremental ROI by channel (marketing mix model, 90% interval) vs attribution ROAS",
        [sql_target(f"""
            WITH ({MMM_LATEST_RUN}) AS latest
            SELECT c.channel AS channel, c.spend AS spend, c.contribution AS contribution,
                   c.roi_lower AS roi_lower_90, c.roi AS roi, c.roi_upper AS roi_upper_90,
                   c.marginal_roi AS marginal_roi,
                   c.attribution_roas AS attribution_roas_position_based,
                   concat('v', toString(r.version), ' of ', toString(toDate(r.finished_at)),
                          ' (', toString(r.date_from), ' – ', toString(r.date_to), ', ',
                          r.target, ', ', r.grain, ')') AS run
            FROM mmm_channel_results AS c FINAL
            INNER JOIN (SELECT * FROM mmm_runs FINAL WHERE run_id = latest) AS r
                ON r.run_id = c.run_id
            WHERE c.run_id = latest
            ORDER BY roi DESC
        """)],
        w=24, h=8, decimals=2,
        description="Modelled incremental return per dollar of spend over the run's window "
                    "(contribution / spend) with its 90% credible interval, and the "
                    "marginal ROI of the next dollar, beside attribution ROAS (position-based, the executive default model) of "
                    "the same window (credited, not caused). Latest published run of "
                    "`pulse mmm fit`; runs rejected by their diagnostics are never shown. "
                    "Empty until a run is published. Independent of the time range.",
    )
    money = [{"id": "unit", "value": "currencyUSD"}, {"id": "decimals", "value": 0}]
    table["fieldConfig"]["overrides"] = [
        {"matcher": {"id": "byName", "options": name}, "properties": money}
        for name in ("spend", "contribution")
    ]
    return table


# --------------------------------------------------------------------------- campaigns
CHANNEL_FILTER = "channel IN (${channel:singlequote})"
CAMPAIGN_OF_CHANNEL = (
    "dimension_value IN (SELECT campaign_id FROM spend WHERE channel IN (${channel:singlequote}))"
)
LATEST_CAMPAIGN_PERIOD = """
    period_start = (SELECT max(period_start) FROM kpi_values
                    WHERE grain = '${grain}' AND dimension = 'campaign'
                      AND $__dateFilter(period_start))
"""


def campaigns() -> dict[str, Any]:
    lay = Layout()
    panels: list[dict[str, Any]] = [lay.row("Scorecard")]
    panels.append(panel(
        lay, "table", "Campaigns (latest period in range)", [sql_target(f"""
            SELECT dimension_value AS campaign,
                   sumIf(value, kpi = 'spend') AS spend,
                   sumIf(value, kpi = 'impressions') AS impressions,
                   sumIf(value, kpi = 'clicks') AS clicks,
                   sumIf(value, kpi = 'ctr') AS ctr,
                   sumIf(value, kpi = 'leads') AS leads,
                   sumIf(value, kpi = 'cpl') AS cpl,
                   sumIf(value, kpi = 'opportunities') AS opportunities,
                   sumIf(value, kpi = {model_kpi('attributed_revenue')}) AS attributed_revenue,
                   sumIf(value, kpi = {model_kpi('roas')}) AS roas,
                   sumIf(value, kpi = 'pacing') AS pacing
            FROM kpi_values FINAL
            WHERE grain = '${{grain}}' AND dimension = 'campaign' AND {LATEST_CAMPAIGN_PERIOD}
              AND {CAMPAIGN_OF_CHANNEL}
            GROUP BY campaign
            ORDER BY spend DESC
            LIMIT 200
        """)],
        w=24, h=10, decimals=2,
        description="One row per campaign for the newest period of the chosen grain.",
    ))
    panels.append(lay.row("Spend and reach"))
    panels.append(panel(
        lay, "timeseries", "Daily spend by campaign", [sql_target(f"""
            SELECT toDateTime(date) AS time, campaign_id, sum(amount) AS spend
            FROM spend FINAL
            WHERE $__dateFilter(date) AND {CHANNEL_FILTER}
            GROUP BY time, campaign_id
            ORDER BY time
        """, FMT_TIMESERIES)],
        w=12, h=9, unit="currencyUSD", options=TS_LEGEND,
        custom={"drawStyle": "bars", "fillOpacity": 70, "stacking": {"mode": "normal"}},
    ))
    panels.append(panel(
        lay, "timeseries", "Daily touches by campaign", [sql_target(f"""
            SELECT toDateTime(day) AS time, campaign_id, uniqExactMerge(touches) AS touches
            FROM touchpoints_daily
            WHERE $__dateFilter(day) AND {CHANNEL_FILTER}
            GROUP BY time, campaign_id
            ORDER BY time
        """, FMT_TIMESERIES)],
        w=12, h=9, options=TS_LEGEND,
    ))
    panels.append(panel(
        lay, "table", "Spend, impressions and clicks by campaign (range)", [sql_target(f"""
            SELECT campaign_id, channel, sum(amount) AS total_spend,
                   sum(impressions) AS total_impressions, sum(clicks) AS total_clicks,
                   if(total_impressions = 0, NULL, total_clicks / total_impressions) AS ctr
            FROM spend FINAL
            WHERE $__dateFilter(date) AND {CHANNEL_FILTER}
            GROUP BY campaign_id, channel
            ORDER BY total_spend DESC
            LIMIT 200
        """)],
        w=12, h=9, decimals=2,
    ))
    panels.append(panel(
        lay, "timeseries", "CPL by campaign", [sql_target(f"""
            SELECT period_start AS time, dimension_value AS campaign, value AS cpl
            FROM kpi_values FINAL
            WHERE kpi = 'cpl' AND grain = '${{grain}}' AND dimension = 'campaign'
              AND $__dateFilter(period_start) AND {CAMPAIGN_OF_CHANNEL}
            ORDER BY time
        """, FMT_TIMESERIES)],
        w=12, h=9, unit="currencyUSD", options=TS_LEGEND,
    ))

    panels.append(lay.row("Attribution"))
    latest_version = """
        (conversion_id, version) IN (
            SELECT conversion_id, max(version) FROM attribution_credits
            WHERE model = '${model}' AND milestone = '${milestone}'
            GROUP BY conversion_id)
    """
    panels.append(panel(
        lay, "table", "Attributed revenue by campaign (selected model)", [sql_target(f"""
            SELECT campaign_id, channel, sum(credited_revenue) AS attributed_revenue,
                   sum(credit) AS credited_conversions,
                   uniqExact(conversion_id) AS conversions_touched
            FROM attribution_credits FINAL
            WHERE model = '${{model}}' AND milestone = '${{milestone}}'
              AND $__timeFilter(converted_at) AND {CHANNEL_FILTER} AND {latest_version}
            GROUP BY campaign_id, channel
            ORDER BY attributed_revenue DESC
            LIMIT 100
        """)],
        w=12, h=10, decimals=2,
        description="Latest credit version of each conversion only.",
    ))
    panels.append(panel(
        lay, "table", "Channel credit share by model", [sql_target("""
            SELECT channel, model, sum(credit) AS credited_conversions,
                   sum(credited_revenue) AS attributed_revenue
            FROM attribution_credits FINAL
            WHERE milestone = '${milestone}' AND $__timeFilter(converted_at)
              AND (conversion_id, model, version) IN (
                  SELECT conversion_id, model, max(version) FROM attribution_credits
                  WHERE milestone = '${milestone}' GROUP BY conversion_id, model)
            GROUP BY channel, model
            ORDER BY channel, model
        """)],
        w=12, h=10, decimals=2,
        description="How much credit each model gives each channel for the same conversions.",
    ))
    panels.append(panel(
        lay, "timeseries", "ROAS by campaign", [sql_target(f"""
            SELECT period_start AS time, dimension_value AS campaign, value AS roas
            FROM kpi_values FINAL
            WHERE kpi = {model_kpi('roas')} AND grain = '${{grain}}'
              AND dimension = 'campaign' AND $__dateFilter(period_start)
              AND {CAMPAIGN_OF_CHANNEL}
            ORDER BY time
        """, FMT_TIMESERIES)],
        w=24, h=9, decimals=2, options=TS_LEGEND,
    ))
    panels.append(lay.row("Budgets"))
    panels.append(panel(
        lay, "table", "Campaign budgets (latest month in range)", [sql_target(f"""
            SELECT dimension_value AS campaign,
                   argMaxIf(value, period_start, kpi = 'budget') AS budget,
                   argMaxIf(value, period_start, kpi = 'spend_to_date') AS spend_to_date,
                   argMaxIf(value, period_start, kpi = 'pacing') AS pacing,
                   argMaxIf(value, period_start, kpi = 'projected_spend') AS projected_spend
            FROM kpi_values FINAL
            WHERE kpi IN ('budget', 'spend_to_date', 'pacing', 'projected_spend')
              AND grain = 'month' AND dimension = 'campaign'
              AND $__dateFilter(period_start) AND {CAMPAIGN_OF_CHANNEL}
            GROUP BY campaign
            ORDER BY budget DESC
        """)],
        w=12, h=9, decimals=2,
    ))
    panels.append(panel(
        lay, "table", "Budgets as loaded", [sql_target(f"""
            SELECT month, channel, campaign_id, amount, currency
            FROM budgets FINAL
            WHERE $__dateFilter(month) AND {CHANNEL_FILTER}
            ORDER BY month DESC, channel, campaign_id
            LIMIT 500
        """)],
        w=12, h=9, decimals=2,
    ))
    channel_var = sql_variable(
        "channel", "Channel", "SELECT DISTINCT channel FROM spend ORDER BY channel"
    )
    milestone_var = custom_variable("milestone", "Milestone", [(m, m) for m in MILESTONES])
    return dashboard(
        "pulse-campaigns", "Pulse · Campaigns",
        "Campaign and channel performance, attribution by model, budgets.",
        panels, [GRAIN_VAR, MODEL_VAR, PARTIAL_VAR, milestone_var, channel_var],
        time_from="now-90d", tags=["campaigns"], links=DASH_LINKS,
    )


# --------------------------------------------------------------------------- operations
def operations() -> dict[str, Any]:
    lay = Layout()
    ri = "$__rate_interval"
    panels: list[dict[str, Any]] = [lay.row("Health")]
    panels.append(panel(
        lay, "stat", "Instances up", [prom_target('sum by (job) (up{job=~"pulse-.+"})', "{{job}}")],
        w=8, h=4, options=STAT_OPTIONS | {"graphMode": "none"},
        thresholds=[(None, "red"), (1, "green")],
    ))
    panels.append(panel(
        lay, "stat", "Pipeline alerts firing",
        [prom_target('count(ALERTS{alertstate="firing", alertname=~"Pulse.+"}) or vector(0)')],
        w=4, h=4, options=STAT_OPTIONS | {"graphMode": "none"},
        thresholds=[(None, "green"), (1, "red")],
        description="Prometheus rules in deploy/prometheus/rules (lag, DLQ, service down).",
    ))
    panels.append(panel(
        lay, "stat", "KPI alerts firing", [prom_target("sum(pulse_alerts_firing) or vector(0)")],
        w=4, h=4, options=STAT_OPTIONS | {"graphMode": "area"},
        thresholds=[(None, "green"), (1, "orange")],
        description="Alerts service: KPI alert rules currently firing.",
    ))
    panels.append(panel(
        lay, "stat", "Total consumer lag", [prom_target(
            "sum(max by (service, topic, partition) (pulse_consumer_lag)) or vector(0)")],
        w=4, h=4, options=STAT_OPTIONS,
        thresholds=[(None, "green"), (1000, "orange"), (10000, "red")],
    ))
    panels.append(panel(
        lay, "stat", "Dead-lettered (range)",
        [prom_target("sum(increase(pulse_messages_dead_lettered_total[$__range])) or vector(0)")],
        w=4, h=4, options=STAT_OPTIONS | {"graphMode": "none"},
        thresholds=[(None, "green"), (1, "orange")],
    ))

    panels.append(lay.row("Kafka consumers"))
    panels.append(panel(
        lay, "timeseries", "Consumer lag by service and topic",
        [prom_target(LAG_BY_TOPIC, "{{service}} · {{topic}}")],
        w=12, h=8, options=TS_LEGEND,
        description="Messages behind the log end. Sustained growth: scale the service "
                    "(max = partition count) or check ClickHouse writes.",
    ))
    panels.append(panel(
        lay, "timeseries", "Consumed messages / s",
        [prom_target(f"sum by (service, topic) (rate(pulse_messages_consumed_total[{ri}]))",
                     "{{service}} · {{topic}}")],
        w=12, h=8, unit="reqps", options=TS_LEGEND,
    ))
    panels.append(panel(
        lay, "timeseries", "Published messages / s",
        [prom_target(f"sum by (service, topic) (rate(pulse_messages_published_total[{ri}]))",
                     "{{service}} → {{topic}}")],
        w=12, h=8, unit="reqps", options=TS_LEGEND,
    ))
    panels.append(panel(
        lay, "timeseries", "Rows written to ClickHouse / s",
        [prom_target(f"sum by (service, table) (rate(pulse_rows_written_total[{ri}]))",
                     "{{service}} → {{table}}")],
        w=12, h=8, unit="reqps", options=TS_LEGEND,
    ))

    panels.append(lay.row("Errors and dead letters"))
    panels.append(panel(
        lay, "timeseries", "Failed batches / s (redelivered)",
        [prom_target(f"sum by (service, topic) (rate(pulse_handler_errors_total[{ri}]))",
                     "{{service}} · {{topic}}")],
        w=8, h=8, unit="reqps", options=TS_LEGEND,
    ))
    panels.append(panel(
        lay, "timeseries", "Dead-lettered / s",
        [prom_target(
            f"sum by (service, topic, reason) (rate(pulse_messages_dead_lettered_total[{ri}]))",
            "{{service}} · {{topic}} · {{reason}}")],
        w=8, h=8, unit="reqps", options=TS_LEGEND,
    ))
    panels.append(panel(
        lay, "table", "DLQ counts over the range",
        [prom_target(
            "sum by (service, topic, reason) "
            "(increase(pulse_messages_dead_lettered_total[$__range])) > 0")
         | {"format": "table", "instant": True, "range": False}],
        w=8, h=8, decimals=0,
        description="Each row: records sent to <topic>.dlq; the DeadLetter event carries "
                    "the payload, the offset and the field errors.",
    ))
    panels.append(panel(
        lay, "timeseries", "Ingest: rejected and duplicate rows / s", [
            prom_target(f"sum by (kind, source) (rate(pulse_ingest_rows_rejected_total[{ri}]))",
                        "rejected {{kind}} · {{source}}", "A"),
            prom_target(f"sum by (kind, source) (rate(pulse_ingest_rows_duplicate_total[{ri}]))",
                        "duplicate {{kind}} · {{source}}", "B"),
            prom_target(f"sum by (kind, reason) (rate(pulse_ingest_backpressure_total[{ri}]))",
                        "503 {{kind}} · {{reason}}", "C"),
        ],
        w=12, h=8, unit="reqps", options=TS_LEGEND,
    ))
    panels.append(panel(
        lay, "timeseries", "Service failures / s", [
            prom_target(
                f"sum by (output) (rate(pulse_alerts_notification_failures_total[{ri}]))",
                "alert notification {{output}}", "A"),
            prom_target(f"sum by (kind) (rate(pulse_reporting_failures_total[{ri}]))",
                        "report {{kind}}", "B"),
            prom_target(
                f'sum by (model) (rate(pulse_attribution_model_runs_total{{status!="ok"}}[{ri}]))',
                "attribution run {{model}}", "C"),
        ],
        w=12, h=8, unit="reqps", options=TS_LEGEND,
    ))

    panels.append(lay.row("Latency"))
    for title, metric, by, legend in (
        ("Processing latency (record → commit)", "pulse_processing_latency_seconds",
         "service, topic", "{{service}} · {{topic}}"),
        ("ClickHouse batch write", "pulse_batch_write_seconds", "service, table",
         "{{service}} → {{table}}"),
    ):
        panels.append(panel(
            lay, "timeseries", title, [
                prom_target(f"histogram_quantile({q}, sum by (le, {by}) "
                            f"(rate({metric}_bucket[{ri}])))", f"p{int(q * 100)} {legend}",
                            ref)
                for q, ref in ((0.5, "A"), (0.95, "B"), (0.99, "C"))
            ],
            w=12, h=8, unit="s", options=TS_LEGEND,
        ))
    panels.append(panel(
        lay, "timeseries", "Ingest request latency p95",
        [prom_target(f"histogram_quantile(0.95, sum by (le, endpoint) "
                     f"(rate(pulse_ingest_request_seconds_bucket[{ri}])))", "{{endpoint}}")],
        w=8, h=8, unit="s", options=TS_LEGEND,
    ))
    panels.append(panel(
        lay, "timeseries", "Batch size p50",
        [prom_target(f"histogram_quantile(0.5, sum by (le, service, topic) "
                     f"(rate(pulse_batch_size_bucket[{ri}])))", "{{service}} · {{topic}}")],
        w=8, h=8, options=TS_LEGEND,
    ))
    panels.append(panel(
        lay, "timeseries", "Time since last data-driven attribution run",
        [prom_target("time() - pulse_attribution_last_model_run_timestamp_seconds",
                     "{{model}}")],
        w=8, h=8, unit="s", options=TS_LEGEND,
    ))

    panels.append(lay.row("Alerts and data freshness"))
    panels.append(panel(
        lay, "table", "KPI alerts firing now", [sql_target("""
            SELECT rule, severity, kpi, labels, value, threshold, active_since
            FROM alert_state FINAL
            WHERE state = 'firing'
            ORDER BY severity, active_since
        """)],
        w=12, h=8,
    ))
    panels.append(panel(
        lay, "table", "Recent alert notifications", [sql_target("""
            SELECT sent_at, state, severity, rule, kpi, value, threshold, labels
            FROM alert_events FINAL
            WHERE $__timeFilter(sent_at)
            ORDER BY sent_at DESC
            LIMIT 100
        """)],
        w=12, h=8,
    ))
    panels.append(panel(
        lay, "table", "Data freshness (last ingested row per source table)", [sql_target("""
            SELECT 'touchpoints' AS source_table, max(ingested_at) AS last_ingested,
                   count() AS total_rows FROM touchpoints
            UNION ALL
            SELECT 'spend' AS source_table, max(ingested_at) AS last_ingested,
                   count() AS total_rows FROM spend
            UNION ALL
            SELECT 'subscriptions' AS source_table, max(ingested_at) AS last_ingested,
                   count() AS total_rows FROM subscriptions
            UNION ALL
            SELECT 'pipeline_events' AS source_table, max(ingested_at) AS last_ingested,
                   count() AS total_rows FROM pipeline_events
            UNION ALL
            SELECT 'budgets' AS source_table, max(ingested_at) AS last_ingested,
                   count() AS total_rows FROM budgets
            UNION ALL
            SELECT 'kpi_values' AS source_table, max(computed_at) AS last_ingested,
                   count() AS total_rows FROM kpi_values
        """)],
        w=12, h=8,
        description="Row counts include not-yet-merged duplicates (no FINAL: cheap).",
    ))
    panels.append(panel(
        lay, "timeseries", "Ingested rows / s by kind and source",
        [prom_target(f"sum by (kind, source) (rate(pulse_ingest_rows_accepted_total[{ri}]))",
                     "{{kind}} · {{source}}")],
        w=12, h=8, unit="reqps", options=TS_LEGEND,
    ))
    return dashboard(
        "pulse-operations", "Pulse · Operations",
        "Platform view: health, consumer lag, throughput, errors, dead letters, latency, "
        "alerts, data freshness.",
        panels, [], time_from="now-6h", tags=["operations"], links=DASH_LINKS,
    )


# --------------------------------------------------------------------------- personas
#: Families of issue 17 (usage, deliverability, customer experience): their KPI rows are
#: generated from the catalog, so a KPI added there appears after regenerating. A family
#: not in the catalog yet is skipped (its KPIs cannot be queried by name).
NEW_FAMILIES = (("product", "Product usage"), ("deliverability", "Deliverability"),
                ("experience", "Customer experience: NPS, CSAT, support"))
#: Industry alert thresholds drawn on the deliverability tiles (the alert rule templates').
RATE_THRESHOLDS: dict[str, float] = {"bounce_rate": 0.02, "hard_bounce_rate": 0.02,
                                     "complaint_rate": 0.001}
#: Catalog ratios read as percentages (rates) rather than multiples.
PERCENT_RATIOS = {"delivery_rate", "bounce_rate", "hard_bounce_rate", "complaint_rate",
                  "unsubscribe_rate", "open_rate", "click_rate", "feature_adoption_rate",
                  "csat", "nrr", "gross_mrr_churn_rate", "logo_churn_rate", "marketing_roi",
                  "marketing_roi_fully_loaded", "trial_to_paid_rate"}


def catalog_unit(kpi: str) -> str:
    return "percentunit" if kpi in PERCENT_RATIOS else kpi_unit(kpi)


def family_kpis(family: str) -> list[str]:
    """KPIs of ``family`` with a company total (catalog order)."""
    return [k for k, d in KPI_CATALOG.items()
            if d.family.value == family and "all" in d.dimensions and "__" not in k]


def tiles(lay: Layout, kpis: list[tuple[str, str]], *, model_based: tuple[str, ...] = ()
          ) -> list[dict[str, Any]]:
    """A stat tile per (title, kpi) the catalog has (others are skipped: not computed)."""
    out = []
    for title, kpi in kpis:
        if kpi not in KPI_CATALOG:
            continue
        threshold = RATE_THRESHOLDS.get(kpi)
        out.append(kpi_tile(
            lay, title, kpi, catalog_unit(kpi), "", model_based=kpi in model_based,
            decimals=3 if kpi == "complaint_rate" else 2,
            thresholds=[(None, "green"), (threshold, "red")] if threshold else None))
    return out


def family_rows(lay: Layout, family: str, title: str) -> list[dict[str, Any]]:
    """A row per new family: a tile per KPI with a total (thresholds on the deliverability
    rates), each KPI over time, and its breakdown (feature, sending domain) as a table."""
    kpis = family_kpis(family)
    if not kpis:
        return []
    panels = [lay.row(title)]
    panels += tiles(lay, [(KPI_CATALOG[k].label or k, k) for k in kpis])
    by_unit: dict[str, list[str]] = {}
    for k in kpis:  # one chart per unit: rates, volumes, points, hours … never mixed
        by_unit.setdefault(catalog_unit(k), []).append(k)
    for unit, group in by_unit.items():
        name = {"percentunit": f"{title}: rates", "short": f"{title}: volumes"}.get(
            unit, " and ".join(KPI_CATALOG[k].label or k for k in group))
        names = ", ".join(f"'{k}'" for k in group)
        columns = ",\n".join(f"maxIf(value, kpi = '{k}') AS {k}" for k in group)
        panels.append(panel(
            lay, "timeseries", f"{name} per period", [sql_target(f"""
                SELECT period_start AS time, {columns}
                FROM kpi_values FINAL
                WHERE kpi IN ({names}) AND grain = '${{grain}}' AND dimension = 'all'
                  AND $__dateFilter(period_start)
                GROUP BY time
                ORDER BY time
            """, FMT_TIMESERIES)],
            w=12, h=8, unit=unit, decimals=3 if unit == "percentunit" else 0,
            options=TS_LEGEND,
            description="Company totals per period of the chosen grain, from kpi_values.",
        ))
    breakdowns = sorted({d for k in kpis for d in KPI_CATALOG[k].dimensions}
                        - {"all", "channel", "campaign"})
    for dimension in breakdowns[:1]:
        group = [k for k in kpis if dimension in KPI_CATALOG[k].dimensions]
        names = ", ".join(f"'{k}'" for k in group)
        columns = ",\n".join(f"argMaxIf(value, period_start, kpi = '{k}') AS {k}"
                              for k in group)
        panels.append(panel(
            lay, "table", f"{title} by {dimension.replace('_', ' ')} (latest period in range)",
            [sql_target(f"""
                SELECT dimension_value AS {dimension}, {columns}
                FROM kpi_values FINAL
                WHERE kpi IN ({names}) AND grain = '${{grain}}'
                  AND dimension = '{dimension}' AND $__dateFilter(period_start)
                GROUP BY {dimension}
                ORDER BY {dimension}
            """)],
            w=24, h=8, decimals=3,
        ))
    return panels


def martech_panels(lay: Layout) -> list[dict[str, Any]]:
    """Tool and licence costs by category (martech_costs) and CAC / ROI with and without
    them (kpi_values)."""
    panels = [lay.row("Martech: tools and licences in marketing cost")]
    panels += tiles(lay, [("Martech cost", "martech_cost"), ("Marketing cost", "marketing_cost"),
                          ("CAC (ad spend)", "cac"), ("CAC (with tools)", "cac_fully_loaded"),
                          ("ROI (ad spend)", "marketing_roi"),
                          ("ROI (with tools)", "marketing_roi_fully_loaded")],
                    model_based=("marketing_roi",))
    panels.append(panel(
        lay, "barchart", "Martech cost by tool category (months in range)", [sql_target("""
            SELECT category, sum(amount) AS cost
            FROM martech_costs FINAL
            WHERE $__dateFilter(month)
            GROUP BY category
            ORDER BY cost DESC
        """)],
        w=12, h=8, unit="currencyUSD",
        options={"xField": "category", "orientation": "horizontal", "showValue": "always"},
        description="Sum of the monthly tool and licence costs (pulse ingest martech) of the "
                    "months in the time range, by tool category.",
    ))
    panels.append(panel(
        lay, "timeseries", "CAC without and with tools", [sql_target("""
            SELECT period_start AS time,
                   maxIf(value, kpi = 'cac') AS cac_ad_spend,
                   maxIf(value, kpi = 'cac_fully_loaded') AS cac_with_tools
            FROM kpi_values FINAL
            WHERE kpi IN ('cac', 'cac_fully_loaded') AND grain = '${grain}'
              AND dimension = 'all' AND $__dateFilter(period_start)
            GROUP BY time
            ORDER BY time
        """, FMT_TIMESERIES)],
        w=12, h=8, unit="currencyUSD", options=TS_LEGEND,
        description=kpi_description("cac_fully_loaded"),
    ))
    return panels


def persona_cmo() -> dict[str, Any]:
    """The CMO's overview: revenue, pipeline, CAC and LTV (with tools), martech, MMM."""
    lay = Layout()
    panels: list[dict[str, Any]] = [lay.row("Revenue")]
    panels += tiles(lay, [("MRR", "mrr"), ("ARR", "arr"), ("Net new MRR", "mrr_net_new"),
                          ("NRR", "nrr"), ("Paying accounts", "paying_accounts"),
                          ("New customers", "new_customers")])
    panels.append(lay.row("Pipeline"))
    panels += tiles(lay, [("Attributed pipeline", "attributed_pipeline"),
                          ("Attributed revenue", "attributed_revenue"), ("Leads", "leads"),
                          ("Opportunities", "opportunities"), ("Deals won", "wins"),
                          ("Trial-to-paid rate", "trial_to_paid_rate")],
                    model_based=("attributed_pipeline", "attributed_revenue"))
    panels.append(lay.row("CAC and LTV"))
    panels += tiles(lay, [("CAC", "cac"), ("LTV", "ltv"), ("LTV:CAC", "ltv_cac"),
                          ("CAC payback", "cac_payback_months"), ("ROAS", "roas"),
                          ("Marketing ROI", "marketing_roi")],
                    model_based=("roas", "marketing_roi"))
    panels += martech_panels(lay)
    panels.append(lay.row("Incrementality"))
    panels.append(mmm_roi_panel(lay))
    return dashboard(
        "pulse-persona-cmo", "Pulse · CMO overview",
        "CMO view: revenue, pipeline, CAC and LTV with and without tools, martech spend by "
        "category, incrementality (marketing mix model). All numbers from kpi_values.",
        panels, [EXECUTIVE_GRAIN_VAR, MODEL_VAR, PARTIAL_VAR], time_from="now-180d",
        tags=["persona", "cmo"], links=DASH_LINKS,
    )


def persona_ops() -> dict[str, Any]:
    """Marketing ops: pacing, alerts, deliverability (with thresholds), campaigns."""
    lay = Layout()
    panels: list[dict[str, Any]] = [lay.row("Budget pacing (running month)")]
    for title, kpi in (("Budget pacing", "pacing"), ("Projected spend", "projected_spend"),
                       ("Spend to date", "spend_to_date"), ("Budget", "budget")):
        panels.append(kpi_tile(lay, f"{title} (running month)", kpi,
                               catalog_unit(kpi) if kpi != "pacing" else "percentunit", "",
                               decimals=2, running=True))
    panels.append(panel(
        lay, "table", "Pacing by channel (running month)", [sql_target("""
            SELECT dimension_value AS channel,
                   argMaxIf(value, period_start, kpi = 'budget') AS budget,
                   argMaxIf(value, period_start, kpi = 'spend_to_date') AS spend_to_date,
                   argMaxIf(value, period_start, kpi = 'pacing') AS pacing,
                   argMaxIf(value, period_start, kpi = 'projected_spend') AS projected_spend
            FROM kpi_values FINAL
            WHERE kpi IN ('budget', 'spend_to_date', 'pacing', 'projected_spend')
              AND grain = 'month' AND dimension = 'channel' AND $__dateFilter(period_start)
            GROUP BY channel
            ORDER BY pacing DESC
        """, complete=False)],
        w=8, h=8, decimals=2,
        description="Pacing 1.0 = on plan; projected spend assumes the current daily pace.",
    ))
    panels.append(lay.row("Alerts"))
    panels.append(panel(
        lay, "table", "KPI alerts firing now", [sql_target("""
            SELECT rule, severity, kpi, labels, value, threshold, active_since
            FROM alert_state FINAL
            WHERE state = 'firing'
            ORDER BY severity, active_since
        """)],
        w=12, h=8,
    ))
    panels.append(panel(
        lay, "table", "Alert notifications in range", [sql_target("""
            SELECT sent_at, state, severity, rule, kpi, value, threshold, labels
            FROM alert_events FINAL
            WHERE $__timeFilter(sent_at)
            ORDER BY sent_at DESC
            LIMIT 100
        """)],
        w=12, h=8,
    ))
    panels += family_rows(lay, "deliverability", "Deliverability")
    panels.append(lay.row("Campaigns"))
    panels.append(panel(
        lay, "table", "Campaigns by ROAS (latest period in range)", [sql_target(f"""
            SELECT dimension_value AS campaign,
                   sumIf(value, kpi = 'spend') AS spend,
                   sumIf(value, kpi = {model_kpi('attributed_revenue')}) AS attributed_revenue,
                   sumIf(value, kpi = {model_kpi('roas')}) AS roas,
                   sumIf(value, kpi = 'cac') AS cac,
                   sumIf(value, kpi = 'leads') AS leads
            FROM kpi_values FINAL
            WHERE grain = '${{grain}}' AND dimension = 'campaign' AND {LATEST_CAMPAIGN_PERIOD}
            GROUP BY campaign
            ORDER BY roas DESC
            LIMIT 50
        """)],
        w=24, h=9, decimals=2,
    ))
    return dashboard(
        "pulse-persona-ops", "Pulse · Marketing ops",
        "Marketing ops view: budget pacing, alerts, deliverability against the industry "
        "thresholds (bounce 2 %, complaints 0.1 %), campaigns. All numbers from kpi_values.",
        panels, [EXECUTIVE_GRAIN_VAR, MODEL_VAR, PARTIAL_VAR], time_from="now-90d",
        tags=["persona", "marketing_ops"], links=DASH_LINKS,
    )


#: Accounts at churn risk: paying at the end of the newest complete month in range whose
#: usage per day fell by more than the KPI service's default drop (50 %) against the month
#: before (the definition of churn_risk_accounts). Ids only.
CHURN_RISK_SQL = """
    WITH toStartOfMonth(least($__toTime, today())) AS month_end,
         addMonths(month_end, -1) AS month_start,
         addMonths(month_end, -2) AS previous_start
    SELECT u.account_id AS account_id, m.mrr AS mrr, u.previous_uses AS previous_uses,
           u.uses AS uses,
           1 - (u.uses / dateDiff('day', month_start, month_end))
             / (u.previous_uses / dateDiff('day', previous_start, month_start)) AS usage_drop
    FROM (
        SELECT account_id,
               sumIf(count, day >= month_start) AS uses,
               sumIf(count, day < month_start) AS previous_uses
        FROM product_usage FINAL
        WHERE day >= previous_start AND day < month_end
        GROUP BY account_id
    ) AS u
    INNER JOIN (
        SELECT account_id, argMax(mrr_after, occurred_at) AS mrr
        FROM kpi_mrr_movements FINAL
        WHERE toDate(occurred_at) < month_end
        GROUP BY account_id
    ) AS m ON u.account_id = m.account_id
    WHERE m.mrr > 0 AND u.previous_uses > 0 AND usage_drop > 0.5
    ORDER BY usage_drop DESC, mrr DESC
    LIMIT 50
"""


def persona_cx() -> dict[str, Any]:
    """Customer experience: retention, NPS and support, usage, accounts at churn risk."""
    lay = Layout()
    panels: list[dict[str, Any]] = [lay.row("Retention")]
    panels += tiles(lay, [("NRR", "nrr"), ("Gross MRR churn", "gross_mrr_churn_rate"),
                          ("Logo churn", "logo_churn_rate"), ("Churned MRR", "mrr_churn"),
                          ("Paying accounts", "paying_accounts"), ("ARPA", "arpa")])
    panels.append(cohort_heatmap_panel(lay))
    for family, title in NEW_FAMILIES:
        if family == "deliverability":  # marketing ops' (not cx's)
            continue
        rows = family_rows(lay, family, title)
        panels += rows
        if family == "product" and rows:
            panels.append(panel(
                lay, "table", "Accounts at churn risk (newest complete month in range)",
                [sql_target(CHURN_RISK_SQL)],
                w=24, h=9, decimals=2,
                description=kpi_description("churn_risk_accounts")
                + " Listed for follow-up: paying accounts only, riskiest first.",
            ))
    return dashboard(
        "pulse-persona-cx", "Pulse · Customer experience",
        "CX view: retention (NRR, churn, cohorts), NPS, CSAT and support tickets, product "
        "usage and the accounts at churn risk. All numbers from kpi_values.",
        panels, [EXECUTIVE_GRAIN_VAR, PARTIAL_VAR], time_from="now-180d",
        tags=["persona", "cx"], links=DASH_LINKS,
    )


DASHBOARDS = {
    "pulse-executive.json": executive,
    "pulse-campaigns.json": campaigns,
    "pulse-operations.json": operations,
    "pulse-persona-cmo.json": persona_cmo,
    "pulse-persona-ops.json": persona_ops,
    "pulse-persona-cx.json": persona_cx,
}


def render() -> dict[str, str]:
    """File name → JSON text of every full-scope dashboard (dashboards/*.json)."""
    return {
        name: json.dumps(build(), indent=2, ensure_ascii=False) + "\n"
        for name, build in DASHBOARDS.items()
    }


# --------------------------------------------------------------------------- personas
#: Folder title per persona (Pulse role).
PERSONA_TITLES = {
    Role.CMO: "CMO", Role.DIRECTOR: "Director", Role.MARKETING_OPS: "Marketing ops",
    Role.CX: "Customer experience", Role.PLATFORM: "Platform",
}
#: Which dashboards each persona's folder holds (each cut to the persona's scope; one left
#: with no data panel is not written).
PERSONA_DASHBOARDS: dict[Role, tuple[str, ...]] = {
    Role.CMO: ("pulse-persona-cmo.json", "pulse-executive.json", "pulse-campaigns.json",
               "pulse-persona-cx.json"),
    Role.DIRECTOR: ("pulse-persona-cmo.json", "pulse-executive.json", "pulse-campaigns.json",
                    "pulse-persona-cx.json"),
    Role.MARKETING_OPS: ("pulse-persona-ops.json", "pulse-executive.json",
                         "pulse-campaigns.json", "pulse-operations.json",
                         "pulse-persona-cmo.json", "pulse-persona-cx.json"),
    Role.CX: ("pulse-persona-cx.json", "pulse-executive.json"),
    Role.PLATFORM: ("pulse-operations.json",),
}
_TABLE_REF = re.compile(r"\b(?:FROM|JOIN)\s+([a-z_][a-z0-9_]*)", re.IGNORECASE)
_KPI_LITERAL = re.compile(r"\bkpi\s*=\s*'(\w+)'")
_KPI_LIST = re.compile(r"\bkpi\s+IN\s*\(([^)]*)\)")
_KPI_MODEL = re.compile(r"concat\('(\w+)__', '\$\{model\}'\)")
_KPI_PREFIX = re.compile(r"startsWith\(kpi, '(\w+)'\)")
_DIMENSION = re.compile(r"\bdimension\s*=\s*'(\w+)'")


def sql_reads(sql: str) -> tuple[set[str], set[str], set[str]]:
    """(tables, KPI names, kpi_values dimensions) a dashboard query reads. KPI names under
    the model variable count as every model's; a ``startsWith`` prefix as every catalog
    KPI with it."""
    tables = {t for t in _TABLE_REF.findall(sql) if t.lower() not in ("select", "input")}
    kpis = set(_KPI_LITERAL.findall(sql))
    for group in _KPI_LIST.findall(sql):
        kpis |= set(re.findall(r"'(\w+)'", group))
    for base in _KPI_MODEL.findall(sql):
        kpis |= {base} | {f"{base}__{m}" for m in MODEL_NAMES if f"{base}__{m}" in KPI_CATALOG}
    for prefix in _KPI_PREFIX.findall(sql):
        kpis |= {k for k in KPI_CATALOG if k.startswith(prefix)}
    return tables, kpis, set(_DIMENSION.findall(sql))


def allowed(scope: Scope, sql: str) -> bool:
    """Whether every table, KPI and dimension ``sql`` reads is in ``scope``."""
    tables, kpis, dimensions = sql_reads(sql)
    if not tables <= scope.tables:
        return False
    if "kpi_values" not in tables:
        return True
    if not kpis or not dimensions:  # reads kpi_values without naming what: all of it
        return scope.all_kpis
    return all(kpi_visible(scope.role, k, d) for k in kpis for d in dimensions)


def _with_datasource(value: Any, uid: str) -> Any:
    """``value`` with every ClickHouse data source reference pointing at ``uid``."""
    if isinstance(value, dict):
        if value.get("type") == CLICKHOUSE_TYPE and "uid" in value:
            return {**value, "uid": uid}
        return {k: _with_datasource(v, uid) for k, v in value.items()}
    if isinstance(value, list):
        return [_with_datasource(v, uid) for v in value]
    return value


def persona_dashboard(role: Role, full: dict[str, Any]) -> dict[str, Any] | None:
    """``full`` cut to ``role``'s scope on its own data source; None without data panels."""
    scope = SCOPES[role]
    kept: list[dict[str, Any]] = []
    for p in full["panels"]:
        if p["type"] == "row":
            kept.append(p)
            continue
        sqls = [t["rawSql"] for t in p["targets"] if "rawSql" in t]
        if all(allowed(scope, sql) for sql in sqls):
            kept.append(p)
    # Rows left without panels go too.
    panels = [p for i, p in enumerate(kept) if p["type"] != "row" or (
        i + 1 < len(kept) and kept[i + 1]["type"] != "row")]
    if not any(p["type"] != "row" for p in panels):
        return None
    variables = [v for v in full["templating"]["list"]
                 if v["type"] != "query" or allowed(scope, v["query"])]
    used = json.dumps(panels)
    variables = [v for v in variables if f"${{{v['name']}" in used or f"${v['name']}" in used]
    title = full["title"].replace("Pulse · ", f"Pulse · {PERSONA_TITLES[role]} · ")
    description = (f"{full['description']} Cut to the {PERSONA_TITLES[role]} scope: "
                   f"{scope.summary}")
    dash = {**full, "uid": f"{full['uid']}-{role.value}", "title": title,
            "description": description,
            "panels": panels, "templating": {"list": variables},
            "tags": [*full["tags"], f"persona-{role.value}"]}
    return _with_datasource(dash, clickhouse_uid(role))  # type: ignore[no-any-return]


def render_personas() -> dict[str, str]:
    """``<role>/<file>`` → JSON text of every persona's dashboards."""
    out: dict[str, str] = {}
    for role, names in PERSONA_DASHBOARDS.items():
        for name in names:
            dash = persona_dashboard(role, DASHBOARDS[name]())
            if dash is not None:
                out[f"{role.value}/{name}"] = json.dumps(dash, indent=2,
                                                         ensure_ascii=False) + "\n"
    return out


# --------------------------------------------------------------------------- provisioning
def _yaml(header: str, document: dict[str, Any]) -> str:
    import yaml  # only needed for provisioning (the dev environment has it)

    return header + yaml.safe_dump(document, sort_keys=False, allow_unicode=True, width=100)


def render_provisioning() -> dict[str, str]:
    """Path under provisioning/ → text: data sources and one dashboard provider per
    persona."""
    datasources = [{
        "name": "Prometheus", "uid": PROMETHEUS["uid"], "type": "prometheus",
        "access": "proxy", "url": "http://prometheus:9090", "isDefault": True,
        "editable": False, "jsonData": {"timeInterval": "15s"},
    }]
    for role in Role:
        datasources.append({
            "name": f"ClickHouse · {PERSONA_TITLES[role]}",
            "uid": clickhouse_uid(role),
            "type": CLICKHOUSE_TYPE,
            "editable": False,
            "jsonData": {"host": "clickhouse", "port": 8123, "protocol": "http",
                         "secure": False, "username": f"grafana_{role.value}",
                         "defaultDatabase": "pulse"},
            "secureJsonData": {
                "password": f"${{PULSE_CLICKHOUSE_GRAFANA_{role.value.upper()}_PASSWORD}}"},
        })
    providers = [{
        "name": f"pulse-{role.value}", "orgId": 1,
        "folder": f"Pulse · {PERSONA_TITLES[role]}", "folderUid": f"pulse-{role.value}",
        "type": "file", "disableDeletion": True, "allowUiUpdates": False,
        "updateIntervalSeconds": 60,
        "options": {"path": f"/etc/grafana/dashboards/{role.value}",
                    "foldersFromFilesStructure": False},
    } for role in Role]
    note = "# Generated by deploy/grafana/generate_dashboards.py: edit that, then run it.\n"
    return {
        "datasources/datasources.yml": _yaml(
            note + "# Prometheus, and one ClickHouse data source per Pulse role: user\n"
            "# grafana_<role> holds the ClickHouse role pulse_<role> (docs/clickhouse-roles.md).\n"
            "# Passwords are interpolated from Grafana's environment.\n",
            {"apiVersion": 1,
             # The single full-data data source (as pulse_reader) of earlier versions:
             # removed on upgrade, or any Grafana user could still query everything.
             "deleteDatasources": [{"name": "ClickHouse", "orgId": 1}],
             "datasources": datasources}),
        "dashboards/pulse.yml": _yaml(
            note + "# One folder per persona (uid pulse-<role>) from dashboards/<role>/;\n"
            "# deploy/grafana/init_teams.py gives each folder to the persona's team.\n",
            {"apiVersion": 1, "providers": providers}),
    }


def main() -> int:
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    for name, text in render().items():
        (OUT_DIR / name).write_text(text, encoding="utf-8")
        print(f"wrote {OUT_DIR / name}")
    for role in Role:  # a persona left with fewer dashboards drops its stale files
        for stale in (OUT_DIR / role.value).glob("*.json"):
            stale.unlink()
    for name, text in render_personas().items():
        path = OUT_DIR / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        print(f"wrote {path}")
    for name, text in render_provisioning().items():
        path = PROVISIONING_DIR / name
        path.write_text(text, encoding="utf-8")
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
