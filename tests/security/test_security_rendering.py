"""Report renderers treat user text as text (issue 15, safe rendering).

Campaign and channel names, alert rules and summaries and conversion paths come from
ingested data, so anyone who can name a campaign writes into every report. A hostile-name
fixture goes through the real ``produce_report`` path in all five formats; every format must
render, none may reach the network (a local listener whose address is in a name must receive
nothing), and each must show the names as inert text: escaped HTML/Markdown, literal PDF
text, CSV formula cells neutralised (numbers left numeric), JSON as data.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re
import socket
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).parent.parent / "reporting"))

from reporting_fixtures import alert, insert_alerts, insert_kpis, kpi, period_kpis
from reportlab import rl_config
from reportlab.graphics.shapes import Drawing, Group, String
from reportlab.platypus import KeepTogether, Paragraph, Table

from pulse_reporting.domain.periods import Period, parse_period
from pulse_reporting.generate import ReportResult, produce_report
from pulse_reporting.render import pdf as pdf_module
from pulse_reporting.render.exports import csv_cell, render_csv
from pulse_reporting.render.markdown import render_markdown
from pulse_reporting.render.pdf import build_story, write_pdf
from pulse_shared.cli_output import render, to_table
from pulse_shared.safe_text import csv_text
from pulse_shared.store import Store

# a month no other test writes, so the shared embedded store holds only this fixture's rows
MONTH = parse_period("monthly", "2034-03")
NOW = dt.datetime(2034, 4, 2, 6, 0, tzinfo=dt.UTC)

IMG_ONERROR = '"><img src=x onerror=alert(1)>'
SCRIPT = "<script>alert(1)</script>"
MD_JS_LINK = "[x](javascript:alert(1))"
PIPE = "| pipe |"
REPORTLAB_TAGS = '<para>p</para><font color="red">f</font>'
FORMULAS = ('=HYPERLINK("http://evil","x")', "+cmd|' /C calc'!A0", "@SUM(1)", "-2+3")


class Listener:
    """A loopback TCP server that records every connection (there must be none)."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self.sock.close()


@pytest.fixture(scope="module")
def listener() -> Iterator[Listener]:
    """The listener, with reportlab told to trust every host (as ``RL_trustedHosts=*``
    would): only the renderers themselves stand between a name and a fetch."""
    server = Listener()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(rl_config, "trustedHosts", ["*"])
        yield server
    server.close()


def hostile_names(port: int) -> list[str]:
    fetch = f'<img src="http://127.0.0.1:{port}/x">'
    return [IMG_ONERROR, fetch, *FORMULAS, SCRIPT, MD_JS_LINK, PIPE, REPORTLAB_TAGS]


def _campaign_rows(period: Period, names: list[str]) -> list[dict[str, Any]]:
    """Every hostile name as a campaign (some paying back, some not: recommendations name
    them) and the first few as channels, with spend and revenue under two models."""
    rows: list[dict[str, Any]] = []
    for i, name in enumerate(names):
        spend, revenue = 1000.0 + 100 * i, (300.0 if i % 2 else 5000.0) + 10 * i
        for model in ("", "__linear", "__position_based", "__last_touch"):
            rows.append(kpi(f"attributed_revenue{model}", period, revenue, "campaign", name))
            rows.append(kpi(f"roas{model}", period, revenue / spend, "campaign", name, "ratio"))
        rows.append(kpi("spend", period, spend, "campaign", name))
    for i, name in enumerate(names[:6]):
        spend, revenue = 2000.0 + 100 * i, (900.0 if i % 2 else 9000.0)
        rows.append(kpi("spend", period, spend, "channel", name))
        for model in ("", "__linear", "__position_based", "__last_touch"):
            rows.append(kpi(f"attributed_revenue{model}", period, revenue, "channel", name))
            rows.append(kpi(f"roas{model}", period, revenue / spend, "channel", name, "ratio"))
    return rows


