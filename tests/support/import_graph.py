"""The package's module import graph, read from source with ``ast``, and its cycles.

Imports under ``if TYPE_CHECKING:`` are left out: they never run, so they cannot make a
cycle at import time, and they are how typed conformance checks name other modules.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

PACKAGE = "container_apps"
SKIP_DIRS = {"tests", "bench", ".git", ".ci"}


def _module_name(path: Path, root: Path) -> tuple[str, bool]:
    parts = list(path.relative_to(root).with_suffix("").parts)
    is_package = parts[-1] == "__init__"
    if is_package:
        parts = parts[:-1]
    return ".".join([PACKAGE, *parts]), is_package


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _runtime_imports(tree: ast.AST) -> list[ast.ImportFrom | ast.Import]:
    found: list[ast.ImportFrom | ast.Import] = []
    stack: list[ast.AST] = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and _is_type_checking(node):
            stack.extend(node.orelse)
            continue
        if isinstance(node, ast.Import | ast.ImportFrom):
            found.append(node)
        stack.extend(ast.iter_child_nodes(node))
    return found


def _targets(node: ast.Import | ast.ImportFrom, package: str) -> list[str]:
    """What an import statement in ``package`` may name: modules, or names in them."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = package.split(".")
    if node.level > 1:
        base = base[: -(node.level - 1)]
    stem = ".".join(base + ([node.module] if node.module else []))
    if not node.level:
        stem = node.module or ""
    return [stem] + [f"{stem}.{alias.name}" for alias in node.names]


def import_graph(root: Path) -> dict[str, set[str]]:
    """Map each package module to the package modules it imports at run time."""
    files = [p for p in root.rglob("*.py") if not SKIP_DIRS & set(p.relative_to(root).parts)]
    modules = {_module_name(p, root)[0] for p in files}
    graph: dict[str, set[str]] = {}
    for path in files:
        name, is_package = _module_name(path, root)
        package = name if is_package else name.rsplit(".", 1)[0]
        edges: set[str] = set()
        for node in _runtime_imports(ast.parse(path.read_text())):
            edges |= {t for t in _targets(node, package) if t in modules and t != name}
        graph[name] = edges
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []
    counter = 0
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
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
    return found


def folder_graph(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """The same graph between top-level folders (``sync``, ``volumes``, ...).

    Modules at the package root count as one node each: they are the base modules every
    folder may use, and a cycle through one of them is already a module cycle.
    """

    def folder(module: str) -> str:
        parts = module.split(".")
        return ".".join(parts[:2])

    folders: dict[str, set[str]] = {}
    for module, targets in graph.items():
        edges = folders.setdefault(folder(module), set())
        edges |= {folder(t) for t in targets if folder(t) != folder(module)}
    return folders


# A test module named in a string: ``python -c "from container_apps.tests.x.test_y import f"``.
_NAMED_TEST_MODULE = re.compile(rf"\b{PACKAGE}\.tests(?:\.\w+)*\.test_\w+")


def imports_of_test_modules(root: Path) -> list[tuple[str, str]]:
    """(importer, test module) for each time a module under ``tests/`` uses a ``test_*`` one.

    A test module is a leaf: pytest collects it, and importing it from elsewhere runs its
    module-level code again under another name and ties the two files' fixtures together.
    Counts every import (also under ``TYPE_CHECKING`` or inside a function) and every
    module named in a string (what a ``-c``/``-m`` subprocess child imports), a module
    naming itself included.
    """
    files = sorted((root / "tests").rglob("*.py"))
    tests = {_module_name(p, root)[0] for p in files if p.name.startswith("test_")}
    found: set[tuple[str, str]] = set()
    for path in files:
        name, is_package = _module_name(path, root)
        package = name if is_package else name.rsplit(".", 1)[0]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import | ast.ImportFrom):
                named = _targets(node, package)
            elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                named = _NAMED_TEST_MODULE.findall(node.value)
            else:
                continue
            found |= {(name, target) for target in named if target in tests}
    return sorted(found)


def stray_helpers(root: Path) -> list[str]:
    """Modules under ``tests/`` that are neither tests nor in ``tests/support/``.

    ``__init__.py`` and ``conftest.py`` (pytest's own hook files) are neither.
    """
    return sorted(
        str(p.relative_to(root))
        for p in (root / "tests").rglob("*.py")
        if not p.name.startswith("test_")
        and p.name not in ("__init__.py", "conftest.py")
        and p.relative_to(root).parts[1] != "support"
    )


if __name__ == "__main__":
    import sys

    for cycle in cycles(import_graph(Path(sys.argv[1]).resolve())):
        print(" <-> ".join(cycle))
