"""SQL-injection strings in every filter of the `pulse` CLI commands that query ClickHouse
(kpi show/mrr, alerts list/test, report, attribution credits): each is a parameter value —
the command ends normally or with a clean error, never a traceback, and no table loses rows
or disappears."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pulse_shared.settings import common_settings
from pulse_shared.store import Store

pytestmark = [pytest.mark.clickhouse, pytest.mark.timeout(240)]

INJECTIONS = [
    "' OR '1'='1",
    "2026-11'; DROP TABLE kpi_values; --",
    "1; TRUNCATE TABLE touchpoints",
    "x') UNION ALL SELECT name FROM system.tables --",
    "{kpi:String}",
    "\\'; SELECT sleep(3); --",
]

RULES = """rules:
  - name: sec_rule
    type: threshold
    kpi: mrr
    grain: day
    dimension: all
    op: above
    threshold: 0
"""


def period_commands(text: str, out: Path, rules: Path) -> list[list[str]]:
    """Date/period filters: parsed in Python before any SQL."""
    return [
        ["kpi", "show", "--from", text, "--to", "2026-11"],
        ["kpi", "show", "--grain", "month", "--from", "2026-10", "--to", text],
        ["kpi", "mrr", "--from", text, "--to", text],
        ["alerts", "test", "sec_rule", "--from", text, "--to", "2026-11-02", "--rules", str(rules)],
    ]


def commands(text: str, out: Path, rules: Path) -> list[list[str]]:
    day = ["--from", "2026-11-01", "--to", "2026-11-02"]
    return [
        ["kpi", "show", "--kpi", text, "--format", "json"],
        ["kpi", "show", "--by", "channel", "--kpi", text, "--format", "csv"],
        ["alerts", "list", "--state", text],
        ["alerts", "list", "--state", text, "--json"],
        ["alerts", "test", text, *day, "--rules", str(rules)],
        ["report", "weekly", "--period", text, "-o", str(out), "-q"],
        ["report", "monthly", "--period", "2026-10", "--model", text, "-o", str(out), "-q"],
        ["report", "quarterly", "--period", text, "-f", text, "-o", str(out), "-q"],
        ["attribution", "credits", "--conversion-id", text],
        ["attribution", "credits", "--account-id", text],
    ]


@pytest.fixture
def cli_env(clickhouse_server, server_store: Store, monkeypatch: pytest.MonkeyPatch,  # type: ignore[no-untyped-def]
            tmp_path: Path) -> Iterator[Path]:
    monkeypatch.setenv("PULSE_CLICKHOUSE_URL", clickhouse_server.url)
    monkeypatch.setenv("PULSE_REPORTING_CLICKHOUSE_USER", clickhouse_server.reader_user)
    monkeypatch.setenv("PULSE_REPORTING_CLICKHOUSE_PASSWORD", clickhouse_server.reader_password)
    monkeypatch.setenv("PULSE_REPORTING_OUTPUT_DIR", str(tmp_path / "reports"))
    monkeypatch.setenv("PULSE_LOG_JSON", "false")
    common_settings.cache_clear()
    yield tmp_path
    common_settings.cache_clear()


def run_all(cli_env: Path, server_store: Store, make: Callable[[str, Path, Path], list[list[str]]],
            row_counts: Callable[[Store], dict[str, int]]) -> None:
    from pulse_cli.main import app

    rules = cli_env / "rules.yaml"
    rules.write_text(RULES)
    runner = CliRunner()
    before = row_counts(server_store)
    problems = []
    for text in INJECTIONS:
        for args in make(text, cli_env / "out", rules):
            result = runner.invoke(app, args, catch_exceptions=True)
            output = result.output
            crashed = result.exception is not None and not isinstance(result.exception, SystemExit)
            if crashed or "Traceback" in output or "DB::Exception" in output:
                problems.append((args, result.exit_code, repr(result.exception), output[-400:]))
    after = row_counts(server_store)
    assert not problems, "\n".join(map(str, problems))
    assert set(after) == set(before), set(before) ^ set(after)
    assert all(after[t] >= before[t] for t in before), "an injected filter deleted rows"


def test_cli_filters_treat_injection_strings_as_data(
    cli_env: Path, server_store: Store, row_counts: Callable[[Store], dict[str, int]]
) -> None:
    run_all(cli_env, server_store, commands, row_counts)


def test_cli_period_filters_reject_injection_strings_cleanly(
    cli_env: Path, server_store: Store, row_counts: Callable[[Store], dict[str, int]]
) -> None:
    run_all(cli_env, server_store, period_commands, row_counts)
