"""Shared helpers for the tests/deploy checks (imported by the test_deploy_* modules).

Everything here reads the repository as it is: service names from ``services/*``, console
scripts from each member's pyproject, settings from the settings classes, tables and
columns from the migration SQL, metric names from the Prometheus collectors.
"""

from __future__ import annotations

import importlib
import re
import shlex
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from pydantic_settings import BaseSettings

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ("ingest", "attribution", "kpi", "alerts", "reporting", "mmm")
#: The ports this deployment runs each service on (docs/operations.md).
PORTS = {"ingest": 8000, "attribution": 8001, "kpi": 8002, "alerts": 8003, "reporting": 8004,
         "mmm": 8005}
SQL_DIR = ROOT / "shared" / "src" / "pulse_shared" / "schema" / "sql"


# ------------------------------------------------------------------ pyproject / settings
@cache
def pyproject(member: str) -> dict[str, Any]:
    """``member`` is a path relative to the root, e.g. ``services/kpi`` or ``cli``."""
    return tomllib.loads((ROOT / member / "pyproject.toml").read_text())


def console_scripts(member: str) -> dict[str, str]:
    return dict(pyproject(member)["project"].get("scripts", {}))


def service_package(svc: str) -> str:
    return str(pyproject(f"services/{svc}")["project"]["name"])


@cache
def settings_class(svc: str) -> type[BaseSettings]:
    """The service's settings class: the BaseSettings with env prefix PULSE_<SVC>_."""
    module = importlib.import_module(f"pulse_{svc}.settings")
    prefix = f"PULSE_{svc.upper()}_"
    for value in vars(module).values():
        if (
            isinstance(value, type)
            and issubclass(value, BaseSettings)
            and value is not BaseSettings
            and str(value.model_config.get("env_prefix", "")).upper() == prefix
        ):
            return value
    raise AssertionError(f"pulse_{svc}.settings has no BaseSettings with prefix {prefix}")


def common_env_names() -> set[str]:
    from pulse_shared.settings import PulseSettings

    prefix = str(PulseSettings.model_config.get("env_prefix", "")).upper()
    return {prefix + name.upper() for name in PulseSettings.model_fields}


def service_env_names(svc: str) -> set[str]:
    cls = settings_class(svc)
    prefix = str(cls.model_config.get("env_prefix", "")).upper()
    return {prefix + name.upper() for name in cls.model_fields}


def auth_env_names() -> set[str]:
    """Sign-in settings, read by every service with a guarded HTTP surface."""
    from pulse_shared.auth.settings import AuthSettings

    prefix = str(AuthSettings.model_config.get("env_prefix", "")).upper()
    return {prefix + name.upper() for name in AuthSettings.model_fields}


def unknown_env(svc: str, names: set[str]) -> set[str]:
    """PULSE_* names that neither the common, the sign-in nor the service's settings read."""
    known = common_env_names() | auth_env_names() | service_env_names(svc)
    return {n for n in names if n.startswith("PULSE_") and n.upper() not in known}


# ------------------------------------------------------------------------ Dockerfiles
#: The one image template of every service (``--build-arg SERVICE=<svc>``).
SERVICE_TEMPLATE = ROOT / "deploy" / "Dockerfile"
CLI_DOCKERFILE = ROOT / "deploy" / "cli" / "Dockerfile"
#: Instructions whose arguments the build expands with build arguments and ENV (Docker
#: itself, or for RUN the build shell, which sees ARGs as variables). CMD, ENTRYPOINT and
#: HEALTHCHECK are not expanded: only the container's shell could.
EXPANDED = frozenset({"ADD", "COPY", "ENV", "EXPOSE", "FROM", "LABEL", "RUN", "STOPSIGNAL",
                      "USER", "VOLUME", "WORKDIR"})
_VARIABLE = re.compile(r"\$\{(\w+)\}|\$(\w+)")


@dataclass
class Instruction:
    keyword: str
    args: str
    """As the build sees them: build arguments and ENV expanded for EXPANDED keywords."""
    stage: int
    raw: str = ""
    """As written in the file."""

    def json_args(self) -> list[str] | None:
        """Exec-form arguments (``["a", "b"]``) or None for shell form."""
        text = self.args.strip()
        if text.startswith("["):
            import json

            value = json.loads(text)
            assert isinstance(value, list)
            return [str(v) for v in value]
        return None


