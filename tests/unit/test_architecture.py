"""The package layering: no import cycles, serving never reaches into pipelines, models are pure.

Imports are read from the source (lazy ones inside functions and ``TYPE_CHECKING`` blocks
included), so a cycle hidden in a function body counts as much as one at the top of a file.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

from tests.conftest import REPO

PACKAGES = ("contracts", "models", "pipelines", "serving")
# Which of our packages each may import: a strict order, so no cycle between packages.
ALLOWED = {
    "models": set(),
    "contracts": {"models"},
    "pipelines": {"contracts", "models"},
    "serving": {"contracts", "models"},
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for package in PACKAGES for p in (REPO / package).rglob("*.py")}


def import_graph() -> dict[str, set[str]]:
    """Module -> the project modules it imports anywhere in its source."""
    modules = _modules()
    graph: dict[str, set[str]] = defaultdict(set)
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                # ``from pipelines.steps import rollout`` names a module; ``from x import name``, x.
                targets = [f"{node.module}.{alias.name}" for alias in node.names]
            for target in targets:
                while target and target not in modules:
                    target = target.rpartition(".")[0]
                if target and target != name:
                    graph[name].add(target)
        graph.setdefault(name, set())
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
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


def test_no_import_cycle_between_modules() -> None:
    assert cycles(import_graph()) == []


def test_packages_import_only_downwards() -> None:
    wrong = sorted(
        f"{module} imports {target}"
        for module, targets in import_graph().items()
        for target in targets
        if (mine := module.split(".")[0]) != (theirs := target.split(".")[0])
        and theirs not in ALLOWED[mine]
    )
    assert wrong == []


def test_cycle_finder_finds_a_planted_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]


def test_import_graph_sees_lazy_imports() -> None:
    """``contracts.bundle`` imports ``models.fit`` inside ``load_bundle`` only."""
    assert "models.fit" in import_graph()["contracts.bundle"]


def test_legacy_keras_switch_is_set_in_one_product_module() -> None:
    setting = [name for name, path in _modules().items()
               if "TF_USE_LEGACY_KERAS" in path.read_text(encoding="utf-8")]
    assert setting == ["models"]


def test_bento_ships_no_pipelines() -> None:
    from pipelines.steps.package import BENTO_INCLUDE

    shipped = {pattern.split("/")[0] for pattern in BENTO_INCLUDE}
    assert shipped == {"contracts", "models", "serving"}


def _dag_imports() -> set[str]:
    """Every module the DAG files import from our packages (lazy imports included)."""
    found = set()
    for path in (REPO / "dags").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found |= {node.module} if node.module.split(".")[0] in PACKAGES else set()
                found |= {f"{node.module}.{a.name}" for a in node.names
                          if node.module in ("pipelines", "pipelines.steps")}
            elif isinstance(node, ast.Import):
                found |= {a.name for a in node.names if a.name.split(".")[0] in PACKAGES}
    return found


def test_dags_call_only_the_steps() -> None:
    """A DAG task is one call into ``pipelines.steps``; the settings come from ``contracts``."""
    imported = _dag_imports()
    assert any(m.startswith("pipelines.steps.") for m in imported)
    wrong = sorted(m for m in imported if m.split(".")[0] == "pipelines"
                   and not m.startswith("pipelines.steps"))
    assert wrong == [] and {m.split(".")[0] for m in imported} <= {"pipelines", "contracts"}


def test_pipelines_is_grouped_by_role() -> None:
    """``pipelines/`` holds the CLI and one package per role, no loose modules."""
    entries = {p.name for p in (REPO / "pipelines").iterdir() if p.name != "__pycache__"}
    assert entries == {"__init__.py", "cli", "steps", "data", "evaluation", "tracking",
                       "simulation"}


MAX_MODULE_LINES = 400


def test_no_module_is_over_400_lines() -> None:
    """A module a newcomer can read in one sitting: split by concept before it grows past this."""
    long = {str(path.relative_to(REPO)): n for package in PACKAGES
            for path in (REPO / package).rglob("*.py")
            if (n := len(path.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES}
    assert long == {}
