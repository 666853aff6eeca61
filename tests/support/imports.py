"""What a project module reaches by its imports, read from the source (lazy imports too): the
distributions a Bento or a logged model must pin, the project modules they must carry."""

from __future__ import annotations

import ast
import sys
from dataclasses import dataclass, field
from importlib.metadata import packages_distributions
from pathlib import Path

from contracts.settings import PROJECT_ROOT

OURS = ("serving", "models", "contracts")


@dataclass
class Reached:
    distributions: list[set[str]] = field(default_factory=list)  # per third-party import
    modules: set[str] = field(default_factory=set)  # project modules, the entry included


def reached(entry: str) -> Reached:
    """For each third-party module imported (at any depth) by ``entry`` and every project module
    it reaches: the distributions that provide it (normalised names); and those modules."""
    names = packages_distributions()
    found, todo = Reached(), [entry]
    while todo:
        module = todo.pop()
        if module in found.modules:
            continue
        found.modules.add(module)
        for node in ast.walk(ast.parse(source(module).read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                # `from contracts import registry` imports the module contracts.registry
                modules = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names
                                          if source(f"{node.module}.{alias.name}").exists())]
            else:
                continue
            for name in modules:
                top = name.split(".")[0]
                if top in OURS:
                    todo.append(name)
                elif top not in sys.stdlib_module_names:
                    found.distributions.append({d.lower().replace("_", "-") for d in names[top]})
    return found


def source(module: str) -> Path:
    path = PROJECT_ROOT / (module.replace(".", "/") + ".py")
    return path if path.exists() else path.with_suffix("") / "__init__.py"
