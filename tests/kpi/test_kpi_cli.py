"""``pulse kpi`` commands on the embedded store (no server), and the committed AsyncAPI doc."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pulse_kpi import cli_support
from pulse_kpi.asyncapi import render
from pulse_kpi.cli import MRR_COLUMNS, app, catalog_markdown
from pulse_shared.kpi_catalog import CATALOG
from pulse_shared.settings import common_settings
from pulse_shared.store import Store

ROOT = Path(__file__).resolve().parents[2]
Y = 2011


@pytest.fixture
def cli_env(embedded_data_dir: Path, embedded_store: Store,
            monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The CLI opens the session's embedded data dir (one chDB dir per process)."""
    monkeypatch.setenv("PULSE_DATA_DIR", str(embedded_data_dir))
    monkeypatch.delenv("PULSE_CLICKHOUSE_URL", raising=False)
    common_settings.cache_clear()
    yield
    common_settings.cache_clear()


def sub(event_id: str, account: str, when: dt.datetime, mrr: int, kind: str) -> dict[str, object]:
    return {"event_id": event_id, "occurred_at": when, "account_id": account,
            "event_type": kind, "mrr": Decimal(mrr), "currency": "USD", "plan": "p"}


def ts(month: int, day: int) -> dt.datetime:
    return dt.datetime(Y, month, day, 12, tzinfo=dt.UTC)


ROWS = [
    sub("cli-1", "cli-A", ts(1, 5), 100, "subscription_started"),
    sub("cli-2", "cli-B", ts(1, 9), 200, "subscription_started"),
    sub("cli-3", "cli-A", ts(2, 3), 150, "subscription_upgraded"),
    sub("cli-4", "cli-A", ts(2, 20), 120, "subscription_downgraded"),
    sub("cli-5", "cli-B", ts(2, 15), 0, "subscription_canceled"),
    sub("cli-6", "cli-B", ts(3, 10), 80, "subscription_reactivated"),
]
COLUMNS = ["event_id", "occurred_at", "account_id", "event_type", "mrr", "currency", "plan"]


def test_mrr_csv_exact_columns_and_values(cli_env: None, embedded_store: Store) -> None:
    embedded_store.insert("subscriptions", ROWS, COLUMNS)
    embedded_store.insert("subscriptions", ROWS[:2], COLUMNS)  # duplicates are harmless
    base = Decimal(embedded_store.query_value(
        "SELECT sum(m) FROM (SELECT argMax(mrr, (occurred_at, event_id)) AS m "
        "FROM subscriptions FINAL WHERE occurred_at < {t:DateTime64(3, 'UTC')} "
        "GROUP BY account_id)", {"t": ts(1, 1)}) or 0)
    result = CliRunner().invoke(app, ["mrr", "--grain", "month", "--from", f"{Y}-01",
                                      "--to", f"{Y}-04", "--format", "csv"])
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert lines[0] == ",".join(MRR_COLUMNS)
    assert lines[0] == "period,new,expansion,contraction,churn,reactivation,net_new,ending_mrr"

    def money(x: Decimal) -> str:
        return f"{x:.2f}"

    assert lines[1:] == [
        f"{Y}-01,300.00,0.00,0.00,0.00,0.00,300.00,{money(base + 300)}",
        f"{Y}-02,0.00,50.00,-30.00,-200.00,0.00,-180.00,{money(base + 120)}",
        f"{Y}-03,0.00,0.00,0.00,0.00,80.00,80.00,{money(base + 200)}",
        f"{Y}-04,0.00,0.00,0.00,0.00,0.00,0.00,{money(base + 200)}",
    ]


