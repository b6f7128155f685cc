"""How the `pulse` command fails: one line on stderr naming the file / row / field, exit 1
for bad input, exit 2 for an unknown choice (listing the valid ones), no traceback unless
--debug; and a bad row never costs the good rows of its file. Embedded default (no Kafka,
no ClickHouse server), each command a separate process as a user runs it."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

PULSE = str(Path(sys.executable).parent / "pulse")
PYTHON = sys.executable
README = Path(__file__).parent.parent / "README.md"
SPEND_HEADER = "event_id,date,channel,campaign_id,amount,currency,impressions,clicks\n"

pytestmark = pytest.mark.timeout(300)


def env_for(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("PULSE_KAFKA_BOOTSTRAP", "PULSE_CLICKHOUSE_URL", "PULSE_DEBUG")}
    env["PULSE_DATA_DIR"] = str(tmp_path / "pulse-data")
    env.update(extra)
    return env


def run(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PULSE, *args], env=env_for(tmp_path, **env), cwd=tmp_path,
                          capture_output=True, text=True, timeout=240)


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]


def a_recent_day() -> dt.date:
    """A day of the current data (relative to today, never fixed)."""
    return dt.datetime.now(dt.UTC).date() - dt.timedelta(days=3)


def test_a_bad_row_is_named_and_the_good_rows_of_its_file_are_stored(tmp_path: Path) -> None:
    day = a_recent_day()
    file = tmp_path / "spend.csv"
    file.write_text(
        SPEND_HEADER
        + f"g1,{day},paid_search,brand,120.50,USD,1000,40\n"
        + f"bad,{day},paid_search,brand,3,USD,{10**30},1\n"
        + f"g2,{day},paid_social,launch,80.25,USD,900,12\n"
    )
    result = run(tmp_path, "ingest", "spend", str(file))

    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert "accepted 2, rejected 1" in result.stderr
    [line] = error_lines(result.stderr)
    assert line.startswith(f"error: {file} row 2: impressions:"), line
    month = f"{day.year}-{day.month:02d}"
    shown = run(tmp_path, "kpi", "show", "--grain", "month", "--from", month, "--to", month,
                "--kpi", "spend", "--format", "json")
    assert shown.returncode == 0, shown.stderr
    spend = [r for r in json.loads(shown.stdout) if r["dimension"] == "all"]
    assert [r["value"] for r in spend] == [pytest.approx(120.50 + 80.25)]


def test_a_row_the_pipeline_refuses_costs_only_that_row(tmp_path: Path) -> None:
    """In process, a consumer that refuses one event must not sink its batch: the consumer
    isolates and dead-letters it, the others are stored and the refused row is reported by
    number."""
    day = a_recent_day()
    script = textwrap.dedent(f"""
        import asyncio, datetime as dt, json
        from pulse_cli.ingesting import CliIngestService
        from pulse_cli.ingest_cli import _cli_ingest_settings
        from pulse_cli.runtime import open_pipeline
        from pulse_shared.streaming import RecordsRefused

        async def main():
            async with open_pipeline() as pipeline:
                kpi = next(c for c in pipeline.components if c.name == "kpi")
                spend = next(c for c in kpi.consumers if c.topic.name == "marketing.spend.v1")
                real = spend.consume

                async def refuse_one(events):
                    if any(e.event_id == "poison" for e in events):
                        raise RecordsRefused("cannot store poison", field="amount")
                    await real(events)

                spend.consume = refuse_one
                service = CliIngestService(pipeline, _cli_ingest_settings())
                rows = [
                    dict(event_id=f"ok{{i}}", date="{day}", channel="email", amount="10")
                    for i in range(7)
                ]
                rows.insert(4, dict(event_id="poison", date="{day}", channel="email",
                                    amount="5"))
                result = await service.ingest("spend", rows, "test")
                stored = pipeline.store.query_value(
                    "SELECT count() FROM spend FINAL WHERE event_id LIKE 'ok%'")
                print("RESULT", json.dumps(dict(accepted=result.accepted, rejected=result.rejected,
                                      stored=int(stored))))

        asyncio.run(main())
    """)
    done = subprocess.run([PYTHON, "-c", script], env=env_for(tmp_path), cwd=tmp_path,
                          capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    [line] = [x for x in done.stdout.splitlines() if x.startswith("RESULT ")]
    outcome = json.loads(line.removeprefix("RESULT "))
    assert outcome["stored"] == 7
    assert outcome["accepted"] == 7
    assert [(r["index"], r["field"]) for r in outcome["rejected"]] == [(4, "amount")]
    assert "cannot store poison" in outcome["rejected"][0]["reason"]


def test_an_unknown_kpi_exits_2_listing_the_kpis(tmp_path: Path) -> None:
    result = run(tmp_path, "kpi", "show", "--kpi", "nosuch")
    assert result.returncode == 2
    [line] = result.stderr.strip().splitlines()
    assert "unknown KPI 'nosuch'" in line and "spend" in line and "mrr" in line


def test_an_existing_kpi_without_data_is_a_valid_empty_answer(tmp_path: Path) -> None:
    result = run(tmp_path, "kpi", "show", "--kpi", "spend", "--format", "json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == []
    assert "no KPI values for spend" in result.stderr


def test_an_unknown_alert_state_exits_2_listing_the_states(tmp_path: Path) -> None:
    result = run(tmp_path, "alerts", "list", "--state", "bogus")
    assert result.returncode == 2
    [line] = result.stderr.strip().splitlines()
    assert "'bogus'" in line and "firing" in line and "resolved" in line


def test_an_account_without_credits_says_so(tmp_path: Path) -> None:
    result = run(tmp_path, "attribution", "credits", "--account-id", "nonexistent")
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    assert "no credits for account nonexistent" in result.stderr


def test_an_unknown_export_exits_2_listing_the_exports(tmp_path: Path) -> None:
    file = tmp_path / "export.csv"
    file.write_text("a,b\n1,2\n")
    result = run(tmp_path, "ingest", "import", "nosuch", str(file))
    assert result.returncode == 2
    [line] = result.stderr.strip().splitlines()
    assert "'nosuch'" in line and "google_ads" in line and "hubspot_deals" in line


def test_a_csv_that_is_not_the_export_is_refused_in_one_line(tmp_path: Path) -> None:
    file = tmp_path / "wrong.csv"
    file.write_text(SPEND_HEADER + f"s1,{a_recent_day()},email,c,1,USD,1,1\n")
    result = run(tmp_path, "ingest", "import", "google_ads", str(file))
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    [line] = error_lines(result.stderr)
    assert line.startswith(f"error: {file}: not a google_ads export:"), line


@pytest.mark.parametrize("name", ["README.md", "readme.csv", "readme.ndjson"])
def test_a_file_that_is_not_an_event_file_is_refused_in_one_line(
    tmp_path: Path, name: str
) -> None:
    file = tmp_path / name
    file.write_text(README.read_text())
    result = run(tmp_path, "ingest", "spend", str(file))
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith(f"error: {file}: ")
    if name.endswith(".csv"):  # what is missing, and what is expected
        assert "missing column(s) date, channel, amount" in result.stderr


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    file = tmp_path / "README.md"
    file.write_text(README.read_text())
    quiet = run(tmp_path, "ingest", "spend", str(file))
    assert "Traceback" not in quiet.stderr
    for result in (run(tmp_path, "--debug", "ingest", "spend", str(file)),
                   run(tmp_path, "ingest", "spend", str(file), PULSE_DEBUG="1")):
        assert result.returncode == 1
        assert "Traceback (most recent call last)" in result.stderr
        assert result.stderr.rstrip().splitlines()[-1].startswith(f"error: {file}: ")


def test_an_error_line_carries_no_control_character() -> None:
    """What a message quotes (a value, a header, a server's text) cannot drive the
    terminal: an escape sequence is shown, not obeyed."""
    from pulse_cli.errors import one_line

    line = one_line("refused row 3:\n  campaign '\x1b]0;owned\x07\x1b[2J'\n  \x9b31m")
    assert line == "refused row 3:; campaign '\\x1b]0;owned\\x07\\x1b[2J'; \\x9b31m"
    assert line.isprintable()
