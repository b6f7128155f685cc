"""Service Dockerfiles (and the CLI image): shape, and references that must exist."""

from __future__ import annotations

import fnmatch
import importlib.util
import re
import shlex
from pathlib import Path

import pytest
from deploy_support import (
    PORTS,
    ROOT,
    SERVICES,
    Dockerfile,
    console_scripts,
    copy_sources,
    parse_dockerfile,
    pyproject,
    service_env_names,
)

CLI_DOCKERFILE = ROOT / "deploy" / "cli" / "Dockerfile"
ALL_IMAGES = [*(ROOT / "services" / s / "Dockerfile" for s in SERVICES), CLI_DOCKERFILE]


def dockerfile(svc: str) -> Dockerfile:
    return parse_dockerfile(ROOT / "services" / svc / "Dockerfile")


def dockerignore_patterns() -> list[tuple[str, bool]]:
    out = []
    for line in (ROOT / ".dockerignore").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            out.append((line.lstrip("!"), line.startswith("!")))
    return out


def ignored(path: str) -> bool:
    """Docker's rule: the last matching pattern wins; a directory match covers children."""
    result = False
    parts = Path(path).parts
    for pattern, negated in dockerignore_patterns():
        pattern = pattern.rstrip("/")
        for i in range(1, len(parts) + 1):
            prefix = "/".join(parts[:i])
            if fnmatch.fnmatch(prefix, pattern) or (
                pattern.startswith("**/") and fnmatch.fnmatch(parts[i - 1], pattern[3:])
            ):
                result = not negated
                break
    return result


@pytest.mark.parametrize("path", ALL_IMAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_multi_stage_uv_builder_and_slim_non_root_runtime(path: Path) -> None:
    df = parse_dockerfile(path)
    assert len(df.stages) >= 3  # uv binary, builder, runtime
    images = [df.expand(s.args.split()[0]) for s in df.stages]
    assert images[0].startswith("ghcr.io/astral-sh/uv:")
    runtime = images[-1]
    assert re.fullmatch(r"python:3\.11-slim(-\w+)?", runtime), runtime
    assert df.stages[-1].args.split()[-1] == "runtime"
    (user,) = df.final("USER")
    uid = user.args.split(":")[0]
    assert uid not in ("root", "0") and (not uid.isdigit() or int(uid) >= 1000)
    # The runtime copies only the built venv from the builder stage.
    copies = df.final("COPY")
    assert any("--from=builder" in c.args and "/app/.venv" in c.args for c in copies)
    assert all(not copy_sources(c) for c in copies), "runtime must not copy sources"


@pytest.mark.parametrize("path", ALL_IMAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_copy_sources_exist_and_are_not_docker_ignored(path: Path) -> None:
    df = parse_dockerfile(path)
    for ins in df.all("COPY"):
        for source in copy_sources(ins):
            assert (ROOT / source).exists(), f"{path}: COPY {source} does not exist"
            assert not ignored(source.rstrip("/")), f"{path}: {source} is in .dockerignore"


@pytest.mark.parametrize("path", ALL_IMAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_workspace_member_pyproject_is_copied_before_the_locked_sync(path: Path) -> None:
    """uv needs every member's pyproject to validate the lock of the whole workspace."""
    root = pyproject(".")
    members: list[str] = []
    for pattern in root["tool"]["uv"]["workspace"]["members"]:
        members += [
            str(p.parent.relative_to(ROOT)) for p in sorted(ROOT.glob(f"{pattern}/pyproject.toml"))
        ]
    df = parse_dockerfile(path)
    first_sync = next(i for i, ins in enumerate(df.instructions) if "uv sync" in ins.args)
    copied = {s for ins in df.instructions[:first_sync] if ins.keyword == "COPY"
              for s in copy_sources(ins)}
    assert {"pyproject.toml", "uv.lock"} <= copied
    for member in members:
        assert f"{member}/pyproject.toml" in copied, f"{path}: {member} not copied"


@pytest.mark.parametrize("svc", SERVICES)
def test_uv_sync_is_locked_without_dev_for_this_package(svc: str) -> None:
    df = dockerfile(svc)
    syncs = [shlex.split(i.args) for i in df.all("RUN") if "uv sync" in i.args]
    assert len(syncs) == 2  # dependencies layer, then the project itself
    package = pyproject(f"services/{svc}")["project"]["name"]
    for argv in syncs:
        assert "--locked" in argv and "--no-dev" in argv
        assert argv[argv.index("--package") + 1] == package == f"pulse-{svc}"
    assert "--no-install-workspace" in syncs[0]
    assert "--no-editable" in syncs[1]


@pytest.mark.parametrize("svc", SERVICES)
def test_cmd_is_the_console_script_and_its_target_exists(svc: str) -> None:
    df = dockerfile(svc)
    (cmd,) = df.final("CMD")
    (script,) = cmd.json_args() or []
    scripts = console_scripts(f"services/{svc}")
    assert script in scripts
    module, _, func = scripts[script].partition(":")
    if importlib.util.find_spec(module) is None:
        pytest.fail(f"{module} (entry point of {script}) does not exist")
    loaded = importlib.import_module(module)
    assert callable(getattr(loaded, func))


@pytest.mark.parametrize("svc", SERVICES)
def test_port_env_expose_and_healthcheck_agree(svc: str) -> None:
    df = dockerfile(svc)
    port_var = f"PULSE_{svc.upper()}_PORT"
    assert port_var in service_env_names(svc), f"{port_var} is not a setting"
    env = df.env()
    assert env[port_var] == str(PORTS[svc])
    assert set(env) - {"PATH", "PYTHONUNBUFFERED", "PYTHONDONTWRITEBYTECODE"} <= (
        service_env_names(svc) | {"PULSE_DATA_DIR"}
    )
    (expose,) = df.final("EXPOSE")
    assert expose.args.split() == [str(PORTS[svc])]
    (health,) = df.final("HEALTHCHECK")
    assert "/health" in health.args and port_var in health.args
    assert re.search(r"--interval=\d+s", health.args)


def test_cli_image_installs_pulse_cli_with_every_service() -> None:
    df = parse_dockerfile(CLI_DOCKERFILE)
    for ins in df.all("RUN"):
        if "uv sync" in ins.args:
            argv = shlex.split(ins.args)
            assert argv[argv.index("--package") + 1] == pyproject("cli")["project"]["name"]
    copied = {s for ins in df.all("COPY") for s in copy_sources(ins)}
    assert {"shared/", "services/", "cli/"} <= copied


def test_dockerignore_keeps_secrets_and_venvs_out_of_the_context() -> None:
    for path in (".env", ".venv", ".git", "services/kpi/.venv", "pulse-data"):
        assert ignored(path), path
    for path in ("uv.lock", "pyproject.toml", "shared", "services/kpi/src", "cli",
                 ".python-version", "testinfra/pyproject.toml"):
        assert not ignored(path), path