def test_show_and_list(cli_env: None, embedded_store: Store) -> None:
    rows = [
        {"kpi": "spend", "grain": "month", "period": f"{Y}-0{m}",
         "period_start": dt.date(Y, m, 1), "dimension": "channel", "dimension_value": ch,
         "value": float(10 * m), "unit": "USD",
         "computed_at": dt.datetime(2026, 1, 1, tzinfo=dt.UTC)}
        for m in (1, 2) for ch in ("email", "display")
    ]
    embedded_store.insert("kpi_values", rows, list(rows[0]))
    runner = CliRunner()
    out = runner.invoke(app, ["show", "--grain", "month", "--from", f"{Y}-01", "--to",
                              f"{Y}-02", "--by", "channel", "--format", "json"])
    assert out.exit_code == 0, out.output
    data = json.loads(out.output)
    assert {(r["period"], r["dimension_value"], r["value"]) for r in data} == {
        (f"{Y}-01", "email", 10.0), (f"{Y}-01", "display", 10.0),
        (f"{Y}-02", "email", 20.0), (f"{Y}-02", "display", 20.0),
    }
    assert all(r["complete"] is True for r in data)  # months of 2011 ended long ago
    csv_out = runner.invoke(app, ["show", "--grain", "month", "--from", f"{Y}-02", "--to",
                                  f"{Y}-02", "--by", "channel", "--format", "csv"])
    assert csv_out.output.splitlines()[0] == (
        "kpi,grain,period,period_start,dimension,dimension_value,value,unit,complete")
    assert len(csv_out.output.strip().splitlines()) == 3
    table = runner.invoke(app, ["show", "--grain", "month", "--from", f"{Y}-01", "--to",
                                f"{Y}-02", "--by", "channel"])
    assert table.exit_code == 0 and f"{Y}-02" in table.output and "email" in table.output
    listed = runner.invoke(app, ["list", "--format", "json"])
    by_name = {k["name"]: k for k in json.loads(listed.output)}
    assert set(by_name) == {k.name for k in CATALOG} and "ltv_cac" in by_name
    spend = next(k for k in CATALOG if k.name == "spend")
    assert by_name["spend"]["grains"] == [str(g) for g in spend.grains]  # lists in JSON
    as_csv = runner.invoke(app, ["list", "--format", "csv"]).output.splitlines()
    assert as_csv[0] == "name,unit,direction,grains,dimensions,definition"
    [spend_line] = [line for line in as_csv if line.startswith("spend,")]
    assert spend_line.startswith(
        f'spend,{spend.unit},{spend.direction},"{",".join(str(g) for g in spend.grains)}",')


