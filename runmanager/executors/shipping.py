"""What a joined Ray cluster needs of the driver's code, and how it gets there.

Ray actors unpickle ``train`` and the RunManager (a subclass of it, perhaps) by
reference: by module and name. On a private local Ray the actors see the
driver's files, so they get its ``sys.path`` and import its script as
``__main__`` (the fast path). Nodes of a joined cluster may see none of the
driver's files, so the code is shipped with Ray's ``runtime_env``:

- the driver's script, when ``train`` or the manager's class is defined in it:
  its folder becomes the ``working_dir`` (the modules and data files beside it
  go too; Ray honours ``.gitignore``), and each actor imports the script from
  its copy;
- any other module of the driver's own (not installed, not the standard
  library) that the payload names: ``py_modules`` (its top-level package, or its
  one file).

Code in a notebook (``__main__`` without a file) is pickled by value. A payload
that names a module which would reach the nodes neither way is refused before
any run, naming the module and the fix.
"""

from __future__ import annotations

import functools
import os
import pickle
import pickletools
import sys
import sysconfig
from dataclasses import dataclass, field
from typing import Any

from runmanager.errors import InvalidArgumentError, InvalidArgumentTypeError

_MAIN = frozenset({"__main__", "__mp_main__"})

__all__ = ["Shipment", "check_runtime_env", "main_script", "own_paths", "plan_shipment", "referenced_modules"]


def main_script() -> str | None:
    """The driver's script, when ``train`` may live in it (``python sweep.py``); else None.

    Examples:
        >>> main_script() is None or main_script().endswith(".py")
        True
    """
    path = getattr(sys.modules.get("__main__"), "__file__", None)
    return os.path.abspath(path) if path and path.endswith(".py") and os.path.exists(path) else None


def check_runtime_env(runtime_env: Any) -> None:
    """Reject a ``runtime_env`` that is not a Ray runtime environment dict, before anything starts.

    Examples:
        >>> check_runtime_env({"pip": ["scikit-learn"], "env_vars": {"TF_CPP_MIN_LOG_LEVEL": "2"}})
        >>> check_runtime_env("pip")
        Traceback (most recent call last):
        ...
        runmanager.errors.InvalidArgumentTypeError: runtime_env must be None or a dict...
    """
    if runtime_env is None:
        return
    if not isinstance(runtime_env, dict) or not all(isinstance(key, str) for key in runtime_env):
        raise InvalidArgumentTypeError(
            f"runtime_env must be None or a dict of Ray runtime environment fields, such as "
            f"{{'pip': ['scikit-learn'], 'env_vars': {{'KEY': 'value'}}}}, got {runtime_env!r}."
        )
    for name in ("working_dir",):
        value = runtime_env.get(name)
        if value is not None and not isinstance(value, str):
            raise InvalidArgumentTypeError(
                f"runtime_env['{name}'] must be a folder or a URI (a str), got {value!r}."
            )
    if runtime_env.get("py_modules") is not None and not isinstance(runtime_env["py_modules"], (list, tuple)):
        raise InvalidArgumentTypeError(
            f"runtime_env['py_modules'] must be a list of folders, files or URIs, got {runtime_env['py_modules']!r}."
        )


@functools.cache
def _installed_roots() -> tuple[str, ...]:
    """Folders whose modules every node is expected to have installed (site-packages, the stdlib)."""
    paths = {sysconfig.get_paths().get(key) for key in ("stdlib", "platstdlib", "purelib", "platlib")}
    paths |= {sys.prefix, sys.base_prefix, sys.exec_prefix}
    return tuple(sorted(os.path.abspath(p) + os.sep for p in paths if p))


@functools.cache
def _distributions() -> frozenset[str]:
    from importlib.metadata import packages_distributions

    return frozenset(packages_distributions())


def _installed(top: str, path: str | None) -> bool:
    if top in sys.builtin_module_names or top in sys.stdlib_module_names or top in _distributions():
        return True
    return path is not None and os.path.abspath(path).startswith(_installed_roots())


def own_paths() -> list[str]:
    """The folders of this process's ``sys.path`` that hold its own code (the script's folder, the
    working directory, ``PYTHONPATH`` entries), not installed packages or the standard library.

    Examples:
        >>> all(os.path.isabs(path) for path in own_paths())
        True
    """
    paths: list[str] = []
    for entry in sys.path:
        path = os.path.abspath(entry or os.getcwd())  # "" is the working directory
        if os.path.isdir(path) and not (path + os.sep).startswith(_installed_roots()) and path not in paths:
            paths.append(path)
    return paths


