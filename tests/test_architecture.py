"""The shape of the package: no import cycle, no module writing another's private state."""

from __future__ import annotations

import ast
from pathlib import Path

import runmanager

PACKAGE = Path(runmanager.__file__).parent


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, ast.Module]:
    return {module_name(path): ast.parse(path.read_text()) for path in sorted(PACKAGE.rglob("*.py"))}


def runtime_imports(tree: ast.Module, known: set[str]) -> set[str]:
    """Every runmanager module imported anywhere in ``tree`` (functions too), except under TYPE_CHECKING."""
    skipped = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped.update(id(child) for child in ast.walk(node))
    found = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        found.update(name for name in names if name in known)
    return found


def test_the_import_graph_has_no_cycle():
    trees = modules()
    graph = {name: runtime_imports(tree, set(trees)) - {name} for name, tree in trees.items()}
    # A package's modules may use its __init__ (the interface they implement): that is no cycle
    # unless the __init__ imports them back at run time, which the graph below would show.
    state: dict[str, int] = {}

    def visit(name: str, path: list[str]) -> None:
        state[name] = 1
        for other in sorted(graph[name]):
            if state.get(other) == 1:
                raise AssertionError("import cycle: " + " -> ".join(path[path.index(other):] + [other]))
            if other not in state:
                visit(other, path + [other])
        state[name] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])


def private_writes(tree: ast.Module) -> list[tuple[int, ast.Attribute]]:
    """Assignments to ``something._name`` (not dunder) in ``tree``, with their line."""
    writes = []
    for node in ast.walk(tree):
        targets = []
        if isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        for target in targets:
            for sub in ast.walk(target):
                if isinstance(sub, ast.Attribute) and sub.attr.startswith("_") and not sub.attr.startswith("__"):
                    writes.append((node.lineno, sub))
    return writes


def test_no_module_writes_a_private_attribute_of_another_modules_object():
    offences = []
    for name, tree in modules().items():
        writes = private_writes(tree)
        # The private attributes this module's own classes keep on self.
        own = {sub.attr for _, sub in writes if isinstance(sub.value, ast.Name) and sub.value.id in ("self", "cls")}
        offences += [f"{name}:{line} writes {ast.unparse(sub)}" for line, sub in writes if sub.attr not in own]
    assert offences == []


def test_the_core_imports_neither_tensorflow_nor_keras_at_module_level():
    for name in ("runmanager.events", "runmanager.results", "runmanager.storage", "runmanager.tracking",
                 "runmanager.grid", "runmanager.search", "runmanager.sweep", "runmanager.sinks"):
        tree = modules()[name]
        top = [node for node in tree.body if isinstance(node, (ast.Import, ast.ImportFrom))]
        names = {alias.name for node in top if isinstance(node, ast.Import) for alias in node.names}
        names |= {node.module for node in top if isinstance(node, ast.ImportFrom)}
        assert not {n for n in names if n and n.split(".")[0] in ("tensorflow", "keras")}, name
