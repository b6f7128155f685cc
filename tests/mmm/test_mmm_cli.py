"""``pulse mmm`` on the embedded store (no server): roi and optimize read a run written
through pulse_mmm.storage from hand-made rows (no sampler); fit refuses too little history
in one line; bad options name themselves.

Runs are written under targets no other test fits (kpi:sqls), so "the latest published
run of the target" is this module's."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from mmm_runs_support import published_run
from typer.testing import CliRunner

from pulse_cli.main import app
from pulse_mmm.cli import OPTIMIZE_COLUMNS, ROI_COLUMNS
from pulse_mmm.storage import MmmStorage
from pulse_shared.settings import common_settings
from pulse_shared.store import Store

runner = CliRunner()
TARGET = "kpi:sqls"


@pytest.fixture
def cli_env(embedded_data_dir: Path, embedded_store: Store,
            monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The CLI opens the session's embedded data dir (one chDB dir per process)."""
    monkeypatch.setenv("PULSE_DATA_DIR", str(embedded_data_dir))
    monkeypatch.delenv("PULSE_CLICKHOUSE_URL", raising=False)
    for name in ("PULSE_MMM_TARGET", "PULSE_MMM_GRAIN", "PULSE_MMM_HOLDOUT_PERIODS"):
        monkeypatch.delenv(name, raising=False)
    common_settings.cache_clear()
    yield
    common_settings.cache_clear()


@pytest.fixture
def stored_run(cli_env: None, embedded_store: Store) -> str:
    """A published run of TARGET finishing later than any other of the target."""
    latest = MmmStorage(embedded_store).latest_published_run(TARGET)
    finished = max(dt.datetime(2017, 6, 1, tzinfo=dt.UTC),
                   latest.finished_at + dt.timedelta(seconds=1) if latest else
                   dt.datetime(2017, 6, 1, tzinfo=dt.UTC))
    result = published_run(f"cli-{uuid.uuid4().hex[:8]}", TARGET, finished)
    MmmStorage(embedded_store).write_result(result)
    return result.run.run_id



def test_roi_csv_and_json_have_exactly_the_columns(stored_run: str) -> None:
    result = runner.invoke(app, ["mmm", "roi", "--target", TARGET, "--format", "csv"])
    assert result.exit_code == 0, result.output
    rows = list(csv.reader(io.StringIO(result.stdout)))
    assert rows[0] == list(ROI_COLUMNS) == [
        "channel", "spend", "contribution", "roi", "roi_lower", "roi_upper", "marginal_roi"]
    assert rows[1:] == [
        ["paid_search", "450", "900", "2", "1.5", "2.5", "0.75"],
        ["paid_social", "500", "250", "0.5", "0.2", "0.8", ""],
    ]
    as_json = runner.invoke(app, ["mmm", "roi", "--target", TARGET, "--format", "json"])
    assert as_json.exit_code == 0, as_json.output
    assert json.loads(as_json.stdout)[1] == {
        "channel": "paid_social", "spend": 500.0, "contribution": 250.0, "roi": 0.5,
        "roi_lower": 0.2, "roi_upper": 0.8, "marginal_roi": None}
    table = runner.invoke(app, ["mmm", "roi", "--target", TARGET])
    assert table.exit_code == 0 and stored_run in table.stdout and "paid_search" in table.stdout


def test_roi_writes_csv_to_output(stored_run: str, tmp_path: Path) -> None:
    out = tmp_path / "roi.csv"
    result = runner.invoke(app, ["mmm", "roi", "--target", TARGET, "--output", str(out)])
    assert result.exit_code == 0, result.output
    assert out.read_text().splitlines()[0] == ",".join(ROI_COLUMNS)


def test_without_a_published_run_roi_and_optimize_exit_1_in_one_line(cli_env: None) -> None:
    for args in (["roi", "--target", "kpi:opportunities"],
                 ["optimize", "--budget", "100", "--weeks", "4", "--target",
                  "kpi:opportunities"]):
        result = runner.invoke(app, ["mmm", *args])
        assert result.exit_code == 1, result.output
        assert result.stderr.strip().splitlines() == [
            "error: no published MMM run of kpi:opportunities yet: run `pulse mmm fit` first"]


