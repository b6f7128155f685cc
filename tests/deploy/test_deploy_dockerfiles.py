"""The service image template (deploy/Dockerfile, one build per service with
``--build-arg SERVICE=<svc>``) and the CLI image: shape, and references that must exist.

Every service check reads the template with the build arguments docker-compose.yml gives
that service, so each service is checked as it is really built.
"""

from __future__ import annotations

import fnmatch
import http.server
import importlib.util
import os
import re
import shlex
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from deploy_support import (
    CLI_DOCKERFILE,
    PORTS,
    ROOT,
    SERVICE_TEMPLATE,
    SERVICES,
    Dockerfile,
    console_scripts,
    container_command,
    copy_sources,
    parse_dockerfile,
    pyproject,
    service_build,
    service_env_names,
    service_image,
    settings_class,
)

IMAGES = (*SERVICES, "cli")
#: ENV the template sets to describe the image (read by its CMD and HEALTHCHECK only).
IMAGE_ENV = {"PULSE_IMAGE_SERVICE", "PULSE_IMAGE_PORT"}


def image(name: str) -> Dockerfile:
    return parse_dockerfile(CLI_DOCKERFILE) if name == "cli" else service_image(name)


def workspace_members() -> list[str]:
    members: list[str] = []
    for pattern in pyproject(".")["tool"]["uv"]["workspace"]["members"]:
        members += [
            str(p.parent.relative_to(ROOT)) for p in sorted(ROOT.glob(f"{pattern}/pyproject.toml"))
        ]
    return members


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


# ------------------------------------------------------------------ one template
def test_services_have_no_dockerfile_of_their_own() -> None:
    assert not sorted(ROOT.glob("services/*/Dockerfile")), "build services from deploy/Dockerfile"


@pytest.mark.parametrize("svc", SERVICES)
def test_service_builds_from_the_template_with_a_workspace_package_and_script(svc: str) -> None:
    path, args = service_build(svc)
    assert path == SERVICE_TEMPLATE
    assert args == {"SERVICE": svc, "PORT": str(PORTS[svc])}
    member = f"services/{args['SERVICE']}"
    assert member in workspace_members(), f"{member} is not a uv workspace member"
    assert pyproject(member)["project"]["name"] == f"pulse-{svc}"
    assert f"pulse-{svc}" in console_scripts(member)


def test_template_declares_what_it_uses_in_every_stage() -> None:
    """A build argument used in a stage that does not declare it expands to nothing."""
    df = parse_dockerfile(SERVICE_TEMPLATE)
    assert {"SERVICE", "PORT"} <= set(df.global_args)
    for stage in range(len(df.stages)):
        declared: set[str] = set()
        for ins in df.instructions:
            if ins.stage != stage:
                continue
            if ins.keyword == "ARG":
                declared.add(ins.raw.partition("=")[0].strip())
            if ins.keyword in ("FROM", "ARG"):
                continue
            used = set(re.findall(r"\$\{(\w+)\}", ins.raw)) & set(df.global_args)
            assert used <= declared, f"stage {stage}: {ins.keyword} {ins.raw} uses undeclared {used - declared}"


@pytest.mark.parametrize(("args", "ok"), [({"SERVICE": "kpi", "PORT": "8002"}, True),
                                          ({"SERVICE": "", "PORT": "8002"}, False),
                                          ({"SERVICE": "kpi", "PORT": ""}, False)])
def test_building_without_service_or_port_stops_with_a_clear_message(
    args: dict[str, str], ok: bool,
) -> None:
    """The template's own guard lines (``RUN test -n …``), run by a shell as the build would."""
    guards = [i for i in parse_dockerfile(SERVICE_TEMPLATE, args).all("RUN")
              if i.raw.startswith("test -n")]
    assert len(guards) == 2
    results = [subprocess.run(["/bin/sh", "-c", g.raw], env={**args, "PATH": os.environ["PATH"]},
                              capture_output=True, text=True) for g in guards]
    if ok:
        assert all(r.returncode == 0 for r in results)
    else:
        (failed,) = [r for r in results if r.returncode != 0]
        missing = next(name for name, value in args.items() if not value)
        assert f"--build-arg {missing}=" in failed.stderr


# ------------------------------------------------------------------ every image
@pytest.mark.parametrize("name", IMAGES)
def test_multi_stage_uv_builder_and_slim_non_root_runtime(name: str) -> None:
    df = image(name)
    assert len(df.stages) >= 3  # uv binary, builder, runtime
    images = [s.args.split()[0] for s in df.stages]
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
    if name != "cli":
        (label,) = df.final("LABEL")
        assert f'org.opencontainers.image.title="pulse-{name}"' in label.args


@pytest.mark.parametrize("name", IMAGES)
def test_copy_sources_exist_and_are_not_docker_ignored(name: str) -> None:
    df = image(name)
    for ins in df.all("COPY"):
        for source in copy_sources(ins):
            assert (ROOT / source).exists(), f"{name}: COPY {source} does not exist"
            assert not ignored(source.rstrip("/")), f"{name}: {source} is in .dockerignore"


