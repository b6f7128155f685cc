"""Report header (attribution model, partial-period banner), headline sources, alerts by
data period and per-channel forecasts: assembled from rows, checked in every format."""

from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from reporting_fixtures import period_kpis

from pulse_reporting.domain.assemble import ReportInputs, alert_in_period, assemble_report
from pulse_reporting.domain.model import AlertRecord, KpiValue, Report, TrendPoint
from pulse_reporting.domain.periods import parse_period
from pulse_reporting.render.exports import render_csv, render_json
from pulse_reporting.render.html import render_html
from pulse_reporting.render.markdown import render_markdown
from pulse_reporting.render.pdf import build_story
from pulse_shared import kpi_catalog
from pulse_shared.attribution_models import BESIDE_MODEL, BY_NAME, DEFAULT_MODEL

NOV = parse_period("monthly", "2026-11")
AFTER_NOV = dt.datetime(2026, 12, 3, 7, tzinfo=dt.UTC)  # November complete
IN_NOV = dt.datetime(2026, 11, 20, 7, tzinfo=dt.UTC)  # November still running


def _rows(extra: list[KpiValue] = ()) -> list[KpiValue]:  # type: ignore[assignment]
    rows = [
        KpiValue(**{k: v for k, v in r.items() if k not in ("period_start", "computed_at")})
        for r in period_kpis(NOV, 1.0)
    ]
    # the beside model's numbers (the KPI service writes every model suffixed)
    rows += [r.model_copy(update={"kpi": f"{r.kpi}__{BESIDE_MODEL}",
                                  "value": None if r.value is None else r.value / 2})
             for r in rows if r.kpi in ("roas", "attributed_revenue")]
    return rows + list(extra)


def _report(model: str = DEFAULT_MODEL, now: dt.datetime = AFTER_NOV, **kw: object) -> Report:
    return assemble_report(ReportInputs(period=NOV, model=model, kpis=_rows(), **kw), now)  # type: ignore[arg-type]


def _pdf_text(report: Report) -> str:
    """Paragraph texts of the PDF story (into KeepTogether groups and tables)."""
    def texts(item: object) -> list[str]:
        if isinstance(item, list | tuple):
            return [t for sub in item for t in texts(sub)]
        if isinstance(item, str):
            return [item]
        inner = getattr(item, "_content", None) or getattr(item, "_cellvalues", None)
        if inner is not None:
            return texts(inner)
        return [getattr(item, "text", "")]

    return "\n".join(texts(build_story(report, rendered=[])))


def _all_text(report: Report) -> dict[str, str]:
    return {
        "md": render_markdown(report),
        "html": render_html(report, with_charts=False),
        "pdf": _pdf_text(report),
    }


def test_header_states_the_default_model_why_and_last_touch_beside() -> None:
    report = _report()
    default = BY_NAME[DEFAULT_MODEL]
    assert report.meta.model == DEFAULT_MODEL == "position_based"
    for fmt, text in _all_text(report).items():
        assert default.label in text and default.summary in text, fmt
        assert "executive default, because" in text, fmt
        assert "Last touch is shown beside it" in text, fmt
    data = json.loads(render_json(report))["meta"]
    assert (data["model"], data["default_model"], data["beside_model"]) == (
        "position_based", "position_based", "last_touch")
    assert data["model_summary"] == default.summary and data["default_reason"]
    # headline: the default's ROAS and revenue with last touch's beside them
    tiles = {t.kpi: t for t in report.headline}
    assert (tiles["roas"].value, tiles["roas"].beside_value) == (4.0, 2.0)
    assert tiles["attributed_revenue"].beside_value == 20000.0
    assert tiles["roas"].beside_model == "last_touch"
    md = render_markdown(report)
    assert "| KPI | Value | Last touch | vs previous |" in md
    assert "| ROAS | 4.00x | 2.00x | n/a |" in md
    assert "| Spend | $10,000 |  | " in md  # not an attribution KPI: nothing beside
    assert 'class="beside" data-model="last_touch" data-value="2.0"' in render_html(
        report, with_charts=False)
    pdf_rows = [row for f in build_story(report, rendered=[])
                for row in getattr(f, "_cellvalues", [])]
    assert ["KPI", "Value", "Last touch", "vs previous", "vs year ago"] in pdf_rows
    assert any(row[:3] == ["ROAS", "4.00x", "2.00x"] for row in pdf_rows)
    assert tiles["spend"].beside_model is None  # not an attribution KPI


