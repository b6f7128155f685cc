"""``pulse alerts list | silence list | test`` print rows as table, csv or json."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import uuid
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pulse_alerts import cli, storage
from pulse_alerts.domain.model import AlertStatus, Status
from pulse_shared.events import Severity
from pulse_shared.store import Store

runner = CliRunner()
FIRED = dt.datetime(2026, 11, 20, 10, 0, tzinfo=dt.UTC)


@pytest.fixture
def store(embedded_store: Store, monkeypatch: pytest.MonkeyPatch) -> Store:
    monkeypatch.setattr(cli, "_store", lambda: embedded_store)
    return embedded_store


def test_alerts_list_csv_and_json_carry_the_same_alert(store: Store) -> None:
    rule = f"cli_{uuid.uuid4().hex[:8]}"
    storage.save_states(store, [AlertStatus(
        fingerprint=uuid.uuid4().hex, rule=rule, status=Status.FIRING,
        severity=Severity.CRITICAL, kpi="spend",
        labels={"dimension_value": "email"}, annotations={"period": "2026-11-20",
                                                         "summary": "spend too high"},
        value=20.5, threshold=10.0, fired_at=FIRED, updated_at=FIRED,
    )])
    as_json = runner.invoke(cli.app, ["list", "--state", "firing", "--format", "json"])
    assert as_json.exit_code == 0, as_json.output
    [mine] = [r for r in json.loads(as_json.stdout) if r["rule"] == rule]
    assert (mine["state"], mine["severity"], mine["scope"], mine["period"]) == (
        "firing", "critical", "email", "2026-11-20")
    assert mine["value"] == 20.5 and mine["threshold"] == 10.0  # numbers, not strings
    assert mine["since"] == FIRED.isoformat()
    as_csv = runner.invoke(cli.app, ["list", "--state", "firing", "--format", "csv"])
    assert as_csv.exit_code == 0, as_csv.output
    rows = [r for r in csv.DictReader(io.StringIO(as_csv.stdout)) if r["rule"] == rule]
    assert [(r["state"], r["scope"], r["value"], r["summary"]) for r in rows] == [
        ("firing", "email", "20.5", "spend too high")]
    bad = runner.invoke(cli.app, ["list", "--format", "xml"])
    assert bad.exit_code == 2


def test_silence_list_formats(store: Store) -> None:
    matcher = f"alertname=cli_{uuid.uuid4().hex[:8]}"
    added = runner.invoke(cli.app, ["silence", "add", matcher, "--for", "1h",
                                    "--comment", "deploy", "--by", "ops"])
    assert added.exit_code == 0, added.output
    silence_id = added.output.split()[1]
    listed = runner.invoke(cli.app, ["silence", "list", "--format", "json"])
    assert listed.exit_code == 0, listed.output
    [mine] = [s for s in json.loads(listed.stdout) if s["silence_id"] == silence_id]
    name, _, value = matcher.partition("=")
    assert mine["matchers"] == {name: value}
    assert (mine["state"], mine["created_by"], mine["comment"]) == ("active", "ops", "deploy")
    as_csv = runner.invoke(cli.app, ["silence", "list", "--format", "csv"])
    assert f"{silence_id},active," in as_csv.stdout
    assert runner.invoke(cli.app, ["silence", "expire", silence_id]).exit_code == 0
    after = runner.invoke(cli.app, ["silence", "list", "--format", "json"])
    assert silence_id not in {s["silence_id"] for s in json.loads(after.stdout)}


def test_backtest_json_lists_each_notification(store: Store, tmp_path: Path) -> None:
    channel = f"cli_bt_{uuid.uuid4().hex[:8]}"
    start = dt.date(2026, 10, 1)
    store.insert("kpi_values", [
        {"kpi": "spend", "grain": "day", "period": (start + dt.timedelta(days=i)).isoformat(),
         "period_start": start + dt.timedelta(days=i), "dimension": "channel",
         "dimension_value": channel, "value": value, "unit": "USD"}
        for i, value in enumerate([1.0, 1.0, 50.0, 60.0, 1.0])
    ], ["kpi", "grain", "period", "period_start", "dimension", "dimension_value", "value",
        "unit"])
    rules = tmp_path / "rules.yaml"
    rules.write_text(f"rules:\n  - {{name: {channel}_hi, type: threshold, kpi: spend, "
                     f"grain: day, channel: {channel}, op: above, threshold: 10}}\n")
    args = ["test", f"{channel}_hi", "--from", "2026-10-01", "--to", "2026-10-05",
            "--rules", str(rules)]
    result = runner.invoke(cli.app, [*args, "--format", "json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert [r["kind"] for r in rows][:1] == ["firing"] and rows[-1]["kind"] == "resolved"
    assert rows[0]["value"] == 50.0 and rows[0]["threshold"] == 10.0
    assert "fired 1x" in result.stderr  # the summary leaves stdout to the data
    table = runner.invoke(cli.app, args)
    assert table.exit_code == 0 and "fired 1x" in table.stdout