def _credits(names: list[str]) -> list[dict[str, Any]]:
    """Conversions whose touch channels are hostile names: they become conversion paths."""
    start = dt.datetime.combine(MONTH.start, dt.time(10), tzinfo=dt.UTC)
    rows = []
    for i, name in enumerate(names):
        for j, channel in enumerate((name, names[(i + 1) % len(names)])):
            rows.append({
                "conversion_id": f"sec-conv-{i}", "milestone": "won", "model": "linear",
                "version": 1, "account_id": f"sec-acct-{i}", "touchpoint_event_id": f"t{i}-{j}",
                "channel": channel, "campaign_id": name,
                "touched_at": start + dt.timedelta(days=i, hours=j),
                "converted_at": start + dt.timedelta(days=i, hours=5),
                "credit": 0.5, "credited_revenue": 100.0, "currency": "USD",
            })
    return rows


@pytest.fixture(scope="module")
def hostile_report(
    embedded_store: Store, listener: Listener, tmp_path_factory: pytest.TempPathFactory
) -> tuple[ReportResult, list[str]]:
    names = hostile_names(listener.port)
    for period, scale in ((MONTH, 1.0), (MONTH.previous(), 0.8)):
        insert_kpis(embedded_store, period_kpis(period, scale) + _campaign_rows(period, names))
    credits = _credits(names)
    embedded_store.insert("attribution_credits", credits, tuple(credits[0]))
    first_day = dt.datetime.combine(MONTH.start, dt.time(9), tzinfo=dt.UTC)
    insert_alerts(embedded_store, [
        alert(f"sec-a{i}", first_day + dt.timedelta(days=i), rule=name, summary=name,
              period=MONTH.label)
        for i, name in enumerate(names)
    ])
    result = produce_report(
        embedded_store, "monthly", MONTH, formats="all",
        out_dir=tmp_path_factory.mktemp("hostile"), now=NOW,
    )
    return result, names


def test_every_format_renders_without_network(
    hostile_report: tuple[ReportResult, list[str]], listener: Listener
) -> None:
    result, names = hostile_report
    assert set(result.paths) == {"md", "html", "pdf", "json", "csv"}
    # the data really carries the hostile names into the report
    assert {c.name for c in result.report.campaigns} >= set(names)
    assert {a.summary for a in result.report.alerts} == set(names)
    assert any(name in step for p in result.report.paths for step in p.path for name in names)
    assert listener.connections == 0


def _html_text(html: str) -> str:
    """What a browser shows: tags dropped, entities decoded."""
    import html as html_lib

    return html_lib.unescape(re.sub(r"<[^>]*>", " ", html))


def test_html_shows_names_as_text_only(hostile_report: tuple[ReportResult, list[str]]) -> None:
    result, names = hostile_report
    html = result.paths["html"].read_text()
    lowered = html.lower()
    # no element from data (the report itself has no images and no scripts at all)
    assert "<img" not in lowered and "<script" not in lowered
    assert "<para>" not in lowered and "<font" not in lowered
    assert "&lt;img src=x onerror=alert(1)&gt;" in html  # shown, escaped
    text = _html_text(html)
    for name in names:
        assert name in text, name


def test_markdown_has_no_raw_html_or_script_links(
    hostile_report: tuple[ReportResult, list[str]],
) -> None:
    result, names = hostile_report
    md = result.paths["md"].read_text()
    # no tag can open: every '<' from data is escaped
    assert re.search(r"(?<!\\)<[a-zA-Z/!]", md) is None
    assert re.search(r"(?<!\\)\]\(\s*javascript:", md, re.IGNORECASE) is None
    assert "javascript:" not in md.lower()  # escaped as javascript\\: everywhere
    # a name's pipes are escaped: every row of a table has its header's column count
    blocks: list[list[str]] = [[]]
    for line in md.splitlines():
        if line.startswith("|"):
            blocks[-1].append(line)
        elif blocks[-1]:
            blocks.append([])
    tables = [b for b in blocks if b]
    assert len(tables) > 5
    for block in tables:
        widths = {len(re.split(r"(?<!\\)\|", line)) for line in block}
        assert len(widths) == 1, block
    visible = _md_visible(md)
    for name in names:
        assert name in visible, name


