"""The builder stage of every image, replayed without Docker.

There is no Docker engine here, so this test does what the builder stage does: it copies
exactly the files the Dockerfile's COPY instructions name (nothing else of the repository
is visible, as in a build context) into an empty directory, runs the Dockerfile's own
``uv sync`` commands there, and then checks that the resulting environment, on its own
(no sources on the path: packages are installed non-editable, as in the runtime stage),
imports the service's entry point and has its console script. A service importing a
package it does not declare, a lock that does not match the copied pyprojects, or a COPY
that misses a file the build needs all fail here.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
from deploy_support import (
    CLI_DOCKERFILE,
    ROOT,
    SERVICES,
    Dockerfile,
    console_scripts,
    copy_sources,
    parse_dockerfile,
    service_image,
)

UV = shutil.which("uv")
IMAGES = (*SERVICES, "cli")


def replay_builder(df: Dockerfile, workdir: Path) -> Path:
    """Run the builder stage's COPY and ``uv sync`` steps in ``workdir`` (build arguments
    expanded as the build would); returns the venv."""
    (builder,) = [s.stage for s in df.stages if s.args.split()[-1] == "builder"]
    venv = workdir / ".venv"
    env = {
        **os.environ,
        "UV_PROJECT_ENVIRONMENT": str(venv),
        "UV_PYTHON_DOWNLOADS": "never",
        "UV_COMPILE_BYTECODE": "0",
        "VIRTUAL_ENV": "",
    }
    for ins in df.instructions:
        if ins.stage != builder:
            continue
        if ins.keyword == "COPY":
            sources = copy_sources(ins)
            destination = shlex.split(ins.args)[-1]
            for source in sources:
                src = ROOT / source
                if src.is_dir():
                    shutil.copytree(
                        src, workdir / destination.rstrip("/"), dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns("__pycache__", ".venv", "*.pyc"),
                    )
                else:
                    target = workdir / (Path(source).name if destination == "./" else destination)
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy(src, target)
        elif ins.keyword == "RUN" and "uv sync" in ins.args:
            argv = shlex.split(ins.args[ins.args.index("uv sync"):])
            result = subprocess.run(
                [str(UV), *argv[1:]], cwd=workdir, env=env, capture_output=True, text=True,
                timeout=600,
            )
            assert result.returncode == 0, f"{' '.join(argv)} failed:\n{result.stderr[-4000:]}"
    return venv


@pytest.mark.skipif(UV is None, reason="uv is not installed")
@pytest.mark.parametrize("image", IMAGES)
def test_builder_stage_produces_a_working_environment(image: str, tmp_path: Path) -> None:
    workdir = tmp_path / "src"
    workdir.mkdir()
    df = parse_dockerfile(CLI_DOCKERFILE) if image == "cli" else service_image(image)
    venv = replay_builder(df, workdir)
    member = "cli" if image == "cli" else f"services/{image}"
    scripts = console_scripts(member)
    for script in scripts:
        assert (venv / "bin" / script).exists(), f"console script {script} missing"
    # Import from an unrelated directory with only the venv: nothing from the sources.
    modules = sorted({target.partition(":")[0] for target in scripts.values()})
    probe = "import importlib, sys\n" + "".join(
        f"m = importlib.import_module({m!r}); assert 'site-packages' in m.__file__, m.__file__\n"
        for m in modules
    )
    result = subprocess.run(
        [str(venv / "bin" / "python"), "-c", probe], cwd=tmp_path, capture_output=True,
        text=True, timeout=300, env={"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path)},
    )
    assert result.returncode == 0, result.stderr[-4000:]
    if image != "cli":
        # Only this service's package among the services: images stay independent.
        installed = {p.name.split("-")[0] for p in (venv / "lib").glob("python*/site-packages/*.dist-info")}
        others = {f"pulse_{s}" for s in SERVICES if s != image}
        assert f"pulse_{image}" in installed and not (installed & others), installed
