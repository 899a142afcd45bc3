"""Several objectives: naming them, and which runs no other run beats on all of them.

A search, a sweep or an analysis that takes ``metric=`` and ``mode=`` takes lists too
(``metric=["val_accuracy", "params"], mode=["max", "min"]``); :func:`resolve_objectives`
turns either shape into one list of ``(metric, mode)`` pairs, so every caller checks
them the same way. :func:`non_dominated` is the Pareto front of a table of values, and
:func:`pareto_mask` the front of a summary or an aggregated frame's rows.

Nothing here needs Keras or pandas at import time; the front needs NumPy.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from runmanager.errors import InvalidArgumentError
from runmanager.events import resolve_mode

__all__ = ["non_dominated", "pareto_mask", "recorded_objectives", "resolve_objectives"]

def resolve_objectives(metric: Any, mode: Any = None, *, who: str) -> list[tuple[str, str]]:
    """``(metric, mode)`` pairs from a metric name or a list of names, and a mode or a list of
    modes of the same length; a mode that is None (or a ``mode`` of None) is ``"min"`` for a
    loss or an error, else ``"max"`` (:func:`runmanager.events.default_mode`).

    Raises:
        InvalidArgumentError: an empty list, a name given twice, lists of different lengths,
            a single mode for several metrics, a bad metric name or mode.

    Examples:
        >>> resolve_objectives("val_loss", None, who="aggregate")
        [('val_loss', 'min')]
        >>> resolve_objectives(["val_accuracy", "params"], ["max", "min"], who="OptunaSearch")
        [('val_accuracy', 'max'), ('params', 'min')]
        >>> resolve_objectives(["val_accuracy", "val_loss"], None, who="pareto")
        [('val_accuracy', 'max'), ('val_loss', 'min')]
    """
    if isinstance(metric, (list, tuple)):
        metrics = list(metric)
        if not metrics:
            raise InvalidArgumentError(
                f"{who} got an empty list of metrics; name at least one, e.g. metric=['val_accuracy', 'params']."
            )
        if mode is None:
            modes: list[Any] = [None] * len(metrics)
        elif isinstance(mode, (list, tuple)):
            modes = list(mode)
            if len(modes) != len(metrics):
                raise InvalidArgumentError(
                    f"{who} got {len(metrics)} metrics {metrics!r} and {len(modes)} modes {modes!r}; give one mode "
                    "per metric ('min', 'max', or None for the default), in the same order."
                )
        else:
            raise InvalidArgumentError(
                f"{who} got several metrics {metrics!r} and one mode {mode!r}; give a list with one mode per "
                f"metric, e.g. mode={[mode] * len(metrics)!r}."
            )
    else:
        if isinstance(mode, (list, tuple)):
            raise InvalidArgumentError(
                f"{who} got one metric {metric!r} and a list of modes {list(mode)!r}; give one mode, or a list "
                "of metrics of the same length."
            )
        metrics, modes = [metric], [mode]
    pairs = [(name, resolve_mode(name, how, who=who)) for name, how in zip(metrics, modes)]
    seen: set[str] = set()
    for name, _ in pairs:
        if name in seen:
            raise InvalidArgumentError(f"{who} got the metric {name!r} twice in {metrics!r}; name each metric once.")
        seen.add(name)
    return pairs


def non_dominated(values: Sequence[Sequence[float]], modes: Sequence[str]) -> list[bool]:
    """Which rows of ``values`` (one column per objective, judged by ``modes``) no other row
    dominates: no other row is at least as good on every objective and better on one. Rows
    with the same values do not dominate each other, so exact ties are all on the front. A row
    with a missing or non-finite value is never on the front and dominates nothing.

    Examples:
        >>> non_dominated([[0.9, 500], [0.8, 100], [0.7, 300], [0.9, 500]], ["max", "min"])
        [True, True, False, True]
    """
    import numpy as np

    rows = len(values)
    if rows == 0:
        return []
    # Every objective turned into "higher is better"; a missing value becomes NaN.
    signs = np.array([1.0 if how == "max" else -1.0 for how in modes])
    table = np.array([[_number(v) for v in row] for row in values], dtype=float).reshape(rows, len(modes)) * signs
    valid = np.isfinite(table).all(axis=1)
    points = table[valid]
    # Best first by the first objective, then the next ones: a point's dominators all come before it
    # (where they first differ, a dominator is better), and if one is dominated, the point is also
    # dominated by one on the front. So each point is compared with the front found so far only:
    # about n x (front size) comparisons instead of n x n (10,000 runs: 0.1 s against 4 s).
    order = np.lexsort([-points[:, j] for j in reversed(range(points.shape[1]))])
    kept = np.empty_like(points)
    count = 0
    front = np.zeros(len(points), dtype=bool)
    for position in order:
        point = points[position]
        others = kept[:count]
        if count and ((others >= point).all(axis=1) & (others > point).any(axis=1)).any():
            continue
        kept[count] = point
        count += 1
        front[position] = True
    mask = np.zeros(rows, dtype=bool)
    mask[valid] = front
    return mask.tolist()


def _number(value: Any) -> float:
    if isinstance(value, bool) or value is None:
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def pareto_mask(frame: Any, columns: Sequence[str], modes: Sequence[str], eligible: Any = None) -> list[bool]:
    """:func:`non_dominated` over the ``columns`` of ``frame``'s rows where ``eligible`` (a
    boolean sequence, default every row) holds; other rows are off the front.

    Examples:
        >>> import pandas as pd
        >>> frame = pd.DataFrame({"acc": [0.9, 0.95, 0.8], "params": [100, 900, 50]})
        >>> pareto_mask(frame, ["acc", "params"], ["max", "min"], eligible=[True, False, True])
        [True, False, True]
    """
    rows = len(frame)
    mask = [False] * rows
    if not all(c in frame.columns for c in columns):
        return mask  # an objective no row has: nothing can be judged on it
    keep = [True] * rows if eligible is None else [bool(e) for e in eligible]
    positions = [i for i in range(rows) if keep[i]]
    table = frame[list(columns)].to_numpy(dtype=object)[positions]
    for position, on in zip(positions, non_dominated(table, modes)):
        mask[position] = on
    return mask


def recorded_objectives(summary: Any) -> list[tuple[str, str]]:
    """The ``(metric, mode)`` pairs of a sweep of several objectives, as its summary carries
    them (``summary.attrs["objectives"]``, set when the summary is folded from the journal);
    ``[]`` for any other summary (one objective, or read from a summary file alone).

    Examples:
        >>> import pandas as pd
        >>> frame = pd.DataFrame()
        >>> frame.attrs["objectives"] = [["val_accuracy", "max"], ["params", "min"]]
        >>> recorded_objectives(frame)
        [('val_accuracy', 'max'), ('params', 'min')]
    """
    return [(str(name), str(how)) for name, how in getattr(summary, "attrs", {}).get("objectives") or []]
