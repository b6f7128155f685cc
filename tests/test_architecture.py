"""Architecture rules read from the source (``ast``), not from a running import.

- No import cycles between the modules of the services and of ``pulse_shared``. Every
  import counts, including ``TYPE_CHECKING`` blocks and imports inside functions: a cycle
  hidden in a function is still two modules that cannot be understood one without the other
  (the ``handlers`` ⇄ ``main`` circles this rule removed were ``TYPE_CHECKING`` imports).
- A service's ``main.py`` is wiring (settings → store → bus → component → app): it defines
  no class longer than :data:`MAX_MAIN_CLASS_LINES` lines; components live in ``app.py``.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCE_ROOTS = [*sorted((ROOT / "services").glob("*/src")), ROOT / "shared" / "src"]
MAX_MAIN_CLASS_LINES = 40


def module_files() -> dict[str, Path]:
    """Dotted module name → file, for every module under the source roots."""
    modules: dict[str, Path] = {}
    for root in SOURCE_ROOTS:
        for path in root.rglob("*.py"):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join(parts)] = path
    return modules


def imported_names(module: str, path: Path) -> Iterator[str]:
    """Every dotted name ``module`` imports (absolute; ``from X import y`` gives X and X.y)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            yield base
            yield from (f"{base}.{alias.name}" for alias in node.names)


def import_graph() -> dict[str, set[str]]:
    """Module → the project modules it imports (the longest known prefix of each name)."""
    files = module_files()
    graph: dict[str, set[str]] = {}
    for module, path in files.items():
        targets: set[str] = set()
        for name in imported_names(module, path):
            # ``from pkg import name``: the module pkg.name if there is one, else pkg.
            while name and name not in files:
                name = name.rpartition(".")[0]
            if name and name != module:
                targets.add(name)
        graph[module] = targets
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_graph_sees_the_services_imports() -> None:
    graph = import_graph()
    # A sanity check of the parser: known edges (absolute, relative-free) are found.
    assert "pulse_shared.streaming" in graph["pulse_shared.consumers"]
    assert "pulse_kpi.app" in graph["pulse_kpi.main"]
    assert {"pulse_attribution.main", "pulse_kpi.main", "pulse_alerts.main"} <= set(graph)


def test_cycles_finds_a_circle_through_a_function_level_import() -> None:
    graph = {"a.main": {"a.handlers"}, "a.handlers": {"a.main"}, "a.app": {"a.main"}}
    assert cycles(graph) == [["a.handlers", "a.main"]]


def test_no_import_cycles_between_modules() -> None:
    assert cycles(import_graph()) == []


@pytest.mark.parametrize(
    "main", sorted((ROOT / "services").glob("*/src/*/main.py")), ids=lambda p: p.parts[-4]
)
def test_a_service_main_is_wiring_only(main: Path) -> None:
    tree = ast.parse(main.read_text(), str(main))
    long_classes = {
        node.name: (node.end_lineno or node.lineno) - node.lineno + 1
        for node in ast.walk(tree)
        if isinstance(node, ast.ClassDef)
        and (node.end_lineno or node.lineno) - node.lineno + 1 > MAX_MAIN_CLASS_LINES
    }
    assert long_classes == {}


def test_no_service_keeps_a_handlers_module() -> None:
    """Subscribers come from ``pulse_shared.consumers.build_router`` and the components'
    declared consumers, not from a hand-written router per service."""
    assert sorted(ROOT.glob("services/*/src/*/handlers.py")) == []
