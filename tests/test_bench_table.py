"""The README's performance table is what ``python -m bench.table`` makes of the committed
results, and results are written so that it can be: figures with baseline, ratio and goal,
the machine and the commit; quick (smoke) runs never replace the figures of record."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.common import commit, figure, write_results
from bench.table import BEGIN, END, README, latest_results, render, replace_section


def test_readme_performance_table_is_generated_from_the_committed_results() -> None:
    readme = README.read_text()
    section = readme.split(BEGIN, 1)[1].split(END, 1)[0]
    assert section == "\n" + render(latest_results()) + "\n", (
        "README.md's performance table is stale: run .venv/bin/python -m bench.table")


def test_every_committed_result_has_its_machine_commit_and_figures() -> None:
    results = latest_results()
    assert {r["name"] for r in results} >= {"pipeline", "kpi_freshness", "reporting_monthly"}
    for result in results:
        assert result["quick"] is False, result["_file"]
        assert "machine" in result and "commit" in result, result["_file"]
        for f in result["figures"]:
            if f["value"] is not None and f["baseline"]:
                assert f["ratio"] == pytest.approx(f["value"] / f["baseline"], rel=1e-3)


def test_quick_runs_do_not_replace_the_full_run_figures(tmp_path: Path) -> None:
    full = [figure("report", 1.5, "s", baseline=0.5, baseline_is="one scan", goal="< 3 s",
                   met=True)]
    write_results("demo", {"size": "full"}, quick=False, figures=full, directory=tmp_path)
    write_results("demo", {"size": "tiny"}, quick=True,
                  figures=[figure("report", 9.0, "s", goal="< 3 s", met=False)],
                  directory=tmp_path)
    write_results("summary", {"runs": []}, quick=False, directory=tmp_path)

    latest = json.loads((tmp_path / "demo-latest.json").read_text())
    assert latest["size"] == "full" and latest["quick"] is False
    assert latest["figures"][0]["ratio"] == 3.0
    assert set(latest["commit"]) >= {"sha", "dirty"} and latest["machine"]["cpu_count"] >= 1
    assert json.loads((tmp_path / "demo-quick-latest.json").read_text())["quick"] is True
    # The table takes the full run only; the summary has no figures.
    assert [r["name"] for r in latest_results(tmp_path)] == ["demo"]
    table = render(latest_results(tmp_path))
    assert "| report | 1.50 s | 0.5 s: one scan | 3.00x | < 3 s | yes |" in table
    assert "9.00 s" not in table


def test_results_without_commit_or_machine_say_so(tmp_path: Path) -> None:
    (tmp_path / "old-latest.json").write_text(json.dumps({
        "name": "old", "written_at": None, "machine": None,
        "commit": {"sha": None, "dirty": None}, "quick": False,
        "figures": [figure("old figure", 2.0, "s")],
    }))
    row = render(latest_results(tmp_path)).splitlines()[-1]
    assert row.count("not recorded") == 3  # commit, date, machine


def test_commit_outside_a_git_checkout_is_unknown_not_an_error(tmp_path: Path) -> None:
    assert commit(tmp_path) == {"sha": None, "dirty": None}


def test_the_section_between_the_markers_is_replaced() -> None:
    readme = f"# Title\n\n{BEGIN}\nold\n{END}\n\nafter\n"
    assert replace_section(readme, "new") == f"# Title\n\n{BEGIN}\nnew\n{END}\n\nafter\n"
    with pytest.raises(ValueError):
        replace_section("no markers", "new")