def test_show_flags_the_running_period_as_not_complete(
    cli_env: None, embedded_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Last month is complete, this month is "to date" — whatever day the suite runs."""
    now = dt.datetime.now(dt.UTC)
    monkeypatch.setattr(cli_support, "clock", lambda: now)
    this_month = now.date().replace(day=1)
    last_month = (this_month - dt.timedelta(days=1)).replace(day=1)
    label = {d: f"{d.year}-{d.month:02d}" for d in (last_month, this_month)}
    rows = [
        {"kpi": "spend", "grain": "month", "period": label[d], "period_start": d,
         "dimension": "channel", "dimension_value": "complete-probe", "value": value,
         "unit": "USD", "computed_at": now}
        for d, value in ((last_month, 300.0), (this_month, 40.0))
    ]
    embedded_store.insert("kpi_values", rows, list(rows[0]))
    span = ["--grain", "month", "--from", label[last_month], "--to", label[this_month],
            "--by", "channel", "--kpi", "spend"]
    runner = CliRunner()

    out = runner.invoke(app, ["show", *span, "--format", "json"])
    assert out.exit_code == 0, out.output
    mine = {r["period"]: r for r in json.loads(out.output)
            if r["dimension_value"] == "complete-probe"}
    assert {p: (r["value"], r["complete"]) for p, r in mine.items()} == {
        label[last_month]: (300.0, True), label[this_month]: (40.0, False)}

    csv_out = runner.invoke(app, ["show", *span, "--format", "csv"])
    assert csv_out.exit_code == 0, csv_out.output
    probe = [line for line in csv_out.output.splitlines() if ",complete-probe," in line]
    assert probe == [
        f"spend,month,{label[last_month]},{last_month},channel,complete-probe,300,USD,true",
        f"spend,month,{label[this_month]},{this_month},channel,complete-probe,40,USD,false",
    ]

    monkeypatch.setenv("COLUMNS", "200")
    table = runner.invoke(app, ["show", *span])
    assert table.exit_code == 0, table.output
    assert f"{label[this_month]} (to date)" in table.output
    assert f"{label[last_month]} (to date)" not in table.output

    # The day after the month's last day, the same month is complete.
    next_month = (this_month + dt.timedelta(days=31)).replace(day=1)
    monkeypatch.setattr(cli_support, "clock", lambda: dt.datetime.combine(
        next_month, dt.time(0, 0, 1), tzinfo=dt.UTC))
    later = runner.invoke(app, ["show", *span, "--format", "json"])
    assert [r["complete"] for r in json.loads(later.output)
            if r["dimension_value"] == "complete-probe"] == [True, True]


def test_committed_asyncapi_docs_are_up_to_date() -> None:
    docs = ROOT / "docs" / "asyncapi"
    assert (docs / "kpi.json").read_text() == render("json")
    assert (docs / "kpi.yaml").read_text() == render("yaml")
    assert (docs / "kpi-catalog.md").read_text() == catalog_markdown()
    spec = json.loads(render("json"))
    payload = spec["components"]["schemas"]["KpiSnapshot"]
    assert {"kpi", "grain", "period", "value", "final", "complete", "schema_version"} <= set(
        payload["properties"])
    assert "kpi.snapshots.v1:publish" in spec["channels"]


def test_mrr_with_no_server_on_a_fresh_data_dir(tmp_path: Path) -> None:
    """A separate process (own chDB dir): ingest rows, then ``pulse kpi mrr``."""
    script = f"""
import datetime as dt
from decimal import Decimal
from pulse_shared.schema.migrations import migrate
from pulse_shared.store import open_store
store = open_store()
migrate(store)
t = lambda m, d: dt.datetime({Y}, m, d, tzinfo=dt.UTC)
cols = {COLUMNS!r}
store.insert("subscriptions", [
    dict(event_id="a", occurred_at=t(1, 2), account_id="A", event_type="subscription_started",
         mrr=Decimal(100), currency="USD", plan=""),
    dict(event_id="b", occurred_at=t(2, 2), account_id="A", event_type="subscription_canceled",
         mrr=Decimal(0), currency="USD", plan=""),
], cols)
from pulse_kpi.cli import app
app(["mrr", "--grain", "quarter", "--from", "{Y}-01", "--to", "{Y}-06", "--format", "csv"])
"""
    env = {**os.environ, "PULSE_DATA_DIR": str(tmp_path / "data")}
    env.pop("PULSE_CLICKHOUSE_URL", None)
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.stdout.splitlines() == [
        "period,new,expansion,contraction,churn,reactivation,net_new,ending_mrr",
        f"{Y}-Q1,100.00,0.00,0.00,-100.00,0.00,0.00,0.00",
        f"{Y}-Q2,0.00,0.00,0.00,0.00,0.00,0.00,0.00",
    ], done.stderr


def test_recompute_backfills_from_raw_tables(cli_env: None, embedded_store: Store) -> None:
    y = 2002
    day = dt.date(y, 1, 15)
    embedded_store.insert("spend", [
        {"event_id": "rc-1", "date": day, "channel": "email", "campaign_id": "rc",
         "amount": Decimal(40), "currency": "USD", "impressions": 0, "clicks": 0}],
        ["event_id", "date", "channel", "campaign_id", "amount", "currency", "impressions",
         "clicks"])
    embedded_store.insert("subscriptions", [
        sub("rc-m1", "rc-A", dt.datetime(y, 1, 20, tzinfo=dt.UTC), 90, "subscription_started")],
        COLUMNS)
    result = CliRunner().invoke(app, ["recompute", "--from", f"{y}-01", "--to", f"{y}-01"])
    assert result.exit_code == 0, result.output
    rows = embedded_store.query(
        "SELECT kpi, dimension, dimension_value, period, value FROM kpi_values FINAL "
        "WHERE period_start >= {a:Date} AND period_start < {b:Date}",
        {"a": dt.date(y, 1, 1), "b": dt.date(y, 2, 1)})
    v = {(r["kpi"], r["dimension"], r["dimension_value"], r["period"]): r["value"] for r in rows}
    assert v[("spend", "all", "", f"{y}-01")] == 40
    assert v[("spend", "campaign", "rc", str(day))] == 40
    assert v[("mrr_new", "all", "", f"{y}-01")] == 90
    again = CliRunner().invoke(app, ["recompute", "--from", f"{y}-01", "--to", f"{y}-01"])
    assert "0 KPI values changed" in again.output  # idempotent