@pytest.mark.parametrize("name", IMAGES)
def test_every_workspace_member_pyproject_is_copied_before_the_locked_sync(name: str) -> None:
    """uv needs every member's pyproject to validate the lock of the whole workspace."""
    df = image(name)
    first_sync = next(i for i, ins in enumerate(df.instructions) if "uv sync" in ins.args)
    copied = {s for ins in df.instructions[:first_sync] if ins.keyword == "COPY"
              for s in copy_sources(ins)}
    assert {"pyproject.toml", "uv.lock"} <= copied
    for member in workspace_members():
        assert f"{member}/pyproject.toml" in copied, f"{name}: {member} not copied"


@pytest.mark.parametrize("svc", SERVICES)
def test_uv_sync_is_locked_without_dev_for_this_package(svc: str) -> None:
    df = service_image(svc)
    syncs = [shlex.split(i.args) for i in df.all("RUN") if "uv sync" in i.args]
    assert len(syncs) == 2  # dependencies layer, then the project itself
    package = pyproject(f"services/{svc}")["project"]["name"]
    for argv in syncs:
        assert "--locked" in argv and "--no-dev" in argv
        assert argv[argv.index("--package") + 1] == package == f"pulse-{svc}"
    assert "--no-install-workspace" in syncs[0]
    assert "--no-editable" in syncs[1]
    # Only this service's sources (and shared/) enter its image.
    copied = {s for ins in df.all("COPY") for s in copy_sources(ins)}
    assert f"services/{svc}/" in copied
    assert not {f"services/{other}/" for other in SERVICES if other != svc} & copied


@pytest.mark.parametrize("svc", SERVICES)
def test_cmd_resolves_to_the_console_script_and_its_target_exists(svc: str) -> None:
    (script,) = container_command(service_image(svc))
    scripts = console_scripts(f"services/{svc}")
    assert script == f"pulse-{svc}" and script in scripts
    module, _, func = scripts[script].partition(":")
    if importlib.util.find_spec(module) is None:
        pytest.fail(f"{module} (entry point of {script}) does not exist")
    loaded = importlib.import_module(module)
    assert callable(getattr(loaded, func))


@pytest.mark.parametrize("svc", SERVICES)
def test_port_setting_expose_and_env_agree(svc: str) -> None:
    df = service_image(svc)
    port = str(PORTS[svc])
    port_var = f"PULSE_{svc.upper()}_PORT"
    assert port_var in service_env_names(svc), f"{port_var} is not a setting"
    # The image does not set the port: the service listens on its setting's default.
    assert str(settings_class(svc).model_fields["port"].default) == port
    env = df.env()
    assert env["PULSE_IMAGE_SERVICE"] == svc and env["PULSE_IMAGE_PORT"] == port
    # Docker cannot upper-case SERVICE: PULSE_kpi_HOST (settings names ignore case).
    assert {n.upper() for n in env} - {"PATH", "PYTHONUNBUFFERED", "PYTHONDONTWRITEBYTECODE"} <= (
        service_env_names(svc) | {"PULSE_DATA_DIR"} | IMAGE_ENV
    )
    assert env[f"PULSE_{svc}_HOST"] == "0.0.0.0"  # services default to loopback
    (expose,) = df.final("EXPOSE")
    assert expose.args.split() == [port]


@pytest.fixture(scope="module")
def health_server() -> Iterator[dict[str, int]]:
    """A local /health answering 200 on one port and 503 on another."""
    class Handler(http.server.BaseHTTPRequestHandler):
        status = 200

        def do_GET(self) -> None:  # the name http.server calls
            self.send_response(self.status if self.path == "/health" else 404)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    class Down(Handler):
        status = 503

    servers = [http.server.ThreadingHTTPServer(("127.0.0.1", 0), h) for h in (Handler, Down)]
    for server in servers:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    yield {"up": servers[0].server_address[1], "down": servers[1].server_address[1]}
    for server in servers:
        server.shutdown()
        server.server_close()


def run_healthcheck(df: Dockerfile, extra_env: dict[str, str]) -> int:
    (health,) = df.final("HEALTHCHECK")
    assert re.search(r"--interval=\d+s", health.args)
    argv = json_after_cmd(health.args)
    assert argv[0] == "python"
    env = {**{k: v for k, v in df.env().items() if k.startswith("PULSE_")}, **extra_env}
    result = subprocess.run([sys.executable, *argv[1:]], env=env, capture_output=True,
                            timeout=30)
    return result.returncode


def json_after_cmd(args: str) -> list[str]:
    import json

    value = json.loads(args[args.index("CMD ") + 4:])
    assert isinstance(value, list)
    return [str(v) for v in value]


@pytest.mark.parametrize("svc", SERVICES)
def test_healthcheck_probes_health_on_the_port_the_service_is_given(
    svc: str, health_server: dict[str, int],
) -> None:
    df = service_image(svc)
    port_var = f"PULSE_{svc.upper()}_PORT"
    assert run_healthcheck(df, {port_var: str(health_server["up"])}) == 0
    assert run_healthcheck(df, {port_var: str(health_server["down"])}) != 0


def test_healthcheck_falls_back_to_the_image_port(health_server: dict[str, int]) -> None:
    df = service_image("kpi")
    assert run_healthcheck(df, {"PULSE_IMAGE_PORT": str(health_server["up"])}) == 0
    assert run_healthcheck(df, {"PULSE_IMAGE_PORT": str(health_server["down"])}) != 0


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