def test_other_model_header_names_it_and_the_executive_default() -> None:
    report = _report(model="linear")
    for fmt, text in _all_text(report).items():
        assert "Attribution model: Linear — Equal credit to every touch." in text, fmt
        assert "the executive default is Position-based (U-shaped)" in text, fmt
        assert "This is the executive default" not in text, fmt
    tiles = {t.kpi: t for t in report.headline}
    assert (tiles["roas__linear"].value, tiles["roas__linear"].beside_value) == (3.6, 2.0)
    last_touch = _report(model=BESIDE_MODEL)
    assert all(t.beside_model is None for t in last_touch.headline)  # nothing beside itself


def test_partial_period_banner_and_complete_flag() -> None:
    partial = _report(now=IN_NOV, coverage={"spend": (dt.date(2026, 1, 1), dt.date(2026, 11, 19))})
    assert partial.meta.complete is False
    assert partial.meta.data_as_of == dt.date(2026, 11, 19)
    banner = "Partial period — data to 2026-11-19; compare with care."
    for fmt, text in _all_text(partial).items():
        assert banner in text, fmt
    assert json.loads(render_json(partial))["meta"]["complete"] is False
    assert "complete,false" in render_csv(partial)["meta"]
    assert "data_as_of,2026-11-19" in render_csv(partial)["meta"]

    whole = _report(now=AFTER_NOV, coverage={"spend": (dt.date(2026, 1, 1), dt.date(2026, 12, 2))})
    assert whole.meta.complete is True and whole.meta.data_as_of == dt.date(2026, 11, 30)
    for fmt, text in _all_text(whole).items():
        assert "Partial period" not in text, fmt
    assert "complete,true" in render_csv(whole)["meta"]
    # the last day of the period is still running on the 30th itself
    assert _report(now=dt.datetime(2026, 11, 30, 23, tzinfo=dt.UTC)).meta.complete is False
    assert _report(now=dt.datetime(2026, 12, 1, 0, tzinfo=dt.UTC)).meta.complete is True


def test_new_customers_read_billing_kpi_with_sources_in_footnotes() -> None:
    report = _report()
    tiles = {t.kpi: t for t in report.headline}
    assert "wins" not in tiles  # CRM deals won are not "new customers"
    assert tiles["new_customers"].value == 5.0
    # CAC reconciles: spend / new customers
    assert tiles["cac"].value == pytest.approx(tiles["spend"].value / tiles["new_customers"].value)  # type: ignore[operator]
    notes = {f.kpi: f for f in report.footnotes}
    assert set(notes) == {"cac", "new_customers", "wins"}
    for kpi, note in notes.items():
        definition = kpi_catalog.BY_NAME[kpi]
        assert note.source == (definition.source or definition.definition)
        assert note.label == (definition.label or note.label)
    for fmt, text in _all_text(report).items():
        for note in notes.values():
            assert note.source.split(" (")[0] in text.replace("&#39;", "'"), (fmt, note.kpi)


def _alert(alert_id: str, processed: dt.datetime, period: str = "",
           data_time: dt.datetime | None = None) -> AlertRecord:
    return AlertRecord(alert_id=alert_id, rule="overspend", state="firing",
                       severity="warning", kpi="spend", starts_at=processed, period=period,
                       data_time=data_time)


