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


def imports(tree: ast.Module, known: set[str]) -> set[str]:
    """Every runmanager module imported anywhere in ``tree``: at module level, in functions, and
    under TYPE_CHECKING (a type annotation is a dependency too)."""
    found = set()
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        found.update(name for name in names if name in known)
    return found


def test_the_import_graph_has_no_cycle_counting_function_level_and_type_checking_imports():
    trees = modules()
    graph = {name: imports(tree, set(trees)) - {name} for name, tree in trees.items()}
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


def test_the_run_lifecycle_goes_through_the_handle_not_through_methods_public_only_for_siblings():
    """The callback, run_task, the pools and the Sweep talk to a RunHandle and a Recorder; the
    RunManager keeps its public face (the manual calls and the subclass hooks) and nothing else."""
    from runmanager import RunManager

    for gone in ("begin_run_as", "end_run_as", "record_event", "record_lost_run", "prune_run", "run_record",
                 "discard_epoch", "run_status", "begin_sweep", "end_sweep"):
        assert not hasattr(RunManager, gone), gone
    trees = modules()
    for name in ("runmanager.keras_callback", "runmanager.executors.sequential", "runmanager.executors.pool",
                 "runmanager.sweep"):
        source = ast.unparse(trees[name])
        assert "_BEGUN_BY" not in source and "._number" not in source and "._ending" not in source, name
