"""The incrementality (marketing mix model) section of monthly and quarterly reports.

A published run's rows are written straight into the store (no MCMC fit here: pulse_mmm
tests the fit), then every format must show incremental ROI with its 90 % interval beside
attribution ROAS, the response curves (charts in HTML and PDF) and the optimiser's split
with its expected gain; a rejected or missing run shows n/a and why, never 0.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import re
import shutil
import subprocess
import sys
import uuid
from html import escape as html_escape
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from reporting_fixtures import insert_kpis, period_kpis

from pulse_reporting.domain.mmm import (
    MmmInputs,
    gain_text,
    mmm_recommendation,
    mmm_section,
    select_runs,
)
from pulse_reporting.domain.model import MmmAllocation, MmmRunInfo, MmmStatus
from pulse_reporting.domain.periods import parse_period
from pulse_reporting.generate import ReportResult, produce_report
from pulse_reporting.render.markdown import md_escape
from pulse_reporting.storage import ReportingStorage
from pulse_shared.store import Store

MONTH = parse_period("monthly", "2041-03")
QUARTER = parse_period("quarterly", "2041-Q1")
REJECTED_MONTH = parse_period("monthly", "2042-06")
UNCOVERED_MONTH = parse_period("monthly", "2044-05")
NOW = dt.datetime(2041, 7, 2, 6, tzinfo=dt.UTC)
FINISHED = dt.datetime(2041, 3, 26, 4, 30, tzinfo=dt.UTC)
EVIL = "x<script>alert(1)</script>|*"
REJECT_REASON = "max R-hat 1.21 > 1.05 (saturation_lam[paid_social]); 14 divergences"

RUN_COLUMNS = (
    "run_id", "version", "target", "grain", "date_from", "date_to", "periods", "channels",
    "status", "reason", "library", "parameters", "max_rhat", "min_ess", "divergences",
    "holdout_periods", "holdout_mape", "r_squared", "started_at", "finished_at",
)
CHANNEL_COLUMNS = (
    "run_id", "channel", "spend", "contribution", "contribution_lower", "contribution_upper",
    "roi", "roi_lower", "roi_upper", "marginal_roi", "attribution_roas",
)
CURVE_COLUMNS = ("run_id", "channel", "spend", "contribution", "lower", "upper")
ALLOCATION_COLUMNS = (
    "run_id", "budget", "periods", "channel", "current_spend", "recommended_spend",
    "current_contribution", "expected_contribution", "expected_contribution_lower",
    "expected_contribution_upper", "gain_lower", "gain_upper",
)
CONTRIBUTION_COLUMNS = (
    "run_id", "channel", "period_start", "spend", "contribution", "lower", "upper",
)

# (channel, spend, contribution, lower, upper, roi, roi_lower, roi_upper, marginal, roas)
CHANNELS: tuple[tuple[Any, ...], ...] = (
    ("paid_search", 40000.0, 96000.0, 60000.0, 132000.0, 2.4, 1.5, 3.3, 1.6, 1.1),
    ("paid_social", 30000.0, 18000.0, 3000.0, 36000.0, 0.6, 0.1, 1.2, 0.3, 1.9),
    ("display", 10000.0, 9000.0, 2000.0, 17000.0, 0.9, 0.2, 1.7, 0.7, None),
    (EVIL, 500.0, 0.0, 0.0, 0.0, None, None, None, None, None),
)
# (channel, current, recommended, current contribution, expected, lower, upper)
ALLOCATION: tuple[tuple[str, float, float, float, float, float, float], ...] = (
    ("paid_search", 12000.0, 16000.0, 28000.0, 35000.0, 30000.0, 41000.0),
    ("paid_social", 9000.0, 5000.0, 5400.0, 3500.0, 1000.0, 6000.0),
    ("display", 3000.0, 3000.0, 2700.0, 2700.0, 600.0, 5000.0),
)
BUDGET, HORIZON = 24000.0, 8
# The whole split's gain interval as the optimiser stored it (per posterior draw): narrower
# than the per-channel bounds summed (31,600 and 52,000 minus the current 36,100 would be
# -4,500 to +15,900), which the report must not show.
GAIN_LOWER, GAIN_UPPER = 1200.0, 9800.0
# expected 41,200 - current 36,100
GAIN_TEXT = "+$5,100 (90% interval +$1,200 to +$9,800)"


def _run(run_id: str, version: int, status: str, start: dt.date, end: dt.date,
         finished: dt.datetime, reason: str = "") -> dict[str, Any]:
    return {
        "run_id": run_id, "version": version, "target": "won_revenue", "grain": "week",
        "date_from": start, "date_to": end, "periods": (end - start).days // 7 + 1,
        "channels": [c[0] for c in CHANNELS], "status": status, "reason": reason,
        "library": "pymc-marketing 0.0 (test rows)", "parameters": "{}",
        "max_rhat": 1.004 if status == "published" else 1.21,
        "min_ess": 812.0 if status == "published" else 35.0,
        "divergences": 0 if status == "published" else 14, "holdout_periods": 4,
        "holdout_mape": 0.183, "r_squared": 0.71,
        "started_at": finished - dt.timedelta(minutes=2), "finished_at": finished,
    }


def write_published_run(store: Store, run_id: str, end: dt.date = dt.date(2041, 3, 25),
                        version: int = 2, finished: dt.datetime = FINISHED) -> None:
    start = dt.date(2040, 11, 5)
    store.insert("mmm_runs", [_run(run_id, version, "published", start, end, finished)],
                 RUN_COLUMNS)
    store.insert("mmm_channel_results",
                 [dict(zip(CHANNEL_COLUMNS, (run_id, *c), strict=True)) for c in CHANNELS],
                 CHANNEL_COLUMNS)
    curves = []
    for channel, _, _, _, _, roi, *_ in CHANNELS[:3]:
        for step in range(6):
            spend = step * 1000.0
            mean = 4000.0 * (roi or 0) * (1 - 0.8 ** step)
            curves.append({"run_id": run_id, "channel": channel, "spend": spend,
                           "contribution": mean, "lower": mean * 0.6, "upper": mean * 1.4})
    store.insert("mmm_response_curves", curves, CURVE_COLUMNS)
    rows = [dict(zip(ALLOCATION_COLUMNS, (run_id, BUDGET, HORIZON, *a, GAIN_LOWER, GAIN_UPPER),
                     strict=True))
            for a in ALLOCATION]
    # a later `pulse mmm optimize --budget 50000` stored beside the run's own split
    rows += [dict(zip(ALLOCATION_COLUMNS, (run_id, 50000.0, HORIZON, a[0], 16666.0, 16667.0,
                                           1.0, 2.0, 1.0, 3.0, -1.0, 5.0), strict=True))
             for a in ALLOCATION]
    store.insert("mmm_allocations", rows, ALLOCATION_COLUMNS)
    # the run's last 8 weeks spent $3,000 a week: its own split is of $24,000
    weeks = [end - dt.timedelta(days=7 * k) for k in range(10)]
    store.insert("mmm_contributions", [
        {"run_id": run_id, "channel": channel, "period_start": week, "spend": share * 3000.0,
         "contribution": 1.0, "lower": 0.0, "upper": 2.0}
        for week in weeks for channel, share in (("paid_search", 0.5), ("paid_social", 0.375),
                                                 ("display", 0.125))
    ] + [{"run_id": run_id, "channel": "baseline", "period_start": week, "spend": 0.0,
          "contribution": 9.0, "lower": 8.0, "upper": 10.0} for week in weeks],
        CONTRIBUTION_COLUMNS)


def write_rejected_run(store: Store, run_id: str, start: dt.date, end: dt.date,
                       version: int, finished: dt.datetime) -> None:
    store.insert("mmm_runs", [_run(run_id, version, "rejected", start, end, finished,
                                   REJECT_REASON)], RUN_COLUMNS)


@pytest.fixture(scope="module")
def reports(embedded_store: Store, tmp_path_factory: pytest.TempPathFactory
            ) -> dict[str, ReportResult]:
    store = embedded_store
    for period in (MONTH, MONTH.previous(), REJECTED_MONTH, UNCOVERED_MONTH):
        insert_kpis(store, period_kpis(period, 1.0))
    for period in (QUARTER, QUARTER.previous()):
        insert_kpis(store, period_kpis(period, 1.0))
    write_published_run(store, f"mmm-test-{uuid.uuid4().hex}")
    # a fit of 2042 that failed its diagnostics, and no published run covering 2042-06
    write_rejected_run(store, f"mmm-test-{uuid.uuid4().hex}", dt.date(2042, 1, 6),
                       dt.date(2042, 6, 22), 3, dt.datetime(2042, 6, 23, tzinfo=dt.UTC))
    out = tmp_path_factory.mktemp("mmm")
    return {
        name: produce_report(store, kind, period, formats="all", out_dir=out / name, now=NOW)
        for name, kind, period in (
            ("monthly", "monthly", MONTH), ("quarterly", "quarterly", QUARTER),
            ("rejected", "monthly", REJECTED_MONTH), ("uncovered", "monthly", UNCOVERED_MONTH),
            ("weekly", "weekly", parse_period("weekly", "2041-03-12")),
        )
    }


def _pdf_text(result: ReportResult) -> str:
    pdftotext = shutil.which("pdftotext")
    assert pdftotext, "pdftotext missing: apt-get install -y poppler-utils"
    return subprocess.run([pdftotext, "-layout", str(result.paths["pdf"]), "-"], check=True,
                          capture_output=True, text=True).stdout


def _csv(result: ReportResult, name: str) -> list[dict[str, str]]:
    with (result.paths["csv"] / f"{name}.csv").open() as fh:
        return list(csv.DictReader(fh))


@pytest.mark.parametrize("name", ["monthly", "quarterly"])
def test_markdown_shows_roi_beside_roas_and_the_split(
    reports: dict[str, ReportResult], name: str
) -> None:
    md = reports[name].paths["md"].read_text()
    section = md[md.index("## Incrementality (marketing mix model)"):md.index("## Recommendations")]
    assert "run v2 of 2041-03-26" in section and "2040-11-05 – 2041-03-25" in section
    assert "max R-hat 1.004" in section and "hold-out MAPE 18.3% over the last 4" in section
    search = next(line for line in section.splitlines() if line.startswith("| paid_search |"))
    # ROI 2.40x with its interval beside position-based ROAS 1.10x, marginal 1.60x
    assert "| 2.40x | 1.50x – 3.30x | 1.60x | 1.10x |" in search
    assert "$96,000 ($60,000 – $132,000)" in search
    display = next(line for line in section.splitlines() if line.startswith("| display |"))
    assert display.rstrip().endswith("| n/a |")  # no attribution ROAS: n/a, not 0
    assert "| paid_social | $9,000 | $5,000 | -$4,000 |" in section
    assert f"**{GAIN_TEXT}**" in section and "8 weeks" in section
    # the channel name from data is text, not markup
    assert "<script>" not in md and r"x\<script\>alert(1)\</script\>\|\*" in md


def test_html_has_the_section_charts_and_escapes(reports: dict[str, ReportResult]) -> None:
    html = reports["monthly"].paths["html"].read_text()
    start = html.index('<section id="mmm">')
    section = html[start:html.index("</section>", start)]
    assert "Incrementality (marketing mix model)" in section
    assert section.count("<svg") == 2  # ROI intervals and response curves
    assert "Incremental ROI by channel (90% interval) vs attribution ROAS" in section
    assert "Response curves: contribution per week" in section
    assert "2.40x" in section and "1.50x – 3.30x" in section and GAIN_TEXT in section
    assert "<script>" not in html and "x&lt;script&gt;alert(1)&lt;/script&gt;" in html
    # every inline chart clips to its own rectangle (a shared id would crop the taller ones)
    clips = re.findall(r'<clipPath id="([^"]+)"', html)
    assert len(clips) == len(set(clips)) == html.count("<svg")


def test_pdf_has_the_section_and_its_charts(reports: dict[str, ReportResult]) -> None:
    text = _pdf_text(reports["quarterly"])
    assert "Incrementality (marketing mix model)" in text
    # chart titles are drawn text of the vector charts
    assert "Incremental ROI by channel (90% interval) vs attribution ROAS" in text
    assert "Response curves: contribution per week" in text
    assert "1.50x – 3.30x" in text and GAIN_TEXT in " ".join(text.split())
    assert "x<script>alert(1)</script>|*" in text  # literal text, no markup


def test_json_and_csv_carry_the_run_numbers(reports: dict[str, ReportResult]) -> None:
    result = reports["monthly"]
    data = json.loads(result.paths["json"].read_text())
    mmm = data["mmm"]
    assert mmm["status"] == "current" and mmm["run"]["version"] == 2
    search = next(c for c in mmm["channels"] if c["channel"] == "paid_search")
    assert (search["roi"], search["roi_lower"], search["roi_upper"]) == (2.4, 1.5, 3.3)
    assert search["attribution_roas"] == 1.1
    # the run's own split ($24,000 = its last 8 weeks' spend), not the later $50,000 one
    assert mmm["allocation_budget"] == BUDGET and mmm["allocation_periods"] == HORIZON
    assert mmm["expected_gain"] == pytest.approx(5100.0)
    assert (mmm["expected_gain_lower"], mmm["expected_gain_upper"]) == pytest.approx(
        (GAIN_LOWER, GAIN_UPPER))
    curve = next(c for c in mmm["curves"] if c["channel"] == "paid_search")
    # current and recommended spend per week marked on the curve
    assert (curve["current_spend"], curve["recommended_spend"]) == (1500.0, 2000.0)
    roi = {r["channel"]: r for r in _csv(result, "mmm_roi")}
    assert float(roi["paid_social"]["roi_lower"]) == 0.1
    assert roi["display"]["attribution_roas"] == ""  # missing, not 0
    assert roi[EVIL]["roi"] == ""
    (run,) = _csv(result, "mmm_run")
    assert run["status"] == "current" and run["version"] == "2"
    assert float(run["expected_gain"]) == pytest.approx(5100.0)
    assert len(_csv(result, "mmm_response_curves")) == 18
    assert {r["channel"] for r in _csv(result, "mmm_allocation")} == {
        "paid_search", "paid_social", "display"}


def test_recommendation_carries_the_mmm_evidence(reports: dict[str, ReportResult]) -> None:
    result = reports["monthly"]
    shifts = [r for r in result.report.recommendations if r.action == "shift_budget"]
    assert len(shifts) == 1  # the model's shift replaces attribution's
    (shift,) = shifts
    assert (shift.channel, shift.to_channel, shift.amount) == ("paid_social", "paid_search",
                                                               4000.0)
    assert shift.evidence == "Marketing mix model run v2 of 2041-03-26"
    assert GAIN_TEXT in shift.reason and "over the next 8 weeks" in shift.reason
    assert "MMM ROI 0.60x, 90% 0.10x – 1.20x" in shift.reason
    assert shift.confidence == "high"  # the whole split's interval excludes a loss
    assert shift.numbers["expected_gain_lower"] == pytest.approx(GAIN_LOWER)
    md = result.paths["md"].read_text()
    assert "evidence: Marketing mix model run v2 of 2041-03-26" in md
    assert "Evidence: Marketing mix model run v2 of 2041-03-26" in (
        result.paths["html"].read_text())
    assert "evidence: Marketing mix model run v2 of 2041-03-26" in " ".join(
        _pdf_text(result).split())
    (row,) = [r for r in _csv(result, "recommendations") if r["action"] == "shift_budget"]
    assert row["evidence"] == shift.evidence


def test_rejected_run_shows_na_and_its_reason(reports: dict[str, ReportResult]) -> None:
    result = reports["rejected"]
    expected = "was rejected: " + REJECT_REASON
    assert result.report.mmm is not None
    assert result.report.mmm.status == MmmStatus.REJECTED
    md = result.paths["md"].read_text()
    section = md[md.index("## Incrementality"):md.index("## Recommendations")]
    assert "(n/a)" in section and "run v3 of 2042-06-23" in section
    assert md_escape(expected) in section and "$0" not in section
    html = result.paths["html"].read_text()
    start = html.index('<section id="mmm">')
    html_section = html[start:html.index("</section>", start)]
    assert html_escape(expected, quote=False) in html_section and "<svg" not in html_section
    assert expected in " ".join(_pdf_text(result).split())
    data = json.loads(result.paths["json"].read_text())["mmm"]
    assert data["status"] == "rejected" and data["run"] is None and data["channels"] == []
    assert data["rejected"]["reason"] == REJECT_REASON
    (run,) = _csv(result, "mmm_run")
    assert run["status"] == "rejected" and run["rejected_reason"] == REJECT_REASON
    assert _csv(result, "mmm_roi") == []
    assert not any(r.evidence for r in result.report.recommendations)


def test_period_without_a_covering_run_says_so(reports: dict[str, ReportResult]) -> None:
    result = reports["uncovered"]
    assert result.report.mmm is not None and result.report.mmm.status == MmmStatus.NONE
    md = result.paths["md"].read_text()
    section = md[md.index("## Incrementality"):md.index("## Recommendations")]
    assert "No incrementality results for 2044-05 (n/a)" in section
    assert "not this period" in section


def test_weekly_report_has_no_mmm_section(reports: dict[str, ReportResult]) -> None:
    result = reports["weekly"]
    assert result.report.mmm is None
    assert "Incrementality" not in result.paths["md"].read_text()
    assert not (result.paths["csv"] / "mmm_run.csv").exists()


def test_storage_reads_the_shown_run_on_both_backends(any_store: Store) -> None:
    run_id = f"mmm-test-{uuid.uuid4().hex}"
    period = parse_period("monthly", "2045-02")
    end = dt.date(2045, 2, 20)
    write_published_run(any_store, run_id, end=end, version=7,
                        finished=dt.datetime(2045, 2, 21, tzinfo=dt.UTC))
    later = f"mmm-test-{uuid.uuid4().hex}"
    write_rejected_run(any_store, later, dt.date(2044, 10, 1), end, 8,
                       dt.datetime(2045, 2, 22, tzinfo=dt.UTC))
    inputs = ReportingStorage(any_store).mmm_inputs(period)
    section = mmm_section(period, inputs.runs, inputs.channels, inputs.curves,
                          inputs.allocation, inputs.allocation_budget, inputs.allocation_periods)
    assert section.status == MmmStatus.CURRENT and section.run is not None
    assert section.run.run_id == run_id and section.run.channels[-1] == EVIL
    assert section.rejected is not None and section.rejected.run_id == later
    assert "A later fit (run v8 of 2045-02-22) was rejected" in section.statement
    by_channel = {c.channel: c for c in section.channels}
    assert by_channel["display"].attribution_roas is None
    assert by_channel[EVIL].roi is None
    assert inputs.allocation_budget == BUDGET
    assert sorted(inputs.curves) == ["display", "paid_search", "paid_social"]
    assert section.expected_gain == pytest.approx(5100.0)


def _info(run_id: str, status: str, start: dt.date, end: dt.date, finished: dt.datetime,
          target: str = "won_revenue", version: int = 1) -> MmmRunInfo:
    return MmmRunInfo(run_id=run_id, version=version, target=target, grain="week",
                      date_from=start, date_to=end, periods=20, status=status,
                      reason="too few effective samples" if status == "rejected" else "",
                      finished_at=finished)


def test_run_selection_rules() -> None:
    march = parse_period("monthly", "2041-03")
    t = dt.datetime(2041, 4, 1, tzinfo=dt.UTC)
    old = _info("old", "published", dt.date(2040, 6, 1), dt.date(2041, 1, 31), t)
    ends_near = _info("near", "published", dt.date(2040, 9, 1), dt.date(2041, 3, 10),
                      t + dt.timedelta(days=1))
    mrr = _info("mrr", "published", dt.date(2040, 9, 1), dt.date(2041, 3, 31),
                t + dt.timedelta(days=2), target="new_mrr")
    # a run ending more than a month before the period's end does not cover it
    assert select_runs([old], march) == (None, None)
    # the default target is preferred to a newer run of another target
    assert select_runs([old, ends_near, mrr], march) == (ends_near, None)
    assert select_runs([mrr], march) == (mrr, None)
    failed = _info("failed", "rejected", dt.date(2040, 9, 1), dt.date(2041, 3, 31),
                   t + dt.timedelta(days=3))
    assert select_runs([ends_near, failed], march) == (ends_near, failed)
    # an older failure behind a newer published run is not mentioned
    assert select_runs([failed.model_copy(update={"finished_at": t}), ends_near],
                       march)[1] is None
    never = mmm_section(march, [])
    assert never.status == MmmStatus.NONE and "no marketing mix model has been fitted" in (
        never.statement)
    assert mmm_recommendation(never) is None


def test_no_shift_when_the_split_gains_nothing() -> None:
    march = parse_period("monthly", "2041-03")
    run = _info("r", "published", dt.date(2040, 9, 1), dt.date(2041, 3, 31),
                dt.datetime(2041, 4, 1, tzinfo=dt.UTC))
    inputs = MmmInputs(runs=[run])
    section = mmm_section(march, inputs.runs)
    assert section.status == MmmStatus.CURRENT and section.expected_gain is None
    assert mmm_recommendation(section) is None  # no allocation: no MMM advice


def _allocation(rows: list[tuple[str, float, float, float, float, float, float]],
                gain: tuple[float | None, float | None] = (None, None),
                ) -> list[MmmAllocation]:
    return [MmmAllocation(channel=c, current_spend=cur, recommended_spend=rec,
                          current_contribution=cc, expected_contribution=e,
                          expected_contribution_lower=lo, expected_contribution_upper=hi,
                          gain_lower=gain[0], gain_upper=gain[1])
            for c, cur, rec, cc, e, lo, hi in rows]


SPLIT = [("a", 1000.0, 600.0, 500.0, 350.0, 300.0, 400.0),
         ("b", 1000.0, 1400.0, 900.0, 1300.0, 1100.0, 1500.0)]


def test_shift_confidence_follows_the_gain_interval() -> None:
    march = parse_period("monthly", "2041-03")
    run = _info("r", "published", dt.date(2040, 9, 1), dt.date(2041, 3, 31),
                dt.datetime(2041, 4, 1, tzinfo=dt.UTC))
    unsure = _allocation(SPLIT, gain=(-20.0, 480.0))
    section = mmm_section(march, [run], allocation=unsure, allocation_budget=2000.0,
                          allocation_periods=8)
    # +$250 expected (means add up: 1,650 - 1,400); the interval is the stored whole-split
    # one, not the per-channel bounds summed (which would say 0 to +$500)
    assert (section.expected_gain, section.expected_gain_lower,
            section.expected_gain_upper) == pytest.approx((250.0, -20.0, 480.0))
    rec = mmm_recommendation(section)
    assert rec is not None and (rec.channel, rec.to_channel, rec.amount) == ("a", "b", 400.0)
    assert rec.confidence == "low"  # a loss is inside the interval
    sure = _allocation(SPLIT, gain=(40.0, 460.0))
    rec = mmm_recommendation(mmm_section(march, [run], allocation=sure,
                                         allocation_budget=2000.0, allocation_periods=8))
    assert rec is not None and rec.confidence == "high"
    # an allocation stored before the interval was: the gain, no made-up interval, low
    legacy = mmm_section(march, [run], allocation=_allocation(SPLIT),
                         allocation_budget=2000.0, allocation_periods=8)
    assert legacy.expected_gain == pytest.approx(250.0) and legacy.expected_gain_lower is None
    assert "interval not stored" in gain_text(legacy)
    rec = mmm_recommendation(legacy)
    assert rec is not None and rec.confidence == "low"
    tiny = _allocation([("a", 1000.0, 990.0, 500.0, 496.0, 450.0, 550.0),
                        ("b", 1000.0, 1010.0, 900.0, 910.0, 850.0, 950.0)])
    # moving 0.5 % of the budget is not advice worth giving
    assert mmm_recommendation(mmm_section(march, [run], allocation=tiny,
                                          allocation_budget=2000.0,
                                          allocation_periods=8)) is None
