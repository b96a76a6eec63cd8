"""Imports run one way: features ← training → scoring ← service, both may use eventstore (which imports
no project package), and no module imports itself round a circle.

Read from the source (every import, the lazy ones inside functions included), so a new import
that breaks the architecture fails here rather than in a reviewer's head.
"""
from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

from support.processes import ROOT

PACKAGES = ("envconfig", "eventstore", "features", "scoring", "service", "training")
#: package -> the project packages it may import
ALLOWED = {
    "envconfig": set(),
    "eventstore": set(),
    "features": set(),
    "scoring": set(),
    "training": {"envconfig", "eventstore", "features", "scoring"},
    "service": {"envconfig", "eventstore", "scoring"},
}
#: The service knows the scoring contract only; the one documented reach past it reads a model
#: registered before models were saved as code (see scoring/contract.py).
SERVICE_SCORING = {"scoring.contract"}
SERVICE_EXCEPTIONS = {("service.model.store", "scoring.pyfunc")}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def project_imports(path: Path) -> Iterator[tuple[str, bool]]:
    """(imported project module, at module level?) for every import in `path`."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    top = set(map(id, tree.body))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            names = [node.module]
        else:
            continue
        for name in names:
            if name.partition(".")[0] in PACKAGES:
                yield name, id(node) in top


def modules() -> dict[str, Path]:
    return {module_name(p): p for package in PACKAGES for p in (ROOT / package).rglob("*.py")
            if "__pycache__" not in p.parts}


def test_every_package_imports_only_what_its_layer_may() -> None:
    wrong = []
    for name, path in modules().items():
        package = name.partition(".")[0]
        for imported, _ in project_imports(path):
            target = imported.partition(".")[0]
            if target == package:
                continue
            if target not in ALLOWED[package]:
                wrong.append(f"{name} imports {imported}")
            elif package == "service" and target == "scoring" and imported not in SERVICE_SCORING \
                    and (name, imported) not in SERVICE_EXCEPTIONS:
                wrong.append(f"{name} imports {imported} (the service knows scoring.contract only)")
    assert not wrong, "\n".join(wrong)
    assert len(modules()) > 60  # the walk saw the project


def test_no_import_circle() -> None:
    """Lazy imports count: one inside a function that closes a circle is a circle hidden, not broken."""
    known = modules()
    graph: dict[str, set[str]] = {name: set() for name in known}
    for name, path in known.items():
        for imported, _ in project_imports(path):
            target = imported if imported in known else imported.rpartition(".")[0]
            if target in known and target != name and not target.startswith(name + "."):
                graph[name].add(target)
    seen: dict[str, int] = {}  # 1 on the current path, 2 done

    def visit(node: str, path: list[str]) -> list[str] | None:
        seen[node] = 1
        for nxt in sorted(graph[node]):
            if seen.get(nxt) == 1:
                return path + [node, nxt]
            if nxt not in seen and (found := visit(nxt, path + [node])):
                return found
        seen[node] = 2
        return None

    for start in sorted(graph):
        if start not in seen and (circle := visit(start, [])):
            raise AssertionError("import circle: " + " -> ".join(circle[circle.index(circle[-1]):]))
    assert any(graph.values())  # the graph has edges to walk
