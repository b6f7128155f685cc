"""Golden files of report structure: Markdown text, JSON shape, HTML section/table layout.

Timestamps and report ids are masked. Regenerate with ``PULSE_UPDATE_GOLDEN=1``.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from reporting_fixtures import alert, period_kpis

from pulse_reporting.domain.assemble import ReportInputs, assemble_report
from pulse_reporting.domain.model import (
    AlertRecord,
    KpiValue,
    PathRecord,
    Report,
    TrendPoint,
)
from pulse_reporting.domain.periods import parse_period
from pulse_reporting.render.exports import render_json
from pulse_reporting.render.html import render_html
from pulse_reporting.render.markdown import render_markdown
from pulse_shared.cohorts import LedgerEvent

GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("PULSE_UPDATE_GOLDEN") == "1"


def _rows(period_text: str, kind: str) -> list[KpiValue]:
    period = parse_period(kind, period_text)
    out: list[KpiValue] = []
    for p, scale in ((period, 1.2), (period.previous(), 1.0), (period.year_ago(), 0.8)):
        for r in period_kpis(p, scale):
            out.append(KpiValue(**{k: v for k, v in r.items()
                                   if k not in ("period_start", "computed_at")}))
    return out


def _last_touch(rows: list[KpiValue]) -> list[KpiValue]:
    """The beside model's (last touch) attribution KPIs: 80 % of the default's."""
    return [
        r.model_copy(update={"kpi": f"{r.kpi}__last_touch",
                             "value": None if r.value is None else r.value * 0.8})
        for r in rows if r.kpi in ("attributed_revenue", "roas")
    ]


def _channel_days(period_end: dt.date) -> dict[str, dict[str, list[TrendPoint]]]:
    return {"spend": {
        channel: [TrendPoint(day=period_end - dt.timedelta(days=i),
                             value=base + (i % 7) * 5) for i in range(1, 61)]
        for channel, base in (("paid_search", 200.0), ("paid_social", 100.0))
    }}


def _ledger() -> list[LedgerEvent]:
    """Two cohorts for the cohort section: 2031-01 (a churns in February, b stays) and
    2031-02 (c churns within its first month: MRR retention n/a)."""
    def at(month: int, day: int) -> dt.datetime:
        return dt.datetime(2031, month, day, 12, tzinfo=dt.UTC)

    return [
        LedgerEvent("g-a1", "g-a", at(1, 5), Decimal(100), "basic"),
        LedgerEvent("g-a2", "g-a", at(2, 10), Decimal(0), "basic"),
        LedgerEvent("g-b1", "g-b", at(1, 9), Decimal(50), "pro"),
        LedgerEvent("g-c1", "g-c", at(2, 3), Decimal(80), "basic"),
        LedgerEvent("g-c2", "g-c", at(2, 20), Decimal(0), "basic"),
    ]


def _trials(period_text: str, kind: str) -> list[KpiValue]:
    period = parse_period(kind, period_text)
    return [
        KpiValue(kpi=k, grain=p.grain, period=p.label, value=v * scale, unit=u)
        for p, scale in ((period, 1.2), (period.previous(), 1.0))
        for k, v, u in (("trials_started", 40.0, "count"), ("trial_to_paid_rate", 0.25, "ratio"),
                        ("days_to_convert", 7.5, "days"))
    ]


def build(kind: str, period_text: str, model: str = "position_based") -> Report:
    period = parse_period(kind, period_text)
    processed = dt.datetime.combine(period.start, dt.time(8), tzinfo=dt.UTC)
    a = alert("g1", processed, period=period.start.isoformat(),
              data_time=processed - dt.timedelta(hours=2))
    daily = {
        "spend": [TrendPoint(day=period.end - dt.timedelta(days=i), value=300.0 + (i % 7) * 9)
                  for i in range(1, 61)],
    }
    rows = _rows(period_text, kind)
    inputs = ReportInputs(
        period=period, model=model, kpis=rows + _last_touch(rows) + _trials(period_text, kind),
        alerts=[AlertRecord(**{k: v for k, v in a.items() if k in AlertRecord.model_fields},
                            period=a["annotations"]["period"],
                            data_time=processed - dt.timedelta(hours=2))],
        paths=[PathRecord(path=("paid_search", "email"), conversions=3, revenue=900.0),
               PathRecord(path=("direct",), conversions=1, revenue=100.0)],
        daily=daily,
        daily_by_channel=_channel_days(period.last_day),
        cohort_ledger=_ledger(),
    )
    # generated after every golden period ended: complete periods (no partial banner)
    return assemble_report(inputs, dt.datetime(2031, 7, 1, tzinfo=dt.UTC))


def _mask(text: str) -> str:
    text = re.sub(r"Generated \d{4}-\d{2}-\d{2} \d{2}:\d{2} UTC", "Generated <time>", text)
    return re.sub(r"`[0-9a-f]{24}`", "`<id>`", text)


def _shape(value: Any) -> Any:
    """JSON structure: keys and value types, lists reduced to their first element."""
    if isinstance(value, dict):
        return {k: _shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_shape(value[0])] if value else []
    return type(value).__name__


def _html_outline(html: str) -> str:
    lines = []
    for match in re.finditer(
        r'<section id="([^"]+)">|<h[23]>([^<]+)</h[23]>|<table class="data" data-table="([^"]+)">'
        r'|<th[^>]*>([^<]+)</th>|<figure class="chart">', html
    ):
        section, heading, table, th = match.groups()[:4]
        if section:
            lines.append(f"section {section}")
        elif heading:
            lines.append(f"  heading {heading}")
        elif table:
            lines.append(f"  table {table}")
        elif th:
            lines.append(f"    col {th}")
        else:
            lines.append("  chart")
    return "\n".join(lines) + "\n"


def _check(name: str, actual: str) -> None:
    path = GOLDEN / name
    if UPDATE or not path.exists():
        path.write_text(actual)
        if not UPDATE:
            pytest.fail(f"golden file {name} was missing and has been written; re-run")
    assert actual == path.read_text(), f"{name} differs (PULSE_UPDATE_GOLDEN=1 to accept)"


@pytest.mark.parametrize(
    ("kind", "period", "model"),
    [("weekly", "2031-W10", "position_based"), ("monthly", "2031-03", "linear"),
     ("quarterly", "2031-Q1", "position_based")],
)
def test_markdown_golden(kind: str, period: str, model: str) -> None:
    _check(f"{kind}-{model}.md", _mask(render_markdown(build(kind, period, model))))


def test_json_shape_golden() -> None:
    data = json.loads(render_json(build("monthly", "2031-03")))
    _check("report-shape.json", json.dumps(_shape(data), indent=2, sort_keys=True) + "\n")


def test_html_outline_golden() -> None:
    _check("report-outline.txt", _html_outline(render_html(build("monthly", "2031-03"))))
