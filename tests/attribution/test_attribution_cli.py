"""``pulse attribution paths`` on ChannelAttribution-layout files."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pulse_attribution.cli import app

runner = CliRunner()

FILE = """path;total_conversions;total_conversion_value;total_null
a > b;1;100;0
c > b;0;0;1
a;2;50;1
"""


def rows(text: str) -> dict[str, dict[str, float]]:
    return {
        r["channel_name"]: {k: float(v) for k, v in r.items() if k != "channel_name"}
        for r in csv.DictReader(io.StringIO(text))
    }


@pytest.fixture
def path_file(tmp_path: Path) -> Path:
    target = tmp_path / "paths.csv"
    target.write_text(FILE)
    return target


def paths(*args: str) -> str:
    result = runner.invoke(app, ["paths", *args, "--format", "csv"])
    assert result.exit_code == 0, result.output
    return result.output


def test_first_last_linear(path_file: Path) -> None:
    first = paths(str(path_file), "--model", "first")
    assert first.splitlines()[0] == "channel_name,total_conversions,total_conversion_value"
    assert rows(first) == {
        "a": {"total_conversions": 3.0, "total_conversion_value": 150.0},
        "b": {"total_conversions": 0.0, "total_conversion_value": 0.0},
        "c": {"total_conversions": 0.0, "total_conversion_value": 0.0},
    }
    last = rows(paths(str(path_file), "--model", "last"))
    assert last["b"] == {"total_conversions": 1.0, "total_conversion_value": 100.0}
    linear = rows(paths(str(path_file), "--model", "linear"))
    assert linear["a"] == {"total_conversions": 2.5, "total_conversion_value": 100.0}


def test_paths_json_has_numbers_and_table_is_for_people(path_file: Path) -> None:
    result = runner.invoke(app, ["paths", str(path_file), "--model", "linear", "--format",
                                 "json"])
    assert result.exit_code == 0, result.output
    by_channel = {r["channel_name"]: r for r in json.loads(result.output)}
    assert by_channel["a"] == {"channel_name": "a", "total_conversions": 2.5,
                               "total_conversion_value": 100.0}
    table = runner.invoke(app, ["paths", str(path_file), "--model", "linear"])
    assert table.exit_code == 0, table.output
    assert "channel_name" in table.output and "," not in table.output.splitlines()[-2]
    [row_a] = [line for line in table.output.splitlines() if " a " in line]
    assert "2.5" in row_a and "100" in row_a


def test_markov_with_output_file_and_comma_layout(tmp_path: Path) -> None:
    source = tmp_path / "comma.csv"
    source.write_text(FILE.replace(";", ","))
    out = tmp_path / "out.csv"
    result = runner.invoke(
        app, ["paths", str(source), "--model", "markov", "--order", "1", "--output", str(out)]
    )
    assert result.exit_code == 0, result.output
    got = rows(out.read_text())
    assert out.read_text().splitlines()[0] == (
        "channel_name,total_conversions,total_conversion_value,removal_effect"
    )
    assert sum(r["total_conversions"] for r in got.values()) == pytest.approx(3.0)
    assert sum(r["total_conversion_value"] for r in got.values()) == pytest.approx(150.0)
    assert all(r["removal_effect"] >= 0 for r in got.values())
    # Hand-worked: P(conv) = 0.8·(0.5 + 0.25·0.5) + 0.2·0.5 = 0.6; without a 0.1,
    # without b 0.4, without c 0.5.
    assert {k: r["removal_effect"] for k, r in got.items()} == pytest.approx(
        {"a": 5 / 6, "b": 1 / 3, "c": 1 / 6}
    )
    assert got["a"]["total_conversions"] == pytest.approx(3 * (5 / 6) / (4 / 3))


def test_custom_separator_and_order_2(tmp_path: Path) -> None:
    source = tmp_path / "pipe.csv"
    source.write_text("path,total_conversions,total_null\na|b,1,0\nc|b,0,1\n")
    got = rows(paths(str(source), "--model", "markov", "--order", "2", "--sep", "|"))
    assert got["a"]["removal_effect"] == pytest.approx(1.0)
    assert got["c"]["removal_effect"] == pytest.approx(0.0)
    assert got["a"]["total_conversions"] == pytest.approx(0.5)


def test_models_that_need_more_than_paths_are_refused(path_file: Path) -> None:
    result = runner.invoke(app, ["paths", str(path_file), "--model", "w_shaped"])
    assert result.exit_code != 0
    assert "milestones" in result.output
    bad = runner.invoke(app, ["paths", str(path_file), "--model", "nope"])
    assert bad.exit_code != 0


def test_shapley_on_paths(path_file: Path) -> None:
    got = rows(paths(str(path_file), "--model", "shapley"))
    # v(S) = conversions of journeys inside S: a alone 2, {a,b} 1 → a 2.5, b 0.5.
    assert got["a"]["shapley_value"] == pytest.approx(2.5)
    assert got["b"]["shapley_value"] == pytest.approx(0.5)
    assert got["c"]["shapley_value"] == pytest.approx(0.0)
