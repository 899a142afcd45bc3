"""Stable run ids and safe file names derived from a run's params.

A run is identified by its params, not its position in a grid: the run id is a
hash of the params' canonical JSON, so a resumed sweep matches runs even when
the grid gained or lost values.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from collections.abc import Mapping
from typing import Any

__all__ = ["REPEAT", "jsonable", "params_of", "run_id", "safe_name"]

#: The column (and run field) that numbers a configuration's repeats, 1..N (``sweep(..., repeats=N)``);
#: here, low in the house, so that what reads earlier sweeps can leave it out of a configuration.
REPEAT = "repeat"

_UNSAFE = re.compile(r"[^A-Za-z0-9._=,+-]+")
_MAX_NAME = 96


def jsonable(value: Any) -> Any:
    """``value`` as something JSON can hold, the same in every process.

    Numbers, strings, bools and None stay; tuples and lists become lists,
    mappings become dicts with string keys, NumPy scalars become Python
    numbers; anything else becomes a stable string (for a class or function,
    its qualified name, never a memory address).

    Examples:
        >>> jsonable((1, "a", None))
        [1, 'a', None]
    """
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value
    item = getattr(value, "item", None)
    if item is not None and getattr(value, "shape", None) == ():
        return jsonable(item())
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    qualname = getattr(value, "__qualname__", None)
    if qualname is not None:
        return f"{getattr(value, '__module__', '')}.{qualname}"
    text = repr(value)
    return re.sub(r" at 0x[0-9a-fA-F]+", "", text)


def params_of(run: Any) -> dict[str, Any]:
    """A run's params as a plain dict: a namedtuple, a mapping, or an object with ``_asdict``.

    Examples:
        >>> from collections import namedtuple
        >>> params_of(namedtuple("Run", "lr bs")(0.1, 32))
        {'lr': 0.1, 'bs': 32}
    """
    if hasattr(run, "_asdict"):
        return dict(run._asdict())
    if isinstance(run, Mapping):
        return {str(k): v for k, v in run.items()}
    from runmanager.errors import InvalidGridTypeError

    raise InvalidGridTypeError(
        f"A run must be a namedtuple from RunBuilder or a mapping of params, got {run!r}."
    )


def _canonical(params: Mapping[str, Any]) -> str:
    # json writes 1 and 1.0 differently, so a value's type is part of the id.
    return json.dumps(jsonable(dict(params)), sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=True)


def run_id(params: Mapping[str, Any]) -> str:
    """A short stable id for a run's params: the same params give the same id anywhere.

    Key order does not matter; a value's type does (``1`` and ``1.0`` differ).

    Examples:
        >>> run_id({"lr": 0.1, "bs": 32}) == run_id({"bs": 32, "lr": 0.1})
        True
    """
    return hashlib.sha256(_canonical(params).encode()).hexdigest()[:12]


def safe_name(number: int, params: Mapping[str, Any]) -> str:
    """A file or folder name for a run that is safe on every file system.

    No path separators, no ``..``, no NUL or control characters, at most about
    110 characters, and a hash of the params at the end so that distinct params
    never collide, however they were shortened.

    Examples:
        >>> safe_name(3, {"lr": 0.1, "opt": "../../x"})
        'run-003-lr=0.1,opt=.__.__x-7b6b90400fc1'
    """
    text = ",".join(f"{k}={v}" for k, v in jsonable(dict(params)).items())
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    text = _UNSAFE.sub("_", text).strip("._")
    text = text.replace("..", "._")
    text = text[:_MAX_NAME].rstrip("._")
    prefix = f"run-{number:03d}"
    body = f"-{text}" if text else ""
    return f"{prefix}{body}-{run_id(params)}"