def _md_visible(text: str) -> str:
    """Markdown text with backslash escapes resolved (what a reader sees)."""
    return re.sub(r"\\(.)", r"\1", text)


def test_csv_neutralises_formulas_and_keeps_numbers(
    hostile_report: tuple[ReportResult, list[str]],
) -> None:
    result, names = hostile_report
    directory = result.paths["csv"]
    cells: list[str] = []
    for path in directory.glob("*.csv"):
        for row in csv.reader(io.StringIO(path.read_text())):
            cells += row
    assert cells
    dangerous = [c for c in cells if c[:1] in ("=", "+", "-", "@", "\t", "\r")
                 and not _is_number(c)]
    assert dangerous == []
    for formula in FORMULAS:
        assert f"'{formula}" in cells, formula
    # negative numbers stay numbers: the MRR bridge's contraction and churn are negative
    bridge = dict(csv.reader(io.StringIO((directory / "mrr_bridge.csv").read_text())))
    assert float(bridge["churn"]) < 0 and bridge["churn"].startswith("-")
    campaigns = list(csv.DictReader(io.StringIO((directory / "campaigns.csv").read_text())))
    assert {r["name"] for r in campaigns} >= {f"'{f}" for f in FORMULAS}
    assert all(_is_number(r["spend"]) for r in campaigns)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("=1+1", "'=1+1"), ("+1+1", "'+1+1"), ("-2+3", "'-2+3"), ("@SUM(1)", "'@SUM(1)"),
        ("\t=1", "'\t=1"), ("\r=1", "'\r=1"), ("＝1+1", "'＝1+1"),
        ("-12.5", "-12.5"), ("+3", "+3"), ("-1e3", "-1e3"), ("paid_search", "paid_search"),
        (-12.5, -12.5), (3, 3), (None, ""),
    ],
)
def test_csv_cell_rule(value: object, expected: object) -> None:
    assert csv_cell(value) == expected  # type: ignore[arg-type]


# Every `pulse … --format table|csv` read command prints through pulse_shared.cli_output.
HOSTILE_CELLS = {
    "link": "[link=https://evil.example]click me[/link]",
    "style": "[bold red]URGENT[/bold red]",
    "token": "note [redacted-phone] here",
    "escape": "\x1b]0;owned\x07\x1b[2J wiped",
    "reorder": "invoice\u202egpj.exe\rpaid",
    "formula": '=HYPERLINK("https://evil.example","ok")',
    "spend": -12.5,
    "delta": "-3",
    "command": "+cmd|' /C calc'!A0",
}


def test_cli_tables_show_user_text_as_written() -> None:
    shown = to_table([HOSTILE_CELLS], list(HOSTILE_CELLS), width=400)
    # Rich markup in a value is text (it was read as a link, a style, or dropped).
    for key in ("link", "style", "token"):
        assert HOSTILE_CELLS[key] in shown, key
    # No escape sequence reaches the terminal; what was there is still visible.
    assert "\x1b" not in shown and "\x07" not in shown
    assert "\\x1b]0;owned\\x07\\x1b[2J wiped" in shown
    # A bidi override or a carriage return would show other text than the value's.
    assert "\u202e" not in shown and "\r" not in shown
    assert "invoice\\u202egpj.exe\\x0dpaid" in shown


def test_cli_csv_cells_are_no_formulas() -> None:
    parsed = list(csv.reader(io.StringIO(render([HOSTILE_CELLS], list(HOSTILE_CELLS), "csv"))))
    cells = dict(zip(parsed[0], parsed[1], strict=True))
    assert cells["formula"] == "'" + str(HOSTILE_CELLS["formula"])
    assert cells["command"] == "'" + str(HOSTILE_CELLS["command"])
    assert (cells["spend"], cells["delta"]) == ("-12.5", "-3")  # numbers stay numbers
    assert cells["link"] == HOSTILE_CELLS["link"]  # data, as it is, where it is harmless
    assert cells["reorder"] == HOSTILE_CELLS["reorder"]  # a lone CR no longer splits the row


