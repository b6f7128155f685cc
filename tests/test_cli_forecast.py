"""``pulse forecast`` end to end on the embedded store, with data built relative to today."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

PULSE = str(Path(sys.executable).parent / "pulse")
pytestmark = pytest.mark.timeout(300)

SEED = textwrap.dedent("""
    import datetime as dt, math, sys
    from pulse_shared.schema.migrations import migrate
    from pulse_shared.settings import common_settings
    from pulse_shared.store import open_store
    from pulse_shared.store.embedded import close_all_embedded

    days = int(sys.argv[1])
    today = dt.date.today()
    store = open_store(common_settings())
    migrate(store)
    rows = []
    for i in range(days):
        day = today - dt.timedelta(days=days - i)
        for member, scale in (("", 1.0), ("paid_search", 0.6)):
            value = scale * (1000 + 5 * i + 200 * math.sin(2 * math.pi * i / 7) + (i * 37) % 23)
            rows.append({"kpi": "spend", "grain": "day", "period": day.isoformat(),
                         "period_start": day, "dimension": "channel" if member else "all",
                         "dimension_value": member, "value": value, "unit": "usd",
                         "computed_at": dt.datetime.now(dt.UTC)})
    store.insert("kpi_values", rows, list(rows[0]))
    store.close()
    close_all_embedded()
""")


def _env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("PULSE_KAFKA_BOOTSTRAP", "PULSE_CLICKHOUSE_URL")}
    env["PULSE_DATA_DIR"] = str(tmp_path / "pulse-data")
    return env


def run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PULSE, *args], env=_env(tmp_path), cwd=tmp_path,
                          capture_output=True, text=True, timeout=240)


def seed(tmp_path: Path, days: int) -> None:
    subprocess.run([sys.executable, "-c", SEED, str(days)], env=_env(tmp_path), check=True,
                   timeout=240, capture_output=True)


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("forecast")
    seed(path, 84)
    return path


def test_forecast_prints_one_row_per_future_day(seeded: Path) -> None:
    result = run(seeded, "forecast", "spend", "--horizon", "7", "--format", "csv",
                 "--dimension", "channel=paid_search")
    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert list(rows[0]) == ["date", "kpi", "dimension", "dimension_value", "yhat", "lower",
                             "upper", "level"]
    today = dt.date.today()
    assert [r["date"] for r in rows] == [
        (today + dt.timedelta(days=i)).isoformat() for i in range(7)
    ]
    assert {(r["kpi"], r["dimension"], r["dimension_value"], r["level"]) for r in rows} == {
        ("spend", "channel", "paid_search", "80")
    }
    for r in rows:
        assert float(r["lower"]) <= float(r["yhat"]) <= float(r["upper"])
        assert 300 < float(r["yhat"]) < 1500  # paid_search is 0.6 of ~1,400/day


def test_forecast_json_to_file_and_backtest(seeded: Path) -> None:
    out = seeded / "f.json"
    result = run(seeded, "forecast", "spend", "--format", "json", "--horizon", "14",
                 "--level", "95", "--output", str(out))
    assert result.returncode == 0, result.stderr
    data = json.loads(out.read_text())
    assert len(data) == 14 and {d["level"] for d in data} == {95}
    bt = run(seeded, "forecast", "spend", "--horizon", "7", "--backtest", "--format", "json")
    assert bt.returncode == 0, bt.stderr
    score = json.loads(bt.stdout)[0]
    assert score["horizon"] == 7 and score["origins"] >= 1
    assert 0.0 <= score["coverage_80"] <= 1.0 and score["seasonal_naive_mape"] != "inf"


def test_unknown_kpi_and_short_history_are_one_line_errors(tmp_path: Path) -> None:
    unknown = run(tmp_path, "forecast", "spnd")
    assert unknown.returncode == 2
    assert "unknown KPI 'spnd'" in unknown.stderr and "spend" in unknown.stderr
    assert len(unknown.stderr.strip().splitlines()) == 1
    seed(tmp_path, 5)
    short = run(tmp_path, "forecast", "spend")
    assert short.returncode == 1
    assert "at least 14" in short.stderr and "Traceback" not in short.stderr
    assert len(short.stderr.strip().splitlines()) == 1
