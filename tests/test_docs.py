"""Documentation that is generated from code must match the code."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_configuration_reference_is_current() -> None:
    from pulse_cli.config_reference import render

    committed = (ROOT / "docs" / "configuration.md").read_text()
    assert committed == render(), "run: .venv/bin/pulse config-reference --output docs/configuration.md"


def test_readme_holds_the_two_setup_commands() -> None:
    readme = (ROOT / "README.md").read_text()
    setup = readme.split("## Set up on a fresh machine", 1)[1].split("##", 1)[0]
    commands = [line.split("#")[0].strip() for line in setup.splitlines()
                if line.strip().startswith("make ")]
    assert commands == ["make demo", "make test"]


def test_ci_runs_the_readme_test_command() -> None:
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in ci
