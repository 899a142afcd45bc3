"""Which runs are both accurate and small (or fast)? The Pareto front of a sweep.

A run is on the front of some metrics when no other completed run is at least as good on
every one of them and better on one. With repeats, configurations are judged by their means
over their completed repeats. :func:`pareto` answers for any summary; a sweep of several
objectives (``OptunaSearch(metric=[...])`` or ``sweep(metric=[...])``) also records them, so
its ``summary()`` and ``aggregate()`` carry a ``pareto`` column and its report draws the front.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from runmanager.analysis import aggregate, metric_columns, numeric_columns, param_columns, summary_of
from runmanager.errors import InvalidArgumentError
from runmanager.events import Status
from runmanager.objectives import pareto_mask, recorded_objectives, resolve_objectives

__all__ = ["pareto"]


def pareto(summary_or_path: Any, metrics: str | Sequence[str] | None = None,
           modes: str | Sequence[str | None] | None = None) -> Any:
    """The runs on the Pareto front of ``metrics``: the completed runs that no other completed
    run dominates (at least as good on every metric and better on one; runs with exactly the
    same values all stay), sorted best first by the first metric (then by the next ones).

    With repeats (a ``repeat`` column), configurations are judged instead, by their means over
    their completed repeats (:func:`runmanager.aggregate`), and the rows are the aggregate's.
    A run or configuration without a finite value of every metric is left out.

    Args:
        summary_or_path: a summary DataFrame (``m.summary()``), a RunManager, or a log_dir or
            summary file path.
        metrics: the metrics, e.g. ``["val_accuracy", "params"]`` (numeric extra columns count);
            default: the objectives the sweep recorded (a sweep of several objectives).
        modes: ``"min"`` or ``"max"`` for each metric, e.g. ``["max", "min"]``; None (or None in
            the list): ``"min"`` for a loss or an error, else ``"max"``.

    Returns:
        A DataFrame of the summary's rows (or the aggregate's) on the front, best first.

    Raises:
        InvalidArgumentError: a metric the runs never logged (the message names those there are),
            lists of different lengths, a bad mode, or no metrics given nor recorded.

    Examples:
        >>> import pandas as pd
        >>> summary = pd.DataFrame({"run": [1, 2, 3, 4], "units": [16, 64, 32, 128],
        ...                         "status": ["completed"] * 3 + ["failed"], "epochs": [5, 5, 5, 2],
        ...                         "val_accuracy": [0.90, 0.97, 0.89, 0.99], "params": [1210, 4810, 2410, 9610],
        ...                         "run_duration": [1.0] * 4})
        >>> pareto(summary, ["val_accuracy", "params"], ["max", "min"])[["run", "val_accuracy", "params"]]
           run  val_accuracy  params
        0    2          0.97    4810
        1    1          0.90    1210
    """
    from runmanager.repeats import REPEAT

    summary = summary_of(summary_or_path)
    if metrics is None:
        if modes is not None:
            raise InvalidArgumentError(f"modes={modes!r} needs metrics; pass metrics= too, e.g. "
                                       "metrics=['val_accuracy', 'params'].")
        objectives = recorded_objectives(summary)
        if not objectives:
            raise InvalidArgumentError(
                "pareto() needs the metrics to judge runs by, e.g. pareto(summary, ['val_accuracy', 'params'], "
                "['max', 'min']); this sweep recorded no objectives of its own."
            )
    else:
        objectives = resolve_objectives(metrics, modes, who="pareto")
    available = numeric_columns(summary, metric_columns(summary))
    for name, _ in objectives:
        if name not in available:
            raise InvalidArgumentError(
                f"Unknown metric {name!r}; the sweep has {', '.join(available) or 'no numeric metrics'}."
            )
    names = [name for name, _ in objectives]
    directions = [how for _, how in objectives]
    if REPEAT in param_columns(summary):
        table = aggregate(summary)
        columns = [f"{name}_mean" for name in names]
        eligible = table["completed"] > 0
    else:
        table, columns = summary, names
        eligible = table["status"] == Status.COMPLETED
    front = table[pareto_mask(table, columns, directions, eligible)]
    # The sweep's own pareto column is about its objectives, which may not be these: this table is the front.
    front = front.drop(columns=["pareto"], errors="ignore")
    front = front.sort_values(columns, ascending=[how == "min" for how in directions], kind="stable")
    return front.reset_index(drop=True)