@dataclass
class Dockerfile:
    path: Path
    build_args: dict[str, str] = field(default_factory=dict)
    instructions: list[Instruction] = field(default_factory=list)
    global_args: dict[str, str] = field(default_factory=dict)
    """ARGs declared before the first FROM, with their values for this build."""

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]

    @property
    def stages(self) -> list[Instruction]:
        return self.all("FROM")

    def final(self, keyword: str) -> list[Instruction]:
        last = len(self.stages) - 1
        return [i for i in self.all(keyword) if i.stage == last]

    def env(self) -> dict[str, str]:
        """ENV of the final stage (``ENV A=1 B=2`` form), build arguments expanded."""
        out: dict[str, str] = {}
        for ins in self.final("ENV"):
            for token in shlex.split(ins.args):
                name, sep, value = token.partition("=")
                if sep:
                    out[name] = value
        return out


def _expand(text: str, values: dict[str, str]) -> str:
    """Docker's substitution of ``$NAME`` / ``${NAME}``; unknown names (base-image ENV such
    as PATH) are left as written."""
    def value(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        return values.get(name, match.group(0))

    return _VARIABLE.sub(value, text)


def parse_dockerfile(path: Path, build_args: dict[str, str] | None = None) -> Dockerfile:
    """Logical lines (continuations joined, comments dropped) → instructions by stage.

    Build arguments follow Docker's scoping: an ARG before the first FROM is visible to
    FROM lines only, and inside a stage only once the stage declares it again (until then
    it expands to nothing, as in Docker); ``build_args`` are the ``--build-arg`` values.
    """
    build_args = dict(build_args or {})
    result = Dockerfile(path, build_args)
    logical: list[str] = []
    buffer = ""
    for raw in path.read_text().splitlines():
        stripped = raw.strip()
        if not buffer and (not stripped or stripped.startswith("#")):
            continue
        if buffer and stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            buffer += stripped[:-1] + " "
            continue
        logical.append(buffer + stripped)
        buffer = ""
    assert not buffer, f"{path}: dangling line continuation"
    stage = -1
    scope: dict[str, str] = {}
    for line in logical:
        keyword, _, raw_args = line.partition(" ")
        keyword, raw_args = keyword.upper(), raw_args.strip()
        if keyword == "FROM":
            stage += 1
            scope = {name: "" for name in result.global_args}
            args = _expand(raw_args, result.global_args)
        elif keyword in EXPANDED:
            args = _expand(raw_args, scope if stage >= 0 else result.global_args)
        else:
            args = raw_args
        if keyword == "ARG":
            name, sep, default = raw_args.partition("=")
            name = name.strip()
            declared = result.global_args if stage < 0 else scope
            if name in build_args:
                declared[name] = build_args[name]
            elif sep:
                declared[name] = _expand(default.strip().strip('"'), declared)
            else:
                declared[name] = result.global_args.get(name, "") if stage >= 0 else ""
        elif keyword == "ENV" and stage >= 0:
            for token in shlex.split(args):
                name, sep, value = token.partition("=")
                if sep:
                    scope[name] = value
        result.instructions.append(Instruction(keyword, args, stage, raw_args))
    return result


def container_command(df: Dockerfile) -> list[str]:
    """The argv the container starts: the final CMD (exec form), with a
    ``/bin/sh -c "exec …"`` wrapper resolved against the image's ENV, as its shell does."""
    assert not df.final("ENTRYPOINT"), f"{df.path}: a service image has no ENTRYPOINT"
    (cmd,) = df.final("CMD")
    argv = cmd.json_args()
    assert argv, f"{df.path}: CMD must be in exec form"
    if argv[0] not in ("/bin/sh", "sh"):
        return argv
    assert len(argv) == 3 and argv[1] == "-c", argv
    env = df.env()

    def value(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        assert name in env, f"{df.path}: CMD uses ${name}, which the image does not set"
        return env[name]

    words = shlex.split(_VARIABLE.sub(value, argv[2]))
    # Without exec the shell stays PID 1 and `docker stop` never reaches the service.
    assert words[0] == "exec", f"{df.path}: the CMD shell must exec the service"
    return words[1:]


def copy_sources(ins: Instruction) -> list[str]:
    """Build-context sources of a COPY (none for ``COPY --from=...``)."""
    parts = ins.json_args() or shlex.split(ins.args)
    if any(p.startswith("--from=") for p in parts):
        return []
    files = [p for p in parts if not p.startswith("--")]
    return files[:-1]


# ------------------------------------------------------------------------ compose / k8s
@cache
def compose() -> dict[str, Any]:
    data = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert isinstance(data, dict)
    return data


def service_build(svc: str) -> tuple[Path, dict[str, str]]:
    """The Dockerfile compose builds ``svc`` from, and its build arguments."""
    build = compose()["services"][svc]["build"]
    assert build["context"] == ".", f"{svc}: build from the repository root"
    args = build.get("args", {})
    assert isinstance(args, dict), f"{svc}: write build args as a mapping"
    return ROOT / build["dockerfile"], {str(k): str(v) for k, v in args.items()}


def service_image(svc: str) -> Dockerfile:
    """``svc``'s image as compose builds it: its Dockerfile with its build arguments."""
    path, args = service_build(svc)
    return parse_dockerfile(path, args)


def k8s_documents() -> Iterator[tuple[Path, dict[str, Any]]]:
    for path in sorted((ROOT / "deploy" / "k8s").rglob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                yield path, doc


# ------------------------------------------------------------------------ schema
@dataclass(frozen=True)
class Schema:
    tables: dict[str, set[str]]


@cache
def migration_schema() -> Schema:
    """Tables (and views) with their columns, parsed from the migration SQL files."""
    tables: dict[str, set[str]] = {}
    for path in sorted(SQL_DIR.glob("[0-9][0-9][0-9][0-9]_*.sql")):
        text = "\n".join(
            line for line in path.read_text().splitlines() if not line.strip().startswith("--")
        )
        for match in re.finditer(
            r"CREATE\s+TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?(\w+)\s*\((.*?)\)\s*ENGINE",
            text,
            re.S | re.I,
        ):
            tables[match.group(1)] = _column_names(match.group(2))
        for match in re.finditer(
            r"CREATE\s+MATERIALIZED\s+VIEW\s+(?:IF\s+NOT\s+EXISTS\s+)?(\w+)", text, re.I
        ):
            tables.setdefault(match.group(1), set())
    return Schema(tables)


def _column_names(body: str) -> set[str]:
    names: set[str] = set()
    depth = 0
    current = ""
    for char in body:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            names.add(current.strip().split()[0])
            current = ""
        else:
            current += char
    if current.strip():
        names.add(current.strip().split()[0])
    return {n.strip("`") for n in names if not n.upper().startswith(("INDEX", "PROJECTION"))}


SQL_TABLE_REF = re.compile(r"\b(?:FROM|JOIN)\s+([A-Za-z_][\w.]*)", re.I)


def referenced_tables(sql: str) -> set[str]:
    return {m.group(1).split(".")[-1] for m in SQL_TABLE_REF.finditer(sql)}


# ------------------------------------------------------------------------ metrics
_SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "summary": ("", "_sum", "_count", "_created"),
    "info": ("_info",),
    "stateset": ("",),
    "enum": ("",),
    "gaugehistogram": ("_bucket", "_gsum", "_gcount"),
    "unknown": ("",),
}
_METRIC_CALL = re.compile(
    r"\b(Counter|Gauge|Histogram|Summary|Info|Enum)\(\s*[\"']([a-zA-Z_:][\w:]*)[\"']"
)


def exposed_names(family: str, kind: str) -> set[str]:
    """Names a metric family appears under in the Prometheus text exposition."""
    kind = kind.lower()
    base = family[: -len("_total")] if kind == "counter" and family.endswith("_total") else family
    return {base + suffix for suffix in _SUFFIXES.get(kind, ("",))} | {base}


@cache
def metric_names() -> frozenset[str]:
    """Every exposition name of the shared registry and of each service's metrics.

    The shared metrics come from the live registry (``pulse_shared.metrics``); service
    metrics are read from the sources (``Counter("pulse_<svc>_...")`` …) so that a
    service whose wiring is not importable yet still contributes its names.
    """
    from prometheus_client import REGISTRY

    import pulse_shared.metrics  # noqa: F401 - registers the shared collectors

    names: set[str] = set()
    for collector in list(REGISTRY._collector_to_names):
        for fam in collector.collect():
            names |= exposed_names(fam.name, fam.type)
    for src in [ROOT / "shared" / "src", *(ROOT / "services" / s / "src" for s in SERVICES)]:
        for py in src.rglob("*.py"):
            tree_text = py.read_text()
            for kind, name in _METRIC_CALL.findall(tree_text):
                names |= exposed_names(name, kind)
    return frozenset(names)


PROMQL_METRIC = re.compile(r"\b(pulse_[a-zA-Z0-9_:]+)")


def promql_metric_names(expr: str) -> set[str]:
    """``pulse_*`` metric names used by a PromQL expression (label values ignored)."""
    without_strings = re.sub(r'"[^"]*"', '""', expr)
    return set(PROMQL_METRIC.findall(without_strings))