def test_optimize_csv_json_and_table(stored_run: str) -> None:
    base = ["mmm", "optimize", "--budget", "1000", "--weeks", "4", "--target", TARGET]
    result = runner.invoke(app, [*base, "--format", "csv"])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert result.stdout.splitlines()[0] == ",".join(OPTIMIZE_COLUMNS) == (
        "channel,current_spend,recommended_spend,expected_contribution,"
        "expected_contribution_lower,expected_contribution_upper")
    assert [r["channel"] for r in rows] == ["paid_search", "paid_social"]
    # The current mix: the run's last 8 periods' mean spend (55 and 50) scaled to 1000.
    current = {r["channel"]: float(r["current_spend"]) for r in rows}
    assert current == pytest.approx({"paid_search": 1000 * 55 / 105,
                                     "paid_social": 1000 * 50 / 105})
    assert sum(float(r["recommended_spend"]) for r in rows) == pytest.approx(1000, rel=1e-6)
    for r in rows:  # every draw is the same: the interval is a point
        assert float(r["expected_contribution_lower"]) == pytest.approx(
            float(r["expected_contribution"])) == pytest.approx(
            float(r["expected_contribution_upper"]))

    as_json = runner.invoke(app, [*base, "--format", "json"])
    assert as_json.exit_code == 0, as_json.output
    document = json.loads(as_json.stdout)
    assert [list(r) for r in document["allocations"]] == [list(OPTIMIZE_COLUMNS)] * 2
    gain = document["expected_gain"]
    assert set(gain) == {"mean", "lower", "upper"}
    assert gain["mean"] >= 0 and gain["lower"] == pytest.approx(gain["upper"])
    assert document["run_id"] == stored_run

    table = runner.invoke(app, base)
    assert table.exit_code == 0, table.output
    assert table.stdout.strip().splitlines()[-1].startswith(
        "Expected gain over the current mix: +")


def test_optimize_honours_a_minimum(stored_run: str) -> None:
    result = runner.invoke(app, ["mmm", "optimize", "--budget", "1000", "--weeks", "4",
                                 "--target", TARGET, "--min", "paid_social=900",
                                 "--format", "json"])
    assert result.exit_code == 0, result.output
    spend = {r["channel"]: r["recommended_spend"]
             for r in json.loads(result.stdout)["allocations"]}
    assert spend["paid_social"] >= 900 - 1e-6


@pytest.mark.parametrize(("option", "value"), [
    ("--min", "paid_search"), ("--min", "paid_search=lots"), ("--max", "=5"),
    ("--min", "paid_search=-1"), ("--max", "tv=100"),
])
def test_a_bad_bound_is_one_line_naming_the_option(stored_run: str, option: str,
                                                    value: str) -> None:
    result = runner.invoke(app, ["mmm", "optimize", "--budget", "1000", "--weeks", "4",
                                 "--target", TARGET, option, value])
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and option in lines[0], lines


def test_infeasible_bounds_exit_1_in_one_line(stored_run: str) -> None:
    result = runner.invoke(app, ["mmm", "optimize", "--budget", "1000", "--weeks", "4",
                                 "--target", TARGET, "--min", "paid_search=2000"])
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), lines


def test_fit_with_too_little_history_exits_1_in_one_line(
    cli_env: None, embedded_store: Store
) -> None:
    before = MmmStorage(embedded_store).next_version(TARGET, "week")
    result = runner.invoke(app, ["mmm", "fit", "--target", TARGET,
                                 "--from", "2017-01-02", "--to", "2017-03-26"])
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("error: too little history: need at least 26 weeks"), lines
    assert MmmStorage(embedded_store).next_version(TARGET, "week") == before  # nothing stored


@pytest.mark.parametrize(("args", "option"), [
    (["--target", "kpi:mrr"], "--target"),
    (["--grain", "month"], "--grain"),
    (["--from", "2017-13-01"], "--from"),
    (["--from", "2017-03-01", "--to", "2017-01-01"], "--to"),
])
def test_fit_usage_errors_name_the_option(cli_env: None, args: list[str], option: str) -> None:
    result = runner.invoke(app, ["mmm", "fit", *args])
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and option in lines[0], lines