def referenced_modules(content: Any, *, by_value: bool = False) -> set[str]:
    """The modules an unpickler must import to load ``content`` (pickled by reference, or with
    cloudpickle when ``by_value``).

    Examples:
        >>> sorted(referenced_modules(os.path.join))
        ['posixpath']
    """
    if by_value:
        from ray import cloudpickle

        data = cloudpickle.dumps(content, protocol=2)
    else:
        data = pickle.dumps(content, protocol=2)
    modules = set()
    for opcode, arg, _ in pickletools.genops(data):
        if opcode.name == "GLOBAL":
            modules.add(str(arg).split(" ", 1)[0])
    return modules


@dataclass
class Shipment:
    """What goes to a joined cluster: a ``runtime_env`` for the job (or the actors), the
    driver's script relative to the working_dir (for the actors to import), whether the payload
    goes by value, and one line for the user."""

    runtime_env: dict[str, Any] = field(default_factory=dict)
    main: str | None = None
    by_value: bool = False
    note: str = ""


def _module_source(name: str) -> tuple[str, str | None]:
    """(top-level name, what to ship for it: its package folder or its one file)."""
    top = name.split(".", 1)[0]
    module = sys.modules.get(top)
    path = getattr(module, "__file__", None)
    if path is None:
        return top, None
    if os.path.basename(path) == "__init__.py":
        return top, os.path.dirname(os.path.abspath(path))
    return top, os.path.abspath(path)


def plan_shipment(content: Any, runtime_env: dict[str, Any] | None, *, what: str) -> Shipment:
    """Plan how ``content`` (the workers' payload) reaches nodes that do not see the driver's
    files, with the user's ``runtime_env`` merged in.

    Raises:
        InvalidArgumentError: the payload names a module of the driver's own that cannot be shipped.

    Examples:
        >>> plan_shipment(os.path.join, None, what="train").runtime_env
        {}
    """
    env = dict(runtime_env or {})
    shipment = Shipment(env)
    script = main_script()
    try:
        modules = referenced_modules(content)
    except Exception:  # noqa: BLE001 - a closure: only cloudpickle can send it
        modules = None
    if modules is None or (modules & _MAIN and script is None):
        shipment.by_value = True  # a notebook, `python -c`, or a closure
        modules = referenced_modules(content, by_value=True)
    notes = ["sends train by value"] if shipment.by_value else []
    if modules & _MAIN:
        if script is None:
            raise InvalidArgumentTypeError(
                f"{what} uses objects defined in this interactive session (__main__) that cannot be sent by "
                "value to the Ray cluster's nodes (a functools.cache wrapper, for one). Move train and what "
                "it uses into a module file beside the notebook, import it, and pass "
                "runtime_env={'working_dir': '.'}."
            )
        working_dir = env.setdefault("working_dir", os.path.dirname(script))
        if "://" in working_dir:
            raise InvalidArgumentError(
                f"runtime_env['working_dir']={working_dir!r} is a URI, but {what} is defined in the driver's "
                f"script {script}, which the actors must import: pass the local folder that holds it, or "
                "move train into a module of the package at that URI."
            )
        relative = os.path.relpath(script, os.path.abspath(working_dir))
        if relative.startswith(os.pardir):
            raise InvalidArgumentError(
                f"runtime_env['working_dir']={working_dir!r} does not hold the driver's script {script}, "
                f"where {what} is defined: pass the folder that holds it (or leave working_dir out)."
            )
        shipment.main = relative
        notes.append(f"ships {os.path.abspath(working_dir)} (working_dir, with the driver's script)")
        modules -= _MAIN
    shipped_dir = env.get("working_dir")
    shipped_dir = os.path.abspath(shipped_dir) + os.sep if shipped_dir and "://" not in shipped_dir else None
    py_modules = list(env.get("py_modules") or [])
    listed = {os.path.abspath(p) for p in py_modules if isinstance(p, str) and "://" not in p}
    added: list[str] = []

    def add(top: str, source: str) -> None:
        if shipped_dir and os.path.dirname(source) + os.sep == shipped_dir:
            return  # at the top of the working_dir, which is on the actors' sys.path
        if source not in listed:
            listed.add(source)
            py_modules.append(source)
            added.append(top)

    for name in sorted(modules):
        top, source = _module_source(name)
        if _installed(top, source):
            continue
        if source is None:
            raise InvalidArgumentError(
                f"{what} needs the module {top!r}, which has no file to ship to the Ray cluster's nodes and "
                "is not installed: define what train uses in a module file, or install it on the nodes "
                "(runtime_env={'pip': [...]})."
            )
        add(top, source)
    # The modules beside those, which they may import (a helper next to train's module).
    folders = {os.path.dirname(source) for source in listed}
    for name in sorted(name for name in list(sys.modules) if "." not in name and name not in _MAIN):
        top, source = _module_source(name)
        if source is not None and os.path.dirname(source) in folders and not _installed(top, source):
            add(top, source)
    if added:
        env["py_modules"] = py_modules
        notes.append(f"ships {', '.join(added)} (py_modules)")
    shipment.note = "; ".join(notes)
    return shipment
