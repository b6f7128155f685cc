"""``pulse report …`` through typer's runner, on the session's embedded store."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

sys.path.insert(0, str(Path(__file__).parent))

from reporting_fixtures import insert_kpis, period_kpis

from pulse_reporting.cli import app
from pulse_reporting.domain.periods import parse_period
from pulse_shared.settings import common_settings
from pulse_shared.store import Store

MONTH = parse_period("monthly", "2032-03")


@pytest.fixture
def cli_env(
    embedded_store: Store, embedded_data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Store]:
    monkeypatch.setenv("PULSE_DATA_DIR", str(embedded_data_dir))
    monkeypatch.delenv("PULSE_CLICKHOUSE_URL", raising=False)
    monkeypatch.delenv("PULSE_KAFKA_BOOTSTRAP", raising=False)
    common_settings.cache_clear()
    yield embedded_store
    common_settings.cache_clear()


def test_monthly_command_writes_and_prints_paths(cli_env: Store, tmp_path: Path) -> None:
    insert_kpis(cli_env, period_kpis(MONTH, 2.0))
    result = CliRunner().invoke(
        app, ["monthly", "--month", "2032-03", "-f", "md", "-f", "json", "-o", str(tmp_path),
              "--model", "linear", "-q"],
    )
    assert result.exit_code == 0, result.output
    lines = dict(line.split("\t") for line in result.stdout.splitlines() if "\t" in line)
    assert set(lines) == {"md", "json"}
    md = Path(lines["md"]).read_text()
    assert Path(lines["md"]).parent == tmp_path / "monthly" / "2032-03-linear"
    # linear model: attributed revenue 36,000 x 2 and ROAS 3.6
    assert "| Attributed revenue | $72,000 |" in md
    assert "| ROAS | 3.60x |" in md


def test_bad_period_is_a_usage_error(cli_env: Store, tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["quarterly", "--period", "2032-13", "-o", str(tmp_path)])
    assert result.exit_code == 2
    assert "not a quarterly period" in result.output


def test_unknown_format_is_rejected(cli_env: Store, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["weekly", "--week", "2032-W10", "-f", "docx", "-o", str(tmp_path)]
    )
    assert result.exit_code == 2
    assert "unknown format 'docx'" in result.output


def test_unknown_model_is_rejected(cli_env: Store, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["weekly", "--week", "2032-W10", "--model", "magic", "-o", str(tmp_path)]
    )
    assert result.exit_code == 2
    assert "unknown attribution model 'magic'" in result.output
