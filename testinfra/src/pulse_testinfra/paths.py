"""Where the repository and the test-infra caches are."""

from __future__ import annotations

import os
from pathlib import Path

_MARKER = Path("scripts") / "kafka" / "pom.xml"


def repo_root() -> Path:
    """The repository root (the folder holding ``scripts/kafka/pom.xml``).

    ``PULSE_REPO_ROOT`` overrides; otherwise the source checkout this package is
    installed from (editable, as in the uv workspace), else the current directory or
    one of its parents.
    """
    env = os.environ.get("PULSE_REPO_ROOT")
    if env:
        return Path(env).resolve()
    here = Path(__file__).resolve()
    candidates = [*here.parents, Path.cwd(), *Path.cwd().parents]
    for candidate in candidates:
        if (candidate / _MARKER).is_file():
            return candidate
    raise FileNotFoundError(
        f"cannot find the repository root (a folder with {_MARKER}); set PULSE_REPO_ROOT"
    )


def cache_dir() -> Path:
    """``<repo>/.cache`` (git-ignored)."""
    return repo_root() / ".cache"
