"""Every ``pulse`` command follows the CLI conventions (issue 18).

- every read command takes ``--format table|csv|json``;
- output files are ``--output`` (the old spellings stay as hidden aliases);
- help text has no type placeholders (``<bool>``, ``<str>``…) and no RST markup;
- ``pulse --version``; ``pulse --help`` imports no service code.

The walk covers every registered command, so a new command is checked without editing
this file; a command that prints no records must be listed in ``NOT_READ_COMMANDS``.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from importlib.metadata import version

import pytest
import typer._click as click
from typer.main import get_command
from typer.testing import CliRunner

from pulse_cli.main import app

runner = CliRunner()
FORMATS = ["table", "csv", "json"]

# Commands that act or write documents rather than print records (why, each).
NOT_READ_COMMANDS = {
    "migrate": "applies migrations",
    "report daily": "writes report files",
    "report annual": "writes report files",
    "generate": "writes dataset files",
    "config-reference": "prints a Markdown document",
    "replay": "rebuilds tables",
    "demo": "runs the pipeline",
    "ingest hash-key": "prints one hash",
    "ingest serve": "runs a server",
    "dashboard": "runs a server",
    "users add": "issues a token (printed alone, as the last line)",
    "users revoke": "revokes a user",
    "attribution recompute": "recomputes models",
    "kpi asyncapi": "prints or writes an AsyncAPI document",
    "kpi recompute": "recomputes KPI values",
    "mmm asyncapi": "prints or writes an AsyncAPI document",
    "alerts rules check": "validates a file",
    "alerts silence add": "creates a silence",
    "alerts silence expire": "ends a silence",
    # --format there lists document formats (md, html, pdf, json, csv).
    "report weekly": "writes report files",
    "report monthly": "writes report files",
    "report quarterly": "writes report files",
}
# Type placeholders (<bool>, <str>, <list[str]>, <file>, <int range>…) and RST roles/literals.
PLACEHOLDER = re.compile(r"<[a-z][\w\[\]|, ]*>")
RST = re.compile(r"``|:(func|class|mod|meth|attr|data|ref|obj):`")
HEAVY_MODULES = (
    "pulse_shared.store", "chdb", "clickhouse_connect", "faststream", "statsforecast",
    "pandas", "matplotlib", "pydantic", "pulse_kpi.cli", "pulse_alerts.cli",
    "pulse_reporting.cli", "pulse_attribution.cli", "pulse_ingest.cli", "pulse_mmm.cli",
    "typer.rich_utils",
)


def walk(command: click.Command, path: tuple[str, ...] = ()) -> Iterator[
        tuple[tuple[str, ...], click.Command]]:
    yield path, command
    if hasattr(command, "list_commands"):
        ctx = click.Context(command)
        for name in command.list_commands(ctx):  # type: ignore[attr-defined]
            sub = command.get_command(ctx, name)  # type: ignore[attr-defined]
            assert sub is not None, f"{' '.join(path + (name,))} is listed but not found"
            yield from walk(sub, path + (name,))


ALL = list(walk(get_command(app)))
LEAVES = [(p, c) for p, c in ALL if p and not hasattr(c, "list_commands")]


def test_the_walk_sees_every_group_and_the_exemptions_exist() -> None:
    names = {" ".join(p) for p, _ in LEAVES}
    assert {"kpi show", "alerts silence list", "attribution paths", "ingest touchpoints",
            "ingest sources", "report weekly", "forecast"} <= names
    assert set(NOT_READ_COMMANDS) <= names, set(NOT_READ_COMMANDS) - names


@pytest.mark.parametrize(("path", "command"), LEAVES, ids=[" ".join(p) for p, _ in LEAVES])
def test_read_commands_take_format_table_csv_json(
    path: tuple[str, ...], command: click.Command
) -> None:
    name = " ".join(path)
    if name in NOT_READ_COMMANDS:
        return
    [option] = [p for p in command.params if "--format" in getattr(p, "opts", [])] or [None]
    assert option is not None, f"pulse {name}: a read command without --format"
    ctx = click.Context(command)
    for value in FORMATS:
        assert str(option.process_value(ctx, value)) == value, f"pulse {name} --format {value}"
    with pytest.raises(click.exceptions.BadParameter):
        option.process_value(ctx, "xml")


@pytest.mark.parametrize("path", [p for p, _ in ALL], ids=[" ".join(p) or "pulse" for p, _ in ALL])
def test_help_has_no_type_placeholders_or_rst(path: tuple[str, ...]) -> None:
    result = runner.invoke(app, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("Usage: pulse")
    assert not PLACEHOLDER.findall(result.output), result.output
    assert not RST.findall(result.output), result.output


def test_output_files_are_output_everywhere_old_spellings_hidden() -> None:
    legacy = {"--out", "--out-dir", "--reports", "--json"}
    for path, command in LEAVES:
        for param in command.params:
            opts = set(getattr(param, "opts", []))
            if opts & legacy:
                assert getattr(param, "hidden", False), f"pulse {' '.join(path)}: {opts} shown"
            if param.name in ("output", "out_dir", "reports_dir"):
                assert "--output" in opts, f"pulse {' '.join(path)}: {opts}"
    help_text = runner.invoke(app, ["report", "weekly", "--help"]).output
    assert "--output" in help_text and "--out-dir" not in help_text


def test_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output.strip() == f"pulse {version('pulse-cli')}"


def test_ingest_sources_json() -> None:
    from pulse_ingest.domain.imports import IMPORTS

    result = runner.invoke(app, ["ingest", "sources", "--format", "json"])
    assert result.exit_code == 0, result.output
    listed = json.loads(result.output)
    assert [s["name"] for s in listed] == list(IMPORTS)
    assert all(isinstance(s["kinds"], list) and s["kinds"] for s in listed)


def test_an_unknown_export_is_a_usage_error_listing_the_valid_ones(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from pulse_ingest.domain.imports import IMPORTS

    file = tmp_path / "x.csv"
    file.write_text("a,b\n1,2\n")
    result = runner.invoke(app, ["ingest", "import", "nope", str(file)])
    assert result.exit_code == 2
    assert "'nope'" in result.output and all(name in result.output for name in IMPORTS)


def test_help_imports_no_service_code() -> None:
    """``pulse --help`` loads typer and the CLI's own modules only (start-up time)."""
    script = (
        "import sys\n"
        "from pulse_cli.main import app\n"
        "try:\n    app(['--help'])\nexcept SystemExit:\n    pass\n"
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY_ROOTS!r}"
        f" or m in {HEAVY_MODULES!r}))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=60, check=True)
    loaded = json.loads(done.stdout.strip().splitlines()[-1].replace("'", '"'))
    assert loaded == [], f"pulse --help imported {loaded}"


HEAVY_ROOTS = ("chdb", "clickhouse_connect", "faststream", "statsforecast", "pandas",
               "matplotlib", "pydantic", "pulse_kpi", "pulse_alerts", "pulse_reporting",
               "pulse_attribution", "pulse_ingest", "pulse_mmm")