def test_alerts_are_listed_by_data_period_not_processing_time() -> None:
    dec = dt.datetime(2026, 12, 2, 9, tzinfo=dt.UTC)
    alerts = [
        _alert("nov-late", dec, "2026-11", dec - dt.timedelta(hours=1)),  # Nov data, Dec run
        _alert("nov-day", dt.datetime(2026, 11, 5, tzinfo=dt.UTC), "2026-11-04"),
        _alert("dec-data", dec, "2026-12", dec),
        _alert("oct-late", dt.datetime(2026, 11, 1, 3, tzinfo=dt.UTC), "2026-10"),
        # week 2026-W49 runs 30 Nov – 6 Dec; its data of 1 December is December's
        _alert("w49", dec, "2026-W49", dt.datetime(2026, 12, 1, 5, tzinfo=dt.UTC)),
        # Q4 data as of 20 November belongs to November
        _alert("q4", dt.datetime(2026, 11, 20, tzinfo=dt.UTC), "2026-Q4",
               dt.datetime(2026, 11, 20, tzinfo=dt.UTC)),
        # no data period (freshness): its data time, else when it was processed
        _alert("fresh", dec, "", dt.datetime(2026, 11, 30, 22, tzinfo=dt.UTC)),
        _alert("legacy", dt.datetime(2026, 11, 9, tzinfo=dt.UTC)),
    ]
    listed = [a.alert_id for a in alerts if alert_in_period(a, NOV)]
    assert listed == ["nov-late", "nov-day", "q4", "fresh", "legacy"]
    report = _report(alerts=alerts)
    assert [a.alert_id for a in report.alerts] == ["nov-late", "nov-day", "legacy", "q4", "fresh"]
    md = render_markdown(report)
    assert "| 2026-11 | 2026-12-02 08:00 UTC | warning | overspend |" in md
    assert "2026-12-02 09:00" not in md  # the processing time is not shown as the data's
    assert "unknown (processed 2026-11-09 00:00 UTC)" in md


def _channel_days(last: dt.date, days: int = 56) -> dict[str, dict[str, list[TrendPoint]]]:
    weekly = (1.0, 1.1, 1.2, 1.1, 1.0, 0.6, 0.5)
    out: dict[str, list[TrendPoint]] = {}
    for channel, base in (("paid_search", 300.0), ("paid_social", 120.0)):
        out[channel] = [
            TrendPoint(day=last - dt.timedelta(days=i),
                       value=base * weekly[(last - dt.timedelta(days=i)).weekday()]
                       + (i * 7919 % 13))
            for i in range(days)
        ]
    out["tiny"] = [TrendPoint(day=last, value=5.0)]  # too little history: no forecast
    # attributed revenue: a deal every few weeks is too sparse to forecast per day
    revenue = {"paid_search": [TrendPoint(day=last - dt.timedelta(days=i),
                                          value=9000.0 if i % 20 == 0 else 0.0)
                               for i in range(days)]}
    return {"spend": out, "attributed_revenue": revenue}


def test_forecast_by_channel_in_every_format() -> None:
    report = _report(daily_by_channel=_channel_days(NOV.last_day))
    by = {(f.kpi, f.dimension_value): f for f in report.forecast_by_channel}
    assert set(by) == {("spend", "paid_search"), ("spend", "paid_social")}
    search = by[("spend", "paid_search")]
    assert search.dimension == "channel" and search.interval == 0.8
    assert search.points[0].day == dt.date(2026, 12, 1) and len(search.points) == 30
    assert search.total_lower <= search.total <= search.total_upper
    # roughly 30 days at the channel's level (~$270/day), far from the other channel's
    assert 6000 < search.total < 11000 and by[("spend", "paid_social")].total < 5000
    data = json.loads(render_json(report))
    assert [f["dimension_value"] for f in data["forecast_by_channel"]] == [
        "paid_search", "paid_social"]
    assert "paid_search,spend,30," in render_csv(report)["forecast_by_channel"]
    for fmt, text in _all_text(report).items():
        assert "30-day forecast by channel" in text, fmt
    html = render_html(report)
    assert "Spend forecast by channel, next 30 days (80% interval)" in html