@settings(max_examples=300, deadline=None)
@given(st.lists(st.lists(st.text(alphabet=st.characters(exclude_categories=["Cs"])),
                         min_size=1, max_size=4), min_size=1, max_size=5))
def test_every_csv_pulse_writes_reads_back_as_written(rows: list[list[str]]) -> None:
    """Reports and every --format csv write through csv_text: whatever a field holds
    (quotes, commas, CR, LF, CRLF), a CSV reader gets the same rows back."""
    assert list(csv.reader(io.StringIO(csv_text(rows), newline=""))) == rows


def test_json_keeps_names_as_data(hostile_report: tuple[ReportResult, list[str]]) -> None:
    result, names = hostile_report
    data = json.loads(result.paths["json"].read_text())
    assert {c["name"] for c in data["campaigns"]} >= set(names)


def test_pdf_shows_names_as_text(
    hostile_report: tuple[ReportResult, list[str]], listener: Listener
) -> None:
    result, names = hostile_report
    pdf = result.paths["pdf"].read_bytes()
    assert pdf.startswith(b"%PDF") and len(pdf) > 10_000
    # no link annotation and no image: charts are vector drawings, names are text
    assert b"/URI" not in pdf and b"/Subtype /Image" not in pdf
    text = pdf_text(build_story(result.report))
    for name in names:
        assert name in text, name
    assert listener.connections == 0


def test_pdf_builds_trust_no_host_even_unescaped(
    hostile_report: tuple[ReportResult, list[str]], listener: Listener,
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
) -> None:
    """Second line of defence: with escaping switched off, an image tag from data still
    fetches nothing while a report is built (the build fails on the image instead)."""
    result, _ = hostile_report
    image = f'<img src="http://127.0.0.1:{listener.port}/x" width="4" height="4"/>'
    report = result.report.model_copy(update={"notes": [image]})
    monkeypatch.setattr(pdf_module, "pdf_escape", str)
    with pytest.raises(OSError):
        write_pdf(report, tmp_path / "raw.pdf", rendered=[])
    assert listener.connections == 0
    assert rl_config.trustedHosts == ["*"]  # restored after the build


def test_notes_and_reasons_use_the_same_escaping(
    hostile_report: tuple[ReportResult, list[str]],
) -> None:
    """Fields the stored fixture does not fill with hostile text (notes) go through the
    same per-format helper."""
    result, _ = hostile_report
    notes = [SCRIPT, IMG_ONERROR, MD_JS_LINK, "line\n# heading"]
    report = result.report.model_copy(update={"notes": notes})
    md = render_markdown(report)
    assert re.search(r"(?<!\\)<[a-zA-Z/!]", md) is None
    assert "\n# heading" not in md
    text = pdf_text(build_story(report))
    assert SCRIPT in text and IMG_ONERROR in text and MD_JS_LINK in text
    # recommendations name hostile campaigns in their subject and reason (derived text)
    named = {r.campaign_id for r in report.recommendations if r.reason.startswith(FORMULAS)}
    assert named & set(FORMULAS)
    rows = list(csv.DictReader(io.StringIO(render_csv(report)["recommendations"])))
    reasons = [r["reason"] for r in rows if r["campaign_id"].lstrip("'") in named]
    assert reasons and all(reason.startswith("'") for reason in reasons)


def pdf_text(story: list[Any]) -> str:
    """The text the PDF lays out: Paragraphs as parsed by reportlab (markup applied, so a
    name that was not escaped would lose its tags or raise), plain table cells and chart
    labels as drawn."""
    out: list[str] = []

    def walk(item: Any) -> None:
        if isinstance(item, Paragraph):
            out.append(item.getPlainText())
        elif isinstance(item, Table):
            for row in item._cellvalues:
                for value in row:
                    walk(value)
        elif isinstance(item, KeepTogether):
            for part in item._content:
                walk(part)
        elif isinstance(item, Drawing | Group):
            for shape in item.contents:
                walk(shape)
        elif isinstance(item, String):
            out.append(item.text)
        elif isinstance(item, str):
            out.append(item)
        elif isinstance(item, list | tuple):
            for part in item:
                walk(part)

    walk(story)
    return "\n".join(out)
